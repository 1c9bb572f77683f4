#!/bin/sh
# Creates the Temporal server's two PostgreSQL databases (history and visibility) and brings their
# schemas to the version this temporal-sql-tool carries. Idempotent: every step leaves a database
# that is already there, or already at that version, as it is. The same script upgrades: after a
# new server version, run it with that version's temporal-sql-tool before starting the new server
# (docs/DEPLOYMENT.md). Run by docker-compose.yml's temporal-schema service (temporalio/admin-tools)
# and by `npm run cluster` (the temporal-sql-tool it builds), with the same variables as the
# server's config, temporal/server/production.yaml.
set -eu
: "${POSTGRES_SEEDS:?set POSTGRES_SEEDS to the PostgreSQL host}"
: "${POSTGRES_USER:?set POSTGRES_USER}"
sql_tool="${TEMPORAL_SQL_TOOL:-temporal-sql-tool}"

sql() { # <database> <command and its flags…>
  db="$1"
  shift
  # The tool reads the password from SQL_PASSWORD, which keeps it off the command line.
  SQL_PASSWORD="${POSTGRES_PWD:-}" "$sql_tool" --plugin postgres12 --ep "$POSTGRES_SEEDS" \
    -p "${DB_PORT:-5432}" -u "$POSTGRES_USER" --db "$db" "$@"
}

for pair in "${DBNAME:-temporal}:temporal" "${VISIBILITY_DBNAME:-temporal_visibility}:visibility"; do
  database="${pair%%:*}"
  schema="postgresql/v12/${pair#*:}"
  # Creating needs the CREATEDB privilege even for a database that exists: where a DBA made them,
  # set SKIP_DB_CREATE=true.
  if [ "${SKIP_DB_CREATE:-false}" != true ]; then
    sql "$database" create-database --defaultdb postgres
  fi
  # Only the tables that record the schema's version; a no-op once they exist.
  sql "$database" setup-schema -v 0.0
  # Every versioned step after the database's current version, up to this tool's latest.
  sql "$database" update-schema --schema-name "$schema"
  echo "Temporal database $database: schema $schema is up to date."
done
