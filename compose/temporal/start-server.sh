#!/bin/sh
# Start one Temporal server role (frontend, history, matching or worker).
#
# Used as the entrypoint of compose/temporal/server.Dockerfile, which both
# compose/docker-compose.yml and render.yaml build, so the laptop stack and the
# Render stack start Temporal exactly the same way: work out the broadcast
# address, wait for the database schema (wait-for-schema.sh), then exec
# temporal-server.
#
# Everything else is configured through environment variables read by the
# server's embedded config template (DB, POSTGRES_SEEDS, DB_PORT, POSTGRES_USER,
# POSTGRES_PWD, DBNAME, ENABLE_ES, ES_SEEDS, ES_PORT, ES_USER, ES_PWD,
# ES_VERSION, ES_VIS_INDEX, BIND_ON_IP, TEMPORAL_BROADCAST_ADDRESS,
# NUM_HISTORY_SHARDS, DYNAMIC_CONFIG_FILE_PATH, ...). Since server 1.30 the
# image has no dockerize step: `temporal-server start` without --config/--env
# renders that embedded template itself, and the roles come from
# TEMPORAL_SERVICES (the old SERVICES variable is gone).
set -eu

log() { printf 'start-server: %s\n' "$*" >&2; }

if [ -z "${TEMPORAL_SERVICES:-}" ]; then
    log "TEMPORAL_SERVICES is not set (expected frontend, history, matching or worker)"
    exit 64
fi

# Listen on every interface so the other roles (and Render's private network)
# can reach the gRPC and membership ports.
BIND_ON_IP="${BIND_ON_IP:-0.0.0.0}"

# When binding to a wildcard address the server must be told which address to
# advertise to its peers in the membership ring (ports 6933-6939). Use this
# container's own address, resolved the same way the upstream image's
# entrypoint does (getent on the hostname), with `hostname -i` as a fallback.
if [ -z "${TEMPORAL_BROADCAST_ADDRESS:-}" ]; then
    addr="$(getent hosts "$(hostname)" 2>/dev/null | awk 'NR == 1 { print $1 }')" || addr=""
    if [ -z "${addr}" ]; then
        addr="$(hostname -i 2>/dev/null | awk '{ print $1 }')" || addr=""
    fi
    if [ -z "${addr}" ]; then
        log "cannot determine this container's IP address; set TEMPORAL_BROADCAST_ADDRESS"
        exit 1
    fi
    TEMPORAL_BROADCAST_ADDRESS="${addr}"
fi

case "${TEMPORAL_BROADCAST_ADDRESS}" in
    127.* | ::1)
        log "WARNING: broadcast address ${TEMPORAL_BROADCAST_ADDRESS} is loopback;" \
            "other Temporal roles cannot reach it. Set TEMPORAL_BROADCAST_ADDRESS."
        ;;
    *:*)
        # An IPv6 broadcast address needs an IPv6 (dual-stack) listener.
        if [ "${BIND_ON_IP}" = "0.0.0.0" ]; then
            log "broadcast address is IPv6, binding on :: instead of 0.0.0.0"
            BIND_ON_IP="::"
        fi
        ;;
esac

export BIND_ON_IP TEMPORAL_BROADCAST_ADDRESS
log "roles=${TEMPORAL_SERVICES} bind=${BIND_ON_IP} broadcast=${TEMPORAL_BROADCAST_ADDRESS}"

# Wait (bounded, logged) until the schema job has brought the database to the
# version this server expects, instead of exiting on the server's own version
# check and being restarted until the deploy times out.
sh "$(dirname "$0")/chaos-wait-for-schema.sh"

exec temporal-server start
