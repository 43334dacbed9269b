#!/usr/bin/env bash
# Lints template.yaml with cfn-lint and `sam validate --lint`.
# Creates (or reuses) a virtualenv at .local/venv-lint (repo-relative, gitignored) and
# installs infra/lint/requirements.txt into it when missing or changed.
# Exits non-zero when either linter reports a problem (or the install fails).
#
#   infra/lint/run.sh [template ...]
# Default: template.yaml at the repo root, and the prebuilt-bootstrap copy of it that
# scripts/build-lambdas.sh writes (generated into a temporary file here).
# Env: PYTHON (interpreter for the venv; default python3, needs 3.10+).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

venv="$("$here/../python-venv.sh" lint "$here/requirements.txt")"

# SAM CLI: no telemetry, no update check, and nothing that reaches for real AWS credentials.
export SAM_CLI_TELEMETRY=0
export SAM_CLI_DISABLE_VERSION_CHECK=1 # harmless if this SAM version ignores it
export AWS_EC2_METADATA_DISABLED=true
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-AKIAIOSFODNN7EXAMPLE}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"

templates=("$@")
if [ ${#templates[@]} -eq 0 ]; then
  prebuilt="$(mktemp -d "${TMPDIR:-/tmp}/sockhop-lint.XXXXXX")"
  trap 'rm -rf "$prebuilt"' EXIT
  "$venv/bin/python" scripts/prebuilt-template.py template.yaml "$prebuilt/template.yaml"
  templates=(template.yaml "$prebuilt/template.yaml")
fi

status=0
for template in "${templates[@]}"; do
  echo "lint: cfn-lint $template" >&2
  if "$venv/bin/cfn-lint" "$template"; then
    echo "lint: cfn-lint ok" >&2
  else
    echo "lint: cfn-lint FAILED" >&2
    status=1
  fi

  echo "lint: sam validate --lint --template $template" >&2
  if "$venv/bin/sam" validate --lint --template "$template" --region us-east-1; then
    echo "lint: sam validate ok" >&2
  else
    echo "lint: sam validate FAILED" >&2
    status=1
  fi
done

exit "$status"
