# Sourced by scripts/test.sh: installs Debian's PostgreSQL server when it is missing. The test of
# compose/temporal/wait-for-schema.sh (the Temporal roles' start-order guard) runs a throwaway
# server on a loopback port; nothing is started as a service.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "[setup] installing postgresql (Debian package) for the schema-wait test" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null
fi
