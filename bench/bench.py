#!/usr/bin/env python3
"""The benchmark harness behind bench/run (issue 8). Python stdlib only.

Starts everything it needs on 127.0.0.1 (docker-registry, the release webhook, nginx,
moto_server, a counting proxy), measures, stops what it started, and writes BENCHMARKS.md
(plus bench/results.json). Every loop is bounded; nothing leaves loopback.

Usage: bench/run [--quick]   (see bench/README.md)
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import gzip
import hashlib
import http.client
import http.server
import io
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
TYPICAL_POD = ROOT / "mutation-modes/benches/pods/typical.json"
CONCURRENCY = [1, 8, 32, 128]

PROCS: list[subprocess.Popen] = []
WORK = Path(tempfile.mkdtemp(prefix="secrets-init-bench-"))


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
    logf = open(WORK / f"{name}.log", "wb")
    p = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, env=env
    )
    PROCS.append(p)
    return p


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


def stop_all() -> None:
    for p in reversed(PROCS):
        stop(p)


def unverified() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def wait_until(what: str, fn, deadline: float = 30.0, proc: subprocess.Popen | None = None):
    end = time.monotonic() + deadline
    last = None
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{what}: process exited ({proc.returncode}); see {WORK}")
        try:
            r = fn()
            if r:
                return r
        except Exception as e:  # noqa: BLE001 - polling: any failure means "not yet"
            last = e
        time.sleep(0.1)
    raise SystemExit(f"timed out after {deadline}s waiting for {what} (last error: {last})")


def http_get(url: str, ctx: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5, context=ctx) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def run(argv: list[str], timeout: float, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, timeout=timeout, env=env, capture_output=True, text=True, **kw)


# ---------------------------------------------------------------------------------------
# /proc readings


def proc_status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            out[k] = int(v.split()[0]) * 1024
    return out


def cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                out.append(int(d.name))
    return out


# ---------------------------------------------------------------------------------------
# Registry: Debian docker-registry, images pushed over the distribution API


class Registry:
    def __init__(self) -> None:
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        d = WORK / "registry"
        d.mkdir()
        cfg = d / "config.yml"
        cfg.write_text(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n"
            f"storage:\n  filesystem:\n    rootdirectory: {d / 'storage'}\n"
            f"http:\n  addr: {self.addr}\n  secret: bench-only\n"
        )
        self.proc = start("registry", ["docker-registry", "serve", str(cfg)])
        self.log = WORK / "registry.log"
        wait_until(
            "docker-registry",
            lambda: http_get(f"http://{self.addr}/v2/")[0] == 200,
            proc=self.proc,
        )

    def _blob(self, repo: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        c = http.client.HTTPConnection(self.addr, timeout=10)
        c.request("POST", f"/v2/{repo}/blobs/uploads/")
        r = c.getresponse()
        r.read()
        assert r.status == 202, f"blob upload start: {r.status}"
        loc = r.getheader("Location")
        sep = "&" if "?" in loc else "?"
        path = re.sub(r"^https?://[^/]+", "", loc) + f"{sep}digest={digest}"
        c.request("PUT", path, body=data, headers={"Content-Type": "application/octet-stream"})
        r = c.getresponse()
        r.read()
        assert r.status == 201, f"blob upload: {r.status}"
        c.close()
        return digest

    def push(self, repo: str, tag: str, entrypoint: list[str], cmd: list[str]) -> None:
        """A linux/amd64 image with one small layer (OCI manifest)."""
        tar = io.BytesIO()
        with tarfile.open(fileobj=tar, mode="w") as t:
            body = b"#!/bin/sh\necho bench\n"
            info = tarfile.TarInfo("usr/local/bin/app")
            info.size, info.mode = len(body), 0o755
            t.addfile(info, io.BytesIO(body))
        raw = tar.getvalue()
        layer = gzip.compress(raw, mtime=0)
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Entrypoint": entrypoint, "Cmd": cmd, "Env": ["PATH=/usr/bin:/bin"]},
                "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
            }
        ).encode()
        ld, cd = self._blob(repo, layer), self._blob(repo, config)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": len(layer)}],
            }
        ).encode()
        c = http.client.HTTPConnection(self.addr, timeout=10)
        c.request(
            "PUT",
            f"/v2/{repo}/manifests/{tag}",
            body=manifest,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        r = c.getresponse()
        r.read()
        assert r.status == 201, f"manifest put: {r.status}"
        c.close()

    def requests(self, repo: str) -> dict[str, int]:
        """Access-log counts of manifest/blob GET/HEAD requests for `repo` so far."""
        counts = {"manifest": 0, "blob": 0}
        pat = re.compile(r'"(GET|HEAD) /v2/' + re.escape(repo) + r"/(manifests|blobs)/")
        for line in self.log.read_text(errors="replace").splitlines():
            m = pat.search(line)
            if m:
                counts["manifest" if m.group(2) == "manifests" else "blob"] += 1
        return counts


# ---------------------------------------------------------------------------------------
# AdmissionReviews


def review(pod: dict, uid: str) -> dict:
    gvk = {"group": "", "version": "v1", "kind": "Pod"}
    gvr = {"group": "", "version": "v1", "resource": "pods"}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "namespace": pod["metadata"].get("namespace", "default"),
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:kube-system:replicaset-controller",
                "groups": ["system:serviceaccounts", "system:authenticated"],
            },
            "object": pod,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def pod_variant(image: str | None, command: list[str] | None) -> dict:
    pod = json.loads(TYPICAL_POD.read_text())
    app = pod["spec"]["containers"][0]
    if image:
        app["image"] = image
    if command:
        app["command"] = command
    return pod


def post(port: int, body: bytes, ctx: ssl.SSLContext) -> tuple[int, dict | str]:
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
    c.request("POST", "/mutate", body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    try:
        return r.status, json.loads(data)
    except ValueError:
        return r.status, data.decode(errors="replace")


def check_mutated(status: int, answer, what: str) -> None:
    ok = status == 200 and isinstance(answer, dict) and answer.get("response", {}).get("allowed") is True
    ok = ok and answer["response"].get("patch")
    if not ok:
        raise SystemExit(f"{what}: expected an allowed answer with a patch, got HTTP {status}: {str(answer)[:400]}")


# ---------------------------------------------------------------------------------------
# Servers under load


class Webhook:
    def __init__(self, binary: Path, registry: Registry) -> None:
        self.port, self.metrics_port = free_port(), free_port()
        env = dict(os.environ)
        env.pop("RUST_LOG", None)  # the default (info), as deployed
        self.proc = start(
            "webhook",
            [
                str(binary),
                "--listen", f"127.0.0.1:{self.port}",
                "--metrics-listen", f"127.0.0.1:{self.metrics_port}",
                "--insecure-registry", registry.addr,
                "--secrets-init-image", f"{registry.addr}/bench/secrets-init:1",
            ],
            env=env,
        )
        ctx = unverified()
        wait_until(
            "webhook /readyz",
            lambda: http_get(f"https://127.0.0.1:{self.port}/readyz", ctx)[0] == 200,
            proc=self.proc,
        )

    def metrics(self) -> dict[str, float]:
        _, text = http_get(f"http://127.0.0.1:{self.metrics_port}/metrics")
        out = {}
        for line in text.decode().splitlines():
            if line.startswith("secrets_init_webhook_") and "_bucket" not in line:
                k, _, v = line.rpartition(" ")
                out[k] = float(v)
        return out


class Nginx:
    def __init__(self, response: bytes) -> None:
        self.port = free_port()
        d = WORK / "nginx"
        d.mkdir()
        key, cert = d / "key.pem", d / "cert.pem"
        r = run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            timeout=30,
        )
        if r.returncode:
            raise SystemExit(f"openssl: {r.stderr}")
        text = response.decode()
        # `return` text is an nginx string: no variables, no quotes to escape.
        if any(ch in text for ch in "$'\\"):
            raise SystemExit("the fixed response contains $, ' or \\; nginx `return` cannot carry it")
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (d / sub).mkdir()
        conf = d / "nginx.conf"
        conf.write_text(f"""
