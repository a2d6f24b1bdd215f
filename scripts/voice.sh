#!/usr/bin/env bash
# Install Debian's espeak-ng and sox, which render the voice prompts (scripts/make-prompts)
# and which its test renders with for real, if missing.
set -euo pipefail
if command -v espeak-ng >/dev/null 2>&1 && command -v sox >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing espeak-ng and sox for the voice prompts ..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng sox >/dev/null) \
    || echo "could not install espeak-ng and sox: the prompts' real-render test is skipped" >&2
else
  echo "rendering the voice prompts needs: apt-get install espeak-ng sox (as root)" >&2
fi
