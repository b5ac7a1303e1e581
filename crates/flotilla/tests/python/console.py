"""The node's web console in headless Chromium, driven over the DevTools protocol
(crates/flotilla/tests/integration/operations.rs).

Usage: console.py CHROMIUM FLIGHT_URI CONSOLE_URL OUT_DIR SQL

Starts SQL through ADBC (in a thread; it runs until cancelled), opens the console, waits until
the query is listed as running and its stage graph is drawn, reads what the page shows, saves
a screenshot into OUT_DIR, presses the page's Cancel button and waits until the page lists the
query as cancelled. Prints one JSON object for the Rust test to assert on.
"""

import base64
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import adbc_driver_flightsql.dbapi as flight_sql
import websocket


def run_query(uri, sql, outcome):
    started = time.monotonic()
    try:
        with flight_sql.connect(uri) as conn, conn.cursor() as cur:
            cur.execute(sql)
            outcome["rows"] = len(cur.fetchall())
    except Exception as e:  # the cancel ends it with an error
        outcome["error"] = f"{type(e).__name__}: {e}"
    outcome["seconds"] = time.monotonic() - started


class Page:
    """One page target of a Chromium started with --remote-debugging-port."""

    def __init__(self, chromium, profile):
        self.process = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-dev-shm-usage", "--remote-debugging-port=0", "--window-size=1400,1000",
             f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line and self.process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.process.returncode}")
            if "DevTools listening on ws://" in line:
                port = int(line.split("ws://")[1].split("/")[0].rsplit(":", 1)[1])
        if port is None:
            raise RuntimeError("chromium did not open its DevTools port within a minute")
        threading.Thread(target=lambda: self.process.stderr.read(), daemon=True).start()
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        page = next(t for t in targets if t["type"] == "page")
        self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def eval(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, what, seconds=60):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(0.2)
        raise RuntimeError(f"the page never showed {what} ({expression})")

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        self.socket.close()
        self.process.kill()
        self.process.wait()


def main():
    chromium, uri, url, out, sql = sys.argv[1:6]
    outcome = {}
    query = threading.Thread(target=run_query, args=(uri, sql, outcome))
    query.start()
    seen = {}
    with tempfile.TemporaryDirectory() as profile:
        page = Page(chromium, profile)
        try:
            started = time.monotonic()
            page.call("Page.navigate", url=url)
            page.wait_for("document.readyState === 'complete'", "a loaded page")
            seen["page_seconds"] = time.monotonic() - started
            row = f"""[...document.querySelectorAll('#queries tr[data-id]')]
                .find(r => r.dataset.state === 'running' && r.querySelector('td.sql').title === {json.dumps(sql)})"""
            seen["id"] = int(page.wait_for(f"({row}) ?.dataset.id", "the query running"))
            page.eval(f"({row}).click()")
            page.wait_for("document.querySelectorAll('#stages g.stage').length > 1", "its stages")
            # Stage figures and statements come with the detail; read what the page shows.
            seen["stages"] = page.eval("""[...document.querySelectorAll('#stages g.stage')].map(g => ({
                id: Number(g.dataset.stage),
                title: g.querySelector('.title').textContent,
                tasks: [...g.querySelectorAll('.task')].map(t => t.textContent),
                operators: [...g.querySelectorAll('.operator')].map(t => t.textContent)}))""")
            seen["edges"] = page.eval("document.querySelectorAll('#stages path.edge').length")
            seen["statements"] = page.eval(
                "[...document.querySelectorAll('#statements .statement pre')].map(p => p.textContent)")
            page.wait_for("document.querySelectorAll('#nodes tr[data-node]').length >= 3", "the nodes")
            seen["nodes"] = page.eval(
                "[...document.querySelectorAll('#nodes tr[data-node]')].map(r => [r.dataset.node, r.children[1].textContent])")
            seen["catalogs"] = page.eval(
                "[...document.querySelectorAll('#sources li[data-catalog]')].map(l => l.dataset.catalog)")
            seen["detail_state"] = page.eval("document.querySelector('#detail-state').textContent")
            page.screenshot(os.path.join(out, "console-running.png"))
            seen["cancel_enabled"] = page.eval("!document.querySelector('#cancel').disabled")
            page.eval("document.querySelector('#cancel').click()")
            seen["listed_after_cancel"] = page.wait_for(
                f"document.querySelector('#queries tr[data-id=\"{seen['id']}\"]')?.dataset.state === 'cancelled' && 'cancelled'",
                "the query cancelled")
            page.screenshot(os.path.join(out, "console-cancelled.png"))
        finally:
            page.close()
    query.join(120)
    seen["client"] = outcome if not query.is_alive() else {"error": "still running 2 minutes after the cancel"}
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
