#!/usr/bin/env python3
"""Makes the demo's source data: a SQLite table of customers with messy emails
and names, as a real migration would find them. Deterministic, and left alone
if it exists already, so that running the demo again shows a resume."""
import random
import sqlite3
import sys

ROWS = 60_000


def main(path):
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute(
        "CREATE TABLE IF NOT EXISTS customers (id INTEGER PRIMARY KEY, email TEXT, name TEXT)")
    con.execute(
        "CREATE TABLE IF NOT EXISTS customers_v2 ("
        " id INTEGER PRIMARY KEY, email TEXT NOT NULL, name TEXT NOT NULL, email_key TEXT NOT NULL)")
    if con.execute("SELECT count(*) FROM customers").fetchone()[0] == ROWS:
        return
    rng = random.Random(42)
    first = ["ada", "alan", "grace", "edsger", "barbara", "donald", "frances", "ken"]
    last = ["lovelace", "turing", "hopper", "dijkstra", "liskov", "knuth", "allen", "thompson"]
    rows = []
    for i in range(1, ROWS + 1):
        f, l = rng.choice(first), rng.choice(last)
        email = f"  {f.upper() if i % 3 == 0 else f}.{l}{i}@Example.COM "
        rows.append((i, email, f"{f} {l}"))
    with con:
        con.execute("DELETE FROM customers")
        con.executemany("INSERT INTO customers VALUES (?, ?, ?)", rows)


if __name__ == "__main__":
    main(sys.argv[1])
