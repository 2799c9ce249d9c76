#!/usr/bin/env bash
# Make sure what the test suite needs is on this machine: Debian's Dovecot (the suite starts its own private
# instance on a free loopback port), a PostgreSQL server on 127.0.0.1:5432 with a database `test`, and
# Node.js with the npm package ical.js (the parser Thunderbird uses), which reads every invitation the tests
# produce.
# Installs with apt-get when run as root; otherwise says what is missing. Used by `make test` and `.ci/run`.
set -euo pipefail

need=()
for pkg in dovecot-core dovecot-imapd; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test-services: missing Debian packages: ${need[*]} (install them, or run as root)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}"
fi

# PostgreSQL: machines of this kind start it before a session or a CI run; start it when it is not answering.
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  cluster=$(ls /etc/postgresql | head -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$cluster" main start || true
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc "select 1 from pg_database where datname='test'" | grep -q 1; then
  psql -h 127.0.0.1 -U postgres -d postgres -qc "create database test"
fi

# ical.js into ./node_modules (not committed), where the interop checker finds it.
if [ ! -f node_modules/ical.js/package.json ]; then
  npm install --no-save --no-package-lock --no-audit --no-fund --silent ical.js@2
fi
