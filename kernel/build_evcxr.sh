#!/usr/bin/env bash
# Builds the project's own evcxr_jupyter and prints the path of the binary.
#
# What goes in: the pinned evcxr and evcxr_jupyter sources ($EVCXR_VERSION) as cargo downloads and
# verifies them from the crate registry (their checksums are checked again against the committed
# lock file), the patch series kernel/patches/series applied in order with `git apply`, the
# workspace and lock file in kernel/evcxr-build/, the toolchain (`rustc -vV`) and this script.
# The binary is kept under a key made of all of these, in a cache outside the checkout and outside
# HOME ($RUST_MP_EVCXR_CACHE, default /var/tmp/rust-multiprocessing-evcxr-UID): a second checkout,
# a CI run or a run with a new HOME on the same machine reuses it, and any change to an input
# builds a new one. Registry crates are compiled once into a target dir shared by every key, so
# changing a patch rebuilds only evcxr and evcxr_jupyter (~1 min).
#
#   kernel/build_evcxr.sh            build if needed; print the binary's path on stdout
#   kernel/build_evcxr.sh --key      print the key only
#   kernel/build_evcxr.sh --src DIR  also leave the patched source tree in DIR (for writing patches)
#   kernel/build_evcxr.sh --stock    build evcxr_jupyter without the patches (stock 0.22.0 built the
#                                    same way, under its own key: what scripts/measure_startup.py
#                                    compares against); combines with --key and --src
#
# Needs the network only when the sources or their dependencies are not in cargo's cache yet.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$here")
# shellcheck source=kernel/common.sh
source "$here/common.sh"

CARGO=${CARGO:-$(command -v cargo)}
cache=${RUST_MP_EVCXR_CACHE:-/var/tmp/rust-multiprocessing-evcxr-$(id -u)}
build_dir=$here/evcxr-build
patch_dir=$here/patches

mode=build src_out= stock=0
while (($#)); do
    case $1 in
    --key) mode=key ;;
    --src) src_out=${2:?--src needs a directory} && shift ;;
    --stock) stock=1 ;;
    *) echo "usage: $0 [--stock] [--key | --src DIR]" >&2 && exit 2 ;;
    esac
    shift
done

# Patches in series order (blank lines and # comments ignored).
patches=()
if ((!stock)) && [[ -f $patch_dir/series ]]; then
    while read -r p; do
        p=${p%%#*}
        p=${p//[[:space:]]/}
        [[ -n $p ]] && patches+=("$p")
    done <"$patch_dir/series"
fi
for p in "${patches[@]}"; do
    [[ -f $patch_dir/$p ]] || { echo "build_evcxr: kernel/patches/series names $p, which does not exist" >&2 && exit 1; }
done

key=$(
    {
        echo "evcxr $EVCXR_VERSION"
        rustc -vV
        cat "$build_dir/Cargo.toml" "$build_dir/Cargo.lock" "${BASH_SOURCE[0]}"
        for p in "${patches[@]}"; do
            echo "patch $p"
            cat "$patch_dir/$p"
        done
    } | sha256sum | cut -c1-16
)
if [[ $mode == key ]]; then
    echo "$key"
    exit 0
fi

out=$cache/bin-$key/evcxr_jupyter
if [[ -x $out && -z $src_out ]]; then
    touch -c "${out%/*}" # last used now: see the eviction at the end
    echo "$out"
    exit 0
fi

mkdir -p "$cache"
exec {lock}>>"$cache/build.lock"
flock "$lock"
if [[ -x $out && -z $src_out ]]; then # built by another run while we waited
    echo "$out"
    exit 0
fi

log() { printf '[build_evcxr] %s\n' "$*" >&2; }

# 1. The pinned sources, downloaded and verified by cargo: a scratch package that depends on both
#    crates, resolved with our lock file so that the same dependency versions are fetched.
fetch=$cache/fetch
mkdir -p "$fetch"
printf '[package]\nname = "rust-mp-evcxr-fetch"\nversion = "0.0.0"\nedition = "2021"\n\n[lib]\npath = "lib.rs"\n\n[dependencies]\nevcxr = "=%s"\nevcxr_jupyter = "=%s"\n' \
    "$EVCXR_VERSION" "$EVCXR_VERSION" >"$fetch/Cargo.toml"
touch "$fetch/lib.rs"
cp "$build_dir/Cargo.lock" "$fetch/Cargo.lock"
if ! "$CARGO" fetch --offline --quiet --manifest-path "$fetch/Cargo.toml" 2>/dev/null; then
    log "downloading evcxr $EVCXR_VERSION and its dependencies"
    "$CARGO" fetch --quiet --manifest-path "$fetch/Cargo.toml" >&2
fi
registry_cache=${CARGO_HOME:-$HOME/.cargo}/registry/cache

# 2. A new source tree: both crates unpacked from their verified .crate files, our workspace, the patches.
tree=$cache/src-$key
rm -rf "$tree.tmp"
mkdir -p "$tree.tmp"
for crate in evcxr evcxr_jupyter; do
    file=$(ls "$registry_cache"/*/"$crate-$EVCXR_VERSION.crate" 2>/dev/null | head -n 1)
    want=$(awk -v n="$crate" -v v="$EVCXR_VERSION" '
        $0 == "name = \"" n "\"" { hit = 1; next }
        hit && $0 == "version = \"" v "\"" { ok = 1; next }
        hit && ok && /^checksum/ { gsub(/"/, "", $3); print $3; exit }
        /^\[\[package\]\]/ { hit = 0; ok = 0 }' "$fetch/Cargo.lock")
    [[ -n $want && "$(sha256sum "$file" | cut -d' ' -f1)" == "$want" ]] ||
        { log "$file does not match the checksum in the lock file ($want)" && exit 1; }
    tar -xzf "$file" -C "$tree.tmp"
    mv "$tree.tmp/$crate-$EVCXR_VERSION" "$tree.tmp/$crate"
done
cp "$build_dir/Cargo.toml" "$build_dir/Cargo.lock" "$tree.tmp/"
for p in "${patches[@]}"; do
    (cd "$tree.tmp" && git apply --whitespace=nowarn -p1 "$patch_dir/$p") ||
        { log "patch $p does not apply to evcxr $EVCXR_VERSION" && exit 1; }
done
rm -rf "$tree"
mv "$tree.tmp" "$tree"
if [[ -n $src_out ]]; then
    rm -rf "$src_out"
    cp -a "$tree" "$src_out"
    log "patched sources in $src_out"
fi
if [[ -x $out ]]; then
    touch -c "${out%/*}"
    echo "$out"
    exit 0
fi

# 3. Build (release, locked, offline: everything was fetched above) and keep the binary under its key.
log "building evcxr_jupyter $EVCXR_VERSION with ${#patches[@]} patch(es) (first time ~15 min on 2 cores; after a patch change ~1 min)"
(cd "$tree" && CARGO_TARGET_DIR=$cache/target "$CARGO" build --release --locked --offline --quiet \
    -p evcxr_jupyter --bin evcxr_jupyter >&2)
mkdir -p "$cache/bin-$key"
cp "$cache/target/release/evcxr_jupyter" "$out.tmp"
mv "$out.tmp" "$out"
rm -rf "$tree"
# Keep the few builds used last (a cache hit here and every kernel start, kernel/launch.sh, mark
# theirs): a machine switching between branches keeps its binaries, and a build for another
# checkout never evicts the one a kernel runs.
find "$cache" -maxdepth 1 -name 'bin-*' -printf '%T@ %p\n' | sort -rn | tail -n +6 | cut -d' ' -f2- | xargs -r rm -rf
log "built $out"
echo "$out"
