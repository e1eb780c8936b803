#!/usr/bin/env python3
"""Consistency checks for deploy/ that no single tool covers.

    check_misc.py metrics   WEBHOOK_SRC_DIR      contract metric names exist in the webhook's source
    check_misc.py controller-metrics CONTROLLER_SRC_DIR   the controller's (controller/README.md) in its source
    check_misc.py dashboard DASHBOARD.json OUT   every query uses known metrics; writes OUT, a rules
                                                 file of the queries for `promtool check rules`
    check_misc.py coverage  RULES.yaml TESTS...  every alert has a firing and a silent promtool test
    check_misc.py stages    Dockerfile Containerfile   final image stages are identical
    check_misc.py docs      OPERATIONS.md RULES.yaml   every alert is documented, no invalid metric names
    check_misc.py hcl       DIR                  every .tf / .tfvars* file parses (python-hcl2)
    check_misc.py promrule  CRD.yaml OUT         the rendered PrometheusRule's spec as a rules file
    check_misc.py images    PRINT_CONFIG.yaml CHART   the chart's default images are the binary's defaults
    check_misc.py release   WORKFLOW.yml CHART   the release workflow publishes the images and chart the
                                                 chart defaults to, for amd64 and arm64, signed, with SBOM
"""

from __future__ import annotations

import json
import pathlib
import re
import sys

import yaml

# Contract section 6: the metrics the webhook exports.
CONTRACT_METRICS = {
    "secrets_init_webhook_admission_requests_total",
    "secrets_init_webhook_admission_duration_seconds",
    "secrets_init_webhook_image_config_requests_total",
    "secrets_init_webhook_image_config_fetch_duration_seconds",
    "secrets_init_webhook_tls_reloads_total",
    "secrets_init_webhook_tls_cert_expiry_timestamp_seconds",
}
# controller/README.md "Metrics": what secrets-init-controller exports (its alert group in
# rules.yaml and the runbooks use them).
CONTROLLER_METRICS = {
    "secrets_init_controller_restarts_total",
    "secrets_init_controller_restarts_held_total",
    "secrets_init_controller_detection_calls_total",
    "secrets_init_controller_last_successful_poll_timestamp_seconds",
    "secrets_init_controller_poll_rounds_total",
    "secrets_init_controller_watched_ids",
    "secrets_init_controller_unwatched_references",
    "secrets_init_controller_malformed_placeholders_total",
    "secrets_init_controller_leader",
    "secrets_init_resolution_failures_total",
    "secrets_init_pods_failing",
}
HISTOGRAMS = {"secrets_init_webhook_admission_duration_seconds",
              "secrets_init_webhook_image_config_fetch_duration_seconds"}
# Metrics from other exporters that the rules and dashboard may use.
EXTERNAL_METRICS = {
    "kube_deployment_status_replicas_available",            # kube-state-metrics
    "apiserver_admission_webhook_rejection_count",          # kube-apiserver
    "apiserver_admission_webhook_admission_duration_seconds_bucket",
}
PROMQL_WORDS = {"sum", "by", "rate", "increase", "histogram_quantile", "clamp_min", "min", "max",
                "time", "and", "or", "unless", "without", "on", "ignoring", "label_values",
                "namespace", "le", "result", "deployment", "name", "error_type"}


def fail(msg: str) -> None:
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def metric_names(expr: str) -> set[str]:
    # Drop label matchers and strings, then collect identifiers that look like metrics.
    bare = re.sub(r"\{[^}]*\}", "", re.sub(r'"[^"]*"', '""', expr))
    bare = re.sub(r"\[[^\]]*\]", "", bare)
    return {t for t in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare) if "_" in t and t not in PROMQL_WORDS}


def known(name: str) -> bool:
    if name in CONTRACT_METRICS or name in CONTROLLER_METRICS or name in EXTERNAL_METRICS:
        return True
    for h in HISTOGRAMS:
        if name in (h + "_bucket", h + "_sum", h + "_count"):
            return True
    return False


