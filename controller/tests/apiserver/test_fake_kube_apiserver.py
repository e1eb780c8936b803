"""Self-test of fake_kube_apiserver.py: the real kubectl (client-go) and plain HTTP against it.

    python3 -m unittest controller/tests/apiserver/test_fake_kube_apiserver.py -v

kubectl comes from `bash scripts/setup helm` (.tools/bin/kubectl); without it these tests
fail, they are not skipped.

client-go sends a kubeconfig's credentials only over TLS (kubernetes/kubectl#744), so
kubectl cannot present a token to a plain-HTTP server: the kubectl tests run against a
server started without --token, and the token is checked with plain HTTP (the Rust kube
client does send its bearer token over plain HTTP) and by showing kubectl refused.
"""

import base64
import http.client
import json
import os
import queue
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVER = HERE / "fake_kube_apiserver.py"
REPO = HERE.parents[2]
KUBECTL = REPO / ".tools" / "bin" / "kubectl"

sys.path.insert(0, str(HERE))
import fake_kube_apiserver as fake  # noqa: E402  (the pure functions are tested directly too)


class ServerProcess:
    """fake_kube_apiserver.py as a subprocess; `port` 0 picks a free one."""

    def __init__(self, workdir, *args, port=0):
        self.workdir = workdir
        self.args = list(args)
        self.stderr_path = os.path.join(workdir, f"server-{time.monotonic_ns()}.log")
        self.stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER), "--port", str(port), *self.args],
            stdout=subprocess.PIPE, stderr=self.stderr, stdin=subprocess.DEVNULL)
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        line = b""
        deadline = time.monotonic() + 10
        while not line.endswith(b"\n"):
            if time.monotonic() > deadline or self.proc.poll() is not None and not sel.select(0):
                self.stop()
                raise AssertionError(f"server did not start: {line!r} {self.log()}")
            if sel.select(timeout=0.1):
                b = os.read(self.proc.stdout.fileno(), 1)
                if not b:
                    self.stop()
                    raise AssertionError(f"server exited: {line!r} {self.log()}")
                line += b
        sel.close()
        text = line.decode().strip()
        prefix = "listening on http://127.0.0.1:"
        assert text.startswith(prefix), text
        self.port = int(text[len(prefix):])
        self.base = f"http://127.0.0.1:{self.port}"

    def log(self):
        self.stderr.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")[-4000:]

    def stop(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=10)
        self.proc.stdout.close()
        self.stderr.close()


def request(port, method, path, body=None, ctype="application/json", token=None, headers=None,
            timeout=10, conn=None):
    """One request; returns (status, headers, parsed JSON or text). Reuses `conn` if given."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    hdrs = dict(headers or {})
    data = None
    if body is not None:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        if isinstance(data, str):
            data = data.encode()
        hdrs["Content-Type"] = ctype
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=data, headers=hdrs)
    resp = conn.getresponse()
    raw = resp.read()
    if own:
        conn.close()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode()
    return resp.status, resp.headers, parsed


class Watch:
    """A watch request whose JSON lines are read with a deadline."""

    def __init__(self, port, path, token=None, timeout=10):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        hdrs = {"Authorization": f"Bearer {token}"} if token else {}
        self.conn.request("GET", path, headers=hdrs)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = self.resp.headers

    def next(self):
        """The next event, or None at the end of the stream (a socket timeout raises)."""
        line = self.resp.readline()
        if not line:
            return None
        return json.loads(line)

    def until(self, pred, limit=200):
        seen = []
        for _ in range(limit):
            ev = self.next()
            if ev is None:
                raise AssertionError(f"stream ended before the awaited event; saw {seen}")
            seen.append(ev)
            if pred(ev):
                return ev, seen
        raise AssertionError(f"awaited event not seen in {limit}: {seen}")

    def close(self):
        self.conn.close()


def qs(**kw):
    return "?" + urllib.parse.urlencode(kw)


def wait_for(pred, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def configmap(ns, name, labels=None, data=None):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {}}, "data": data or {}}


DEPLOYMENT_YAML = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {ns}
  labels: {{app: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata:
      labels: {{app: {name}}}
      annotations: {{secretsinit.io/inject: "true", secretsinit.io/reload: "true"}}
    spec:
      containers:
      - name: app
        image: registry.example/app:1
        env:
        - {{name: DB_PASSWORD, value: "awssm:prod/db#password"}}
"""


class Base(unittest.TestCase):
    server: ServerProcess
    tmp: str

    @classmethod
    def start(cls, *args):
        if not (KUBECTL.is_file() and os.access(KUBECTL, os.X_OK)):
            raise AssertionError(f"{KUBECTL} is missing: run `bash scripts/setup helm` first")
        cls.tmp = tempfile.mkdtemp(prefix="fake-kube-test-")
        cls.server = ServerProcess(cls.tmp, *args)
        cls.port = cls.server.port

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def req(self, method, path, body=None, **kw):
        return request(self.port, method, path, body, **kw)

    def ok(self, method, path, body=None, expect=(200, 201), **kw):
        status, _, obj = self.req(method, path, body, **kw)
        self.assertIn(status, expect, f"{method} {path}: {status} {obj}")
        return obj

    def rv(self):
        """The current resourceVersion, from a LIST."""
        return int(self.ok("GET", "/api/v1/namespaces")["metadata"]["resourceVersion"])

    def requests_log(self):
        return self.ok("GET", "/_test/requests")


