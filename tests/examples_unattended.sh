#!/usr/bin/env bash
# The examples for unattended runs, checked as they are shipped:
# examples/systemd/ passes systemd-analyze verify, and a stop of the service
# (SIGTERM to runner) ends in an exit status the unit counts as success, in
# less time than it allows; the line in examples/cron/crontab runs as cron
# would run it (sh -c), mailing once, only for a night not all done.
#   tests/examples_unattended.sh path/to/runner
set -euo pipefail
runner=$(realpath "$1")
here=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# A mail that records what it was asked.
mkdir "$dir/bin"
cat > "$dir/bin/mail" <<EOF2
#!/bin/sh
{ echo "mail \$*"; cat; } >> "$dir/mail.txt"
EOF2
chmod +x "$dir/bin/mail"

# systemd: the unit and its timer, pointed at this build and a real folder.
mkdir "$dir/units" "$dir/unit"
for f in "$here"/examples/systemd/*; do
  sed -e "s|/usr/bin/runner|$runner|g" -e "s|/srv/migrate|$dir/unit|g" "$f" > "$dir/units/$(basename "$f")"
done
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify --man=no "$dir"/units/runner-nightly.service "$dir"/units/runner-nightly.timer
else
  echo "no systemd-analyze here: install Debian's systemd package" >&2
  exit 1
fi

# A stop: systemd sends SIGTERM to runner alone (KillMode=mixed), waits up to
# TimeoutStopSec, and counts the exit status against SuccessExitStatus.
unit=$dir/units/runner-nightly.service
value() { sed -n "s/^$1=//p" "$unit"; }
exec_start=$(value ExecStart)
option() { printf '%s\n' "$exec_start" | { grep -o -- " $1 [^ ]*" || true; } | head -1 | cut -d' ' -f3; }
us() { systemd-analyze timespan "$1" | sed -n 's/^ *μs: //p'; }
grace=$(option --grace)
hook_limit=$(option --on-finish-timeout)
stop_limit=$(value TimeoutStopSec)
# runner's own defaults where the line leaves them out; systemd's default 90s.
(( $(us "${stop_limit:-90s}") > $(us "${grace:-10s}") + $(us "${hook_limit:-1m}") )) || {
  echo "TimeoutStopSec=${stop_limit:-90s} leaves no room for --grace ${grace:-10s} and" \
       "--on-finish-timeout ${hook_limit:-1m}: a stop would kill the hook" >&2
  exit 1
}
printf '#!/bin/sh\nexec sleep 600\n' > "$dir/unit/migrate"
chmod +x "$dir/unit/migrate"
(cd "$(value WorkingDirectory)" && PATH="$dir/bin:$PATH" exec sh -c "exec ${exec_start//10000 8/4 2}") \
  > "$dir/unit/output.txt" 2>&1 &
service=$!
for _ in $(seq 600); do
  [ "$(sqlite3 "$dir/unit/runner.db" "select running from progress" 2>/dev/null)" = 1 ] && break
  sleep 0.05
done
kill -TERM "$service"
status=0
wait "$service" || status=$?
case " 0 $(value SuccessExitStatus) " in
  *" $status "*) ;;
  *) echo "runner stopped by SIGTERM exits $status, which SuccessExitStatus=$(value SuccessExitStatus) counts as a failure" >&2
     cat "$dir/unit/output.txt" >&2; exit 1 ;;
esac
grep -q '^mail -s nightly: stopped team@example.com' "$dir/mail.txt"
rm "$dir/mail.txt"

# cron: the line after the five schedule fields, run as cron runs it (sh -c,
# its output mailed to MAILTO when there is any), with this build, this
# folder, 4 clusters at a time 2, a migrate that fails cluster 2 until fixed
# (and holds it while a file says so).
crontab=$here/examples/cron/crontab
mailto=$(sed -n 's/^MAILTO=//p' "$crontab")
[ -n "$mailto" ] || { echo "examples/cron/crontab sets no MAILTO: its errors would mail nobody" >&2; exit 1; }
line=$(grep -v -e '^#' -e '^\s*$' -e '^[A-Z_]*=' "$crontab")
[ "$(printf '%s\n' "$line" | wc -l)" = 1 ] || { echo "expected one crontab line" >&2; exit 1; }
command=$(printf '%s\n' "$line" | sed -E 's/^([^ ]+ +){5}//')
# Its output must reach cron (and so MAILTO), not a file that grows for ever.
case "$command" in *'>'*) echo "the crontab line redirects its output: $command" >&2; exit 1 ;; esac
command=${command//\/usr\/bin\/runner/$runner}
command=${command//\/srv\/migrate/$dir}
command=${command//10000 8/4 2}
cat > "$dir/migrate" <<EOF2
#!/bin/sh
if [ "\$1" = "--cluster=2/4" ]; then
  while [ -e "$dir/hold" ]; do sleep 0.05; done
fi
[ "\$1" = "--cluster=2/4" ] && [ ! -e "$dir/fixed" ] && exit 1
exit 0
EOF2
chmod +x "$dir/migrate"
# Runs the line as cron would; prints what cron would mail (its output).
night() { PATH="$dir/bin:$PATH" sh -c "$command" 2>&1 || true; }
mails() { grep -c '^mail ' "$dir/mail.txt" 2>/dev/null || true; }

# A night with a failed cluster: the hook mails the summary; runner prints nothing.
cron_mail=$(night)
[ -z "$cron_mail" ] || { echo "a failed night printed (cron would mail it too): $cron_mail" >&2; exit 1; }
grep -q 'mail -s nightly: failed, 1 failed team@example.com' "$dir/mail.txt"
grep -q "2	1	exit code 1	" "$dir/mail.txt"

# A night that never started (the last night's run still holds the job):
# runner's one line of error reaches cron's mail, and the hook sends no second mail.
touch "$dir/hold"
PATH="$dir/bin:$PATH" sh -c "$command" > "$dir/first.txt" 2>&1 &
holder=$!
for _ in $(seq 600); do
  [ "$(sqlite3 "$dir/runner.db" "select count(*) from attempts where state = 'running'" 2>/dev/null)" = 1 ] && break
  sleep 0.05
done
before=$(mails)
cron_mail=$(night)
case "$cron_mail" in
  *"runner: job 'nightly' in runner.db is already being run by pid"*) ;;
  *) echo "a refused night did not print its reason for cron to mail: '$cron_mail'" >&2; exit 1 ;;
esac
[ "$(mails)" = "$before" ] || { echo "a refused night was mailed twice" >&2; exit 1; }
rm "$dir/hold"
wait "$holder" || true

# Fixed, the next night resumes, ends all done, and mails nobody.
touch "$dir/fixed"
before=$(mails)
cron_mail=$(night)
[ -z "$cron_mail" ] || { echo "a good night printed: $cron_mail" >&2; exit 1; }
[ "$(mails)" = "$before" ]
[ "$(sqlite3 "$dir/runner.db" 'select done from progress')" = 4 ]
echo "examples: systemd units verified; the crontab line mails once, only for a night not all done"
