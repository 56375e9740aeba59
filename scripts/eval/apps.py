"""The real third-party servers the evaluation records (datasette, jupyter-server): how to
start them on an OS-assigned port and the scripted, deterministic workload driven through
driftcheck's recording listener.
"""

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

USER_AGENT = "driftcheck-eval/1 (+scripts/eval)"


# ---------------------------------------------------------------- processes


class Server:
    """A child process in its own process group whose output is kept in a log file and
    scanned for a line that announces its port."""

    def __init__(self, argv, log_path, port_pattern, cwd=None, env=None):
        self.log_path = log_path
        self.log = open(log_path, "w", encoding="utf-8")
        self.process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True, text=True, errors="replace")
        self.port = None
        self.ready = threading.Event()
        self.pattern = re.compile(port_pattern)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.log.write(line)
            self.log.flush()
            self.lines.append(line)
            if self.port is None:
                match = self.pattern.search(line)
                if match:
                    self.port = int(match.group(1))
                    self.ready.set()
        self.ready.set()

    def wait_port(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready.wait(0.2):
                break
        if self.port is None:
            raise RuntimeError(f"{self.process.args[0]} did not announce a port; see {self.log_path}:\n"
                               + "".join(self.lines[-20:]))
        return self.port

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.reader.join(5)
        self.log.close()
        return self.process.returncode


def wait_http(url, timeout, headers=None):
    """Polls until `url` answers with any HTTP status."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except (urllib.error.URLError, ConnectionError, OSError) as error:
            last = error
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s: {last}")


# ---------------------------------------------------------------- the client


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Client:
    """urllib against the recording listener; every exchange is kept as the client saw it."""

    def __init__(self, base):
        self.base = base.rstrip("/")
        self.opener = urllib.request.build_opener(_NoRedirect())
        self.log = []

    def request(self, method, target, headers=None, body=None, json_body=None):
        data = None
        all_headers = {"User-Agent": USER_AGENT}
        all_headers.update(headers or {})
        if json_body is not None:
            data = json.dumps(json_body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        elif body is not None:
            data = body if isinstance(body, bytes) else body.encode()
        request = urllib.request.Request(self.base + target, data=data, headers=all_headers, method=method)
        try:
            with self.opener.open(request, timeout=60) as response:
                status, response_headers, payload = response.status, list(response.headers.items()), response.read()
        except urllib.error.HTTPError as error:
            status, response_headers, payload = error.code, list(error.headers.items()), error.read()
        text = payload.decode("utf-8", errors="replace")
        parsed = None
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            pass
        self.log.append({
            "method": method, "target": target, "request_headers": list(all_headers.items()),
            "request_body": data.decode("utf-8", errors="replace") if data else "",
            "status": status, "response_headers": response_headers, "response_body": text,
        })
        return status, dict((k.lower(), v) for k, v in response_headers), parsed

    def get(self, target, headers=None):
        return self.request("GET", target, headers=headers)


def local_target(url):
    """The path and query of an absolute URL an app handed out (next_url, Location)."""
    parts = urllib.parse.urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


# ---------------------------------------------------------------- datasette


STATUSES = ["PLACED", "PAID", "SHIPPED", "CANCELLED"]
CATEGORIES = ["tools", "garden", "kitchen", "toys"]
FIRST = ["ada", "bo", "cyd", "dee", "eli", "fay", "gus", "hal", "ivy", "jon"]
LAST = ["north", "south", "east", "west", "stone", "brook", "field", "marsh"]
WORDS = ["blue", "red", "green", "small", "large", "steel", "oak", "glass", "quiet", "swift"]
THINGS = ["widget", "gadget", "kettle", "spade", "lamp", "kite", "crate", "brush"]


def build_shop_db(path, seed):
    """A deterministic `shop` database: customers, orders (status, money, timestamps), products."""
    rng = random.Random(f"{seed}:shop")
    if os.path.exists(path):
        os.remove(path)
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE customers (
            id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, phone TEXT,
            tier TEXT NOT NULL, created_at TEXT NOT NULL);
        CREATE TABLE products (
            slug TEXT PRIMARY KEY, title TEXT NOT NULL, category TEXT NOT NULL, price REAL NOT NULL,
            stock INTEGER NOT NULL, active INTEGER NOT NULL);
        CREATE TABLE orders (
            id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
            status TEXT NOT NULL, total REAL NOT NULL, currency TEXT NOT NULL, items INTEGER NOT NULL,
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL, shipped_at TEXT, note TEXT);
        CREATE INDEX orders_status ON orders(status);
    """)
    for i in range(1, 41):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        phone = None if i % 3 == 0 else f"+44 20 7946 {rng.randrange(1000, 9999)}"
        db.execute("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)", (
            i, f"{first.title()} {last.title()}", f"{first}.{last}{i}@example.com", phone,
            rng.choice(["gold", "silver", "bronze"]), f"2024-01-{1 + i % 28:02d}T09:{i % 60:02d}:00Z"))
    slugs = []
    for word in WORDS:
        for thing in THINGS:
            slug = f"{word}-{thing}"
            if rng.random() < 0.3 and len(slugs) < 24:
                slugs.append(slug)
                db.execute("INSERT INTO products VALUES (?, ?, ?, ?, ?, ?)", (
                    slug, f"{word.title()} {thing.title()}", rng.choice(CATEGORIES),
                    round(rng.uniform(2, 120), 2), rng.randrange(0, 500), 1 if rng.random() < 0.8 else 0))
    for i in range(1, 121):
        status = rng.choices(STATUSES, weights=[2, 4, 4, 1])[0]
        day, hour, minute = 1 + i % 28, i % 24, (i * 7) % 60
        created = f"2024-05-{day:02d}T{hour:02d}:{minute:02d}:00Z"
        updated = f"2024-06-{day:02d} {hour:02d}:{minute:02d}:00"
        shipped = f"2024-05-{min(day + 2, 28):02d}T{hour:02d}:{minute:02d}:00Z" if status == "SHIPPED" else None
        note = rng.choice([None, None, "leave at door", "gift wrap"])
        db.execute("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (
            i, rng.randrange(1, 41), status, round(rng.uniform(5, 500), 2), rng.choice(["EUR", "GBP", "USD"]),
            rng.randrange(1, 9), created, updated, shipped, note))
    db.commit()
    db.close()
    return slugs


