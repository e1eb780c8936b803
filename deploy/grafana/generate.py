#!/usr/bin/env python3
"""Writes secrets-init-webhook.json (the Grafana dashboard). Edit here, then run:
    python3 deploy/grafana/generate.py
scripts/test-deploy checks that the committed JSON equals this script's output and that
every query uses only metrics the webhook (contract section 6) and the controller
(controller/README.md) export, or well-known kube-state-metrics / API server metrics, and
that every one of theirs has a panel."""

import json
import pathlib

DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'namespace=~"$namespace"'
# The controller's job (its Service); scraped with honor_labels, so its failure metrics'
# `namespace` is the failing pods', not the controller's (deploy/prometheus/rules.yaml).
CJOB = 'job=~"(.+-)?secrets-init(-webhook)?-controller"'
_next_id = iter(range(1, 1000))


def target(expr, legend, ref="A"):
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, "range": True}


def panel(title, kind, grid, targets, unit="short", description="", **extra):
    p = {
        "id": next(_next_id),
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": dict(zip("xywh", grid)),
        "targets": [target(e, leg, chr(ord("A") + i)) for i, (e, leg) in enumerate(targets)],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
    }
    if kind == "timeseries":
        p["options"] = {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max"]},
                        "tooltip": {"mode": "multi", "sort": "desc"}}
    if kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "background", "graphMode": "none"}
    p.update(extra)
    return p


def thresholds(*steps):
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


