"""Flight SQL clients driven by the integration tests (crates/flotilla/tests/integration/flightsql.rs).

Usage: flight_sql_client.py CHECK URI OUT_DIR [USER PASSWORD]

Each check talks to a running `flotilla serve` with a real client (ADBC's Flight SQL driver or
pyarrow.flight), prints one JSON object on stdout for the Rust test to assert on, and writes
result tables as Arrow IPC files into OUT_DIR where the test compares them row for row.
"""

import json
import os
import sys
import threading
import time
import warnings

import adbc_driver_flightsql
import adbc_driver_manager
import adbc_driver_flightsql.dbapi as flight_sql
import pyarrow
import pyarrow.flight

warnings.simplefilter("ignore")  # "Cannot disable autocommit": Flotilla has no transactions.

QUERIES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "tests", "tpch", "queries")


def connect(uri, user=None, password=None):
    kwargs = {}
    if user is not None:
        kwargs["db_kwargs"] = {"username": user, "password": password}
    return flight_sql.connect(uri, **kwargs)


def write_arrow(table, path):
    with pyarrow.ipc.new_file(path, table.schema) as writer:
        writer.write_table(table)


def check_tpch(uri, out):
    with connect(uri) as conn, conn.cursor() as cur:
        rows = {}
        for n in (1, 3):
            with open(os.path.join(QUERIES, f"q{n}.sql")) as f:
                cur.execute(f.read())
            table = cur.fetch_arrow_table()
            write_arrow(table, os.path.join(out, f"q{n}.arrow"))
            rows[f"q{n}"] = table.num_rows
        return rows


def check_objects(uri, out):
    with connect(uri) as conn:
        objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
    tree = {}
    for catalog in objects:
        schemas = tree.setdefault(catalog["catalog_name"], {})
        for schema in catalog["catalog_db_schemas"] or []:
            tables = schemas.setdefault(schema["db_schema_name"], {})
            for table in schema["db_schema_tables"] or []:
                tables[table["table_name"]] = [c["column_name"] for c in table["table_columns"] or []]
    return tree


def check_info(uri, out):
    with connect(uri) as conn:
        info = conn.adbc_get_info()
    return {k: v for k, v in info.items() if isinstance(v, (str, int, bool))}


def check_prepared(uri, out):
    with connect(uri) as conn, conn.cursor() as cur:
        names = []
        for key in (3, 7, 24):
            cur.execute("SELECT n_name FROM nation WHERE n_nationkey = ?", parameters=(key,))
            names.append(cur.fetchall()[0][0])
        cur.execute("SELECT count(*) FROM lineitem WHERE l_quantity > ? AND l_returnflag = ?",
                    parameters=(45, "R"))
        count = cur.fetchall()[0][0]
        # SQL's own PREPARE / EXECUTE / DEALLOCATE, as in a DataFusion session.
        cur.execute("PREPARE pick(BIGINT) AS SELECT n_name FROM nation WHERE n_nationkey = $1")
        cur.execute("EXECUTE pick(24)")
        executed = cur.fetchall()[0][0]
        cur.execute("DEALLOCATE pick")
        try:
            cur.execute("EXECUTE pick(24)")
            deallocated = None
        except adbc_driver_manager.Error as e:
            deallocated = str(e)
        # execute_schema (GetSchema): the columns without running the query.
        schema = cur.adbc_execute_schema("SELECT n_nationkey, n_name FROM nation")
        # Incremental execution (PollFlightInfo), read to the end.
        statement = cur.adbc_statement
        statement.set_options(**{"adbc.statement.exec.incremental": "true"})
        statement.set_sql_query("SELECT count(*) AS n FROM nation")
        partitions, _, _ = statement.execute_partitions()
        polled = []
        for partition in partitions:
            cur.adbc_read_partition(partition)
            polled.append(cur.fetchall())
        return {"names": names, "count": count, "executed": executed,
                "deallocated": deallocated, "schema": [f.name for f in schema],
                "polled": polled}


