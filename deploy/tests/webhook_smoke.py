#!/usr/bin/env python3
"""Runs the real secrets-init-webhook binary with the config file the Helm chart renders.

    webhook_smoke.py WEBHOOK_BINARY RENDERED.yaml [--mode MODE] [--serve]

0. The binary's own key list (`--print-config` without a config prints every key): each
   key of the chart's config.yaml must be one of them. This is the check of which keys
   the webhook accepts (rather than parsing its source, which changes shape).
1. `--print-config` with the chart's config.yaml (TLS paths overridden by flags to a
   throw-away certificate): the binary must accept every key, and report the mode,
   secrets-init image and every other value the chart set.
2. --serve: start it on loopback ports with that config, wait (bounded) for /readyz over
   HTTPS (TLS verified against the throw-away CA), send one AdmissionReview for a pod
   without the inject annotation (must be allowed unchanged), and read /metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from check_misc import CONTRACT_METRICS  # noqa: E402
from check_rendered import parse_duration  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fail(msg: str) -> None:
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("rendered")
    ap.add_argument("--mode", help="expected mutation mode (default: the chart config's)")
    ap.add_argument("--serve", action="store_true")
    a = ap.parse_args()

    docs = [d for d in yaml.safe_load_all(pathlib.Path(a.rendered).read_text(encoding="utf-8")) if d]
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    chart_cfg = yaml.safe_load(cm["data"]["config.yaml"])

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="webhook-smoke-"))
    cfg_path = tmp / "config.yaml"
    cfg_path.write_text(cm["data"]["config.yaml"], encoding="utf-8")
    cert, key = tmp / "tls.crt", tmp / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True)

    env = {k: v for k, v in os.environ.items() if not k.startswith("SECRETS_INIT_WEBHOOK_")}
    base = [a.binary, "--config", str(cfg_path), "--tls-cert", str(cert), "--tls-key", str(key)]
    if "docker-config" in chart_cfg:
        # The chart points at a mounted Secret; stand in an empty docker config here.
        (tmp / "docker-config.json").write_text('{"auths": {}}', encoding="utf-8")
        base += ["--docker-config", str(tmp / "docker-config.json")]

    # 0. Every key the chart writes is one the binary knows.
    p = subprocess.run([a.binary, "--print-config"], capture_output=True, text=True, env=env, timeout=60)
    if p.returncode != 0:
        fail(f"{a.binary} --print-config failed:\n{p.stderr.strip()}")
    known = set(yaml.safe_load(p.stdout) or {})
    unknown = sorted(set(chart_cfg) - known)
    if unknown:
        fail(f"the chart writes config keys this webhook binary does not know: {unknown} "
             f"(its keys: {sorted(known)})")

    # 1. The binary accepts the chart's config.
    p = subprocess.run(base + ["--print-config"], capture_output=True, text=True, env=env, timeout=60)
    if p.returncode != 0:
        fail(f"the webhook rejects the chart's config ({a.rendered}):\n{p.stderr.strip()}")
    try:
        resolved = yaml.safe_load(p.stdout)
    except yaml.YAMLError as e:
        fail(f"--print-config output is not YAML: {e}")
    for k in ("mutation-mode", "secrets-init-image", "image-swap-template", "aws-region", "log-format",
              "init-container-cpu", "init-container-memory", "run-as-user", "registry-mirror", "insecure-registry"):
        if k in chart_cfg and str(resolved.get(k)) != str(chart_cfg.get(k)):
            fail(f"{k}: chart sets {chart_cfg.get(k)!r}, webhook resolved {resolved.get(k)!r}")
    for k in ("request-timeout", "registry-timeout", "read-timeout", "shutdown-delay"):
        if k in chart_cfg and parse_duration(resolved.get(k)) != parse_duration(chart_cfg[k]):
            fail(f"{k}: chart sets {chart_cfg[k]!r}, webhook resolved {resolved.get(k)!r}")
    a.mode = a.mode or chart_cfg.get("mutation-mode")
    if resolved.get("mutation-mode") != a.mode:
        fail(f"mode {resolved.get('mutation-mode')!r} != {a.mode!r}")
    print(f"webhook accepts the chart's config ({a.mode}): {len(chart_cfg)} keys")
    if not a.serve:
        return

    # 2. It serves with that config.
    port, mport = free_port(), free_port()
    log = (tmp / "webhook.log").open("w")
    proc = subprocess.Popen(base + ["--listen", f"127.0.0.1:{port}", "--metrics-listen", f"127.0.0.1:{mport}"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    ctx = ssl.create_default_context(cafile=str(cert))
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                fail(f"webhook exited with {proc.returncode}:\n{(tmp / 'webhook.log').read_text()}")
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", context=ctx, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                fail(f"/readyz not 200 within 30s:\n{(tmp / 'webhook.log').read_text()}")
            time.sleep(0.2)
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=ctx, timeout=5) as r:
            if r.status != 200:
                fail(f"/healthz answered {r.status}")
        review = {
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "0a1b2c3d-0000-4000-8000-000000000001",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "operation": "CREATE", "namespace": "default", "name": "plain",
                "userInfo": {"username": "smoke"},
                "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "plain", "namespace": "default"},
                           "spec": {"containers": [{"name": "app", "image": "busybox:1.36", "command": ["true"]}]}},
            },
        }
        req = urllib.request.Request(f"https://127.0.0.1:{port}/mutate", data=json.dumps(review).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            resp = json.load(r)["response"]
        if resp.get("uid") != review["request"]["uid"] or resp.get("allowed") is not True or resp.get("patch"):
            fail(f"a pod without the inject annotation must be allowed unchanged, got {resp}")
        with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        if not re.search(r'^secrets_init_webhook_admission_requests_total\{[^}]*result="skipped"[^}]*\} 1(\.0)?$', metrics, re.M):
            fail("metrics do not count the skipped admission:\n" + "\n".join(
                l for l in metrics.splitlines() if "admission" in l))
        families = {l.split("{")[0].split(" ")[0] for l in metrics.splitlines() if l and not l.startswith("#")}
        for m in CONTRACT_METRICS:
            if not ({m, m + "_count"} & families):
                fail(f"/metrics does not export {m} (contract section 6; the alert rules and dashboard use it)")
        print(f"webhook serves with the chart's config: /readyz, /healthz, /mutate (skipped), /metrics exports all contract metrics")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