class App:
    """One third-party server: `start` it (returns its base URL), drive `workload`, `stop` it.
    Subclasses name it and say how to launch it."""

    name = service = package = None

    def __init__(self, workdir, venv_bin, seed):
        self.workdir = workdir
        self.venv_bin = venv_bin
        self.seed = seed
        self.server = None

    def serve(self, argv, port_pattern, port_timeout, ready_path, cwd, env=None, headers=None):
        """Launches `argv` (output in app.log), reads its port from the line matching
        `port_pattern`, then waits until `ready_path` answers; returns the base URL."""
        self.server = Server(argv, os.path.join(self.workdir, "app.log"), port_pattern, cwd=cwd, env=env)
        port = self.server.wait_port(port_timeout)
        self.url = f"http://127.0.0.1:{port}"
        wait_http(self.url + ready_path, 60, headers)
        return self.url

    def stop(self):
        if self.server:
            self.server.stop(signal.SIGTERM)


class Datasette(App):
    name = "datasette"
    service = "datasette"
    package = "datasette"

    def start(self):
        db_dir = os.path.join(self.workdir, "app")
        os.makedirs(db_dir, exist_ok=True)
        db_path = os.path.join(db_dir, "shop.db")
        self.slugs = build_shop_db(db_path, self.seed)
        argv = [os.path.join(self.venv_bin, "datasette"), "serve", db_path, "-h", "127.0.0.1", "-p", "0",
                "--setting", "sql_time_limit_ms", "5000", "--setting", "suggest_facets", "off"]
        return self.serve(argv, r"Uvicorn running on http://127\.0\.0\.1:(\d+)", 60, "/-/versions.json", db_dir)

    def workload(self, client):
        json_accept = {"Accept": "application/json"}
        # instance metadata, twice each
        for target in ["/-/versions.json", "/-/settings.json", "/-/databases.json", "/.json", "/shop.json"]:
            client.get(target)
            client.get(target, json_accept)
        # row pages: the default shape (rows as arrays) and objects, some twice
        for order_id in range(1, 21):
            client.get(f"/shop/orders/{order_id}.json")
        for order_id in range(1, 9):
            client.get(f"/shop/orders/{order_id}.json")
        for order_id in range(5, 25):
            client.get(f"/shop/orders/{order_id}.json?_shape=objects", json_accept)
        for order_id in range(5, 11):
            client.get(f"/shop/orders/{order_id}.json?_shape=objects", json_accept)
        for missing in [9001, 9002, 9003, 9004, 9005, 9006, 9001, 9002]:
            client.get(f"/shop/orders/{missing}.json?_shape=objects")
        for customer_id in list(range(1, 13)) + [1, 2, 3, 4]:
            client.get(f"/shop/customers/{customer_id}.json?_shape=objects")
        client.get("/shop/customers/999.json?_shape=objects")
        client.get("/shop/customers/999.json?_shape=objects")
        for slug in self.slugs[:10]:
            client.get(f"/shop/products/{slug}.json?_shape=objects", json_accept)
        client.get("/shop/products/no-such-thing.json?_shape=objects")
        client.get("/shop/products/no-such-thing.json?_shape=objects")
        # pagination, followed through next_url, twice
        for _ in range(2):
            target = "/shop/orders.json?_shape=objects&_size=5"
            for _page in range(6):
                _status, _headers, body = client.get(target, json_accept)
                if not isinstance(body, dict) or not body.get("next_url"):
                    break
                target = local_target(body["next_url"])
        # filters and sorting
        for status in STATUSES:
            client.get(f"/shop/orders.json?status={status}&_shape=array&_size=10")
            client.get(f"/shop/orders.json?status={status}&_shape=array&_size=10")
            client.get(f"/shop/orders.json?status={status}&_shape=objects&_size=5", json_accept)
        client.get("/shop/orders.json?shipped_at__isnull=1&_shape=array&_size=5")
        client.get("/shop/orders.json?_sort_desc=total&_shape=array&_size=5")
        client.get("/shop/orders.json?total__gt=400&_shape=array")
        client.get("/shop/orders.json?customer_id=3&_shape=objects")
        client.get("/shop/orders.json?_labels=on&_shape=objects&_size=3")
        client.get("/shop/orders.json?_size=3")
        client.get("/shop/orders.json?_size=3")
        for _ in range(2):
            client.get("/shop/customers.json?_shape=array&_size=20")
            client.get("/shop/products.json?_shape=objects", json_accept)
        for category in CATEGORIES:
            client.get(f"/shop/products.json?category={category}&_shape=array")
        sql = urllib.parse.quote("select status, count(*) as n, round(sum(total), 2) as revenue "
                                 "from orders group by status order by status")
        client.get(f"/shop.json?sql={sql}&_shape=array")
        client.get(f"/shop.json?sql={sql}&_shape=array")
        # errors
        client.get("/shop/no_such_table.json")
        client.get("/shop/no_such_table.json")
        client.get("/no_such_db.json")
        client.get("/shop.json?sql=select+nonsense+from&_shape=array")