class KubectlTests(Base):
    """The real kubectl (client-go) against the stand-in."""

    @classmethod
    def setUpClass(cls):
        cls.start("--bookmark-interval", "0.2")
        cls.kubeconfig = os.path.join(cls.tmp, "kubeconfig")
        with open(cls.kubeconfig, "w") as f:
            f.write(textwrap.dedent(f"""\
                apiVersion: v1
                kind: Config
                clusters:
                - name: fake
                  cluster: {{server: "http://127.0.0.1:{cls.port}"}}
                users:
                - name: test
                  user: {{}}
                contexts:
                - name: fake
                  context: {{cluster: fake, user: test, namespace: default}}
                current-context: fake
                """))

    def kubectl(self, *args, input=None, check=True, timeout=30, kubeconfig=None):
        env = {"HOME": self.tmp, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        p = subprocess.run(
            [str(KUBECTL), "--kubeconfig", kubeconfig or self.kubeconfig,
             "--cache-dir", os.path.join(self.tmp, "cache"), *args],
            input=input, capture_output=True, text=True, timeout=timeout, env=env)
        if check and p.returncode != 0:
            self.fail(f"kubectl {' '.join(args)} failed ({p.returncode}): {p.stderr}{p.stdout}")
        return p

    def create_deployment(self, ns, name):
        self.kubectl("create", "-f", "-", input=DEPLOYMENT_YAML.format(ns=ns, name=name))

    def get_json(self, *args):
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def test_create_from_yaml_and_get_all_namespaces(self):
        p = self.kubectl("create", "-f", "-", input=DEPLOYMENT_YAML.format(ns="k-create", name="web"))
        self.assertIn("deployment.apps/web created", p.stdout)
        lst = self.get_json("deploy", "-A")
        items = {(i["metadata"]["namespace"], i["metadata"]["name"]): i for i in lst["items"]}
        d = items[("k-create", "web")]
        self.assertEqual(d["kind"], "Deployment")  # kubectl fills kind in for its List
        self.assertEqual(d["metadata"]["generation"], 1)
        self.assertRegex(d["metadata"]["uid"], r"^[0-9a-f-]{36}$")
        self.assertRegex(d["metadata"]["creationTimestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(d["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
                         "awssm:prod/db#password")
        # the server's own list: items without kind/apiVersion, list resourceVersion set
        raw = self.ok("GET", "/apis/apps/v1/deployments")
        self.assertEqual((raw["kind"], raw["apiVersion"]), ("DeploymentList", "apps/v1"))
        self.assertNotIn("kind", raw["items"][0])
        self.assertTrue(raw["metadata"]["resourceVersion"].isdigit())
        # create again: AlreadyExists
        p = self.kubectl("create", "-f", "-", input=DEPLOYMENT_YAML.format(ns="k-create", name="web"),
                         check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('(AlreadyExists)', p.stderr)
        self.assertIn('deployments.apps "web" already exists', p.stderr)

    def test_get_missing_is_not_found(self):
        # kubectl, given a 404, looks the namespace up and names it when it is missing too
        p = self.kubectl("get", "deploy", "nope", "-n", "k-missing", check=False)
        self.assertIn('Error from server (NotFound): namespaces "k-missing" not found', p.stderr)
        # (`kubectl create namespace NAME` would send protobuf, which the stand-in refuses: 415)
        self.kubectl("create", "-f", "-", input='{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"k-missing"}}')
        p = self.kubectl("get", "deploy", "nope", "-n", "k-missing", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('Error from server (NotFound): deployments.apps "nope" not found', p.stderr)
        status, _, st = self.req("GET", "/apis/apps/v1/namespaces/k-missing/deployments/nope")
        self.assertEqual(status, 404)
        self.assertEqual(st, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": 'deployments.apps "nope" not found', "reason": "NotFound",
                              "details": {"name": "nope", "group": "apps", "kind": "deployments"},
                              "code": 404})
        status, _, st = self.req("GET", "/api/v1/namespaces/k-missing/pods/nope")
        self.assertEqual(st["details"], {"name": "nope", "kind": "pods"})

    def test_rollout_restart_bumps_generation_metadata_change_does_not(self):
        self.create_deployment("k-restart", "api")
        self.ok("DELETE", "/_test/requests")
        p = self.kubectl("rollout", "restart", "deployment/api", "-n", "k-restart")
        self.assertIn("deployment.apps/api restarted", p.stdout)
        d = self.get_json("deploy", "api", "-n", "k-restart")
        self.assertEqual(d["metadata"]["generation"], 2)
        ann = d["spec"]["template"]["metadata"]["annotations"]
        self.assertIn("kubectl.kubernetes.io/restartedAt", ann)
        self.assertEqual(ann["secretsinit.io/inject"], "true")  # merged, not replaced
        patches = [r for r in self.requests_log() if r["method"] == "PATCH"]
        self.assertEqual(len(patches), 1)
        self.assertEqual(patches[0]["contentType"], "application/strategic-merge-patch+json")
        self.assertEqual(list(patches[0]["body"]), ["spec"])
        self.assertIn("kubectl.kubernetes.io/restartedAt",
                      patches[0]["body"]["spec"]["template"]["metadata"]["annotations"])
        # metadata-only change (what `kubectl annotate deploy/x secretsinit.io/reload=paused` does)
        rv_before = int(d["metadata"]["resourceVersion"])
        self.kubectl("annotate", "deploy", "api", "-n", "k-restart", "secretsinit.io/reload=paused")
        d = self.get_json("deploy", "api", "-n", "k-restart")
        self.assertEqual(d["metadata"]["generation"], 2)
        self.assertEqual(d["metadata"]["annotations"]["secretsinit.io/reload"], "paused")
        self.assertGreater(int(d["metadata"]["resourceVersion"]), rv_before)

    def test_patch_merge_and_json(self):
        self.create_deployment("k-patch", "web")
        self.kubectl("patch", "deploy", "web", "-n", "k-patch", "--type", "merge",
                     "-p", '{"metadata":{"labels":{"team":"db"}},"spec":{"replicas":3}}')
        d = self.get_json("deploy", "web", "-n", "k-patch")
        self.assertEqual(d["metadata"]["labels"], {"app": "web", "team": "db"})
        self.assertEqual(d["spec"]["replicas"], 3)
        self.assertEqual(d["metadata"]["generation"], 2)
        # merge patch null deletes
        self.kubectl("patch", "deploy", "web", "-n", "k-patch", "--type", "merge",
                     "-p", '{"metadata":{"labels":{"team":null}}}')
        self.assertEqual(self.get_json("deploy", "web", "-n", "k-patch")["metadata"]["labels"],
                         {"app": "web"})
        self.kubectl("patch", "deploy", "web", "-n", "k-patch", "--type", "json", "-p", json.dumps([
            {"op": "test", "path": "/spec/replicas", "value": 3},
            {"op": "replace", "path": "/spec/replicas", "value": 5},
            {"op": "add", "path": "/spec/template/metadata/annotations/secretsinit.io~1restartedAt",
             "value": "2025-01-01T00:00:00Z"},
            {"op": "remove", "path": "/spec/template/metadata/annotations/secretsinit.io~1reload"}]))
        d = self.get_json("deploy", "web", "-n", "k-patch")
        self.assertEqual(d["spec"]["replicas"], 5)
        self.assertEqual(d["spec"]["template"]["metadata"]["annotations"],
                         {"secretsinit.io/inject": "true", "secretsinit.io/restartedAt": "2025-01-01T00:00:00Z"})
        self.assertEqual(d["metadata"]["generation"], 3)
        # a failing test op changes nothing
        p = self.kubectl("patch", "deploy", "web", "-n", "k-patch", "--type", "json", "-p",
                         '[{"op":"test","path":"/spec/replicas","value":9},'
                         '{"op":"replace","path":"/spec/replicas","value":9}]', check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("test failed", p.stderr)
        self.assertEqual(self.get_json("deploy", "web", "-n", "k-patch")["spec"]["replicas"], 5)
        # default kubectl patch type is strategic
        self.kubectl("patch", "deploy", "web", "-n", "k-patch", "-p", '{"spec":{"paused":true}}')
        self.assertTrue(self.get_json("deploy", "web", "-n", "k-patch")["spec"]["paused"])

    def test_label_selectors_on_pods(self):
        docs = []
        for ns, name, labels in [("k-pods-a", "injected-1", {"secretsinit.io/injected": "env", "app": "a"}),
                                 ("k-pods-b", "injected-2", {"secretsinit.io/injected": "files", "app": "b"}),
                                 ("k-pods-a", "plain", {"app": "a"})]:
            docs.append(json.dumps({"apiVersion": "v1", "kind": "Pod",
                                    "metadata": {"name": name, "namespace": ns, "labels": labels},
                                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))
        self.kubectl("create", "-f", "-", input="\n---\n".join(docs))

        def names(*sel):
            return sorted(self.kubectl("get", "pods", "-A", "-o", "name", *sel).stdout.split())

        def ns_names(*sel):
            lst = self.get_json("pods", "-A", *sel)
            return sorted(f'{i["metadata"]["namespace"]}/{i["metadata"]["name"]}' for i in lst["items"]
                          if i["metadata"]["namespace"].startswith("k-pods"))

        self.assertEqual(ns_names("-l", "secretsinit.io/injected"),
                         ["k-pods-a/injected-1", "k-pods-b/injected-2"])
        self.assertEqual(names("-l", "secretsinit.io/injected"), ["pod/injected-1", "pod/injected-2"])
        self.assertEqual(ns_names("-l", "!secretsinit.io/injected"), ["k-pods-a/plain"])
        self.assertEqual(ns_names("-l", "secretsinit.io/injected in (files,other)"), ["k-pods-b/injected-2"])
        self.assertEqual(ns_names("-l", "secretsinit.io/injected notin (files),app=a"),
                         ["k-pods-a/injected-1", "k-pods-a/plain"])
        self.assertEqual(ns_names("-l", "app!=a"), ["k-pods-b/injected-2"])
        self.assertEqual(ns_names("--field-selector", "metadata.namespace=k-pods-a,metadata.name!=plain"),
                         ["k-pods-a/injected-1"])
        self.assertEqual(ns_names("--field-selector", "status.phase=Pending", "-l", "app=b"),
                         ["k-pods-b/injected-2"])  # status reset to Pending on create
        p = self.kubectl("get", "pods", "-A", "--field-selector", "spec.bogus=x", check=False)
        self.assertIn("field label not supported: spec.bogus", p.stderr)

    def test_watch_sees_a_change(self):
        self.create_deployment("k-watch", "web")
        env = {"HOME": self.tmp, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        proc = subprocess.Popen(
            [str(KUBECTL), "--kubeconfig", self.kubeconfig, "--cache-dir", os.path.join(self.tmp, "cache"),
             "get", "deploy", "-n", "k-watch", "-w", "--output-watch-events", "--request-timeout=20s"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()

        def expect(prefix, timeout=10):
            deadline = time.monotonic() + timeout
            seen = []
            while time.monotonic() < deadline:
                try:
                    line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
                except queue.Empty:
                    break
                seen.append(line)
                if line.split()[:2] == prefix:
                    return
            self.fail(f"kubectl -w never printed {prefix}: {seen}")

        try:
            expect(["ADDED", "web"])
            # kubectl's watch is open when the server lists it; then change the object
            wait_for(lambda: any("k-watch" in w["path"] for w in self.ok("GET", "/_test/watches")),
                     what="kubectl's watch")
            self.kubectl("label", "deploy", "web", "-n", "k-watch", "rotated=yes")
            expect(["MODIFIED", "web"])
            self.kubectl("delete", "deploy", "web", "-n", "k-watch")
            expect(["DELETED", "web"])
        finally:
            proc.kill()
            proc.wait(timeout=10)
            proc.stdout.close()
            proc.stderr.close()
        watches = [r for r in self.requests_log() if r["path"] == "/apis/apps/v1/namespaces/k-watch/deployments"
                   and "watch=true" in r["query"]]
        self.assertEqual(len(watches), 1)
        self.assertIn("resourceVersion=", watches[0]["query"])
        # the watch thread ends when kubectl has gone
        wait_for(lambda: not any("k-watch" in w["path"] for w in self.ok("GET", "/_test/watches")),
                 what="the watch to end after kubectl was killed")

    def test_lease_create_and_stale_update_conflicts(self):
        lease = textwrap.dedent("""\
            apiVersion: coordination.k8s.io/v1
            kind: Lease
            metadata: {name: secrets-init-controller, namespace: k-lease}
            spec: {holderIdentity: replica-a, leaseDurationSeconds: 15, leaseTransitions: 0}
            """)
        self.kubectl("create", "-f", "-", input=lease)
        got = self.get_json("lease", "secrets-init-controller", "-n", "k-lease")
        rv = got["metadata"]["resourceVersion"]
        self.assertEqual(got["spec"]["holderIdentity"], "replica-a")
        # replica b takes it with the current resourceVersion
        got["spec"]["holderIdentity"] = "replica-b"
        self.kubectl("replace", "-f", "-", input=json.dumps(got))
        now = self.get_json("lease", "secrets-init-controller", "-n", "k-lease")
        self.assertEqual(now["spec"]["holderIdentity"], "replica-b")
        self.assertGreater(int(now["metadata"]["resourceVersion"]), int(rv))
        # replica a, still holding the old resourceVersion, is refused
        got["spec"]["holderIdentity"] = "replica-a"
        got["metadata"]["resourceVersion"] = rv
        p = self.kubectl("replace", "-f", "-", input=json.dumps(got), check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("Error from server (Conflict)", p.stderr)
        self.assertIn('Operation cannot be fulfilled on leases.coordination.k8s.io "secrets-init-controller": '
                      'the object has been modified; please apply your changes to the latest version and '
                      'try again', p.stderr)
        self.assertEqual(self.get_json("lease", "secrets-init-controller", "-n", "k-lease")
                         ["spec"]["holderIdentity"], "replica-b")
        # a lease update without resourceVersion is refused (AllowUnconditionalUpdate is false)
        del got["metadata"]["resourceVersion"]
        status, _, st = self.req("PUT", "/apis/coordination.k8s.io/v1/namespaces/k-lease/leases/"
                                        "secrets-init-controller", got)
        self.assertEqual((status, st["reason"]), (422, "Invalid"))
        self.assertIn("metadata.resourceVersion", st["message"])

    def test_kubectl_delete_and_events_api(self):
        ev = {"apiVersion": "events.k8s.io/v1", "kind": "Event",
              "metadata": {"name": "web.rotated", "namespace": "k-events"},
              "eventTime": "2025-01-01T00:00:00.000000Z", "reason": "SecretRotated", "type": "Normal",
              "action": "Restart", "reportingController": "secretsinit.io/controller",
              "reportingInstance": "c-1", "note": "awssm:prod/db AWSCURRENT=v2",
              "regarding": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "k-events",
                            "name": "web"}}
        self.kubectl("create", "-f", "-", input=json.dumps(ev))
        got = self.get_json("events.v1.events.k8s.io", "-n", "k-events")
        self.assertEqual([i["note"] for i in got["items"]], ["awssm:prod/db AWSCURRENT=v2"])
        self.kubectl("delete", "events.v1.events.k8s.io", "web.rotated", "-n", "k-events")
        self.assertEqual(self.get_json("events.v1.events.k8s.io", "-n", "k-events")["items"], [])

    def test_api_resources_from_discovery(self):
        out = self.kubectl("api-resources", "--no-headers").stdout
        rows = {tuple(line.split()) for line in out.splitlines()}
        for row in [("deployments", "deploy", "apps/v1", "true", "Deployment"),
                    ("statefulsets", "sts", "apps/v1", "true", "StatefulSet"),
                    ("daemonsets", "ds", "apps/v1", "true", "DaemonSet"),
                    ("pods", "po", "v1", "true", "Pod"),
                    ("namespaces", "ns", "v1", "false", "Namespace"),
                    ("leases", "coordination.k8s.io/v1", "true", "Lease"),
                    ("events", "ev", "events.k8s.io/v1", "true", "Event")]:
            self.assertIn(row, rows)
        # kubectl asked for aggregated discovery and got it
        disc = [r for r in self.requests_log() if r["path"] == "/apis"]
        self.assertTrue(disc and "as=APIGroupDiscoveryList" in disc[-1]["accept"])


class HttpTests(Base):
    """Plain HTTP: the wire behaviour the Rust kube client relies on."""

    @classmethod
    def setUpClass(cls):
        cls.start("--bookmark-interval", "0.2")

    def test_discovery_documents(self):
        api = self.ok("GET", "/api")
        self.assertEqual((api["kind"], api["versions"]), ("APIVersions", ["v1"]))
        groups = self.ok("GET", "/apis")
        self.assertEqual(groups["kind"], "APIGroupList")
        self.assertEqual({g["name"]: g["preferredVersion"]["groupVersion"] for g in groups["groups"]},
                         {"apps": "apps/v1", "coordination.k8s.io": "coordination.k8s.io/v1",
                          "events.k8s.io": "events.k8s.io/v1"})
        want = {
            "/api/v1": {"pods": ("Pod", True), "configmaps": ("ConfigMap", True), "secrets": ("Secret", True),
                        "namespaces": ("Namespace", False), "events": ("Event", True)},
            "/apis/apps/v1": {"deployments": ("Deployment", True), "statefulsets": ("StatefulSet", True),
                              "daemonsets": ("DaemonSet", True)},
            "/apis/coordination.k8s.io/v1": {"leases": ("Lease", True)},
            "/apis/events.k8s.io/v1": {"events": ("Event", True)},
        }
        for path, resources in want.items():
            lst = self.ok("GET", path)
            self.assertEqual(lst["kind"], "APIResourceList")
            self.assertEqual(lst["groupVersion"], path.split("/", 2)[2] if path.startswith("/apis") else "v1")
            by_name = {r["name"]: r for r in lst["resources"]}
            for name, (kind, namespaced) in resources.items():
                self.assertEqual((by_name[name]["kind"], by_name[name]["namespaced"]), (kind, namespaced))
                self.assertEqual(set(by_name[name]["verbs"]), {"create", "delete", "deletecollection", "get",
                                                               "list", "patch", "update", "watch"})
        self.assertIn("deployments/status", {r["name"] for r in self.ok("GET", "/apis/apps/v1")["resources"]})
        version = self.ok("GET", "/version")
        self.assertEqual((version["major"], version["minor"]), ("1", "35"))
        status, headers, agg = self.req("GET", "/apis", headers={
            "Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"})
        self.assertEqual(headers["Content-Type"], "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
        self.assertEqual(agg["kind"], "APIGroupDiscoveryList")
        apps = [g for g in agg["items"] if g["metadata"].get("name") == "apps"][0]
        dep = [r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments"][0]
        self.assertEqual((dep["scope"], dep["responseKind"]["kind"]), ("Namespaced", "Deployment"))
        self.assertEqual(self.req("GET", "/apis/nope/v1")[0], 404)

    def test_pagination_is_one_snapshot(self):
        for i in range(7):
            self.ok("POST", "/api/v1/namespaces/h-page/configmaps", configmap("h-page", f"cm-{i}"))
        names, token, rvs, pages = [], None, set(), 0
        while True:
            q = {"limit": "3"}
            if token:
                q["continue"] = token
            lst = self.ok("GET", "/api/v1/namespaces/h-page/configmaps" + qs(**q))
            pages += 1
            names += [i["metadata"]["name"] for i in lst["items"]]
            rvs.add(lst["metadata"]["resourceVersion"])
            token = lst["metadata"].get("continue")
            if pages == 1:
                self.assertEqual(lst["metadata"]["remainingItemCount"], 4)
                # a write between pages is not in this list (one consistent snapshot)
                self.ok("POST", "/api/v1/namespaces/h-page/configmaps", configmap("h-page", "cm-late"))
            if not token:
                break
        self.assertEqual(names, [f"cm-{i}" for i in range(7)])
        self.assertEqual((pages, len(rvs)), (3, 1))
        lst = self.ok("GET", "/api/v1/namespaces/h-page/configmaps")
        self.assertEqual(len(lst["items"]), 8)
        base = "/api/v1/namespaces/h-page/configmaps"
        status, _, st = self.req("GET", base + "?limit=2&continue=not-a-token")
        self.assertEqual((status, st["reason"]), (400, "BadRequest"))
        forgotten = base64.urlsafe_b64encode(json.dumps({"rv": "1", "id": "gone", "start": 1}).encode()).decode()
        status, _, st = self.req("GET", base + "?limit=2&continue=" + forgotten)
        self.assertEqual((status, st["reason"]), (410, "Expired"))
        # the real server's list option checks
        token = self.ok("GET", base + "?limit=2")["metadata"]["continue"]
        status, _, st = self.req("GET", base + "?limit=2&resourceVersion=5&continue=" + token)
        self.assertEqual((status, st["message"]), (400, "specifying resource version is not allowed when using continue"))
        status, _, st = self.req("GET", base + "?resourceVersionMatch=NotOlderThan")
        self.assertEqual((status, st["reason"]), (422, "Invalid"))
        self.assertIn("resourceVersionMatch is forbidden unless resourceVersion is provided", st["message"])
        # what kube's default watcher lists with: limit=500, no resourceVersion
        lst = self.ok("GET", base + "?&limit=500")
        self.assertNotIn("continue", lst["metadata"])

    def test_bookmarks_arrive_and_never_run_ahead(self):
        self.ok("POST", "/api/v1/namespaces/h-bm/configmaps", configmap("h-bm", "a"))
        rv = self.rv()
        w = Watch(self.port, "/api/v1/namespaces/h-bm/configmaps" + qs(watch="true", resourceVersion=rv,
                                                                      allowWatchBookmarks="true"))
        try:
            self.assertEqual(w.headers["Transfer-Encoding"], "chunked")
            self.assertEqual(w.headers["Content-Type"], "application/json")
            ev, _ = w.until(lambda e: e["type"] == "BOOKMARK")
            self.assertEqual(ev["object"]["kind"], "ConfigMap")
            self.assertEqual(ev["object"]["apiVersion"], "v1")
            self.assertGreaterEqual(int(ev["object"]["metadata"]["resourceVersion"]), rv)
            # writes elsewhere move the bookmark on; a write here comes before any bookmark past it
            self.ok("POST", "/api/v1/namespaces/h-other/configmaps", configmap("h-other", "b"))
            after_other = self.rv()
            ev, _ = w.until(lambda e: e["type"] == "BOOKMARK"
                            and int(e["object"]["metadata"]["resourceVersion"]) >= after_other)
            self.ok("PATCH", "/api/v1/namespaces/h-bm/configmaps/a", {"data": {"k": "v"}},
                    ctype="application/merge-patch+json")
            mod_rv = self.rv()
            ev, seen = w.until(lambda e: e["type"] != "BOOKMARK"
                               or int(e["object"]["metadata"]["resourceVersion"]) >= mod_rv)
            self.assertEqual(ev["type"], "MODIFIED", seen)
            self.assertEqual(ev["object"]["metadata"]["resourceVersion"], str(mod_rv))
        finally:
            w.close()
        # without allowWatchBookmarks: none
        w = Watch(self.port, "/api/v1/namespaces/h-bm/configmaps" + qs(watch="1", resourceVersion=self.rv(),
                                                                      timeoutSeconds=1))
        try:
            self.assertIsNone(w.next())  # the stream ends at the timeout, no bookmark before
        finally:
            w.close()

    def test_watch_timeout_ends_stream_and_connection_is_reused(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            t0 = time.monotonic()
            conn.request("GET", "/api/v1/namespaces/h-to/configmaps?watch=true&timeoutSeconds=1")
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.read(), b"")  # no objects: no events, then the end of the stream
            self.assertGreaterEqual(time.monotonic() - t0, 0.9)
            # the same connection (keep-alive) serves the next requests
            status, _, lst = request(self.port, "GET", "/api/v1/namespaces/h-to/configmaps", conn=conn)
            self.assertEqual((status, lst["kind"]), (200, "ConfigMapList"))
            status, _, _ = request(self.port, "POST", "/api/v1/namespaces/h-to/configmaps",
                                   configmap("h-to", "x"), conn=conn)
            self.assertEqual(status, 201)
        finally:
            conn.close()

    def test_watch_resumes_from_history_and_410_after_expire(self):
        self.ok("POST", "/api/v1/namespaces/h-exp/configmaps", configmap("h-exp", "a"))
        rv0 = self.rv()
        self.ok("PATCH", "/api/v1/namespaces/h-exp/configmaps/a", {"data": {"n": "1"}},
                ctype="application/merge-patch+json")
        self.ok("POST", "/api/v1/namespaces/h-exp/configmaps", configmap("h-exp", "b"))
        self.ok("DELETE", "/api/v1/namespaces/h-exp/configmaps/a")
        # resume: every event after rv0, in order, then live
        w = Watch(self.port, "/api/v1/namespaces/h-exp/configmaps" + qs(watch="true", resourceVersion=rv0))
        got = [w.next() for _ in range(3)]
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in got],
                         [("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")])
        rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in got]
        self.assertEqual(rvs, sorted(rvs))
        self.assertEqual(got[2]["object"]["data"], {"n": "1"})  # DELETED carries the last state
        self.assertEqual(got[2]["object"]["kind"], "ConfigMap")
        wait_for(lambda: any(x["path"].endswith("/h-exp/configmaps") for x in self.ok("GET", "/_test/watches")),
                 what="watch registered")
        # expire: the open watch gets one ERROR 410 and ends
        exp = self.ok("POST", "/_test/expire")
        self.assertGreaterEqual(exp["expiredWatches"], 1)
        ev = w.next()
        self.assertEqual(ev["type"], "ERROR")
        st = ev["object"]
        self.assertEqual((st["kind"], st["apiVersion"], st["status"], st["code"], st["reason"]),
                         ("Status", "v1", "Failure", 410, "Expired"))
        self.assertEqual(st["message"], "The resourceVersion for the provided watch is too old.")
        self.assertIsNone(w.next())
        w.close()
        # resuming from an old resourceVersion: 410 too, as the first and only line
        w = Watch(self.port, "/api/v1/namespaces/h-exp/configmaps" + qs(watch="true", resourceVersion=rv0))
        self.assertEqual(w.status, 200)
        ev = w.next()
        self.assertEqual((ev["type"], ev["object"]["code"]), ("ERROR", 410))
        self.assertEqual(ev["object"]["message"], f"too old resource version: {rv0} ({exp['resourceVersion']})")
        self.assertIsNone(w.next())
        w.close()
        # relist and watch from the list's resourceVersion: works
        lst = self.ok("GET", "/api/v1/namespaces/h-exp/configmaps")
        w = Watch(self.port, "/api/v1/namespaces/h-exp/configmaps" + qs(
            watch="true", resourceVersion=lst["metadata"]["resourceVersion"]))
        try:
            self.ok("PATCH", "/api/v1/namespaces/h-exp/configmaps/b", {"data": {"n": "2"}},
                    ctype="application/merge-patch+json")
            ev = w.next()
            self.assertEqual((ev["type"], ev["object"]["data"]), ("MODIFIED", {"n": "2"}))
        finally:
            w.close()
        # a resourceVersion from the future is a 504, as the real server answers after its wait
        status, _, st = self.req("GET", "/api/v1/namespaces/h-exp/configmaps?watch=true&resourceVersion=999999")
        self.assertEqual((status, st["reason"]), (504, "Timeout"))

    def test_rv_zero_and_absent_send_synthetic_added(self):
        self.ok("POST", "/api/v1/namespaces/h-zero/configmaps", configmap("h-zero", "a"))
        self.ok("POST", "/api/v1/namespaces/h-zero/configmaps", configmap("h-zero", "b"))
        for q in (qs(watch="true", resourceVersion="0", timeoutSeconds=1), qs(watch="true", timeoutSeconds=1)):
            w = Watch(self.port, "/api/v1/namespaces/h-zero/configmaps" + q)
            events = []
            while (ev := w.next()) is not None:
                events.append(ev)
            w.close()
            self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in events],
                             [("ADDED", "a"), ("ADDED", "b")])

    def test_send_initial_events_streaming_list(self):
        self.ok("POST", "/api/v1/namespaces/h-sie/configmaps", configmap("h-sie", "a"))
        # exactly the query kube::runtime::watcher's streaming_lists() sends
        path = ("/api/v1/namespaces/h-sie/configmaps?&watch=true&timeoutSeconds=290&allowWatchBookmarks=true"
                "&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=0")
        w = Watch(self.port, path)
        try:
            first = w.next()
            self.assertEqual((first["type"], first["object"]["metadata"]["name"]), ("ADDED", "a"))
            bm = w.next()
            self.assertEqual(bm["type"], "BOOKMARK")
            self.assertEqual(bm["object"]["metadata"]["annotations"], {"k8s.io/initial-events-end": "true"})
            self.assertGreaterEqual(int(bm["object"]["metadata"]["resourceVersion"]),
                                    int(first["object"]["metadata"]["resourceVersion"]))
            self.ok("POST", "/api/v1/namespaces/h-sie/configmaps", configmap("h-sie", "b"))
            ev, _ = w.until(lambda e: e["type"] != "BOOKMARK")
            self.assertEqual((ev["type"], ev["object"]["metadata"]["name"]), ("ADDED", "b"))
        finally:
            w.close()
        # the real server's checks
        status, _, st = self.req("GET", "/api/v1/namespaces/h-sie/configmaps?watch=true&sendInitialEvents=true"
                                        "&allowWatchBookmarks=true")
        self.assertEqual((status, st["reason"]), (422, "Invalid"))
        self.assertIn("sendInitialEvents requires setting resourceVersionMatch to NotOlderThan", st["message"])

    def test_label_selector_watch_sends_added_and_deleted_on_transitions(self):
        path = "/api/v1/namespaces/h-sel/pods"
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "p", "namespace": "h-sel", "labels": {"app": "x"}},
               "spec": {"containers": [{"name": "c", "image": "i"}]}}
        self.ok("POST", path, pod)
        w = Watch(self.port, path + qs(watch="true", labelSelector="secretsinit.io/injected",
                                       resourceVersion=self.rv()))
        try:
            merge = "application/merge-patch+json"
            self.ok("PATCH", path + "/p", {"metadata": {"labels": {"secretsinit.io/injected": "env"}}}, ctype=merge)
            ev = w.next()
            self.assertEqual((ev["type"], ev["object"]["metadata"]["labels"]["secretsinit.io/injected"]),
                             ("ADDED", "env"))
            self.ok("PATCH", path + "/p/status", {"status": {"phase": "Running"}}, ctype=merge)
            ev = w.next()
            self.assertEqual((ev["type"], ev["object"]["status"]["phase"]), ("MODIFIED", "Running"))
            rv_before = self.rv()
            self.ok("PATCH", path + "/p", {"metadata": {"labels": {"secretsinit.io/injected": None}}}, ctype=merge)
            ev = w.next()
            self.assertEqual(ev["type"], "DELETED")
            # the previous content (it matched), with the resourceVersion of the change
            self.assertEqual(ev["object"]["metadata"]["labels"]["secretsinit.io/injected"], "env")
            self.assertEqual(int(ev["object"]["metadata"]["resourceVersion"]), rv_before + 1)
            # changes to a non-matching object are not sent
            self.ok("PATCH", path + "/p", {"metadata": {"annotations": {"a": "b"}}}, ctype=merge)
            self.ok("POST", path, dict(pod, metadata={"name": "q", "namespace": "h-sel",
                                                      "labels": {"secretsinit.io/injected": "files"}}))
            ev = w.next()
            self.assertEqual((ev["type"], ev["object"]["metadata"]["name"]), ("ADDED", "q"))
        finally:
            w.close()

    def test_cluster_wide_watch_sees_every_namespace(self):
        rv = self.rv()
        w = Watch(self.port, "/apis/apps/v1/statefulsets" + qs(watch="true", resourceVersion=rv))
        try:
            for ns in ("h-cw-1", "h-cw-2"):
                self.ok("POST", f"/apis/apps/v1/namespaces/{ns}/statefulsets",
                        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
                         "spec": {"serviceName": "db"}})
            got = [w.next() for _ in range(2)]
            self.assertEqual([(e["type"], e["object"]["metadata"]["namespace"]) for e in got],
                             [("ADDED", "h-cw-1"), ("ADDED", "h-cw-2")])
            self.assertEqual(got[0]["object"]["kind"], "StatefulSet")
        finally:
            w.close()

    def test_update_conflicts_generation_status_and_no_op(self):
        path = "/apis/apps/v1/namespaces/h-upd/daemonsets"
        ds = self.ok("POST", path, {"apiVersion": "apps/v1", "kind": "DaemonSet",
                                    "metadata": {"name": "agent"}, "spec": {"template": {"metadata": {}}},
                                    "status": {"numberReady": 9}})
        self.assertEqual(ds["metadata"]["generation"], 1)
        self.assertEqual(ds["status"], {})  # reset on create
        # PUT with the current resourceVersion works; with a stale one: 409 Conflict
        ds["spec"]["minReadySeconds"] = 5
        ds2 = self.ok("PUT", path + "/agent", ds)
        self.assertEqual(ds2["metadata"]["generation"], 2)
        status, _, st = self.req("PUT", path + "/agent", ds)
        self.assertEqual(status, 409)
        self.assertEqual((st["reason"], st["details"]), ("Conflict", {"name": "agent", "group": "apps",
                                                                       "kind": "daemonsets"}))
        # a merge patch carrying a stale resourceVersion: 409 as well
        status, _, st = self.req("PATCH", path + "/agent", {"metadata": {"resourceVersion": ds["metadata"]
                                 ["resourceVersion"]}, "spec": {"minReadySeconds": 6}},
                                 ctype="application/merge-patch+json")
        self.assertEqual((status, st["reason"]), (409, "Conflict"))
        # status writes only status and never bumps generation; object writes keep status
        ds3 = self.ok("PUT", path + "/agent/status", dict(ds2, status={"numberReady": 3},
                                                           spec={"changed": True}))
        self.assertEqual((ds3["status"], ds3["spec"], ds3["metadata"]["generation"]),
                         ({"numberReady": 3}, ds2["spec"], 2))
        ds4 = self.ok("PATCH", path + "/agent", {"status": {"numberReady": 0}, "metadata": {"labels": {"l": "v"}}},
                      ctype="application/merge-patch+json")
        self.assertEqual((ds4["status"], ds4["metadata"]["generation"]), ({"numberReady": 3}, 2))
        # a client cannot set generation
        ds5 = self.ok("PATCH", path + "/agent", {"metadata": {"generation": 40}},
                      ctype="application/merge-patch+json")
        self.assertEqual(ds5["metadata"]["generation"], 2)
        self.assertEqual(ds5["metadata"]["resourceVersion"], ds4["metadata"]["resourceVersion"])  # no-op
        # a no-op patch keeps the resourceVersion and emits nothing
        rv = self.rv()
        same = self.ok("PATCH", path + "/agent", {"metadata": {"labels": {"l": "v"}}},
                       ctype="application/merge-patch+json")
        self.assertEqual(same["metadata"]["resourceVersion"], ds4["metadata"]["resourceVersion"])
        self.assertEqual(self.rv(), rv)
        # the uid and creationTimestamp are kept; a renaming patch is refused
        self.assertEqual(ds5["metadata"]["uid"], ds["metadata"]["uid"])
        status, _, st = self.req("PATCH", path + "/agent", {"metadata": {"name": "other"}},
                                 ctype="application/merge-patch+json")
        self.assertEqual(status, 400)
        # PUT of a missing object: 404 (events would be created)
        status, _, st = self.req("PUT", path + "/missing", dict(ds, metadata={"name": "missing"}))
        self.assertEqual((status, st["reason"]), (404, "NotFound"))
        # create with a resourceVersion: refused, as on the real server
        status, _, st = self.req("POST", path, dict(ds, metadata={"name": "x", "resourceVersion": "3"}))
        self.assertEqual(status, 500)
        self.assertIn("resourceVersion should not be set on objects to be created", st["message"])

    def test_strategic_patch_lists_replaced_and_directives(self):
        path = "/apis/apps/v1/namespaces/h-smp/deployments"
        self.ok("POST", path, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"},
                               "spec": {"template": {"metadata": {"annotations": {"a": "1", "b": "2"}},
                                                     "spec": {"containers": [{"name": "x", "image": "1"},
                                                                             {"name": "y", "image": "1"}]}}}})
        smp = "application/strategic-merge-patch+json"
        d = self.ok("PATCH", path + "/w", {"spec": {"template": {
            "metadata": {"annotations": {"a": None, "c": "3"}},
            "spec": {"containers": [{"name": "y", "image": "2"}]}}}}, ctype=smp)
        self.assertEqual(d["spec"]["template"]["metadata"]["annotations"], {"b": "2", "c": "3"})
        # SIMPLIFICATION: the list is replaced wholesale (a real server merges by name)
        self.assertEqual(d["spec"]["template"]["spec"]["containers"], [{"name": "y", "image": "2"}])
        d = self.ok("PATCH", path + "/w", {"spec": {"template": {"metadata": {"$patch": "replace", "labels": {"l": "1"}}}}},
                    ctype=smp)
        self.assertEqual(d["spec"]["template"]["metadata"], {"labels": {"l": "1"}})
        status, _, st = self.req("PATCH", path + "/w", {"spec": {"template": {"spec": {"containers": [
            {"name": "y", "$patch": "delete"}]}}}}, ctype=smp)
        self.assertEqual(status, 400)
        status, _, st = self.req("PATCH", path + "/w", "metadata: {}", ctype="application/apply-patch+yaml")
        self.assertEqual((status, st["reason"]), (415, "UnsupportedMediaType"))

    def test_patch_functions(self):
        self.assertEqual(fake.merge_patch({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"b": None, "d": 3}, "l": [2]}),
                         {"a": {"c": 2, "d": 3}, "l": [2]})
        self.assertEqual(fake.merge_patch({"a": 1}, {"a": {"b": None}}), {"a": {}})
        doc = {"a": [1, 2], "b": {"c": "d"}, "e~/f": 1}
        out = fake.json_patch(doc, [{"op": "add", "path": "/a/1", "value": 9},
                                    {"op": "add", "path": "/a/-", "value": 7},
                                    {"op": "move", "from": "/b/c", "path": "/moved"},
                                    {"op": "copy", "from": "/moved", "path": "/copied"},
                                    {"op": "test", "path": "/e~0~1f", "value": 1},
                                    {"op": "remove", "path": "/e~0~1f"}])
        self.assertEqual(out, {"a": [1, 9, 2, 7], "b": {}, "moved": "d", "copied": "d"})
        for bad in ([{"op": "remove", "path": "/nope"}], [{"op": "replace", "path": "/x/y", "value": 1}],
                    [{"op": "test", "path": "/a", "value": True}]):
            with self.assertRaises(fake.PatchError):
                fake.json_patch({"a": 1}, bad)
        self.assertEqual(fake.strategic_merge_patch({"m": {"a": 1, "b": 2}, "f": ["x", "y"]},
                                                    {"m": {"$retainKeys": ["b", "c"], "c": 3},
                                                     "$deleteFromPrimitiveList/f": ["x"],
                                                     "$setElementOrder/f": ["y"]}),
                         {"m": {"b": 2, "c": 3}, "f": ["y"]})
        self.assertEqual(fake.strategic_merge_patch({"m": {"a": 1}, "k": 1}, {"m": {"$patch": "delete"}}), {"k": 1})

    def test_label_selector_parsing(self):
        reqs = fake.parse_label_selector("a, !b, c in (x, y), d notin (z), e=1, f==2, g!=3, h>4")
        labels = {"a": "", "c": "y", "e": "1", "f": "2", "g": "4", "h": "5"}
        self.assertTrue(fake.labels_match(reqs, labels))
        for key, val in [("b", "1"), ("c", "q"), ("d", "z"), ("e", "2"), ("g", "3"), ("h", "4")]:
            self.assertFalse(fake.labels_match(reqs, dict(labels, **{key: val})), key)
        self.assertFalse(fake.labels_match(reqs, {k: v for k, v in labels.items() if k != "a"}))
        self.assertTrue(fake.labels_match(fake.parse_label_selector("x!=1,y notin (2)"), {}))
        for bad in ("a in ()", "=x", "a b", "a=(", "-bad=1"):
            with self.assertRaises(fake.ApiError, msg=bad):
                fake.parse_label_selector(bad)
        status, _, st = self.req("GET", "/api/v1/pods?labelSelector=" + urllib.parse.quote("a b"))
        self.assertEqual((status, st["reason"]), (400, "BadRequest"))

    def test_dry_run_generate_name_validation_and_delete(self):
        path = "/api/v1/namespaces/h-misc/configmaps"
        rv = self.rv()
        cm = self.ok("POST", path + "?dryRun=All", configmap("h-misc", "dry"))
        self.assertNotIn("resourceVersion", cm["metadata"])
        self.assertIn("uid", cm["metadata"])
        self.assertEqual(self.req("GET", path + "/dry")[0], 404)
        self.assertEqual(self.rv(), rv)
        gen = self.ok("POST", path, {"metadata": {"generateName": "cfg-"}, "data": {}})
        self.assertRegex(gen["metadata"]["name"], r"^cfg-[a-z0-9]{5}$")
        self.assertEqual((gen["kind"], gen["apiVersion"]), ("ConfigMap", "v1"))
        self.assertNotIn("generation", gen["metadata"])
        status, _, st = self.req("POST", path, configmap("h-misc", "Bad_Name"))
        self.assertEqual((status, st["reason"], st["details"]["causes"][0]["field"]), (422, "Invalid", "metadata.name"))
        status, _, st = self.req("POST", path, configmap("h-misc", "ok", labels={"bad key": "v"}))
        self.assertEqual((status, st["reason"]), (422, "Invalid"))
        status, _, st = self.req("POST", path, dict(configmap("h-misc", "ok2"), kind="Secret"))
        self.assertEqual(status, 400)
        status, _, st = self.req("POST", "/api/v1/namespaces/h-misc/configmaps", configmap("other-ns", "x"))
        self.assertEqual(status, 400)
        status, _, st = self.req("POST", "/api/v1/configmaps", configmap("h-misc", "x"))
        self.assertEqual(status, 405)
        status, _, st = self.req("POST", path, "{not json")
        self.assertEqual(status, 400)
        status, _, st = self.req("POST", path, "x: 1", ctype="application/yaml")
        self.assertEqual(status, 415)
        # delete: 200 with the object, preconditions checked, then 404
        name = gen["metadata"]["name"]
        status, _, st = self.req("DELETE", path + "/" + name, {"preconditions": {"uid": "other"}})
        self.assertEqual((status, st["reason"]), (409, "Conflict"))
        gone = self.ok("DELETE", path + "/" + name, {"kind": "DeleteOptions", "apiVersion": "v1",
                                                     "propagationPolicy": "Background"})
        self.assertEqual(gone["metadata"]["name"], name)
        self.assertGreater(int(gone["metadata"]["resourceVersion"]), int(gen["metadata"]["resourceVersion"]))
        self.assertEqual(self.req("DELETE", path + "/" + name)[0], 404)
        # deletecollection by selector
        for n in ("s1", "s2", "keep"):
            self.ok("POST", path, configmap("h-misc", n, labels={"sweep": "yes" if n != "keep" else "no"}))
        lst = self.ok("DELETE", path + "?labelSelector=sweep%3Dyes")
        self.assertEqual(sorted(i["metadata"]["name"] for i in lst["items"]), ["s1", "s2"])
        self.assertEqual([i["metadata"]["name"] for i in self.ok("GET", path)["items"]], ["keep"])

    def test_test_objects_control_and_request_log(self):
        self.ok("DELETE", "/_test/requests")
        rv = self.rv()
        w = Watch(self.port, "/api/v1/pods" + qs(watch="true", resourceVersion=rv,
                                                  labelSelector="secretsinit.io/injected"))
        try:
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "crash", "namespace": "h-ctl", "labels": {"secretsinit.io/injected": "env"}},
                   "spec": {"containers": [{"name": "app", "image": "i"}]},
                   "status": {"phase": "Running", "containerStatuses": [{
                       "name": "app", "restartCount": 1, "ready": False,
                       "lastState": {"terminated": {"exitCode": 1, "message":
                                     "secrets-init: awssm:prod/db: ResourceNotFoundException"}}}]}}
            status, _, created = self.req("POST", "/_test/objects", pod)
            self.assertEqual(status, 201)
            self.assertEqual(created["status"], pod["status"])  # kept as given
            ev = w.next()
            self.assertEqual((ev["type"], ev["object"]["status"]["containerStatuses"][0]["restartCount"]), ("ADDED", 1))
            pod["status"]["containerStatuses"][0]["restartCount"] = 2
            status, _, replaced = self.req("POST", "/_test/objects", pod)
            self.assertEqual(status, 200)
            self.assertEqual(replaced["metadata"]["uid"], created["metadata"]["uid"])
            ev = w.next()
            self.assertEqual((ev["type"], ev["object"]["status"]["containerStatuses"][0]["restartCount"]),
                             ("MODIFIED", 2))
            lst = self.ok("POST", "/_test/objects", {"kind": "List", "items": [
                configmap("h-ctl", "one"), {"apiVersion": "apps/v1", "kind": "Deployment",
                                            "metadata": {"name": "d", "namespace": "h-ctl"}, "spec": {}}]})
            self.assertEqual([i["kind"] for i in lst["items"]], ["ConfigMap", "Deployment"])
            self.assertEqual(lst["items"][1]["metadata"]["generation"], 1)
            status, _, st = self.req("POST", "/_test/objects", {"apiVersion": "v1", "kind": "Pod",
                                                                "metadata": {"name": "no-namespace"}})
            self.assertEqual(status, 400)
        finally:
            w.close()
        self.ok("PATCH", "/api/v1/namespaces/h-ctl/pods/crash", {"metadata": {"labels": {"x": "y"}}},
                ctype="application/merge-patch+json")
        log = self.requests_log()
        self.assertFalse([r for r in log if r["path"].startswith("/_test/")])
        patch = [r for r in log if r["method"] == "PATCH"][-1]
        self.assertEqual((patch["path"], patch["contentType"], patch["body"]),
                         ("/api/v1/namespaces/h-ctl/pods/crash", "application/merge-patch+json",
                          {"metadata": {"labels": {"x": "y"}}}))
        watch = [r for r in log if "watch=true" in r["query"]][0]
        self.assertIn("labelSelector=secretsinit.io%2Finjected", watch["query"])
        self.ok("DELETE", "/_test/requests")
        self.assertEqual(self.requests_log(), [])
        self.assertEqual(self.req("GET", "/_test/healthz")[2], "ok")

    def test_disconnected_watch_ends_its_thread(self):
        w = Watch(self.port, "/apis/apps/v1/namespaces/h-disc/deployments?watch=true&allowWatchBookmarks=false")
        wait_for(lambda: any(x["path"].endswith("/h-disc/deployments") for x in self.ok("GET", "/_test/watches")),
                 what="watch registered")
        w.close()
        wait_for(lambda: not any(x["path"].endswith("/h-disc/deployments") for x in self.ok("GET", "/_test/watches")),
                 timeout=5, what="the watch to notice the client left")
        # many watches at once do not block anything else
        ws = [Watch(self.port, "/api/v1/namespaces/h-disc/configmaps?watch=true") for _ in range(20)]
        try:
            self.ok("POST", "/api/v1/namespaces/h-disc/configmaps", configmap("h-disc", "c"))
            for x in ws:
                self.assertEqual(x.next()["type"], "ADDED")
        finally:
            for x in ws:
                x.close()


