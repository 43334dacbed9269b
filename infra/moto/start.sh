#!/usr/bin/env bash
# Starts moto's standalone AWS server in the foreground (exec: the server replaces this
# shell, so the caller can wait for the port and later kill this pid directly).
#
#   PORT=5000 infra/moto/start.sh
#
# Creates (or reuses) a virtualenv at .local/venv-moto (repo-relative, gitignored) and
# installs infra/moto/requirements.txt into it when missing or changed.
# Env: PORT (default 5000), PYTHON (interpreter for the venv; default python3, 3.9+).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/.local/venv-moto"
req="$here/requirements.txt"
stamp="$venv/.requirements.sha256"
python="${PYTHON:-python3}"

sha256() { if command -v sha256sum >/dev/null 2>&1; then sha256sum; else shasum -a 256; fi; }
req_hash() {
  { cat "$req"; "$python" -c 'import sys; print(sys.version)'; } | sha256 | cut -d' ' -f1
}

if [[ ! -x "$venv/bin/moto_server" || ! -f "$stamp" || "$(cat "$stamp")" != "$(req_hash)" ]]; then
  t0=$SECONDS
  echo "moto: installing $(basename "$req") into ${venv#"$root/"} ..." >&2
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
  req_hash >"$stamp"
  echo "moto: installed in $((SECONDS - t0))s" >&2
fi

exec "$venv/bin/moto_server" -H 127.0.0.1 -p "${PORT:-5000}"
