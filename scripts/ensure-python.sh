#!/usr/bin/env bash
# Installs the named PyPI packages that python3 cannot import yet.
set -euo pipefail
missing=()
for package in "$@"; do
  python3 -c "import $package" >/dev/null 2>&1 || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing from PyPI: ${missing[*]}"
python3 -m pip install -q "${missing[@]}"