worker_processes auto;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  client_max_body_size 4m;
  client_body_buffer_size 64k;
  server {{
    listen 127.0.0.1:{self.port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.3;
    location = /mutate {{
      default_type application/json;
      return 200 '{text}';
    }}
  }}
}}
""")
        self.proc = start("nginx", ["nginx", "-c", str(conf), "-p", str(d)])
        ctx = unverified()
        wait_until(
            "nginx",
            lambda: post(self.port, b"{}", ctx)[0] == 200,
            proc=self.proc,
        )

    def pids(self) -> list[int]:
        return [self.proc.pid, *children(self.proc.pid)]


def wrk(port: int, body: Path, conns: int, seconds: int) -> dict:
    threads = 1 if conns == 1 else 2
    env = dict(os.environ, BENCH_BODY=str(body))
    r = run(
        ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{seconds}s", "--timeout", "5s",
         "-s", str(BENCH / "wrk-post.lua"), f"https://127.0.0.1:{port}/mutate"],
        timeout=seconds + 60,
        env=env,
    )
    m = re.search(r"^BENCH_JSON (.*)$", r.stdout, re.M)
    if r.returncode or not m:
        raise SystemExit(f"wrk failed ({r.returncode}): {r.stdout}\n{r.stderr}")
    res = json.loads(m.group(1))
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
    res["errors"] = sum(v for k, v in res.items() if k.startswith("errors_"))
    return res


def load_test(args, webhook: Webhook, nginx: Nginx, bodies: dict[str, Path]) -> dict:
    """Alternating runs: per concurrency, `rounds` rounds over the targets, order reversed
    every other round. Each figure is the mean over the rounds (p99: the worst round)."""
    targets = {
        "nginx": (nginx.port, bodies["command"]),
        "webhook-command": (webhook.port, bodies["command"]),
        "webhook-image": (webhook.port, bodies["image"]),
    }
    out: dict = {"seconds": args.seconds, "rounds": args.rounds, "by_concurrency": {}}
    wpid = webhook.proc.pid
    for conns in CONCURRENCY:
        runs: dict[str, list[dict]] = {t: [] for t in targets}
        for rnd in range(args.rounds):
            order = list(targets) if rnd % 2 == 0 else list(reversed(targets))
            for t in order:
                port, body = targets[t]
                pids = nginx.pids() if t == "nginx" else [wpid]
                c0 = cpu_seconds(pids)
                res = wrk(port, body, conns, args.seconds)
                res["cpu_s"] = cpu_seconds(pids) - c0
                res["cpu_us_per_req"] = res["cpu_s"] * 1e6 / max(res["requests"], 1)
                runs[t].append(res)
                log(f"c={conns:<3} {t:<16} {res['rps']:9.0f} req/s  p50 {res['p50_us']/1000:6.2f} ms  "
                    f"p99 {res['p99_us']/1000:6.2f} ms  errors {res['errors']}  cpu/req {res['cpu_us_per_req']:.0f} µs")
        summary = {}
        for t, rs in runs.items():
            summary[t] = {
                "rps": statistics.mean(r["rps"] for r in rs),
                "p50_ms": statistics.mean(r["p50_us"] for r in rs) / 1000,
                "p99_ms": max(r["p99_us"] for r in rs) / 1000,
                "errors": sum(r["errors"] for r in rs),
                "requests": sum(r["requests"] for r in rs),
                "cpu_us_per_req": statistics.mean(r["cpu_us_per_req"] for r in rs),
                "runs": rs,
            }
        out["by_concurrency"][str(conns)] = summary
    return out


# ---------------------------------------------------------------------------------------
# Cold cache


def cold_cache(webhook: Webhook, registry: Registry, image_repo: str, n: int) -> dict:
    image = f"{registry.addr}/{image_repo}:1"
    body = json.dumps(review(pod_variant(image, None), "cold")).encode()
    ctx = unverified()
    before = registry.requests(image_repo)
    m0 = webhook.metrics()
    conns = []
    for _ in range(n):  # connect (TCP + TLS) first, so the admissions themselves race
        c = http.client.HTTPSConnection("127.0.0.1", webhook.port, context=ctx, timeout=30)
        c.connect()
        conns.append(c)
    barrier = threading.Barrier(n)

    def one(c: http.client.HTTPSConnection) -> tuple[float, int, dict | str]:
        barrier.wait(timeout=30)
        t0 = time.perf_counter()
        c.request("POST", "/mutate", body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        dt_ms = (time.perf_counter() - t0) * 1000
        c.close()
        try:
            return dt_ms, r.status, json.loads(data)
        except ValueError:
            return dt_ms, r.status, data.decode(errors="replace")

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as ex:
        results = list(ex.map(one, conns))
    wall_ms = (time.perf_counter() - t0) * 1000
    for _, status, answer in results:
        check_mutated(status, answer, f"cold-cache admission of {image}")
    after = registry.requests(image_repo)
    m1 = webhook.metrics()
    lat = sorted(r[0] for r in results)

    def metric_delta(result: str) -> float:
        k = f'secrets_init_webhook_image_config_requests_total{{result="{result}"}}'
        return m1.get(k, 0) - m0.get(k, 0)

    return {
        "image": image,
        "admissions": n,
        "manifest_fetches": after["manifest"] - before["manifest"],
        "blob_fetches": after["blob"] - before["blob"],
        "metric_miss": metric_delta("miss"),
        "metric_hit": metric_delta("hit"),
        "metric_error": metric_delta("error"),
        "min_ms": lat[0],
        "p50_ms": lat[len(lat) // 2],
        "p99_ms": lat[min(len(lat) - 1, math.ceil(len(lat) * 0.99) - 1)],
        "max_ms": lat[-1],
        "wall_ms": wall_ms,
    }


# ---------------------------------------------------------------------------------------
# Bounded work per admission (issue 12)


def hostile_pod(edit) -> dict:
    """The typical pod, annotated, with one element made big by `edit`."""
    pod = pod_variant(None, ["/usr/local/bin/app"])
    pod["metadata"].setdefault("annotations", {})["secretsinit.io/inject"] = "true"
    edit(pod)
    return pod


def _annotate(key: str, value: str):
    return lambda pod: pod["metadata"]["annotations"].__setitem__(key, value)


def _names(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def _containers(n: int):
    def edit(pod: dict) -> None:
        app = pod["spec"]["containers"][0]
        pod["spec"]["containers"] = [dict(app, name=f"c{i}") for i in range(n)]
    return edit


def _set(path: list, value):
    def edit(pod: dict) -> None:
        node = pod
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
    return edit


def timed_post(port: int, body: bytes, ctx: ssl.SSLContext) -> tuple[float, int, bytes]:
    """Seconds from sending the request to the last byte of the answer, on an open connection."""
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=60)
    c.connect()
    t0 = time.perf_counter()
    c.request("POST", "/mutate", body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    elapsed = time.perf_counter() - t0
    c.close()
    return elapsed, r.status, data


def bounded_work(webhook: Webhook) -> dict:
    """The table of issue 12, re-measured: the `secretsinit.io/containers` annotation with
    10k-145k unknown names, then every other element grown to ~1 MiB; one request at a time,
    best of three; plus small admissions' latency while large ones are worked on."""
    ctx = unverified()
    rows = []
    cases = [
        (f"containers annotation, {n:,} unknown names", _annotate("secretsinit.io/containers", ",".join(f"c{i:05}" for i in range(n))))
        for n in (10_000, 20_000, 40_000, 145_000)
    ]
    cases += [
        ("containers annotation naming 550 containers", lambda p: (_containers(550)(p), _annotate("secretsinit.io/containers", ",".join(f"c{i}" for i in range(550)))(p))),
        ("580 containers (the typical pod's, ~1.8 KB each)", _containers(580)),
        ("40,000 foreign annotations", lambda p: [p["metadata"]["annotations"].__setitem__(f"example.com/a-{i}", "v") for i in range(40_000)]),
        ("40,000 unknown secretsinit.io annotations", lambda p: [p["metadata"]["annotations"].__setitem__(f"secretsinit.io/x-{i}", "v") for i in range(40_000)]),
        ("1 MiB aws-region annotation", _annotate("secretsinit.io/aws-region", "X" * (1 << 20))),
        ("1 MiB secrets-init image annotation", _annotate("secretsinit.io/secret-init-image", "r.example/" + "a" * (1 << 20) + ":1")),
        ("1 MiB container name", _set(["spec", "containers", 0, "name"], "c" * (1 << 20))),
        ("22,000 env entries", _set(["spec", "containers", 0, "env"], [{"name": f"V{i}", "value": f"awssm:s#k{i}"} for i in range(22_000)])),
        ("60,000 args", _set(["spec", "containers", 0, "args"], _names("$(V)-", 60_000))),
        ("10,000 volumes and mounts", lambda p: (
            _set(["spec", "volumes"], [{"name": f"v{i}", "emptyDir": {}} for i in range(10_000)])(p),
            _set(["spec", "containers", 0, "volumeMounts"], [{"name": f"v{i}", "mountPath": f"/m/{i}"} for i in range(10_000)])(p),
        )),
        ("60,000-argument exec probe, mutate-probes", lambda p: (
            _annotate("secretsinit.io/mutate-probes", "true")(p),
            _set(["spec", "containers", 0, "livenessProbe"], {"exec": {"command": _names("arg-$(X)-", 60_000)}})(p),
        )),
    ]
    for name, edit in cases:
        body = json.dumps(review(hostile_pod(edit), "bench-hostile")).encode()
        best = None
        for _ in range(3):
            elapsed, status, data = timed_post(webhook.port, body, ctx)
            if status != 200:
                raise SystemExit(f"bounded work, {name}: HTTP {status}: {data[:300]!r}")
            best = elapsed if best is None else min(best, elapsed)
        resp = json.loads(data)["response"]
        outcome = "mutated" if resp.get("patch") else ("allowed" if resp["allowed"] else "denied")
        rows.append({
            "case": name, "request_bytes": len(body), "seconds": best, "answer_bytes": len(data),
            "outcome": outcome, "message": (resp.get("status") or {}).get("message", "")[:300],
        })
        log(f"bounded work: {name}: {len(body)} B in {best * 1000:.0f} ms, answer {len(data)} B ({outcome})")

    # Small admissions while large ones are worked on: three clients post a ~3.5 MiB pod
    # (1,900 containers) in a loop; one posts the typical pod on a kept-alive connection.
    small = json.dumps(review(pod_variant(None, ["/usr/local/bin/app"]), "bench-small")).encode()
    large = json.dumps(review(hostile_pod(_containers(1_900)), "bench-large")).encode()

    def small_latencies(n: int) -> list[float]:
        c = http.client.HTTPSConnection("127.0.0.1", webhook.port, context=ctx, timeout=60)
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            c.request("POST", "/mutate", body=small, headers={"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            out.append(time.perf_counter() - t0)
        c.close()
        return out

    quiet = statistics.median(small_latencies(200))
    stop = threading.Event()
    large_done = [0]

    def loader() -> None:
        while not stop.is_set():
            timed_post(webhook.port, large, ctx)
            large_done[0] += 1

    threads = [threading.Thread(target=loader, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # let the first large requests be read (bounded; figures only)
    loaded = small_latencies(200)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    return {
        "rows": rows,
        "under_load": {
            "quiet_p50_ms": quiet * 1000,
            "loaded_p50_ms": statistics.median(loaded) * 1000,
            "loaded_p99_ms": sorted(loaded)[int(len(loaded) * 0.99) - 1] * 1000,
            "large_bytes": len(large),
            "large_answered": large_done[0],
        },
    }


def single_cold(webhook: Webhook, registry: Registry, image_repo: str) -> dict:
    """One admission for an uncached image, then the same again (cached), on new connections."""
    image = f"{registry.addr}/{image_repo}:1"
    body = json.dumps(review(pod_variant(image, None), "single")).encode()
    ctx = unverified()
    out = {}
    for label in ("uncached_ms", "cached_ms"):
        c = http.client.HTTPSConnection("127.0.0.1", webhook.port, context=ctx, timeout=30)
        c.connect()
        t0 = time.perf_counter()
        c.request("POST", "/mutate", body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        out[label] = (time.perf_counter() - t0) * 1000
        c.close()
        check_mutated(r.status, json.loads(data), f"admission of {image}")
    return out


# ---------------------------------------------------------------------------------------
# secrets-init against moto


class CountingProxy:
    """HTTP/1.1 proxy in front of moto_server counting requests by X-Amz-Target."""

    def __init__(self, upstream_port: int) -> None:
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                target = self.headers.get("X-Amz-Target", "?").rpartition(".")[2]
                with proxy.lock:
                    proxy.counts[target] = proxy.counts.get(target, 0) + 1
                c = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "transfer-encoding")}
                c.request("POST", self.path, body=body, headers=headers)
                r = c.getresponse()
                data = r.read()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length", "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                c.close()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self) -> dict[str, int]:
        with self.lock:
            c, self.counts = self.counts, {}
        return c

    def close(self) -> None:
        self.server.shutdown()


def secrets_env(port: int, n: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SECRETS_INIT_"))}
    env.update(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    for i in range(n):
        env[f"BENCH_SECRET_{i:03d}"] = f"awssm:bench/secret-{i:03d}"
    return env


def secrets_init_bench(args, binary: Path) -> dict:
    venv_py = ROOT / ".tools/venv/bin/python"
    port = free_port()
    moto = start("moto", ["moto_server", "-H", "127.0.0.1", "-p", str(port)])
    wait_until("moto_server", lambda: http_get(f"http://127.0.0.1:{port}/moto-api/")[0] < 500, proc=moto)
    seed = (
        "import boto3, sys\n"
        "c = boto3.client('secretsmanager', endpoint_url=sys.argv[1], region_name='us-east-1',"
        " aws_access_key_id='bench', aws_secret_access_key='bench')\n"
        "for i in range(100):\n"
        "    c.create_secret(Name=f'bench/secret-{i:03d}', SecretString='{\"v\": \"bench-value-%d\"}' % i)\n"
    )
    r = run([str(venv_py), "-c", seed, f"http://127.0.0.1:{port}"], timeout=120)
    if r.returncode:
        raise SystemExit(f"seeding moto failed: {r.stderr}")
    proxy = CountingProxy(port)
    out: dict = {"calls": {}, "hyperfine": {}}
    try:
        for n in (1, 20, 21, 100):
            proxy.take()
            # The child checks that the last placeholder really became its value.
            last = f"BENCH_SECRET_{n - 1:03d}"
            check = f'test "${last}" = \'{{"v": "bench-value-{n - 1}"}}\''
            r = run([str(binary), "--", "/bin/sh", "-c", check], timeout=60, env=secrets_env(proxy.port, n))
            if r.returncode:
                raise SystemExit(f"secrets-init with {n} secrets failed ({r.returncode}): {r.stderr}")
            calls = proxy.take()
            out["calls"][str(n)] = {
                "batch": calls.pop("BatchGetSecretValue", 0),
                "get": calls.pop("GetSecretValue", 0),
                "other": calls,
                "goal_batch": math.ceil(n / 20) if n > 1 else 0,
            }
            log(f"secrets-init n={n}: {out['calls'][str(n)]}")
        # Wall time, straight to moto (no proxy in the way).
        cases = [("direct", None, 0), ("secrets-init, 0 placeholders", binary, 0),
                 ("secrets-init, 1 secret", binary, 1), ("secrets-init, 20 secrets", binary, 20),
                 ("secrets-init, 100 secrets", binary, 100)]
        for label, b, n in cases:
            cmd = "/bin/true" if b is None else f"{b} -- /bin/true"
            jf = WORK / f"hyperfine-{n}-{b is None}.json"
            r = run(["hyperfine", "-N", "--warmup", "3", "--runs", str(args.hyperfine_runs),
                     "--export-json", str(jf), cmd], timeout=600, env=secrets_env(port, n))
            if r.returncode:
                raise SystemExit(f"hyperfine {label}: {r.stderr}")
            res = json.loads(jf.read_text())["results"][0]
            out["hyperfine"][label] = {
                "mean_ms": res["mean"] * 1000, "stddev_ms": res["stddev"] * 1000,
                "median_ms": res["median"] * 1000, "min_ms": res["min"] * 1000,
                "max_ms": res["max"] * 1000, "runs": len(res["times"]),
            }
            log(f"hyperfine {label}: {out['hyperfine'][label]['mean_ms']:.2f} ms")
        # Peak RSS (the process's high-water mark, kept across execve; /bin/true is tiny).
        out["max_rss_kib"] = {}
        for n in (0, 1, 100):
            r = run(["/usr/bin/time", "-v", str(binary), "--", "/bin/true"], timeout=60, env=secrets_env(port, n))
            m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
            if r.returncode or not m:
                raise SystemExit(f"/usr/bin/time: {r.stderr}")
            out["max_rss_kib"][str(n)] = int(m.group(1))
        r = run(["/usr/bin/time", "-v", "/bin/true"], timeout=60)
        out["max_rss_kib"]["/bin/true"] = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1))
    finally:
        proxy.close()
        stop(moto)
    return out


# ---------------------------------------------------------------------------------------
# Criterion, binary size, machine


def criterion(args, target_dir: Path) -> dict:
    argv = ["cargo", "bench", "-p", "mutation-modes", "--bench", "mutate", "--",
            "--warm-up-time", "1", "--measurement-time", str(args.criterion_seconds)]
    env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir))
    r = subprocess.run(argv, cwd=ROOT, env=env, timeout=3600, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"cargo bench failed:\n{r.stderr[-4000:]}")
    out = {}
    cpu_env = dict(env, MUTATE_BENCH_CPU_ITERS=str(args.cpu_iters))
    r = subprocess.run(argv[:6], cwd=ROOT, env=cpu_env, timeout=3600, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"cargo bench (on-CPU time) failed:\n{r.stderr[-4000:]}")
    cpu = {}
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            cpu[row["id"]] = row
    base = target_dir / "criterion"
    for est in sorted(base.glob("*/new/estimates.json")):
        rel = est.parent.parent.relative_to(base)
        bench = json.loads((est.parent / "benchmark.json").read_text())
        e = json.loads(est.read_text())
        out[bench["full_id"]] = {
            "mean_us": e["mean"]["point_estimate"] / 1000,
            "lo_us": e["mean"]["confidence_interval"]["lower_bound"] / 1000,
            "hi_us": e["mean"]["confidence_interval"]["upper_bound"] / 1000,
            "median_us": e["median"]["point_estimate"] / 1000,
            "dir": str(rel),
        }
        if bench["full_id"] in cpu:
            out[bench["full_id"]]["cpu_us"] = cpu[bench["full_id"]]["cpu_us"]
            out[bench["full_id"]]["cpu_wall_us"] = cpu[bench["full_id"]]["wall_us"]
    return out