def cmd_metrics(src_dir: str) -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in pathlib.Path(src_dir).rglob("*.rs"))
    missing = sorted(m for m in CONTRACT_METRICS if f'"{m}"' not in text)
    if missing:
        fail(f"metrics of contract section 6 not found as string literals in {src_dir}: {missing} "
             "(the alert rules and dashboard depend on these exact names)")
    print(f"metrics: all {len(CONTRACT_METRICS)} contract metric names are registered in {src_dir}")


def cmd_controller_metrics(src_dir: str) -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in pathlib.Path(src_dir).rglob("*.rs"))
    missing = sorted(m for m in CONTROLLER_METRICS if f'"{m}"' not in text)
    if missing:
        fail(f"metrics of controller/README.md not found as string literals in {src_dir}: {missing} "
             "(the controller's alert rules depend on these exact names)")
    print(f"controller-metrics: all {len(CONTROLLER_METRICS)} metric names of controller/README.md are registered in {src_dir}")


def cmd_dashboard(path: str, out: str) -> None:
    d = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    exprs = []
    ids = set()
    for p in d["panels"]:
        if p["id"] in ids:
            fail(f"duplicate panel id {p['id']}")
        ids.add(p["id"])
        for t in p.get("targets", []):
            exprs.append((p["title"], t["expr"]))
    if not exprs:
        fail("dashboard has no queries")
    used = set()
    for title, e in exprs:
        for m in metric_names(e):
            if not known(m):
                fail(f"panel '{title}': unknown metric {m!r} in {e}")
            used.add(re.sub(r"_(bucket|sum|count)$", "", m) if m.endswith(("_bucket", "_sum", "_count")) else m)
    unused = (CONTRACT_METRICS | CONTROLLER_METRICS) - used
    if unused:
        fail(f"dashboard shows no panel for {sorted(unused)}")
    rules = [{"record": f"dashboard:query_{i}",
              "expr": e.replace("$__rate_interval", "5m").replace("$namespace", ".*")}
             for i, (_, e) in enumerate(exprs)]
    pathlib.Path(out).write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    print(f"dashboard: {len(exprs)} queries use only known metrics; every webhook and controller metric shown")


def cmd_coverage(rules_path: str, tests: list[str]) -> None:
    rules = yaml.safe_load(pathlib.Path(rules_path).read_text(encoding="utf-8"))
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    for g in rules["groups"]:
        for r in g["rules"]:
            for m in metric_names(r["expr"]):
                if not known(m):
                    fail(f"alert {r.get('alert')}: unknown metric {m!r}")
            if "severity" not in r.get("labels", {}):
                fail(f"alert {r.get('alert')}: no severity label")
    fires, silent = set(), set()
    for t in tests:
        doc = yaml.safe_load(pathlib.Path(t).read_text(encoding="utf-8"))
        for case in doc.get("tests", []):
            for a in case.get("alert_rule_test", []):
                (fires if a.get("exp_alerts") else silent).add(a["alertname"])
    problems = [f"{a}: no test where it fires" for a in sorted(alerts - fires)]
    problems += [f"{a}: no test where it stays silent" for a in sorted(alerts - silent)]
    problems += [f"tests name unknown alert {a}" for a in sorted((fires | silent) - alerts)]
    if problems:
        fail("alert test coverage: " + "; ".join(problems))
    print(f"coverage: all {len(alerts)} alerts have firing and silent tests")


def final_stages(path: str) -> list[str]:
    lines = [l.rstrip() for l in pathlib.Path(path).read_text(encoding="utf-8").splitlines()]
    # Join continuation lines, drop comments and blanks.
    joined, cur = [], ""
    for l in lines:
        if l.lstrip().startswith("#") or not l.strip():
            continue
        cur += l[:-1] + " " if l.endswith("\\") else l
        if not l.endswith("\\"):
            joined.append(re.sub(r"\s+", " ", cur.strip()))
            cur = ""
    start = next((i for i, l in enumerate(joined) if l.startswith("FROM scratch AS ")), None)
    if start is None:
        fail(f"{path}: no 'FROM scratch AS' stage")
    out = []
    for l in joined[start:]:
        # COPY --from=builder /out/<file> <dest>  ==  COPY <file> <dest>
        l = re.sub(r"^COPY --from=builder /out/", "COPY ", l)
        out.append(l)
    return out


