#!/usr/bin/env python3
"""Per-token cost of lookahead against the mask, from one `conform ab` run (make bench-lookahead).

Request latency = prompt time + tokens x per-token time; a least-squares line per arm separates
the two, so arms whose outputs differ in length still compare per token. Prints both slopes and
their ratio."""
import json
import sys

report = json.load(open(sys.argv[1] if len(sys.argv) > 1 else "bench/results/lookahead-speed/report.json"))
slopes = {}
for arm in ("mask", "lookahead"):
    xs = [(i["tokens"], i["latency_s"]) for i in report["items"] if i["arm"] == arm and not i.get("error")]
    n = len(xs)
    mx = sum(x for x, _ in xs) / n
    my = sum(y for _, y in xs) / n
    slope = sum((x - mx) * (y - my) for x, y in xs) / sum((x - mx) ** 2 for x, _ in xs)
    slopes[arm] = slope
    print(f"{arm:10} {n} requests, {1000 * slope:.2f} ms per token, {my - slope * mx:.3f} s fixed")
print(f"lookahead / mask per token: {slopes['lookahead'] / slopes['mask']:.3f}")
