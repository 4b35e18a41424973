#!/bin/sh
# Idempotent bootstrap of a self-hosted Temporal cluster:
#
#   schema     create/upgrade the Elasticsearch visibility template + index
#              (temporal-elasticsearch-tool), then the PostgreSQL persistence
#              schema (temporal-sql-tool, plugin postgres12), whose version
#              the Temporal roles wait for;
#   namespace  wait for the frontend, then create the namespace the chaos
#              worker uses (there is no auto-setup image any more, so nobody
#              else creates "default").
#
# Used as the entrypoint of compose/temporal/admin-tools.Dockerfile, which is
# built by both compose/docker-compose.yml (a one-shot service running both
# steps, then exiting) and render.yaml (a background worker running both
# steps, then idling so Render does not restart it in a loop). The Temporal
# roles meanwhile wait for the schema (wait-for-schema.sh), so the frontend
# the "namespace" step waits for comes up once the "schema" step is done.
#
# Every step is safe to re-run: setup-schema -v 0.0 leaves an already newer
# schema alone, update-schema only applies missing versions, the index is only
# created when it does not exist yet, and the namespace only when missing.
#
# Environment:
#   TEMPORAL_SETUP_STEPS   steps to run, in order (default: "schema namespace")
#   IDLE_AFTER_SETUP       "true": sleep forever after success (Render worker)
#   SETUP_WAIT_SECONDS     how long to wait for each dependency (default 600)
#   POSTGRES_SEEDS, DB_PORT, POSTGRES_USER, SQL_PASSWORD (or POSTGRES_PWD),
#   DBNAME (default temporal), VISIBILITY_DBNAME (optional: SQL visibility DB,
#   not needed when Elasticsearch holds visibility), SKIP_DB_CREATE ("true"
#   when the database already exists and the user may not CREATE DATABASE,
#   e.g. a Render PostgreSQL instance)
#   ENABLE_ES (default true), ES_SERVER or ES_SCHEME/ES_SEEDS/ES_PORT, ES_USER,
#   ES_PWD, ES_VISIBILITY_INDEX (or ES_VIS_INDEX)
#   TEMPORAL_ADDRESS (frontend host:port), DEFAULT_NAMESPACE (or
#   TEMPORAL_NAMESPACE, default "default"), DEFAULT_NAMESPACE_RETENTION (72h)
set -eu

log() { printf '%s setup-temporal: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

STEPS="${TEMPORAL_SETUP_STEPS:-schema namespace}"
WAIT_SECONDS="${SETUP_WAIT_SECONDS:-600}"
# Absolute path: the 1.30+ admin-tools image copies the schema files to
# /etc/temporal/schema and sets no WORKDIR, so ./schema/... would not resolve.
SCHEMA_DIR="${TEMPORAL_SCHEMA_DIR:-/etc/temporal/schema}"

# wait_for DESCRIPTION COMMAND [ARGS...]: retry COMMAND until it succeeds.
wait_for() {
    desc="$1"
    shift
    deadline=$(( $(date +%s) + WAIT_SECONDS ))
    until "$@" >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge "${deadline}" ]; then
            log "last attempt for ${desc}:"
            "$@" >&2 || true
            die "timed out after ${WAIT_SECONDS}s waiting for ${desc}"
        fi
        log "waiting for ${desc} ..."
        sleep 3
    done
    log "${desc} is reachable"
}

sql_tool() {
    temporal-sql-tool --plugin postgres12 \
        --ep "${POSTGRES_SEEDS}" -p "${DB_PORT}" -u "${POSTGRES_USER}" "$@"
}

setup_sql_database() {
    db="$1"
    versioned_dir="$2"
    if [ "${SKIP_DB_CREATE:-false}" != "true" ]; then
        # PostgreSQL has no CREATE DATABASE IF NOT EXISTS; a failure here most
        # often means "already exists". If the database is really missing,
        # setup-schema below fails loudly.
        sql_tool --db "${db}" create \
            || log "create database ${db} failed (already exists?), continuing"
    fi
    sql_tool --db "${db}" setup-schema -v 0.0
    sql_tool --db "${db}" update-schema -d "${versioned_dir}"
    log "PostgreSQL database ${db} is at the latest schema version"
}

