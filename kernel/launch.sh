#!/usr/bin/env bash
# Starts the "Rust (multiprocessing)" Jupyter kernel: evcxr_jupyter with our startup files
# (init.evcxr loads the helper crate, prelude.rs `use`s its prelude).
#
# usage (from kernel.json): launch.sh CONNECTION_FILE
#
# Speed: evcxr builds every `:dep` in its build dir (EVCXR_TMPDIR). A fresh temp dir means building
# the helper crate at every start (~10 s), so we keep RUST_MP_SLOTS fixed build dirs ("slots") and
# give each kernel the first free one, holding an flock on it while the kernel lives (the lock fd
# is inherited by evcxr, so it stays held until the kernel and all its children are gone). When
# every slot is busy the kernel gets a fresh temp dir and evcxr's `:cache` for registry crates.
#
# Faults: evcxr exits when its startup files fail (e.g. the helper crate does not compile), which
# a notebook shows only as a dead kernel. So we run evcxr as a child, and if it exits with an error
# we serve the same connection with kernel/error_kernel.py, which shows evcxr's output (the
# compiler errors) as the result of every cell until the kernel is restarted.
#
# Environment (set by kernel.json, all optional):
#   RUST_MP_EVCXR      path of evcxr_jupyter      RUST_MP_CARGO_BIN  dir holding cargo/rustc
#   RUST_MP_PYTHON     python with ipykernel (for the error kernel)
#   RUST_MP_SLOTS      number of build slots (default 3; 0 = always a fresh temp dir)
#   RUST_MP_SLOT       use exactly this slot (fails if it is busy); used by install.sh to warm it
#   RUST_MP_WARM_UP    1 (default): the startup also runs kernel/evcxr/warm-up.rs (one `let`), so
#                      evcxr's first rust-analyzer type inference is done at start instead of in
#                      the notebook's first cell that defines a variable. Since our evcxr runs the
#                      startup files after it answers kernel_info (kernel/patches/0007), this costs
#                      no ready time. Measured (scripts/measure_startup.py --rounds 3 --warm-up
#                      --pause 8): ready 0.95x stock, first Pool cell 1.78 s instead of 3.70 s
#                      when the learner reads for 8 s first; sent at once, 5.2 s instead of 4.9 s.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$here")
# shellcheck source=kernel/common.sh
source "$here/common.sh"

log() { printf '[%s launcher] %s\n' "$KERNEL_NAME" "$*" >&2; }

conn=${1:?usage: launch.sh CONNECTION_FILE}

# Jupyter may be started without ~/.cargo/bin on PATH; evcxr needs cargo and rustc.
for dir in "${RUST_MP_CARGO_BIN:-}" "${CARGO_HOME:-$HOME/.cargo}/bin"; do
    if [[ -n $dir && -d $dir && ":$PATH:" != *":$dir:"* ]]; then
        PATH=$PATH:$dir
    fi
done
export PATH
# evcxr asks for incremental builds of its cells in its own profile; a CARGO_INCREMENTAL=0 meant for
# the user's other builds (sccache wants it; test.sh sets it on CI to save disk) would override that.
unset CARGO_INCREMENTAL
# Notebooks that build or run something of this checkout (06 builds mpi/) find it here, wherever
# the notebook file itself was opened from.
export RUST_MP_REPO=$REPO

python=${RUST_MP_PYTHON:-$REPO/.venv/bin/python}
evcxr=${RUST_MP_EVCXR:-$(command -v evcxr_jupyter || true)}
# Our own build is kept in a cache that evicts the builds used least recently: mark it used.
case $evcxr in
*/bin-*/evcxr_jupyter) touch -c "${evcxr%/*}" 2>/dev/null || true ;;
esac

STATE=$(rust_mp_state_dir)
mkdir -p "$STATE"
warm=${RUST_MP_WARM_UP:-1}

# Serves the connection with the error kernel (if there is a python for it), else exits 1.
serve_error() {
    local message_file=$1
    if [[ -x $python ]] && "$python" -c 'import ipykernel' 2>/dev/null; then
        log "serving the error kernel; see $message_file"
        if [[ -n ${lock_fd:-} ]]; then exec {lock_fd}>&-; fi
        exec "$python" "$here/error_kernel.py" "$conn" "$message_file"
    fi
    log "no python with ipykernel at $python: cannot show the error in the notebook"
    cat "$message_file" >&2
    exit 1
}

if [[ -z $evcxr || ! -x $evcxr ]]; then
    msg=$STATE/launch-error-$$.txt
    printf 'evcxr_jupyter was not found (looked at RUST_MP_EVCXR and PATH).\nRun %s/install.sh, then restart the kernel.\n' "$REPO" >"$msg"
    serve_error "$msg"
