#!/usr/bin/env bash
# The demo: a real migration of a SQLite table, split into 300 clusters and run
# 4 at a time by runner. Run it again and it resumes (nothing left to do).
#   examples/demo.sh [path/to/runner]      (DEMO_DIR picks the work folder)
# Without a path: the runner in PATH (as installed by the package), else
# build/runner.
set -euo pipefail
runner=$(realpath "${1:-$(command -v runner || echo build/runner)}")
here=$(cd "$(dirname "$0")" && pwd)
work=${DEMO_DIR:-demo}
mkdir -p "$work"
cd "$work"

python3 "$here/make_data.py" customers.db
"$runner" 300 4 -- python3 "$here/migrate.py" --source customers.db --cluster=

echo
echo "Where the job stands:  sqlite3 $work/runner.db 'select * from progress'"
sqlite3 -header -column runner.db 'select * from progress'
echo
echo "The five heaviest clusters:"
sqlite3 -header -column runner.db \
  'select cluster, state, duration_s, peak_rss_kib, log_path from attempts order by peak_rss_kib desc limit 5'

# The migration really happened: every customer is in the new table.
want=$(sqlite3 customers.db 'select count(*) from customers')
got=$(sqlite3 customers.db 'select count(*) from customers_v2')
if [ "$want" != "$got" ]; then
  echo "demo: customers_v2 has $got rows, expected $want" >&2
  exit 1
fi
echo
echo "customers_v2 holds all $got migrated rows."

# The page that shows how the job ran: open it in any browser.
page=$("$runner" report --html report.html)
echo
echo "How the job ran, as a page: $(realpath "$page")"
