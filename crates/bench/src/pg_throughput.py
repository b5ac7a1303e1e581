"""Times `SELECT * FROM lineitem` read by psycopg 3 from each server named: a Flotilla node's
PostgreSQL port and, when given, PostgreSQL itself serving the same table.

Arguments: repeat, then pairs of (name, conninfo, sql). Prints one JSON object: per name the
rows read and the best time in seconds. Rows are fetched in chunks of 100,000 with the default
(text) result format, as an application reading a big result would.
"""

import json
import sys
import time

import psycopg


def read(conninfo, sql):
    with psycopg.connect(conninfo, autocommit=True) as conn:
        started = time.perf_counter()
        rows = 0
        with conn.cursor() as cur:
            cur.execute(sql)
            while True:
                chunk = cur.fetchmany(100_000)
                if not chunk:
                    break
                rows += len(chunk)
        return rows, time.perf_counter() - started


def main():
    repeat = int(sys.argv[1])
    servers = sys.argv[2:]
    figures = {}
    for i in range(0, len(servers), 3):
        name, conninfo, sql = servers[i:i + 3]
        best = None
        for _ in range(repeat):
            rows, seconds = read(conninfo, sql)
            best = seconds if best is None else min(best, seconds)
        figures[name] = {"rows": rows, "s": best}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
