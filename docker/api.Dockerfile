# syntax=docker/dockerfile:1
# The items API. Build context: the repository root
#   docker build -f docker/api.Dockerfile -t redside-api .
# (docker-compose.yml does this). docker/api.Dockerfile.dockerignore keeps target/ out.

FROM rust:1.95.0-slim-bookworm AS builder
WORKDIR /src
# The whole workspace (every member's manifest is needed to resolve it); the .dockerignore
# next to this file keeps target/, .stack/ and .git/ out.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p api --bin api \
    && cp target/release/api /usr/local/bin/api

FROM debian:12.8-slim AS runtime
COPY --from=builder /usr/local/bin/api /usr/local/bin/api
USER 65532:65532
ENV API_LISTEN=0.0.0.0:8000
EXPOSE 8000
# No curl in the slim image: bash's /dev/tcp is enough to ask /readyz for a 200.
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=10 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8000 && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200'"]
ENTRYPOINT ["/usr/local/bin/api"]
