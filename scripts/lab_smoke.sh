#!/usr/bin/env bash
# Smoke test in a real browser: JupyterLab (.venv) + headless Chromium run notebooks 00 and 01
# through our kernel and check what the user sees (see scripts/lab_smoke.mjs for the checks).
# Not part of ./test.sh: it needs Chromium and playwright-core, which the project does not install.
#
# One-time prerequisites (outside the repo; nothing from node_modules belongs in it):
#   apt-get install chromium                                  # or set CHROMIUM=/path/to/chromium
#   mkdir -p /tmp/labcheck && (cd /tmp/labcheck && npm install playwright-core)
#
# usage: scripts/lab_smoke.sh [--out DIR] [--only 00|01] [--restart] [--keep] [--kernel-timeout S] [--run-timeout S]
# Environment: PLAYWRIGHT_DIR (dir holding node_modules/playwright-core; default /tmp/labcheck),
#   or PLAYWRIGHT_CORE / NODE_PATH as lab_smoke.mjs reads them; CHROMIUM.
# Screenshots go to /tmp/labcheck (q6.png, perf.png) unless --out says otherwise.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

command -v node >/dev/null 2>&1 || {
    echo "[lab_smoke] ERROR: node was not found (Debian: apt-get install nodejs npm)." >&2
    exit 2
}
if [[ -z ${PLAYWRIGHT_CORE:-} ]]; then
    dir=${PLAYWRIGHT_DIR:-/tmp/labcheck}
    if [[ -d $dir/node_modules/playwright-core ]]; then
        export NODE_PATH=$dir/node_modules${NODE_PATH:+:$NODE_PATH}
    fi
fi
exec node "$REPO/scripts/lab_smoke.mjs" "$@"