def execute_update(cur, sql):
    """ADBC's executeUpdate (CommandStatementUpdate): returns the rows affected."""
    statement = cur.adbc_statement
    statement.set_sql_query(sql)
    return statement.execute_update()


def check_update(uri, out):
    with connect(uri) as conn, conn.cursor() as cur:
        created = execute_update(cur, "CREATE TABLE datafusion.public.picked (k BIGINT, name VARCHAR)")
        inserted = execute_update(
            cur, "INSERT INTO datafusion.public.picked SELECT n_nationkey, n_name FROM nation "
                 "WHERE n_regionkey = 2")
    with connect(uri) as conn, conn.cursor() as cur:
        # DML sent as a query (what DB-API execute does) runs even if nobody fetches its count.
        cur.execute("CREATE TABLE datafusion.public.more (k BIGINT)")
        cur.execute("INSERT INTO datafusion.public.more VALUES (1), (2), (3)")
        cur.execute("SELECT count(*) FROM datafusion.public.more")
        as_query = cur.fetchall()[0][0]
        # A prepared insert bound with several rows: one execution per row.
        cur.executemany("INSERT INTO datafusion.public.more VALUES (?)", [(10,), (11,)])
        cur.execute("SELECT count(*) FROM datafusion.public.more")
        after_many = cur.fetchall()[0][0]
    return {"created": created[0] if isinstance(created, tuple) else created,
            "inserted": inserted[0] if isinstance(inserted, tuple) else inserted,
            "as_query": as_query, "after_many": after_many}


def check_ingest(uri, out):
    data = pyarrow.table({"k": pyarrow.array([1, 2, 3], pyarrow.int64()),
                          "name": ["a", "b", None]})
    with connect(uri) as conn, conn.cursor() as cur:
        created = cur.adbc_ingest("ingested", data, mode="create", catalog_name="datafusion",
                                  db_schema_name="public")
        appended = cur.adbc_ingest("ingested", data.slice(0, 2), mode="append",
                                   catalog_name="datafusion", db_schema_name="public")
        cur.execute("SELECT count(*), sum(k), count(name) FROM datafusion.public.ingested")
        count, total, names = cur.fetchall()[0]
        try:
            cur.adbc_ingest("ingested", data, mode="create", catalog_name="datafusion",
                            db_schema_name="public")
            again = None
        except Exception as e:
            again = f"{type(e).__name__}: {e}"
    return {"created": created, "appended": appended, "count": count, "sum": total,
            "names": names, "again": again}


def check_sessions(uri, out):
    with connect(uri) as a, connect(uri) as b, a.cursor() as ca, b.cursor() as cb:
        ca.execute("SET datafusion.execution.batch_size = 1111")
        cb.execute("SET datafusion.execution.batch_size = 2222")
        ca.execute("SHOW datafusion.execution.batch_size")
        cb.execute("SHOW datafusion.execution.batch_size")
        return {"a": ca.fetchall()[0][1], "b": cb.fetchall()[0][1]}


def check_errors(uri, out):
    result = {}
    with connect(uri) as conn, conn.cursor() as cur:
        for name, sql in (("syntax", "SELEC 1"), ("unknown", "SELECT * FROM no_such_table")):
            try:
                cur.execute(sql)
                cur.fetchall()
                result[name] = None
            except Exception as e:  # the DB-API error carries the status text
                result[name] = f"{type(e).__name__}: {e}"
        cur.execute("SELECT 42")
        result["after"] = cur.fetchall()[0][0]
    return result


def check_cancel(uri, out):
    with connect(uri) as conn, conn.cursor() as cur:
        cur.execute("SELECT a.l_orderkey, b.l_partkey FROM lineitem a CROSS JOIN lineitem b")
        reader = cur.fetch_record_batch()
        reader.read_next_batch()
        started = time.monotonic()
        timer = threading.Timer(0.2, cur.adbc_cancel)
        timer.start()
        error = None
        batches = 0
        try:
            for _ in reader:
                batches += 1
        except Exception as e:
            error = f"{type(e).__name__}: {e}"
        timer.join()
        seconds = time.monotonic() - started
    with connect(uri) as conn, conn.cursor() as cur:
        cur.execute("SELECT 7")
        after = cur.fetchall()[0][0]
    return {"error": error, "seconds": seconds, "after": after}


