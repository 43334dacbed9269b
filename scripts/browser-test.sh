#!/usr/bin/env bash
# Browser tests of the example apps (examples/collaborative-todo, examples/real-time-chat)
# and of the web console (console/, examples/tests/console.test.mjs):
# headless Chromium driven by playwright-core, with Node's built-in test runner.
#
#   DYNAMODB_ENDPOINT=http://127.0.0.1:8000 scripts/browser-test.sh [node --test args ...]
#
# - Installs what is missing: Debian's chromium (+ a color emoji font, so screenshots
#   show the reactions) with apt-get; examples/tests/node_modules with `npm ci` when it
#   is missing or older than package-lock.json. No Playwright browser download.
# - Uses DynamoDB Local at $DYNAMODB_ENDPOINT (scripts/test.sh starts one and exports
#   it); without it, starts its own (infra/dynamodb-local/start.sh) for this run.
# - Builds sockhop-local, starts it on a free port with a fresh table, waits for it,
#   runs `node --test examples/tests/` with SOCKHOP_URL (and SOCKHOP_API_KEY, the
#   stage's server API key) set, stops the stage on exit
#   and exits with node's status.
# Screenshots go to artifacts/screenshots/, the stage's log to artifacts/logs/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

step() { printf '\n==> %s\n' "$*"; }

pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "browser-test: need root (or sudo) to run: $*" >&2
    exit 1
  fi
}

free_port() {
  node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close() })'
}

# wait_for_tcp PORT PID LOG: until something listens on 127.0.0.1:PORT (or PID dies).
wait_for_tcp() {
  local port=$1 pid=$2 log=$3
  for _ in $(seq 1 1200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      cat "$log" >&2
      echo "browser-test: process $pid exited before listening on port $port" >&2
      exit 1
    fi
    sleep 0.1
  done
  cat "$log" >&2
  echo "browser-test: nothing listens on port $port after 120 s" >&2
  exit 1
}

command -v node >/dev/null 2>&1 || { echo "browser-test: node (20+) is required" >&2; exit 1; }
command -v npm >/dev/null 2>&1 || { echo "browser-test: npm is required" >&2; exit 1; }

step "Chromium"
chromium=${CHROMIUM_PATH:-/usr/bin/chromium}
missing=()
[ -x "$chromium" ] || missing+=(chromium)
dpkg -s fonts-noto-color-emoji >/dev/null 2>&1 || missing+=(fonts-noto-color-emoji)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]}"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi
[ -x "$chromium" ] || { echo "browser-test: $chromium is still missing" >&2; exit 1; }
"$chromium" --version 2>/dev/null | head -n 1
export CHROMIUM_PATH=$chromium

step "npm ci (examples/tests)"
tests_dir=examples/tests
stamp=$tests_dir/node_modules/.sockhop-lock-stamp
if [ -f "$stamp" ] && cmp -s "$tests_dir/package-lock.json" "$stamp"; then
  echo "node_modules is up to date"
else
  (cd "$tests_dir" && npm ci --no-audit --no-fund)
  cp "$tests_dir/package-lock.json" "$stamp"
fi

if [ -z "${DYNAMODB_ENDPOINT:-}" ]; then
  step "DynamoDB Local (DYNAMODB_ENDPOINT is not set: starting one for this run)"
  mkdir -p artifacts/logs
  ddb_port=$(free_port)
  ddb_log=artifacts/logs/browser-test-dynamodb-local.log
  PORT=$ddb_port infra/dynamodb-local/start.sh >"$ddb_log" 2>&1 &
  pids+=($!)
  wait_for_tcp "$ddb_port" "$!" "$ddb_log"
  export DYNAMODB_ENDPOINT="http://127.0.0.1:$ddb_port"
fi
echo "DynamoDB: $DYNAMODB_ENDPOINT"

step "cargo build -p sockhop-local"
cargo build -p sockhop-local
target_dir=${CARGO_TARGET_DIR:-target}
stage_bin=$target_dir/debug/sockhop-local

step "local stage"
mkdir -p artifacts/logs artifacts/screenshots
port=$(free_port)
table="browser-$(date +%s)-$RANDOM"
stage_log=artifacts/logs/browser-test-stage.log
# The demo token endpoints exist only with the stage's generated dev key, so the
# stage must not pick up real signing keys from this environment. The server API
# key (POST /publish) is one we choose, so the tests can publish as the backend.
export SOCKHOP_API_KEY="browser-test-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
env -u SIGNING_KEY_1_ENCODED -u SIGNING_KEY_1_METHOD -u SIGNING_KEY_2_ENCODED -u SIGNING_KEY_2_METHOD \
  -u HTTP_API_KEY_2 HTTP_API_KEY_1="$SOCKHOP_API_KEY" \
  "$stage_bin" --port "$port" --dynamodb-endpoint "$DYNAMODB_ENDPOINT" --table "$table" \
  >"$stage_log" 2>&1 &
stage_pid=$!
pids+=("$stage_pid")
export SOCKHOP_URL="http://127.0.0.1:$port"
for _ in $(seq 1 1200); do
  if node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$SOCKHOP_URL/" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$stage_pid" 2>/dev/null; then
    cat "$stage_log" >&2
    echo "browser-test: the stage exited before answering" >&2
    exit 1
  fi
  sleep 0.1
done
node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$SOCKHOP_URL/" || {
  cat "$stage_log" >&2
  echo "browser-test: the stage at $SOCKHOP_URL does not answer" >&2
  exit 1
}
echo "stage: $SOCKHOP_URL (table $table, log $stage_log)"

step "node --test examples/tests/"
status=0
started=$(date +%s)
node --test --test-concurrency=1 "$@" "$root/examples/tests/" || status=$?
echo "browser tests: exit $status after $(($(date +%s) - started)) s; screenshots in artifacts/screenshots/"
exit "$status"
