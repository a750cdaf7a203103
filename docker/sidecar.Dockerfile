# syntax=docker/dockerfile:1
# The sidecar with the example Proxy-Wasm plugins built in. Build context: the repository root
#   docker build -f docker/sidecar.Dockerfile -t redside-sidecar .
# (docker-compose.yml does this). docker/sidecar.Dockerfile.dockerignore keeps target/ out.

FROM rust:1.95.0-slim-bookworm AS plugins
WORKDIR /src
# Docker build machines have internet: rustup's wasm target instead of Debian's -Zbuild-std.
RUN rustup target add wasm32-unknown-unknown
COPY plugins ./plugins
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    PLUGINS_TOOLCHAIN=rustup PLUGINS_ASSEMBLYSCRIPT=skip plugins/build

# The AssemblyScript example, as plugins/build builds it: locked npm packages, then asc.
FROM node:20.18.1-bookworm-slim AS as-plugins
WORKDIR /src/plugins/as-status
COPY plugins/as-status/package.json plugins/as-status/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY plugins/as-status/assembly ./assembly
RUN npm run build

FROM rust:1.95.0-slim-bookworm AS builder
WORKDIR /src
# The whole workspace (every member's manifest is needed to resolve it); the .dockerignore
# next to this file keeps target/, .stack/ and .git/ out.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p sidecar --bin sidecar \
    && cp target/release/sidecar /usr/local/bin/sidecar

FROM debian:12.8-slim AS runtime
# Same layout as the repository, so config/sidecar.toml finds plugins/dist/*.wasm unchanged.
WORKDIR /app
COPY --from=builder /usr/local/bin/sidecar /usr/local/bin/sidecar
COPY --from=plugins /src/plugins/dist ./plugins/dist
COPY --from=as-plugins /src/plugins/as-status/build/as-status.wasm ./plugins/dist/as-status.wasm
COPY config/sidecar.toml ./config/sidecar.toml
USER 65532:65532
ENV SIDECAR_LISTEN=0.0.0.0:8080 \
    SIDECAR_ADMIN_LISTEN=0.0.0.0:9901 \
    SIDECAR_CONFIG=/app/config/sidecar.toml
EXPOSE 8080 9901
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=10 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9901 && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200'"]
ENTRYPOINT ["/usr/local/bin/sidecar"]
