#!/bin/sh
# Build the optional AF_VSOCK addon (Linux only). Never fails: without it vsock:// agents are reported as
# VSOCK_UNAVAILABLE and those sandboxes fall back to the shim. Uses node-gyp (on PATH or the copy bundled with
# npm) against the installed node headers, else a direct cc build.
cd "$(dirname "$0")" || exit 0
[ "$(uname -s)" = Linux ] || { echo "vsock addon: not Linux, skipped"; exit 0; }
out=build/Release/vsock.node
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
if [ -n "$gyp" ]; then
  nodedir_arg=""
  [ -n "$inc" ] && nodedir_arg="--nodedir=$(dirname "$(dirname "$inc")")"
  if $gyp rebuild $nodedir_arg >/dev/null 2>&1 && [ -f "$out" ]; then
    echo "vsock addon: built with node-gyp ($out)"; exit 0
  fi
fi
if [ -z "$inc" ]; then echo "vsock addon: node headers not found, skipped"; exit 0; fi
mkdir -p build/Release
if ${CC:-cc} -O2 -Wall -Wextra -fPIC -shared -DNODE_GYP_MODULE_NAME=vsock -I"$inc" -o "$out" src/vsock.c -lpthread; then
  echo "vsock addon: built with ${CC:-cc} ($out)"
else
  echo "vsock addon: build failed, skipped (vsock:// agents will be reported as unavailable)"
fi
exit 0