def cmd_stages(dockerfile: str, containerfile: str) -> None:
    a, b = final_stages(dockerfile), final_stages(containerfile)
    if a != b:
        import difflib
        fail("final image stages differ between the Dockerfile and deploy/images/Containerfile:\n"
             + "\n".join(difflib.unified_diff(a, b, dockerfile, containerfile, lineterm="")))
    targets = [l.split()[-1] for l in a if l.startswith("FROM ")]
    if sorted(targets) != ["controller", "secrets-init", "webhook"]:
        fail(f"final stages must be exactly webhook, secrets-init and controller, are {targets}")
    for want in ("USER 65532:65532", 'ENTRYPOINT ["/secrets-init"]', 'ENTRYPOINT ["/secrets-init-webhook"]',
                 'ENTRYPOINT ["/secrets-init-controller"]'):
        if want not in a:
            fail(f"final stages lack {want!r}")
    print(f"stages: {targets} identical in both files")


def cmd_docs(doc: str, rules_path: str) -> None:
    text = pathlib.Path(doc).read_text(encoding="utf-8")
    rules = yaml.safe_load(pathlib.Path(rules_path).read_text(encoding="utf-8"))
    alerts = [r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r]
    missing = [a for a in alerts if a not in text]
    if missing:
        fail(f"{doc} does not document alerts {missing}")
    anchors = {r["annotations"]["runbook_url"].split("#", 1)[1] for g in rules["groups"] for r in g["rules"] if "runbook_url" in r.get("annotations", {})}
    headings = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-") for h in re.findall(r"^#+\s+(.*)$", text, re.M)}
    if anchors - headings:
        fail(f"runbook anchors without a heading in {doc}: {sorted(anchors - headings)}")
    bad = re.findall(r"secrets-init_[a-z_]+", text)
    if bad:
        fail(f"{doc} uses invalid (hyphenated) metric names: {sorted(set(bad))}")
    for m in sorted(CONTRACT_METRICS | CONTROLLER_METRICS):
        if m not in text:
            fail(f"{doc} does not mention metric {m}")
    print(f"docs: all {len(alerts)} alerts and {len(CONTRACT_METRICS) + len(CONTROLLER_METRICS)} metrics documented")


def cmd_hcl(directory: str) -> None:
    import hcl2  # python-hcl2 (scripts/setup)
    files = sorted(p for p in pathlib.Path(directory).iterdir() if p.suffix == ".tf" or ".tfvars" in p.name)
    if not files:
        fail(f"no .tf files in {directory}")
    seen = {}
    for p in files:
        try:
            with p.open(encoding="utf-8") as fh:
                seen[p.name] = hcl2.load(fh)
        except Exception as e:  # noqa: BLE001
            fail(f"{p}: does not parse as HCL: {e}")
    def unq(k: str) -> str:  # python-hcl2 8 keeps the quotes of block labels
        return k.strip('"')

    variables = {unq(k) for d in seen.values() for v in d.get("variable", []) for k in v if not k.startswith("__")}
    for name, d in seen.items():
        for v in d.get("variable", []):
            for k, body in v.items():
                if k.startswith("__"):
                    continue
                if not str(body.get("description", "")).strip('"'):
                    fail(f"{name}: variable {k} has no description")
        for o in d.get("output", []):
            for k, body in o.items():
                if k.startswith("__"):
                    continue
                if not str(body.get("description", "")).strip('"'):
                    fail(f"{name}: output {k} has no description")
    used = set(re.findall(r"var\.([a-z0-9_]+)", "\n".join(p.read_text(encoding="utf-8") for p in files if p.suffix == ".tf")))
    if used - variables:
        fail(f"undeclared variables used: {sorted(used - variables)}")
    if variables - used:
        fail(f"declared but unused variables: {sorted(variables - used)}")
    check_tofu_policy(seen["main.tf"] if "main.tf" in seen else {})
    print(f"hcl: {len(files)} files parse; {len(variables)} variables and all outputs documented; policy requirements hold")


