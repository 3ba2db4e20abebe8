#!/usr/bin/env python3
"""runner's benchmark suite (make bench): each scenario several times, medians
with min-max, every figure beside the same work done by other tools in the
same run. Writes the table to stdout and, with --out, to a Markdown file."""
import argparse
import json
import math
import random
import os
import platform
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MiB = 1 << 20
GiB = 1 << 30


def run_timed(cmd, cwd, stdin=None, cgroup=None):
    """Runs cmd to the end (in cgroup, if given); returns (wall s, cpu s of it
    and its children, exit code)."""
    def join():
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run(cmd, cwd=cwd, stdin=stdin, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, preexec_fn=join if cgroup else None)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if p.returncode != 0:
        sys.stderr.write(f"bench: {' '.join(cmd[:6])}... exited {p.returncode}: "
                         f"{p.stderr.decode()[-500:]}\n")
    return wall, cpu, p.returncode


def peak_rss_kib(cmd, cwd):
    """Peak RSS of cmd itself, as GNU time reports it (wait4's ru_maxrss)."""
    out = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, cwd=cwd, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    return int(out.stderr.strip().splitlines()[-1])


def own_memory_cgroup():
    """This process's v1 memory cgroup folder, if the caller may make cgroups there."""
    mount = None
    with open("/proc/self/mounts") as f:
        for line in f:
            dev, point, kind, opts = line.split()[:4]
            if kind == "cgroup" and "memory" in opts.split(","):
                mount = point
    if not mount:
        return None
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if "memory" in controllers.split(","):
                folder = os.path.join(mount, path.lstrip("/"))
                return folder if os.access(folder, os.W_OK) else None
    return None


def interleaved(tools, runs, root, prefix):
    """Rounds of one run of each tool, each in a fresh folder of root removed
    after it: {name: (walls, cpus)}."""
    results = {name: ([], []) for name in tools}
    for _ in range(runs):
        for name, make in tools.items():
            d = tempfile.mkdtemp(prefix=prefix, dir=root)
            wall, cpu, _ = run_timed(make(d), d)
            shutil.rmtree(d, ignore_errors=True)
            results[name][0].append(wall)
            results[name][1].append(cpu)
    return results


def fmt_stats(values, unit="s", digits=2):
    med = statistics.median(values)
    return f"{med:.{digits}f} {unit} ({min(values):.{digits}f}-{max(values):.{digits}f})"


