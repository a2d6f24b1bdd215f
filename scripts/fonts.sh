#!/usr/bin/env bash
# Install Debian's CJK fonts for the reports' PDFs (the font is embedded in each PDF), if missing.
set -euo pipefail
if dpkg -s fonts-noto-cjk >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = 0 ]; then
  echo "installing fonts-noto-cjk for the reports' PDFs ..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-cjk >/dev/null) \
    || echo "could not install fonts-noto-cjk: PDFs need reports.pdf_font set to a CJK font" >&2
else
  echo "the reports' PDFs need a CJK font: apt-get install fonts-noto-cjk (as root)" >&2
fi
