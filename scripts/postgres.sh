#!/usr/bin/env bash
# Install Debian's PostgreSQL server for the store's tests on PostgreSQL, if missing. The
# tests start their own throwaway cluster (tests/postgres_cluster.py); nothing here runs one.
set -euo pipefail
if command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing postgresql for the store's tests on PostgreSQL ..." >&2
  install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }
  install || (apt-get update -qq && install) \
    || echo "could not install postgresql: the tests on PostgreSQL will fail" >&2
else
  echo "postgresql (initdb) is missing: install it, or the tests on PostgreSQL will fail" >&2
fi
