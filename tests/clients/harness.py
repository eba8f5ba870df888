"""The harness of `make test-clients`: one conform server, a recording proxy per client, the
check registry and the three verdicts.

Verdicts:
  PASS          the check held.
  FAIL-SHAPE    the server refused a request the client sent (an HTTP error), or answered
                something the client could not parse, or broke a guarantee the request asked
                for (a schema, a forced call): a server bug.
  FAIL-CONTENT  the model's choice of content (a 0.5B model may answer in prose where a
                call was allowed, or name the wrong city): listed, not a server bug.
  SKIP          the client has no such path in the installed version.
  ERROR         the check failed before any request reached the server (a harness or client
                bug, or an API the installed version lacks): fails the run, as FAIL-SHAPE does.
"""
import asyncio
import http.client
import json
import os
import socket
import subprocess
import threading
import time
import traceback
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
MODEL = "qwen2.5-coder-0.5b-instruct"
TIMEOUT = 300.0  # seconds, per HTTP request: a hang guard on a loaded 2-core machine


class Shape(Exception):
    """The server's fault: a refused request, an unparseable answer, a broken guarantee."""


class Content(Exception):
    """The model's fault: what it chose to write, where the request left it free."""


class Skip(Exception):
    """The client has no such path."""


def expect(cond, msg):
    if not cond:
        raise Shape(msg)


def expect_content(cond, msg):
    if not cond:
        raise Content(msg)


# --- the checks -----------------------------------------------------------------------------

CHECKS = []  # (client, path, fn, guaranteed)


def check(client, path, guaranteed=True):
    """Registers a check. `guaranteed`: the request constrains what fails here (a schema, a
    forced call), so an unexpected exception is the server's (FAIL-SHAPE); otherwise the model's
    (FAIL-CONTENT). An HTTP error status during the check is FAIL-SHAPE either way."""
    def register(fn):
        CHECKS.append((client, path, fn, guaranteed))
        return fn
    return register


class Context:
    """What a check gets: the proxy's base URL and its record of the exchanges."""

    def __init__(self, proxy):
        self.proxy = proxy
        self.base_url = f"http://127.0.0.1:{proxy.port}/v1"
        self.model = MODEL
        self.api_key = "unused"

    def exchanges(self):
        return self.proxy.since(self.mark, settle=True)

    def sse_events(self):
        """The SSE `data:` events of this check's last streamed answer (0 if none was streamed)."""
        for x in reversed(self.exchanges()):
            n = sum(1 for line in x["response"].splitlines() if line.startswith("data:"))
            if n:
                return n
        return 0

    def requests(self, path_suffix=""):
        """The JSON bodies sent so far in this check (to endpoints ending in path_suffix)."""
        out = []
        for x in self.exchanges():
            if x["path"].endswith(path_suffix) and x["request"]:
                try:
                    out.append(json.loads(x["request"]))
                except ValueError:
                    pass
        return out


def run_check(ctx, fn, guaranteed):
    ctx.mark = ctx.proxy.mark()
    t0 = time.time()
    tb = None
    try:
        detail = fn(ctx)
        if asyncio.iscoroutine(detail):
            detail = asyncio.run(asyncio.wait_for(detail, TIMEOUT * 3))
        verdict = "PASS"
    except Skip as e:
        verdict, detail = "SKIP", str(e)
    except Exception as e:  # noqa: BLE001 - every exception is a verdict
        tb = traceback.format_exc()
        if isinstance(e, Shape):
            verdict, detail = "FAIL-SHAPE", str(e)
        elif isinstance(e, Content):
            verdict, detail = "FAIL-CONTENT", str(e)
        else:
            verdict = "FAIL-SHAPE" if guaranteed else "FAIL-CONTENT"
            detail = f"{type(e).__name__}: {e}"
    exchanges = ctx.proxy.since(ctx.mark, settle=True)
    if verdict.startswith("FAIL") and not exchanges:
        # Nothing reached the server: the check or the client broke before a request.
        verdict = "ERROR"
    errors = [x for x in exchanges if x["status"] >= 400]
    if errors and verdict != "PASS":
        x = errors[0]
        verdict = "FAIL-SHAPE"
        detail = f"HTTP {x['status']} on {x['path']}: {x['response'][:300]} ({detail})"
    return {"verdict": verdict, "detail": " ".join(str(detail or "").split()),
            "seconds": round(time.time() - t0, 1), "exchanges": exchanges, "traceback": tb}


# --- the server and the proxy ---------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, log_path, ctx_size=2048, parallel=2):
        self.port = free_port()
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--port", str(self.port), "--parallel", str(parallel),
             "--ctx-size", str(ctx_size), "--exit-with-stdin"],
            stdin=subprocess.PIPE, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 600  # a hang guard: on a loaded machine the model loads slowly
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v1/models", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"conform did not start (see {log_path})")
            time.sleep(0.3)

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()


HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "te", "trailer",
       "upgrade", "proxy-connection"}


class Proxy:
    """A recording reverse proxy in front of the server: every exchange's request and response
    bodies are kept, so a FAIL-SHAPE can show exactly what went over the wire. Streams are passed
    through as they arrive (each read of the upstream is written on at once)."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.log = []
        self.in_flight = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the response ends when the connection closes

            def log_message(self, *args):
                pass

            def relay(self):
                with proxy.lock:
                    proxy.in_flight += 1
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n) if n else b""
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=TIMEOUT)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
                headers["Host"] = f"127.0.0.1:{proxy.upstream_port}"
                t0 = time.time()
                chunks = []
                status = 599
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    status = resp.status
                    self.send_response(resp.status)
                    for k, v in resp.getheaders():
                        if k.lower() not in HOP:
                            self.send_header(k, v)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    while True:
                        chunk = resp.read1(65536)
                        if not chunk:
                            break
                        chunks.append(chunk)
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except Exception as e:  # noqa: BLE001
                    chunks.append(f"\n[proxy: {type(e).__name__}: {e}]".encode())
                finally:
                    conn.close()
                    with proxy.lock:
                        proxy.log.append({
                            "method": self.command, "path": self.path, "status": status,
                            "request": body.decode("utf-8", "replace"),
                            "response": b"".join(chunks).decode("utf-8", "replace"),
                            "seconds": round(time.time() - t0, 2), "reads": len(chunks)})
                        proxy.in_flight -= 1

            do_GET = do_POST = do_DELETE = relay

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def mark(self):
        with self.lock:
            return len(self.log)

    def since(self, mark, settle=False):
        """The exchanges after `mark`; `settle`: first wait (a little) for the ones in flight, as
        a client may have read a whole stream before the proxy has logged it."""
        deadline = time.time() + (5 if settle else 0)
        while settle and self.in_flight and time.time() < deadline:
            time.sleep(0.02)
        with self.lock:
            return list(self.log[mark:])

    def stop(self):
        self.httpd.shutdown()
