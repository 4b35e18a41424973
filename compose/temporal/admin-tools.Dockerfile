# Temporal admin-tools image plus our idempotent bootstrap script
# (setup-temporal.sh): schema creation/upgrade for PostgreSQL and Elasticsearch,
# then the default namespace. Built by compose/docker-compose.yml
# (the temporal-schema-setup one-shot service) and by the
# temporal-schema-setup worker in render.yaml (build context: compose/temporal).
#
# The 1.30+ admin-tools image ships temporal, temporal-sql-tool,
# temporal-elasticsearch-tool and the schema files under /etc/temporal/schema
# (it no longer ships curl, hence temporal-elasticsearch-tool for the index).
#
# Keep TEMPORAL_VERSION equal to the one in server.Dockerfile.
ARG TEMPORAL_VERSION=1.31.0
FROM temporalio/admin-tools:${TEMPORAL_VERSION}

COPY setup-temporal.sh /etc/temporal/chaos-setup-temporal.sh

# Run through sh so a checkout that lost the executable bit still works.
ENTRYPOINT ["/bin/sh", "/etc/temporal/chaos-setup-temporal.sh"]
CMD []
