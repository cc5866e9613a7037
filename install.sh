#!/usr/bin/env bash
# One idempotent setup for a Debian machine that has Rust (cargo) and Python 3.10+:
#   - apt packages: mold (fast linker), g++ + libzmq3-dev + pkg-config (the Rust zmq client builds libzmq), python3-venv,
#     openmpi-bin + libopenmpi-dev + libclang-dev (Open MPI for mpi/, whose `mpi` crate runs bindgen on mpi.h)
#   - rustup components rust-src (evcxr's type inference), rustfmt and clippy (test.sh), when missing
#   - the project's own build of evcxr_jupyter 0.22.0 (kernel/build_evcxr.sh: the pinned sources, the patches in
#     kernel/patches/, a committed lock file; cached by a key of all of them, never over a user's evcxr)
#   - .venv with the pinned Python tools (JupyterLab, jupyter-client, nbclient, nbval, pytest, ...)
#   - our kernel spec "rust-multiprocessing" in .venv (kernel/kernel.json.in with absolute paths)
#   - warm builds: the kernel once headless in build slot 0 (copied to the other slots) and
#     `cargo test --workspace --no-run`, so the first kernel start and test run are fast
# A second run checks stamps and versions, changes nothing and takes seconds. After the first
# run nothing needs the network.
#
# Environment: PYTHON (python to build .venv from; default python3), RUST_MP_SLOTS (build slots).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=kernel/common.sh
source "$REPO/kernel/common.sh"
VENV=$REPO/.venv
STATE=$(rust_mp_state_dir)
T0=$SECONDS

say() { printf '[install] %s\n' "$*"; }
warn() { printf '[install] WARNING: %s\n' "$*" >&2; }
die() {
    printf '[install] ERROR: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------------------------------------
# Prerequisites (nothing is changed before they all pass)
# ---------------------------------------------------------------------------------------------
cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
if [[ -d $cargo_bin && ":$PATH:" != *":$cargo_bin:"* ]]; then
    PATH=$cargo_bin:$PATH
fi
export PATH
command -v cargo >/dev/null 2>&1 ||
    die "cargo was not found (looked on PATH and in $cargo_bin). Install Rust first, e.g. with rustup (https://rustup.rs), then run $0 again."
command -v rustc >/dev/null 2>&1 || die "rustc was not found next to cargo. Install a complete Rust toolchain (rustup default stable)."
CARGO=$(command -v cargo)

PYTHON=${PYTHON:-python3}
PY=$(command -v "$PYTHON" 2>/dev/null) ||
    die "$PYTHON was not found. Install Python 3.10 or newer (Debian: apt-get install python3 python3-venv), or set PYTHON=/path/to/python3."
PY_VERSION=$("$PY" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null) ||
    die "$PY does not run as Python 3. Install Python 3.10 or newer, or set PYTHON=/path/to/python3."
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' ||
    die "$PY is Python $PY_VERSION; this project needs Python 3.10 or newer. Install one and set PYTHON=/path/to/python3.x."
for tool in flock setpriv sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool was not found (Debian package util-linux / coreutils)."
done

mkdir -p "$STATE"
exec {install_lock}>>"$STATE/install.lock"
if ! flock -n "$install_lock"; then
    say "another install.sh of this checkout is running; waiting for it"
    flock "$install_lock"
fi

# System packages we need, and which of them are missing.
apt_missing=()
have_deb() { [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == installed ]]; }
if command -v dpkg-query >/dev/null 2>&1; then
    for pkg in mold g++ libzmq3-dev pkg-config openmpi-bin libopenmpi-dev libclang-dev; do
        have_deb "$pkg" || apt_missing+=("$pkg")
    done
    if ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        # Debian splits venv/ensurepip out of python3; match the interpreter's minor version.
        apt_missing+=("python$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv")
    fi
else
    command -v mold >/dev/null 2>&1 || die "mold was not found and this is not a Debian system: install the mold linker."
    pkg-config --exists libzmq 2>/dev/null || die "libzmq (with pkg-config) was not found: install libzmq development files and pkg-config."
    command -v mpicc >/dev/null 2>&1 || die "mpicc was not found: install Open MPI (or MPICH) with its development files, and libclang (for bindgen)."
    "$PY" -c 'import ensurepip, venv' 2>/dev/null || die "$PY lacks the venv/ensurepip modules: install them."