# ---------------------------------------------------------------- jupyter-server


NOTEBOOK = {
    "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "# Orders report"},
        {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": "print(1 + 1)"},
    ],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


class Jupyter(App):
    name = "jupyter"
    service = "jupyter"
    package = "jupyter_server"
    token = "eval-token-7d1c4f0e"

    def start(self):
        root = os.path.join(self.workdir, "app", "root")
        home = os.path.join(self.workdir, "app", "home")
        for directory in (root, home):
            if os.path.exists(directory):
                subprocess.run(["rm", "-rf", directory], check=True)
            os.makedirs(directory)
        env = dict(os.environ)
        env.update({
            "HOME": home, "JUPYTER_CONFIG_DIR": os.path.join(home, "config"),
            "JUPYTER_DATA_DIR": os.path.join(home, "data"), "JUPYTER_RUNTIME_DIR": os.path.join(home, "runtime"),
            "JUPYTER_PLATFORM_DIRS": "1", "JUPYTER_NO_CONFIG": "1", "TZ": "UTC",
        })
        argv = [os.path.join(self.venv_bin, "python"), "-m", "jupyter_server", "--no-browser", "--allow-root",
                "--ServerApp.ip=127.0.0.1", "--port=0", "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}"]
        return self.serve(argv, r"http://127\.0\.0\.1:(\d+)/", 90, "/api/status", home, env=env,
                          headers={"Authorization": f"token {self.token}"})

    def workload(self, client):
        auth = {"Authorization": f"token {self.token}"}
        auth_json = dict(auth, Accept="application/json")
        c = client

        def contents(path, method="GET", query="", body=None, headers=None):
            target = "/api/contents" + (("/" + urllib.parse.quote(path)) if path else "") + query
            return c.request(method, target, headers=headers or auth, json_body=body)

        for target in ["/api", "/api/status", "/api/me", "/api/kernelspecs", "/api/sessions", "/api/kernels"]:
            c.get(target, auth)
            c.get(target, auth_json)
        contents("")
        contents("", headers=auth_json)
        contents("reports", "PUT", body={"type": "directory"})
        contents("notebooks", "PUT", body={"type": "directory"})
        for i in range(1, 13):
            text = f"report {i}\n" + "".join(f"line {n}: total {n * i}\n" for n in range(1, 1 + i % 5))
            contents(f"reports/report-{i:02d}.txt", "PUT", body={"type": "file", "format": "text", "content": text})
        for i in list(range(1, 13)) + list(range(1, 7)):
            contents(f"reports/report-{i:02d}.txt", query="?content=0", headers=auth_json)
        for i in range(1, 9):
            contents(f"reports/report-{i:02d}.txt")
        for i in range(1, 4):
            contents(f"reports/report-{i:02d}.txt", query="?type=file&format=base64")
        for i in range(1, 5):
            nb = json.loads(json.dumps(NOTEBOOK))
            nb["cells"][0]["source"] = f"# Orders report {i}"
            contents(f"notebooks/analysis-{i}.ipynb", "PUT", body={"type": "notebook", "content": nb})
        for i in range(1, 5):
            contents(f"notebooks/analysis-{i}.ipynb")
            contents(f"notebooks/analysis-{i}.ipynb", query="?content=0")
        # untitled files: the same request, a different answer every time
        for _ in range(4):
            contents("reports", "POST", body={"type": "file", "ext": ".txt"})
        for _ in range(2):
            contents("notebooks", "POST", body={"type": "notebook"})
        contents("reports", "POST", body={"copy_from": "reports/report-01.txt"})
        contents("reports", "POST", body={"copy_from": "reports/report-01.txt"})
        for _ in range(2):
            contents("reports")
            contents("notebooks", headers=auth_json)
            contents("reports", query="?content=0")
        # checkpoints
        for i in range(1, 7):
            contents(f"reports/report-{i:02d}.txt/checkpoints", "POST")
            contents(f"reports/report-{i:02d}.txt/checkpoints")
        contents("reports/report-01.txt", "PUT",
                 body={"type": "file", "format": "text", "content": "report 1, edited\n"})
        contents("reports/report-01.txt/checkpoints/checkpoint", "POST")
        contents("reports/report-01.txt/checkpoints")
        contents("reports/report-02.txt/checkpoints/checkpoint", "DELETE")
        contents("reports/report-02.txt/checkpoints")
        # renames and deletes
        for i in range(7, 11):
            contents(f"reports/report-{i:02d}.txt", "PATCH", body={"path": f"reports/renamed-{i:02d}.txt"})
        for i in range(7, 11):
            contents(f"reports/renamed-{i:02d}.txt", query="?content=0")
        for i in range(7, 11):
            contents(f"reports/renamed-{i:02d}.txt", "DELETE")
        contents("reports/renamed-07.txt")
        contents("reports/renamed-07.txt")
        contents("reports/renamed-08.txt", "DELETE")
        for i in range(1, 5):
            contents(f"reports/nope-{i}.txt")
        contents("missing-dir", query="?content=1")
        contents("reports/report-12.txt", "PATCH", body={"path": "reports/report-11.txt"})
        # authentication: no token, and the token as a query parameter
        c.get("/api/contents")
        c.get("/api/contents")
        c.get(f"/api/status?token={self.token}")
        c.get(f"/api/status?token={self.token}")
        c.get("/api/contents", {"Authorization": "token wrong-token"})
        # final state
        contents("", headers=auth_json)
        contents("reports")


APPS = {"datasette": Datasette, "jupyter": Jupyter}
