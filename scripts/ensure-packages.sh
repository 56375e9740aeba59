#!/usr/bin/env bash
# Installs the named Debian packages that are not installed yet; apt-get update runs once first.
set -euo pipefail
missing=()
for package in "$@"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
# PostgreSQL starts a cluster of its own on install; tests and benchmarks run their own.
if printf '%s\n' "${missing[@]}" | grep -q '^postgresql'; then
  ($sudo service postgresql stop || $sudo pg_ctlcluster --force 15 main stop) >/dev/null 2>&1 || true
fi
# nginx starts itself on install; the benchmark runs its own instance.
if printf '%s\n' "${missing[@]}" | grep -q nginx; then
  ($sudo service nginx stop || $sudo pkill -x nginx) >/dev/null 2>&1 || true
fi
