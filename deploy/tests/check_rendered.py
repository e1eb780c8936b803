#!/usr/bin/env python3
"""Assertions on `helm template` output of deploy/helm/secrets-init-webhook.

    check_rendered.py RENDERED.yaml --mode MODE --namespace NS [--rules RULES.yaml]
                      [--core-out CORE.yaml] [--crd-out CRD.yaml]
    check_rendered.py RENDERED.yaml ... --self-test

Checks the MutatingWebhookConfiguration (contract section 7 / issue 5), the Deployment's
PSA-restricted security contexts, probes, config wiring, PDB, NetworkPolicy and the
cert-manager / Prometheus Operator objects (which kubernetes-validate has no schema for,
so they are cross-checked here against the core objects instead).

--core-out / --crd-out split the documents: core kinds go to kubernetes-validate
(strict), custom resources are checked only here.

--self-test breaks a known-good render in several ways and fails unless every
breakage is caught, so the checks themselves are shown to be able to fail.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import re
import sys

import yaml

# Keys the webhook accepts in its --config file (contract section 6, plus docker-config).
ALLOWED_CONFIG_KEYS = {
    "listen", "metrics-listen", "tls-cert", "tls-key", "mutation-mode", "secrets-init-image",
    "aws-region", "insecure-registry", "image-swap-template", "request-timeout",
    "max-body-bytes", "read-timeout", "log-format", "docker-config", "shutdown-delay",
}
MODES = {"init-container", "shared-volume", "image-swap"}
CRD_GROUPS = ("cert-manager.io/", "monitoring.coreos.com/")
PSA_VOLUME_TYPES = {"configMap", "secret", "emptyDir", "projected", "downwardAPI",
                    "persistentVolumeClaim", "ephemeral", "csi", "image"}


class Failures:
    def __init__(self) -> None:
        self.items: list[str] = []

    def check(self, cond: bool, what: str) -> None:
        if not cond:
            self.items.append(what)


def parse_duration(text: str) -> float:
    """'8', '8s', '500ms', '1m30s' -> seconds."""
    text = str(text).strip()
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
        return float(text)
    total, pos = 0.0, 0
    for m in re.finditer(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)", text):
        if m.start() != pos:
            raise ValueError(f"bad duration {text!r}")
        total += float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"bad duration {text!r}")
    return total


def index(docs):
    by_kind: dict[str, list[dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    return by_kind


def one(by_kind, kind, f: Failures):
    items = by_kind.get(kind, [])
    f.check(len(items) == 1, f"expected exactly one {kind}, found {len(items)}")
    return items[0] if items else None


def config_keys_from_source(path: str) -> set[str]:
    """The keys the webhook really accepts: FILE_KEYS in webhook/src/config.rs."""
    with open(path, encoding="utf-8") as fh:
        src = fh.read()
    m = re.search(r"FILE_KEYS[^=]*=\s*&\[(.*?)\];", src, re.S)
    if not m:
        raise SystemExit(f"{path}: no FILE_KEYS table found; cannot check the chart's config keys")
    keys = set(re.findall(r'\(\s*"([a-z0-9-]+)"\s*,', m.group(1)))
    if not keys:
        raise SystemExit(f"{path}: FILE_KEYS is empty")
    return keys


def check(docs, mode: str, namespace: str, rules_path: str | None, allowed_keys: set[str] | None = None) -> list[str]:
    allowed_keys = allowed_keys or ALLOWED_CONFIG_KEYS
    f = Failures()
    k = index(docs)
    for d in docs:
        if d["kind"] not in ("MutatingWebhookConfiguration",):
            f.check(d["metadata"].get("namespace") == namespace,
                    f"{d['kind']}/{d['metadata']['name']}: namespace is not {namespace}")

    svc = one(k, "Service", f)
    dep = one(k, "Deployment", f)
    cm = one(k, "ConfigMap", f)
    mwc = one(k, "MutatingWebhookConfiguration", f)
    if not (svc and dep and cm and mwc):
        return f.items

    pod = dep["spec"]["template"]["spec"]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    containers = pod["containers"] + pod.get("initContainers", [])
    main = pod["containers"][0]
    named_ports = {p["name"]: p["containerPort"] for p in main.get("ports", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["name"]: m for m in main.get("volumeMounts", [])}

    # --- Service -------------------------------------------------------------------
    svc_ports = {p["name"]: p for p in svc["spec"]["ports"]}
    f.check(all(pod_labels.get(kk) == vv for kk, vv in svc["spec"]["selector"].items()),
            "Service selector does not match the pod labels")
    f.check("https" in svc_ports and named_ports.get(svc_ports["https"]["targetPort"]) == 8443,
            "Service port 'https' must target the container's 8443")
    f.check("metrics" in svc_ports and named_ports.get("metrics") == 9090,
            "metrics port must be 9090 and exposed by the Service")

    # --- MutatingWebhookConfiguration -------------------------------------------------
    whs = mwc.get("webhooks", [])
    f.check(len(whs) == 1, "MutatingWebhookConfiguration must hold exactly one webhook")
    wh = whs[0] if whs else {}
    f.check(wh.get("name") == "inject.secretsinit.io", "webhook name must be inject.secretsinit.io")
    f.check(wh.get("failurePolicy") == "Fail", "failurePolicy must be Fail")
    f.check(wh.get("sideEffects") == "None", "sideEffects must be None")
    f.check(wh.get("reinvocationPolicy") == "IfNeeded", "reinvocationPolicy must be IfNeeded")
    f.check(wh.get("admissionReviewVersions") == ["v1"], "admissionReviewVersions must be [v1]")
    ts = wh.get("timeoutSeconds")
    f.check(isinstance(ts, int) and 1 <= ts <= 10, "timeoutSeconds must be 1..10")
    f.check(wh.get("rules") == [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                                 "resources": ["pods"], "scope": "Namespaced"}],
            "rules must be exactly pods CREATE (v1, Namespaced)")
    cc = wh.get("clientConfig", {})
    s = cc.get("service", {})
    f.check(s.get("name") == svc["metadata"]["name"] and s.get("namespace") == namespace,
            "clientConfig.service must point at the chart's Service")
    f.check(s.get("path") == "/mutate", "clientConfig path must be /mutate")
    f.check(s.get("port") == svc_ports.get("https", {}).get("port"), "clientConfig port must be the Service's https port")
    f.check("url" not in cc, "clientConfig must not use a url")
    excluded = set()
    for e in wh.get("namespaceSelector", {}).get("matchExpressions", []):
        if e.get("key") == "kubernetes.io/metadata.name" and e.get("operator") == "NotIn":
            excluded |= set(e.get("values", []))
    for ns in ("kube-system", "kube-node-lease", "cert-manager", namespace):
        f.check(ns in excluded, f"namespaceSelector must exclude namespace {ns}")

    certs = {c["metadata"]["name"]: c for c in k.get("Certificate", [])}
    issuers = {i["metadata"]["name"]: i for i in k.get("Issuer", [])}
    tls_vol = volumes.get("tls", {}).get("secret", {}).get("secretName")
    f.check(tls_vol is not None, "Deployment must mount the TLS Secret as volume 'tls'")
    inject = mwc["metadata"].get("annotations", {}).get("cert-manager.io/inject-ca-from")
    if "caBundle" in cc:
        f.check(inject is None, "caBundle and cert-manager CA injection are exclusive")
        try:
            pem = base64.b64decode(cc["caBundle"], validate=True).decode()
            f.check("BEGIN CERTIFICATE" in pem, "caBundle must be a base64 PEM certificate")
        except Exception:  # noqa: BLE001
            f.check(False, "caBundle is not valid base64")
        f.check(not certs and not issuers, "a user-provided certificate renders no cert-manager objects")
    else:
        f.check(inject is not None, "without a caBundle the cert-manager inject-ca-from annotation is required")
        if inject:
            ns, _, name = inject.partition("/")
            serving = certs.get(name)
            f.check(ns == namespace and serving is not None, f"inject-ca-from {inject} names no rendered Certificate")
            if serving:
                sp = serving["spec"]
                f.check(sp.get("secretName") == tls_vol, "serving Certificate secretName must be the mounted TLS Secret")
                host = f"{svc['metadata']['name']}.{namespace}.svc"
                f.check(host in sp.get("dnsNames", []), f"serving Certificate must cover {host}")
                f.check("server auth" in sp.get("usages", []), "serving Certificate must have usage 'server auth'")
                f.check(not sp.get("isCA"), "serving Certificate must not be a CA")
                ca_issuer = issuers.get(sp.get("issuerRef", {}).get("name"))
                f.check(ca_issuer is not None and "ca" in ca_issuer["spec"], "serving Certificate must be issued by a CA Issuer of this release")
                if ca_issuer and "ca" in ca_issuer["spec"]:
                    ca_secret = ca_issuer["spec"]["ca"]["secretName"]
                    ca_certs = [c for c in certs.values() if c["spec"].get("secretName") == ca_secret]
                    f.check(len(ca_certs) == 1 and ca_certs[0]["spec"].get("isCA") is True,
                            "the CA Issuer's secret must come from an isCA Certificate")
                    if ca_certs:
                        root = issuers.get(ca_certs[0]["spec"].get("issuerRef", {}).get("name"))
                        f.check(root is not None and "selfSigned" in root["spec"], "the CA must be issued by a selfSigned Issuer")
        for c in certs.values():
            allowed = {"secretName", "duration", "renewBefore", "dnsNames", "usages", "privateKey",
                       "issuerRef", "isCA", "commonName"}
            f.check(set(c["spec"]) <= allowed, f"Certificate {c['metadata']['name']}: unexpected keys {set(c['spec']) - allowed}")
            f.check(set(c["spec"]["issuerRef"]) <= {"name", "kind", "group"}, "issuerRef has unexpected keys")

    # --- Deployment: replicas, spread, security ---------------------------------------
    hpas = k.get("HorizontalPodAutoscaler", [])
    if hpas:
        f.check("replicas" not in dep["spec"], "with an HPA the Deployment must not set replicas")
        f.check(hpas[0]["spec"]["minReplicas"] >= 2, "HPA minReplicas must be >= 2")
        f.check(hpas[0]["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"], "HPA must target the Deployment")
    else:
        f.check(dep["spec"].get("replicas", 1) >= 2, "Deployment must run >= 2 replicas")
    zone = [t for t in pod.get("topologySpreadConstraints", []) if t["topologyKey"] == "topology.kubernetes.io/zone"]
    f.check(len(zone) == 1 and zone[0]["whenUnsatisfiable"] == "DoNotSchedule",
            "topology spread across zones must be DoNotSchedule")
    if zone:
        f.check(all(pod_labels.get(kk) == vv for kk, vv in zone[0]["labelSelector"]["matchLabels"].items()),
                "zone spread labelSelector must match the pods")

    psc = pod.get("securityContext", {})
    f.check(psc.get("runAsNonRoot") is True, "pod securityContext.runAsNonRoot must be true")
    f.check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "pod seccompProfile must be RuntimeDefault")
    f.check(psc.get("runAsUser", 1) != 0, "pod must not run as UID 0")
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        f.check(not pod.get(flag), f"pod must not set {flag}")
    f.check(pod.get("automountServiceAccountToken") is False, "pod must not mount the API token")
    for v in pod.get("volumes", []):
        kinds = set(v) - {"name"}
        f.check(kinds <= PSA_VOLUME_TYPES, f"volume {v['name']} uses a type outside PSA restricted: {kinds}")
    for c in containers:
        sc = c.get("securityContext", {})
        n = c["name"]
        f.check(sc.get("allowPrivilegeEscalation") is False, f"{n}: allowPrivilegeEscalation must be false")
        f.check(sc.get("readOnlyRootFilesystem") is True, f"{n}: readOnlyRootFilesystem must be true")
        f.check(sc.get("privileged") in (None, False), f"{n}: must not be privileged")
        f.check("ALL" in sc.get("capabilities", {}).get("drop", []), f"{n}: must drop ALL capabilities")
        f.check(not sc.get("capabilities", {}).get("add"), f"{n}: must not add capabilities")
        f.check(sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, f"{n}: must run as non-root")
        f.check(sc.get("runAsUser", psc.get("runAsUser", 1)) != 0, f"{n}: must not run as UID 0")
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        f.check(seccomp in ("RuntimeDefault", "Localhost"), f"{n}: seccompProfile must be RuntimeDefault")
        f.check(not any(p.get("hostPort") for p in c.get("ports", [])), f"{n}: must not use hostPort")
        res = c.get("resources", {})
        f.check("memory" in res.get("limits", {}) and "cpu" in res.get("requests", {}) and "memory" in res.get("requests", {}),
                f"{n}: cpu/memory requests and a memory limit are required")

    for c in containers:
        for key in ("env", "ports", "volumeMounts", "args"):
            f.check(key not in c or c[key] is not None, f"{c['name']}: {key} is rendered empty (null)")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        g = main.get(probe, {}).get("httpGet", {})
        port = g.get("port")
        port = named_ports.get(port, port)
        f.check(g.get("path") == path and g.get("scheme") == "HTTPS" and port == 8443,
                f"{probe} must be HTTPS GET {path} on 8443")

    # --- config file wiring ------------------------------------------------------------
    args = main.get("args", [])
    f.check("--config" in args and args.index("--config") + 1 < len(args), "webhook must be started with --config <file>")
    if "--config" in args and args.index("--config") + 1 < len(args):
        cfg_path = args[args.index("--config") + 1]
        cfg_vol = volumes.get("config", {}).get("configMap", {})
        f.check(cfg_vol.get("name") == cm["metadata"]["name"], "volume 'config' must be the chart's ConfigMap")
        mp = mounts.get("config", {}).get("mountPath", "")
        f.check(cfg_path.startswith(mp.rstrip("/") + "/") and cfg_path[len(mp.rstrip('/')) + 1:] in cm["data"],
                f"--config {cfg_path} is not a key of the mounted ConfigMap")
    raw = cm["data"].get("config.yaml", "")
    cfg = yaml.safe_load(raw) or {}
    unknown = set(cfg) - allowed_keys
    f.check(not unknown, f"config.yaml has keys the webhook does not accept: {sorted(unknown)}")
    f.check(cfg.get("mutation-mode") == mode, f"config mutation-mode must be {mode}, is {cfg.get('mutation-mode')}")
    f.check(cfg.get("mutation-mode") in MODES, "config mutation-mode is not a contract mode")
    tls_mp = mounts.get("tls", {}).get("mountPath", "\0")
    f.check(str(cfg.get("tls-cert", "")).startswith(tls_mp + "/") and str(cfg.get("tls-key", "")).startswith(tls_mp + "/"),
            "tls-cert/tls-key must live in the mounted TLS Secret (reloaded on rotation)")
    f.check(cfg.get("listen", "").endswith(":8443") and cfg.get("metrics-listen", "").endswith(":9090"),
            "listen/metrics-listen must be :8443/:9090")
    try:
        f.check(parse_duration(cfg.get("request-timeout", "8s")) < (ts or 0),
                "request-timeout must be shorter than the API server's timeoutSeconds")
    except ValueError as e:
        f.check(False, str(e))
    try:
        # The webhook drains for up to 20s after its shutdown delay.
        f.check(parse_duration(cfg.get("shutdown-delay", "2s")) + 20 < pod.get("terminationGracePeriodSeconds", 30),
                "terminationGracePeriodSeconds must exceed shutdown-delay + 20s drain")
    except ValueError as e:
        f.check(False, str(e))
    if "docker-config" in cfg:
        dmp = mounts.get("docker-config", {}).get("mountPath", "\0")
        f.check(cfg["docker-config"].startswith(dmp + "/"), "docker-config must be in the mounted Secret")
    checksum = dep["spec"]["template"]["metadata"].get("annotations", {}).get("checksum/config")
    f.check(checksum == hashlib.sha256(raw.rstrip("\n").encode()).hexdigest(),
            "pod annotation checksum/config must be the sha256 of the rendered config")
    for ref in (main["image"], cfg.get("secrets-init-image", "")):
        f.check("@sha256:" in ref or re.search(r":[A-Za-z0-9_][A-Za-z0-9_.-]*$", ref.rsplit("/", 1)[-1]) is not None,
                f"image {ref} must be pinned by digest or tag")

    # --- ServiceAccount ------------------------------------------------------------------
    sas = k.get("ServiceAccount", [])
    if sas:
        f.check(pod.get("serviceAccountName") == sas[0]["metadata"]["name"], "pod must use the chart's ServiceAccount")
        f.check(sas[0].get("automountServiceAccountToken") is False, "ServiceAccount must not automount its token")

    # --- PDB ---------------------------------------------------------------------------
    pdb = one(k, "PodDisruptionBudget", f)
    if pdb:
        f.check(pdb["spec"].get("minAvailable") == 1, "PDB minAvailable must be 1")
        f.check(all(pod_labels.get(kk) == vv for kk, vv in pdb["spec"]["selector"]["matchLabels"].items()),
                "PDB selector must match the pods")

    # --- NetworkPolicy -------------------------------------------------------------------
    np_ = one(k, "NetworkPolicy", f)
    if np_:
        sp = np_["spec"]
        f.check(all(pod_labels.get(kk) == vv for kk, vv in sp["podSelector"]["matchLabels"].items()),
                "NetworkPolicy must select the webhook pods")
        f.check(set(sp.get("policyTypes", [])) == {"Ingress", "Egress"}, "NetworkPolicy must restrict Ingress and Egress")
        in_ports = {(p["port"], p.get("protocol", "TCP")) for r in sp.get("ingress", []) for p in r.get("ports", [])}
        f.check(in_ports == {(8443, "TCP"), (9090, "TCP")}, f"ingress must allow exactly 8443 and 9090, allows {in_ports}")
        metrics_rules = [r for r in sp.get("ingress", []) if any(p["port"] == 9090 for p in r.get("ports", []))]
        f.check(all(r.get("from") for r in metrics_rules), "metrics ingress must be limited to Prometheus' namespace")
        eg_ports = {(p["port"], p.get("protocol", "TCP")) for r in sp.get("egress", []) for p in r.get("ports", [])}
        for need in ((53, "UDP"), (53, "TCP"), (443, "TCP")):
            f.check(need in eg_ports, f"egress must allow {need[0]}/{need[1]}")
        f.check(all(r.get("ports") for r in sp.get("egress", [])), "every egress rule must name its ports")

    # --- Prometheus Operator objects -------------------------------------------------------
    for sm in k.get("ServiceMonitor", []):
        eps = sm["spec"]["endpoints"]
        f.check(all(e.get("port") in svc_ports for e in eps), "ServiceMonitor endpoints must name a Service port")
        f.check(all(e.get("path", "/metrics") == "/metrics" for e in eps), "ServiceMonitor must scrape /metrics")
        sel = sm["spec"]["selector"]["matchLabels"]
        f.check(all(svc["metadata"]["labels"].get(kk) == vv for kk, vv in sel.items()), "ServiceMonitor must select the Service")
    for pr in k.get("PrometheusRule", []):
        if rules_path:
            with open(rules_path, encoding="utf-8") as fh:
                want = yaml.safe_load(fh)["groups"]
            f.check(pr["spec"]["groups"] == want, "PrometheusRule groups must equal deploy/prometheus/rules.yaml")
    return f.items


def self_test(docs, mode, namespace, rules_path) -> int:
    base = check(docs, mode, namespace, rules_path)
    if base:
        print("self-test needs a passing render; it has failures:\n  " + "\n  ".join(base), file=sys.stderr)
        return 1

    def find(ds, kind):
        return next(d for d in ds if d["kind"] == kind)

    breakages = {
        "failurePolicy Ignore": lambda ds: find(ds, "MutatingWebhookConfiguration")["webhooks"][0].update(failurePolicy="Ignore"),
        "timeoutSeconds 30": lambda ds: find(ds, "MutatingWebhookConfiguration")["webhooks"][0].update(timeoutSeconds=30),
        "UPDATE added": lambda ds: find(ds, "MutatingWebhookConfiguration")["webhooks"][0]["rules"][0]["operations"].append("UPDATE"),
        "own namespace not excluded": lambda ds: find(ds, "MutatingWebhookConfiguration")["webhooks"][0].update(namespaceSelector={}),
        "privilege escalation": lambda ds: find(ds, "Deployment")["spec"]["template"]["spec"]["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True),
        "writable root fs": lambda ds: find(ds, "Deployment")["spec"]["template"]["spec"]["containers"][0]["securityContext"].pop("readOnlyRootFilesystem"),
        "no seccomp": lambda ds: [find(ds, "Deployment")["spec"]["template"]["spec"]["securityContext"].pop("seccompProfile"),
                                  find(ds, "Deployment")["spec"]["template"]["spec"]["containers"][0]["securityContext"].pop("seccompProfile")],
        "hostPath volume": lambda ds: find(ds, "Deployment")["spec"]["template"]["spec"]["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
        "one replica": lambda ds: find(ds, "Deployment")["spec"].update(replicas=1) if "replicas" in find(ds, "Deployment")["spec"] else ds.remove(find(ds, "HorizontalPodAutoscaler")) or find(ds, "Deployment")["spec"].update(replicas=1),
        "zone spread soft": lambda ds: find(ds, "Deployment")["spec"]["template"]["spec"]["topologySpreadConstraints"][0].update(whenUnsatisfiable="ScheduleAnyway"),
        "readiness on http": lambda ds: find(ds, "Deployment")["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"].update(scheme="HTTP"),
        "unknown config key": lambda ds: find(ds, "ConfigMap")["data"].update({"config.yaml": find(ds, "ConfigMap")["data"]["config.yaml"] + "colour: blue\n"}),
        "stale checksum": lambda ds: find(ds, "Deployment")["spec"]["template"]["metadata"]["annotations"].update({"checksum/config": "0" * 64}),
        "pdb minAvailable 0": lambda ds: find(ds, "PodDisruptionBudget")["spec"].update(minAvailable=0),
        "egress without DNS": lambda ds: find(ds, "NetworkPolicy")["spec"].update(egress=[r for r in find(ds, "NetworkPolicy")["spec"]["egress"] if not any(p["port"] == 53 for p in r["ports"])]),
    }
    missed = []
    for name, breakit in breakages.items():
        ds = copy.deepcopy(docs)
        breakit(ds)
        if not check(ds, mode, namespace, rules_path):
            missed.append(name)
    if missed:
        print(f"self-test: these breakages were NOT detected: {missed}", file=sys.stderr)
        return 1
    print(f"self-test: all {len(breakages)} breakages detected")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rendered")
    ap.add_argument("--mode", required=True, choices=sorted(MODES))
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--rules")
    ap.add_argument("--core-out")
    ap.add_argument("--crd-out")
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("--config-keys-from", help="webhook/src/config.rs: check config keys against its FILE_KEYS")
    a = ap.parse_args()
    with open(a.rendered, encoding="utf-8") as fh:
        docs = [d for d in yaml.safe_load_all(fh) if d]
    if a.core_out or a.crd_out:
        core = [d for d in docs if not d["apiVersion"].startswith(CRD_GROUPS)]
        crd = [d for d in docs if d["apiVersion"].startswith(CRD_GROUPS)]
        unknown = [d for d in docs if "." in d["apiVersion"].split("/")[0] and not d["apiVersion"].startswith(CRD_GROUPS)
                   and not d["apiVersion"].split("/")[0].endswith(".k8s.io") and d["apiVersion"].split("/")[0] not in ("apps", "policy", "autoscaling", "batch")]
        if unknown:
            print(f"unexpected API groups: {[d['apiVersion'] for d in unknown]}", file=sys.stderr)
            return 1
        if a.core_out:
            with open(a.core_out, "w", encoding="utf-8") as fh:
                yaml.safe_dump_all(core, fh, sort_keys=False)
        if a.crd_out:
            with open(a.crd_out, "w", encoding="utf-8") as fh:
                yaml.safe_dump_all(crd, fh, sort_keys=False)
    if a.self_test:
        return self_test(docs, a.mode, a.namespace, a.rules)
    allowed = config_keys_from_source(a.config_keys_from) if a.config_keys_from else None
    failures = check(docs, a.mode, a.namespace, a.rules, allowed)
    if failures:
        print(f"{a.rendered}: {len(failures)} problem(s):", file=sys.stderr)
        for x in failures:
            print(f"  - {x}", file=sys.stderr)
        return 1
    kinds = sorted({d["kind"] for d in docs})
    print(f"{a.rendered}: OK ({len(docs)} objects: {', '.join(kinds)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
