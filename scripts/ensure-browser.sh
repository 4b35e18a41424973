# Sourced by scripts/test.sh: installs Debian's Chromium (headless, for the browser checks of the
# HTML report and the Temporal UI links) when it is missing.
if [ -z "${CHAOS_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  echo "[setup] installing chromium (Debian package) for the browser checks" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
fi
