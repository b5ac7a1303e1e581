"""psycopg 3 against a node's PostgreSQL port: one check per run, its result as JSON on stdout.

    python pg_client.py CHECK CONNINFO [ARGS...]

Checks:
  query SQL            rows of SQL (simple protocol, text), values as strings (None for NULL)
  prepared             the same statement with parameters of several types, prepared once and run
                       with different values (extended protocol, server-side prepare)
  login                connects and runs SELECT 1 (exit code 1 with the error when refused)
  stop                 a long query cancelled by the client after a second, then one stopped by
                       flotilla.statement_timeout; the connection keeps working after each
"""

import json
import sys
import threading
import time

import psycopg


def text(value):
    return None if value is None else str(value)


def main():
    check, conninfo = sys.argv[1], sys.argv[2]
    args = sys.argv[3:]
    if check == "login":
        try:
            with psycopg.connect(conninfo, connect_timeout=10) as conn:
                row = conn.execute("SELECT 1").fetchone()
                ssl = conn.pgconn.ssl_in_use
            print(json.dumps({"ok": True, "row": [text(v) for v in row], "ssl": ssl}))
        except psycopg.Error as e:
            print(json.dumps({"ok": False, "sqlstate": e.sqlstate, "error": str(e)}))
        return
    with psycopg.connect(conninfo, connect_timeout=10, autocommit=True) as conn:
        if check == "query":
            # The simple protocol: no parameters, every statement as written.
            cur = conn.cursor()
            cur.execute(args[0].encode(), prepare=False)
            print(json.dumps({
                "columns": [d.name for d in cur.description],
                "rows": [[text(v) for v in row] for row in cur.fetchall()],
            }))
        elif check == "prepared":
            sql = ("SELECT n_nationkey, n_name FROM nation "
                   "WHERE n_nationkey >= %s AND n_name <> %s ORDER BY n_nationkey LIMIT %s")
            results = []
            for values in [(3, "CHINA", 4), (20, "X", 100), (30, "X", 1)]:
                # prepare=True: Parse once, then Bind/Execute with each set of values.
                rows = conn.execute(sql, values, prepare=True).fetchall()
                results.append([[text(v) for v in row] for row in rows])
            binary = conn.cursor(binary=True)
            typed = binary.execute(
                "SELECT %s::int + 1, %s::double precision * 2, %s::text || '!', %s::date",
                (41, 1.25, "hi", "2024-02-29"),
            ).fetchone()
            print(json.dumps({"results": results, "typed": [text(v) for v in typed]}))
        elif check == "stop":
            long = "SELECT count(*) FROM generate_series(1, 100000000000)"
            outcome = {}
            canceller = threading.Timer(1.0, conn.cancel_safe)
            canceller.start()
            started = time.monotonic()
            try:
                conn.execute(long)
                outcome["cancel"] = "finished"
            except psycopg.Error as e:
                outcome["cancel"] = {"sqlstate": e.sqlstate, "error": str(e),
                                     "seconds": time.monotonic() - started}
            canceller.join()
            outcome["after_cancel"] = text(conn.execute("SELECT 1").fetchone()[0])
            conn.execute("SET flotilla.statement_timeout = '300ms'")
            try:
                conn.execute(long)
                outcome["timeout"] = "finished"
            except psycopg.Error as e:
                outcome["timeout"] = {"sqlstate": e.sqlstate, "error": str(e)}
            outcome["after_timeout"] = text(conn.execute("SELECT 2").fetchone()[0])
            print(json.dumps(outcome))
        elif check == "busy":
            # One connection holds the node's only turn with a long query (ended by its
            # statement timeout); another asks for one meanwhile, and again after.
            long = "SELECT count(*) FROM generate_series(1, 100000000000)"
            outcome = {}
            conn.execute("SET flotilla.statement_timeout = '4s'")

            def hold():
                try:
                    conn.execute(long)
                    outcome["long"] = "finished"
                except psycopg.Error as e:
                    outcome["long"] = {"sqlstate": e.sqlstate, "error": str(e)}

            holder = threading.Thread(target=hold)
            holder.start()
            time.sleep(1.0)
            with psycopg.connect(conninfo, connect_timeout=10, autocommit=True) as other:
                try:
                    other.execute("SELECT 1")
                    outcome["while_busy"] = "ran"
                except psycopg.Error as e:
                    outcome["while_busy"] = {"sqlstate": e.sqlstate, "error": str(e)}
                holder.join()
                outcome["after"] = text(other.execute("SELECT 2").fetchone()[0])
            print(json.dumps(outcome))
        else:
            raise SystemExit(f"unknown check {check}")


if __name__ == "__main__":
    main()
