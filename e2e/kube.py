"""Playing the API server and the kubelet for scripts/test-e2e.

The API server's part: wrap a Pod in an AdmissionReview v1, POST it to the webhook's
/mutate, check the answer and apply the returned JSONPatch (RFC 6902, `jsonpatch`).

The kubelet's part, for what `podman kube play` (podman 4.3) does not do itself:
- `$(VAR)` expansion in env values, command and args (Kubernetes' own rules:
  `$$` -> `$`, `$(VAR)` -> the value when VAR is defined, otherwise left as written);
- the termination-message file: a file bind-mounted at `terminationMessagePath`
  (default /dev/termination-log), read back after the container ended;
- `image` volumes (the ImageVolume feature): podman 4.3 kube play only knows hostPath,
  configMap, emptyDir and persistentVolumeClaim volumes, so an `image` volume is
  replaced by a read-only hostPath holding the image's extracted root filesystem,
  which is what the kubelet mounts.

Nothing here prints a secret value: failures name variables and checks, and the caller
prints the app's own logs only when a case fails.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field

import jsonpatch
import yaml

TERMINATION_LOG = "/dev/termination-log"


class E2EError(Exception):
    """A step of the harness itself failed (not an assertion about the product)."""


def run(cmd: list[str], *, check: bool = True, timeout: float = 120, input_bytes: bytes | None = None) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, input=input_bytes, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise E2EError(f"`{' '.join(cmd)}` did not finish within {timeout}s") from e
    if check and proc.returncode != 0:
        raise E2EError(
            f"`{' '.join(cmd)}` exited {proc.returncode}:\n"
            f"{proc.stderr.decode(errors='replace').strip()}"
        )
    return proc


# ---------------------------------------------------------------- API server part


def admission_review(pod: dict, namespace: str) -> dict:
    uid = str(uuid.uuid4())
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
            "name": pod["metadata"]["name"],
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "e2e", "groups": ["system:authenticated"]},
            "object": pod,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


@dataclass
class Admission:
    allowed: bool
    message: str
    warnings: list[str]
    patch: list[dict] | None
    pod: dict | None  # the pod after the patch (None when denied)


def admit(webhook_url: str, pod: dict, namespace: str = "e2e") -> Admission:
    review = admission_review(pod, namespace)
    body = json.dumps(review).encode()
    req = urllib.request.Request(
        webhook_url.rstrip("/") + "/mutate",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    # Development mode serves an in-memory self-signed certificate.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            answer = json.load(resp)
    except urllib.error.HTTPError as e:
        raise E2EError(f"/mutate answered HTTP {e.code}: {e.read().decode(errors='replace')}") from e
    except urllib.error.URLError as e:
        raise E2EError(f"/mutate unreachable at {webhook_url}: {e.reason}") from e
    response = answer.get("response") or {}
    if answer.get("apiVersion") != "admission.k8s.io/v1" or answer.get("kind") != "AdmissionReview":
        raise E2EError(f"/mutate answer is not an AdmissionReview v1: {json.dumps(answer)[:300]}")
    if response.get("uid") != review["request"]["uid"]:
        raise E2EError("/mutate answer's uid does not match the request's")
    allowed = bool(response.get("allowed"))
    message = (response.get("status") or {}).get("message", "")
    warnings = response.get("warnings") or []
    if not allowed:
        return Admission(False, message, warnings, None, None)
    patch = None
    mutated = json.loads(json.dumps(pod))
    if response.get("patch"):
        if response.get("patchType") != "JSONPatch":
            raise E2EError(f"/mutate patchType is {response.get('patchType')!r}, not JSONPatch")
        raw = response["patch"]
        # The admission API documents `patch` as base64 text (Go's []byte in JSON).
        if not isinstance(raw, str):
            raise E2EError(f"/mutate patch is not base64 text but {type(raw).__name__} (the admission API wants base64)")
        patch_bytes = base64.b64decode(raw, validate=True)
        patch = json.loads(patch_bytes)
        mutated = jsonpatch.apply_patch(mutated, patch)
    return Admission(True, message, warnings, patch, mutated)


# ---------------------------------------------------------------- kubelet part


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion (third_party/forked/golang/expansion)."""
    out = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "$" and i + 1 < n:
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                close = text.find(")", i + 2)
                if close != -1:
                    name = text[i + 2 : close]
                    out.append(env[name] if name in env else f"$({name})")
                    i = close + 1
                    continue
                out.append("$(")
                i += 2
                continue
            out.append("$" + nxt)
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


