#!/usr/bin/env python3
"""Assertions on `helm template` output of deploy/helm/secrets-init-webhook.

    check_rendered.py CASE... --namespace NS [--rules RULES.yaml]
                      [--core-out CORE.yaml] [--crd-out CRD.yaml]
    check_rendered.py CASE... --namespace NS --rules RULES.yaml --self-test

A CASE is `RENDERED.yaml[,VALUES.yaml[,NOTES.txt]]`: the render, the values file it was
rendered with (merged here over the chart's values.yaml the way Helm does, `null`
deleting a key) and the NOTES that `helm install --dry-run=client` printed for it.
Every switch of the chart is checked against its value: the MutatingWebhookConfiguration
(contract section 7: matchConditions, the opt-out label, excluded namespaces,
failurePolicy, timeouts), the Deployment (security contexts, hostNetwork/dnsPolicy, the
webhook port everywhere it appears, topology spread, extra volumes), the webhook config
file, NetworkPolicy, PrometheusRule (scoped copy of deploy/prometheus/rules.yaml),
Grafana dashboard ConfigMap, commonLabels, extraObjects and the cert-manager objects
(which kubernetes-validate has no schema for, so they are cross-checked here); and
secrets-init-controller's objects (controller.enabled: its Deployment with the same Pod
Security `restricted` checks as the webhook's, its flags, its ClusterRole rules exactly
those of controller/README.md, the namespaced lease Role, Service, PDB, ServiceMonitor;
none of them by default).

Which keys the webhook binary accepts is not checked here: scripts/test-deploy runs the
real binary with every rendered config (deploy/tests/webhook_smoke.py), which refuses
unknown keys. Here the config may hold only keys the chart is meant to write.

--core-out / --crd-out (first case only) split the documents: core kinds go to
kubernetes-validate (strict), custom resources are checked only here.

--self-test breaks known-good renders in many ways and fails unless every breakage is
caught (each breakage is applied to the first case it applies to; one that applies to
none fails too), so the checks themselves are shown to be able to fail.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import json
import pathlib
import re
import sys

import yaml

HERE = pathlib.Path(__file__).resolve().parent
CHART = HERE.parent / "helm" / "secrets-init-webhook"
DASHBOARD = HERE.parent / "grafana" / "secrets-init-webhook.json"

# Keys the chart may write into the webhook's --config file (plus webhook.extraConfig's).
CHART_CONFIG_KEYS = {
    "listen", "metrics-listen", "tls-cert", "tls-key", "mutation-mode", "secrets-init-image",
    "aws-region", "insecure-registry", "image-swap-template", "request-timeout", "registry-timeout",
    "max-body-bytes", "read-timeout", "log-format", "docker-config", "shutdown-delay",
    "max-connection-age", "registry-mirror", "init-container-cpu", "init-container-memory", "run-as-user",
}
# The webhook's own defaults for the keys the chart writes only when they differ.
WEBHOOK_DEFAULTS = {"init-container-cpu": "50m", "init-container-memory": "64Mi", "run-as-user": "65532"}
MODES = {"init-container", "shared-volume", "image-swap"}
CRD_GROUPS = ("cert-manager.io/", "monitoring.coreos.com/")
PSA_VOLUME_TYPES = {"configMap", "secret", "emptyDir", "projected", "downwardAPI",
                    "persistentVolumeClaim", "ephemeral", "csi", "image"}
OPT_OUT = {"key": "secretsinit.io/webhook", "operator": "NotIn", "values": ["disabled"]}
ALWAYS_EXCLUDED = ("kube-system", "kube-node-lease")
DEFAULT_CONDITION = "secretsinit-candidate"
SCOPE_ANY_RELEASE = 'deployment=~"(.+-)?secrets-init-webhook"'
JOB_ANY_RELEASE = 'job=~"(.+-)?secrets-init-webhook"'
CTRL_JOB_ANY_RELEASE = 'job=~"(.+-)?secrets-init(-webhook)?-controller"'
CTRL_GROUP = "secrets-init-controller"  # the rules.yaml group rendered only with controller.enabled
CTRL_NAME = "secrets-init-controller"   # the controller objects' app.kubernetes.io/name
CLUSTER_SCOPED = {"MutatingWebhookConfiguration", "ClusterRole", "ClusterRoleBinding"}
SA_TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# controller/README.md "Flags" (each given as --flag=value, or alone for the booleans).
CTRL_FLAGS = {"--poll-interval", "--aws-region", "--namespace-selector", "--cooldown", "--max-restarts-per-minute",
              "--dry-run", "--follow-refs", "--sqs-queue-url", "--leader-election", "--lease-name",
              "--lease-namespace", "--lease-duration", "--identity", "--listen", "--log-format", "--shutdown-timeout"}
# Annotations that configure a tool rather than the object have no place in the chart.
TOOL_ANNOTATION = re.compile(r"^(checkov\.io|kics\.io|trivy\.|datree\.io|polaris\.|kube-score/)")


class Failures:
    def __init__(self) -> None:
        self.items: list[str] = []

    def check(self, cond: bool, what: str) -> None:
        if not cond:
            self.items.append(what)


def parse_duration(text) -> float:
    """'8', '8s', '500ms', '1m30s', '1s 500ms' (the webhook's --print-config) -> seconds."""
    text = str(text).replace(" ", "")
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


def merge(base, over):
    """Helm's value coalescing: maps merge, anything else replaces, null deletes."""
    if not isinstance(base, dict) or not isinstance(over, dict):
        return copy.deepcopy(over)
    out = copy.deepcopy(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_values(path: str | None) -> dict:
    with open(CHART / "values.yaml", encoding="utf-8") as fh:
        vals = yaml.safe_load(fh)
    if path:
        with open(path, encoding="utf-8") as fh:
            vals = merge(vals, yaml.safe_load(fh) or {})
    return vals


def effective_mode(vals: dict) -> str:
    return vals["webhook"].get("mutationMode") or vals.get("mutationMode") or "init-container"


def controller_fullname(fullname: str) -> str:
    return fullname[:52].rstrip("-") + "-controller"


def scope_expr(expr: str, namespace: str, fullname: str, poll_seconds: int = 60) -> str:
    """The chart's scoping of a deploy/prometheus/rules.yaml expression to one release."""
    scope = f'namespace="{namespace}", job="{fullname}"'
    expr = expr.replace(SCOPE_ANY_RELEASE, f'namespace="{namespace}", deployment="{fullname}"')
    expr = expr.replace(JOB_ANY_RELEASE, scope)
    expr = re.sub(r"(secrets_init_webhook_[a-z_]+)\{", lambda m: f"{m.group(1)}{{{scope}, ", expr)
    expr = re.sub(r"(secrets_init_webhook_[a-z_]+)([^a-z_{])", lambda m: f"{m.group(1)}{{{scope}}}{m.group(2)}", expr)
    # The controller's: its own metrics and `up` to its job in the release namespace; the
    # fleet metrics (whose namespace label is the failing pods') to its job only.
    cjob = f'job="{controller_fullname(fullname)}"'
    cscope = f'namespace="{namespace}", {cjob}'
    expr = expr.replace(CTRL_JOB_ANY_RELEASE, cscope)
    expr = re.sub(r"(secrets_init_controller_[a-z_]+)\{", lambda m: f"{m.group(1)}{{{cscope}, ", expr)
    expr = re.sub(r"(secrets_init_controller_[a-z_]+)([^a-z_{])", lambda m: f"{m.group(1)}{{{cscope}}}{m.group(2)}", expr)
    expr = re.sub(r"(secrets_init_(resolution_failures_total|pods_failing))\{", lambda m: f"{m.group(1)}{{{cjob}, ", expr)
    expr = re.sub(r"(secrets_init_(resolution_failures_total|pods_failing))([^a-z_{])", lambda m: f"{m.group(1)}{{{cjob}}}{m.group(3)}", expr)
    return expr.replace("> 5 * 60", f"> 5 * {poll_seconds}")


def is_controller(d) -> bool:
    return (d["metadata"].get("labels") or {}).get("app.kubernetes.io/name") == CTRL_NAME


def index(docs):
    by_kind: dict[str, list[dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    return by_kind


def one(by_kind, kind, f: Failures, name_suffix: str = ""):
    items = [d for d in by_kind.get(kind, []) if d["metadata"]["name"].endswith(name_suffix)] if name_suffix else by_kind.get(kind, [])
    f.check(len(items) == 1, f"expected exactly one {kind}, found {len(items)}")
    return items[0] if items else None


def pod_security(f: Failures, who: str, pod: dict, want_psc, want_sc) -> None:
    """Pod Security `restricted` (and the chart's own rules) for a pod template: the same
    for the webhook's and the controller's."""
    psc = pod.get("securityContext", {})
    containers = pod["containers"] + pod.get("initContainers", [])
    f.check(psc == (want_psc or {}), f"{who}: pod securityContext must be its podSecurityContext value")
    f.check(pod["containers"][0].get("securityContext", {}) == (want_sc or {}), f"{who}: container securityContext must be its securityContext value")
    f.check(psc.get("runAsNonRoot") is True, f"{who}: pod securityContext.runAsNonRoot must be true")
    f.check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{who}: pod seccompProfile must be RuntimeDefault")
    f.check(psc.get("runAsUser", 1) != 0, f"{who}: pod must not run as UID 0")
    for flag in ("hostPID", "hostIPC"):
        f.check(not pod.get(flag), f"{who}: pod must not set {flag}")
    for v in pod.get("volumes", []):
        kinds = set(v) - {"name"}
        f.check(kinds <= PSA_VOLUME_TYPES, f"{who}: volume {v['name']} uses a type outside PSA restricted: {kinds}")
    for c in containers:
        sc = c.get("securityContext", {})
        n = f"{who}/{c['name']}"
        f.check(sc.get("allowPrivilegeEscalation") is False, f"{n}: allowPrivilegeEscalation must be false")
        f.check(sc.get("readOnlyRootFilesystem") is True, f"{n}: readOnlyRootFilesystem must be true")
        f.check(sc.get("privileged") in (None, False), f"{n}: must not be privileged")
        f.check("ALL" in sc.get("capabilities", {}).get("drop", []), f"{n}: must drop ALL capabilities")
        f.check(not sc.get("capabilities", {}).get("add"), f"{n}: must not add capabilities")
        f.check(sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, f"{n}: must run as non-root")
        f.check(sc.get("runAsUser", psc.get("runAsUser", 1)) != 0, f"{n}: must not run as UID 0")
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        f.check(seccomp in ("RuntimeDefault", "Localhost"), f"{n}: seccompProfile must be RuntimeDefault")
        f.check(not any(p.get("hostPort") for p in c.get("ports", [])), f"{n}: must not set hostPort (hostNetwork implies it)")
        res = c.get("resources", {})
        f.check("memory" in res.get("limits", {}) and "cpu" in res.get("requests", {}) and "memory" in res.get("requests", {}),
                f"{n}: cpu/memory requests and a memory limit are required")
        for key in ("env", "ports", "volumeMounts", "args"):
            f.check(key not in c or c[key] is not None, f"{n}: {key} is rendered empty (null)")


def check(docs, vals: dict, namespace: str, rules_path: str | None, notes: str | None = None) -> list[str]:
    f = Failures()
    # The controller's objects are checked by check_controller; the rest is the webhook's.
    ctrl_docs = [d for d in docs if is_controller(d)]
    k = index([d for d in docs if not is_controller(d)])
    wv = vals["webhook"]
    mode = effective_mode(vals)
    extras = []  # (kind, name without its template part) of webhook.extraObjects entries
    for o in vals.get("extraObjects", []):
        if isinstance(o, dict):
            extras.append((o.get("kind", ""), re.sub(r"\{\{.*?\}\}", "", o["metadata"]["name"]).strip("'\"")))

    def is_extra(d) -> bool:
        return any(d["kind"] == kind and d["metadata"]["name"].endswith(suffix) for kind, suffix in extras)

    dash_ns = vals["metrics"]["grafanaDashboard"].get("namespace") or namespace
    for d in docs:
        md = d["metadata"]
        if d["kind"] in CLUSTER_SCOPED:
            f.check("namespace" not in md, f"{d['kind']}/{md['name']}: cluster-scoped, must have no namespace")
        elif d["kind"] == "ConfigMap" and md["name"].endswith("-dashboard"):
            f.check(md.get("namespace") == dash_ns, f"dashboard ConfigMap must be in {dash_ns}")
        else:
            f.check(md.get("namespace") == namespace, f"{d['kind']}/{md['name']}: namespace is not {namespace}")
        bad = [a for a in (md.get("annotations") or {}) if TOOL_ANNOTATION.match(a)]
        f.check(not bad, f"{d['kind']}/{md['name']}: tool annotations {bad} do not belong on rendered objects")
        if not is_extra(d):
            labels = md.get("labels") or {}
            for lk, lv in (vals.get("commonLabels") or {}).items():
                f.check(labels.get(lk) == lv, f"{d['kind']}/{md['name']}: commonLabels {lk}={lv} missing")

    cms = [d for d in k.get("ConfigMap", []) if d["metadata"]["name"] == next(
        (x["metadata"]["name"] for x in k.get("Deployment", [])), None)]
    svc = one(k, "Service", f)
    dep = one(k, "Deployment", f)
    cm = cms[0] if len(cms) == 1 else None
    f.check(cm is not None, "expected one ConfigMap named like the Deployment (the webhook config)")
    mwc = one(k, "MutatingWebhookConfiguration", f)
    if not (svc and dep and cm and mwc):
        return f.items
    fullname = dep["metadata"]["name"]

    pod = dep["spec"]["template"]["spec"]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    containers = pod["containers"] + pod.get("initContainers", [])
    main = pod["containers"][0]
    named_ports = {p["name"]: p["containerPort"] for p in main.get("ports", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["name"]: m for m in main.get("volumeMounts", [])}
    port = wv["port"]
    mport = vals["metrics"]["port"]
    for lk, lv in (vals.get("commonLabels") or {}).items():
        f.check(pod_labels.get(lk) == lv, f"pod template: commonLabels {lk}={lv} missing")

    # --- Service -------------------------------------------------------------------
    svc_ports = {p["name"]: p for p in svc["spec"]["ports"]}
    f.check(all(pod_labels.get(kk) == vv for kk, vv in svc["spec"]["selector"].items()),
            "Service selector does not match the pod labels")
    f.check("https" in svc_ports and named_ports.get(svc_ports["https"]["targetPort"], svc_ports["https"]["targetPort"]) == port,
            f"Service port 'https' must target the container's webhook.port {port}")
    f.check("metrics" in svc_ports and named_ports.get("metrics") == mport,
            f"metrics port must be {mport} and exposed by the Service")

    # --- MutatingWebhookConfiguration -------------------------------------------------
    whs = mwc.get("webhooks", [])
    f.check(len(whs) == 1, "MutatingWebhookConfiguration must hold exactly one webhook")
    wh = whs[0] if whs else {}
    f.check(wh.get("name") == "inject.secretsinit.io", "webhook name must be inject.secretsinit.io")
    f.check(wh.get("failurePolicy") in ("Fail", "Ignore") and wh.get("failurePolicy") == wv["failurePolicy"],
            f"failurePolicy must be webhook.failurePolicy ({wv['failurePolicy']})")
    f.check(wh.get("sideEffects") == "None", "sideEffects must be None")
    f.check(wh.get("reinvocationPolicy") == "IfNeeded", "reinvocationPolicy must be IfNeeded")
    f.check(wh.get("admissionReviewVersions") == ["v1"], "admissionReviewVersions must be [v1]")
    ts = wh.get("timeoutSeconds")
    f.check(isinstance(ts, int) and 1 <= ts <= 30 and ts == wv["timeoutSeconds"],
            f"timeoutSeconds must be webhook.timeoutSeconds ({wv['timeoutSeconds']}), 1..30")
    f.check(wh.get("rules") == [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                                 "resources": ["pods"], "scope": "Namespaced"}],
            "rules must be exactly pods CREATE (v1, Namespaced)")
    conds = wh.get("matchConditions") or []
    f.check(1 <= len(conds) <= 64, "matchConditions must be present (1..64 conditions)")
    f.check(len({c.get("name") for c in conds}) == len(conds), "matchCondition names must be unique")
    if wv.get("matchConditions"):
        f.check(conds == wv["matchConditions"], "matchConditions must be webhook.matchConditions")
    else:
        f.check([c.get("name") for c in conds] == [DEFAULT_CONDITION],
                f"default matchConditions must be the chart's one condition {DEFAULT_CONDITION}")
    cc = wh.get("clientConfig", {})
    s = cc.get("service", {})
    f.check(s.get("name") == svc["metadata"]["name"] and s.get("namespace") == namespace,
            "clientConfig.service must point at the chart's Service")
    f.check(s.get("path") == "/mutate", "clientConfig path must be /mutate")
    f.check(s.get("port") == svc_ports.get("https", {}).get("port"), "clientConfig port must be the Service's https port")
    f.check("url" not in cc, "clientConfig must not use a url")
    ns_exprs = wh.get("namespaceSelector", {}).get("matchExpressions", [])
    excluded = set()
    for e in ns_exprs:
        if e.get("key") == "kubernetes.io/metadata.name" and e.get("operator") == "NotIn":
            excluded |= set(e.get("values", []))
    for ns in (*ALWAYS_EXCLUDED, namespace, *wv.get("excludedNamespaces", [])):
        f.check(ns in excluded, f"namespaceSelector must exclude namespace {ns}")
    f.check(OPT_OUT in ns_exprs, "namespaceSelector must exclude namespaces labelled secretsinit.io/webhook=disabled")
    f.check(not wh.get("namespaceSelector", {}).get("matchLabels"), "namespaceSelector must not require labels")
    for e in wv.get("namespaceSelectorExpressions", []):
        f.check(e in ns_exprs, f"namespaceSelectorExpressions entry {e} missing")
    osel = wh.get("objectSelector", {})
    f.check(OPT_OUT in osel.get("matchExpressions", []), "objectSelector must exclude pods labelled secretsinit.io/webhook=disabled")
    user_sel = wv.get("objectSelector") or {}
    f.check(osel.get("matchLabels", {}) == user_sel.get("matchLabels", {}), "objectSelector matchLabels must be webhook.objectSelector's")
    for e in user_sel.get("matchExpressions", []):
        f.check(e in osel.get("matchExpressions", []), f"objectSelector expression {e} missing")

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

    # --- Deployment: replicas, spread, host network, security ----------------------------
    hpas = k.get("HorizontalPodAutoscaler", [])
    if hpas:
        f.check("replicas" not in dep["spec"], "with an HPA the Deployment must not set replicas")
        f.check(hpas[0]["spec"]["minReplicas"] >= 2, "HPA minReplicas must be >= 2")
        f.check(hpas[0]["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"], "HPA must target the Deployment")
    else:
        f.check(dep["spec"].get("replicas", 1) >= 2, "Deployment must run >= 2 replicas")
    tsc = pod.get("topologySpreadConstraints", [])
    if vals.get("topologySpreadConstraints"):
        f.check(len(tsc) == len(vals["topologySpreadConstraints"]), "topologySpreadConstraints must be passed through")
        for want, got in zip(vals["topologySpreadConstraints"], tsc):
            f.check({kk: vv for kk, vv in got.items() if kk != "labelSelector" or "labelSelector" in want} == want,
                    f"topologySpreadConstraints entry {want} not passed through as given")
            f.check(all(pod_labels.get(kk) == vv for kk, vv in got.get("labelSelector", {}).get("matchLabels", {}).items())
                    and got.get("labelSelector"), "passed-through spread constraints must select the pods")
    else:
        zone = [t for t in tsc if t["topologyKey"] == "topology.kubernetes.io/zone"]
        want_zone = vals["topologySpread"]["zone"]["whenUnsatisfiable"]
        f.check(len(zone) == 1 and zone[0]["whenUnsatisfiable"] == want_zone,
                f"topology spread across zones must be {want_zone} (topologySpread.zone)")
        if zone:
            f.check(all(pod_labels.get(kk) == vv for kk, vv in zone[0]["labelSelector"]["matchLabels"].items()),
                    "zone spread labelSelector must match the pods")

    f.check(bool(pod.get("hostNetwork")) == bool(vals.get("hostNetwork")), f"pod hostNetwork must be {bool(vals.get('hostNetwork'))}")
    want_dns = vals.get("dnsPolicy") or ("ClusterFirstWithHostNet" if vals.get("hostNetwork") else None)
    f.check(pod.get("dnsPolicy") == want_dns, f"pod dnsPolicy must be {want_dns}, is {pod.get('dnsPolicy')}")
    pod_security(f, "webhook", pod, vals.get("podSecurityContext"), vals.get("securityContext"))
    f.check(pod.get("automountServiceAccountToken") is False, "pod must not mount the API token")
    for ev in vals.get("extraVolumes", []):
        f.check(volumes.get(ev["name"]) == ev, f"extraVolumes entry {ev['name']} missing")
    for em in vals.get("extraVolumeMounts", []):
        f.check(mounts.get(em["name"]) == em, f"extraVolumeMounts entry {em['name']} missing")

    for c in containers:
        for key in ("env", "ports", "volumeMounts", "args"):
            f.check(key not in c or c[key] is not None, f"{c['name']}: {key} is rendered empty (null)")
    f.check(named_ports.get("https") == port, f"container port 'https' must be webhook.port {port}")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        g = main.get(probe, {}).get("httpGet", {})
        p = named_ports.get(g.get("port"), g.get("port"))
        f.check(g.get("path") == path and g.get("scheme") == "HTTPS" and p == port,
                f"{probe} must be HTTPS GET {path} on webhook.port {port}")

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
    unknown = set(cfg) - CHART_CONFIG_KEYS - set(wv.get("extraConfig") or {})
    f.check(not unknown, f"config.yaml has keys the chart does not write: {sorted(unknown)}")
    f.check(cfg.get("mutation-mode") == mode, f"config mutation-mode must be {mode}, is {cfg.get('mutation-mode')}")
    f.check(cfg.get("mutation-mode") in MODES, "config mutation-mode is not a contract mode")
    tls_mp = mounts.get("tls", {}).get("mountPath", "\0")
    f.check(str(cfg.get("tls-cert", "")).startswith(tls_mp + "/") and str(cfg.get("tls-key", "")).startswith(tls_mp + "/"),
            "tls-cert/tls-key must live in the mounted TLS Secret (reloaded on rotation)")
    f.check(cfg.get("listen") == f"0.0.0.0:{port}" and cfg.get("metrics-listen") == f"0.0.0.0:{mport}",
            f"listen/metrics-listen must be :{port}/:{mport} (webhook.port, metrics.port)")
    try:
        req = parse_duration(cfg.get("request-timeout", "8s"))
        reg = parse_duration(cfg.get("registry-timeout", "6s"))
        f.check("request-timeout" in cfg and "registry-timeout" in cfg, "request-timeout and registry-timeout must be rendered")
        f.check(0 < req < (ts or 0), f"request-timeout ({req}s) must be strictly below timeoutSeconds ({ts})")
        f.check(0 < reg < req, f"registry-timeout ({reg}s) must be strictly below request-timeout ({req}s)")
        if str(wv.get("requestTimeout", "")) != "":
            f.check(req == parse_duration(str(wv["requestTimeout"])), "request-timeout must be webhook.requestTimeout")
        if str(wv.get("registryTimeout", "")) != "":
            f.check(reg == parse_duration(str(wv["registryTimeout"])), "registry-timeout must be webhook.registryTimeout")
    except ValueError as e:
        f.check(False, str(e))
    try:
        # The webhook drains for up to 20s after its shutdown delay.
        f.check(parse_duration(cfg.get("shutdown-delay", "2s")) + 20 < pod.get("terminationGracePeriodSeconds", 30),
                "terminationGracePeriodSeconds must exceed shutdown-delay + 20s drain")
    except ValueError as e:
        f.check(False, str(e))
    ic = vals["secretsInit"]["initContainer"]
    for key, val in (("init-container-cpu", ic["cpu"]), ("init-container-memory", ic["memory"]), ("run-as-user", ic["runAsUser"])):
        if str(val) == WEBHOOK_DEFAULTS[key]:
            f.check(key not in cfg, f"{key} equals the webhook's default and is left out of the config")
        else:
            f.check(str(cfg.get(key)) == str(val), f"config {key} must be {val}")
    f.check(cfg.get("registry-mirror", []) == wv.get("registryMirrors", []), "registry-mirror must be webhook.registryMirrors")
    for key, val in (wv.get("extraConfig") or {}).items():
        f.check(cfg.get(key) == val, f"extraConfig {key} not rendered")
    if "docker-config" in cfg:
        dmp = mounts.get("docker-config", {}).get("mountPath", "\0")
        f.check(cfg["docker-config"].startswith(dmp + "/"), "docker-config must be in the mounted Secret")
    checksum = dep["spec"]["template"]["metadata"].get("annotations", {}).get("checksum/config")
    f.check(checksum == hashlib.sha256(raw.rstrip("\n").encode()).hexdigest(),
            "pod annotation checksum/config must be the sha256 of the rendered config")
    for ref in (main["image"], cfg.get("secrets-init-image", "")):
        f.check("@sha256:" in ref or re.search(r":[A-Za-z0-9_][A-Za-z0-9_.-]*$", ref.rsplit("/", 1)[-1]) is not None,
                f"image {ref} must be pinned by digest or tag")
    f.check(main["image"].startswith(vals["image"]["repository"] + ("@" if vals["image"].get("digest") else ":")),
            "webhook image must come from image.repository")
    f.check(cfg.get("secrets-init-image", "").startswith(vals["secretsInit"]["image"]["repository"]),
            "secrets-init-image must come from secretsInit.image.repository")

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
    nps = k.get("NetworkPolicy", [])
    f.check(len(nps) == (1 if vals["networkPolicy"]["enabled"] else 0),
            f"NetworkPolicy must be rendered exactly when networkPolicy.enabled ({vals['networkPolicy']['enabled']})")
    if nps and vals["networkPolicy"]["enabled"]:
        sp = nps[0]["spec"]
        npv = vals["networkPolicy"]
        f.check(all(pod_labels.get(kk) == vv for kk, vv in sp["podSelector"]["matchLabels"].items()),
                "NetworkPolicy must select the webhook pods")
        f.check(set(sp.get("policyTypes", [])) == {"Ingress", "Egress"}, "NetworkPolicy must restrict Ingress and Egress")
        in_ports = {(p["port"], p.get("protocol", "TCP")) for r in sp.get("ingress", []) for p in r.get("ports", [])}
        f.check(in_ports == {(port, "TCP"), (mport, "TCP")}, f"ingress must allow exactly {port} and {mport}, allows {in_ports}")
        metrics_rules = [r for r in sp.get("ingress", []) if any(p["port"] == mport for p in r.get("ports", []))]
        f.check(bool(metrics_rules) and all(r.get("from") == [{"namespaceSelector": npv["metricsNamespaceSelector"],
                                                               "podSelector": npv["metricsPodSelector"]}] for r in metrics_rules),
                "metrics ingress must be limited to networkPolicy.metricsNamespaceSelector/metricsPodSelector")
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
        f.check(svc["metadata"]["name"] == fullname, "the Service (the ServiceMonitor's job label) must be named like the release")
    prv = vals["metrics"]["prometheusRule"]
    prs = k.get("PrometheusRule", [])
    f.check(len(prs) == (1 if prv["enabled"] else 0), "PrometheusRule must be rendered exactly when metrics.prometheusRule.enabled")
    if prs and rules_path:
        with open(rules_path, encoding="utf-8") as fh:
            src = yaml.safe_load(fh)["groups"]
        src_alerts = [r for g in src for r in g["rules"] if "alert" in r]
        f.check({r["alert"] for r in src_alerts} == set(prv["alerts"]),
                "metrics.prometheusRule.alerts must have a switch for exactly the alerts of rules.yaml")
        f.check(any(g["name"] == CTRL_GROUP for g in src), f"rules.yaml has no {CTRL_GROUP} group")
        ctrl_on = vals["controller"]["enabled"]
        ctrl_alerts = {r["alert"] for g in src if g["name"] == CTRL_GROUP for r in g["rules"] if "alert" in r}
        got = {r["alert"]: r for g in prs[0]["spec"]["groups"] for r in g["rules"] if "alert" in r}
        want = [r for r in src_alerts if prv["alerts"].get(r["alert"], True) and (ctrl_on or r["alert"] not in ctrl_alerts)]
        f.check(set(got) == {r["alert"] for r in want},
                f"PrometheusRule alerts {sorted(got)} must be the enabled ones of rules.yaml (the controller's only with controller.enabled)")
        try:
            poll_seconds = int(parse_duration(vals["controller"]["pollInterval"]))
        except ValueError as e:
            f.check(False, f"controller.pollInterval: {e}")
            poll_seconds = 60
        base = prv["runbookBaseUrl"].rstrip("/")
        for r in want:
            g = got.get(r["alert"])
            if not g:
                continue
            n = r["alert"]
            f.check(g["expr"] == scope_expr(r["expr"], namespace, fullname, poll_seconds), f"{n}: expr must be rules.yaml's, scoped to this release")
            f.check(g.get("for") == r.get("for"), f"{n}: 'for' differs from rules.yaml")
            f.check(g["labels"] == {**prv.get("alertLabels", {}), **r["labels"]}, f"{n}: labels must be rules.yaml's plus alertLabels")
            ann = dict(g.get("annotations", {}))
            url = ann.pop("runbook_url", "")
            f.check(url == base + "#" + r["annotations"]["runbook_url"].split("#", 1)[1],
                    f"{n}: runbook_url must be runbookBaseUrl#anchor, is {url}")
            f.check(url.startswith(("https://", "http://")), f"{n}: runbook_url must be absolute")
            f.check(ann == {kk: vv for kk, vv in r["annotations"].items() if kk != "runbook_url"}, f"{n}: annotations differ from rules.yaml")
            f.check("=~" not in g["expr"] or "(.+-)?secrets-init" not in g["expr"], f"{n}: still matches any release")
        nr = got.get("SecretsInitWebhookNoReplicasAvailable")
        if nr:
            f.check(f'deployment="{fullname}"' in nr["expr"] and f'namespace="{namespace}"' in nr["expr"],
                    "NoReplicasAvailable must select this release's Deployment by name and namespace")
        stale = got.get("SecretsInitControllerPollStale")
        if stale:
            f.check(re.search(rf"> 5 \* {poll_seconds}(?![0-9])", stale["expr"]) is not None and "secrets_init_controller_leader" in stale["expr"],
                    f"PollStale must fire at 5 x controller.pollInterval ({poll_seconds}s), on the leader only")
        for n in ctrl_alerts & set(got):
            f.check(f'job="{controller_fullname(fullname)}"' in got[n]["expr"], f"{n}: must be pinned to this release's controller job")

    # --- Grafana dashboard --------------------------------------------------------------------
    gd = vals["metrics"]["grafanaDashboard"]
    dash = [d for d in k.get("ConfigMap", []) if d["metadata"]["name"] == f"{fullname}-dashboard"]
    f.check(len(dash) == (1 if gd["enabled"] else 0), "dashboard ConfigMap must be rendered exactly when grafanaDashboard.enabled")
    if dash:
        d = dash[0]
        f.check(all(d["metadata"]["labels"].get(kk) == vv for kk, vv in gd["labels"].items()),
                "dashboard ConfigMap must carry grafanaDashboard.labels (the sidecar's selector)")
        f.check((d["metadata"].get("annotations") or {}) == gd.get("annotations", {}), "dashboard annotations must be grafanaDashboard.annotations")
        data = list(d["data"].values())
        f.check(len(data) == 1 and json.loads(data[0]) == json.loads(DASHBOARD.read_text(encoding="utf-8")),
                "dashboard ConfigMap must hold deploy/grafana/secrets-init-webhook.json")

    # --- extraObjects ----------------------------------------------------------------------
    for kind, suffix in extras:
        f.check(any(d["metadata"]["name"].endswith(suffix) for d in k.get(kind, [])), f"extraObjects {kind} *{suffix} not rendered")

    # --- secrets-init-controller --------------------------------------------------------------
    check_controller(f, ctrl_docs, docs, vals, namespace, fullname, pod_labels, svc)

    # --- NOTES -------------------------------------------------------------------------------
    if notes is not None:
        ignore_warning = "WARNING: webhook.failurePolicy is Ignore" in notes
        f.check(ignore_warning == (wv["failurePolicy"] == "Ignore"), "NOTES must warn exactly when failurePolicy is Ignore")
        deprecated = "DEPRECATED: webhook.mutationMode" in notes
        f.check(deprecated == bool(wv.get("mutationMode")), "NOTES must carry the deprecation line exactly when webhook.mutationMode is set")
        f.check(("hostNetwork is on" in notes) == bool(vals.get("hostNetwork")), "NOTES must explain hostNetwork exactly when it is on")
        f.check(f"(mutation mode: {mode})" in notes, "NOTES must name the mutation mode")
        cv = vals["controller"]
        f.check(("secrets-init-controller runs beside it" in notes) == bool(cv["enabled"]), "NOTES must describe the controller exactly when it is enabled")
        f.check(("controller.dryRun is on" in notes) == bool(cv["enabled"] and cv["dryRun"]), "NOTES must say so exactly when the controller runs with dryRun")
    return f.items


def rbac_triples(rules) -> set:
    """A Role's or ClusterRole's rules as (group, resource, verb, resourceName or None)."""
    out = set()
    for r in rules or []:
        for g in r.get("apiGroups", []):
            for res in r.get("resources", []):
                for v in r.get("verbs", []):
                    for n in r.get("resourceNames") or [None]:
                        out.add((g, res, v, n))
    return out


def controller_rules(cv: dict) -> set:
    """controller/README.md "Kubernetes RBAC": the ClusterRole, nothing more."""
    want = {("apps", res, v, None) for res in ("deployments", "statefulsets", "daemonsets")
            for v in ("get", "list", "watch", "patch")}
    want |= {("", "pods", v, None) for v in ("get", "list", "watch")}
    # + patch: kube-runtime's Event recorder turns a repeated Event into a series by patching it.
    want |= {("events.k8s.io", "events", "create", None), ("events.k8s.io", "events", "patch", None)}
    if cv.get("namespaceSelector"):
        want |= {("", "namespaces", v, None) for v in ("list", "watch")}
    if cv.get("followRefs"):
        want |= {("", "configmaps", "get", None), ("", "secrets", "get", None)}
    return want


def check_controller(f: Failures, cdocs, docs, vals: dict, namespace: str, fullname: str, wh_pod_labels: dict, wh_svc: dict) -> None:
    cv = vals["controller"]
    for d in docs:
        if d["kind"] in ("Role", "ClusterRole"):
            for r in d.get("rules", []):
                wild = [x for key in ("apiGroups", "resources", "verbs") for x in r.get(key, []) if "*" in x]
                f.check(not wild, f"{d['kind']}/{d['metadata']['name']}: wildcard {wild} in a rule")
    if not cv["enabled"]:
        f.check(not cdocs, f"controller.enabled is false, yet controller objects are rendered: {[d['kind'] for d in cdocs]}")
        rbac = [d["kind"] for d in docs if d["apiVersion"].startswith("rbac.authorization.k8s.io/")]
        f.check(not rbac, f"without the controller the chart grants no Kubernetes permissions, renders {rbac}")
        return
    name = controller_fullname(fullname)
    ck = index(cdocs)
    by = {kind: [d for d in ck.get(kind, []) if d["metadata"]["name"] == name] for kind in ("Deployment", "Service", "ClusterRole", "ClusterRoleBinding", "ServiceMonitor", "PodDisruptionBudget")}
    for kind in ("Deployment", "Service", "ClusterRole", "ClusterRoleBinding"):
        f.check(len(by[kind]) == 1 and len(ck.get(kind, [])) == 1, f"controller: expected one {kind} named {name}, found {[d['metadata']['name'] for d in ck.get(kind, [])]}")
    roles = ck.get("Role", [])
    rbs = ck.get("RoleBinding", [])
    f.check(len(roles) == 1 and len(rbs) == 1, "controller: expected exactly one Role and one RoleBinding (the Lease)")
    f.check(not [d for d in docs if d["kind"] in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding") and not is_controller(d)],
            "only the controller has RBAC objects")
    if not (by["Deployment"] and by["ClusterRole"] and by["ClusterRoleBinding"] and by["Service"] and roles and rbs):
        return
    dep = by["Deployment"][0]
    pod = dep["spec"]["template"]["spec"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    main = pod["containers"][0]
    f.check(len(pod["containers"]) == 1 and not pod.get("initContainers"), "controller: one container, no init containers")
    f.check(dep["spec"].get("replicas") == cv["replicas"], f"controller: replicas must be controller.replicas ({cv['replicas']})")
    f.check(all(labels.get(kk) == vv for kk, vv in dep["spec"]["selector"]["matchLabels"].items()), "controller: selector must match its pods")
    # Neither side's selectors may pick up the other's pods.
    f.check(not all(labels.get(kk) == vv for kk, vv in wh_svc["spec"]["selector"].items()), "the webhook's Service selects the controller's pods")
    f.check(not all(wh_pod_labels.get(kk) == vv for kk, vv in dep["spec"]["selector"]["matchLabels"].items()), "the controller's selector selects the webhook's pods")
    for lk, lv in (vals.get("commonLabels") or {}).items():
        f.check(labels.get(lk) == lv, f"controller pod template: commonLabels {lk}={lv} missing")

    # Pod Security restricted, as the webhook's; the API token only as the declared projected volume.
    pod_security(f, "controller", pod, cv.get("podSecurityContext"), cv.get("securityContext"))
    f.check(not pod.get("hostNetwork"), "controller: must not use the host network")
    f.check(pod.get("automountServiceAccountToken") is False, "controller: the token must come from the declared projected volume, not automounting")
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m for m in main.get("volumeMounts", [])}
    tok = mounts.get(SA_TOKEN_DIR)
    f.check(tok is not None and tok.get("readOnly") is True, f"controller: the API token must be mounted read-only at {SA_TOKEN_DIR}")
    if tok:
        srcs = vols.get(tok["name"], {}).get("projected", {}).get("sources", [])
        kinds = sorted(next(iter(x)) for x in srcs)
        f.check(kinds == ["configMap", "downwardAPI", "serviceAccountToken"], f"controller: token volume must project token, CA and namespace, has {kinds}")
        for x in srcs:
            if "serviceAccountToken" in x:
                f.check(not x["serviceAccountToken"].get("audience") and x["serviceAccountToken"].get("expirationSeconds", 0) <= 3607,
                        "controller: the API token must be a short-lived one for the API server")
    f.check(set(vols) == {m["name"] for m in main.get("volumeMounts", [])}, "controller: only the volumes it mounts")
    sa_name = cv["serviceAccount"].get("name") or (name if cv["serviceAccount"]["create"] else "default")
    f.check(pod.get("serviceAccountName") == sa_name, f"controller: must run as ServiceAccount {sa_name}")
    sas = [d for d in ck.get("ServiceAccount", [])]
    f.check(len(sas) == (1 if cv["serviceAccount"]["create"] else 0), "controller: its ServiceAccount exactly when controller.serviceAccount.create")
    for sa in sas:
        f.check(sa["metadata"]["name"] == sa_name, f"controller ServiceAccount must be named {sa_name}")
        f.check(sa.get("automountServiceAccountToken") is False, "controller ServiceAccount must not automount its token")
        f.check((sa["metadata"].get("annotations") or {}) == cv["serviceAccount"]["annotations"], "controller ServiceAccount annotations must be controller.serviceAccount.annotations")

    # Flags (controller/README.md), every one from its value.
    args = main.get("args", [])
    flags = {}
    for a in args:
        key, eq, val = a.partition("=")
        f.check(key in CTRL_FLAGS, f"controller: {key} is not a flag of the controller")
        f.check(key not in flags, f"controller: {key} given twice")
        flags[key] = val if eq else True
    region = cv.get("awsRegion") or vals["aws"].get("region") or None
    port = cv["port"]
    want = {"--poll-interval": cv["pollInterval"], "--cooldown": cv["cooldown"],
            "--max-restarts-per-minute": str(cv["maxRestartsPerMinute"]),
            "--lease-name": name, "--lease-namespace": namespace,
            "--listen": f"0.0.0.0:{port}", "--log-format": cv["logFormat"]}
    if region:
        want["--aws-region"] = region
    if cv.get("namespaceSelector"):
        want["--namespace-selector"] = cv["namespaceSelector"]
    if cv.get("sqsQueueUrl"):
        want["--sqs-queue-url"] = cv["sqsQueueUrl"]
    if cv.get("dryRun"):
        want["--dry-run"] = True
    if cv.get("followRefs"):
        want["--follow-refs"] = True
    f.check(flags == want, f"controller: flags {flags} must be {want}")
    env = {e["name"]: e for e in main.get("env", [])}
    f.check(env.get("POD_NAMESPACE", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace",
            "controller: POD_NAMESPACE must come from the downward API")
    for e in cv.get("extraEnv", []):
        f.check(env.get(e["name"]) == e, f"controller: extraEnv {e['name']} missing")
    ports = {p["name"]: p["containerPort"] for p in main.get("ports", [])}
    f.check(ports == {"metrics": port}, f"controller: container port 'metrics' must be controller.port {port}")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        g = main.get(probe, {}).get("httpGet", {})
        f.check(g.get("path") == path and g.get("scheme", "HTTP") == "HTTP" and ports.get(g.get("port"), g.get("port")) == port,
                f"controller: {probe} must be HTTP GET {path} on controller.port {port}")
    img = cv["image"]
    f.check(main["image"] == (f"{img['repository']}@{img['digest']}" if img.get("digest") else f"{img['repository']}:{img.get('tag') or load_chart()['appVersion']}"),
            "controller: image must be controller.image (digest wins, tag defaults to appVersion)")

    # RBAC: exactly the spec's rules; the Lease in the release namespace only.
    cr = by["ClusterRole"][0]
    got_rules = rbac_triples(cr.get("rules"))
    want_rules = controller_rules(cv)
    f.check(got_rules == want_rules, f"controller ClusterRole: extra {sorted(got_rules - want_rules, key=str)}, missing {sorted(want_rules - got_rules, key=str)}")
    f.check(not [t for t in got_rules if t[1] == "secrets"] or cv.get("followRefs"), "controller ClusterRole: reads secrets without controller.followRefs")
    crb = by["ClusterRoleBinding"][0]
    subject = [{"kind": "ServiceAccount", "name": sa_name, "namespace": namespace}]
    f.check(crb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}, "controller ClusterRoleBinding must bind its ClusterRole")
    f.check(crb.get("subjects") == subject, f"controller ClusterRoleBinding subjects must be {subject}")
    role, rb = roles[0], rbs[0]
    f.check(role["metadata"].get("namespace") == namespace and rb["metadata"].get("namespace") == namespace,
            "controller lease Role/RoleBinding must be namespaced in the release namespace")
    lease = flags.get("--lease-name")
    f.check(rbac_triples(role.get("rules")) == {("coordination.k8s.io", "leases", "create", None),
                                                 ("coordination.k8s.io", "leases", "get", lease),
                                                 ("coordination.k8s.io", "leases", "update", lease)},
            f"controller lease Role must allow exactly create, and get/update on Lease {lease}")
    f.check(rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}, "controller RoleBinding must bind the lease Role (kind Role)")
    f.check(rb.get("subjects") == subject, f"controller RoleBinding subjects must be {subject}")

    # NetworkPolicy: with networkPolicy.enabled, default deny; in only metrics from the
    # metrics selectors; out only DNS, 443 (+ the API server port), the Pod Identity agent.
    nps = ck.get("NetworkPolicy", [])
    npv = vals["networkPolicy"]
    f.check(len(nps) == (1 if npv["enabled"] else 0),
            f"controller: NetworkPolicy exactly when networkPolicy.enabled ({npv['enabled']}), found {len(nps)}")
    for np_ in nps:
        sp_ = np_["spec"]
        f.check(np_["metadata"]["name"] == name, f"controller NetworkPolicy must be named {name}")
        f.check(sp_["podSelector"].get("matchLabels") == dep["spec"]["selector"]["matchLabels"], "controller NetworkPolicy must select exactly the controller's pods")
        f.check(set(sp_.get("policyTypes", [])) == {"Ingress", "Egress"}, "controller NetworkPolicy must restrict Ingress and Egress")
        f.check(sp_.get("ingress") == [{"ports": [{"port": port, "protocol": "TCP"}],
                                        "from": [{"namespaceSelector": npv["metricsNamespaceSelector"], "podSelector": npv["metricsPodSelector"]}]}],
                "controller NetworkPolicy: ingress only to controller.port from networkPolicy.metricsNamespaceSelector/metricsPodSelector")
        eg = sp_.get("egress", [])
        f.check(all(r.get("ports") for r in eg), "controller NetworkPolicy: every egress rule must name its ports")
        eg_ports = {(p["port"], p.get("protocol", "TCP")) for r in eg for p in r.get("ports", [])}
        want_eg = {(53, "UDP"), (53, "TCP"), (443, "TCP"), (80, "TCP"), (npv["apiServerPort"], "TCP")}
        for r in npv.get("controllerExtraEgress", []):
            want_eg |= {(p["port"], p.get("protocol", "TCP")) for p in r.get("ports", [])}
        f.check(eg_ports == want_eg, f"controller NetworkPolicy: egress ports {sorted(eg_ports)} must be {sorted(want_eg)}")
        api_rules = [r for r in eg if any(p["port"] == npv["apiServerPort"] for p in r.get("ports", []))]
        f.check(bool(api_rules) and all(sorted(t["ipBlock"]["cidr"] for t in r.get("to", [])) == sorted(npv["controllerEgressCIDRs"]) for r in api_rules),
                "controller NetworkPolicy: the API server port must go to networkPolicy.controllerEgressCIDRs")

    # Service, PDB, ServiceMonitor.
    svc = by["Service"][0]
    f.check(all(labels.get(kk) == vv for kk, vv in svc["spec"]["selector"].items()), "controller Service must select its pods")
    sp = {p["name"]: p for p in svc["spec"]["ports"]}
    f.check(list(sp) == ["metrics"] and sp["metrics"]["port"] == port and ports.get(sp["metrics"]["targetPort"], sp["metrics"]["targetPort"]) == port,
            f"controller Service: one port 'metrics' on controller.port {port}")
    want_pdb = cv["podDisruptionBudget"]["enabled"] and cv["replicas"] > 1
    f.check(len(ck.get("PodDisruptionBudget", [])) == (1 if want_pdb else 0) == len(by["PodDisruptionBudget"]),
            "controller PDB exactly when controller.podDisruptionBudget.enabled and replicas > 1")
    for pdb in by["PodDisruptionBudget"]:
        f.check(pdb["spec"].get("minAvailable") == cv["podDisruptionBudget"]["minAvailable"], "controller PDB minAvailable must be its value")
        f.check(all(labels.get(kk) == vv for kk, vv in pdb["spec"]["selector"]["matchLabels"].items()), "controller PDB must select its pods")
    want_sm = vals["metrics"]["serviceMonitor"]["enabled"]
    f.check(len(ck.get("ServiceMonitor", [])) == (1 if want_sm else 0) == len(by["ServiceMonitor"]),
            "controller ServiceMonitor exactly when metrics.serviceMonitor.enabled")
    for sm in by["ServiceMonitor"]:
        f.check(all(svc["metadata"]["labels"].get(kk) == vv for kk, vv in sm["spec"]["selector"]["matchLabels"].items()),
                "controller ServiceMonitor must select the controller's Service (its name is the alerts' job)")
        f.check(not all(wh_svc["metadata"]["labels"].get(kk) == vv for kk, vv in sm["spec"]["selector"]["matchLabels"].items()),
                "controller ServiceMonitor must not select the webhook's Service")
        eps = sm["spec"]["endpoints"]
        f.check(len(eps) == 1 and eps[0].get("port") == "metrics" and eps[0].get("path") == "/metrics" and eps[0].get("honorLabels") is True,
                "controller ServiceMonitor: /metrics on port 'metrics' with honorLabels (the failure metrics' own namespace label)")


def load_chart() -> dict:
    return yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))


def check_defaults() -> list[str]:
    """What the chart promises out of the box (contract section 7, issue 14)."""
    f = Failures()
    v = load_values(None)
    f.check(v["webhook"]["failurePolicy"] == "Fail", "default failurePolicy must be Fail")
    f.check(v["webhook"]["timeoutSeconds"] == 10, "default webhook.timeoutSeconds must be 10")
    f.check(v["mutationMode"] == "init-container" and not v["webhook"]["mutationMode"], "default mode: top-level mutationMode init-container")
    f.check(v["topologySpread"]["zone"]["whenUnsatisfiable"] == "ScheduleAnyway", "default zone spread must be ScheduleAnyway")
    f.check(v["networkPolicy"]["enabled"] is False, "NetworkPolicy must be off by default")
    f.check(v["webhook"]["matchConditions"] == [], "default matchConditions must be the chart's (empty value)")
    f.check(v["image"]["repository"] == "ghcr.io/secrets-init/secrets-init-webhook", "default webhook image must be ghcr.io/secrets-init/secrets-init-webhook")
    f.check(v["secretsInit"]["image"]["repository"] == "ghcr.io/secrets-init/secrets-init", "default secrets-init image must be ghcr.io/secrets-init/secrets-init")
    c = v["controller"]
    f.check(c["enabled"] is False, "the controller must be opt-in (controller.enabled false)")
    f.check(c["image"]["repository"] == "ghcr.io/secrets-init/secrets-init-controller", "default controller image must be ghcr.io/secrets-init/secrets-init-controller")
    f.check((c["replicas"], c["pollInterval"], c["cooldown"], c["maxRestartsPerMinute"], c["port"]) == (2, "60s", "5m", 10, 9091),
            "controller defaults must be the binary's: replicas 2, poll 60s, cooldown 5m, 10 restarts/min, port 9091")
    f.check(not c["dryRun"] and not c["followRefs"] and not c["namespaceSelector"] and not c["sqsQueueUrl"],
            "controller: dryRun, followRefs, namespaceSelector and sqsQueueUrl must be off by default")
    return f.items


def self_test(cases, namespace, rules_path) -> int:
    for docs, vals, notes, name in cases:
        base = check(docs, vals, namespace, rules_path, notes)
        if base:
            print(f"self-test needs passing renders; {name} has failures:\n  " + "\n  ".join(base), file=sys.stderr)
            return 1

    def find(ds, kind, suffix=None, ctrl=False):
        for d in ds:
            if d["kind"] == kind and (suffix is None or d["metadata"]["name"].endswith(suffix)) and is_controller(d) == ctrl:
                return d
        raise LookupError(kind)

    def wh(ds):
        return find(ds, "MutatingWebhookConfiguration")["webhooks"][0]

    def pod(ds):
        return find(ds, "Deployment")["spec"]["template"]["spec"]

    def cfg_edit(ds, fn):
        cm = next(d for d in ds if d["kind"] == "ConfigMap" and d["metadata"]["name"] == find(ds, "Deployment")["metadata"]["name"])
        c = yaml.safe_load(cm["data"]["config.yaml"])
        fn(c)
        cm["data"]["config.yaml"] = yaml.safe_dump(c)
        find(ds, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"] = \
            hashlib.sha256(cm["data"]["config.yaml"].rstrip("\n").encode()).hexdigest()

    def rules(ds):
        return find(ds, "PrometheusRule")["spec"]["groups"][0]["rules"]

    def need(cond):
        if not cond:
            raise LookupError("not applicable")

    def cpod(ds):
        return find(ds, "Deployment", ctrl=True)["spec"]["template"]["spec"]

    def crules(ds):
        return find(ds, "ClusterRole", ctrl=True)["rules"]

    def cargs_edit(ds, fn):
        c = cpod(ds)["containers"][0]
        c["args"] = fn(c["args"])

    def ctrl_rule(ds, alert):
        return next(r for g in find(ds, "PrometheusRule")["spec"]["groups"] for r in g["rules"] if r.get("alert") == alert)

    def on(v):
        return v["controller"]["enabled"]

    breakages = {
        "failurePolicy flipped": lambda ds, v: wh(ds).update(failurePolicy="Ignore" if wh(ds)["failurePolicy"] == "Fail" else "Fail"),
        "timeoutSeconds 31": lambda ds, v: wh(ds).update(timeoutSeconds=31),
        "UPDATE added": lambda ds, v: wh(ds)["rules"][0]["operations"].append("UPDATE"),
        "no matchConditions": lambda ds, v: wh(ds).pop("matchConditions"),
        "default matchCondition renamed": lambda ds, v: (need(not v["webhook"]["matchConditions"]), wh(ds)["matchConditions"][0].update(name="x")),
        "own namespace not excluded": lambda ds, v: wh(ds).update(namespaceSelector={}),
        "kube-system not excluded": lambda ds, v: wh(ds)["namespaceSelector"]["matchExpressions"][0]["values"].remove("kube-system"),
        "namespace opt-out label ignored": lambda ds, v: wh(ds)["namespaceSelector"]["matchExpressions"].remove(OPT_OUT),
        "pod opt-out label ignored": lambda ds, v: wh(ds).pop("objectSelector"),
        "privilege escalation": lambda ds, v: pod(ds)["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True),
        "writable root fs": lambda ds, v: pod(ds)["containers"][0]["securityContext"].pop("readOnlyRootFilesystem"),
        "no seccomp": lambda ds, v: [pod(ds)["securityContext"].pop("seccompProfile"), pod(ds)["containers"][0]["securityContext"].pop("seccompProfile")],
        "securityContext not podSecurityContext": lambda ds, v: pod(ds)["securityContext"].update(runAsUser=1000),
        "hostPath volume": lambda ds, v: pod(ds)["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
        "unasked hostNetwork": lambda ds, v: (need(not v.get("hostNetwork")), pod(ds).update(hostNetwork=True)),
        "hostNetwork without its dnsPolicy": lambda ds, v: (need(v.get("hostNetwork")), pod(ds).pop("dnsPolicy")),
        "one replica": lambda ds, v: (need("replicas" in find(ds, "Deployment")["spec"]), find(ds, "Deployment")["spec"].update(replicas=1)),
        "zone spread hard by default": lambda ds, v: (need(not v.get("topologySpreadConstraints")), pod(ds)["topologySpreadConstraints"][0].update(whenUnsatisfiable="DoNotSchedule")),
        "spread passthrough dropped": lambda ds, v: (need(v.get("topologySpreadConstraints")), pod(ds).update(topologySpreadConstraints=[])),
        "readiness on http": lambda ds, v: pod(ds)["containers"][0]["readinessProbe"]["httpGet"].update(scheme="HTTP"),
        "container port not webhook.port": lambda ds, v: pod(ds)["containers"][0]["ports"][0].update(containerPort=v["webhook"]["port"] + 1),
        "listen not webhook.port": lambda ds, v: cfg_edit(ds, lambda c: c.update(listen="0.0.0.0:8444")),
        "probe on a fixed port": lambda ds, v: (need(v["webhook"]["port"] != 8443), pod(ds)["containers"][0]["livenessProbe"]["httpGet"].update(port=8443)),
        "unknown config key": lambda ds, v: cfg_edit(ds, lambda c: c.update(colour="blue")),
        "request-timeout = timeoutSeconds": lambda ds, v: cfg_edit(ds, lambda c: c.update({"request-timeout": f"{wh(ds)['timeoutSeconds']}s"})),
        "registry-timeout = request-timeout": lambda ds, v: cfg_edit(ds, lambda c: c.update({"registry-timeout": c["request-timeout"]})),
        "default run-as-user rendered": lambda ds, v: (need(str(v["secretsInit"]["initContainer"]["runAsUser"]) == "65532"), cfg_edit(ds, lambda c: c.update({"run-as-user": "65532"}))),
        "run-as-user none lost": lambda ds, v: (need(v["secretsInit"]["initContainer"]["runAsUser"] == "none"), cfg_edit(ds, lambda c: c.pop("run-as-user"))),
        "init-container-cpu lost": lambda ds, v: (need(v["secretsInit"]["initContainer"]["cpu"] != "50m"), cfg_edit(ds, lambda c: c.pop("init-container-cpu"))),
        "registry mirror lost": lambda ds, v: (need(v["webhook"]["registryMirrors"]), cfg_edit(ds, lambda c: c.pop("registry-mirror"))),
        "stale checksum": lambda ds, v: find(ds, "Deployment")["spec"]["template"]["metadata"]["annotations"].update({"checksum/config": "0" * 64}),
        "pdb minAvailable 0": lambda ds, v: find(ds, "PodDisruptionBudget")["spec"].update(minAvailable=0),
        "checkov annotation": lambda ds, v: find(ds, "Deployment")["metadata"].setdefault("annotations", {}).update({"checkov.io/skip1": "CKV_K8S_15=x"}),
        "NetworkPolicy though disabled": lambda ds, v: (need(not v["networkPolicy"]["enabled"]), ds.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "x", "namespace": find(ds, "Deployment")["metadata"]["namespace"]}, "spec": {}})),
        "egress without DNS": lambda ds, v: find(ds, "NetworkPolicy")["spec"].update(egress=[r for r in find(ds, "NetworkPolicy")["spec"]["egress"] if not any(p["port"] == 53 for p in r["ports"])]),
        "metrics open to every namespace": lambda ds, v: [r.update({"from": [{"namespaceSelector": {}}]}) for r in find(ds, "NetworkPolicy")["spec"]["ingress"] if r["ports"][0]["port"] == v["metrics"]["port"]],
        "NetworkPolicy on 8443 regardless": lambda ds, v: (need(v["webhook"]["port"] != 8443), find(ds, "NetworkPolicy")["spec"]["ingress"][0]["ports"][0].update(port=8443)),
        "extra volume dropped": lambda ds, v: (need(v["extraVolumes"]), pod(ds).update(volumes=[x for x in pod(ds)["volumes"] if x["name"] != v["extraVolumes"][0]["name"]])),
        "extra mount dropped": lambda ds, v: (need(v["extraVolumeMounts"]), pod(ds)["containers"][0].update(volumeMounts=pod(ds)["containers"][0]["volumeMounts"][:-1])),
        "commonLabels missing on the Service": lambda ds, v: (need(v["commonLabels"]), find(ds, "Service")["metadata"]["labels"].pop(next(iter(v["commonLabels"])))),
        "extraObject not rendered": lambda ds, v: (need(v["extraObjects"]), ds.remove(find(ds, "ConfigMap", "-extra"))),
        "disabled alert still rendered": lambda ds, v: (need(not all(v["metrics"]["prometheusRule"]["alerts"].values())), rules(ds).append(copy.deepcopy(rules(ds)[0]) | {"alert": next(a for a, on in v["metrics"]["prometheusRule"]["alerts"].items() if not on)})),
        "relative runbook_url": lambda ds, v: rules(ds)[0]["annotations"].update(runbook_url="docs/operations.md#x"),
        "NoReplicas for any release": lambda ds, v: next(r for r in rules(ds) if r.get("alert") == "SecretsInitWebhookNoReplicasAvailable").update(expr=f"kube_deployment_status_replicas_available{{{SCOPE_ANY_RELEASE}}} == 0"),
        "absent-scrape alert missing": lambda ds, v: find(ds, "PrometheusRule")["spec"]["groups"][0].update(rules=[r for r in rules(ds) if r.get("alert") != "SecretsInitWebhookMetricsAbsent"]),
        "alert unscoped": lambda ds, v: next(r for r in rules(ds) if r.get("alert") == "SecretsInitWebhookErrors").update(expr="sum(rate(secrets_init_webhook_admission_requests_total[5m])) > 1"),
        "dashboard without sidecar label": lambda ds, v: find(ds, "ConfigMap", "-dashboard")["metadata"]["labels"].pop("grafana_dashboard"),
        "dashboard stale": lambda ds, v: find(ds, "ConfigMap", "-dashboard")["data"].update({"secrets-init-webhook.json": "{}"}),
        # secrets-init-controller
        "controller objects though disabled": lambda ds, v: (need(not on(v)), ds.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "x-controller", "labels": {"app.kubernetes.io/name": CTRL_NAME}}, "rules": []})),
        "controller ClusterRole wildcard verb": lambda ds, v: crules(ds)[0]["verbs"].append("*"),
        "controller ClusterRole wildcard resource": lambda ds, v: crules(ds).append({"apiGroups": ["apps"], "resources": ["*"], "verbs": ["get"]}),
        "controller reads secrets without followRefs": lambda ds, v: (need(not v["controller"]["followRefs"]), crules(ds).append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})),
        "controller lists secrets with followRefs": lambda ds, v: (need(v["controller"]["followRefs"]), next(r for r in crules(ds) if "secrets" in r["resources"])["verbs"].append("list")),
        "controller deletes workloads": lambda ds, v: crules(ds)[0]["verbs"].append("delete"),
        "namespaces rule lost with namespaceSelector": lambda ds, v: (need(v["controller"]["namespaceSelector"]), crules(ds).remove(next(r for r in crules(ds) if "namespaces" in r["resources"]))),
        "namespaces rule without namespaceSelector": lambda ds, v: (need(on(v) and not v["controller"]["namespaceSelector"]), crules(ds).append({"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]})),
        "ClusterRoleBinding to the default ServiceAccount": lambda ds, v: find(ds, "ClusterRoleBinding", ctrl=True)["subjects"][0].update(name="default"),
        "lease Role made a ClusterRole": lambda ds, v: (find(ds, "Role", ctrl=True).update(kind="ClusterRole"), find(ds, "ClusterRole", "-lease", ctrl=True)["metadata"].pop("namespace")),
        "lease Role in another namespace": lambda ds, v: find(ds, "Role", ctrl=True)["metadata"].update(namespace="kube-system"),
        "lease Role for every Lease": lambda ds, v: find(ds, "Role", ctrl=True)["rules"][1].pop("resourceNames"),
        "lease Role may delete": lambda ds, v: find(ds, "Role", ctrl=True)["rules"][1]["verbs"].append("delete"),
        "controller privilege escalation": lambda ds, v: cpod(ds)["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True),
        "controller writable root fs": lambda ds, v: cpod(ds)["containers"][0]["securityContext"].pop("readOnlyRootFilesystem"),
        "controller runs as root": lambda ds, v: cpod(ds)["securityContext"].update(runAsUser=0),
        "controller without seccomp": lambda ds, v: [cpod(ds)["securityContext"].pop("seccompProfile"), cpod(ds)["containers"][0]["securityContext"].pop("seccompProfile")],
        "controller hostPath volume": lambda ds, v: cpod(ds)["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
        "controller automounts its token": lambda ds, v: cpod(ds).update(automountServiceAccountToken=True),
        "controller token volume with an audience": lambda ds, v: cpod(ds)["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"].update(audience="sts.amazonaws.com"),
        "controller without resources": lambda ds, v: cpod(ds)["containers"][0].pop("resources"),
        "controller lease in another namespace": lambda ds, v: cargs_edit(ds, lambda a: [x if not x.startswith("--lease-namespace=") else "--lease-namespace=default" for x in a]),
        "controller flag unknown": lambda ds, v: cargs_edit(ds, lambda a: a + ["--colour=blue"]),
        "controller follow-refs flag lost": lambda ds, v: (need(v["controller"]["followRefs"]), cargs_edit(ds, lambda a: [x for x in a if x != "--follow-refs"])),
        "controller dry-run flag lost": lambda ds, v: (need(v["controller"]["dryRun"]), cargs_edit(ds, lambda a: [x for x in a if x != "--dry-run"])),
        "controller poll interval not its value": lambda ds, v: cargs_edit(ds, lambda a: [x if not x.startswith("--poll-interval=") else "--poll-interval=1s" for x in a]),
        "controller POD_NAMESPACE lost": lambda ds, v: cpod(ds)["containers"][0].update(env=[e for e in cpod(ds)["containers"][0]["env"] if e["name"] != "POD_NAMESPACE"]),
        "controller readiness on /healthz": lambda ds, v: cpod(ds)["containers"][0]["readinessProbe"]["httpGet"].update(path="/healthz"),
        "controller image is the webhook's": lambda ds, v: cpod(ds)["containers"][0].update(image=pod(ds)["containers"][0]["image"]),
        "controller Service selects the webhook's pods": lambda ds, v: find(ds, "Service", ctrl=True)["spec"].update(selector=dict(find(ds, "Service")["spec"]["selector"])),
        "controller pods match the webhook's Service": lambda ds, v: find(ds, "Deployment", ctrl=True)["spec"]["template"]["metadata"]["labels"].update(find(ds, "Service")["spec"]["selector"]),
        "controller PDB with one replica": lambda ds, v: (need(on(v) and v["controller"]["replicas"] == 1), ds.append(copy.deepcopy(find(ds, "Service", ctrl=True)) | {"kind": "PodDisruptionBudget", "apiVersion": "policy/v1", "spec": {"minAvailable": 1, "selector": {"matchLabels": {}}}})),
        "controller PDB lost": lambda ds, v: ds.remove(find(ds, "PodDisruptionBudget", ctrl=True)),
        "controller ServiceMonitor without honorLabels": lambda ds, v: find(ds, "ServiceMonitor", ctrl=True)["spec"]["endpoints"][0].pop("honorLabels"),
        "controller ServiceMonitor lost": lambda ds, v: ds.remove(find(ds, "ServiceMonitor", ctrl=True)),
        "controller alerts without the controller": lambda ds, v: (need(not on(v)), rules(ds).append(copy.deepcopy(rules(ds)[0]) | {"alert": "SecretsInitControllerNoLeader"})),
        "controller alerts lost": lambda ds, v: (need(on(v)), find(ds, "PrometheusRule")["spec"].update(groups=[g for g in find(ds, "PrometheusRule")["spec"]["groups"] if g["name"] != CTRL_GROUP])),
        "PollStale at the default interval": lambda ds, v: (need(v["controller"]["pollInterval"] != "60s"), ctrl_rule(ds, "SecretsInitControllerPollStale").update(expr=ctrl_rule(ds, "SecretsInitControllerPollStale")["expr"].replace("> 5 * 120", "> 5 * 60"))),
        "ResolutionFailing for any release": lambda ds, v: ctrl_rule(ds, "SecretsInitResolutionFailing").update(expr="sum by (namespace, code) (increase(secrets_init_resolution_failures_total[10m])) > 0\n"),
        "ResolutionFailing pinned to the controller's namespace": lambda ds, v: ctrl_rule(ds, "SecretsInitResolutionFailing").update(expr=ctrl_rule(ds, "SecretsInitResolutionFailing")["expr"].replace("{job=", "{namespace=\"secrets-init-system\", job=")),
        "controller NetworkPolicy open to every source": lambda ds, v: (need(on(v) and v["networkPolicy"]["enabled"]), find(ds, "NetworkPolicy", ctrl=True)["spec"]["ingress"][0].pop("from")),
        "controller NetworkPolicy without the API server port": lambda ds, v: (need(on(v) and v["networkPolicy"]["enabled"] and v["networkPolicy"]["apiServerPort"] != 443), [r["ports"].pop() for r in find(ds, "NetworkPolicy", ctrl=True)["spec"]["egress"] if len(r["ports"]) == 2 and r["ports"][1]["port"] != 53]),
    }
    note_breakages = {
        "NOTES without the Ignore warning": lambda n, v: (need(v["webhook"]["failurePolicy"] == "Ignore"), n.replace("WARNING: webhook.failurePolicy is Ignore", ""))[1],
        "NOTES without the deprecation line": lambda n, v: (need(v["webhook"]["mutationMode"]), n.replace("DEPRECATED: webhook.mutationMode", ""))[1],
        "NOTES warn about Ignore under Fail": lambda n, v: (need(v["webhook"]["failurePolicy"] == "Fail"), n + "\nWARNING: webhook.failurePolicy is Ignore")[1],
        "NOTES without the controller": lambda n, v: (need(v["controller"]["enabled"]), n.replace("secrets-init-controller runs beside it", ""))[1],
        "NOTES without the dry-run line": lambda n, v: (need(v["controller"]["dryRun"]), n.replace("controller.dryRun is on", ""))[1],
    }
    missed, unapplied = [], []
    for name, breakit in breakages.items():
        for docs, vals, notes, _ in cases:
            ds = copy.deepcopy(docs)
            try:
                breakit(ds, vals)
            except (LookupError, KeyError, IndexError, StopIteration):
                continue
            if not check(ds, vals, namespace, rules_path, notes):
                missed.append(name)
            break
        else:
            unapplied.append(name)
    for name, breakit in note_breakages.items():
        for docs, vals, notes, _ in cases:
            if notes is None:
                continue
            try:
                broken = breakit(notes, vals)
            except LookupError:
                continue
            if not check(docs, vals, namespace, rules_path, broken):
                missed.append(name)
            break
        else:
            unapplied.append(name)
    if missed or unapplied:
        if missed:
            print(f"self-test: these breakages were NOT detected: {missed}", file=sys.stderr)
        if unapplied:
            print(f"self-test: these breakages applied to none of the given renders: {unapplied}", file=sys.stderr)
        return 1
    print(f"self-test: all {len(breakages) + len(note_breakages)} breakages detected (over {len(cases)} renders)")
    return 0


def load_case(spec: str):
    parts = spec.split(",")
    rendered = parts[0]
    values = parts[1] if len(parts) > 1 and parts[1] else None
    notes = pathlib.Path(parts[2]).read_text(encoding="utf-8") if len(parts) > 2 and parts[2] else None
    with open(rendered, encoding="utf-8") as fh:
        docs = [d for d in yaml.safe_load_all(fh) if d]
    return docs, load_values(values), notes, rendered


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases", nargs="+", metavar="RENDERED[,VALUES[,NOTES]]")
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--rules")
    ap.add_argument("--core-out")
    ap.add_argument("--crd-out")
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    cases = [load_case(c) for c in a.cases]
    docs = cases[0][0]
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
        return self_test(cases, a.namespace, a.rules)
    rc = 0
    for x in check_defaults():
        print(f"chart defaults: {x}", file=sys.stderr)
        rc = 1
    for docs, vals, notes, name in cases:
        failures = check(docs, vals, a.namespace, a.rules, notes)
        if failures:
            print(f"{name}: {len(failures)} problem(s):", file=sys.stderr)
            for x in failures:
                print(f"  - {x}", file=sys.stderr)
            rc = 1
            continue
        kinds = sorted({d["kind"] for d in docs})
        print(f"{name}: OK ({len(docs)} objects: {', '.join(kinds)})")
    return rc


if __name__ == "__main__":
    sys.exit(main())
