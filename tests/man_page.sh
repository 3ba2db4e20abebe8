#!/usr/bin/env bash
# The man page as mandoc and man read it: no message from mandoc -Tlint (of
# any level), no warning from man --warnings, and everything runner --help
# names in it: every option, each subcommand's options, every exit code; and
# a FILES section.
#   tests/man_page.sh path/to/runner
set -euo pipefail
runner=$1
page=$(cd "$(dirname "$0")/.." && pwd)/share/runner.1
for tool in mandoc man; do
  command -v "$tool" >/dev/null || { echo "no $tool here: install Debian's mandoc and man-db (make test-deps)" >&2; exit 1; }
done
fail() { echo "share/runner.1: $*" >&2; exit 1; }

lint=$(mandoc -Tlint "$page" 2>&1 || true)
[ -z "$lint" ] || fail "mandoc -Tlint says:"$'\n'"$lint"
warnings=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null || true)
[ -z "$warnings" ] || fail "man --warnings says:"$'\n'"$warnings"

# The page as a reader sees it, without the overstrikes of bold and underline.
text=$(mandoc -Tascii -Owidth=200 "$page" | sed 's/.\x08//g')
section() { printf '%s\n' "$text" | sed -n "/^$1\$/,/^[A-Z][A-Z ]*\$/p"; }

options() { "$runner" "$@" --help | grep -o -- '^ *-[a-z],--[a-z-]*\|^ *--[a-z-]*' | grep -o -- '--[a-z-]*'; }
for option in $(options); do
  section OPTIONS | grep -q -- "$option" || fail "--help lists $option; the OPTIONS section does not"
done
for sub in status report unlock log; do
  for option in $(options "$sub"); do
    [ "$option" = --help ] && continue
    section SUBCOMMANDS | sed -n "/^ *runner $sub\$/,/^ *runner [a-z]*\$/p" | grep -q -- "$option" ||
      fail "runner $sub --help lists $option; the page does not say it under runner $sub"
  done
done
# "Exit codes: 0 all done, 1 ..., 3 ...": each number is a tag of EXIT STATUS.
codes=$("$runner" --help | tr '\n' ' ' | sed 's/.*Exit codes: //; s/128+.*//' | grep -o '\(^\|, \)[0-9][0-9]* [a-z]' | grep -o '[0-9][0-9]*')
[ -n "$codes" ] || fail "runner --help lists no exit codes"
for code in $codes; do
  section "EXIT STATUS" | grep -q "^ *$code  " || fail "--help names exit code $code; EXIT STATUS does not"
done
section FILES | grep -q runner.db || fail "no FILES section naming the log"
echo "man page: mandoc and man are silent; every option, subcommand option and exit code is there"
