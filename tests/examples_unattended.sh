#!/usr/bin/env bash
# The examples for unattended runs, checked as they are shipped:
# examples/systemd/ passes systemd-analyze verify, and the line in
# examples/cron/crontab runs as cron would run it (sh -c), mailing only on a
# night that did not end all done.
#   tests/examples_unattended.sh path/to/runner
set -euo pipefail
runner=$(realpath "$1")
here=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# systemd: the unit and its timer, pointed at this build and a real folder.
mkdir "$dir/units"
for f in "$here"/examples/systemd/*; do
  sed -e "s|/usr/bin/runner|$runner|g" -e "s|/srv/migrate|$dir|g" "$f" > "$dir/units/$(basename "$f")"
done
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify --man=no "$dir"/units/runner-nightly.service "$dir"/units/runner-nightly.timer
else
  echo "no systemd-analyze here: install Debian's systemd package" >&2
  exit 1
fi

# cron: the command after the five schedule fields, with this build, this
# folder, 4 clusters at a time 2, a migrate that fails cluster 2 until fixed,
# and a mail that records what it was asked.
line=$(grep -v '^#' "$here/examples/cron/crontab" | grep -v '^\s*$')
command=$(printf '%s\n' "$line" | sed -E 's/^([^ ]+ +){5}//')
command=${command//\/usr\/bin\/runner/$runner}
command=${command//\/srv\/migrate/$dir}
command=${command//10000 8/4 2}
mkdir "$dir/bin"
cat > "$dir/bin/mail" <<EOF2
#!/bin/sh
{ echo "mail \$*"; cat; } >> "$dir/mail.txt"
EOF2
cat > "$dir/migrate" <<EOF2
#!/bin/sh
[ "\$1" = "--cluster=2/4" ] && [ ! -e "$dir/fixed" ] && exit 1
exit 0
EOF2
chmod +x "$dir/bin/mail" "$dir/migrate"
PATH="$dir/bin:$PATH" sh -c "$command" || true
grep -q 'mail -s nightly: failed, 1 failed team@example.com' "$dir/mail.txt"
grep -q "2	1	exit code 1	" "$dir/mail.txt"
# Fixed, the next night resumes, ends all done, and mails nobody.
touch "$dir/fixed"
before=$(wc -l < "$dir/mail.txt")
PATH="$dir/bin:$PATH" sh -c "$command"
[ "$(wc -l < "$dir/mail.txt")" = "$before" ]
[ "$(sqlite3 "$dir/runner.db" 'select done from progress')" = 4 ]
echo "examples: systemd units verified; the crontab line mails on failure only"
