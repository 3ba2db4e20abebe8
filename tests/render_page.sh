#!/usr/bin/env bash
# Renders a page from disk in headless Chromium, as a reader's browser would:
# prints its DOM once its scripts have run, and saves a screenshot.
#   tests/render_page.sh PAGE.html SHOT.png [HEIGHT [WIDTH]] > dom.html
# Exits 77 (skipped) when there is no Chromium here.
set -euo pipefail
page=$(realpath "$1")
shot=$2
height=${3:-1800}
width=${4:-1200}
browser=$(command -v chromium || true)
if [ -z "$browser" ]; then
  echo "no chromium here: install Debian's chromium package" >&2
  exit 77
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
# As root it needs --no-sandbox; the rest keeps it off the network and quiet.
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
       --disable-background-networking --disable-component-update --disable-sync
       --hide-scrollbars --user-data-dir="$profile" --window-size="$width","$height")
"$browser" "${flags[@]}" --screenshot="$shot" "file://$page" >/dev/null 2>&1
"$browser" "${flags[@]}" --dump-dom "file://$page" 2>/dev/null
