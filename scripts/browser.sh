#!/usr/bin/env bash
# Install Debian's Chromium and CJK fonts for the dashboard's browser test, if missing.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && dpkg -s fonts-noto-cjk >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium and fonts-noto-cjk for the browser test ..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null) \
    || echo "could not install chromium: the browser test fails under CI, is skipped elsewhere" >&2
fi
