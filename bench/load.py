#!/usr/bin/env python3
"""Load test: N concurrent clients against one `conform serve` for a bounded time, with a mix of
free, JSON Schema, regex, writing-instruction, streaming and cancelled requests.

Every response is checked independently of the server's own `format.compliant` report: JSON
outputs are parsed and checked against their schema here, regex outputs matched with Python's
`re`, and every request carries a unique `x-request-id` that must come back exactly once.
Reports throughput, latency percentiles, errors by status, and the server's RSS after warm-up and
at the end. Writes bench/results/load.json.

    python3 bench/load.py [--clients 32] [--seconds 600] [--url http://host:port]

The goal (issue: production hardening) is 32 clients x 10 minutes with 0 5xx, 0 lost or
duplicated responses, every constrained output valid, RSS growth < 5 %.
"""
import argparse
import http.client
import json
import random
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = "qwen2.5-coder-0.5b-instruct"

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer", "minimum": 0, "maximum": 120}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
DATE = r"20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9])"
PROMPTS = ["Describe a person.", "Name a date in 2024.", "Write one sentence about rivers.", "Say hello.",
           "List two colors.", "What is 2+2?"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def valid_person(text):
    try:
        v = json.loads(text)
    except ValueError:
        return False
    return (isinstance(v, dict) and set(v) == {"name", "age"} and isinstance(v["name"], str)
            and len(v["name"]) <= 20 and isinstance(v["age"], int) and 0 <= v["age"] <= 120)


# kind -> (extra request fields, independent check of the output text or None)
KINDS = {
    "free": ({}, None),
    "json_schema": ({"response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}},
                    valid_person),
    "regex": ({"guided_regex": DATE}, lambda t: re.fullmatch(DATE, t) is not None),
    "instructions": ({"response_format": {"type": "instructions", "instructions": [{"id": "punctuation:no_comma"},
                                                                                    {"id": "change_case:english_lowercase"}]}},
                     lambda t: "," not in t and t == t.lower()),
    "stream": ({"stream": True}, None),
    "cancelled": ({"stream": True, "max_tokens": 200}, None),
}


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies = []
        self.status = Counter()
        self.kinds = Counter()
        self.invalid = []
        self.ids_seen = Counter()
        self.ids_sent = set()
        self.tokens = 0


def one_request(port, kind, rng, stats):
    extra, check = KINDS[kind]
    rid = str(uuid.uuid4())
    body = {"model": MODEL, "messages": [{"role": "user", "content": rng.choice(PROMPTS)}],
            "max_tokens": 48, "temperature": 0.8, "seed": rng.randrange(1 << 30)}
    body.update(extra)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    start = time.perf_counter()
    with stats.lock:
        stats.ids_sent.add(rid)
    try:
        conn.request("POST", "/v1/chat/completions", json.dumps(body),
                     {"content-type": "application/json", "x-request-id": rid})
        resp = conn.getresponse()
        echoed = resp.getheader("x-request-id")
        if kind in ("stream", "cancelled") and resp.status == 200:
            text, tokens, done = "", 0, False
            for n, raw in enumerate(resp):
                if kind == "cancelled" and n >= 3:
                    break  # the client walks away mid-stream: its slot must be freed
                line = raw.decode().strip()
                if line == "data: [DONE]":
                    done = True
                elif line.startswith("data: "):
                    chunk = json.loads(line[6:])
                    if chunk["choices"]:
                        text += chunk["choices"][0]["delta"].get("content") or ""
                        tokens += 1
            ok = done or kind == "cancelled"
        else:
            payload = json.loads(resp.read() or b"{}")
            ok = resp.status == 200
            text = payload["choices"][0]["message"]["content"] if ok else ""
            tokens = payload.get("usage", {}).get("completion_tokens", 0) if ok else 0
        status = "200-incomplete" if resp.status == 200 and not ok else resp.status
    except (OSError, http.client.HTTPException) as e:
        status, echoed, text, tokens = f"error:{type(e).__name__}", None, "", 0
    finally:
        conn.close()
    elapsed = time.perf_counter() - start
    with stats.lock:
        stats.status[status] += 1
        stats.kinds[kind] += 1
        if echoed:
            stats.ids_seen[echoed] += 1
        if status == 200:
            stats.latencies.append(elapsed)
            stats.tokens += tokens
            if check and not check(text):
                stats.invalid.append({"kind": kind, "text": text})


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(p / 100 * len(values)))], 3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--warmup", type=float, default=20)
    ap.add_argument("--url", help="an already running server (RSS is then not measured)")
    ap.add_argument("--out", default=str(ROOT / "bench/results/load.json"))
    args = ap.parse_args()

    server = None
    if args.url:
        port = int(args.url.rsplit(":", 1)[1].strip("/"))
    else:
        port = free_port()
        server = subprocess.Popen([str(ROOT / "target/release/conform"), "serve", "--port", str(port),
                                   "--parallel", "8", "--ctx-size", "512", "--max-queue", str(4 * args.clients)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(600):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            sys.exit("server did not start")

    stats = Stats()
    stop_at = time.time() + args.warmup + args.seconds
    rss = {}

    def client(i):
        rng = random.Random(i)
        while time.time() < stop_at:
            one_request(port, rng.choice(list(KINDS)), rng, stats)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    start = time.time()
    for t in threads:
        t.start()
    if server:
        time.sleep(args.warmup)
        rss["after_warmup_kib"] = rss_kib(server.pid)
    for t in threads:
        t.join()
    wall = time.time() - start
    if server:
        rss["end_kib"] = rss_kib(server.pid)
        rss["growth"] = round(rss["end_kib"] / rss["after_warmup_kib"] - 1, 4)
        server.terminate()
        server.wait(timeout=60)

    lost = len(stats.ids_sent - set(stats.ids_seen))
    duplicated = sum(1 for c in stats.ids_seen.values() if c > 1)
    five_xx = sum(n for s, n in stats.status.items() if str(s).startswith("5"))
    report = {
        "clients": args.clients, "seconds": round(wall, 1), "requests": sum(stats.status.values()),
        "requests_per_s": round(sum(stats.status.values()) / wall, 2),
        "completion_tokens_per_s": round(stats.tokens / wall, 1),
        "latency_s": {p: percentile(stats.latencies, int(p[1:])) for p in ("p50", "p90", "p99")},
        "status": {str(k): v for k, v in stats.status.items()}, "kinds": dict(stats.kinds),
        "five_xx": five_xx, "lost": lost, "duplicated": duplicated,
        "invalid_constrained_outputs": len(stats.invalid), "invalid_examples": stats.invalid[:5], "rss": rss,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    goal = five_xx == 0 and lost == 0 and duplicated == 0 and not stats.invalid and rss.get("growth", 0) < 0.05
    print("goal met" if goal else "goal NOT met", file=sys.stderr)
    sys.exit(0 if goal else 1)


if __name__ == "__main__":
    main()
