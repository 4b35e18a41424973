# Sourced by scripts/docker-up.sh and scripts/test.sh once a Docker daemon answers: when
# CHAOS_TEMPORAL_IMAGE is unset, names the local dev-server image
# temporal-chaos/temporal-dev:<cli version>, builds it FROM scratch from the pip-installed
# `temporal` binary (no image can be pulled here) unless it exists already, and exports
# CHAOS_TEMPORAL_IMAGE for the testcontainers tests. An image the caller names is left alone.

if [ -z "${CHAOS_TEMPORAL_IMAGE:-}" ]; then
  CHAOS_TEMPORAL_IMAGE="temporal-chaos/temporal-dev:$("${CHAOS_TEMPORAL_BIN:-temporal}" --version | sed -E 's/^temporal version ([^ ]+).*/\1/')"
  export CHAOS_TEMPORAL_IMAGE
  if ! docker image inspect "$CHAOS_TEMPORAL_IMAGE" >/dev/null 2>&1; then
    echo "[docker] building $CHAOS_TEMPORAL_IMAGE" >&2
    TEMPORAL_BIN="${CHAOS_TEMPORAL_BIN:-}" compose/dev/build-image.sh >/dev/null
  fi
fi
