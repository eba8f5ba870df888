#!/usr/bin/env python3
"""Per-token cost of each arm of one `conform ab` run (make bench-lookahead; bench/gpu/run.sh).

Request latency = prompt time + tokens x per-token time; a least-squares line per arm separates
the two, so arms whose outputs differ in length still compare per token. Prints each arm's slope
and its ratio to the first arm's (free when there is one, else the run's first arm)."""
import json
import sys

report = json.load(open(sys.argv[1] if len(sys.argv) > 1 else "bench/results/lookahead-speed/report.json"))
# Arms in their order in the run (named with their prompt when it has one, e.g. "free:task"),
# the free arm first as the baseline.
arms = list(dict.fromkeys(i["arm"] for i in report["items"]))
arms.sort(key=lambda a: not a.startswith("free"))
slopes = {}
for arm in arms:
    xs = [(i["tokens"], i["latency_s"]) for i in report["items"] if i["arm"] == arm and not i.get("error")]
    n = len(xs)
    mx = sum(x for x, _ in xs) / n
    my = sum(y for _, y in xs) / n
    slope = sum((x - mx) * (y - my) for x, y in xs) / sum((x - mx) ** 2 for x, _ in xs)
    slopes[arm] = slope
    print(f"{arm:16} {n} requests, {1000 * slope:.2f} ms per token, {my - slope * mx:.3f} s fixed")
for arm in arms[1:]:
    print(f"{arm} / {arms[0]} per token: {slopes[arm] / slopes[arms[0]]:.3f}")
