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
#    not depend on the upstream image keeping its entrypoint.sh.
#
# Keep TEMPORAL_VERSION in sync with admin-tools.Dockerfile (the schema tool
# must match the server). Upgrades: bump both, deploy, and the schema job runs
# update-schema before/while the new server rolls out.
ARG TEMPORAL_VERSION=1.31.0
FROM temporalio/server:${TEMPORAL_VERSION}

COPY dynamicconfig.yaml /etc/temporal/config/dynamicconfig/docker.yaml
COPY start-server.sh /etc/temporal/chaos-start-server.sh

# frontend gRPC/HTTP, history, matching, worker, and their membership ports.
EXPOSE 7233 7243 7234 7235 7239 6933 6934 6935 6939

# Run through sh so a checkout that lost the executable bit still works.
ENTRYPOINT ["/bin/sh", "/etc/temporal/chaos-start-server.sh"]
CMD []