fi

# What needs the network: missing apt packages, evcxr_jupyter, the venv, crates not yet downloaded.
# Our own build of evcxr_jupyter (kernel/build_evcxr.sh: the pinned release plus kernel/patches),
# kept under a key of everything that goes into it, outside the checkout and outside HOME.
evcxr_key=$("$REPO/kernel/build_evcxr.sh" --key) || die "kernel/build_evcxr.sh --key failed"

REQ=$REPO/requirements.txt
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    REQ=$REPO/requirements.in # the full lock needs 3.11; on 3.10 pip picks the dependencies
fi
venv_want="python=$PY_VERSION $(sha256sum "$REQ" | cut -c1-16) $(basename "$REQ")"
need_venv=0
[[ -x $VENV/bin/python && "$(cat "$VENV/.install-stamp" 2>/dev/null)" == "$venv_want" ]] || need_venv=1

# Crates: every package of each lock file, for every platform. cargo build itself downloads only the
# host's, but evcxr runs `cargo metadata` (all platforms) on its build crate, and the kernel runs
# offline: a crate missing there fails the notebook cell that needs it ("failed to download").
need_crates=0
if ! meta_err=$("$CARGO" metadata --offline --format-version 1 \
    --manifest-path "$REPO/Cargo.toml" 2>&1 >/dev/null); then
    if grep -q -e '--offline' -e 'offline mode' <<<"$meta_err"; then
        need_crates=1
    else
        warn "cargo metadata fails (the workspace is broken?); the builds below will say why:"
        sed 's/^/    /' <<<"$meta_err" | head -n 10 >&2
    fi
fi

# Crates that notebooks add with `:dep` (kernel/evcxr/prebuild.evcxr): a scratch package that
# depends on them and on the helper crate, as evcxr's build crate in the kernel does, so that the
# same resolution is downloaded here (the kernel runs with `:offline 1`).
prebuild_pkg=$STATE/prebuild-fetch
{
    printf '[package]\nname = "rust-mp-prebuild"\nversion = "0.0.0"\nedition = "2021"\n\n[lib]\npath = "lib.rs"\n\n[dependencies]\n'
    printf 'multiprocessing = { path = "%s" }\n' "$REPO"
    sed -n 's/^:dep[[:space:]]\+//p' "$REPO/kernel/evcxr/prebuild.evcxr" 2>/dev/null || true
} >"$STATE/prebuild-Cargo.toml.new"
mkdir -p "$prebuild_pkg"
touch "$prebuild_pkg/lib.rs"
cmp -s "$STATE/prebuild-Cargo.toml.new" "$prebuild_pkg/Cargo.toml" || mv "$STATE/prebuild-Cargo.toml.new" "$prebuild_pkg/Cargo.toml"
rm -f "$STATE/prebuild-Cargo.toml.new"
if ! "$CARGO" metadata --offline --format-version 1 \
    --manifest-path "$prebuild_pkg/Cargo.toml" >/dev/null 2>&1; then
    need_crates=1
fi

