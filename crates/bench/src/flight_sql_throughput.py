"""Throughput of `flotilla bench flightsql`, measured by a real Python client.

Usage: flight_sql_throughput.py URI PARQUET_FILE REPEAT

Reads `SELECT * FROM lineitem` over ADBC's Flight SQL driver into one Arrow table, and the same
Parquet file with pyarrow locally (the upper bound: no network, no server), best of REPEAT runs
each; prints JSON.
"""

import json
import sys
import time
import warnings

import adbc_driver_flightsql.dbapi as flight_sql
import pyarrow.parquet

warnings.simplefilter("ignore")


def best(runs, work):
    times = []
    result = None
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return min(times), result


def main():
    uri, parquet_file, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with flight_sql.connect(uri) as conn, conn.cursor() as cur:
        # Latency first, in a fresh process: measured after the big fetch below, each call
        # took ~10x longer (the process then holds millions of rows).
        latencies = []
        for _ in range(200):
            started = time.perf_counter()
            cur.execute("SELECT 1")
            cur.fetchall()
            latencies.append(time.perf_counter() - started)

        def fetch():
            cur.execute("SELECT * FROM lineitem")
            return cur.fetch_arrow_table()

        adbc_s, fetched = best(repeat, fetch)
        rows, size = fetched.num_rows, fetched.nbytes
        del fetched
    local_s, table = best(repeat, lambda: pyarrow.parquet.read_table(parquet_file))
    latencies.sort()
    print(json.dumps({
        "rows": rows,
        "bytes": size,
        "local_rows": table.num_rows,
        "local_bytes": table.nbytes,
        "local_s": local_s,
        "adbc_s": adbc_s,
        "adbc_select1_p50_ms": latencies[len(latencies) // 2] * 1000,
        "adbc_select1_p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }))


if __name__ == "__main__":
    main()