def row(title, y):
    return {"id": next(_next_id), "type": "row", "title": title, "collapsed": False,
            "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []}


def dashboard():
    adm = "secrets_init_webhook_admission_requests_total"
    img = "secrets_init_webhook_image_config_requests_total"
    panels = [
        row("Admission", 0),
        panel("Admission requests by result", "timeseries", (0, 1, 12, 8),
              [(f"sum by (result) (rate({adm}{{{SEL}}}[$__rate_interval]))", "{{result}}")],
              unit="reqps", description="mutated / skipped / denied / error per second."),
        panel("Errors (share of requests)", "stat", (12, 1, 4, 4),
              [(f'sum(rate({adm}{{{SEL},result="error"}}[$__rate_interval])) / clamp_min(sum(rate({adm}{{{SEL}}}[$__rate_interval])), 1e-9)', "errors")],
              unit="percentunit", description="Alert SecretsInitWebhookErrors fires above 5% for 5m.",
              fieldConfig={"defaults": {"unit": "percentunit", "thresholds": thresholds((None, "green"), (0.01, "orange"), (0.05, "red"))}, "overrides": []}),
        panel("Denied (share of requests)", "stat", (16, 1, 4, 4),
              [(f'sum(rate({adm}{{{SEL},result="denied"}}[$__rate_interval])) / clamp_min(sum(rate({adm}{{{SEL}}}[$__rate_interval])), 1e-9)', "denied")],
              unit="percentunit", description="Denials are usually a pod's own mistake: see the events of the denied workloads.",
              fieldConfig={"defaults": {"unit": "percentunit", "thresholds": thresholds((None, "green"), (0.001, "orange"))}, "overrides": []}),
        panel("Available replicas", "stat", (20, 1, 4, 4),
              [(f'sum(kube_deployment_status_replicas_available{{{SEL},deployment=~"(.+-)?secrets-init-webhook"}})', "available")],
              description="failurePolicy is Fail: at 0 no pod can be created in injected namespaces.",
              fieldConfig={"defaults": {"unit": "short", "thresholds": thresholds((None, "red"), (1, "orange"), (2, "green"))}, "overrides": []}),
        panel("Mutated pods (last 24h)", "stat", (12, 5, 6, 4),
              [(f'sum(increase({adm}{{{SEL},result="mutated"}}[24h]))', "mutated")], unit="short"),
        panel("API server: calls to the webhook that failed", "stat", (18, 5, 6, 4),
              [('sum(increase(apiserver_admission_webhook_rejection_count{name="inject.secretsinit.io",error_type=~"calling_webhook_error|apiserver_internal_error"}[1h]))', "failed calls (1h)")],
              description="Pods the API server rejected because it could not get an answer from the webhook.",
              fieldConfig={"defaults": {"unit": "short", "thresholds": thresholds((None, "green"), (1, "red"))}, "overrides": []}),
        panel("Admission latency (webhook)", "timeseries", (0, 9, 12, 8),
              [(f"histogram_quantile({q}, sum by (le) (rate(secrets_init_webhook_admission_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))", f"p{int(q * 100)}")
               for q in (0.5, 0.9, 0.99)],
              unit="s", description="Alert SecretsInitWebhookLatencyHigh fires when p99 stays above 3s; the API server gives up at timeoutSeconds."),
        panel("Admission latency (seen by the API server)", "timeseries", (12, 9, 12, 8),
              [(f'histogram_quantile({q}, sum by (le) (rate(apiserver_admission_webhook_admission_duration_seconds_bucket{{name="inject.secretsinit.io"}}[$__rate_interval])))', f"p{int(q * 100)}")
               for q in (0.5, 0.99)],
              unit="s", description="Includes network and TLS between the API server and the webhook."),
        row("Image configs (registry lookups)", 17),
        panel("Image config lookups by result", "timeseries", (0, 18, 12, 8),
              [(f"sum by (result) (rate({img}{{{SEL}}}[$__rate_interval]))", "{{result}}")],
              unit="reqps", description="hit: served from the cache; miss: fetched from the registry; error: the registry lookup failed."),
        panel("Cache hit ratio", "stat", (12, 18, 4, 4),
              [(f'sum(rate({img}{{{SEL},result="hit"}}[$__rate_interval])) / clamp_min(sum(rate({img}{{{SEL}}}[$__rate_interval])), 1e-9)', "hit ratio")],
              unit="percentunit"),
        panel("Lookup errors (share)", "stat", (16, 18, 4, 4),
              [(f'sum(rate({img}{{{SEL},result="error"}}[$__rate_interval])) / clamp_min(sum(rate({img}{{{SEL}}}[$__rate_interval])), 1e-9)', "errors")],
              description="Alert SecretsInitWebhookImageConfigErrors fires above 10% for 10m.",
              fieldConfig={"defaults": {"unit": "percentunit", "thresholds": thresholds((None, "green"), (0.01, "orange"), (0.1, "red"))}, "overrides": []}),
        panel("Registry fetch latency", "timeseries", (0, 26, 12, 8),
              [(f"histogram_quantile({q}, sum by (le) (rate(secrets_init_webhook_image_config_fetch_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))", f"p{int(q * 100)}")
               for q in (0.5, 0.9, 0.99)],
              unit="s"),
        row("TLS", 34),
        panel("Serving certificate expires in", "stat", (0, 35, 8, 5),
              [(f"min(secrets_init_webhook_tls_cert_expiry_timestamp_seconds{{{SEL}}}) - time()", "expires in")],
              description="cert-manager renews 30 days ahead; the webhook reloads the mounted Secret by itself.",
              fieldConfig={"defaults": {"unit": "s", "thresholds": thresholds((None, "red"), (86400, "orange"), (7 * 86400, "green"))}, "overrides": []}),
        panel("Certificate reloads", "timeseries", (8, 35, 16, 5),
              [(f"sum by (result) (increase(secrets_init_webhook_tls_reloads_total{{{SEL}}}[$__rate_interval]))", "{{result}}")],
              unit="short"),
        row("Rotation and fleet failures (secrets-init-controller, when enabled)", 40),
        panel("Pods failing to resolve their secrets", "timeseries", (0, 41, 12, 8),
              [(f"max by (namespace) (secrets_init_pods_failing{{{CJOB}}})", "{{namespace}}")],
              unit="short", description="Injected pods whose latest container start ended in a secrets-init failure, by the pods' namespace (max across the controller's replicas, which all watch pods). Alert SecretsInitResolutionFailing."),
        panel("Resolution failures by code", "timeseries", (12, 41, 12, 8),
              [(f"max by (namespace, code) (increase(secrets_init_resolution_failures_total{{{CJOB}}}[$__rate_interval]))", "{{namespace}} {{code}}")],
              unit="short", description="Failed starts counted once per container restart; code from the termination message (AccessDeniedException, ResourceNotFoundException, KeyNotFound, Throttling, ...). The runbook for each code is in docs/operations.md."),
        panel("Leaders", "stat", (0, 49, 4, 4),
              [(f"sum(secrets_init_controller_leader{{{CJOB}}})", "leaders")],
              description="Replicas holding the Lease: 1 is right; 0 means nothing polls or restarts (alert SecretsInitControllerNoLeader).",
              fieldConfig={"defaults": {"unit": "short", "thresholds": thresholds((None, "red"), (1, "green"), (2, "red"))}, "overrides": []}),
        panel("Last successful poll", "stat", (4, 49, 4, 4),
              [(f"time() - max(secrets_init_controller_last_successful_poll_timestamp_seconds{{{CJOB}}})", "ago")],
              description="Seconds since the leader last completed a poll of AWS without an error (alert SecretsInitControllerPollStale at 5 poll intervals).",
              fieldConfig={"defaults": {"unit": "s", "thresholds": thresholds((None, "green"), (300, "orange"), (900, "red"))}, "overrides": []}),
        panel("Watched ids", "stat", (8, 49, 4, 4),
              [(f"max by (source) (secrets_init_controller_watched_ids{{{CJOB}}})", "{{source}}")],
              unit="short", description="Distinct secret and parameter ids the leader compares each poll (one AWS lookup each, batched)."),
        panel("Not watched", "stat", (12, 49, 6, 4),
              [(f"max by (reason) (secrets_init_controller_unwatched_references{{{CJOB}}})", "{{reason}}"),
               (f"sum(increase(secrets_init_controller_malformed_placeholders_total{{{CJOB}}}[24h]))", "malformed (24h)")],
              unit="short", description="References a rotation cannot restart: access denied, not found, pinned versions, ConfigMaps/Secrets without --follow-refs; malformed placeholders in watched templates. The controller's log names each."),
        panel("Poll rounds", "stat", (18, 49, 6, 4),
              [(f"sum(increase(secrets_init_controller_poll_rounds_total{{{CJOB}}}[1h]))", "rounds (1h)")],
              unit="short"),
        panel("Restarts by result", "timeseries", (0, 53, 8, 8),
              [(f"sum by (result) (increase(secrets_init_controller_restarts_total{{{CJOB}}}[$__rate_interval]))", "{{result}}"),
               (f"sum by (reason) (increase(secrets_init_controller_restarts_held_total{{{CJOB}}}[$__rate_interval]))", "held: {{reason}}")],
              unit="short", description="Workload restarts after a rotation (restarted, dry_run, error) and the ones held by the cool-down, the rate limit or paused."),
        panel("AWS detection calls", "timeseries", (8, 53, 16, 8),
              [(f"sum by (api, result) (rate(secrets_init_controller_detection_calls_total{{{CJOB}}}[$__rate_interval]))", "{{api}} {{result}}")],
              unit="reqps", description="ListSecrets, DescribeSecret, DescribeParameters per second: a few per poll interval however many workloads there are."),
    ]
    return {
        "title": "secrets-init webhook",
        "uid": "secrets-init-webhook",
        "description": "Admission, registry lookups and TLS of secrets-init-webhook; rotations and fleet resolution failures of secrets-init-controller. Alerts: deploy/prometheus/rules.yaml.",
        "tags": ["secrets-init", "admission-webhook", "kubernetes"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "browser",
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
             "current": {}, "hide": 0, "refresh": 1},
            {"name": "namespace", "label": "Namespace", "type": "query", "datasource": DS,
             "query": {"query": "label_values(secrets_init_webhook_admission_requests_total, namespace)", "refId": "ns"},
             "definition": "label_values(secrets_init_webhook_admission_requests_total, namespace)",
             "includeAll": True, "multi": True, "allValue": ".*", "current": {}, "hide": 0, "refresh": 2, "sort": 1},
        ]},
        "panels": panels,
    }


if __name__ == "__main__":
    import sys
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).with_name("secrets-init-webhook.json")
    out.write_text(json.dumps(dashboard(), indent=2) + "\n", encoding="utf-8")
    print(out)
