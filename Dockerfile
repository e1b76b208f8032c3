# syntax=docker/dockerfile:1
# kata-monitor (TypeScript) container image.
#
# The steps are the commands CI runs on every change (`npm ci`, which builds dist/ through the
# `prepare` script, then `node bin/kata-monitor`), so the image build is exercised indirectly even
# though the project's machines have no Docker engine. test/deploy/dockerfile.test.ts checks the
# stages, the entrypoint, the exposed port and that every COPY source exists.
#
#   docker build --build-arg KATA_MONITOR_COMMIT="$(git rev-parse HEAD)" -t kata-monitor:0.1.0 .

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- stage 1: build --------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
# Manifests first so the dependency layer is cached while only sources change.
COPY package.json package-lock.json ./
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY proto ./proto
COPY bin ./bin
COPY native ./native
# `npm ci` installs the locked dependencies and runs `prepare` (= `npm run build`: tsc -> dist/).
RUN npm ci --no-audit --no-fund
# Keep only what the daemon needs at run time.
RUN npm prune --omit=dev --no-audit --no-fund

# ---- stage 2: runtime ------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ARG KATA_MONITOR_COMMIT=unknown
# NODE_ENV=production: express drops its development niceties; KATA_MONITOR_COMMIT feeds
# kata_monitor_build_info{commit} and `--version` (src/version.ts). MALLOC_MMAP_THRESHOLD_: the C heap
# half of --small-heap (src/malloc-tuning.ts), which the daemon sets through native/malloc where a compiler
# built it; this image has none, so glibc takes it from the environment (a DaemonSet env entry overrides it).
ENV NODE_ENV=production \
    MALLOC_MMAP_THRESHOLD_=65536 \
    KATA_MONITOR_COMMIT=${KATA_MONITOR_COMMIT}
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/bin ./bin
COPY --from=build /src/proto ./proto
# The optional AF_VSOCK addon (for vsock:// agents, i.e. QEMU); without a compiler in the build image its
# build is skipped and those sandboxes are served by their shim only.
COPY --from=build /src/native ./native

# Root on purpose: the shim management sockets (/run/vc/sbs/<id>/shim-monitor.sock,
# /run/kata/<id>/shim-monitor.sock), the hybrid-vsock agent sockets under /run/vc/vm and the
# CRI socket are owned by root with mode 0600/0660, and the host collector reads /proc/<pid> of
# the root-owned shim and hypervisor processes. A non-root user could see none of it. The
# DaemonSet still drops every capability it does not need and mounts all host paths read-only.
USER root

# 8090 is kata-monitor's well-known port (the DaemonSet listens on 0.0.0.0:8090).
EXPOSE 8090

# Cheap liveness: /healthz never touches a shim. Assumes the port is 8090 (the default and the
# DaemonSet's); Kubernetes ignores HEALTHCHECK and uses the probes of the DaemonSet instead.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8090/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# bin/kata-monitor calls dist/cli.js's run(argv); flags go in the DaemonSet's `args`.
ENTRYPOINT ["node", "/app/bin/kata-monitor"]