def binary_sizes() -> list[dict]:
    out = []
    for p in sorted(ROOT.glob("target/*-unknown-linux-musl/release/secrets-init")):
        f = run(["file", "-b", str(p)], timeout=30).stdout.strip()
        out.append({"path": str(p.relative_to(ROOT)), "bytes": p.stat().st_size, "file": f,
                    "mtime": dt.datetime.fromtimestamp(p.stat().st_mtime, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")})
    return out


def machine() -> dict:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    tools = {}
    for name, argv in {
        "wrk": ["wrk", "-v"], "nginx": ["nginx", "-v"], "hyperfine": ["hyperfine", "--version"],
        "rustc": ["rustc", "--version"], "docker-registry": ["docker-registry", "--version"],
        "openssl": ["openssl", "version"],
    }.items():
        r = run(argv, timeout=30)
        tools[name] = ((r.stdout or r.stderr).strip().splitlines() or ["?"])[0]
    load = Path("/proc/loadavg").read_text().split()[:3]
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_gib": int(mem) / 1024 / 1024,
        "kernel": platform.release(),
        "tools": tools,
        "loadavg_at_start": " ".join(load),
    }


# ---------------------------------------------------------------------------------------


def only_section(args) -> None:
    """Re-measures one section, stamps it with its own commit and date, merges it into
    bench/results.json and re-renders BENCHMARKS.md."""
    raw = BENCH / "results.json"
    results = json.loads(raw.read_text())
    try:
        registry = Registry()
        registry.push("bench/secrets-init", "1", ["/secrets-init"], [])
        webhook = Webhook(args.webhook, registry)
        log("bounded work per admission: hostile pods, one at a time")
        section = bounded_work(webhook)
    finally:
        stop_all()
    section["command"] = args.command
    section["git"] = run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], timeout=30).stdout.strip()
    section["started"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section["machine"] = machine()
    results[args.only] = section
    raw.write_text(json.dumps(results, indent=1) + "\n")
    sys.path.insert(0, str(BENCH))
    import report  # noqa: PLC0415 - sibling module

    args.output.write_text(report.render(results))
    log(f"updated the {args.only!r} section of {raw} and {args.output}")
    shutil.rmtree(WORK, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--webhook", type=Path, required=True)
    ap.add_argument("--secrets-init", type=Path, required=True)
    ap.add_argument("--target-dir", type=Path, required=True)
    ap.add_argument("--command", required=True, help="the command line, for the report")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--criterion-seconds", type=int, default=3)
    ap.add_argument("--hyperfine-runs", type=int, default=30)
    ap.add_argument("--cpu-iters", type=int, default=20000)
    ap.add_argument("--render-only", action="store_true", help="re-render BENCHMARKS.md from bench/results.json")
    ap.add_argument("--only", choices=["bounded"], help="re-measure one section into bench/results.json")
    ap.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    args = ap.parse_args()

    if args.render_only:
        sys.path.insert(0, str(BENCH))
        import report  # noqa: PLC0415 - sibling module

        args.output.write_text(report.render(json.loads((BENCH / "results.json").read_text())))
        return

    if args.only:
        only_section(args)
        return

    results: dict = {"command": args.command, "started": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    results["machine"] = machine()
    results["git"] = run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], timeout=30).stdout.strip()
    st = args.webhook.stat()
    results["webhook_binary"] = {
        "path": str(args.webhook), "bytes": st.st_size,
        "mtime": dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "file": run(["file", "-bL", str(args.webhook)], timeout=30).stdout.strip().split(",")[:4],
    }
    t_start = time.monotonic()
    try:
        log(f"work dir {WORK}")
        log("criterion: mutation core")
        results["criterion"] = criterion(args, args.target_dir)

        registry = Registry()
        for repo in ("bench/app", "bench/cold", "bench/single", "bench/secrets-init"):
            registry.push(repo, "1", ["/usr/local/bin/app"], ["serve", "--port=8080"])

        webhook = Webhook(args.webhook, registry)
        wpid = webhook.proc.pid
        time.sleep(1)  # settle after start-up (bounded, for the idle reading only)
        idle = proc_status(wpid)
        ctx = unverified()
        bodies = {}
        for kind, image, command in (
            ("command", None, ["/usr/local/bin/app"]),
            ("image", f"{registry.addr}/bench/app:1", None),
        ):
            p = WORK / f"review-{kind}.json"
            p.write_bytes(json.dumps(review(pod_variant(image, command), f"bench-{kind}")).encode())
            bodies[kind] = p
            status, answer = post(webhook.port, p.read_bytes(), ctx)
            check_mutated(status, answer, f"webhook, {kind} pod")
            if kind == "command":
                fixed = json.dumps(answer, separators=(",", ":")).encode()
        results["single"] = single_cold(webhook, registry, "bench/single")
        log(f"single admission: {results['single']}")

        nginx = Nginx(fixed)
        results["response_bytes"] = len(fixed)
        results["request_bytes"] = {k: p.stat().st_size for k, p in bodies.items()}
        m0 = webhook.metrics()
        log("load: webhook vs nginx")
        results["load"] = load_test(args, webhook, nginx, bodies)
        m1 = webhook.metrics()
        results["load"]["webhook_metrics_delta"] = {
            k: m1[k] - m0.get(k, 0) for k in m1
            if ("requests_total" in k or "_count" in k) and m1[k] - m0.get(k, 0)
        }
        mem = proc_status(wpid)
        nginx_rss = sum(proc_status(p)["VmHWM"] for p in nginx.pids())
        results["memory"] = {"idle_rss": idle["VmRSS"], "after_load_rss": mem["VmRSS"], "peak_rss": mem["VmHWM"],
                             "nginx_peak_rss_sum": nginx_rss}
        stop(nginx.proc)

        log("cold cache: 100 concurrent admissions, one uncached image")
        results["cold"] = cold_cache(webhook, registry, "bench/cold", 100)
        log(f"cold: {results['cold']}")
        results["memory"]["peak_rss_final"] = proc_status(wpid)["VmHWM"]
        log("bounded work per admission: hostile pods, one at a time")
        results["bounded"] = bounded_work(webhook)
        stop(webhook.proc)
        stop(registry.proc)

        log("secrets-init against moto")
        results["secrets_init"] = secrets_init_bench(args, args.secrets_init)
        results["secrets_init"]["binaries"] = binary_sizes()
    finally:
        stop_all()
    results["elapsed_s"] = time.monotonic() - t_start
    # The raw figures go next to the report: bench/results.json only for BENCHMARKS.md, so a
    # --quick run (written to /tmp) never replaces the recorded run's figures.
    raw = BENCH / "results.json" if args.output.resolve() == (ROOT / "BENCHMARKS.md").resolve() \
        else args.output.with_suffix(".json")
    raw.write_text(json.dumps(results, indent=1) + "\n")
    sys.path.insert(0, str(BENCH))
    import report  # noqa: PLC0415 - sibling module

    args.output.write_text(report.render(results))
    log(f"wrote {args.output} and {raw} in {results['elapsed_s']:.0f} s")
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