def _blocks(doc: dict, section: str) -> dict[tuple[str, str], dict]:
    """{(type, name): body} for resource/data blocks of a python-hcl2 document."""
    out = {}
    for entry in doc.get(section, []):
        for typ, named in entry.items():
            for name, body in named.items():
                out[(typ.strip('"'), name.strip('"'))] = body
    return out


def _s(v) -> str:
    return str(v).strip('"')


def check_tofu_policy(main: dict) -> None:
    """The security requirements of issue 5, read from deploy/tofu/main.tf."""
    res, data = _blocks(main, "resource"), _blocks(main, "data")
    repos = [b for (t, _), b in res.items() if t == "aws_ecr_repository"]
    if not repos:
        fail("tofu: no aws_ecr_repository")
    for b in repos:
        if _s(b.get("image_tag_mutability")) != "IMMUTABLE":
            fail("tofu: ECR repositories must have IMMUTABLE tags")
        if not any(c.get("scan_on_push") is True for c in b.get("image_scanning_configuration", [])):
            fail("tofu: ECR repositories must scan on push")
    if not any(_s(b.get("addon_name")) == "eks-pod-identity-agent" for (t, _), b in res.items() if t == "aws_eks_addon"):
        fail("tofu: the eks-pod-identity-agent add-on is missing")
    if not any(t == "helm_release" for (t, _) in res):
        fail("tofu: no helm_release")
    assocs = [b for (t, _), b in res.items() if t == "aws_eks_pod_identity_association"]
    if not any("aws_iam_role.webhook" in _s(b.get("role_arn")) for b in assocs):
        fail("tofu: no Pod Identity association for the webhook role")
    for (t, name), b in data.items():
        if t != "aws_iam_policy_document":
            continue
        for st in b.get("statement", []):
            actions = [_s(a) for a in st.get("actions", [])]
            if any(a == "*" or a.endswith(":*") for a in actions):
                fail(f"tofu: {name} grants wildcard actions {actions}")
            if name.endswith("_trust"):
                principals = [_s(i) for p in st.get("principals", []) for i in p.get("identifiers", [])]
                if principals != ["pods.eks.amazonaws.com"] or sorted(actions) != ["sts:AssumeRole", "sts:TagSession"]:
                    fail(f"tofu: {name} must trust only pods.eks.amazonaws.com with sts:AssumeRole + sts:TagSession")
                tags = {_s(c.get("variable")) for c in st.get("condition", [])}
                for want in ("aws:RequestTag/kubernetes-namespace", "aws:RequestTag/kubernetes-service-account"):
                    if want not in tags:
                        fail(f"tofu: {name} must be scoped with a {want} condition")
    ecr_doc = data.get(("aws_iam_policy_document", "webhook_ecr_read"))
    if not ecr_doc:
        fail("tofu: data.aws_iam_policy_document.webhook_ecr_read missing")
    read_only = {"ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                 "ecr:BatchCheckLayerAvailability", "ecr:DescribeImages"}
    got = {_s(a) for st in ecr_doc["statement"] for a in st.get("actions", [])}
    if not got <= read_only:
        fail(f"tofu: the webhook role may only read ECR; it also gets {sorted(got - read_only)}")
    app = data.get(("aws_iam_policy_document", "app_secrets"))
    if not app:
        fail("tofu: data.aws_iam_policy_document.app_secrets missing")
    for st in app["statement"]:
        acts = {_s(a) for a in st.get("actions", [])}
        rs = [_s(r) for r in st.get("resources", [])]
        if "secretsmanager:GetSecretValue" in acts and not all(":secret:${var.example_app.secret_name_prefix}*" in r for r in rs):
            fail(f"tofu: GetSecretValue must be scoped to the secret name prefix, is {rs}")
        if acts & {"secretsmanager:PutSecretValue", "secretsmanager:ListSecrets", "secretsmanager:DeleteSecret"}:
            fail(f"tofu: the app role must only read secrets, has {sorted(acts)}")
    check_tofu_controller(res, data)


def check_tofu_controller(res: dict, data: dict) -> None:
    """secrets-init-controller (controller/README.md "IAM"): metadata only, its own queue."""
    if ("aws_iam_role", "controller") not in res:
        fail("tofu: aws_iam_role.controller missing")
    assocs = [b for (t, _), b in res.items() if t == "aws_eks_pod_identity_association"]
    if not any("aws_iam_role.controller" in _s(b.get("role_arn")) and "controller_service_account" in _s(b.get("service_account")) for b in assocs):
        fail("tofu: no Pod Identity association of the controller role with the controller's ServiceAccount")
    doc = data.get(("aws_iam_policy_document", "controller"))
    if not doc:
        fail("tofu: data.aws_iam_policy_document.controller missing")
    statements = list(doc.get("statement", []))
    for d in doc.get("dynamic", []):
        for body in d.values():
            statements += body.get("content", [])
    metadata = {"secretsmanager:ListSecrets", "secretsmanager:DescribeSecret", "ssm:DescribeParameters"}
    queue = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
    got = set()
    for st in statements:
        acts = {_s(a) for a in st.get("actions", [])}
        raw = st.get("resources", [])
        rs = [_s(r) for r in raw] if isinstance(raw, list) else [_s(raw)]  # a list, or one expression
        got |= acts
        if _s(st.get("effect", "Allow")) != "Allow":
            fail(f"tofu: controller policy statement {st.get('sid')} is not an Allow")
        if acts & queue and not all("aws_sqs_queue.controller_events" in r for r in rs):
            fail(f"tofu: the controller's SQS permissions must be on its event queue only, are on {rs}")
        if "secretsmanager:DescribeSecret" in acts and rs != ["${local.controller_describe_secret_arns}"]:
            fail(f"tofu: DescribeSecret must be on controller_describe_secret_arns, is on {rs}")
        if "kms:Decrypt" in acts and not any(_s(c.get("variable")) == "kms:ViaService" for c in st.get("condition", [])):
            fail("tofu: the controller's kms:Decrypt must be limited to SQS (kms:ViaService)")
    if got != metadata | queue | {"kms:Decrypt"}:
        fail(f"tofu: the controller role must get exactly {sorted(metadata | queue)} (+ kms:Decrypt for a CMK queue), gets {sorted(got)}")
    q = res.get(("aws_sqs_queue", "controller_events"))
    if not q or not (q.get("sqs_managed_sse_enabled") is not None and q.get("kms_master_key_id") is not None):
        fail("tofu: the controller's event queue must be encrypted (SSE-SQS, or the given KMS key)")
    qp = data.get(("aws_iam_policy_document", "controller_events_queue"))
    if not qp:
        fail("tofu: data.aws_iam_policy_document.controller_events_queue missing")
    for st in qp["statement"]:
        principals = [_s(i) for p in st.get("principals", []) for i in p.get("identifiers", [])]
        src = [c for c in st.get("condition", []) if _s(c.get("variable")) == "aws:SourceArn"]
        if principals != ["events.amazonaws.com"] or [_s(a) for a in st.get("actions", [])] != ["sqs:SendMessage"]:
            fail("tofu: the event queue may let only events.amazonaws.com sqs:SendMessage")
        vals = [_s(v) for c in src for v in c.get("values", [])]
        if not src or sorted(vals) != sorted(["${aws_cloudwatch_event_rule.controller_secrets[0].arn}", "${aws_cloudwatch_event_rule.controller_parameters[0].arn}"]):
            fail(f"tofu: the event queue must accept messages from the controller's two EventBridge rules only (aws:SourceArn), has {vals}")
    rules = {n: b for (t, n), b in res.items() if t == "aws_cloudwatch_event_rule"}
    text = " ".join(_s(b.get("event_pattern")) for b in rules.values())
    for want in ("aws.secretsmanager", "AWS API Call via CloudTrail", "AWS Service Event via CloudTrail", "PutSecretValue",
                 "UpdateSecretVersionStage", "RotationSucceeded", "aws.ssm", "Parameter Store Change"):
        if want not in text:
            fail(f"tofu: the controller's EventBridge rules do not match {want!r}")


def cmd_promrule(crd_path: str, out: str) -> None:
    docs = [d for d in yaml.safe_load_all(pathlib.Path(crd_path).read_text(encoding="utf-8")) if d]
    prs = [d for d in docs if d["kind"] == "PrometheusRule"]
    if len(prs) != 1:
        fail(f"expected one PrometheusRule in {crd_path}, found {len(prs)}")
    pathlib.Path(out).write_text(yaml.safe_dump({"groups": prs[0]["spec"]["groups"]}), encoding="utf-8")
    print(f"promrule: wrote {out}")


def _chart(chart_dir: str) -> tuple[dict, dict]:
    d = pathlib.Path(chart_dir)
    return (yaml.safe_load((d / "values.yaml").read_text(encoding="utf-8")),
            yaml.safe_load((d / "Chart.yaml").read_text(encoding="utf-8")))


def cmd_images(print_config: str, chart_dir: str) -> None:
    binary = yaml.safe_load(pathlib.Path(print_config).read_text(encoding="utf-8"))
    values, chart = _chart(chart_dir)
    want = f"{values['secretsInit']['image']['repository']}:{chart['appVersion']}"
    got = binary.get("secrets-init-image")
    if got != want:
        fail(f"the webhook binary defaults to --secrets-init-image {got!r}, the chart to {want!r} "
             "(secretsInit.image.repository + appVersion): they must name the same published image")
    owner = values["image"]["repository"].rsplit("/", 1)[0]
    for key in ("secretsInit", "controller"):
        if owner != values[key]["image"]["repository"].rsplit("/", 1)[0]:
            fail(f"image.repository and {key}.image.repository live in different places: {owner!r}")
    print(f"images: binary and chart default to {got} (webhook image {values['image']['repository']}:{chart['appVersion']})")


def cmd_release(workflow: str, chart_dir: str) -> None:
    text = pathlib.Path(workflow).read_text(encoding="utf-8")
    wf = yaml.safe_load(text)
    values, chart = _chart(chart_dir)
    env = wf.get("env", {})
    prefix = env.get("IMAGE_PREFIX", "")
    problems = []
    for key, repo in (("webhook", values["image"]["repository"]), ("secrets-init", values["secretsInit"]["image"]["repository"]),
                      ("controller", values["controller"]["image"]["repository"])):
        if f"{prefix}/{repo.rsplit('/', 1)[1]}" != repo:
            problems.append(f"the workflow publishes {key} as {prefix}/{repo.rsplit('/', 1)[1]}, the chart pulls {repo}")
        if f"--target {key}" not in text and f"target: {key}" not in text:
            problems.append(f"no image build for the Dockerfile target {key}")
    for need, why in (("linux/amd64", "amd64 build"), ("linux/arm64", "arm64 build"),
                      ("x86_64-unknown-linux-musl", "static amd64 binaries"), ("aarch64-unknown-linux-musl", "static arm64 binaries"),
                      ("cosign sign", "image signing"), ("id-token: write", "keyless (OIDC) signing"),
                      ("sbom", "an SBOM"), ("helm push", "the chart pushed"), ("oci://", "an OCI chart registry"),
                      ("helm package", "the chart packaged")):
        if need not in text:
            problems.append(f"missing {why} ({need!r})")
    if problems:
        fail("release workflow: " + "; ".join(problems))
    print(f"release: {workflow} publishes {prefix}/{{secrets-init-webhook,secrets-init,secrets-init-controller}} (amd64+arm64, signed, SBOM) and the chart {chart['name']} as OCI")


def main() -> None:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    cmd, args = sys.argv[1], sys.argv[2:]
    {"metrics": lambda: cmd_metrics(args[0]),
     "controller-metrics": lambda: cmd_controller_metrics(args[0]),
     "dashboard": lambda: cmd_dashboard(args[0], args[1]),
     "coverage": lambda: cmd_coverage(args[0], args[1:]),
     "stages": lambda: cmd_stages(args[0], args[1]),
     "docs": lambda: cmd_docs(args[0], args[1]),
     "hcl": lambda: cmd_hcl(args[0]),
     "promrule": lambda: cmd_promrule(args[0], args[1]),
     "images": lambda: cmd_images(args[0], args[1]),
     "release": lambda: cmd_release(args[0], args[1]),
     }.get(cmd, lambda: (print(__doc__, file=sys.stderr), sys.exit(2)))()


if __name__ == "__main__":
    main()
