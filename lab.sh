#!/usr/bin/env bash
# Sets everything up (install.sh; quick when already done) and opens JupyterLab on notebooks/.
# Extra arguments go to `jupyter lab` (e.g. ./lab.sh --port 8899 --no-browser).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$REPO/install.sh"

export VIRTUAL_ENV=$REPO/.venv
export PATH=$VIRTUAL_ENV/bin:${CARGO_HOME:-$HOME/.cargo}/bin:$PATH
mkdir -p "$REPO/notebooks"
# Outputs saved in the notebooks come from our own runs: trust them, or JupyterLab hides the saved
# SVG charts until each cell is run again.
"$VIRTUAL_ENV/bin/jupyter" trust "$REPO"/notebooks/*.ipynb >/dev/null 2>&1 || true
args=(--ServerApp.root_dir="$REPO/notebooks")
((EUID == 0)) && args+=(--allow-root)
echo "[lab] starting JupyterLab on $REPO/notebooks (stop it with Ctrl-C)"
exec "$VIRTUAL_ENV/bin/jupyter" lab "${args[@]}" "$@"
