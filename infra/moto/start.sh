#!/usr/bin/env bash
# Starts moto's standalone AWS server in the foreground (exec: the server replaces this
# shell, so the caller can wait for the port and later kill this pid directly).
#
#   PORT=5000 infra/moto/start.sh
#
# Installs infra/moto/requirements.txt into .local/venv-moto first (infra/python-venv.sh).
# Env: PORT (default 5000), PYTHON (interpreter for the venv; default python3, 3.9+).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$("$here/../python-venv.sh" moto "$here/requirements.txt")"

exec "$venv/bin/moto_server" -H 127.0.0.1 -p "${PORT:-5000}"
