#!/usr/bin/env bash
# Takes docs/report.png, the screenshot docs/report.md and the README show: runs the demo
# (deploy/demo.sh: the sample data through real agents and a real collector), then renders the
# report page it wrote with headless Chromium (installed by deploy/install-deps.sh). Run it again
# whenever the page's look changes, and commit the new PNG.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
log=$(mktemp /tmp/totalplace-screenshot.XXXXXX)
trap 'rm -f "$log"' EXIT
bash deploy/demo.sh >"$log" 2>&1 || { cat "$log" >&2; echo "the demo failed" >&2; exit 1; }
page=$(awk '/^Report for the place with the most spending/ { getline; print $1 }' "$log")
[[ -n $page && -s $page ]] || { cat "$log" >&2; echo "the demo printed no report page" >&2; exit 1; }
profile=$(mktemp -d /tmp/totalplace-chromium.XXXXXX)
trap 'rm -f "$log"; rm -rf "$profile"' EXIT
timeout 120 chromium --headless --disable-gpu --no-sandbox --no-first-run \
  --disable-background-networking --user-data-dir="$profile" --hide-scrollbars \
  --screenshot="$top/docs/report.png" --window-size=1000,2750 "file://$page" 2>/dev/null
echo "docs/report.png from $page ($(stat -c %s docs/report.png) bytes)"
