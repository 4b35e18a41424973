#!/bin/sh
# Wait until the PostgreSQL persistence schema is at least the version this
# Temporal server expects, then return. Called by start-server.sh before
# `temporal-server start`, in docker compose and on Render alike.
#
# Why: on a first deploy or an upgrade, the roles start while the schema job
# (setup-temporal.sh) is still creating or upgrading the schema. The server
# then exits on its version check ("version mismatch for keyspace/database"),
# and Render restarts it only until the deploy times out. Waiting here, with a
# bounded backoff and a log line per attempt, turns that race into a delay.
#
# The check is the server's own (temporalio/temporal
# common/persistence/sql/sqlplugin/postgresql/admin.go, readSchemaVersionQuery;
# common/persistence/schema/version.go, VerifyCompatibleVersion): read
#   SELECT curr_version FROM schema_version
#   WHERE version_partition = 0 AND db_name = <DBNAME>
# and accept it when it is >= the expected version. The expected version is
# the newest directory under the versioned schema that ships with the same
# Temporal release (copied from temporalio/admin-tools into the server image
# by server.Dockerfile), so an upgrade needs no second number to bump.
#
# Environment (the server's own variables, see start-server.sh):
#   DB                 only postgres12 / postgres12_pgx are checked; others skip
#   POSTGRES_SEEDS, DB_PORT (5432), POSTGRES_USER, POSTGRES_PWD, DBNAME (temporal)
#   SCHEMA_WAIT_SECONDS  give up after this long (default 900), exit 1
#   SCHEMA_WAIT_MAX_DELAY longest pause between attempts (default 30 s)
#   TEMPORAL_SCHEMA_VERSIONS_DIR  versioned schema directory (default below)
#   SKIP_SCHEMA_WAIT   "true": do not wait (the server's own check still runs)
set -eu

log() { printf '%s wait-for-schema: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }

if [ "${SKIP_SCHEMA_WAIT:-false}" = "true" ]; then
    log "SKIP_SCHEMA_WAIT=true, not waiting"
    exit 0
fi
case "${DB:-}" in
    postgres12 | postgres12_pgx) ;;
    *)
        log "DB=${DB:-<unset>} is not a PostgreSQL plugin; not waiting"
        exit 0
        ;;
esac

: "${POSTGRES_SEEDS:?POSTGRES_SEEDS (PostgreSQL or PgBouncer host) is required}"
: "${POSTGRES_USER:?POSTGRES_USER is required}"
port="${DB_PORT:-5432}"
dbname="${DBNAME:-temporal}"
versions_dir="${TEMPORAL_SCHEMA_VERSIONS_DIR:-/etc/temporal/schema/postgresql/v12/temporal/versioned}"
wait_seconds="${SCHEMA_WAIT_SECONDS:-900}"
max_delay="${SCHEMA_WAIT_MAX_DELAY:-30}"

# Newest vX.Y directory name without the "v".
expected="$(for dir in "${versions_dir}"/v*; do [ -d "${dir}" ] && basename "${dir}"; done \
    | sed -n 's/^v\([0-9][0-9]*\.[0-9][0-9]*\)$/\1/p' | sort -t. -k1,1n -k2,2n | tail -n 1)"
if [ -z "${expected}" ]; then
    log "ERROR: no vX.Y schema directories in ${versions_dir}; cannot tell which schema version to wait for"
    exit 1
fi

# at_least A B: true when version A >= version B (numeric, dot-separated).
at_least() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        na = split(a, x, "."); nb = split(b, y, ".");
        n = (na > nb) ? na : nb;
        for (i = 1; i <= n; i++) {
            if ((x[i] + 0) > (y[i] + 0)) exit 0;
            if ((x[i] + 0) < (y[i] + 0)) exit 1;
        }
        exit 0
    }'
}

# Prints the schema version, empty when the row or table is missing; fails when
# PostgreSQL cannot be queried. The database name is passed as a psql variable
# (quoted by psql), never pasted into the SQL.
current_version() {
    printf '%s\n' "SELECT curr_version FROM schema_version WHERE version_partition = 0 AND db_name = :'db';" \
        | PGPASSWORD="${POSTGRES_PWD:-}" PGCONNECT_TIMEOUT=5 psql -X -q -A -t -v ON_ERROR_STOP=1 \
            -v db="${dbname}" -h "${POSTGRES_SEEDS}" -p "${port}" -U "${POSTGRES_USER}" -d "${dbname}" 2>&1
}

where="database ${dbname} at ${POSTGRES_SEEDS}:${port}"
deadline=$(( $(date +%s) + wait_seconds ))
delay=1
while :; do
    if found="$(current_version)"; then
        found="$(printf '%s' "${found}" | tr -d '[:space:]')"
        if [ -n "${found}" ] && at_least "${found}" "${expected}"; then
            log "schema version ${found} of ${where} is at least ${expected}; starting"
            exit 0
        fi
        state="schema version ${found:-<none: no schema_version row yet>}"
    else
        case "${found}" in
            *schema_version*does\ not\ exist*) state="no schema_version table yet" ;;
            *) state="cannot query: $(printf '%s' "${found}" | head -n 1)" ;;
        esac
    fi
    now="$(date +%s)"
    if [ "${now}" -ge "${deadline}" ]; then
        log "ERROR: gave up after ${wait_seconds}s waiting for schema version >= ${expected} in ${where} (${state})." \
            "Check the schema job's log (temporal-schema-setup)."
        exit 1
    fi
    left=$(( deadline - now ))
    pause="${delay}"
    [ "${pause}" -le "${left}" ] || pause="${left}"
    log "waiting for schema version >= ${expected} in ${where} (${state}); next check in ${pause}s, giving up in ${left}s"
    sleep "${pause}"
    delay=$(( delay * 2 ))
    [ "${delay}" -le "${max_delay}" ] || delay="${max_delay}"
done
