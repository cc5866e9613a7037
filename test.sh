#!/usr/bin/env bash
# Runs every test of the project (the README's test command; CI runs it through .ci/run):
# install.sh, then cargo fmt --check, clippy -D warnings, rustdoc -D warnings (broken links), the helper crate's tests, the kernel
# client's tests (they start the installed kernel; the notebooks are re-run and compared there), the
# pytest suites (kernel conformance) found under tests/ and kernel/, and JupyterLab in headless
# Chromium running notebooks through the kernel (scripts/lab_smoke.sh). Exits non-zero if any step fails; ends with a
# summary line "test.sh: N passed, N failed, N skipped" counting steps.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$REPO"
exec </dev/null

say() { printf '\n[test] %s\n' "$*"; }

# A full run writes about 2.5 GiB (target/, the registry, .venv, the kernel's build slots), and
# NEED_GIB the first time (our evcxr_jupyter build, Chromium). A disk that fills
# midway fails far from the cause (a linker's "Bus error", "No space left on device" in one step
# and every later one), so say it up front and again on failure.
NEED_GIB=4
free_gib() { df -Pk "$REPO" | awk 'NR == 2 { printf "%.1f", $4 / 1048576 }'; }
disk_note() {
    local free
    free=$(free_gib)
    if awk -v f="$free" -v n="$NEED_GIB" 'BEGIN { exit !(f < n) }'; then
        echo "[test] warning: $free GiB free on $(df -P "$REPO" | awk 'NR == 2 { print $6 }'), a full run needs about $NEED_GIB GiB: free some space (an old target/ or /var/tmp/rust-multiprocessing-*) if steps fail with 'No space left on device'" >&2
    else
        echo "[test] $free GiB free on the repo's disk (a full run needs about $NEED_GIB GiB)"
    fi
}
disk_note
# On CI (a clean checkout, built once) incremental compilation's state would only take disk (~0.7
# GiB). kernel/launch.sh keeps it from the kernels, whose cells evcxr builds incrementally.
[[ ${CI:-} == true ]] && export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

"$REPO/install.sh" || {
    echo "[test] install.sh failed: no tests run" >&2
    echo "test.sh: 0 passed, 1 failed"
    exit 1
}

# The tools below find our kernel spec and Python tools in .venv.
export VIRTUAL_ENV=$REPO/.venv
export PATH=$VIRTUAL_ENV/bin:${CARGO_HOME:-$HOME/.cargo}/bin:$PATH
export JUPYTER_PATH=$VIRTUAL_ENV/share/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# One step may run at most this long (the whole CI run has 90 min).
STEP_TIMEOUT=${STEP_TIMEOUT:-2400}

passed=() failed=() skipped=()
step() { # step NAME COMMAND...
    local name=$1 t0=$SECONDS rc=0
    shift
    say "$name: $*"
    timeout -k 30 "$STEP_TIMEOUT" "$@" || rc=$?
    if ((rc == 0)); then
        passed+=("$name")
        say "$name: ok ($((SECONDS - t0)) s)"
    else
        ((rc == 124)) && echo "[test] $name: timed out after $STEP_TIMEOUT s" >&2
        failed+=("$name")
        say "$name: FAILED (exit $rc, $((SECONDS - t0)) s)"
    fi
}
skip() {
    skipped+=("$1")
    say "$1: skipped ($2)"
}

step "cargo fmt" cargo fmt --all --check
step "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
step "cargo doc" env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
step "cargo test (helper crate)" cargo test -p multiprocessing
step "cargo test (MPI: mpi/)" cargo test -p multiprocessing-mpi

if [[ -f kernel/client/Cargo.toml ]]; then
    client_pkg=$(sed -n 's/^name *= *"\(.*\)"/\1/p' kernel/client/Cargo.toml | head -n 1)
    step "cargo test (kernel tests)" cargo test -p "$client_pkg"
else
    skip "kernel tests" "kernel/client/Cargo.toml does not exist yet"
fi

# pytest suites: every directory among tests/ and kernel/ that holds test_*.py or *_test.py.
py_dirs=()
for dir in tests kernel; do
    if [[ -d $dir ]] && [[ -n "$(find "$dir" -path '*/target' -prune -o \( -name 'test_*.py' -o -name '*_test.py' \) -type f -print -quit)" ]]; then
        py_dirs+=("$dir")
    fi
done
if ((${#py_dirs[@]})); then
    # exit 5 ("no tests collected") is a failure here: these directories do hold test files.
    step "pytest (${py_dirs[*]})" "$VIRTUAL_ENV/bin/python" -m pytest -p no:cacheprovider "${py_dirs[@]}"
else
    skip "pytest" "no test_*.py under tests/ or kernel/"
fi

# The notebooks as a user sees them: JupyterLab in headless Chromium runs every notebook through the kernel.
# Its prerequisites serve only this test, so they are installed here rather than by install.sh:
# Debian's chromium, node and npm, and playwright-core pinned in scripts/package.json (npm ci, once).
browser_prerequisites() {
    local missing=() sudo=()
    [[ -x ${CHROMIUM:-/usr/bin/chromium} ]] || missing+=(chromium)
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    if ((${#missing[@]})); then
        ((EUID == 0)) || sudo=(sudo)
        echo "[test] installing ${missing[*]} (Debian packages) for the browser test"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" ||
            { "${sudo[@]}" apt-get update -q &&
                "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"; } ||
            { echo "[test] could not install ${missing[*]} (apt-get install ${missing[*]})" >&2; return 1; }
    fi
    [[ -d scripts/node_modules/playwright-core ]] || npm ci --prefix scripts --no-audit --no-fund
}
export -f browser_prerequisites # `step` runs commands under timeout(1), which needs a program
step "browser test prerequisites" bash -c browser_prerequisites
if [[ -d scripts/node_modules/playwright-core ]]; then
    # Each notebook's Run All must end within NOTEBOOK_MAX_RUN_SECONDS (0: no limit) on 2 cores.
    step "JupyterLab in Chromium" scripts/lab_smoke.sh --out "$(mktemp -d /tmp/lab-smoke-XXXXXX)" \
        --max-run-seconds "${NOTEBOOK_MAX_RUN_SECONDS:-60}"
else
    failed+=("JupyterLab in Chromium")
    say "JupyterLab in Chromium: FAILED (its prerequisites are missing, see above)"
fi

echo
echo "[test] passed: ${passed[*]:-none}"
echo "[test] failed: ${failed[*]:-none}"
echo "[test] skipped: ${skipped[*]:-none}"
((${#failed[@]} == 0)) || disk_note
echo "test.sh: ${#passed[@]} passed, ${#failed[@]} failed, ${#skipped[@]} skipped"
((${#failed[@]} == 0))
