#!/usr/bin/env bash
# Starts Amazon DynamoDB Local in the foreground (exec: the java process replaces this
# shell, so the parent can wait for the port and later kill this pid directly).
#
#   PORT=8000 infra/dynamodb-local/start.sh [extra DynamoDB Local flags ...]
#
# In memory (nothing on disk) unless DATA_DIR names a folder to keep the data in,
# -sharedDb (every access key / region sees the same tables), telemetry off (this
# machine reaches no AWS endpoint anyway).
# Installs DynamoDB Local first (ensure.sh) when node_modules is missing or stale.
# Env: PORT (default 8000), DATA_DIR (keep data there; created if missing),
#      JAVA (java binary; default $JAVA_HOME/bin/java or `java`),
#      DYNAMODB_LOCAL_JAVA_OPTS (extra JVM options, word-split).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

jar="$("$here/ensure.sh")"
lib="$(dirname "$jar")/DynamoDBLocal_lib"

if [[ -z "${JAVA:-}" ]]; then
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    JAVA="$JAVA_HOME/bin/java"
  else
    JAVA="java"
  fi
fi
command -v "$JAVA" >/dev/null 2>&1 || {
  echo "dynamodb-local: java not found (DynamoDB Local 3.x needs Java 17+)" >&2
  exit 1
}

storage=(-inMemory)
if [[ -n "${DATA_DIR:-}" ]]; then
  mkdir -p "$DATA_DIR"
  storage=(-dbPath "$DATA_DIR")
fi

# shellcheck disable=SC2086 # DYNAMODB_LOCAL_JAVA_OPTS is meant to be word-split
exec "$JAVA" ${DYNAMODB_LOCAL_JAVA_OPTS:-} \
  -Djava.library.path="$lib" \
  -jar "$jar" \
  "${storage[@]}" -sharedDb -disableTelemetry \
  -port "${PORT:-8000}" \
  "$@"