@dataclass
class Objects:
    """ConfigMaps and Secrets the pod refers to (name -> key -> value)."""

    configmaps: dict[str, dict[str, str]] = field(default_factory=dict)
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)


def container_env(container: dict, objects: Objects) -> dict[str, str]:
    """The environment the kubelet computes for a container (no service links)."""
    env: dict[str, str] = {}
    for src in container.get("envFrom") or []:
        prefix = src.get("prefix", "")
        if "configMapRef" in src:
            data = objects.configmaps[src["configMapRef"]["name"]]
        else:
            data = objects.secrets[src["secretRef"]["name"]]
        for k, v in data.items():
            env[prefix + k] = v
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = expand(var["value"], env)
        elif "valueFrom" in var:
            vf = var["valueFrom"]
            if "configMapKeyRef" in vf:
                ref = vf["configMapKeyRef"]
                env[var["name"]] = objects.configmaps[ref["name"]][ref["key"]]
            elif "secretKeyRef" in vf:
                ref = vf["secretKeyRef"]
                env[var["name"]] = objects.secrets[ref["name"]][ref["key"]]
        else:
            env[var["name"]] = ""
    return env


def kubeletize(pod: dict, objects: Objects, out_dir: str, rootfs_for_image) -> tuple[dict, dict[str, dict[str, list[str]]]]:
    """What the kubelet would do with the (mutated) pod that podman kube play does not.

    Returns a new pod: env values and command/args expanded, a termination-log file
    mounted per container, `image` volumes replaced by read-only hostPaths, exec probes
    taken out; and those probes' commands (container -> probe kind -> argv), expanded
    as the kubelet expands them (static env values only), to be run with `exec_probe`."""
    pod = json.loads(json.dumps(pod))
    probes: dict[str, dict[str, list[str]]] = {}
    spec = pod["spec"]
    volumes = spec.setdefault("volumes", [])
    for vol in volumes:
        if "image" in vol:
            ref = vol.pop("image")["reference"]
            vol["hostPath"] = {"path": rootfs_for_image(ref), "type": "Directory"}
    for kind in ("initContainers", "containers"):
        for c in spec.get(kind) or []:
            env = container_env(c, objects)
            for var in c.get("env") or []:
                if "value" in var:
                    var["value"] = env[var["name"]]
            for key in ("command", "args"):
                if c.get(key):
                    c[key] = [expand(a, env) for a in c[key]]
            static = {v["name"]: v["value"] for v in c.get("env") or [] if "value" in v}
            for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
                probe = c.pop(kind, None)
                if probe and "exec" in probe:
                    cmd = [expand(a, static) for a in probe["exec"]["command"]]
                    probes.setdefault(c["name"], {})[kind] = cmd
            path = c.get("terminationMessagePath", TERMINATION_LOG)
            host = os.path.join(out_dir, f"termination-{c['name']}")
            with open(host, "w"):
                pass
            os.chmod(host, 0o666)
            vname = f"termination-{c['name']}"
            volumes.append({"name": vname, "hostPath": {"path": host, "type": "File"}})
            c.setdefault("volumeMounts", []).append({"name": vname, "mountPath": path})
    return pod, probes


def extract_rootfs(ref: str, dest: str) -> str:
    """The root filesystem of image `ref` (pulled from its registry), read-only."""
    if os.path.isdir(dest):
        return dest
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    run(["podman", "pull", "--quiet", "--tls-verify=false", ref], timeout=180)
    cid = run(["podman", "create", ref]).stdout.decode().strip()
    try:
        tar_path = dest + ".tar"
        run(["podman", "export", "-o", tar_path, cid])
        os.makedirs(dest)
        with tarfile.open(tar_path) as tar:
            tar.extractall(dest, filter="tar")
        os.remove(tar_path)
    finally:
        run(["podman", "rm", "-f", cid], check=False)
    return dest


