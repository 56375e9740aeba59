#!/usr/bin/env bash
# Installs the named PyPI packages that python3 cannot import yet. NAME:MODULE when the
# module's name is not the package's (grpcio:grpc).
set -euo pipefail
missing=()
for entry in "$@"; do
  package=${entry%%:*}
  module=${entry#*:}
  python3 -c "import $module" >/dev/null 2>&1 || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing from PyPI: ${missing[*]}"
python3 -m pip install -q "${missing[@]}"
