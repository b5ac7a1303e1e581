"""Reading a big result from a cluster, measured by a real Python client (`flotilla bench
flightsql --workers N`).

Usage: cluster_results.py URI REPEAT SQL

Fetches SQL over ADBC's Flight SQL driver into one Arrow table three ways, switched with `SET`
in one session: on the node alone (`distributed.enabled = false`), distributed with the rows
coming through the node asked (`distributed.results_from_workers = false`), and distributed
with the rows read from the workers. The ways take turns in each of REPEAT rounds (so drift
of a shared machine hits them alike); the best time of each is printed as JSON, with the
endpoints its FlightInfo had. Fails when the ways return different row counts.
"""

import json
import sys
import time
import warnings

import adbc_driver_flightsql.dbapi as flight_sql

warnings.simplefilter("ignore")

# The distributed ways put a task on every node whatever the data's size.
SPREAD = ["distributed.enabled = true", "distributed.min_bytes = 0",
          "distributed.bytes_per_task = 1"]
WAYS = {
    "one_node": ["distributed.enabled = false"],
    "coordinator": SPREAD + ["distributed.results_from_workers = false"],
    "workers": SPREAD + ["distributed.results_from_workers = true"],
}


def main():
    uri, repeat, sql = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    best = {}
    with flight_sql.connect(uri) as conn, conn.cursor() as cur:
        for _ in range(max(repeat, 1)):
            for way, settings in WAYS.items():
                for setting in settings:
                    cur.execute("SET " + setting)
                started = time.perf_counter()
                cur.execute(sql)
                table = cur.fetch_arrow_table()
                seconds = time.perf_counter() - started
                rows, size = table.num_rows, table.nbytes
                del table
                if way not in best or seconds < best[way]["s"]:
                    best[way] = {"s": seconds, "rows": rows, "bytes": size}
        for way, settings in WAYS.items():
            for setting in settings:
                cur.execute("SET " + setting)
            partitions, _ = cur.adbc_execute_partitions(sql)
            best[way]["endpoints"] = len(partitions)
    counts = {way: figures["rows"] for way, figures in best.items()}
    if len(set(counts.values())) != 1:
        sys.exit(f"the ways returned different row counts: {counts}")
    print(json.dumps(best))


if __name__ == "__main__":
    main()
