#!/usr/bin/env python3
"""The agent frameworks and client libraries against a live conform server (`make test-clients`).

Starts one server (--parallel 2), puts a recording proxy in front of it for each client, runs each
client's checks (two clients at a time), prints a table of client x path x verdict and writes
the full record (every FAIL's requests and responses) as JSON. Exits non-zero only on FAIL-SHAPE
(or a client that would not import): content failures of a 0.5B model are listed, not fatal.

    python tests/clients/run.py [--only SUBSTRING] [--jobs 2] [--bin target/release/conform]
"""
import argparse
import importlib
import json
import os
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# Nothing may reach the network but the server: no tracing, telemetry or model-price downloads.
os.environ.setdefault("OPENAI_API_KEY", "unused")
os.environ["OPENAI_AGENTS_DISABLE_TRACING"] = "1"
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["LITELLM_TELEMETRY"] = "False"
os.environ["LANGCHAIN_TRACING_V2"] = "false"
os.environ["LANGSMITH_TRACING"] = "false"
os.environ["LOGFIRE_IGNORE_NO_CONFIG"] = "1"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import harness  # noqa: E402

MODULES = ["c_openai", "c_instructor", "c_langchain", "c_pydantic_ai", "c_agents", "c_litellm"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("CONFORM_BIN", str(harness.ROOT / "target/release/conform")))
    ap.add_argument("--only", action="append", default=[],
                    help="run the checks whose 'client path' contains this (repeatable)")
    ap.add_argument("--jobs", type=int, default=2, help="clients run at once (the server decodes 2)")
    ap.add_argument("--out", default=str(Path.home() / ".cache/conform/clients-results.json"))
    args = ap.parse_args()

    results, broken = [], []
    groups = {}
    for name in MODULES:
        before = len(harness.CHECKS)
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001
            broken.append((name, f"{type(e).__name__}: {e}"))
            continue
        for client, path, fn, guaranteed in harness.CHECKS[before:]:
            label = f"{client} {path}"
            if args.only and not any(s.lower() in label.lower() for s in args.only):
                continue
            groups.setdefault(name, []).append((client, path, fn, guaranteed))

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    log_path = Path(args.out).with_suffix(".server.log")
    t0 = time.time()
    server = harness.Server(args.bin, log_path)
    print(f"conform on port {server.port} (started in {time.time() - t0:.0f} s); "
          f"{sum(map(len, groups.values()))} checks in {len(groups)} clients", flush=True)

    def run_group(name):
        proxy = harness.Proxy(server.port)
        ctx = harness.Context(proxy)
        out = []
        for client, path, fn, guaranteed in groups[name]:
            r = harness.run_check(ctx, fn, guaranteed)
            r.update(client=client, path=path)
            print(f"  {r['verdict']:<12} {client} | {path} ({r['seconds']} s)", flush=True)
            out.append(r)
        proxy.stop()
        return out

    try:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for out in pool.map(run_group, list(groups)):
                results.extend(out)
    finally:
        server.stop()
    elapsed = time.time() - t0

    # The table, in registration order.
    order = {(c, p): i for i, (c, p, _, _) in enumerate(harness.CHECKS)}
    results.sort(key=lambda r: order[(r["client"], r["path"])])
    w1 = max([len(r["client"]) for r in results] + [6])
    w2 = max([len(r["path"]) for r in results] + [4])
    print(f"\n{'client':<{w1}}  {'path':<{w2}}  {'result':<12}  detail")
    print(f"{'-' * w1}  {'-' * w2}  {'-' * 12}  ------")
    for r in results:
        print(f"{r['client']:<{w1}}  {r['path']:<{w2}}  {r['verdict']:<12}  {r['detail'][:150]}")
    for name, err in broken:
        print(f"{name:<{w1}}  {'(import)':<{w2}}  {'ERROR':<12}  {err[:150]}")

    shape = [r for r in results if r["verdict"] in ("FAIL-SHAPE", "ERROR")]
    for r in shape:
        print(f"\n=== {r['verdict']}: {r['client']} | {r['path']}\n{r['detail']}")
        for x in r["exchanges"][-3:]:
            print(f"--> {x['method']} {x['path']}\n{x['request'][:3000]}")
            print(f"<-- {x['status']} ({x['reads']} reads)\n{x['response'][:3000]}")
        if r["traceback"]:
            print(r["traceback"][-1500:])
    counts = {v: sum(r["verdict"] == v for r in results)
              for v in ("PASS", "FAIL-SHAPE", "FAIL-CONTENT", "SKIP", "ERROR")}
    Path(args.out).write_text(json.dumps({"seconds": round(elapsed), "counts": counts, "broken": broken,
                                          "results": results}, indent=1))
    print(f"\nclients: {counts['PASS']} passed, {counts['FAIL-SHAPE']} failed (shape), "
          f"{counts['FAIL-CONTENT']} failed (content), {counts['SKIP']} skipped, "
          f"{counts['ERROR'] + len(broken)} errors; "
          f"{elapsed:.0f} s; record in {args.out}, server log in {log_path}")
    return 1 if shape or broken else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        traceback.print_exc()
        sys.exit(130)
