#!/usr/bin/env bash
# The AWS deployment without an account: builds the eight functions for this machine,
# deploys the shipped template.yaml to MiniStack (a local AWS emulator) through
# CloudFormation and the SAM transform, with IAM enforced, and prints the stack's URLs.
#
#   scripts/emulated-deploy.sh                   # deploy, print, keep running until Ctrl-C
#   scripts/emulated-deploy.sh --outputs F.json  # also write the outputs (and DEV-ONLY keys) to F
#   scripts/emulated-deploy.sh --no-wait         # deploy, print, stop (checks the deploy only)
#   scripts/emulated-deploy.sh --port 4566 --no-build --workdir .local/emulated-2
#
# The path a user takes with prebuilt bootstraps (README, "Deploy"): each function's
# `bootstrap` in target/emulated/<name>/, the template that points at them
# (scripts/prebuilt-template.py, which only sets each CodeUri), then `sam deploy`. What
# must differ on an emulator is a stack parameter whose default is right for AWS:
# FunctionArchitectureParameter (this machine's) and ManagementApiBaseUrlParameter
# (MiniStack's path-style execute-api). docs/deploy.md says what this proves and what only AWS can.
#
# Installs MiniStack (infra/ministack/requirements.txt, pinned) into .local/venv-ministack
# and SAM CLI (infra/lint/requirements.txt) into .local/venv-lint. Needs Rust, Python 3.
# Env: PYTHON (interpreter for the venvs), CARGO_PROFILE (default dev).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"

functions=(connect disconnect default deliver http publish stream sweeper)
build=1
workdir="$root/.local/emulated"
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0 ;;
    --workdir) workdir="$(mkdir -p "$2" && cd "$2" && pwd)"; shift ;;
    --outputs | --port) args+=("$1" "$2"); shift ;;
    --no-wait) args+=("$1") ;;
    -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "emulated-deploy: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

profile="${CARGO_PROFILE:-dev}"
profile_dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
target_dir="${CARGO_TARGET_DIR:-$root/target}"
package="$target_dir/emulated"

if [ "$build" = 1 ]; then
  bins=()
  for f in "${functions[@]}"; do bins+=(--bin "$f"); done
  echo "emulated deploy: cargo build --profile $profile ${bins[*]}" >&2
  t0=$SECONDS
  cargo build --quiet --profile "$profile" "${bins[@]}"
  echo "emulated deploy: built in $((SECONDS - t0))s" >&2
fi

# One directory per function holding its `bootstrap` (debug info stripped: the zips
# MiniStack unpacks stay small), and the template that points at them.
rm -rf "$package"
for f in "${functions[@]}"; do
  mkdir -p "$package/$f"
  bin="$target_dir/$profile_dir/$f"
  [ -x "$bin" ] || { echo "emulated deploy: $bin missing (run without --no-build)" >&2; exit 1; }
  if command -v strip >/dev/null 2>&1; then strip -o "$package/$f/bootstrap" "$bin"; else cp "$bin" "$package/$f/bootstrap"; fi
done
python="${PYTHON:-python3}"
"$python" scripts/prebuilt-template.py template.yaml "$package/template.yaml"

ministack_venv="$(infra/python-venv.sh ministack infra/ministack/requirements.txt)"
lint_venv="$(infra/python-venv.sh lint infra/lint/requirements.txt)"
mkdir -p "$workdir"

exec "$ministack_venv/bin/python" infra/ministack/deploy.py \
  --template "$package/template.yaml" \
  --sam "$lint_venv/bin/sam" \
  --venv "$ministack_venv" \
  --workdir "$workdir" \
  ${args[@]+"${args[@]}"}
