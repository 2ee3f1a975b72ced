#!/usr/bin/env bash
# Installs what the browser test (tests/test_browser.py) needs on a fresh Debian/Ubuntu machine:
# Debian's chromium (the browser; playwright's own browser download is not used) and the
# playwright Python driver. Idempotent: does nothing when both are present.
set -euo pipefail
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
if ! command -v chromium >/dev/null 2>&1; then
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
fi
python3 -c "import playwright" 2>/dev/null || python3 -m pip install -q "playwright>=1.45"
echo "browser: $(command -v chromium) ($(chromium --version 2>/dev/null || echo 'version unknown'))"
