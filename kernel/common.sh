# Shared by kernel/launch.sh, install.sh and scripts: where the kernel keeps its state and how
# its evcxr startup files are rendered. Source it after setting REPO (absolute repo path).
# shellcheck shell=bash

KERNEL_NAME=rust-multiprocessing
EVCXR_VERSION=0.22.0

# Number of build slots: each is a fixed EVCXR_TMPDIR that one kernel at a time uses (flock), so
# the helper crate and its dependencies stay built between kernel starts.
RUST_MP_SLOTS=${RUST_MP_SLOTS:-3}

# Per-checkout state directory (build slots, rendered evcxr config, stamps). Where it may live:
# - outside the repo: evcxr's build crate has no [workspace] table, so cargo would take it for a
#   stray member of the repo's workspace;
# - not in the same top-level directory as the Rust toolchain (~/.rustup): cargo writes each
#   cell's RUNPATH to libstd relative to target/.../deps, evcxr loads the copy one directory up,
#   and the one `..` too many only lands right when the common ancestor is `/`. Under ~/.cache
#   every cell fails with "dlopen failed" (libstd-*.so not found); under /var/tmp it works.
rust_mp_state_dir() {
    local base=${RUST_MP_CACHE_DIR:-/var/tmp/rust-multiprocessing-$(id -u)}
    local id
    id=$(printf '%s' "$REPO" | sha256sum | cut -c1-10)
    printf '%s/%s-%s\n' "$base" "$(basename "$REPO")" "$id"
}

# Writes $2 to file $1 only when its content differs (atomic rename), so concurrent launchers
# never see a half-written file.
rust_mp_write_if_changed() {
    local path=$1 content=$2
    if [[ -f $path ]] && [[ "$(cat "$path")" == "$content" ]]; then
        return 0
    fi
    mkdir -p "$(dirname "$path")"
    local tmp
    tmp=$(mktemp "$path.XXXXXX")
    printf '%s\n' "$content" >"$tmp"
    mv -f "$tmp" "$path"
}

# Renders one evcxr config dir (EVCXR_CONFIG_DIR) under $STATE/evcxr-config/ and prints its path.
#   $2 cache=1: `:cache` first, for a fresh build dir (registry crates then come from evcxr's
#               cache in ~/.cache/evcxr; path crates are never cached, so ours is rebuilt)
# (prelude.rs: `use`s and lints, once; runtime-start.rs: set-up of each process that runs the
# cells, see kernel/patches/0015-runtime-start-code.patch.)
#   $3 warm=1:  prelude.rs also runs kernel/evcxr/warm-up.rs: one `let`, so that evcxr's
#               rust-analyzer does its first type inference (~2 s) before the kernel answers
#               kernel_info instead of in the notebook's first cell that defines a variable.
rust_mp_render_config() {
    local state=$1 cache=${2:-0} warm=${3:-0}
    local dir=$state/evcxr-config/cache$cache-warm$warm
    local init prelude
    init=$(sed "s|@REPO@|$REPO|g" "$REPO/kernel/evcxr/init.evcxr.in")
    ((cache)) && init=":cache 2048
$init"
    prelude=$(cat "$REPO/kernel/evcxr/prelude.rs")
    ((warm)) && prelude="$prelude
$(cat "$REPO/kernel/evcxr/warm-up.rs")"
    rust_mp_write_if_changed "$dir/init.evcxr" "$init"
    rust_mp_write_if_changed "$dir/prelude.rs" "$prelude"
    rust_mp_write_if_changed "$dir/runtime-start.rs" "$(cat "$REPO/kernel/evcxr/runtime-start.rs")"
    printf '%s\n' "$dir"
}
