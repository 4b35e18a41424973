# Temporal server image for temporal-chaos: the official image plus a start
# script and our dynamic config. Built by compose/docker-compose.yml and by the
# four Temporal services in render.yaml (build context: compose/temporal).
#
# Why a thin wrapper instead of running temporalio/server directly:
#  * the 1.30+ image reads dynamic config from
#    /etc/temporal/config/dynamicconfig/docker.yaml by default and does not
#    ship that file; Render image-backed services cannot mount files;
#  * the broadcast address logic lives in a script we control, so no shell
#    one-liner has to go through Render's dockerCommand parsing, and it does
#    not depend on the upstream image keeping its entrypoint.sh;
#  * each role waits for the database schema before starting
#    (wait-for-schema.sh, psql + the release's versioned schema directory)
#    instead of crash-looping until the schema job has run.
#
# Keep TEMPORAL_VERSION in sync with admin-tools.Dockerfile (the schema tool
# must match the server). Upgrades: bump both, deploy; the schema job runs
# update-schema while the new roles wait for the new schema version.
ARG TEMPORAL_VERSION=1.31.0
# The versioned PostgreSQL schema of the same release: wait-for-schema.sh takes
# the version to wait for from its newest directory.
FROM temporalio/admin-tools:${TEMPORAL_VERSION} AS schema
FROM temporalio/server:${TEMPORAL_VERSION}

# psql for wait-for-schema.sh (the server image is Alpine and runs as user
# temporal). The Alpine package is not pinned: it follows the base image.
USER root
# hadolint ignore=DL3018
RUN apk add --no-cache postgresql-client
USER temporal

COPY --from=schema /etc/temporal/schema/postgresql/v12/temporal/versioned \
    /etc/temporal/schema/postgresql/v12/temporal/versioned
COPY dynamicconfig.yaml /etc/temporal/config/dynamicconfig/docker.yaml
COPY start-server.sh /etc/temporal/chaos-start-server.sh
COPY wait-for-schema.sh /etc/temporal/chaos-wait-for-schema.sh

# frontend gRPC/HTTP, history, matching, worker, and their membership ports.
EXPOSE 7233 7243 7234 7235 7239 6933 6934 6935 6939

# Run through sh so a checkout that lost the executable bit still works.
ENTRYPOINT ["/bin/sh", "/etc/temporal/chaos-start-server.sh"]
CMD []
