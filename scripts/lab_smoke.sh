#!/usr/bin/env bash
# The notebooks in a real browser: JupyterLab (.venv) + headless Chromium run every notebook in
# notebooks/ through our kernel and check what the user sees (see scripts/lab_smoke.mjs for the checks).
# ./test.sh runs it (after installing its prerequisites: Debian's chromium, and playwright-core,
# pinned in scripts/package.json, installed by `npm ci --prefix scripts` into scripts/node_modules).
# playwright-core can also come from elsewhere: PLAYWRIGHT_DIR (a dir holding node_modules/),
# PLAYWRIGHT_CORE or NODE_PATH.
#
# usage: scripts/lab_smoke.sh [--out DIR] [--only 00,07] [--restart] [--keep] [--kernel-timeout S] [--run-timeout S]
#                             [--max-run-seconds S]
# Environment: PLAYWRIGHT_DIR (dir holding node_modules/playwright-core; default /tmp/labcheck),
#   or PLAYWRIGHT_CORE / NODE_PATH as lab_smoke.mjs reads them; CHROMIUM.
# Screenshots go to /tmp/labcheck (one per notebook: <notebook>.png) unless --out says otherwise.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

command -v node >/dev/null 2>&1 || {
    echo "[lab_smoke] ERROR: node was not found (Debian: apt-get install nodejs npm)." >&2
    exit 2
}
if [[ -z ${PLAYWRIGHT_CORE:-} && ! -d $REPO/scripts/node_modules/playwright-core ]]; then
    dir=${PLAYWRIGHT_DIR:-/tmp/labcheck}
    if [[ -d $dir/node_modules/playwright-core ]]; then
        export NODE_PATH=$dir/node_modules${NODE_PATH:+:$NODE_PATH}
    fi
fi
exec node "$REPO/scripts/lab_smoke.mjs" "$@"
