#!/bin/sh
# Temporal's schema on PostgreSQL, run by the one-shot `temporal-schema` service (admin-tools
# image) before the server starts: each database is created, set up at 0.0, then updated to the
# schema this admin-tools version ships. Every step is idempotent (an existing database, or a
# schema already newer, is left as it is), so this runs at every `docker compose up`, and moving
# the images to a new version upgrades the schema first. The shape of Temporal's samples-server
# compose/scripts/setup-postgres.sh.
set -eu

: "${POSTGRES_SEEDS:?POSTGRES_SEEDS is required}"
: "${POSTGRES_USER:?POSTGRES_USER is required}"
: "${SQL_PASSWORD:?SQL_PASSWORD is required}"  # temporal-sql-tool reads it from the environment
PORT=${DB_PORT:-5432}
SCHEMA=/etc/temporal/schema/postgresql/v12

until nc -z -w 10 "$POSTGRES_SEEDS" "$PORT"; do
  echo "waiting for PostgreSQL at $POSTGRES_SEEDS:$PORT"
  sleep 1
done

sql_tool() {  # sql_tool DATABASE COMMAND [ARGS...]
  database=$1
  shift
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -u "$POSTGRES_USER" -p "$PORT" \
    --db "$database" "$@"
}

sql_tool temporal create
sql_tool temporal setup-schema -v 0.0
sql_tool temporal update-schema -d "$SCHEMA/temporal/versioned"

sql_tool temporal_visibility create
sql_tool temporal_visibility setup-schema -v 0.0
sql_tool temporal_visibility update-schema -d "$SCHEMA/visibility/versioned"

echo "Temporal's schema is current"