class TokenRestartHistoryTests(Base):
    """A fresh server per test: --token, --state and a restart on the same port, --history."""

    TOKEN = "s3cret-token"

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="fake-kube-test-")
        self.state = os.path.join(self.tmp, "state.json")
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            if s.proc.poll() is None:
                s.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @classmethod
    def tearDownClass(cls):
        pass

    def launch(self, *args, port=0):
        if not (KUBECTL.is_file() and os.access(KUBECTL, os.X_OK)):
            raise AssertionError(f"{KUBECTL} is missing: run `bash scripts/setup helm` first")
        s = ServerProcess(self.tmp, "--token", self.TOKEN, "--state", self.state, *args, port=port)
        self.servers.append(s)
        self.port = s.port
        return s

    def req(self, method, path, body=None, **kw):
        kw.setdefault("token", self.TOKEN)
        return request(self.port, method, path, body, **kw)

    def test_token_is_required(self):
        self.launch()
        status, _, st = request(self.port, "GET", "/api/v1/namespaces")
        self.assertEqual((status, st), (401, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                              "status": "Failure", "message": "Unauthorized",
                                              "reason": "Unauthorized", "code": 401}))
        self.assertEqual(request(self.port, "GET", "/api", token="wrong")[0], 401)
        self.assertEqual(request(self.port, "GET", "/api/v1/namespaces", token=self.TOKEN)[0], 200)
        self.assertEqual(request(self.port, "GET", "/_test/healthz")[0], 200)
        self.assertEqual(request(self.port, "GET", "/_test/requests")[0], 200)
        # kubectl with that token in its kubeconfig: client-go does not send credentials over
        # plain HTTP, so it is refused (which is why KubectlTests' server has no --token)
        kc = os.path.join(self.tmp, "kubeconfig")
        with open(kc, "w") as f:
            json.dump({"apiVersion": "v1", "kind": "Config",
                       "clusters": [{"name": "f", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
                       "users": [{"name": "u", "user": {"token": self.TOKEN}}],
                       "contexts": [{"name": "c", "context": {"cluster": "f", "user": "u"}}],
                       "current-context": "c"}, f)
        p = subprocess.run([str(KUBECTL), "--kubeconfig", kc, "--cache-dir", os.path.join(self.tmp, "cache"),
                            "get", "ns"], capture_output=True, text=True, timeout=30,
                           env={"HOME": self.tmp, "PATH": os.environ.get("PATH", "")})
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("provide credentials", p.stderr)

    def test_restart_on_same_port_keeps_objects_and_resource_version(self):
        first = self.launch()
        lease = self.ok("POST", "/apis/coordination.k8s.io/v1/namespaces/r/leases",
                        {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                         "metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}})
        dep = self.ok("POST", "/apis/apps/v1/namespaces/r/deployments",
                      {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 1}})
        dep = self.ok("PATCH", "/apis/apps/v1/namespaces/r/deployments/d", {"spec": {"replicas": 2}},
                      ctype="application/merge-patch+json")
        before = self.ok("GET", "/apis/apps/v1/deployments")
        rv_before = int(before["metadata"]["resourceVersion"])
        with open(self.state) as f:
            self.assertEqual(json.load(f)["resourceVersion"], str(rv_before))
        w = Watch(self.port, "/apis/apps/v1/deployments" + qs(watch="true", resourceVersion=rv_before),
                  token=self.TOKEN)
        first.stop(signal.SIGKILL)
        # the client's open watch sees its connection end (kube's watcher then retries)
        try:
            ended = w.next() is None
        except (http.client.HTTPException, OSError):
            ended = True
        self.assertTrue(ended)
        w.close()
        second = self.launch(port=first.port)
        self.assertEqual(second.port, first.port)
        after = self.ok("GET", "/apis/apps/v1/deployments")
        self.assertEqual(after, before)
        got = self.ok("GET", "/apis/coordination.k8s.io/v1/namespaces/r/leases/l")
        self.assertEqual(got, lease)
        self.assertEqual(self.ok("GET", "/apis/apps/v1/namespaces/r/deployments/d"), dep)
        # the counter goes on; a watch resumes from the last resourceVersion it saw
        w = Watch(self.port, "/apis/apps/v1/deployments" + qs(watch="true", resourceVersion=rv_before),
                  token=self.TOKEN)
        try:
            upd = self.ok("PUT", "/apis/coordination.k8s.io/v1/namespaces/r/leases/l",
                          dict(got, spec={"holderIdentity": "b"}))
            self.assertEqual(int(upd["metadata"]["resourceVersion"]), rv_before + 1)
            d2 = self.ok("PATCH", "/apis/apps/v1/namespaces/r/deployments/d", {"spec": {"replicas": 3}},
                         ctype="application/merge-patch+json")
            ev = w.next()
            self.assertEqual((ev["type"], ev["object"]["spec"]["replicas"]), ("MODIFIED", 3))
            self.assertEqual(ev["object"]["metadata"]["resourceVersion"], d2["metadata"]["resourceVersion"])
            self.assertEqual(d2["metadata"]["generation"], 3)
        finally:
            w.close()
        # a stale lease update still conflicts after the restart
        status, _, st = self.req("PUT", "/apis/coordination.k8s.io/v1/namespaces/r/leases/l", got)
        self.assertEqual((status, st["reason"]), (409, "Conflict"))
        # history is not persisted: a watch from before the restart's resourceVersion gets 410
        w = Watch(self.port, "/apis/apps/v1/deployments" + qs(watch="true", resourceVersion=rv_before - 1),
                  token=self.TOKEN)
        ev = w.next()
        self.assertEqual((ev["type"], ev["object"]["code"]), ("ERROR", 410))
        w.close()

    def test_history_limit_gives_410(self):
        self.launch("--history", "3")
        path = "/api/v1/namespaces/hist/configmaps"
        self.ok("POST", path, configmap("hist", "c"))
        start = int(self.ok("GET", path)["metadata"]["resourceVersion"])
        for i in range(5):
            self.ok("PATCH", path + "/c", {"data": {"i": str(i)}}, ctype="application/merge-patch+json")
        w = Watch(self.port, path + qs(watch="true", resourceVersion=start), token=self.TOKEN)
        ev = w.next()
        self.assertEqual((ev["type"], ev["object"]["message"]),
                         ("ERROR", f"too old resource version: {start} ({start + 2})"))
        w.close()
        w = Watch(self.port, path + qs(watch="true", resourceVersion=start + 2), token=self.TOKEN)
        got = [w.next() for _ in range(3)]
        self.assertEqual([e["object"]["data"]["i"] for e in got], ["2", "3", "4"])
        w.close()


if __name__ == "__main__":
    unittest.main()
