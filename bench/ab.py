#!/usr/bin/env python3
"""Side-by-side CPU per admission of webhook binaries, for a change's before -> after.

    bench/ab.py A=path/to/webhook-before B=path/to/webhook-after [--pod command|image] [--conns 8] [--seconds 6] [--rounds 3]

Each binary runs in development mode on 127.0.0.1 with default logging (JSON at info, into a
file, as deployed) and a local registry; the pod is the typical `command` pod (no image
lookup) or, with `--pod image`, the typical pod without `command`, whose image config is read
once and then comes from the cache (the warm-cache case). `wrk` drives them in alternating
rounds (order reversed every other round). Printed per binary: admissions/s and
CPU per admission (user + system of the webhook process, from /proc), mean of the rounds.
Same machine, same run: compare the ratio, not absolute figures across runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402 - sibling module


def start_webhook(name: str, binary: Path, registry: bench.Registry) -> tuple[int, object]:
    port, metrics_port = bench.free_port(), bench.free_port()
    proc = bench.start(name, [str(binary), "--listen", f"127.0.0.1:{port}",
                              "--metrics-listen", f"127.0.0.1:{metrics_port}",
                              "--insecure-registry", registry.addr,
                              "--secrets-init-image", f"{registry.addr}/bench/secrets-init:1"])
    ctx = bench.unverified()
    bench.wait_until(f"{name} /readyz",
                     lambda: bench.http_get(f"https://127.0.0.1:{port}/readyz", ctx)[0] == 200, proc=proc)
    return port, proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binaries", nargs="+", help="NAME=PATH")
    ap.add_argument("--pod", choices=["command", "image"], default="command")
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    targets = {}
    try:
        registry = bench.Registry()
        for repo in ("bench/app", "bench/secrets-init"):
            registry.push(repo, "1", ["/usr/local/bin/app"], ["serve", "--port=8080"])
        image, command = (None, ["/usr/local/bin/app"]) if args.pod == "command" else (f"{registry.addr}/bench/app:1", None)
        body = bench.WORK / f"review-{args.pod}.json"
        body.write_bytes(json.dumps(bench.review(bench.pod_variant(image, command), "ab")).encode())
        ctx = bench.unverified()
        for spec in args.binaries:
            name, _, path = spec.partition("=")
            targets[name] = start_webhook(name, Path(path), registry)
            status, answer = bench.post(targets[name][0], body.read_bytes(), ctx)
            bench.check_mutated(status, answer, f"{name}, {args.pod} pod")
        results: dict[str, list[dict]] = {n: [] for n in targets}
        for rnd in range(args.rounds):
            order = list(targets) if rnd % 2 == 0 else list(reversed(targets))
            for name in order:
                port, proc = targets[name]
                c0 = bench.cpu_seconds([proc.pid])
                res = bench.wrk(port, body, args.conns, args.seconds)
                cpu = bench.cpu_seconds([proc.pid]) - c0
                res["cpu_us"] = cpu * 1e6 / max(res["requests"], 1)
                results[name].append(res)
                bench.log(f"round {rnd} {name}: {res['rps']:.0f}/s, {res['cpu_us']:.1f} µs CPU per admission, errors {res['errors']}")
        for name, rs in results.items():
            rounds = ", ".join("%.1f" % r["cpu_us"] for r in rs)
            rps = statistics.mean(r["rps"] for r in rs)
            cpu = statistics.mean(r["cpu_us"] for r in rs)
            print(f"{name}: {rps:.0f} admissions/s, {cpu:.1f} µs CPU per admission (rounds: {rounds})")
    finally:
        bench.stop_all()


if __name__ == "__main__":
    main()