step_schema() {
    : "${POSTGRES_SEEDS:?POSTGRES_SEEDS (PostgreSQL host) is required}"
    : "${POSTGRES_USER:?POSTGRES_USER is required}"
    DB_PORT="${DB_PORT:-5432}"
    # temporal-sql-tool reads the password from SQL_PASSWORD, which keeps it
    # out of the process list.
    SQL_PASSWORD="${SQL_PASSWORD:-${POSTGRES_PWD:-}}"
    [ -n "${SQL_PASSWORD}" ] || die "SQL_PASSWORD (or POSTGRES_PWD) is required"
    export SQL_PASSWORD

    wait_for "PostgreSQL at ${POSTGRES_SEEDS}:${DB_PORT}" \
        nc -z -w 3 "${POSTGRES_SEEDS}" "${DB_PORT}"

    # Elasticsearch first: the Temporal roles start as soon as the SQL schema
    # reaches their version (wait-for-schema.sh), and by then the visibility
    # template and index must exist (a write to a missing index would make
    # Elasticsearch create it without Temporal's mappings).
    if [ "${ENABLE_ES:-true}" = "true" ]; then
        step_elasticsearch
    fi

    if [ -n "${VISIBILITY_DBNAME:-}" ]; then
        setup_sql_database "${VISIBILITY_DBNAME}" \
            "${SCHEMA_DIR}/postgresql/v12/visibility/versioned"
    fi
    setup_sql_database "${DBNAME:-temporal}" \
        "${SCHEMA_DIR}/postgresql/v12/temporal/versioned"
}

step_elasticsearch() {
    # temporal-elasticsearch-tool (shipped in admin-tools since 1.30, which no
    # longer ships curl) reads ES_SERVER, ES_USER, ES_PWD, ES_VISIBILITY_INDEX.
    if [ -z "${ES_SERVER:-}" ]; then
        : "${ES_SEEDS:?ES_SERVER or ES_SEEDS (Elasticsearch host) is required}"
        ES_SERVER="${ES_SCHEME:-http}://${ES_SEEDS}:${ES_PORT:-9200}"
    fi
    ES_VISIBILITY_INDEX="${ES_VISIBILITY_INDEX:-${ES_VIS_INDEX:-temporal_visibility_v1}}"
    ES_USER="${ES_USER:-}"
    ES_PWD="${ES_PWD:-}"
    export ES_SERVER ES_USER ES_PWD ES_VISIBILITY_INDEX

    wait_for "Elasticsearch at ${ES_SERVER}" temporal-elasticsearch-tool ping

    # Cluster settings + index template (PUT, so re-running is harmless).
    temporal-elasticsearch-tool setup-schema
    # update-schema --index fails when the index does not exist yet; that is
    # the only case where we create it. Any other error (auth, network) makes
    # create-index fail too, and the script stops.
    if temporal-elasticsearch-tool update-schema --index "${ES_VISIBILITY_INDEX}"; then
        log "visibility index ${ES_VISIBILITY_INDEX} exists, mappings updated"
    else
        temporal-elasticsearch-tool create-index --index "${ES_VISIBILITY_INDEX}"
        log "visibility index ${ES_VISIBILITY_INDEX} created"
    fi
}

# Print host:port with the host resolved to an IPv4 address when possible
# (the upstream compose samples do the same to avoid CLI resolution issues).
resolve_address() {
    host="${1%:*}"
    port="${1##*:}"
    ip="$(getent ahosts "${host}" 2>/dev/null \
        | awk '$1 ~ /^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$/ { print $1; exit }')" || ip=""
    if [ -n "${ip}" ]; then
        printf '%s:%s\n' "${ip}" "${port}"
    else
        printf '%s\n' "$1"
    fi
}

frontend_healthy() {
    temporal operator cluster health --address "$(resolve_address "${TEMPORAL_ADDRESS}")"
}

step_namespace() {
    : "${TEMPORAL_ADDRESS:?TEMPORAL_ADDRESS (frontend host:port) is required}"
    namespace="${DEFAULT_NAMESPACE:-${TEMPORAL_NAMESPACE:-default}}"
    retention="${DEFAULT_NAMESPACE_RETENTION:-72h}"

    # Resolve on every attempt: the frontend may still be (re)starting.
    wait_for "Temporal frontend at ${TEMPORAL_ADDRESS}" frontend_healthy
    address="$(resolve_address "${TEMPORAL_ADDRESS}")"

    if temporal operator namespace describe --namespace "${namespace}" \
        --address "${address}" >/dev/null 2>&1; then
        log "namespace ${namespace} already exists"
    else
        temporal operator namespace create --namespace "${namespace}" \
            --retention "${retention}" --address "${address}"
        log "namespace ${namespace} created (retention ${retention})"
    fi
}

for step in ${STEPS}; do
    case "${step}" in
        schema) step_schema ;;
        namespace) step_namespace ;;
        *) die "unknown step '${step}' in TEMPORAL_SETUP_STEPS (use schema, namespace)" ;;
    esac
done
log "done: ${STEPS}"

if [ "${IDLE_AFTER_SETUP:-false}" = "true" ]; then
    # Render has no one-shot job type in Blueprints: a background worker that
    # exits is restarted, so stay up (cheaply) until the next deploy. Sleeping
    # in the background and waiting lets SIGTERM end the container at once.
    log "idling until the next deploy"
    sleep_pid=""
    trap 'kill "${sleep_pid}" 2>/dev/null; exit 0' INT TERM HUP
    while :; do
        sleep 3600 &
        sleep_pid=$!
        wait "${sleep_pid}" || true
    done
fi
