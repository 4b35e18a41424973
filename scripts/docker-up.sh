# Sourced by .ci/run: makes a Docker daemon answer and the local dev-server image exist.
#   - installs Debian's docker.io when there is no dockerd;
#   - starts `dockerd --bridge=none --iptables=false --ip-masq=false` when no daemon answers
#     (containers then use host networking only), and sets DOCKERD_STARTED_PID so the caller
#     can stop it;
#   - builds the local dev-server image and exports CHAOS_TEMPORAL_IMAGE (scripts/docker-image.sh).

if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null 2>&1; then
    echo "[docker] installing docker.io" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq docker.io >/dev/null
  fi
  echo "[docker] starting dockerd (no bridge, host networking only)" >&2
  # Started directly (not through a shell function) so that $! is dockerd itself (or sudo, which
  # passes signals on) and the caller's kill stops it.
  if [ "$(id -u)" = 0 ]; then
    dockerd --bridge=none --iptables=false --ip-masq=false >/tmp/temporal-chaos-dockerd.log 2>&1 &
  else
    sudo dockerd --bridge=none --iptables=false --ip-masq=false >/tmp/temporal-chaos-dockerd.log 2>&1 &
  fi
  DOCKERD_STARTED_PID=$!
  export DOCKERD_STARTED_PID
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "[docker] dockerd did not come up; see /tmp/temporal-chaos-dockerd.log" >&2; return 1; }
fi

source scripts/docker-image.sh