# Toolchain components: rust-src (evcxr's rust-analyzer reads std's sources to infer the types of a
# cell's variables), rustfmt and clippy (test.sh runs both). Added with rustup when it manages the
# toolchain; otherwise a missing one is reported and left to the user.
components_missing=()
sysroot=$(rustc --print sysroot)
[[ -d $sysroot/lib/rustlib/src/rust/library ]] || components_missing+=(rust-src)
"$CARGO" fmt --version >/dev/null 2>&1 || components_missing+=(rustfmt)
"$CARGO" clippy --version >/dev/null 2>&1 || components_missing+=(clippy)
if ((${#components_missing[@]})) && ! command -v rustup >/dev/null 2>&1; then
    warn "the Rust toolchain lacks ${components_missing[*]} and rustup is not there to add them: install them with your toolchain (the kernel infers variable types worse without rust-src; test.sh needs rustfmt and clippy)"
    components_missing=()
fi

if ((${#apt_missing[@]} || ${#components_missing[@]} || need_venv || need_crates)); then
    what=()
    ((${#apt_missing[@]})) && what+=("apt packages: ${apt_missing[*]}")
    ((${#components_missing[@]})) && what+=("rustup components: ${components_missing[*]}")
    ((need_venv)) && what+=("Python packages for .venv")
    ((need_crates)) && what+=("crate dependencies")
    say "needs downloading: $(IFS=';'; echo "${what[*]}")"
    say "checking the network (crate registry)"
    if ! timeout 60 "$CARGO" info --quiet "evcxr_jupyter@$EVCXR_VERSION" >/dev/null 2>&1; then
        die "no network: the package registries cannot be reached, and this run must download: $(IFS=';'; echo "${what[*]}"). Connect to the network and run $0 again (after one complete run nothing needs the network)."
    fi
fi

# ---------------------------------------------------------------------------------------------
# 1. apt packages
# ---------------------------------------------------------------------------------------------
if ((${#apt_missing[@]})); then
    sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || die "missing apt packages (${apt_missing[*]}) and not root, no sudo: install them as root (apt-get install ${apt_missing[*]})."
        sudo=(sudo)
    fi
    say "apt-get install ${apt_missing[*]}"
    apt_install() { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${apt_missing[@]}"; }
    if ! apt_install; then
        say "apt-get install failed; running apt-get update and trying again"
        "${sudo[@]}" apt-get update -q
        apt_install || die "apt-get install ${apt_missing[*]} failed"
    fi
fi

if ((${#components_missing[@]})); then
    say "rustup component add ${components_missing[*]}"
    rustup component add "${components_missing[@]}" || die "rustup component add ${components_missing[*]} failed"
fi

# ---------------------------------------------------------------------------------------------
# 2. evcxr_jupyter
# ---------------------------------------------------------------------------------------------
say "evcxr_jupyter $EVCXR_VERSION, the project's build (key $evcxr_key)"
EVCXR=$("$REPO/kernel/build_evcxr.sh") ||
    die "building evcxr_jupyter $EVCXR_VERSION with the patches in kernel/patches failed (see above). If it could not download, connect to the network and run $0 again."
[[ -x $EVCXR ]] || die "kernel/build_evcxr.sh did not produce $EVCXR"

# ---------------------------------------------------------------------------------------------
# 3. .venv with pinned Python tools
# ---------------------------------------------------------------------------------------------
if ((need_venv)); then
    created=0
    if [[ -x $VENV/bin/python ]] && [[ "$("$VENV/bin/python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null)" == "$PY_VERSION" ]]; then
        say "updating .venv from $(basename "$REQ")"
    else
        say "creating .venv with $PY (Python $PY_VERSION) from $(basename "$REQ")"
        rm -rf "$VENV"
        "$PY" -m venv "$VENV" || {
            rm -rf "$VENV"
            die "$PY -m venv failed"
        }
        created=1
    fi
    rm -f "$VENV/.install-stamp"
    if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$REQ"; then
        ((created)) && rm -rf "$VENV"
        die "pip install -r $(basename "$REQ") failed (nothing was registered)"
    fi
    printf '%s\n' "$venv_want" >"$VENV/.install-stamp"
fi

# ---------------------------------------------------------------------------------------------
# 4. kernel spec (into .venv only; evcxr's own "rust" spec is never touched)
# ---------------------------------------------------------------------------------------------
spec_src=$(mktemp -d)
trap 'rm -rf "$spec_src"' EXIT
sed -e "s|@REPO@|$REPO|g" -e "s|@EVCXR@|$EVCXR|g" -e "s|@PYTHON@|$VENV/bin/python|g" \
    -e "s|@CARGO_BIN@|$(dirname "$CARGO")|g" "$REPO/kernel/kernel.json.in" >"$spec_src/kernel.json"
cp "$REPO/kernel/logo-32x32.png" "$REPO/kernel/logo-64x64.png" "$spec_src/"
spec_dst=$VENV/share/jupyter/kernels/$KERNEL_NAME
if ! diff -rq "$spec_src" "$spec_dst" >/dev/null 2>&1; then
    say "installing kernel spec $KERNEL_NAME into .venv"
    "$VENV/bin/jupyter" kernelspec install --sys-prefix --replace --name "$KERNEL_NAME" "$spec_src" >/dev/null
fi
mkdir -p "$STATE"

# ---------------------------------------------------------------------------------------------
# 5. warm builds
# ---------------------------------------------------------------------------------------------
hash_tree() { # hashes the given files/dirs (contents and names), missing ones allowed
    (cd "$REPO" && find "$@" -type f ! -path '*/target/*' -print0 2>/dev/null | sort -z | xargs -0 -r sha256sum) | sha256sum | cut -c1-32
}
tool_versions="evcxr=$evcxr_key $(rustc -V) $(command -v mold || true)"

if ((need_crates)); then
    say "cargo fetch (the workspace, and the crates notebooks add: kernel/evcxr/prebuild.evcxr)"
    "$CARGO" fetch --manifest-path "$REPO/Cargo.toml" || die "cargo fetch of the workspace's crates failed"
    "$CARGO" fetch --manifest-path "$prebuild_pkg/Cargo.toml" ||
        die "cargo fetch of the crates in kernel/evcxr/prebuild.evcxr failed: notebooks that add them could not build"
fi

# 5a. the kernel: start it once in a free build slot (0 unless busy), run a cell, then copy that
# slot to the other free slots.
kernel_want="$tool_versions $REPO $RUST_MP_SLOTS $(hash_tree src Cargo.toml Cargo.lock kernel/evcxr kernel/launch.sh kernel/common.sh)"
if [[ "$(cat "$STATE/warm-kernel.stamp" 2>/dev/null)" != "$kernel_want" ]]; then
    rm -f "$STATE/warm-kernel.stamp"
    warm_slot=
    for ((i = 0; i < RUST_MP_SLOTS; i++)); do
        exec {probe_fd}>>"$STATE/slot-$i.lock"
        if flock -n "$probe_fd"; then
            warm_slot=$i
            exec {probe_fd}>&- # the launcher takes it again
            break
        fi
        exec {probe_fd}>&-
    done
    if [[ -z $warm_slot ]]; then
        warn "every build slot is in use by a running kernel: not warming now (run $0 again later)"
    else
        say "warming the kernel: building the helper crate in build slot $warm_slot (first time: ~1 min)"
        if "$VENV/bin/python" "$REPO/scripts/warm_kernel.py" --slot "$warm_slot" 2>&1 | sed 's/^/    /'; then
            copied=()
            for ((i = 0; i < RUST_MP_SLOTS; i++)); do
                ((i == warm_slot)) && continue
                exec {src_fd}>>"$STATE/slot-$warm_slot.lock" {dst_fd}>>"$STATE/slot-$i.lock"
                if flock -n "$src_fd" && flock -n "$dst_fd"; then
                    rm -rf "$STATE/slot-$i"
                    mkdir -p "$STATE/slot-$i"
                    cp -a "$STATE/slot-$warm_slot/build" "$STATE/slot-$i/build"
                    copied+=("$i")
                else
                    # its kernel rebuilds what changed when it next starts there
                    say "build slot $i is in use by a kernel: not copying the warm build into it"
                fi
                exec {src_fd}>&- {dst_fd}>&-
            done
            ((${#copied[@]})) && say "copied build slot $warm_slot to slot(s) ${copied[*]} ($(du -sh "$STATE/slot-$warm_slot" | cut -f1) each)"
            printf '%s\n' "$kernel_want" >"$STATE/warm-kernel.stamp"
        else
            die "the kernel warm-up failed (see above): the kernel cannot build what the notebooks use, so the install is broken. Fix the error above and run $0 again."
        fi
    fi
fi

# 5b. the workspace's tests (what test.sh runs)
ws_want="$tool_versions $(hash_tree src tests kernel/client mpi Cargo.toml Cargo.lock)"
if [[ "$(cat "$STATE/warm-workspace.stamp" 2>/dev/null)" != "$ws_want" ]]; then
    rm -f "$STATE/warm-workspace.stamp"
    say "cargo test --workspace --no-run (warming the test build)"
    if (cd "$REPO" && "$CARGO" test --workspace --no-run --quiet 2>&1 | tail -n 30 | sed 's/^/    /'; exit "${PIPESTATUS[0]}"); then
        printf '%s\n' "$ws_want" >"$STATE/warm-workspace.stamp"
    else
        warn "the workspace does not build yet (see above); test.sh will report it"
    fi
fi

say "done in $((SECONDS - T0)) s. Kernel \"Rust (multiprocessing)\" ($KERNEL_NAME) is installed in .venv; state in $STATE"