fi

# Pick a slot: the first one whose lock we can take without waiting.
slot=
if [[ -n ${RUST_MP_SLOT:-} ]]; then
    exec {lock_fd}>>"$STATE/slot-$RUST_MP_SLOT.lock"
    if ! flock -n "$lock_fd"; then
        log "slot $RUST_MP_SLOT is in use by another kernel"
        exit 75
    fi
    slot=$RUST_MP_SLOT
else
    for ((i = 0; i < RUST_MP_SLOTS; i++)); do
        exec {lock_fd}>>"$STATE/slot-$i.lock"
        if flock -n "$lock_fd"; then
            slot=$i
            break
        fi
        exec {lock_fd}>&-
    done
fi

if [[ -n $slot ]]; then
    export EVCXR_TMPDIR=$STATE/slot-$slot/build
    EVCXR_CONFIG_DIR=$(rust_mp_render_config "$STATE" 0 "$warm")
    export EVCXR_CONFIG_DIR
    mkdir -p "$EVCXR_TMPDIR"
    errlog=$STATE/slot-$slot.log
    log "build slot $slot ($EVCXR_TMPDIR)"
else
    unset EVCXR_TMPDIR
    EVCXR_CONFIG_DIR=$(rust_mp_render_config "$STATE" 1 "$warm")
    export EVCXR_CONFIG_DIR
    errlog=$STATE/fresh-$$.log
    log "all $RUST_MP_SLOTS build slots are busy: using a fresh build dir (slower start)"
fi
unset EVCXR_IS_RUNTIME

# evcxr dies with this script (pdeathsig), so a client that kills only our pid leaves nothing
# behind; its stderr goes to the Jupyter log and to $errlog for the error kernel.
: >"$errlog"
# (tee gets no copy of the slot lock: it may outlive evcxr while orphans still hold stderr.)
if [[ -n $slot ]]; then
    setpriv --pdeathsig KILL -- "$evcxr" --control_file "$conn" 2> >(exec {lock_fd}>&- && exec tee "$errlog" >&2) &
else
    setpriv --pdeathsig KILL -- "$evcxr" --control_file "$conn" 2> >(exec tee "$errlog" >&2) &
fi
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' TERM INT HUP

rc=0
while kill -0 "$pid" 2>/dev/null; do
    rc=0
    wait "$pid" || rc=$?
done
trap - TERM INT HUP

if ((rc == 0 || rc >= 128)); then
    # normal shutdown, or killed by a signal (Jupyter's kill): nothing to show.
    [[ -n $slot ]] || rm -f "$errlog"
    exit "$rc"
fi

msg=$STATE/launch-error-$$.txt
{
    printf 'The Rust kernel (evcxr_jupyter) stopped with exit code %s while starting.\n' "$rc"
    printf 'Its startup loads the helper crate at %s (see %s/init.evcxr).\n' "$REPO" "$EVCXR_CONFIG_DIR"
    printf 'Fix the problem below, then restart the kernel.\n\n'
    # evcxr prints only the first line of a compiler error: when the crate itself does not build,
    # show cargo's full messages instead.
    # In a slot, rebuild evcxr's own build crate the way evcxr does (same RUSTFLAGS, so the
    # dependencies it built are reused and this takes seconds); else check the crate alone.
    if [[ -n $slot && -f $EVCXR_TMPDIR/Cargo.toml ]]; then
        host=$(rustc -vV | sed -n 's/^host: //p')
        check_out=$(cd "$EVCXR_TMPDIR" && RUSTFLAGS=-Cprefer-dynamic CARGO_TARGET_DIR=target \
            CARGO_BUILD_BUILD_DIR=target timeout 300 cargo build --offline --quiet --color never \
            --target "$host" 2>&1) && check_rc=0 || check_rc=$?
    else
        check_out=$(cd "$REPO" && timeout 300 cargo check --lib --offline --quiet --color never \
            --manifest-path "$REPO/Cargo.toml" --target-dir "$STATE/check-target" 2>&1) && check_rc=0 || check_rc=$?
    fi
    if ((check_rc != 0)) && [[ -n $check_out ]]; then
        printf 'Building the helper crate at %s gives:\n\n%s\n\n' "$REPO" "$(head -n 200 <<<"$check_out")"
        printf 'evcxr said:\n'
    fi
    # drop evcxr's own chatter and cargo's progress lines
    sed -e '/^Stack backtrace:/,$d' -e '/^Loading startup configuration from/d' -e '/^ *Compiling /d' "$errlog" || true
} >"$msg"
[[ -n $slot ]] || rm -f "$errlog"
serve_error "$msg"
