#!/usr/bin/env bash
# runner's --metrics file as Prometheus' own tools take it: promtool check
# metrics, Debian's node_exporter with its textfile collector, and a
# Prometheus server scraping that node_exporter, where runner's samples must
# keep their runner_job label; then the README's alert rules under promtool
# check rules and promtool test rules (tests/prometheus/alerts.test.yml).
#   tests/prometheus.sh path/to/runner
set -euo pipefail
runner=$(realpath "$1")
here=$(cd "$(dirname "$0")/.." && pwd)
for tool in promtool prometheus prometheus-node-exporter python3; do
  command -v "$tool" >/dev/null || {
    echo "no $tool here: install Debian's prometheus and prometheus-node-exporter (make test-deps)" >&2
    exit 1
  }
done
# Named so that tests/no_leftovers.sh would see a daemon left behind.
dir=$(mktemp -d -t runner-test-prometheus-XXXXXX)
daemons=()
finish() {
  for pid in "${daemons[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${daemons[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap finish EXIT
cd "$dir"

# The alert rules, as the README shows them (its yaml block of groups).
python3 - "$here/README.md" runner-alerts.yml <<'EOF'
import re, sys
rules = re.search(r"```yaml\n(groups:.*?)```", open(sys.argv[1]).read(), re.S)
if not rules:
    sys.exit("README.md shows no alert rules (a ```yaml block starting with groups:)")
open(sys.argv[2], "w").write(rules.group(1))
EOF
cp "$here/tests/prometheus/alerts.test.yml" .
promtool check rules runner-alerts.yml
promtool test rules alerts.test.yml

# Two jobs: nightly fails its cluster 2; hourly ends all done.
mkdir textfile
if "$runner" 4 2 --job nightly --metrics textfile/runner-nightly.prom \
     -- sh -c '[ "$1" != 2/4 ]' migrate > nightly.txt 2>&1; then
  echo "the nightly job was to fail a cluster" >&2
  exit 1
fi
"$runner" 3 2 --job hourly --metrics textfile/runner-hourly.prom -- true > hourly.txt 2>&1
for file in textfile/*.prom; do
  promtool check metrics < "$file" || { echo "promtool check metrics: $file" >&2; exit 1; }
done

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
exporter=127.0.0.1:$(free_port)
prometheus-node-exporter --collector.disable-defaults --collector.textfile \
  --collector.textfile.directory="$dir/textfile" --web.listen-address="$exporter" \
  > exporter.log 2>&1 &
daemons+=($!)
server=127.0.0.1:$(free_port)
cat > prometheus.yml <<EOF
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ['$exporter']
EOF
prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" --web.listen-address="$server" \
  > prometheus.log 2>&1 &
daemons+=($!)

# What node_exporter serves, then what Prometheus stored from it. Each is
# asked again until it answers with runner's samples (at most 60 s: the
# daemons start, then Prometheus scrapes once a second).
python3 - "$exporter" "$server" <<'EOF' || { tail -n 5 exporter.log prometheus.log >&2; exit 1; }
import json, sys, time, urllib.parse, urllib.request

exporter, server = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + 60

def ask(url):
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return answer.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"no answer from {url} in 60 s")
            time.sleep(0.1)

def until(url, done):
    while True:
        text = ask(url)
        if done(text):
            return text
        if time.monotonic() > deadline:
            sys.exit(f"{url} did not have runner's samples in 60 s:\n{text[-2000:]}")
        time.sleep(0.1)

def fail(why, what):
    sys.exit(f"{why}:\n{what}")

scraped = until(f"http://{exporter}/metrics", lambda t: "runner_last_exit_code" in t)
for line in ['node_textfile_scrape_error 0',
             'runner_last_exit_code{runner_job="nightly"} 1',
             'runner_last_exit_code{runner_job="hourly"} 0']:
    if line not in scraped.splitlines():
        fail(f"node_exporter does not serve '{line}'", scraped)
if 'runner_last_success_timestamp_seconds{runner_job="hourly"}' not in scraped:
    fail("node_exporter serves no last success of the hourly job", scraped)
if 'runner_last_success_timestamp_seconds{runner_job="nightly"}' in scraped:
    fail("the nightly job never ended all done, yet has a last success", scraped)

def query(expression):
    url = f"http://{server}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
    answer = until(url, lambda t: json.loads(t)["data"]["result"] != [])
    return json.loads(answer)["data"]["result"]

# The expressions of the README, as they are written.
exit_code = query('runner_last_exit_code{runner_job="nightly"}')
labels = exit_code[0]["metric"]
if exit_code[0]["value"][1] != "1" or labels.get("job") != "node" or "exported_job" in labels:
    fail("Prometheus does not have nightly's exit code under runner_job, job=node", exit_code)
query('runner_last_success_timestamp_seconds{runner_job="hourly"}')
# No runner sample had a label of its own renamed.
renamed = json.loads(ask(f"http://{server}/api/v1/query?" + urllib.parse.urlencode(
    {"query": '{__name__=~"runner_.+", exported_job!=""}'})))["data"]["result"]
if renamed:
    fail("Prometheus renamed a label of runner's samples", renamed)
EOF
echo "prometheus: promtool, node_exporter and a Prometheus server read runner's metrics; the README's alert rules pass their tests"