def check_auth(uri, out, user=None, password=None):
    try:
        with connect(uri, user, password) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM region")
            return {"rows": cur.fetchall()[0][0], "error": None}
    except Exception as e:
        return {"rows": None, "error": f"{type(e).__name__}: {e}"}


def check_queries(uri, out, *sqls):
    """Runs each statement; the rows of each, or its error."""
    results = []
    with connect(uri) as conn, conn.cursor() as cur:
        for sql in sqls:
            try:
                cur.execute(sql)
                results.append({"rows": len(cur.fetchall())})
            except adbc_driver_manager.Error as e:
                results.append({"error": str(e)})
    return results


def check_cluster(uri, out, user, password, sql):
    """A node that coordinates a cluster: the plan it shows and the rows it returns."""
    with connect(uri, user, password) as conn, conn.cursor() as cur:
        cur.execute("EXPLAIN " + sql)
        plan = "\n".join(str(row[1]) for row in cur.fetchall())
        cur.execute(sql)
        table = cur.fetch_arrow_table()
    write_arrow(table, os.path.join(out, "cluster.arrow"))
    return {"plan": plan, "rows": table.num_rows}


def check_cluster_results(uri, out, user, password, sql):
    """A query whose rows the workers serve (the nodes' [session.options] spread its stages
    over every node): where each endpoint says to read, and the rows ADBC reads from them
    (with the token of the node it signed in to)."""
    with connect(uri, user, password) as conn, conn.cursor() as cur:
        partitions, _ = cur.adbc_execute_partitions(sql)
        locations = []
        for partition in partitions:
            # The Go driver's partition: a FlightInfo with that one endpoint.
            (endpoint,) = pyarrow.flight.FlightInfo.deserialize(partition).endpoints
            uris = [location.uri for location in endpoint.locations]
            locations.append([u.decode() if isinstance(u, bytes) else u for u in uris])
        cur.execute(sql)
        table = cur.fetch_arrow_table()
    write_arrow(table, os.path.join(out, "results.arrow"))
    return {"locations": locations, "rows": table.num_rows}


def check_tls(uri, out, root_cert):
    with open(root_cert) as f:
        pem = f.read()
    kwargs = {"db_kwargs": {"adbc.flight.sql.client_option.tls_root_certs": pem}}
    with flight_sql.connect(uri, **kwargs) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM region")
        trusted = cur.fetchall()[0][0]
    try:
        with flight_sql.connect(uri) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchall()
        untrusted = None
    except Exception as e:
        untrusted = f"{type(e).__name__}: {e}"
    return {"trusted": trusted, "untrusted": untrusted}


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number, payload):
    """A length-delimited protobuf field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def check_pyarrow(uri, out):
    """Plain Flight (no Flight SQL library): a hand-encoded CommandStatementQuery in an Any."""
    client = pyarrow.flight.FlightClient(uri)
    command = field(1, b"SELECT r_regionkey, r_name FROM region ORDER BY r_regionkey")
    any_message = field(1, b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery") \
        + field(2, command)
    info = client.get_flight_info(pyarrow.flight.FlightDescriptor.for_command(any_message))
    table = client.do_get(info.endpoints[0].ticket).read_all()
    write_arrow(table, os.path.join(out, "pyarrow.arrow"))
    try:
        client.do_get(pyarrow.flight.Ticket(b"not a ticket")).read_all()
        bad = None
    except (pyarrow.flight.FlightError, pyarrow.ArrowException) as e:
        bad = f"{type(e).__name__}: {e}"
    return {"schema": [f.name for f in info.schema], "rows": table.num_rows, "bad_ticket": bad}


def main():
    check, uri, out = sys.argv[1:4]
    extra = sys.argv[4:]
    result = globals()[f"check_{check}"](uri, out, *extra)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
