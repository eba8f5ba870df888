#!/usr/bin/env python3
"""Serving benchmark: single-stream decode speed, time to first token, and aggregate throughput
with 1, 4 and 8 concurrent streams against one `conform serve` (continuous batching).

Writes bench/results/serve.json and prints a table. Ratios are against the 1-stream run of the
same invocation, so they compare fairly on any machine.

Environment: BENCH_MAX_TOKENS (128); BENCH_STREAMS ("1,4,8"); BENCH_PARALLEL (server slots, 8);
CONFORM_BIN (target/release/conform); BENCH_OUT (bench/results/serve.json); BENCH_FORMAT_MODE:
unset for free decoding, else every stream asks for a JSON Schema (a story object) under that
format_mode ("mask", "lookahead"), to see what the constraint costs per token.

Then the constrained arm (skip with BENCH_PER_TOKEN=0): one request at a time, the same chat
prompts free and under their JSON Schema (every Nth schema of JSONSchemaBench's Glaiveai2K and
Github_easy, BENCH_SCHEMAS of them, 12), greedy, EOS allowed; each arm's seconds per token is the
slope of a least-squares line of latency against completion tokens, so prompt processing and
compile sit in the intercept. constrained ÷ free < 1 means fast-forward saves more than the mask
costs. Data: $CONFORM_DATA (../shared/data).
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parent.parent
MODEL = "qwen2.5-coder-0.5b-instruct"
MAX_TOKENS = int(os.environ.get("BENCH_MAX_TOKENS", "128"))
STREAMS = [int(n) for n in os.environ.get("BENCH_STREAMS", "1,4,8").split(",")]
PARALLEL = int(os.environ.get("BENCH_PARALLEL", "8"))
BIN = os.environ.get("CONFORM_BIN", str(ROOT / "target/release/conform"))
OUT = Path(os.environ.get("BENCH_OUT", str(ROOT / "bench/results/serve.json")))
FORMAT_MODE = os.environ.get("BENCH_FORMAT_MODE")
STORY = {"type": "object", "required": ["title", "story"],
         "properties": {"title": {"type": "string"}, "story": {"type": "string"}}}
PER_TOKEN = os.environ.get("BENCH_PER_TOKEN", "1") != "0"
N_SCHEMAS = int(os.environ.get("BENCH_SCHEMAS", "12"))
DATA = Path(os.environ.get("CONFORM_DATA", str(ROOT.parent / "shared/data")))
# End-of-generation tokens of the default model, banned so every stream decodes MAX_TOKENS.
NO_EOS = {"151643": -100, "151645": -100}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stream_once(port, prompt, result):
    body = json.dumps({"model": MODEL, "prompt": prompt, "max_tokens": MAX_TOKENS, "temperature": 0.7,
                       "seed": 1, "stream": True, "stream_options": {"include_usage": True},
                       "logit_bias": NO_EOS,
                       **({"response_format": {"type": "json_schema", "json_schema": {"name": "story", "schema": STORY}},
                           "format_mode": FORMAT_MODE} if FORMAT_MODE else {})})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    start = time.perf_counter()
    conn.request("POST", "/v1/completions", body, {"content-type": "application/json"})
    resp = conn.getresponse()
    first = None
    tokens = 0
    for raw in resp:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
        elif first is None and chunk["choices"] and chunk["choices"][0]["text"]:
            first = time.perf_counter()
    end = time.perf_counter()
    first = end if first is None else first
    result.update(ttft=first - start, total=end - start, tokens=tokens,
                  decode_tps=(tokens - 1) / (end - first) if tokens > 1 else 0.0)


def run(port, streams):
    prompts = [f"Write a long story about robot number {i}.\n" for i in range(streams)]
    results = [{} for _ in range(streams)]
    threads = [threading.Thread(target=stream_once, args=(port, p, r)) for p, r in zip(prompts, results)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    tokens = sum(r["tokens"] for r in results)
    return {"streams": streams, "wall_s": wall, "tokens": tokens, "aggregate_tps": tokens / wall,
            "mean_ttft_s": sum(r["ttft"] for r in results) / streams,
            "mean_stream_decode_tps": sum(r["decode_tps"] for r in results) / streams}


def schema_sample():
    """Every Nth schema of two real subsets (small enough for a short answer), in file order."""
    out = []
    for subset in ("Glaiveai2K", "Github_easy"):
        rows = [json.loads(line) for line in (DATA / f"jsonschemabench/{subset}.jsonl").open()]
        step = max(1, len(rows) // (N_SCHEMAS // 2))
        out += [r["schema"] for r in rows[::step][: N_SCHEMAS // 2]]
    return out


def timed_chat(port, schema, constrained):
    prompt = f"Write one JSON object, and nothing else, that fits this JSON Schema:\n{json.dumps(schema)}"
    body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "max_tokens": 160,
            "temperature": 0}
    if constrained:
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "record", "schema": schema}}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    start = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"content-type": "application/json"})
    resp = conn.getresponse()
    answer = json.loads(resp.read())
    seconds = time.perf_counter() - start
    if resp.status != 200:
        return None  # a schema the server refuses: left out of both arms
    return seconds, answer["usage"]["completion_tokens"]


def forced_tokens(port):
    with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("conform_forced_tokens_total"):
                return float(line.split()[-1])
    return 0.0


def slope(points):
    """Least-squares seconds per token of latency against tokens."""
    n = len(points)
    mx = sum(t for _, t in points) / n
    my = sum(s for s, _ in points) / n
    sxx = sum((t - mx) ** 2 for _, t in points)
    return sum((t - mx) * (s - my) for s, t in points) / sxx if sxx else float("nan")


def per_token(port):
    arms = {"free": [], "mask": []}
    forced_before = forced_tokens(port)
    for schema in schema_sample():
        pair = {arm: timed_chat(port, schema, arm == "mask") for arm in arms}
        if all(pair.values()):
            for arm, point in pair.items():
                arms[arm].append(point)
    forced = forced_tokens(port) - forced_before
    out = {arm: {"requests": len(p), "tokens": sum(t for _, t in p), "s_per_token": slope(p)}
           for arm, p in arms.items()}
    out["mask"]["forced_tokens"] = forced
    out["mask_over_free"] = out["mask"]["s_per_token"] / out["free"]["s_per_token"]
    return out


def main():
    port = free_port()
    server = subprocess.Popen([BIN, "serve", "--port", str(port),
                               "--parallel", str(PARALLEL), "--exit-with-stdin"],
                              stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        run(port, 1)  # warm-up
        rows = [run(port, n) for n in STREAMS]
        costs = per_token(port) if PER_TOKEN else None
    finally:
        server.kill()
    base = rows[0]["aggregate_tps"]
    for r in rows:
        r["vs_single_stream"] = r["aggregate_tps"] / base
    print(f"max_tokens={MAX_TOKENS}, threads=cores ({os.cpu_count()}), format_mode={FORMAT_MODE or 'free'}")
    print(f"{'streams':>7} {'agg tok/s':>10} {'x single':>9} {'per-stream tok/s':>17} {'mean TTFT ms':>13}")
    for r in rows:
        print(f"{r['streams']:>7} {r['aggregate_tps']:>10.1f} {r['vs_single_stream']:>9.2f} "
              f"{r['mean_stream_decode_tps']:>17.1f} {r['mean_ttft_s'] * 1000:>13.0f}")
    if costs:
        print(f"\none request at a time, {costs['free']['requests']} schemas, seconds per token fitted "
              f"against tokens: free {costs['free']['s_per_token'] * 1000:.2f} ms "
              f"({costs['free']['tokens']} tokens), mask {costs['mask']['s_per_token'] * 1000:.2f} ms "
              f"({costs['mask']['tokens']} tokens, {costs['mask']['forced_tokens']:.0f} fast-forwarded); "
              f"mask / free = {costs['mask_over_free']:.2f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"max_tokens": MAX_TOKENS, "cpu_count": os.cpu_count(),
                               "format_mode": FORMAT_MODE or "free", "runs": rows, "per_token": costs}, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    sys.exit(main())