# ---------------------------------------------------------------- podman


@dataclass
class ContainerResult:
    name: str
    status: str
    exit_code: int
    logs: str
    inspect: dict
    inspect_text: str
    termination_message: str


def play(pod: dict, objects: Objects, workdir: str, tls_verify: bool = False) -> None:
    docs = []
    for name, data in objects.configmaps.items():
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
    # podman 4.3 reads secretKeyRef/secretRef from podman secrets holding a JSON map of
    # base64 values (a `kind: Secret` document in the YAML is stored in a form its own
    # secretKeyRef lookup cannot read), so the Secrets are created that way.
    for name, data in objects.secrets.items():
        payload = json.dumps({k: base64.b64encode(v.encode()).decode() for k, v in data.items()})
        run(["podman", "secret", "rm", name], check=False)
        run(["podman", "secret", "create", name, "-"], input_bytes=payload.encode())
    docs.append(pod)
    path = os.path.join(workdir, "pod.yaml")
    with open(path, "w") as f:
        yaml.safe_dump_all(docs, f, sort_keys=False)
    cmd = ["podman", "kube", "play", "--network", "host", f"--tls-verify={'true' if tls_verify else 'false'}", path]
    proc = run(cmd, check=False, timeout=300)
    if proc.returncode != 0:
        raise E2EError(
            f"podman kube play {path} exited {proc.returncode}:\n{proc.stderr.decode(errors='replace').strip()}"
        )


def wait_exited(pod_name: str, container: str, deadline_s: float = 90) -> None:
    ctr = f"{pod_name}-{container}"
    end = time.monotonic() + deadline_s
    status = "?"
    while time.monotonic() < end:
        proc = run(["podman", "inspect", "--format", "{{.State.Status}}", ctr], check=False)
        status = proc.stdout.decode().strip()
        if proc.returncode == 0 and status in ("exited", "stopped"):
            return
        time.sleep(0.2)
    raise E2EError(f"container {ctr} did not exit within {deadline_s}s (status: {status or 'unknown'})")


def collect(pod_name: str, container: str, out_dir: str) -> ContainerResult:
    ctr = f"{pod_name}-{container}"
    text = run(["podman", "inspect", ctr]).stdout.decode()
    inspect = json.loads(text)[0]
    proc = run(["podman", "logs", ctr])
    logs = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    term_path = os.path.join(out_dir, f"termination-{container}")
    term = open(term_path).read() if os.path.exists(term_path) else ""
    return ContainerResult(
        name=container,
        status=inspect["State"]["Status"],
        exit_code=int(inspect["State"]["ExitCode"]),
        logs=logs,
        inspect=inspect,
        inspect_text=text,
        termination_message=term,
    )


def wait_log(pod_name: str, container: str, marker: str, deadline_s: float = 90) -> None:
    """Waits until a running container has logged `marker` on a line of its own."""
    ctr = f"{pod_name}-{container}"
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        proc = run(["podman", "logs", ctr], check=False)
        if marker in proc.stdout.decode(errors="replace").splitlines():
            return
        state = run(["podman", "inspect", "--format", "{{.State.Status}}", ctr], check=False).stdout.decode().strip()
        if state in ("exited", "stopped"):
            raise E2EError(f"container {ctr} exited before logging {marker}")
        time.sleep(0.2)
    raise E2EError(f"container {ctr} did not log {marker} within {deadline_s}s")


def exec_probe(pod_name: str, container: str, command: list[str], timeout_s: float = 30) -> subprocess.CompletedProcess:
    """An exec probe as the kubelet runs it: the command inside the running container
    (CRI ExecSync), with the container's configured environment."""
    return run(["podman", "exec", f"{pod_name}-{container}", *command], check=False, timeout=timeout_s)


def down(pod_name: str, secret_names) -> None:
    run(["podman", "pod", "rm", "-f", pod_name], check=False, timeout=120)
    for name in secret_names:
        run(["podman", "secret", "rm", name], check=False)
