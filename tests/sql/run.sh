#!/usr/bin/env bash
# Runs the schema test on a fresh database of the test server.
set -euo pipefail
src=$1
dsn=${REGENTRA_TEST_DSN:?set REGENTRA_TEST_DSN (./packaging/dev.sh test does)}
db="rt_schema_$$"
psql -q "$dsn" -c "CREATE DATABASE $db" >/dev/null
trap 'psql -q "$dsn" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT
CROSSWALK=$(ls "$src"/../shared/compliance/CROSSWALK.md 2>/dev/null || true) \
  bash "$src/tests/sql/test_schema.sh" "${dsn%/*}/$db"
