#!/bin/sh
# Build kata-monitor's optional native addons (Linux only):
#   vsock   AF_VSOCK bridge for vsock:// agents (native/vsock/README.md)
#   malloc  glibc mmap threshold for the small-heap profile (native/malloc/README.md)
# Never fails: without an addon its feature reports itself unavailable and the daemon runs on. Uses node-gyp
# (on PATH or the copy bundled with npm) against the installed node headers, else a direct cc build.
cd "$(dirname "$0")" || exit 0
[ "$(uname -s)" = Linux ] || { echo "native addons: not Linux, skipped"; exit 0; }
inc=""
for d in "$(dirname "$(dirname "$(command -v node)")")/include/node" /usr/include/node /usr/local/include/node; do
  [ -f "$d/node_api.h" ] && { inc="$d"; break; }
done
gyp=""
if command -v node-gyp >/dev/null 2>&1; then
  gyp="node-gyp"
elif command -v npm >/dev/null 2>&1; then
  bundled="$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"
  [ -f "$bundled" ] && gyp="node $bundled"
fi
nodedir_arg=""
[ -n "$inc" ] && nodedir_arg="--nodedir=$(dirname "$(dirname "$inc")")"

# build <dir> <target> <source> [libs]: native/<dir>/build/Release/<target>.node
build() {
  dir=$1 target=$2 src=$3 libs=$4
  out=build/Release/$target.node
  (
    cd "$dir" || exit 0
    if [ -n "$gyp" ] && $gyp rebuild $nodedir_arg >/dev/null 2>&1 && [ -f "$out" ]; then
      echo "$dir addon: built with node-gyp (native/$dir/$out)"; exit 0
    fi
    if [ -z "$inc" ]; then echo "$dir addon: node headers not found, skipped"; exit 0; fi
    mkdir -p build/Release
    if ${CC:-cc} -O2 -Wall -Wextra -fPIC -shared -DNODE_GYP_MODULE_NAME="$target" -I"$inc" -o "$out" "$src" $libs; then
      echo "$dir addon: built with ${CC:-cc} (native/$dir/$out)"
    else
      echo "$dir addon: build failed, skipped"
    fi
  )
}

build vsock vsock src/vsock.c -lpthread
build malloc malloc_tune src/malloc_tune.c
exit 0
