#!/usr/bin/env bash
# The benchmark (README, "Benchmark"): builds the local stage and the bench, then runs
# the bench, which starts DynamoDB Local, the stage (as a child process) and a bare
# tokio-tungstenite broadcast server itself, measures the stage against those floors
# in the same run, counts the AWS requests of each operation and prints what a million
# messages cost. Everything it starts is stopped when it ends (also on error or Ctrl-C).
#
#   scripts/bench.sh [--quick] [--release] [bench options ...]
#   scripts/bench.sh aws-model [--quick] [--dynamodb-endpoint URL] ...   (the AWS-latency model)
#
#   --quick    a smaller run: 250 connections, fan-outs to 50 and 250, fewer messages
#   --release  build with the shipping `release` profile (fat LTO, one codegen unit;
#              much slower to build) instead of `bench-release` (the same optimisation
#              level without LTO, 16 codegen units)
#   anything else goes to the bench: target/<profile>/bench --help
#
# Needs what scripts/test.sh needs (Rust, Java 17+, Node/npm for DynamoDB Local).
# Not part of scripts/test.sh: it measures, it does not test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

profile=bench-release
args=()
for arg in "$@"; do
  case "$arg" in
    --release) profile=release ;;
    *) args+=("$arg") ;;
  esac
done
case "$profile" in
  release) build="cargo profile release (opt-level s, fat LTO, 1 codegen unit, panic=abort)" ;;
  *) build="cargo profile bench-release (release's opt-level s and panic=abort; LTO off, 16 codegen units)" ;;
esac

infra/dynamodb-local/ensure.sh >/dev/null
echo "==> cargo build --profile $profile -p sockhop-local -p sockhop-bench" >&2
started=$SECONDS
cargo build --profile "$profile" -p sockhop-local -p sockhop-bench >&2
echo "==> built in $((SECONDS - started)) s" >&2

target_dir="${CARGO_TARGET_DIR:-target}"
# A subcommand (aws-model: README, "AWS-latency model") takes its own options only.
case "${args[0]:-}" in
  aws-model) exec "$target_dir/$profile/bench" "${args[@]}" ;;
esac
exec "$target_dir/$profile/bench" --build "$build" ${args[@]+"${args[@]}"}
