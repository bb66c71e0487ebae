#!/usr/bin/env bash
# The report test opens report.html in headless Chromium (Debian's package). A fresh
# machine lacks it, and a missing browser must fail the tests, not skip them, so
# `make test` installs it first where apt-get is available.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "the report test needs Chromium: install it (Debian/Ubuntu: apt-get install chromium)" >&2
    exit 1
fi
echo "installing chromium for the report test"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -qq chromium >/dev/null \
    || { $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium >/dev/null; }
