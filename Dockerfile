# syntax=docker/dockerfile:1
#
# temporal-chaos: the `chaos` binary (chaos worker, chaos proxy, chaos run ...)
# plus the bundled scenarios and the Python example's scenarios. Used by
# render.yaml (chaos-proxy, chaos-worker, chaos-scenarios cron) and
# compose/docker-compose.yml (chaos-proxy, chaos-worker, chaos-run).
#
#   docker build -t temporal-chaos .
#   docker run --rm temporal-chaos --help          # ENTRYPOINT is `chaos`
#   docker run --rm -e TEMPORAL_ADDRESS=host:7233 temporal-chaos worker

# ---- build ------------------------------------------------------------------
FROM rust:1-bookworm AS builder

# protoc for the Temporal SDK's generated gRPC code. Debian package versions are
# not pinned on purpose (stable point releases only bring security fixes).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends protobuf-compiler \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

# --locked: build exactly the committed Cargo.lock. The cache mounts only speed
# up rebuilds (registry downloads and target/ survive between builds on the same
# builder); the binary is copied out of the cached target/ in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p temporal-chaos --bin chaos \
    && install -m 0755 target/release/chaos /usr/local/bin/chaos \
    && mkdir -p /src/scenarios /src/examples/python-worker/scenarios

# ---- runtime ----------------------------------------------------------------
FROM debian:bookworm-slim

# ca-certificates: TLS to Temporal Cloud or an HTTPS webhook. curl: to look at
# chaos-proxy's admin listener by hand from a service's Shell
# (`curl http://127.0.0.1:7240/health`, docs/deploy-render.md).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*

# Unprivileged user with a fixed uid/gid (10001) so mounted volumes can be
# chowned predictably. /app is its home and working directory, so run reports
# written relative to the working directory are writable.
RUN groupadd --system --gid 10001 chaos \
    && useradd --system --uid 10001 --gid chaos --home-dir /app --create-home \
        --shell /usr/sbin/nologin chaos

COPY --from=builder /usr/local/bin/chaos /usr/local/bin/chaos
# Copied from the builder, where `mkdir -p` guarantees the folders exist, so a
# checkout without them still builds. The cron job runs both. The Python
# scenarios keep their path (their `[worker]` has cwd = "../..", which scenario
# validation checks is a directory: /app/examples/python-worker); with
# --external-worker that worker is not started: the deployed python-worker
# polls their task queue.
COPY --from=builder --chown=10001:10001 /src/scenarios /app/scenarios
COPY --from=builder --chown=10001:10001 /src/examples/python-worker/scenarios \
    /app/examples/python-worker/scenarios

WORKDIR /app
USER 10001:10001

ENTRYPOINT ["chaos"]
CMD ["worker"]
