#!/usr/bin/env bash
# make eval: real third-party servers (datasette, jupyter-server) recorded through driftcheck,
# their exported WireMock mocks mutated one way at a time, and driftcheck's findings scored.
# Arguments go to run.py (--seed, --apps, --mutations, --jobs, --keep). Needs python3 with venv.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/.build-eval-venv"
requirements="$root/scripts/eval/requirements.txt"
stamp="$venv/.requirements.sha256"

command -v python3 >/dev/null 2>&1 || "$root/scripts/ensure-packages.sh" python3
# Debian's python3 has no ensurepip (so no `python3 -m venv`) without python3-venv.
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || "$root/scripts/ensure-packages.sh" python3-venv
if [ ! -x "$venv/bin/python" ]; then
  echo "eval: creating $venv" >&2
  python3 -m venv "$venv"
fi
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "eval: installing $(grep -v '^#' "$requirements" | tr '\n' ' ')" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements"
  echo "$want" > "$stamp"
fi
export DRIFTCHECK="${DRIFTCHECK:-$root/.build/debug/driftcheck}"
exec "$venv/bin/python" "$root/scripts/eval/run.py" "$@"
