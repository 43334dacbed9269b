#!/usr/bin/env bash
# Ensures the virtualenv .local/venv-NAME (repo-relative, gitignored) has REQUIREMENTS
# installed, reinstalling when that file or the Python version changed, and prints the
# venv's absolute path on stdout (pip's output goes to stderr).
#
#   infra/python-venv.sh NAME REQUIREMENTS
#
# Env: PYTHON (interpreter for the venv; default python3).
set -euo pipefail

name="$1"
req="$2"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.local/venv-$name"
stamp="$venv/.requirements.sha256"
python="${PYTHON:-python3}"

sha256() { if command -v sha256sum >/dev/null 2>&1; then sha256sum; else shasum -a 256; fi; }
req_hash() {
  { cat "$req"; "$python" -c 'import sys; print(sys.version)'; } | sha256 | cut -d' ' -f1
}

if [[ ! -x "$venv/bin/python" || ! -f "$stamp" || "$(cat "$stamp")" != "$(req_hash)" ]]; then
  t0=$SECONDS
  echo "$name: installing $(basename "$req") into ${venv#"$root/"} ..." >&2
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
  req_hash >"$stamp"
  echo "$name: installed in $((SECONDS - t0))s" >&2
fi
echo "$venv"