class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build) if args.build else os.path.join(ROOT, "build-release")
        self.runner = os.path.join(self.build, "runner")
        self.child = os.path.join(self.build, "tests", "test_child")
        self.floor = os.path.join(self.build, "bench-floor")
        self.lines = []
        self.scratch = tempfile.mkdtemp(prefix="runner-bench-", dir=args.scratch)

    def say(self, line=""):
        print(line, flush=True)
        self.lines.append(line)

    def fresh(self, name):
        # A new folder every time, removed only at the end: deleting thousands
        # of files just before a run makes the next file creations slow on
        # ext4, which would be measuring the benchmark, not the tools.
        self.counter = getattr(self, "counter", 0) + 1
        path = os.path.join(self.scratch, f"{name}-{self.counter}")
        os.makedirs(path)
        return path

    def versions(self):
        def first_line(cmd):
            try:
                return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0]
            except Exception:
                return "unknown"
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        self.say(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit}")
        self.say(f"- machine: {platform.machine()}, {os.cpu_count()} cores, "
                 f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / GiB:.0f} GiB, "
                 f"kernel {platform.release()}")
        self.say(f"- runner: {first_line([self.runner, '--version'])}; "
                 f"xargs: {first_line(['xargs', '--version'])}; "
                 f"GNU parallel: {first_line(['parallel', '--version'])}")
        self.say(f"- scratch folder: {self.scratch} "
                 f"({subprocess.run(['stat', '-f', '-c', '%T', self.scratch], capture_output=True, text=True).stdout.strip()}), "
                 f"{self.args.runs} runs each ({self.dispatch_runs()} for dispatch)")
        # Measured as it is, with no waiting: users do not wait for the
        # filesystem either (see BENCHMARKS.md on ext4 after many deletions).
        self.say(f"- creating an empty file in the scratch folder: {self.file_creation_us():.0f} µs"
                 " when the run began (runner creates a log file per attempt)")

    def dispatch_runs(self):
        # Dispatch is the noisiest scenario on a shared machine: more rounds.
        return max(self.args.runs, 5)

    def file_creation_us(self):
        d = self.fresh("files")
        t0 = time.monotonic()
        for i in range(500):
            with open(os.path.join(d, f"{i}.1.log"), "w"):
                pass
        return (time.monotonic() - t0) / 500 * 1e6

    # 1. Dispatch -------------------------------------------------------
    def dispatch(self):
        n = self.args.dispatch_clusters
        cgroup = own_memory_cgroup()
        self.say()
        self.say(f"## 1. Dispatch: {n} clusters of /bin/true")
        self.say()
        self.say("Each run in a fresh folder, no settling wait, in rounds of one run of each "
                 "tool. The floors: a bare posix_spawn + wait loop; the same loop creating a log "
                 "file per child (runner's file work); and with every child in a memory cgroup"
                 + (f" below {cgroup}" if cgroup else " (no cgroup here: left out)") + ".")
        places = [("tmpfs", "/dev/shm"), ("ordinary filesystem", self.scratch)]
        for where, root in places:
            fs_type = subprocess.run(["stat", "-f", "-c", "%T", root], capture_output=True,
                                     text=True).stdout.strip()
            self.say()
            self.say(f"### {where}: {root} ({fs_type})")
            self.say()
            self.say("| P | tool | wall | CPU | ÷ floor | ÷ floor with log files |")
            self.say("|---|---|---|---|---|---|")
            for p in (2, 8):
                self.dispatch_at(n, p, root, cgroup)

    def dispatch_at(self, n, p, root, cgroup):
        tools = {
            "floor (posix_spawn + wait)": lambda d: [self.floor, str(n), str(p), "/bin/true"],
            "floor with a log file per child":
                lambda d: [self.floor, "--logs", d, str(n), str(p), "/bin/true"],
            "floor in memory cgroups (vfork + join + exec)":
                lambda d: [self.floor, "--cgroup", cgroup, str(n), str(p), "/bin/true"],
            "runner": lambda d: [self.runner, str(n), str(p), "-q", "--db",
                                 os.path.join(d, "r.db"), "--", "/bin/true"],
            "runner --cap none": lambda d: [self.runner, str(n), str(p), "-q", "--cap", "none",
                                            "--db", os.path.join(d, "r.db"), "--", "/bin/true"],
            "xargs -P": lambda d: ["sh", "-c", f"seq {n} | xargs -P {p} -n 1 /bin/true"],
            "GNU parallel --joblog": lambda d: ["sh", "-c", f"seq {n} | parallel -j {p} "
                                                f"--joblog {d}/joblog /bin/true"],
        }
        if not cgroup:
            del tools["floor in memory cgroups (vfork + join + exec)"]
        if not self.args.parallel:
            del tools["GNU parallel --joblog"]
        # Rounds of one run of each tool, so that a slow spell of the machine
        # falls on all of them alike. Each run's folder is removed after it.
        results = interleaved(tools, self.dispatch_runs(), root, "runner-dispatch-")
        floor = statistics.median(results["floor (posix_spawn + wait)"][0])
        with_logs = statistics.median(results["floor with a log file per child"][0])
        for name, (walls, cpus) in results.items():
            median = statistics.median(walls)
            self.say(f"| {p} | {name} | {fmt_stats(walls)} | {fmt_stats(cpus)} | "
                     f"{median / floor:.2f} ({min(walls) / floor:.2f}-{max(walls) / floor:.2f}) | "
                     f"{median / with_logs:.2f} |")

    # 2. Resume ---------------------------------------------------------
    def resume(self):
        n = 1_000_000
        self.say()
        self.say(f"## 2. Resume: {n} clusters all recorded done, started again")
        self.say()
        d = self.fresh("resume")
        db = os.path.join(d, "r.db")
        cmd = [self.runner, str(n), "8", "-q", "--job", "resume", "--db", db, "--", "/bin/true"]
        # A log with the job, then a million done attempts written straight in.
        p = subprocess.Popen(cmd, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not os.path.exists(db):
            time.sleep(0.01)
        time.sleep(0.2)
        p.send_signal(signal.SIGKILL)
        p.wait()
        con = sqlite3.connect(db)
        with con:
            job = con.execute("SELECT id FROM job WHERE name = 'resume'").fetchone()[0]
            con.execute("DELETE FROM attempt")
            con.execute("DELETE FROM done_range")
            con.execute("UPDATE job SET holder_pid = NULL")
            con.execute(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) "
                "INSERT INTO attempt (job_id, cluster, attempt, state, pid, host, started_at, "
                "finished_at, exit_code, peak_rss_kib, log_path) SELECT ?, x, 1, 'done', 1000, 'h', "
                "1.7e9 + x, 1.7e9 + x + 0.01, 0, 1000, '/logs/' || x || '.1.log' FROM c", (n, job))
            con.execute("INSERT INTO done_range VALUES (?, 1, ?)", (job, n))
        con.close()
        walls = [run_timed(cmd, d)[0] for _ in range(self.args.runs)]
        self.say("| tool | time to exit with nothing to do |")
        self.say("|---|---|")
        self.say(f"| runner (1,000,000 attempts in the log) | {fmt_stats(walls, digits=3)} |")
        if self.args.parallel:
            joblog = os.path.join(d, "joblog")
            with open(joblog, "w") as f:
                f.write("Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n")
                for i in range(1, n + 1):
                    f.write(f"{i}\t:\t1700000000.000\t0.001\t0\t0\t0\t0\t/bin/true {i}\n")
            pwalls = [run_timed(["sh", "-c", f"seq {n} | parallel -j 8 --joblog {joblog} "
                                             f"--resume /bin/true"], d)[0]
                      for _ in range(max(1, self.args.runs - 1))]
            self.say(f"| GNU parallel --resume (1,000,000-row joblog) | {fmt_stats(pwalls)} |")

    # 3. Runner memory ----------------------------------------------------
    def memory(self):
        self.say()
        self.say("## 3. runner's own peak RSS")
        self.say()
        self.say("| job | peak RSS |")
        self.say("|---|---|")
        n = self.args.clusters
        for p in (2, 8):
            d = self.fresh("rss")
            rss = peak_rss_kib([self.runner, str(n), str(p), "-q", "--db", os.path.join(d, "r.db"),
                                "--", "/bin/true"], d)
            self.say(f"| scenario 1: {n} clusters, P = {p} | {rss / 1024:.1f} MiB |")
        d = self.fresh("billion")
        db = os.path.join(d, "r.db")
        cmd = ["/usr/bin/time", "-f", "%M", self.runner, "1000000000", "8", "-q", "--db", db,
               "--", "/bin/true"]
        p = subprocess.Popen(cmd, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
        done = 0
        while done < 3000:
            time.sleep(0.2)
            try:
                con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
                done = con.execute("SELECT coalesce(sum(done), 0) FROM progress").fetchone()[0]
                con.close()
            except sqlite3.Error:
                pass
        subprocess.run(["pkill", "-TERM", "-P", str(p.pid)])  # runner, the child of time
        err = p.communicate()[1]
        rss = int(err.strip().splitlines()[-1])
        self.say(f"| N = 1,000,000,000, stopped after {done} done | {rss / 1024:.1f} MiB |")

    # 4. Memory budget ----------------------------------------------------
    def budget(self):
        clusters, big, budget, p = 48, 8, 8 * GiB, 8
        big_mib, small_mib, hold_ms = 1536, 150, 1000
        self.say()
        self.say(f"## 4. Memory budget: {clusters} clusters, {big} hold {big_mib} MiB and the rest "
                 f"{small_mib} MiB for {hold_ms / 1000:.0f} s; budget 8 GiB, P = {p}")
        self.say()
        total_mem_s = (big * big_mib + (clusters - big) * small_mib) * MiB * hold_ms / 1000
        lower = max(total_mem_s / budget, clusters * hold_ms / 1000 / p)
        self.say(f"Lower bound: max(memory-seconds ÷ budget, clusters × duration ÷ P) = "
                 f"{lower:.2f} s")
        d = self.fresh("budget")

        # The first large allocations after a quiet spell are slow on this
        # virtual machine (see BENCHMARKS.md), so one untimed run goes first.
        warm = [self.child, "--alloc-mib", str(small_mib), "--hold-ms", str(hold_ms)]
        warm += [a for c in range(1, big + 1) for a in ("--alloc-for", f"{c}={big_mib}")]
        run_timed([self.runner, str(clusters), str(p), "-q", "--db", f"{d}/warm.db",
                   "--mem-budget", "8G", "--mem-overcommit", "--"] + warm, d)
        # No schedule can beat the children's own durations. Each kind alone,
        # on an otherwise idle machine, gives a bound that involves no runner.
        alone = {}
        for mib in (big_mib, small_mib):
            alone[mib] = statistics.median(
                run_timed([self.child, "--alloc-mib", str(mib), "--hold-ms", str(hold_ms)], d)[0]
                for _ in range(3))
        alone_bound = max(lower, (big * alone[big_mib] + (clusters - big) * alone[small_mib]) / p)
        self.say(f"Each kind alone lasts {alone[big_mib]:.2f} s and {alone[small_mib]:.2f} s here, "
                 f"so no schedule with P = {p} can take less than {alone_bound:.2f} s "
                 f"({alone_bound / lower:.2f} × the bound).")

        # Where the large clusters are decides whether memory or P binds: spread
        # out, at most two run at once; all first, the budget holds back the eighth.
        arrangements = [
            ("the large ones every sixth (3, 9, …, 45)",
             [c for c in range(1, clusters + 1) if c % 6 == 3][:big]),
            ("the large ones first (1–8)", list(range(1, big + 1))),
        ]
        parent = own_memory_cgroup()
        meter = os.path.join(parent, f"runner-bench-{os.getpid()}") if parent else None
        if meter:
            os.mkdir(meter)
        setup = types.SimpleNamespace(clusters=clusters, budget=budget, p=p, big_mib=big_mib,
                                      small_mib=small_mib, hold_ms=hold_ms, lower=lower,
                                      meter=meter)
        try:
            for label, bigs in arrangements:
                self.budget_arrangement(label, bigs, os.path.join(d, str(bigs[0])), setup)
        finally:
            if meter:
                os.rmdir(meter)

    def budget_arrangement(self, label, bigs, d, setup):
        clusters, budget, p, lower = setup.clusters, setup.budget, setup.p, setup.lower
        big_mib, small_mib, hold_ms = setup.big_mib, setup.small_mib, setup.hold_ms
        os.makedirs(d)
        self.say()
        self.say(f"### {label}")
        self.say()
        self.say("| run | makespan | ÷ lower bound | most memory at once |")
        self.say("|---|---|---|---|")
        child = [self.child, "--alloc-mib", str(small_mib)]
        for c in bigs:
            child += ["--alloc-for", f"{c}={big_mib}"]
        child += ["--hold-ms", str(hold_ms)]

        # Each tool runs in a memory cgroup of the bench's own, whose peak is
        # the most its whole process tree (runner's cgroups included) held at
        # once: the children's memory and the tool's own, page cache too.
        def measure(name, cmd, runs):
            spans, peaks, failed = [], [], 0
            for i in range(runs):
                if setup.meter:
                    with open(os.path.join(setup.meter, "memory.max_usage_in_bytes"), "w") as f:
                        f.write("0")
                wall, _, code = run_timed(cmd(i), d, cgroup=setup.meter)
                spans.append(wall)
                failed += code != 0
                if setup.meter:
                    with open(os.path.join(setup.meter, "memory.max_usage_in_bytes")) as f:
                        peaks.append(int(f.read()))
            failures = f"; {failed} of {runs} runs left clusters failed" if failed else ""
            most = f"{max(peaks) / GiB:.2f} GiB" if peaks else "(no cgroup to measure it)"
            self.say(f"| {name} | {fmt_stats(spans)}{failures} | "
                     f"{statistics.median(spans) / lower:.2f} | {most} |")

        # Round i's first run starts a log of its own, so it knows nothing; the
        # second job of round i runs on that log and knows its first run's peaks.
        def runner_cmd(i, job, *more):
            return [self.runner, str(clusters), str(p), "-q", "--db", f"{d}/r{i}.db",
                    "--job", job, "--mem-budget", "8G", *more, "--"] + child

        runs = self.args.runs
        measure("runner --mem-budget 8G --mem-overcommit, first run (nothing known)",
                lambda i: runner_cmd(i, "first", "--mem-overcommit"), runs)
        measure("runner --mem-budget 8G, second job (peaks known)",
                lambda i: runner_cmd(i, "second"), runs)
        # The same, keeping index order: what --order history changes here.
        measure("runner --mem-budget 8G --order index, third job (peaks known)",
                lambda i: runner_cmd(i, "third", "--order", "index"), runs)
        # The bound above counts only the 1 s hold; allocating and freeing
        # 1.5 GiB takes time too. runner's log has each attempt's real duration.
        sums = []
        for i in range(runs):
            con = sqlite3.connect(f"{d}/r{i}.db")
            sums.append(con.execute("SELECT sum(duration_s) FROM attempts "
                                    "WHERE job = 'second' AND state = 'done'").fetchone()[0])
            con.close()
        real_bound = max(statistics.median(sums) / p, lower)
        safe_p = budget // (big_mib * MiB)
        args_file = os.path.join(d, "args")
        with open(args_file, "w") as f:
            for c in range(1, clusters + 1):
                mib = big_mib if c in bigs else small_mib
                f.write(f"--alloc-mib {mib} --hold-ms {hold_ms}\n")
        measure(f"best safe static P = {safe_p} (xargs -P {safe_p})",
                lambda i: ["sh", "-c", f"xargs -P {safe_p} -L 1 {self.child} < {args_file}"], runs)
        if self.args.parallel:
            # GNU parallel knows no budget, only free memory: a balloon leaves
            # about 8 GiB of this machine free while it runs. It is measured
            # once it holds all it asked for.
            avail = int(open("/proc/meminfo").read().split("MemAvailable:")[1].split()[0]) * 1024
            balloon_mib = max(0, (avail - budget - GiB // 2) // MiB)
            inflated = os.path.join(d, "inflated")
            balloon = subprocess.Popen([self.child, "--alloc-mib", str(balloon_mib), "--hold-file",
                                        os.path.join(d, "deflate"), "--mem-record", inflated])
            while not os.path.exists(inflated) and balloon.poll() is None:
                time.sleep(0.1)
            measure(f"GNU parallel -j {p} --memfree {big_mib}M (about 8 GiB free)",
                    lambda i: ["sh", "-c", f"parallel -j {p} --memfree {big_mib}M --colsep ' ' "
                                           f"{self.child} {{}} < {args_file}"], runs)
            open(os.path.join(d, "deflate"), "w").close()
            balloon.wait()
        self.say(f"| (bound from runner's measured durations in the second job: their sum ÷ P) | "
                 f"{real_bound:.2f} s | {real_bound / lower:.2f} | |")


def durability(b):
    n = 2000
    b.say()
    b.say(f"## 5. Durability: {n} clusters of /bin/true, P = 8, --sync normal against full")
    b.say()
    b.say("| --sync | wall | fsyncs |")
    b.say("|---|---|---|")
    for sync in ("normal", "full"):
        walls, syncs = [], []
        for _ in range(b.args.runs):
            d = b.fresh("sync")
            cmd = ["strace", "-f", "-c", "-e", "trace=fsync,fdatasync", "-o",
                   os.path.join(d, "trace"), b.runner, str(n), "8", "-q", "--cap", "none",
                   "--sync", sync, "--db", os.path.join(d, "r.db"), "--", "/bin/true"]
            plain = cmd[7:]
            walls.append(run_timed(plain, d)[0])
            d2 = b.fresh("sync")
            cmd[6] = os.path.join(d2, "trace")
            cmd[-3] = os.path.join(d2, "r.db")
            subprocess.run(cmd, cwd=d2, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            total = 0
            for line in open(os.path.join(d2, "trace")):
                parts = line.split()
                if parts and parts[-1] in ("fsync", "fdatasync"):
                    total += int(parts[3])
            syncs.append(total)
        b.say(f"| {sync} | {fmt_stats(walls)} | {statistics.median(syncs):.0f} |")


def order(b):
    """6. The order: the same nightly job twice (a new --job each night, one
    log), with --order history and --order index, and GNU parallel."""
    rng = random.Random(7)
    lognormal = {c: min(8000, int(300 * math.exp(rng.gauss(0, 1)))) for c in range(1, 121)}
    skewed = {c: (16000 if c > 38 else 1000) for c in range(1, 41)}
    shapes = [
        ("skewed: 40 clusters, the last two 16 s and the rest 1 s", 4, skewed),
        ("lognormal: 120 clusters, median 0.3 s, sigma 1, at most 8 s (seed 7)", 8, lognormal),
    ]
    b.say()
    b.say("## 6. Order: a nightly job, first and second night")
    for label, p, ms in shapes:
        n = len(ms)
        total, longest = sum(ms.values()) / 1000, max(ms.values()) / 1000
        lower = max(total / p, longest)
        child = [b.child, "--sleep-ms", "0"]
        for c, v in ms.items():
            child += ["--sleep-for", f"{c}={v}"]
        b.say()
        b.say(f"### {label}; P = {p}")
        b.say()
        b.say(f"Lower bound: max(work {total:.1f} s ÷ P, longest {longest:.1f} s) = {lower:.2f} s")
        b.say()
        b.say("| run | first night | second night | second night ÷ lower bound |")
        b.say("|---|---|---|---|")
        nights = {"history": ([], []), "index": ([], [])}
        recorded, gnu = [], []
        for _ in range(b.args.runs):
            for how, (first, second) in nights.items():
                d = b.fresh("order")
                db = os.path.join(d, "r.db")
                for night, spans in ((1, first), (2, second)):
                    cmd = [b.runner, str(n), str(p), "-q", "--db", db, "--job", f"night-{night}",
                           "--order", how, "--"] + child
                    spans.append(run_timed(cmd, d)[0])
                if how == "history":
                    out = subprocess.run([b.runner, "report", "--json", "--db", db, "--job",
                                          "night-2"], capture_output=True, text=True).stdout
                    recorded.append(json.loads(out)[0]["lower_bound_s"])
            if b.args.parallel:
                d = b.fresh("order")
                script = f"seq {n} | parallel -j {p} 'RUNNER_CLUSTER={{}} exec " + \
                    " ".join(child) + " {}'"
                gnu.append(run_timed(["sh", "-c", script], d)[0])
        for how, (first, second) in nights.items():
            b.say(f"| runner --order {how} | {fmt_stats(first)} | {fmt_stats(second)} | "
                  f"{statistics.median(second) / lower:.3f} |")
        if gnu:
            b.say(f"| GNU parallel -j {p} (no history: every night alike) | {fmt_stats(gnu)} | "
                  f"{fmt_stats(gnu)} | {statistics.median(gnu) / lower:.3f} |")
        b.say(f"| (lower bound from the durations runner recorded on the second night) | | "
              f"{fmt_stats(recorded)} | |")


def log_formats(b):
    """7. Log formats: the same dispatch with --log-format files and stream,
beside the bare loop with and without a log file per child, on each kind of
filesystem at hand (tmpfs, the scratch folder's, and --sshfs's folder)."""
    n, p = b.args.dispatch_clusters, 2
    b.say()
    b.say(f"## 7. Log formats: {n} clusters of /bin/true, P = {p}")
    b.say()
    b.say("Each run in a fresh folder, no settling wait, in rounds of one run of each. "
          "files: a log file per attempt (removed at the end when it stayed empty); stream: "
          "the worker's children write into pipes and it appends what they write to one file "
          "per run.")
    places = [("tmpfs", "/dev/shm", False), ("scratch", b.scratch, False)]
    if b.args.sshfs:
        # The DB stays on the scratch folder (SQLite wants locks sshfs lacks):
        # only the logs go over the network, as on a cluster's shared folder.
        places.append(("network (sshfs over loopback)", b.args.sshfs, True))
    places = [place for place in places if place[0].split()[0] in b.args.places.split(",")]

    def runner(form, remote):
        def make(d):
            db = os.path.join(b.fresh("db") if remote else d, "r.db")
            return [b.runner, str(n), str(p), "-q", "--log-format", form, "--db", db, "--logs",
                    os.path.join(d, "logs"), "--", "/bin/true"]
        return make
    for where, root, remote in places:
        tools = {
            "floor (posix_spawn + wait)": lambda d: [b.floor, str(n), str(p), "/bin/true"],
            "floor with a log file per child":
                lambda d: [b.floor, "--logs", d, str(n), str(p), "/bin/true"],
            "runner --log-format files": runner("files", remote),
            "runner --log-format stream": runner("stream", remote),
        }
        fs_type = subprocess.run(["stat", "-f", "-c", "%T", root], capture_output=True,
                                 text=True).stdout.strip()
        b.say()
        b.say(f"### {where}: {root} ({fs_type})")
        b.say()
        b.say("| tool | wall | CPU | ÷ floor |")
        b.say("|---|---|---|---|")
        results = interleaved(tools, b.dispatch_runs(), root, "runner-formats-")
        floor = statistics.median(results["floor (posix_spawn + wait)"][0])
        for name, (walls, cpus) in results.items():
            median = statistics.median(walls)
            b.say(f"| {name} | {fmt_stats(walls)} | {fmt_stats(cpus)} | "
                  f"{median / floor:.2f} ({min(walls) / floor:.2f}-{max(walls) / floor:.2f}) |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--clusters", type=int, default=10000)
    ap.add_argument("--dispatch-clusters", type=int, default=3000)
    ap.add_argument("--no-parallel", dest="parallel", action="store_false")
    ap.add_argument("--only", default="1234567")
    ap.add_argument("--scratch", default=None)
    ap.add_argument("--build", default=None, help="the build folder (default build-release)")
    ap.add_argument("--sshfs", default=None,
                    help="a folder on a network filesystem for scenario 7 (say, sshfs)")
    ap.add_argument("--places", default="tmpfs,scratch,network",
                    help="scenario 7's filesystems, of tmpfs, scratch and network")
    ap.add_argument("--out")
    args = ap.parse_args()
    b = Bench(args)
    b.say("# runner benchmarks")
    b.say()
    b.versions()
    try:
        if "1" in args.only:
            b.dispatch()
        if "2" in args.only:
            b.resume()
        if "3" in args.only:
            b.memory()
        if "4" in args.only:
            b.budget()
        if "5" in args.only:
            durability(b)
        if "6" in args.only:
            order(b)
        if "7" in args.only:
            log_formats(b)
    finally:
        shutil.rmtree(b.scratch, ignore_errors=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(b.lines) + "\n")


if __name__ == "__main__":
    main()
