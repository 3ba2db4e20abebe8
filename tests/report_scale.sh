#!/usr/bin/env bash
# runner report --html on a job of 1,000,000 attempts (written straight into
# a log runner made): the page stays within a few MB and says that it shows
# aggregates, and runner reads the attempts one at a time: its peak RSS stays
# far below what holding them would take (about 170 MB). ctest bounds its
# time (TIMEOUT); the time is printed, never judged.
#   tests/report_scale.sh path/to/runner
set -euo pipefail
runner=$(realpath "$1")
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
"$runner" 1 1 --job seed -q -- true   # the log, with runner's own schema
sqlite3 runner.db <<'SQL'
INSERT INTO job(name, clusters, command, created_at) VALUES ('million', 1000000, '/bin/true', 1.7e9);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000)
INSERT INTO attempt(job_id, cluster, attempt, state, pid, host, started_at, finished_at,
                    exit_code, peak_rss_kib, log_path)
SELECT (SELECT id FROM job WHERE name = 'million'), i, 1,
       CASE WHEN i % 1000 = 0 THEN 'failed' ELSE 'done' END, 1000 + i % 30000,
       'n' || (1 + i % 3), 1.7e9 + i * 0.001, 1.7e9 + i * 0.001 + 0.012 * (1 + i % 7),
       CASE WHEN i % 1000 = 0 THEN 1 ELSE 0 END, 200 + i % 800,
       '/logs/million/' || i || '.1.log'
FROM n;
SQL
# GNU time's figures where it is installed; a sanitizer build has memory
# figures of its own, printed but not bounded.
if [ -x /usr/bin/time ]; then
  /usr/bin/time -o time.txt -f '%M %e' "$runner" report --job million --html page.html >/dev/null
  read -r rss_kib seconds <time.txt
  echo "1,000,000 attempts: runner report --html took ${rss_kib} KiB peak RSS, ${seconds} s"
  if ! ldd "$runner" | grep -q libasan && [ "$rss_kib" -gt 40960 ]; then
    echo "runner report --html took ${rss_kib} KiB peak RSS, more than 40 MiB" >&2
    exit 1
  fi
else
  "$runner" report --job million --html page.html >/dev/null
fi
size=$(stat -c %s page.html)
echo "1,000,000 attempts: a page of $size bytes"
if [ "$size" -gt 3000000 ]; then
  echo "the page is $size bytes, more than 3 MB" >&2
  exit 1
fi
grep -q '1000000 attempts are too many to draw one by one' page.html
grep -q 'Failures (1000)' page.html
grep -q '<td class="n">1000000</td>' page.html
