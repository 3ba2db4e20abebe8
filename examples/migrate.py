#!/usr/bin/env python3
"""A data migration that runner splits into clusters.

    migrate.py --source customers.db --cluster=3/300

processes the third of 300 equal slices of the customers table: it cleans each
row up and writes it to customers_v2. Writing with INSERT OR REPLACE in one
transaction makes a cluster safe to run again after a crash."""
import argparse
import hashlib
import sqlite3


def parse_cluster(text):
    i, n = (int(x) for x in text.split("/"))
    if not 1 <= i <= n:
        raise SystemExit(f"--cluster {text}: expected i/N with 1 <= i <= N")
    return i, n


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", required=True)
    parser.add_argument("--cluster", required=True, type=parse_cluster)
    args = parser.parse_args()
    i, n = args.cluster

    con = sqlite3.connect(args.source, timeout=60)
    lo, hi = con.execute("SELECT min(id), max(id) FROM customers").fetchone()
    span = hi - lo + 1
    start, end = lo + (i - 1) * span // n, lo + i * span // n  # this slice: [start, end)

    migrated = []
    for row_id, email, name in con.execute(
            "SELECT id, email, name FROM customers WHERE id >= ? AND id < ?", (start, end)):
        clean = email.strip().lower()
        key = hashlib.sha256(clean.encode()).hexdigest()[:16]
        migrated.append((row_id, clean, name.title(), key))
    with con:
        con.executemany("INSERT OR REPLACE INTO customers_v2 VALUES (?, ?, ?, ?)", migrated)
    print(f"cluster {i}/{n}: migrated {len(migrated)} rows, ids {start}..{end - 1}")


if __name__ == "__main__":
    main()
