#!/usr/bin/env python3
"""A small stand-in Kubernetes API server for secrets-init-controller's tests.

No real API server can run on the test machines, so the controller's tests talk to this
one instead. It speaks the same wire protocol the Rust `kube` client and client-go
(kubectl) use: plain HTTP/1.1 on 127.0.0.1 with keep-alive, JSON bodies, Status objects
for errors, and newline-delimited JSON watch events in a `Transfer-Encoding: chunked`
response. Python 3.11 standard library only.

    python3 fake_kube_apiserver.py --port 0 [--state FILE] [--token TOKEN]
        [--bookmark-interval SECONDS] [--history N] [--verbose]

`--port 0` binds a free port; once the server accepts connections it prints exactly one
line, `listening on http://127.0.0.1:PORT`, to stdout. `--port PORT` binds that port
(SO_REUSEADDR, so a killed server can be started again on the same port at once).
`--state FILE` loads the store (objects and the resourceVersion counter) from FILE when it
exists and rewrites FILE atomically (temporary file + rename) after every change, so a
test can kill the server and start it again to model "the API server went away and came
back". `--token TOKEN` makes every request except `/_test/*` carry
`Authorization: Bearer TOKEN`, else 401 with a Status. `--bookmark-interval` (default 1 s)
is how often a watch that asked for bookmarks gets one. `--history` (default 10000) is how
many watch events are kept for resuming a watch. `--verbose` logs each request to stderr.
SIGTERM and SIGINT end the process at once (the state file is always complete).

WHAT IT MODELS

Resources (the paths are the real ones; cluster-wide list/watch for namespaced kinds, e.g.
`/apis/apps/v1/deployments`; namespaced list/watch/create/deletecollection, e.g.
`/apis/apps/v1/namespaces/{ns}/deployments`; get/update/patch/delete by name, e.g.
`/apis/apps/v1/namespaces/{ns}/deployments/{name}`):

    apps/v1                 deployments, statefulsets, daemonsets   (+ /status)
    v1                      pods (+ /status), configmaps, secrets, events,
                            namespaces (cluster-scoped, + /status)
    events.k8s.io/v1        events
    coordination.k8s.io/v1  leases

Discovery: `GET /api`, `/apis`, `/apis/{group}`, `/api/v1`, `/apis/{group}/{version}`
(APIVersions, APIGroupList, APIGroup, APIResourceList with names, singular names, kinds,
namespaced flags, verbs, short names, the `status` subresources), and the aggregated
discovery documents (`apidiscovery.k8s.io/v2` and `v2beta1` APIGroupDiscoveryList) on
`/api` and `/apis` when the Accept header asks for them, as kubectl and
`kube::Discovery::run_aggregated` do. `GET /version` (reports 1.35), `/healthz`,
`/livez`, `/readyz`. `/openapi/v3` and `/openapi/v3/{api/v1,apis/G/V}` are minimal
documents: only each kind's PATCH path, tagged with its group-version-kind and declaring
the `fieldValidation` query parameter, and no schemas. That is what kubectl reads to
decide that the server validates fields itself, so `kubectl create -f` works without
`--validate=false`; since this server does no field validation (below), kubectl's strict
validation is in effect off here. `/openapi/v2` is 404.

Verbs:
- GET one: the object, or 404 with a NotFound Status whose `details` carry `name`, `group`
  and `kind` (the resource plural, as the real server does).
- LIST: `{"kind":"DeploymentList","apiVersion":"apps/v1","metadata":{"resourceVersion":
  "N"},"items":[...]}`, items in (namespace, name) order and, as from the real server,
  without their own `kind`/`apiVersion`. `labelSelector` (`k=v`, `k==v`, `k!=v`, `k`,
  `!k`, `k in (a,b)`, `k notin (a,b)`, `k>n`, `k<n`, comma = AND); `fieldSelector`
  (`=`, `==`, `!=`, comma = AND) on `metadata.name` and `metadata.namespace` for every
  kind, plus pods: `spec.nodeName`, `spec.restartPolicy`, `spec.schedulerName`,
  `spec.serviceAccountName`, `spec.hostNetwork`, `status.phase`, `status.podIP`,
  `status.nominatedNodeName`; core events: `involvedObject.{kind,namespace,name,uid,
  apiVersion,resourceVersion,fieldPath}`, `reason`, `reportingComponent`, `source`, `type`;
  secrets: `type`; namespaces: `status.phase`; other field labels are 400, as on the real
  server. `limit` + `continue`: pages of one consistent snapshot (taken by the first page)
  with `metadata.continue` an opaque token and `remainingItemCount` when no selector is
  used; an unknown or forgotten token is 410 Expired. The list option checks of the real
  server are made: `resourceVersionMatch` without `resourceVersion`, or with `continue`,
  is 422; `resourceVersion` (other than "0") with `continue` is 400.
- WATCH (`watch=true`/`1`): one JSON event per line, `Transfer-Encoding: chunked`,
  `Content-Type: application/json`, with every event type the real server sends:
  - `resourceVersion` absent, "" or "0": a synthetic ADDED for every current matching
    object, then live events;
  - `resourceVersion=X`: every kept event after X, then live events; X older than the
    oldest kept event (see `--history`, `/_test/expire`, and restarts below) gives one
    `{"type":"ERROR","object":{Status code 410, reason "Expired", message "too old
    resource version: X (Y)"}}` line and the end of the stream (HTTP 200, as the real
    server does); X newer than the current resourceVersion is a 504 "Too large resource
    version" Status (the real server waits ~3 s first; this one answers at once);
  - `sendInitialEvents=true` (requires `resourceVersionMatch=NotOlderThan` and
    `allowWatchBookmarks=true`, else 422, as on the real server): synthetic ADDEDs for the
    current state, then a BOOKMARK at that resourceVersion annotated
    `k8s.io/initial-events-end: "true"`, then live events (`kube::runtime::watcher`'s
    streaming lists);
  - `allowWatchBookmarks=true`: a `{"type":"BOOKMARK","object":{"kind":..,"apiVersion":..,
    "metadata":{"resourceVersion":"N"}}}` every `--bookmark-interval` seconds; N never
    skips an event this watch has not been sent yet;
  - `timeoutSeconds=N`: the stream ends (cleanly, terminating chunk; the connection stays
    open for the next request) after N seconds;
  - label and field selectors apply to every event: an object that stops matching is sent
    as DELETED (its previous content, the new resourceVersion, as the real watch cache
    does), one that starts matching as ADDED;
  - a client that disconnects just ends its watch thread (checked every 0.25 s).
- CREATE (POST to the namespaced collection, or `/api/v1/namespaces`): 201; the URL's
  namespace is filled in (a different one in the body is 400); `apiVersion`/`kind` are
  filled in or must match (400); `metadata.generateName` (5 random characters, as the real
  server); sets `uid`, `creationTimestamp`, `resourceVersion`; `generation: 1` for the
  apps/v1 kinds; a `resourceVersion` in the body is a 500, as on the real server
  ("resourceVersion should not be set on objects to be created"); an existing name is 409
  AlreadyExists.
- UPDATE (PUT): a `metadata.resourceVersion` different from the stored one is 409 Conflict
  ("the object has been modified; please apply your changes to the latest version and try
  again"), which Lease leader election relies on. Without one, the update is unconditional
  for every kind except leases, where it is 422 (as the real strategies:
  `AllowUnconditionalUpdate` is false only for leases here). A `metadata.uid` different
  from the stored one is 409. PUT of a missing object is 404, except events (core and
  events.k8s.io), which are created (`AllowCreateOnUpdate`, as the real server).
  `uid` and `creationTimestamp` are kept from the stored object.
- PATCH, on the object and on `/status`: `application/merge-patch+json` (RFC 7386),
  `application/json-patch+json` (RFC 6902: add, remove, replace, move, copy, test; a
  failing operation is 422), `application/strategic-merge-patch+json` (SIMPLIFIED: merged
  as a JSON merge patch for maps, and every list is replaced wholesale, with no merge keys
  such as containers by `name`; the `$patch: replace|delete` (on maps), `$retainKeys`,
  `$deleteFromPrimitiveList/...` and `$setElementOrder/...` (ignored: lists are replaced
  anyway) directives are understood, a list element with `$patch` is 400).
  `application/apply-patch+yaml` (server-side apply) is 415 UnsupportedMediaType. A patch
  that sets `metadata.resourceVersion` to a stale value is 409 Conflict, as on the real
  server; one that renames the object is 400.
- DELETE: 200 with the object as it was (carrying the resourceVersion of the deletion),
  and a DELETED event; `preconditions` (uid, resourceVersion) in the DeleteOptions body are
  checked (409). DELETE on a namespaced collection deletes every object matching the
  selectors and returns the list.
- An update or patch that changes nothing writes nothing: same resourceVersion, no event
  (the real server skips such writes too).
- Every write increments the one global resourceVersion (a decimal counter) and appends a
  watch event. For the apps/v1 kinds `metadata.generation` increments when `spec` changes
  and only then (never for metadata-only or status changes); `generation` cannot be set
  by a client on update (kept from the stored object), as on the real server.
- Status subresource (`.../{name}/status` of pods, namespaces, deployments, statefulsets,
  daemonsets): GET returns the object; PUT/PATCH write only `.status` (everything else
  comes from the stored object). A PUT/PATCH of the object itself keeps the stored
  `.status`. On create `.status` is reset: `{}` for the apps/v1 kinds,
  `{"phase":"Pending"}` for pods, `{"phase":"Active"}` for namespaces.
- `dryRun=All` (query, or `dryRun: ["All"]` in DeleteOptions): everything is checked and
  the would-be result returned, nothing is stored, no event, no resourceVersion taken (a
  dry-run create returns no resourceVersion, as the real server).
- `fieldManager`, `fieldValidation`, `pretty`, `gracePeriodSeconds`, `propagationPolicy`,
  `orphanDependents`, `timeoutSeconds` (non-watch) are accepted and ignored.
- Validation, only of metadata: `metadata.name` (DNS-1123 subdomain; a DNS label for
  namespaces), the URL namespace (DNS label), label keys and values, annotation keys and
  the 256 KiB annotation total, as the real server words them (422 Invalid with causes);
  labels and annotations must be string maps (400).
- Namespaces: `default`, `kube-system`, `kube-public` and `kube-node-lease` exist at start
  (when no state was loaded); each Namespace gets the `kubernetes.io/metadata.name` label,
  `spec.finalizers: ["kubernetes"]` and `status.phase: Active`.
- Auth: only the bearer token of `--token` (401 Unauthorized Status otherwise). The Rust
  kube client sends its kubeconfig token over plain HTTP; kubectl (client-go) sends
  kubeconfig credentials only over TLS, so kubectl can only talk to a server started
  without `--token`.

WHAT IT DOES NOT MODEL (a test that needs any of these needs a real cluster)

- No admission of any kind: no NamespaceLifecycle (objects may be created in namespaces
  that do not exist, and deleting a namespace deletes nothing else), no webhooks (the
  secrets-init webhook does not run here: tests write the labels it would), no quotas.
- No authorization (RBAC) beyond the one token; no TLS; no impersonation.
- No defaulting beyond what is listed above (no `spec.replicas: 1`, no
  `strategy`, no `terminationMessagePath`, no `qosClass`, ...), no field validation
  (unknown or malformed fields are stored as sent; e.g. an events.k8s.io Event without
  `eventTime` or `reportingController` is accepted here but not by a real server), no
  conversion between versions.
- Core v1 events and events.k8s.io/v1 events are two separate stores here; on a real
  server they are one store seen through two versions.
- No server-side apply (`application/apply-patch+yaml` is 415), no `managedFields` (they
  are dropped), strategic merge patch simplified as described above.
- No controllers: nothing rolls out Deployments, creates ReplicaSets or Pods, updates
  `status`, garbage-collects owners, or runs pods (tests write status with PATCH to
  `/status` or `POST /_test/objects`). No finalizers or graceful deletion: DELETE removes
  the object at once, whatever its `metadata.finalizers` or `deletionGracePeriodSeconds`.
- LIST always serves the current state: `resourceVersion`/`resourceVersionMatch` are
  checked as above but no older state is served (`resourceVersionMatch=Exact` with a
  resourceVersion other than the current one is 410 Expired, as if compacted). The watch
  event history is kept in memory only: after a restart with `--state`, a watch resuming
  from a resourceVersion older than the loaded one gets 410 (it can resume from the
  loaded one), and continue tokens from before the restart are 410.
- No protobuf, CBOR or YAML bodies (JSON only, 415 otherwise: kubectl's generator
  commands such as `kubectl create namespace NAME` send protobuf, so use
  `kubectl create -f` with YAML or JSON, which kubectl sends as JSON; responses are always
  JSON, which client-go accepts whatever it asked for), no Table output
  (`as=Table` is answered with plain JSON, kubectl prints its default columns then), no
  gzip, no HTTP/2, no WebSocket (exec, attach, port-forward, logs), no other
  subresources (`scale`, `eviction`, `binding`, `finalize`, ...), no API priority and
  fairness, no `Retry-After` throttling, no watch on a single named object path.
- A single process, no persistence beyond the state file, no etcd: the resourceVersion is
  one counter for all kinds, as etcd's revision is.

TEST CONTROLS (no token needed, never in the request log)

- `POST /_test/objects` with a JSON object of any supported kind (it must carry
  `apiVersion`, `kind`, `metadata.name`, and `metadata.namespace` where namespaced), a
  JSON array of them, or a `{"kind":"List","items":[...]}`: creates or replaces each
  (emitting ADDED, or MODIFIED) exactly as given, `status` included; `uid`,
  `creationTimestamp` and `generation` are kept from the body, else from the stored
  object, else set (generation: 1, and +1 on a spec change, for the apps/v1 kinds);
  `resourceVersion` is always assigned. 201 (any created) or 200, with the stored object
  (or a List of them).
- `POST /_test/expire`: every open watch gets a 410 ERROR event (reason Expired, message
  "The resourceVersion for the provided watch is too old.", as the real server words it
  for an open watch whose history was compacted) and ends; the event
  history and every pagination snapshot are forgotten, so resuming a watch from any older
  resourceVersion also gets 410 (a watch from the current one works). Returns
  `{"expiredWatches": n, "resourceVersion": "N"}`.
- `GET /_test/requests`: the JSON list of every request seen (oldest first, at most the
  last 100000), each `{"method","path","query","contentType","accept","userAgent",
  "body"}`; `query` is the raw query string, `body` the parsed JSON body of
  POST/PUT/PATCH/DELETE (the raw text if it is not JSON, null if empty).
  `DELETE /_test/requests` clears it.
- `GET /_test/watches`: the open watches, `[{"path","query","resourceVersion"}]`
  (resourceVersion: the last one the watch has passed), so a test can wait until a client
  is watching instead of sleeping.
- `GET /_test/healthz`: `ok`.

THREADING

`ThreadingHTTPServer` (daemon threads, HTTP/1.1 keep-alive). One re-entrant lock guards
the store, the history, the watcher set and the state file; every write happens entirely
under it and puts the event on a queue per open watch of that resource. Watch threads
write to their socket only outside the lock, so a slow or vanished client never blocks
anyone else.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hmac
import json
import os
import queue
import random
import re
import select
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import OrderedDict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

SERVER_MAJOR, SERVER_MINOR = "1", "35"
ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
STATUS_VERBS = ["get", "patch", "update"]
ANNOTATION_TOTAL_LIMIT = 256 * 1024
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

MT_JSON = "application/json"
MT_MERGE = "application/merge-patch+json"
MT_STRATEGIC = "application/strategic-merge-patch+json"
MT_JSONPATCH = "application/json-patch+json"
MT_APPLY = "application/apply-patch+yaml"

POD_FIELDS = {
    "spec.nodeName": ("spec", "nodeName"),
    "spec.restartPolicy": ("spec", "restartPolicy"),
    "spec.schedulerName": ("spec", "schedulerName"),
    "spec.serviceAccountName": ("spec", "serviceAccountName"),
    "spec.hostNetwork": ("spec", "hostNetwork"),
    "status.phase": ("status", "phase"),
    "status.podIP": ("status", "podIP"),
    "status.nominatedNodeName": ("status", "nominatedNodeName"),
}
CORE_EVENT_FIELDS = {
    "involvedObject.kind": ("involvedObject", "kind"),
    "involvedObject.namespace": ("involvedObject", "namespace"),
    "involvedObject.name": ("involvedObject", "name"),
    "involvedObject.uid": ("involvedObject", "uid"),
    "involvedObject.apiVersion": ("involvedObject", "apiVersion"),
    "involvedObject.resourceVersion": ("involvedObject", "resourceVersion"),
    "involvedObject.fieldPath": ("involvedObject", "fieldPath"),
    "reason": ("reason",),
    "reportingComponent": ("reportingComponent",),
    "source": ("source", "component"),
    "type": ("type",),
}


class Resource:
    def __init__(self, group, version, plural, singular, kind, namespaced, short_names=(),
                 categories=(), status=False, generation=False, unconditional_update=True,
                 create_on_update=False, fields=None):
        self.group, self.version, self.plural, self.singular = group, version, plural, singular
        self.kind, self.namespaced = kind, namespaced
        self.short_names, self.categories = list(short_names), list(categories)
        self.status, self.generation = status, generation
        self.unconditional_update, self.create_on_update = unconditional_update, create_on_update
        self.fields = dict(fields or {})
        self.key = (group, version, plural)
        self.api_version = f"{group}/{version}" if group else version
        # "deployments.apps", "pods": how the real server names a resource in messages
        self.group_resource = f"{plural}.{group}" if group else plural
        self.group_kind = f"{kind}.{group}" if group else kind


RESOURCES = [
    Resource("apps", "v1", "deployments", "deployment", "Deployment", True, ("deploy",), ("all",),
             status=True, generation=True),
    Resource("apps", "v1", "statefulsets", "statefulset", "StatefulSet", True, ("sts",), ("all",),
             status=True, generation=True),
    Resource("apps", "v1", "daemonsets", "daemonset", "DaemonSet", True, ("ds",), ("all",),
             status=True, generation=True),
    Resource("", "v1", "pods", "pod", "Pod", True, ("po",), ("all",), status=True, fields=POD_FIELDS),
    Resource("", "v1", "configmaps", "configmap", "ConfigMap", True, ("cm",)),
    Resource("", "v1", "secrets", "secret", "Secret", True, fields={"type": ("type",)}),
    Resource("", "v1", "namespaces", "namespace", "Namespace", False, ("ns",), status=True,
             fields={"status.phase": ("status", "phase")}),
    Resource("", "v1", "events", "event", "Event", True, ("ev",), create_on_update=True,
             fields=CORE_EVENT_FIELDS),
    Resource("events.k8s.io", "v1", "events", "event", "Event", True, ("ev",),
             create_on_update=True),
    Resource("coordination.k8s.io", "v1", "leases", "lease", "Lease", True,
             unconditional_update=False),
]
BY_KEY = {r.key: r for r in RESOURCES}
BY_GVK = {(r.api_version, r.kind): r for r in RESOURCES}
GROUP_VERSIONS = OrderedDict()  # (group, version) -> [Resource]
for _r in RESOURCES:
    GROUP_VERSIONS.setdefault((_r.group, _r.version), []).append(_r)

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]\Z")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?\Z")
GENERATE_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ----------------------------------------------------------------------------------------
# Errors as Status objects


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self):
        st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": self.message, "reason": self.reason}
        if self.details is not None:
            st["details"] = self.details
        st["code"] = self.code
        return st


def _details(res, name, kind=None):
    d = {"name": name}
    if res.group:
        d["group"] = res.group
    d["kind"] = kind or res.plural
    return d


def not_found(res, name):
    return ApiError(404, "NotFound", f'{res.group_resource} "{name}" not found', _details(res, name))


def already_exists(res, name):
    return ApiError(409, "AlreadyExists", f'{res.group_resource} "{name}" already exists',
                    _details(res, name))


def conflict(res, name, why="the object has been modified; please apply your changes to the "
                            "latest version and try again"):
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {res.group_resource} '
                                     f'"{name}": {why}', _details(res, name))


def bad_request(message):
    return ApiError(400, "BadRequest", message)


def invalid(res, name, causes):
    """causes: [(field, type, detail, value-or-None)] as field.Error renders them."""
    rendered, cs = [], []
    for field, typ, detail, value in causes:
        if typ == "Invalid value":
            msg = f"Invalid value: {json.dumps(value)}: {detail}"
            reason = "FieldValueInvalid"
        elif typ == "Required value":
            msg = f"Required value: {detail}" if detail else "Required value"
            reason = "FieldValueRequired"
        elif typ == "Too long":
            msg = f"Too long: {detail}"
            reason = "FieldValueTooLong"
        else:  # Forbidden
            msg = f"Forbidden: {detail}"
            reason = "FieldValueForbidden"
        rendered.append(f"{field}: {msg}")
        cs.append({"reason": reason, "message": msg, "field": field})
    text = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    return ApiError(422, "Invalid", f'{res.group_kind} "{name}" is invalid: {text}',
                    dict(_details(res, name, kind=res.kind), causes=cs))


def list_options_invalid(causes):
    rendered = [f"{f}: Forbidden: {d}" for f, d in causes]
    text = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    return ApiError(422, "Invalid", f'ListOptions.meta.k8s.io "" is invalid: {text}',
                    {"group": "meta.k8s.io", "kind": "ListOptions",
                     "causes": [{"reason": "FieldValueForbidden", "message": f"Forbidden: {d}",
                                 "field": f} for f, d in causes]})


def expired_status(message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": "Expired", "code": 410}


# ----------------------------------------------------------------------------------------
# Selectors


def _split_top_level_commas(s):
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _valid_qualified_name(key):
    if "/" in key:
        prefix, name = key.split("/", 1)
        if not prefix or len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix):
            return False
    else:
        name = key
    return 0 < len(name) <= 63 and bool(QUALIFIED_NAME.match(name))


def _valid_label_value(v):
    return len(v) <= 63 and bool(LABEL_VALUE.match(v))


_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_SET_RE = re.compile(r"\s*(" + _KEY + r")\s+(in|notin)\s*\(([^()]*)\)\s*\Z")
_NOT_RE = re.compile(r"\s*!\s*(" + _KEY + r")\s*\Z")
_OP_RE = re.compile(r"\s*(" + _KEY + r")\s*(==|!=|=|>|<)\s*([^\s=!<>(),]*)\s*\Z")
_EXISTS_RE = re.compile(r"\s*(" + _KEY + r")\s*\Z")


def parse_label_selector(s):
    """Returns a list of (key, op, values) requirements; raises ApiError 400."""
    reqs = []
    if s is None or not s.strip():
        return reqs
    for part in _split_top_level_commas(s):
        m = _SET_RE.match(part)
        if m:
            values = [v.strip() for v in m.group(3).split(",")]
            if m.group(3).strip() == "":
                raise bad_request(f"unable to parse requirement: for 'in', 'notin' operators, "
                                  f"values set can't be empty: {part.strip()!r}")
            req = (m.group(1), m.group(2), values)
        elif _NOT_RE.match(part):
            req = (_NOT_RE.match(part).group(1), "!", [])
        elif _OP_RE.match(part):
            m = _OP_RE.match(part)
            op = {"==": "=", "=": "="}.get(m.group(2), m.group(2))
            if op in (">", "<"):
                try:
                    int(m.group(3))
                except ValueError:
                    raise bad_request(f"unable to parse requirement: for 'Gt', 'Lt' operators, the "
                                      f"value must be an integer: {part.strip()!r}")
            req = (m.group(1), op, [m.group(3)])
        elif _EXISTS_RE.match(part):
            req = (_EXISTS_RE.match(part).group(1), "exists", [])
        else:
            raise bad_request(f"unable to parse requirement: found '{part.strip()}', "
                              f"expected: key, !key, key=value, key!=value, key in (...), key notin (...)")
        key, op, values = req
        if not _valid_qualified_name(key):
            raise bad_request(f"unable to parse requirement: key: Invalid value: {json.dumps(key)}: "
                              f"name part must consist of alphanumeric characters, '-', '_' or '.', "
                              f"and must start and end with an alphanumeric character")
        for v in values:
            if op not in (">", "<") and not _valid_label_value(v):
                raise bad_request(f"unable to parse requirement: values[0][{key}]: Invalid value: "
                                  f"{json.dumps(v)}: a valid label must be an empty string or consist "
                                  f"of alphanumeric characters, '-', '_' or '.', and must start and end "
                                  f"with an alphanumeric character")
        reqs.append(req)
    return reqs


def labels_match(reqs, labels):
    labels = labels or {}
    for key, op, values in reqs:
        has = key in labels
        val = labels.get(key)
        if op == "=":
            ok = has and val == values[0]
        elif op == "!=":
            ok = (not has) or val != values[0]
        elif op == "in":
            ok = has and val in values
        elif op == "notin":
            ok = (not has) or val not in values
        elif op == "exists":
            ok = has
        elif op == "!":
            ok = not has
        else:  # > <
            try:
                n = int(val) if has else None
            except ValueError:
                n = None
            ok = n is not None and (n > int(values[0]) if op == ">" else n < int(values[0]))
        if not ok:
            return False
    return True


def parse_field_selector(res, s):
    reqs = []
    if s is None or not s.strip():
        return reqs
    for part in s.split(","):
        part = part.strip()
        m = re.match(r"([^=!]+?)\s*(==|!=|=)\s*(.*)\Z", part)
        if not m:
            raise bad_request(f"invalid selector: '{s}'; can't understand '{part}'")
        key, op, value = m.group(1).strip(), m.group(2), m.group(3).strip()
        if key not in ("metadata.name", "metadata.namespace") and key not in res.fields:
            raise bad_request(f'field label not supported: {key}')
        reqs.append((key, "!=" if op == "!=" else "=", value))
    return reqs


def _field_value(res, obj, key):
    meta = obj.get("metadata") or {}
    if key == "metadata.name":
        return meta.get("name", "")
    if key == "metadata.namespace":
        return meta.get("namespace", "")
    cur = obj
    for p in res.fields[key]:
        cur = cur.get(p) if isinstance(cur, dict) else None
    if cur is None:
        return "false" if key == "spec.hostNetwork" else ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def make_predicate(res, ns, label_sel, field_sel):
    lreqs = parse_label_selector(label_sel)
    freqs = parse_field_selector(res, field_sel)

    def match(obj):
        meta = obj.get("metadata") or {}
        if ns is not None and meta.get("namespace") != ns:
            return False
        if not labels_match(lreqs, meta.get("labels")):
            return False
        for key, op, value in freqs:
            v = _field_value(res, obj, key)
            if (v == value) != (op == "="):
                return False
        return True

    match.has_selectors = bool(lreqs or freqs)
    return match


# ----------------------------------------------------------------------------------------
# Patches


class PatchError(Exception):
    pass


def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


_DELETE = object()


def strategic_merge_patch(target, patch):
    """Merge-patch semantics for maps, lists replaced wholesale (see the module docstring)."""
    if isinstance(patch, list):
        for el in patch:
            if isinstance(el, dict) and "$patch" in el:
                raise bad_request("the stand-in API server does not implement strategic merge "
                                  "patch directives inside lists ($patch in a list element)")
        return copy.deepcopy(patch)
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch" and v is not None}
    if directive not in (None, "merge"):
        raise bad_request(f"Unknown patch type: {directive}")
    result = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    deferred = []
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys") or k.startswith("$setElementOrder/"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            deferred.append((k.split("/", 1)[1], v))
            continue
        if k.startswith("$"):
            raise bad_request(f"the stand-in API server does not implement the strategic merge "
                              f"patch directive {k}")
        if v is None:
            result.pop(k, None)
            continue
        r = strategic_merge_patch(result.get(k), v)
        if r is _DELETE:
            result.pop(k, None)
        else:
            result[k] = r
    for field, values in deferred:
        if isinstance(result.get(field), list) and isinstance(values, list):
            result[field] = [x for x in result[field] if x not in values]
    if retain is not None:
        if not isinstance(retain, list):
            raise bad_request("invalid patch: $retainKeys must be a list")
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f'invalid JSON pointer "{path}"')
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _json_equal(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    return a == b


def _walk(doc, tokens, path):
    cur = doc
    for t in tokens:
        if isinstance(cur, dict):
            if t not in cur:
                raise PatchError(f"doc is missing path: \"{path}\"")
            cur = cur[t]
        elif isinstance(cur, list):
            if not t.isdigit() or int(t) >= len(cur):
                raise PatchError(f"doc is missing path: \"{path}\"")
            cur = cur[int(t)]
        else:
            raise PatchError(f"doc is missing path: \"{path}\"")
    return cur


def _jp_get(doc, path):
    return _walk(doc, _pointer(path), path)


def _jp_add(doc, path, value):
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _walk(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise PatchError(f"add operation does not apply: doc is missing path: \"{path}\"")
    else:
        raise PatchError(f"add operation does not apply: doc is missing path: \"{path}\"")
    return doc


def _jp_remove(doc, path):
    tokens = _pointer(path)
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _walk(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        del parent[int(last)]
    else:
        raise PatchError(f"remove operation does not apply: doc is missing path: \"{path}\"")
    return doc


def json_patch(doc, ops):
    """RFC 6902."""
    if not isinstance(ops, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(f"invalid JSON patch operation: {json.dumps(op)}")
    for op in ops:
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"missing value for {kind} operation on \"{path}\"")
        if kind == "add":
            doc = _jp_add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc = _jp_remove(doc, path)
        elif kind == "replace":
            if not _pointer(path):
                doc = copy.deepcopy(op["value"])
                continue
            _jp_get(doc, path)  # must exist
            doc = _jp_remove(doc, path)
            doc = _jp_add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "move":
            value = _jp_get(doc, op.get("from", ""))
            doc = _jp_remove(doc, op.get("from", ""))
            doc = _jp_add(doc, path, value)
        elif kind == "copy":
            doc = _jp_add(doc, path, copy.deepcopy(_jp_get(doc, op.get("from", ""))))
        elif kind == "test":
            try:
                actual = _jp_get(doc, path)
            except PatchError:
                raise PatchError(f"testing value {path} failed: doc is missing path")
            if not _json_equal(actual, op["value"]):
                raise PatchError(f"testing value {path} failed: test failed")
        else:
            raise bad_request(f"Unexpected kind: {kind}")
    return doc


# ----------------------------------------------------------------------------------------
# Store


class StoredEvent:
    __slots__ = ("rv", "key", "type", "obj", "old")

    def __init__(self, rv, key, type_, obj, old):
        self.rv, self.key, self.type, self.obj, self.old = rv, key, type_, obj, old


class Watcher:
    def __init__(self, res, path, query):
        self.res, self.path, self.query = res, path, query
        self.q = queue.Queue()
        self.last_rv = 0


EXPIRE = "expire"


class Store:
    """Objects are never mutated once stored: every write stores a fresh dict, so they can be
    serialized outside the lock."""

    def __init__(self, history_max, state_path):
        self.lock = threading.RLock()
        self.objects = {r.key: {} for r in RESOURCES}
        self.rv = 0
        self.history = deque()
        self.history_start_rv = 0  # a watch can resume from X iff X >= this
        self.history_max = history_max
        self.watchers = set()
        self.snapshots = OrderedDict()  # continue-token id -> (items, rv)
        self.state_path = state_path

    # -- persistence
    def load_or_seed(self):
        if self.state_path and os.path.exists(self.state_path):
            with open(self.state_path, encoding="utf-8") as f:
                data = json.load(f)
            for obj in data.get("objects", []):
                res = BY_GVK.get((obj.get("apiVersion"), obj.get("kind")))
                if res is None:
                    raise SystemExit(f"state file {self.state_path}: unknown kind "
                                     f"{obj.get('apiVersion')}/{obj.get('kind')}")
                meta = obj["metadata"]
                self.objects[res.key][(meta.get("namespace") if res.namespaced else None,
                                       meta["name"])] = obj
            self.rv = int(data.get("resourceVersion", "0"))
            self.history_start_rv = self.rv
            return
        res = BY_KEY[("", "v1", "namespaces")]
        for name in DEFAULT_NAMESPACES:
            obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            self.commit(res, None, name, prepare_new(res, obj, None), "ADDED", None)

    def persist(self):
        if not self.state_path:
            return
        objs = []
        for r in RESOURCES:
            for k in sorted(self.objects[r.key], key=lambda k: (k[0] or "", k[1])):
                objs.append(self.objects[r.key][k])
        data = {"resourceVersion": str(self.rv), "objects": objs}
        d = os.path.dirname(os.path.abspath(self.state_path))
        fd, tmp = tempfile.mkstemp(prefix=".fake-kube-state-", dir=d)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f)
            os.replace(tmp, self.state_path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    # -- reads (caller holds the lock)
    def get(self, res, ns, name):
        return self.objects[res.key].get((ns if res.namespaced else None, name))

    def matching(self, res, pred):
        objs = self.objects[res.key]
        return [objs[k] for k in sorted(objs, key=lambda k: (k[0] or "", k[1])) if pred(objs[k])]

    # -- writes (caller holds the lock)
    def commit(self, res, ns, name, obj, etype, old):
        self.rv += 1
        key = (ns if res.namespaced else None, name)
        if etype == "DELETED":
            obj = with_rv(old, self.rv)
            del self.objects[res.key][key]
        else:
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self.objects[res.key][key] = obj
        ev = StoredEvent(self.rv, res.key, etype, obj, old)
        self.history.append(ev)
        while len(self.history) > self.history_max:
            self.history_start_rv = self.history.popleft().rv
        if self.history_max == 0:
            self.history_start_rv = self.rv
        for w in self.watchers:
            if w.res.key == res.key:
                w.q.put(ev)
        self.persist()
        return obj

    def expire(self):
        n = 0
        for w in self.watchers:
            w.q.put(EXPIRE)
            n += 1
        self.history.clear()
        self.history_start_rv = self.rv
        self.snapshots.clear()
        return n


def with_rv(obj, rv):
    out = dict(obj)
    out["metadata"] = dict(obj.get("metadata") or {})
    out["metadata"]["resourceVersion"] = str(rv)
    return out


def strip_typemeta(obj):
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


# ----------------------------------------------------------------------------------------
# Object checks and preparation


def check_string_map(obj, field):
    meta = obj.get("metadata") or {}
    m = meta.get(field)
    if m is None:
        return
    if not isinstance(m, dict) or not all(isinstance(v, str) for v in m.values()):
        raise bad_request(f"json: cannot unmarshal {json.dumps(m)[:80]} into Go struct field "
                          f"ObjectMeta.metadata.{field} of type map[string]string")


def validate_meta(res, obj):
    meta = obj["metadata"]
    name = meta.get("name") or ""
    causes = []
    if not name:
        causes.append(("metadata.name", "Required value", "name or generateName is required", None))
    elif res.plural == "namespaces":
        if len(name) > 63 or not DNS1123_LABEL.match(name):
            causes.append(("metadata.name", "Invalid value",
                           "a lowercase RFC 1123 label must consist of lower case alphanumeric "
                           "characters or '-', and must start and end with an alphanumeric "
                           "character (e.g. 'my-name',  or '123-abc', regex used for validation is "
                           "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')", name))
    elif len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        causes.append(("metadata.name", "Invalid value",
                       "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                       "characters, '-' or '.', and must start and end with an alphanumeric "
                       "character (e.g. 'example.com', regex used for validation is "
                       "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')", name))
    if res.namespaced:
        ns = meta.get("namespace") or ""
        if len(ns) > 63 or not DNS1123_LABEL.match(ns):
            causes.append(("metadata.namespace", "Invalid value",
                           "a lowercase RFC 1123 label must consist of lower case alphanumeric "
                           "characters or '-', and must start and end with an alphanumeric "
                           "character", ns))
    for k, v in (meta.get("labels") or {}).items():
        if not _valid_qualified_name(k):
            causes.append(("metadata.labels", "Invalid value",
                           "name part must consist of alphanumeric characters, '-', '_' or '.', and "
                           "must start and end with an alphanumeric character (e.g. 'MyName',  or "
                           "'my.name',  or '123-abc', regex used for validation is "
                           "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS "
                           "subdomain prefix and '/' (e.g. 'example.com/MyName')", k))
        if not _valid_label_value(v):
            causes.append(("metadata.labels", "Invalid value",
                           "a valid label must be an empty string or consist of alphanumeric "
                           "characters, '-', '_' or '.', and must start and end with an "
                           "alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
                           "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?"
                           "[A-Za-z0-9])?')", v))
    total = 0
    for k, v in (meta.get("annotations") or {}).items():
        total += len(k) + len(v)
        if not _valid_qualified_name(k.lower()):
            causes.append(("metadata.annotations", "Invalid value",
                           "name part must consist of alphanumeric characters, '-', '_' or '.', and "
                           "must start and end with an alphanumeric character (e.g. 'MyName',  or "
                           "'my.name',  or '123-abc', regex used for validation is "
                           "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS "
                           "subdomain prefix and '/' (e.g. 'example.com/MyName')", k))
    if total > ANNOTATION_TOTAL_LIMIT:
        causes.append(("metadata.annotations", "Too long",
                       f"may not be more than {ANNOTATION_TOTAL_LIMIT} bytes", None))
    if causes:
        raise invalid(res, name, causes)


def decode_object(res, body):
    if not isinstance(body, dict):
        raise bad_request(f"the object provided is unrecognized (must be a {res.kind} object)")
    api_version, kind = body.get("apiVersion"), body.get("kind")
    if api_version not in (None, "") and api_version != res.api_version:
        raise bad_request(f"the API version in the data ({api_version}) does not match the "
                          f"expected API version ({res.api_version})")
    if kind not in (None, "") and kind != res.kind:
        raise bad_request(f"the kind in the data ({kind}) does not match the expected kind "
                          f"({res.kind})")
    obj = copy.deepcopy(body)
    obj["apiVersion"], obj["kind"] = res.api_version, res.kind
    meta = obj.get("metadata")
    if meta is None:
        meta = obj["metadata"] = {}
    if not isinstance(meta, dict):
        raise bad_request("json: cannot unmarshal metadata into Go struct field of type "
                          "v1.ObjectMeta")
    check_string_map(obj, "labels")
    check_string_map(obj, "annotations")
    # reorder so apiVersion and kind come first, as the real server prints them
    return {"apiVersion": obj.pop("apiVersion"), "kind": obj.pop("kind"), **obj}


def prepare_new(res, obj, ns):
    """Sets what BeforeCreate and the strategies set on create. obj is owned by the caller."""
    meta = obj["metadata"]
    if res.namespaced:
        meta["namespace"] = ns
    else:
        meta.pop("namespace", None)
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = meta["generateName"] + "".join(random.choice(GENERATE_CHARS) for _ in range(5))
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now_rfc3339()
    for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"):
        meta.pop(k, None)
    if res.generation:
        meta["generation"] = 1
        obj["status"] = {}
    if res.plural == "pods":
        obj["status"] = {"phase": "Pending"}
    if res.plural == "namespaces":
        meta.setdefault("labels", {})
        meta["labels"]["kubernetes.io/metadata.name"] = meta.get("name", "")
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            spec["finalizers"] = ["kubernetes"]
        obj["status"] = {"phase": "Active"}
    return obj


def prepare_update(res, stored, new, status_only):
    """What BeforeUpdate and the (status) strategies do; returns the object to store."""
    if status_only:
        out = copy.deepcopy(stored)
        if "status" in new:
            out["status"] = new["status"]
        else:
            out.pop("status", None)
        return out
    smeta, meta = stored["metadata"], new["metadata"]
    for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
        if k in smeta:
            meta[k] = smeta[k]
        else:
            meta.pop(k, None)
    meta.pop("managedFields", None)
    meta.pop("selfLink", None)
    if "generation" in smeta:
        meta["generation"] = smeta["generation"]
    else:
        meta.pop("generation", None)
    if res.generation and new.get("spec") != stored.get("spec"):
        meta["generation"] = smeta.get("generation", 0) + 1
    if res.status:
        if "status" in stored:
            new["status"] = stored["status"]
        else:
            new.pop("status", None)
    if res.plural == "namespaces":
        meta.setdefault("labels", {})
        meta["labels"]["kubernetes.io/metadata.name"] = meta.get("name", "")
        spec = new.get("spec")
        sspec = stored.get("spec") or {}
        if isinstance(spec, dict) or "finalizers" in sspec:
            new.setdefault("spec", {})
            if isinstance(new["spec"], dict):
                if "finalizers" in sspec:
                    new["spec"]["finalizers"] = sspec["finalizers"]
                else:
                    new["spec"].pop("finalizers", None)
    meta["resourceVersion"] = smeta.get("resourceVersion")
    return new


# ----------------------------------------------------------------------------------------
# Discovery documents


def api_resource_list(group, version):
    resources = []
    for r in GROUP_VERSIONS[(group, version)]:
        entry = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                 "kind": r.kind, "verbs": ALL_VERBS}
        if r.short_names:
            entry["shortNames"] = r.short_names
        if r.categories:
            entry["categories"] = r.categories
        entry["storageVersionHash"] = base64.b64encode(
            f"{r.api_version}/{r.plural}".encode()).decode()[:11]
        resources.append(entry)
        if r.status:
            resources.append({"name": f"{r.plural}/status", "singularName": "",
                              "namespaced": r.namespaced, "kind": r.kind, "verbs": STATUS_VERBS})
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


def api_groups():
    groups, seen = [], OrderedDict()
    for (g, v) in GROUP_VERSIONS:
        if g:
            seen.setdefault(g, []).append(v)
    for g, versions in seen.items():
        vs = [{"groupVersion": f"{g}/{v}", "version": v} for v in versions]
        groups.append({"name": g, "versions": vs, "preferredVersion": vs[0]})
    return groups


def aggregated(core, api_version):
    items = []
    by_group = OrderedDict()
    for (g, v) in GROUP_VERSIONS:
        if (g == "") == core:
            by_group.setdefault(g, []).append(v)
    for g, versions in by_group.items():
        vs = []
        for v in versions:
            rs = []
            for r in GROUP_VERSIONS[(g, v)]:
                entry = {"resource": r.plural,
                         "responseKind": {"group": g, "version": v, "kind": r.kind},
                         "scope": "Namespaced" if r.namespaced else "Cluster",
                         "singularResource": r.singular, "verbs": ALL_VERBS}
                if r.short_names:
                    entry["shortNames"] = r.short_names
                if r.categories:
                    entry["categories"] = r.categories
                if r.status:
                    entry["subresources"] = [{
                        "subresource": "status",
                        "responseKind": {"group": g, "version": v, "kind": r.kind},
                        "verbs": STATUS_VERBS}]
                rs.append(entry)
            vs.append({"version": v, "resources": rs, "freshness": "Current"})
        meta = {"creationTimestamp": None}
        if g:
            meta["name"] = g
        items.append({"metadata": meta, "versions": vs})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {},
            "items": items}


def openapi_v3_root():
    paths = {}
    for (g, v) in GROUP_VERSIONS:
        rel = f"apis/{g}/{v}" if g else f"api/{v}"
        digest = base64.b16encode(rel.encode()).decode()[:16]
        paths[rel] = {"serverRelativeURL": f"/openapi/v3/{rel}?hash={digest}"}
    return {"paths": paths}


def openapi_v3_gv(group, version):
    """Only what kubectl reads: each kind's PATCH operation, tagged with its GVK, declaring
    the fieldValidation query parameter (so kubectl leaves validation to the server)."""
    paths = {}
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    for r in GROUP_VERSIONS[(group, version)]:
        item = (f"{prefix}/namespaces/{{namespace}}/{r.plural}/{{name}}" if r.namespaced
                else f"{prefix}/{r.plural}/{{name}}")
        paths[item] = {"patch": {
            "operationId": f"patch{r.kind}",
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": r.kind},
            "parameters": [{"name": "fieldValidation", "in": "query",
                            "description": "accepted and ignored by the stand-in API server",
                            "schema": {"type": "string", "uniqueItems": True}}],
            "responses": {"200": {"description": "OK"}}}}
    return {"openapi": "3.0.0",
            "info": {"title": "Kubernetes (stand-in)", "version": f"v{SERVER_MAJOR}.{SERVER_MINOR}.0"},
            "paths": paths, "components": {"schemas": {}}}


def wants_aggregated(accept):
    """The discovery version the Accept header prefers, or None for the legacy documents."""
    for rng in (accept or "").split(","):
        params = [p.strip() for p in rng.split(";")]
        mt, kv = params[0].lower(), {}
        for p in params[1:]:
            if "=" in p:
                k, v = p.split("=", 1)
                kv[k.strip()] = v.strip()
        if mt == "application/json" and kv.get("as") == "APIGroupDiscoveryList" and \
                kv.get("g") == "apidiscovery.k8s.io" and kv.get("v") in ("v2", "v2beta1"):
            return kv["v"]
        if mt in ("application/json", "*/*", "application/*") and "as" not in kv:
            return None
    return None


# ----------------------------------------------------------------------------------------
# HTTP


def parse_bool(value, name):
    if value is None:
        return None
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False", ""):
        return False
    raise bad_request(f'invalid value for {name}: strconv.ParseBool: parsing "{value}": invalid syntax')


def parse_rv(value):
    try:
        n = int(value)
        if n < 0:
            raise ValueError
        return n
    except ValueError:
        raise bad_request(f'invalid resource version "{value}"') from None


class App:
    def __init__(self, args):
        self.token = args.token
        self.bookmark_interval = args.bookmark_interval
        self.verbose = args.verbose
        self.store = Store(args.history, args.state)
        self.requests = deque(maxlen=100000)
        self.requests_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kube-apiserver/1"

    @property
    def app(self) -> App:
        return self.server.app

    def log_message(self, fmt, *args):
        if self.app.verbose:
            sys.stderr.write("%s - [%s] %s\n" % (self.address_string(), self.log_date_time_string(),
                                                 fmt % args))

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_HEAD(self):
        self.dispatch("HEAD")

    def do_OPTIONS(self):
        self.dispatch("OPTIONS")

    # -- plumbing
    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline(65537)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def send_bytes(self, code, body, content_type=MT_JSON, headers=None):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, code, obj, content_type=MT_JSON):
        self.send_bytes(code, json.dumps(obj).encode(), content_type)

    def send_error_status(self, err: ApiError):
        self.send_json(err.code, err.status())

    def dispatch(self, method):
        try:
            body_bytes = self.read_body()
            u = urlsplit(self.path)
            path = u.path
            query = {k: v[0] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            body, body_error = None, None
            if body_bytes:
                try:
                    body = json.loads(body_bytes)
                except ValueError as e:
                    body, body_error = body_bytes.decode("utf-8", "replace"), e
            if path.startswith("/_test/"):
                return self.handle_test(method, path, body, body_error)
            with self.app.requests_lock:
                self.app.requests.append({
                    "method": method, "path": path, "query": u.query, "contentType": ctype,
                    "accept": self.headers.get("Accept"), "userAgent": self.headers.get("User-Agent"),
                    "body": body if method in ("POST", "PUT", "PATCH", "DELETE") else None})
            if self.app.token is not None:
                auth = self.headers.get("Authorization") or ""
                if not hmac.compare_digest(auth.encode(), f"Bearer {self.app.token}".encode()):
                    raise ApiError(401, "Unauthorized", "Unauthorized")
            if method in ("POST", "PUT", "PATCH") or (method == "DELETE" and body_bytes):
                if method == "PATCH":
                    if ctype == MT_APPLY:
                        raise self.unsupported_media(ctype)
                    if ctype not in (MT_MERGE, MT_STRATEGIC, MT_JSONPATCH):
                        raise self.unsupported_media(ctype)
                elif ctype not in (MT_JSON, ""):
                    raise self.unsupported_media(ctype)
                if body_error is not None:
                    raise bad_request(f"the body of the request could not be decoded as JSON: "
                                      f"{body_error}")
            self.route(method, path, query, body, ctype)
        except ApiError as e:
            self.send_error_status(e)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True
        except Exception as e:  # a bug here: answer like the real server's panic handler
            traceback.print_exc(file=sys.stderr)
            try:
                self.send_error_status(ApiError(500, "InternalError",
                                                f"Internal error occurred: {type(e).__name__}: {e}"))
            except OSError:
                self.close_connection = True

    def unsupported_media(self, ctype):
        allowed = ("application/json-patch+json, application/merge-patch+json, "
                   "application/strategic-merge-patch+json") if self.command == "PATCH" \
            else "application/json"
        return ApiError(415, "UnsupportedMediaType",
                        f'the body of the request was in an unknown format ("{ctype}") - accepted '
                        f'media types include: {allowed}')

    # -- test controls
    def handle_test(self, method, path, body, body_error):
        store = self.app.store
        if path == "/_test/healthz" and method in ("GET", "HEAD"):
            return self.send_bytes(200, b"ok", "text/plain; charset=utf-8")
        if path == "/_test/requests":
            if method == "GET":
                with self.app.requests_lock:
                    data = list(self.app.requests)
                return self.send_json(200, data)
            if method == "DELETE":
                with self.app.requests_lock:
                    self.app.requests.clear()
                return self.send_json(200, {"cleared": True})
        if path == "/_test/expire" and method == "POST":
            with store.lock:
                n = store.expire()
                rv = store.rv
            return self.send_json(200, {"expiredWatches": n, "resourceVersion": str(rv)})
        if path == "/_test/watches" and method == "GET":
            with store.lock:
                data = [{"path": w.path, "query": w.query, "resourceVersion": str(w.last_rv)}
                        for w in store.watchers]
            return self.send_json(200, data)
        if path == "/_test/objects" and method == "POST":
            if body_error is not None:
                raise bad_request(f"the body could not be decoded as JSON: {body_error}")
            if isinstance(body, dict) and body.get("kind") == "List" and "items" in body:
                objs, as_list = body["items"], True
            elif isinstance(body, list):
                objs, as_list = body, True
            else:
                objs, as_list = [body], False
            out, created = [], False
            with store.lock:
                for o in objs:
                    stored, was_new = self.test_put_object(o)
                    out.append(stored)
                    created = created or was_new
            code = 201 if created else 200
            if as_list:
                return self.send_json(code, {"kind": "List", "apiVersion": "v1", "metadata": {},
                                             "items": out})
            return self.send_json(code, out[0])
        raise ApiError(404, "NotFound", f"no test control {method} {path}", {})

    def test_put_object(self, o):
        store = self.app.store
        if not isinstance(o, dict) or not o.get("apiVersion") or not o.get("kind"):
            raise bad_request("a test object needs apiVersion and kind")
        res = BY_GVK.get((o["apiVersion"], o["kind"]))
        if res is None:
            raise bad_request(f"unsupported kind {o['apiVersion']}/{o['kind']}")
        obj = decode_object(res, o)
        meta = obj["metadata"]
        if not meta.get("name"):
            raise bad_request("a test object needs metadata.name")
        if res.namespaced and not meta.get("namespace"):
            raise bad_request(f"a test {res.kind} needs metadata.namespace")
        if not res.namespaced:
            meta.pop("namespace", None)
        validate_meta(res, obj)
        ns = meta.get("namespace")
        old = store.get(res, ns, meta["name"])
        ometa = (old or {}).get("metadata", {})
        meta.setdefault("uid", ometa.get("uid") or str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", ometa.get("creationTimestamp") or now_rfc3339())
        if "generation" not in meta and res.generation:
            if old is None:
                meta["generation"] = 1
            else:
                meta["generation"] = ometa.get("generation", 1) + (
                    1 if old.get("spec") != obj.get("spec") else 0)
        meta.pop("managedFields", None)
        stored = store.commit(res, ns, meta["name"], obj, "ADDED" if old is None else "MODIFIED", old)
        return stored, old is None

    # -- routing
    def route(self, method, path, query, body, ctype):
        parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
        if method not in ("GET", "HEAD") and (not parts or parts[0] not in ("api", "apis")):
            raise ApiError(405, "MethodNotAllowed",
                           "the server does not allow this method on the requested resource", {})
        if parts in (["version"],):
            return self.send_json(200, {
                "major": SERVER_MAJOR, "minor": SERVER_MINOR,
                "emulationMajor": SERVER_MAJOR, "emulationMinor": SERVER_MINOR,
                "minCompatibilityMajor": SERVER_MAJOR, "minCompatibilityMinor": str(int(SERVER_MINOR) - 1),
                "gitVersion": f"v{SERVER_MAJOR}.{SERVER_MINOR}.0-fake", "gitCommit": "0" * 40,
                "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.25.0",
                "compiler": "gc", "platform": "linux/amd64"})
        if parts and parts[0] in ("healthz", "livez", "readyz") and len(parts) <= 2:
            return self.send_bytes(200, b"ok", "text/plain; charset=utf-8")
        if parts == ["openapi", "v3"]:
            return self.send_json(200, openapi_v3_root())
        if len(parts) >= 4 and parts[:2] == ["openapi", "v3"]:
            if parts[2] == "api" and len(parts) == 4 and ("", parts[3]) in GROUP_VERSIONS:
                return self.send_json(200, openapi_v3_gv("", parts[3]))
            if parts[2] == "apis" and len(parts) == 5 and (parts[3], parts[4]) in GROUP_VERSIONS:
                return self.send_json(200, openapi_v3_gv(parts[3], parts[4]))
        if parts == ["api"]:
            v = wants_aggregated(self.headers.get("Accept"))
            if v:
                return self.send_json(200, aggregated(True, f"apidiscovery.k8s.io/{v}"),
                                      f"application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList")
            host, port = self.server.server_address[:2]
            return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                        "serverAddressByClientCIDRs": [
                                            {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{host}:{port}"}]})
        if parts == ["apis"]:
            v = wants_aggregated(self.headers.get("Accept"))
            if v:
                return self.send_json(200, aggregated(False, f"apidiscovery.k8s.io/{v}"),
                                      f"application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList")
            return self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": api_groups()})
        if len(parts) == 2 and parts[0] == "apis":
            for g in api_groups():
                if g["name"] == parts[1]:
                    return self.send_json(200, dict({"kind": "APIGroup", "apiVersion": "v1"}, **g))
            raise self.path_not_found()
        if len(parts) >= 2 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise self.path_not_found()
        if (group, version) not in GROUP_VERSIONS:
            raise self.path_not_found()
        if not rest:
            if method not in ("GET", "HEAD"):
                raise self.path_not_found()
            return self.send_json(200, api_resource_list(group, version))

        ns = name = sub = None
        if (rest[0] == "namespaces" and len(rest) >= 3 and (group, version, rest[2]) in BY_KEY
                and BY_KEY[(group, version, rest[2])].namespaced):
            if len(rest) > 5:
                raise self.path_not_found()
            res, ns = BY_KEY[(group, version, rest[2])], rest[1]
            name = rest[3] if len(rest) > 3 else None
            sub = rest[4] if len(rest) > 4 else None
        else:
            res = BY_KEY.get((group, version, rest[0]))
            if res is None or len(rest) > 3 or (res.namespaced and len(rest) > 1):
                raise self.path_not_found()
            name = rest[1] if len(rest) > 1 else None
            sub = rest[2] if len(rest) > 2 else None
        if sub is not None and (sub != "status" or not res.status):
            raise self.path_not_found()
        if name == "":
            raise self.path_not_found()

        if method in ("GET", "HEAD"):
            if name is not None:
                return self.do_get_one(res, ns, name)
            if parse_bool(query.get("watch"), "watch"):
                return self.do_watch(res, ns, query)
            return self.do_list(res, ns, query)
        if method == "POST" and name is None and (ns is not None or not res.namespaced):
            return self.do_create(res, ns, query, body)
        if method == "PUT" and name is not None:
            return self.do_update(res, ns, name, sub, query, body)
        if method == "PATCH" and name is not None:
            return self.do_patch(res, ns, name, sub, query, body, ctype)
        if method == "DELETE" and sub is None:
            if name is not None:
                return self.do_delete(res, ns, name, query, body)
            if ns is not None or not res.namespaced:
                return self.do_delete_collection(res, ns, query, body)
        raise ApiError(405, "MethodNotAllowed",
                       "the server does not allow this method on the requested resource", {})

    def path_not_found(self):
        return ApiError(404, "NotFound", "the server could not find the requested resource", {})

    @staticmethod
    def dry_run(query, body=None):
        values = []
        if "dryRun" in query:
            values.append(query["dryRun"])
        if isinstance(body, dict) and isinstance(body.get("dryRun"), list):
            values += body["dryRun"]
        for v in values:
            if v not in ("All", ""):
                raise bad_request(f'Invalid dry run value: "{v}": valid values are ["All"]')
        return "All" in values

    # -- verbs
    def do_get_one(self, res, ns, name):
        with self.app.store.lock:
            obj = self.app.store.get(res, ns, name)
        if obj is None:
            raise not_found(res, name)
        self.send_json(200, obj)

    def check_list_options(self, query, watch):
        rv = query.get("resourceVersion", "")
        rvm = query.get("resourceVersionMatch", "")
        cont = query.get("continue", "")
        sie = query.get("sendInitialEvents")
        causes = []
        if watch:
            if sie is not None:
                if rvm != "NotOlderThan":
                    causes.append(("resourceVersionMatch",
                                   "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"))
                if parse_bool(sie, "sendInitialEvents") and not parse_bool(
                        query.get("allowWatchBookmarks"), "allowWatchBookmarks"):
                    causes.append(("allowWatchBookmarks",
                                   "sendInitialEvents requires setting allowWatchBookmarks to true"))
            if rvm:
                if sie is None:
                    causes.append(("resourceVersionMatch", "resourceVersionMatch is forbidden for watch "
                                                           "unless sendInitialEvents is provided"))
                if rvm != "NotOlderThan":
                    causes.append(("resourceVersionMatch", f'Unsupported value: "{rvm}": supported '
                                                           f'values: "NotOlderThan"'))
        else:
            if rvm:
                if not rv:
                    causes.append(("resourceVersionMatch",
                                   "resourceVersionMatch is forbidden unless resourceVersion is provided"))
                if cont:
                    causes.append(("resourceVersionMatch",
                                   "resourceVersionMatch is forbidden when continue is provided"))
                if rvm not in ("Exact", "NotOlderThan"):
                    causes.append(("resourceVersionMatch", f'Unsupported value: "{rvm}": supported '
                                                           f'values: "Exact", "NotOlderThan", ""'))
                if rvm == "Exact" and rv == "0":
                    causes.append(("resourceVersionMatch",
                                   'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'))
            if sie is not None:
                causes.append(("sendInitialEvents", "sendInitialEvents is forbidden for list"))
        if causes:
            raise list_options_invalid(causes)
        if not watch and cont and rv not in ("", "0"):
            raise bad_request("specifying resource version is not allowed when using continue")

    def do_list(self, res, ns, query):
        self.check_list_options(query, watch=False)
        pred = make_predicate(res, ns, query.get("labelSelector"), query.get("fieldSelector"))
        try:
            limit = int(query.get("limit") or 0)
        except ValueError:
            raise bad_request(f'invalid limit "{query.get("limit")}"') from None
        cont = query.get("continue", "")
        rv_param, rvm = query.get("resourceVersion", ""), query.get("resourceVersionMatch", "")
        store = self.app.store
        with store.lock:
            if cont:
                try:
                    tok = json.loads(base64.urlsafe_b64decode(cont.encode() + b"==="))
                    snap_id, start = tok["id"], int(tok["start"])
                except Exception:
                    raise bad_request(f"continue key is not valid: {cont!r}") from None
                snap = store.snapshots.get(snap_id)
                if snap is None:
                    raise ApiError(410, "Expired", "The provided continue parameter is too old to "
                                                   "display a consistent list result. You can start a "
                                                   "new list without the continue parameter.", {})
                store.snapshots.move_to_end(snap_id)
                items, list_rv = snap
            else:
                if rv_param not in ("", "0"):
                    n = parse_rv(rv_param)
                    if n > store.rv:
                        raise too_large_rv(n, store.rv)
                    if rvm == "Exact" and n != store.rv:
                        raise ApiError(410, "Expired", f"too old resource version: {n} ({store.rv})", {})
                items, list_rv, start = store.matching(res, pred), str(store.rv), 0
            page = items[start:start + limit] if limit > 0 else items[start:]
            end = start + len(page)
            meta = {"resourceVersion": list_rv}
            if end < len(items):
                if cont:
                    snap_id = tok["id"]
                else:
                    snap_id = uuid.uuid4().hex
                    store.snapshots[snap_id] = (items, list_rv)
                    while len(store.snapshots) > 256:
                        store.snapshots.popitem(last=False)
                meta["continue"] = base64.urlsafe_b64encode(json.dumps(
                    {"rv": list_rv, "id": snap_id, "start": end}).encode()).decode().rstrip("=")
                if not pred.has_selectors:
                    meta["remainingItemCount"] = len(items) - end
        self.send_json(200, {"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": meta,
                             "items": [strip_typemeta(o) for o in page]})

    def do_create(self, res, ns, query, body):
        dry = self.dry_run(query)
        obj = decode_object(res, body)
        meta = obj["metadata"]
        if res.namespaced and meta.get("namespace") not in (None, "", ns):
            raise bad_request("the namespace of the provided object does not match the namespace "
                              "sent on the request")
        if meta.get("resourceVersion"):
            raise ApiError(500, "InternalError", "Internal error occurred: resourceVersion should not "
                                                 "be set on objects to be created",
                           {"causes": [{"message": "resourceVersion should not be set on objects to "
                                                   "be created"}]})
        if not meta.get("name") and not meta.get("generateName"):
            raise invalid(res, "", [("metadata.name", "Required value", "name or generateName is required",
                                     None)])
        store = self.app.store
        with store.lock:
            obj = prepare_new(res, obj, ns)
            validate_meta(res, obj)
            if store.get(res, ns, meta["name"]) is not None:
                raise already_exists(res, meta["name"])
            if dry:
                meta.pop("resourceVersion", None)
                out = obj
            else:
                out = store.commit(res, ns, meta["name"], obj, "ADDED", None)
        self.send_json(201, out)

    def check_preconditions(self, res, name, stored, rv, uid):
        smeta = stored["metadata"]
        if uid and uid != smeta.get("uid"):
            raise conflict(res, name, f"Precondition failed: UID in precondition: {uid}, UID in object "
                                      f"meta: {smeta.get('uid')}")
        if rv and rv != smeta.get("resourceVersion"):
            raise conflict(res, name)

    def write_update(self, res, ns, name, stored, new, status_only, dry):
        """Finishes an update or patch under the store lock; returns the resulting object."""
        store = self.app.store
        meta = new["metadata"]
        if meta.get("name") != name:
            raise bad_request(f"the name of the object ({meta.get('name', '')}) does not match the "
                              f"name on the URL ({name})")
        if res.namespaced and meta.get("namespace") not in (None, "", ns):
            raise bad_request("the namespace of the provided object does not match the namespace "
                              "sent on the request")
        if res.namespaced:
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        out = prepare_update(res, stored, new, status_only)
        validate_meta(res, out)
        if out == stored or dry:
            return out if dry else stored
        return store.commit(res, ns, name, out, "MODIFIED", stored)

    def do_update(self, res, ns, name, sub, query, body):
        dry = self.dry_run(query)
        obj = decode_object(res, body)
        meta = obj["metadata"]
        store = self.app.store
        with store.lock:
            stored = store.get(res, ns, name)
            if stored is None:
                if res.create_on_update and sub is None:
                    if meta.get("name") != name:
                        raise bad_request(f"the name of the object ({meta.get('name', '')}) does not "
                                          f"match the name on the URL ({name})")
                    meta.pop("resourceVersion", None)
                    obj = prepare_new(res, obj, ns)
                    validate_meta(res, obj)
                    if dry:
                        return self.send_json(201, obj)
                    return self.send_json(201, store.commit(res, ns, name, obj, "ADDED", None))
                raise not_found(res, name)
            rv = meta.get("resourceVersion") or ""
            if not rv and not res.unconditional_update:
                raise invalid(res, name, [("metadata.resourceVersion", "Invalid value",
                                           "must be specified for an update", 0)])
            self.check_preconditions(res, name, stored, rv, meta.get("uid"))
            out = self.write_update(res, ns, name, stored, obj, sub == "status", dry)
        self.send_json(200, out)

    def do_patch(self, res, ns, name, sub, query, patch, ctype):
        dry = self.dry_run(query)
        store = self.app.store
        if ctype in (MT_MERGE, MT_STRATEGIC) and not isinstance(patch, dict):
            raise bad_request("json: cannot unmarshal into Go value of type map[string]interface {}")
        with store.lock:
            stored = store.get(res, ns, name)
            if stored is None:
                raise not_found(res, name)
            base = copy.deepcopy(stored)
            try:
                if ctype == MT_MERGE:
                    patched = merge_patch(base, patch)
                elif ctype == MT_STRATEGIC:
                    patched = strategic_merge_patch(base, patch)
                else:
                    patched = json_patch(base, patch)
            except PatchError as e:
                raise ApiError(422, "Invalid", str(e), {}) from None
            if not isinstance(patched, dict):
                raise bad_request("the patched object is not a JSON object")
            obj = decode_object(res, patched)
            meta = obj["metadata"]
            self.check_preconditions(res, name, stored, meta.get("resourceVersion") or "", meta.get("uid"))
            meta["resourceVersion"] = stored["metadata"].get("resourceVersion")
            out = self.write_update(res, ns, name, stored, obj, sub == "status", dry)
        self.send_json(200, out)

    def do_delete(self, res, ns, name, query, body):
        if body is not None and not isinstance(body, dict):
            raise bad_request("the body of a DELETE must be DeleteOptions")
        dry = self.dry_run(query, body)
        pre = (body or {}).get("preconditions") or {}
        store = self.app.store
        with store.lock:
            stored = store.get(res, ns, name)
            if stored is None:
                raise not_found(res, name)
            smeta = stored["metadata"]
            if pre.get("uid") and pre["uid"] != smeta.get("uid"):
                raise conflict(res, name, f"Precondition failed: UID in precondition: {pre['uid']}, UID "
                                          f"in object meta: {smeta.get('uid')}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != smeta.get("resourceVersion"):
                raise conflict(res, name, f"Precondition failed: ResourceVersion in precondition: "
                                          f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                          f"{smeta.get('resourceVersion')}")
            out = stored if dry else store.commit(res, ns, name, None, "DELETED", stored)
        self.send_json(200, out)

    def do_delete_collection(self, res, ns, query, body):
        dry = self.dry_run(query, body)
        pred = make_predicate(res, ns, query.get("labelSelector"), query.get("fieldSelector"))
        store = self.app.store
        with store.lock:
            out = []
            for obj in store.matching(res, pred):
                m = obj["metadata"]
                out.append(obj if dry else store.commit(res, m.get("namespace"), m["name"], None,
                                                        "DELETED", obj))
            rv = str(store.rv)
        self.send_json(200, {"kind": f"{res.kind}List", "apiVersion": res.api_version,
                             "metadata": {"resourceVersion": rv},
                             "items": [strip_typemeta(o) for o in out]})

    # -- watch
    def do_watch(self, res, ns, query):
        self.check_list_options(query, watch=True)
        pred = make_predicate(res, ns, query.get("labelSelector"), query.get("fieldSelector"))
        rv_param = query.get("resourceVersion", "")
        sie = parse_bool(query.get("sendInitialEvents"), "sendInitialEvents")
        bookmarks = bool(parse_bool(query.get("allowWatchBookmarks"), "allowWatchBookmarks"))
        try:
            timeout = float(query.get("timeoutSeconds") or 0)
        except ValueError:
            raise bad_request(f'invalid timeoutSeconds "{query.get("timeoutSeconds")}"') from None
        x = parse_rv(rv_param) if rv_param not in ("", "0") else None
        store = self.app.store
        w = Watcher(res, urlsplit(self.path).path, urlsplit(self.path).query)
        initial, replay, expired = [], [], None
        with store.lock:
            cur = store.rv
            if x is not None and x > cur:
                raise too_large_rv(x, cur)
            if sie is True or (x is None and sie is None):
                initial = store.matching(res, pred)
            elif x is not None:  # sendInitialEvents absent or false: resume after x
                if x < store.history_start_rv:
                    expired = f"too old resource version: {x} ({store.history_start_rv})"
                else:
                    replay = [e for e in store.history if e.rv > x and e.key == res.key]
            w.last_rv = cur
            if expired is None:
                store.watchers.add(w)
        try:
            self.send_response(200)
            self.send_header("Content-Type", MT_JSON)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache, private")
            self.send_header("Audit-Id", str(uuid.uuid4()))
            self.end_headers()
            if expired is not None:
                self.send_event({"type": "ERROR", "object": expired_status(expired)})
                self.end_chunks()
                return
            for obj in initial:
                self.send_event({"type": "ADDED", "object": obj})
            for e in replay:
                ev = watch_event(e, pred)
                if ev is not None:
                    self.send_event(ev)
            if sie is True:
                self.send_event(bookmark(res, cur, initial_end=True))
            self.watch_loop(w, pred, bookmarks, timeout)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout, OSError):
            self.close_connection = True
        finally:
            with store.lock:
                store.watchers.discard(w)

    def watch_loop(self, w, pred, bookmarks, timeout):
        store = self.app.store
        interval = max(self.app.bookmark_interval, 0.01)
        start = time.monotonic()
        deadline = start + timeout if timeout > 0 else None
        next_bm = start + interval if bookmarks else None
        check_peer = True
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                self.end_chunks()
                return
            if next_bm is not None and now >= next_bm:
                with store.lock:
                    rv = store.rv if w.q.empty() else w.last_rv
                    w.last_rv = max(w.last_rv, rv)
                self.send_event(bookmark(w.res, rv))
                next_bm = now + interval
            wait = 0.25
            if deadline is not None:
                wait = min(wait, max(deadline - now, 0))
            if next_bm is not None:
                wait = min(wait, max(next_bm - now, 0))
            try:
                item = w.q.get(timeout=max(wait, 0.001))
            except queue.Empty:
                if check_peer:
                    gone, check_peer = self.peer_state()
                    if gone:
                        self.close_connection = True
                        return
                continue
            if item == EXPIRE:
                # what the real server sends when etcd compacts under an open watch
                self.send_event({"type": "ERROR", "object": expired_status(
                    "The resourceVersion for the provided watch is too old.")})
                self.end_chunks()
                return
            w.last_rv = item.rv
            ev = watch_event(item, pred)
            if ev is not None:
                self.send_event(ev)

    def peer_state(self):
        """(gone, keep_checking): whether the client closed its side of the connection."""
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
            if not r:
                return False, True
            data = self.connection.recv(1, socket.MSG_PEEK)
            if data == b"":
                return True, False
            return False, False  # the client sent something; stop peeking (it would stay readable)
        except (OSError, ValueError):
            return True, False

    def send_event(self, ev):
        data = json.dumps(ev, separators=(",", ":")).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_chunks(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def too_large_rv(x, cur):
    return ApiError(504, "Timeout", f"Too large resource version: {x}, current: {cur}",
                    {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                     "retryAfterSeconds": 1})


def bookmark(res, rv, initial_end=False):
    meta = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"type": "BOOKMARK", "object": {"kind": res.kind, "apiVersion": res.api_version, "metadata": meta}}


def watch_event(e, pred):
    """The event a watch with predicate pred sees for stored event e, or None."""
    new_m = pred(e.obj)
    if e.type == "ADDED":
        return {"type": "ADDED", "object": e.obj} if new_m else None
    if e.type == "DELETED":
        return {"type": "DELETED", "object": e.obj} if new_m else None
    old_m = e.old is not None and pred(e.old)
    if new_m and old_m:
        return {"type": "MODIFIED", "object": e.obj}
    if new_m:
        return {"type": "ADDED", "object": e.obj}
    if old_m:
        return {"type": "DELETED", "object": with_rv(e.old, e.rv)}
    return None


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 128


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--state")
    p.add_argument("--token")
    p.add_argument("--bookmark-interval", type=float, default=1.0)
    p.add_argument("--history", type=int, default=10000)
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.history < 0:
        p.error("--history must be >= 0")
    app = App(args)
    with app.store.lock:
        app.store.load_or_seed()
        app.store.persist()
    server = Server(("127.0.0.1", args.port), Handler)
    server.app = app

    def stop(signum, frame):
        sys.stdout.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    main()
