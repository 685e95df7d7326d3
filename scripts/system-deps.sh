#!/usr/bin/env bash
# System packages the tests need beyond Python, from Debian's packages:
#   chromium    the report is checked in a real headless browser (tests/test_report.py)
#   postgresql  a real PostgreSQL server for the many-machines tests (tests/test_distributed.py)
# Installs what is missing when running as root (CI); otherwise says what is missing and
# carries on: those tests then skip with a clear reason. Never downloads a browser itself.
set -euo pipefail

missing=()
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    missing+=(chromium)
fi
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1
then
    missing+=(postgresql)
fi
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: not installed: ${missing[*]} (as root on Debian: apt-get install" \
         "${missing[*]}); the tests that need them will be skipped" >&2
    exit 0
fi
echo "system-deps: installing ${missing[*]} (Debian packages)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
