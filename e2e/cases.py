"""End-to-end cases for scripts/test-e2e (run by it; see e2e/README.md).

Each case builds a Pod, sends it through the webhook's /mutate, applies the patch, plays
it with `podman kube play` and checks what the app saw (its own /proc/1/environ and
argv, printed to its log), what `podman inspect` holds (placeholders only, no secret
value anywhere), exit codes, logs and termination messages.

Environment (set by scripts/test-e2e): E2E_RUN, E2E_WORK, E2E_WEBHOOK_URL, E2E_MOTO_URL,
E2E_APP_IMAGE, E2E_VARIANT_IMAGE, E2E_SECRETS_INIT_IMAGE; E2E_CASES=a,b runs a subset.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
import time
import traceback
import urllib.request
from dataclasses import dataclass, field
from typing import Callable

import boto3

import kube
from appimage import APP_SCRIPT

RUN = os.environ["E2E_RUN"]
WORK = os.environ["E2E_WORK"]
WEBHOOK = os.environ["E2E_WEBHOOK_URL"]
MOTO = os.environ["E2E_MOTO_URL"]
APP_IMAGE = os.environ["E2E_APP_IMAGE"]
VARIANT_IMAGE = os.environ["E2E_VARIANT_IMAGE"]
SI_IMAGE = os.environ["E2E_SECRETS_INIT_IMAGE"]
REGION = "us-east-1"
SI_PATH = "/secrets-init/bin/secrets-init"

# Static test credentials for moto; AWS_ENDPOINT_URL points the SDK at it.
AWS_ENV = [
    {"name": "AWS_ENDPOINT_URL", "value": MOTO},
    {"name": "AWS_ACCESS_KEY_ID", "value": "e2e-testing"},
    {"name": "AWS_SECRET_ACCESS_KEY", "value": "e2e-testing"},
]


# ---------------------------------------------------------------- secrets in moto


@dataclass
class Seeded:
    user: str
    password: str
    host: str
    token: str
    token_arn: str
    old: str
    new: str
    old_version: str

    def values(self) -> list[str]:
        """Every secret value the suite seeded (each distinctive and random)."""
        return [self.user, self.password, self.host, self.token, self.old, self.new]


SEEDED_VALUES: list[str] = []


PROBE_VALUE: list[str] = []


@dataclass
class Parameters:
    """What the suite put in Parameter Store (and the env-from secret)."""

    url: str
    secure: str
    v1: str
    v2: str
    imported: str
    imported_path: str


PARAMS: list[Parameters] = []


def sm_client():
    return boto3.client(
        "secretsmanager",
        endpoint_url=MOTO,
        region_name=REGION,
        aws_access_key_id="e2e-testing",
        aws_secret_access_key="e2e-testing",
    )


def ssm_client():
    return boto3.client(
        "ssm",
        endpoint_url=MOTO,
        region_name=REGION,
        aws_access_key_id="e2e-testing",
        aws_secret_access_key="e2e-testing",
    )


def seed_parameters() -> Parameters:
    """Parameter Store: a String, a JSON SecureString, two versions of one with a label on the
    first, a StringList; a path for env-from; a JSON secret for env-from."""
    ssm = ssm_client()
    r = lambda p: f"{p}-{secrets.token_hex(10)}"  # noqa: E731
    p = Parameters(r("url"), r("secure"), r("v1"), r("v2"), r("imported"), r("imported-path"))
    ssm.put_parameter(Name="/e2e/app/db-url", Value=p.url, Type="String")
    ssm.put_parameter(Name="/e2e/app/json", Value=json.dumps({"secure": p.secure, "n": 1}), Type="SecureString")
    ssm.put_parameter(Name="/e2e/app/rotating", Value=p.v1, Type="SecureString")
    ssm.put_parameter(Name="/e2e/app/rotating", Value=p.v2, Type="SecureString", Overwrite=True)
    ssm.label_parameter_version(Name="/e2e/app/rotating", ParameterVersion=1, Labels=["stable"])
    ssm.put_parameter(Name="/e2e/app/list", Value="a,b,c", Type="StringList")
    ssm.put_parameter(Name="/e2e/env/PATH_IMPORTED", Value=p.imported_path, Type="SecureString")
    ssm.put_parameter(Name="/e2e/env/SHARED", Value="from-path", Type="String")
    ssm.put_parameter(Name="/e2e/env/not-a-name", Value="skipped", Type="String")
    sm_client().create_secret(
        Name="e2e/app-env",
        SecretString=json.dumps({"SECRET_IMPORTED": p.imported, "SHARED": "from-secret", "OVERRIDDEN": "from-secret"}),
    )
    PARAMS.append(p)
    SEEDED_VALUES.extend([p.url, p.secure, p.v1, p.v2, p.imported, p.imported_path])
    return p


def seed() -> Seeded:
    sm = sm_client()
    r = lambda p: f"{p}-{secrets.token_hex(10)}"  # noqa: E731
    s = Seeded(r("user"), r("pass"), r("host") + ".db.internal", r("tok"), "", r("old"), r("new"), "")
    doc = {"user": s.user, "password": s.password, "port": 5432, "ratio": 1.50, "nested": {"host": s.host}}
    # json.dumps would write 1.5; the secret is stored as written.
    text = json.dumps(doc).replace('"ratio": 1.5', '"ratio": 1.50')
    sm.create_secret(Name="e2e/db", SecretString=text)
    s.token_arn = sm.create_secret(Name="e2e/token", SecretString=s.token)["ARN"]
    s.old_version = sm.create_secret(Name="e2e/rotating", SecretString=s.old)["VersionId"]
    sm.put_secret_value(SecretId="e2e/rotating", SecretString=s.new)
    PROBE_VALUE.append(r("probe"))
    sm.create_secret(Name="e2e/probe", SecretString=PROBE_VALUE[0])
    SEEDED_VALUES.extend(s.values() + PROBE_VALUE)
    seed_parameters()
    return s


# ---------------------------------------------------------------- pods


def pod(case: str, containers: list[dict], annotations: dict | None = None, **spec) -> dict:
    ann = {"secretsinit.io/inject": "true"}
    ann.update(annotations or {})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod_name(case), "namespace": "e2e", "annotations": ann},
        "spec": {"restartPolicy": "Never", "containers": containers, **spec},
    }


def pod_name(case: str) -> str:
    return f"e2e-{RUN}-{case}"


def app(name: str = "app", env: list[dict] | None = None, command: bool = True, args: list[str] | None = None, **extra) -> dict:
    c: dict = {"name": name, "image": APP_IMAGE, "env": (env or []) + AWS_ENV}
    if command:
        c["command"] = ["/bin/sh", "-c", APP_SCRIPT, "app", *(args or [])]
    c.update(extra)
    return c


def var(name: str, value: str) -> dict:
    return {"name": name, "value": value}


# ---------------------------------------------------------------- checking


class Failures(list):
    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.append(what)


def describe(got: str | None, placeholder: str | None) -> str:
    """Says what a variable held without printing a value that may be a secret."""
    if got is None:
        return "it is not set"
    if placeholder is not None and got == placeholder:
        return f"it still holds its placeholder {placeholder!r}"
    return f"it holds a different value ({len(got)} characters)"


def parse_app_log(logs: str) -> tuple[bool, dict[str, str] | None, list[str]]:
    started = "E2E-APP-STARTED" in logs.splitlines()
    env = None
    args = []
    lines = logs.splitlines()
    if "E2E-ENVIRON-BEGIN" in lines and "E2E-ENVIRON-END" in lines:
        b, e = lines.index("E2E-ENVIRON-BEGIN"), lines.index("E2E-ENVIRON-END")
        env = {}
        for line in lines[b + 1 : e]:
            k, _, v = line.partition("=")
            env[k] = v
    for line in lines:
        if line.startswith("E2E-ARG="):
            args.append(line[len("E2E-ARG=") :])
    return started, env, args


def secrets_init_lines(logs: str) -> list[str]:
    """Log lines that are not the app's own output (markers and the environ dump)."""
    out, inside = [], False
    for line in logs.splitlines():
        if line == "E2E-ENVIRON-BEGIN":
            inside = True
        elif line == "E2E-ENVIRON-END":
            inside = False
        elif not inside and not line.startswith("E2E-"):
            out.append(line)
    return out


def check_ran(f: Failures, res: kube.ContainerResult, expect: dict[str, str], placeholders: dict[str, str], args: list[str] | None = None) -> None:
    """The app ran behind secrets-init, with real values in PID 1's environment."""
    f.check(res.exit_code == 0, f"{res.name}: exit code {res.exit_code}, expected 0")
    started, env, got_args = parse_app_log(res.logs)
    f.check(started, f"{res.name}: the app never started")
    if env is None:
        f.append(f"{res.name}: no /proc/1/environ dump in the app's log")
        return
    for k, want in expect.items():
        f.check(env.get(k) == want, f"{res.name}: /proc/1/environ {k}: {describe(env.get(k), placeholders.get(k))}, expected its resolved value")
    own = "\n".join(secrets_init_lines(res.logs))
    f.check(not any(v in own for v in SEEDED_VALUES), f"{res.name}: a seeded secret value appears in secrets-init's log lines")
    leaked = sorted(k for k in env if k.startswith("SECRETS_INIT_"))
    f.check(not leaked, f"{res.name}: SECRETS_INIT_* variables reached the app: {leaked}")
    if args is not None:
        f.check(got_args == args, f"{res.name}: argv after the script: {len(got_args)} arguments, expected {len(args)} "
                f"({[describe(g, None) if g not in args else 'ok' for g in got_args]})")


def check_inspect(f: Failures, res: kube.ContainerResult, placeholders: dict[str, str], seeded: Seeded, mutated: bool = True) -> None:
    """podman inspect: the configured env holds placeholders, no secret value anywhere."""
    cfg_env = dict(e.partition("=")[::2] for e in res.inspect["Config"].get("Env") or [])
    for k, ph in placeholders.items():
        f.check(cfg_env.get(k) == ph, f"{res.name}: inspect Config.Env {k}: {describe(cfg_env.get(k), ph)}, expected the placeholder {ph!r}")
    for i, v in enumerate(SEEDED_VALUES):
        f.check(v not in res.inspect_text, f"{res.name}: podman inspect contains seeded secret value #{i}")
    path = res.inspect.get("Path")
    if mutated:
        f.check(path == SI_PATH, f"{res.name}: the container runs {path!r}, expected {SI_PATH}")
    else:
        f.check(path != SI_PATH, f"{res.name}: the container runs secrets-init but has no placeholders")


def check_pod_inspect(f: Failures, name: str, seeded: Seeded) -> None:
    text = kube.run(["podman", "pod", "inspect", name]).stdout.decode()
    for i, v in enumerate(SEEDED_VALUES):
        f.check(v not in text, f"podman pod inspect {name} contains seeded secret value #{i}")


# ---------------------------------------------------------------- cases


@dataclass
class Outcome:
    pod: dict
    objects: kube.Objects
    results: dict[str, kube.ContainerResult] = field(default_factory=dict)
    out_dir: str = ""
    seeded: Seeded | None = None


@dataclass
class Case:
    name: str
    build: Callable[[Seeded], tuple[dict, kube.Objects]]
    verify: Callable[[Failures, Outcome, Seeded], None]
    containers: list[str] = field(default_factory=lambda: ["app"])
    verify_admission: Callable[[Failures, kube.Admission], None] | None = None
    # Run while the pod's containers are up (after their app logged its environment);
    # gets the pod name and the exec probes taken out of the pod (kube.kubeletize).
    while_running: Callable[[Failures, str, dict], None] | None = None


def placeholders_of(p: dict, container: str, objects: kube.Objects) -> dict[str, str]:
    """What the kubelet gives the container for each variable that holds a placeholder."""
    for c in (p["spec"].get("initContainers") or []) + p["spec"]["containers"]:
        if c["name"] == container:
            env = kube.container_env(c, objects)
            return {k: v for k, v in env.items() if "awssm:" in v or "awsssm:" in v}
    raise KeyError(container)


def admission_init_container(f: Failures, adm: kube.Admission) -> None:
    spec = adm.pod["spec"]
    ann = adm.pod["metadata"].get("annotations", {})
    f.check(ann.get("secretsinit.io/injected") == "init-container", f"annotation secretsinit.io/injected is {ann.get('secretsinit.io/injected')!r}")
    init = (spec.get("initContainers") or [{}])[0]
    f.check(init.get("image") == SI_IMAGE, f"first init container image is {init.get('image')!r}, expected {SI_IMAGE}")
    cmdline = (init.get("command") or []) + (init.get("args") or [])
    f.check(cmdline == ["/secrets-init", "install", "/secrets-init-bin"], f"first init container runs {cmdline}")
    vols = [v for v in spec.get("volumes") or [] if (v.get("emptyDir") or {}).get("medium") == "Memory"]
    f.check(len(vols) == 1, "no emptyDir volume with medium: Memory was added")


# --- the five ways to supply env, plus a sidecar that must be left alone


def build_sources(s: Seeded):
    cm, sec = f"e2e-{RUN}-cm", f"e2e-{RUN}-sec"
    objects = kube.Objects(
        configmaps={cm: {"CM_TOKEN": "awssm:e2e/token", "CM_NESTED": "awssm:e2e/db#/nested/host", "CM_PLAIN": "not-a-secret"}},
        secrets={sec: {"SEC_USER": "awssm:e2e/db#user", "SEC_PASSWORD": "awssm:e2e/db#password"}},
    )
    env = [
        var("DIRECT", "awssm:e2e/db#password"),
        var("DIRECT_ARN", f"awssm:{s.token_arn}"),
        var("PORT_NUM", "awssm:e2e/db#port"),
        var("RATIO", "awssm:e2e/db#ratio"),
        var("LEGACY", "awssm://e2e/db#user"),
        var("PLAIN", "hello"),
        {"name": "FROM_CM_KEY", "valueFrom": {"configMapKeyRef": {"name": cm, "key": "CM_NESTED"}}},
        {"name": "FROM_SECRET_KEY", "valueFrom": {"secretKeyRef": {"name": sec, "key": "SEC_USER"}}},
    ]
    main = app(env=env, envFrom=[{"configMapRef": {"name": cm}}, {"secretRef": {"name": sec}}])
    sidecar = {"name": "sidecar", "image": APP_IMAGE, "command": ["/bin/sh", "-c", "echo sidecar-ran"]}
    return pod("sources", [main, sidecar]), objects


def verify_sources(f: Failures, o: Outcome, s: Seeded):
    expect = {
        "DIRECT": s.password, "DIRECT_ARN": s.token, "PORT_NUM": "5432", "RATIO": "1.50",
        "LEGACY": s.user, "PLAIN": "hello", "CM_TOKEN": s.token, "CM_NESTED": s.host,
        "CM_PLAIN": "not-a-secret", "SEC_USER": s.user, "SEC_PASSWORD": s.password,
        "FROM_CM_KEY": s.host, "FROM_SECRET_KEY": s.user,
    }
    ph = placeholders_of(o.pod, "app", o.objects)
    check_ran(f, o.results["app"], expect, ph)
    check_inspect(f, o.results["app"], ph, s)
    side = o.results["sidecar"]
    f.check(side.exit_code == 0 and "sidecar-ran" in side.logs, f"sidecar: exit {side.exit_code}, log {side.logs.strip()!r}")
    check_inspect(f, side, {}, s, mutated=False)


# --- embedded placeholders, escapes and $(VAR) in arguments


def build_embedded(s: Seeded):
    env = [
        var("DB_PASSWORD", "awssm:e2e/db#password"),
        var("DSN", "postgres://${awssm:e2e/db#user}:${awssm:e2e/db#password}@db:5432/app"),
        # Kubernetes turns `$$` into `$` in env values before the container starts, so a
        # literal `${awssm:` for the app is written `$$$${awssm:` in a manifest.
        var("LITERAL", "keep $$$${awssm:not/a/reference} as text"),
    ]
    args = ["$(DB_PASSWORD)", "$$(DB_PASSWORD)", "cost: $5", "$(UNDEFINED)"]
    return pod("embedded", [app(env=env, args=args)]), kube.Objects()


def verify_embedded(f: Failures, o: Outcome, s: Seeded):
    expect = {
        "DB_PASSWORD": s.password,
        "DSN": f"postgres://{s.user}:{s.password}@db:5432/app",
        "LITERAL": "keep ${awssm:not/a/reference} as text",
    }
    ph = placeholders_of(o.pod, "app", o.objects)
    check_ran(f, o.results["app"], expect, ph, args=[s.password, "$(DB_PASSWORD)", "cost: $5", "$(UNDEFINED)"])
    check_inspect(f, o.results["app"], ph, s)


# --- no command in the pod: ENTRYPOINT/CMD come from the registry


def build_no_command(s: Seeded):
    return pod("nocommand", [app(env=[var("TOKEN", "awssm:e2e/token")], command=False)]), kube.Objects()


def verify_no_command(f: Failures, o: Outcome, s: Seeded):
    ph = placeholders_of(o.pod, "app", o.objects)
    check_ran(f, o.results["app"], {"TOKEN": s.token}, ph, args=[])
    check_inspect(f, o.results["app"], ph, s)


def admission_no_command(f: Failures, adm: kube.Admission):
    admission_init_container(f, adm)
    cmd = adm.pod["spec"]["containers"][0].get("command") or []
    tail = cmd[cmd.index("--") + 1 :] if "--" in cmd else []
    f.check(tail[:2] == ["/bin/sh", "-c"], f"the program behind -- is {tail[:2]}, expected the image's ENTRYPOINT [/bin/sh, -c]")
    f.check(len(tail) == 3 and "E2E-APP-STARTED" in tail[2], "the image's CMD is not behind --")


# --- the user's own init container with a placeholder


def build_user_init(s: Seeded):
    out = "/e2e-out"
    init = {
        "name": "setup",
        "image": APP_IMAGE,
        # Two commands, so sh stays PID 1 (it would exec a lone last command, and an
        # environ file opened before that exec reads empty).
        "command": ["/bin/sh", "-c", f"tr '\\0' '\\n' </proc/1/environ >{out}/setup-environ; echo setup-done"],
        "env": [var("INIT_TOKEN", "awssm:e2e/token")] + AWS_ENV,
        "volumeMounts": [{"name": "e2e-out", "mountPath": out}],
    }
    main = app(env=[var("APP_USER", "awssm:e2e/db#user")])
    p = pod("userinit", [main], initContainers=[init], volumes=[{"name": "e2e-out", "hostPath": {"path": "@OUT@", "type": "Directory"}}])
    return p, kube.Objects()


def verify_user_init(f: Failures, o: Outcome, s: Seeded):
    ph = placeholders_of(o.pod, "app", o.objects)
    check_ran(f, o.results["app"], {"APP_USER": s.user}, ph)
    check_inspect(f, o.results["app"], ph, s)
    path = os.path.join(o.out_dir, "setup-environ")
    env = {}
    if os.path.exists(path):
        env = dict(line.partition("=")[::2] for line in open(path).read().splitlines())
    else:
        f.append("setup (init container): wrote no environment dump")
    f.check(env.get("INIT_TOKEN") == s.token, f"setup (init container): INIT_TOKEN: {describe(env.get('INIT_TOKEN'), 'awssm:e2e/token')}")


def admission_user_init(f: Failures, adm: kube.Admission):
    admission_init_container(f, adm)
    names = [c["name"] for c in adm.pod["spec"]["initContainers"]]
    f.check(names[1:] == ["setup"], f"init containers are {names}, expected secrets-init first, then setup")
    setup = adm.pod["spec"]["initContainers"][-1]
    f.check((setup.get("command") or [""])[0] == SI_PATH, "the user's init container is not wrapped by secrets-init")


# --- versioned references


def build_versioned(s: Seeded):
    env = [
        var("PREVIOUS", "awssm:e2e/rotating##AWSPREVIOUS"),
        var("CURRENT", "awssm:e2e/rotating##AWSCURRENT"),
        var("LATEST", "awssm:e2e/rotating"),
        var("BY_ID", f"awssm:e2e/rotating##{s.old_version}"),
    ]
    return pod("versioned", [app(env=env)]), kube.Objects()


def verify_versioned(f: Failures, o: Outcome, s: Seeded):
    ph = placeholders_of(o.pod, "app", o.objects)
    check_ran(f, o.results["app"], {"PREVIOUS": s.old, "CURRENT": s.new, "LATEST": s.new, "BY_ID": s.old}, ph)
    check_inspect(f, o.results["app"], ph, s)


# --- ignore-missing


def build_ignore_missing(s: Seeded):
    env = [
        var("GONE", "awssm:e2e/does-not-exist"),
        var("GONE_KEY", "awssm:e2e/db#no-such-key"),
        var("PRESENT", "awssm:e2e/token"),
    ]
    return pod("ignoremissing", [app(env=env)], {"secretsinit.io/ignore-missing-secrets": "true"}), kube.Objects()


def verify_ignore_missing(f: Failures, o: Outcome, s: Seeded):
    res = o.results["app"]
    ph = placeholders_of(o.pod, "app", o.objects)
    check_ran(f, res, {"GONE": "", "GONE_KEY": "", "PRESENT": s.token}, ph)
    check_inspect(f, res, ph, s)
    warnings = secrets_init_lines(res.logs)
    for name in ("GONE", "GONE_KEY"):
        f.check(any(name in line for line in warnings), f"app: no warning from secrets-init naming {name}")


# --- a missing secret: the container fails before the app runs


def build_missing(s: Seeded):
    env = [var("DB_FROM_NOWHERE", "awssm:e2e/does-not-exist#password"), var("TOKEN", "awssm:e2e/token")]
    return pod("missing", [app(env=env)]), kube.Objects()


def verify_missing(f: Failures, o: Outcome, s: Seeded):
    res = o.results["app"]
    f.check(res.exit_code == 1, f"app: exit code {res.exit_code}, expected 1 (secrets-init: unresolvable placeholder)")
    started, _, _ = parse_app_log(res.logs)
    f.check(not started, "app: the program ran although a secret is missing")
    errors = "\n".join(secrets_init_lines(res.logs))
    f.check("DB_FROM_NOWHERE" in errors, "app: secrets-init's log does not name the variable DB_FROM_NOWHERE")
    f.check("ResourceNotFoundException" in errors, "app: secrets-init's log does not give the AWS error code ResourceNotFoundException")
    f.check("DB_FROM_NOWHERE" in res.termination_message and "ResourceNotFoundException" in res.termination_message,
            "app: the termination message does not name DB_FROM_NOWHERE and ResourceNotFoundException")
    for i, v in enumerate(SEEDED_VALUES):
        f.check(v not in res.logs and v not in res.termination_message, f"app: seeded secret value #{i} in the log or termination message")
    check_inspect(f, res, placeholders_of(o.pod, "app", o.objects), s)


# --- image-swap: the variant image <app>:<tag>-secrets-init


def build_image_swap(s: Seeded):
    c = app(env=[var("TOKEN", "awssm:e2e/token")], command=False)
    return pod("imageswap", [c], {"secretsinit.io/mutation-mode": "image-swap"}), kube.Objects()


def admission_image_swap(f: Failures, adm: kube.Admission):
    spec = adm.pod["spec"]
    ann = adm.pod["metadata"].get("annotations", {})
    f.check(ann.get("secretsinit.io/injected") == "image-swap", f"annotation secretsinit.io/injected is {ann.get('secretsinit.io/injected')!r}")
    f.check(not spec.get("initContainers"), "image-swap added init containers")
    f.check(not spec.get("volumes"), "image-swap added volumes")
    c = spec["containers"][0]
    f.check(c["image"] == VARIANT_IMAGE, f"image is {c['image']!r}, expected the variant {VARIANT_IMAGE}")
    f.check((c.get("command") or [""])[0] == SI_PATH, "the container is not wrapped by secrets-init")


def verify_image_swap(f: Failures, o: Outcome, s: Seeded):
    ph = placeholders_of(o.pod, "app", o.objects)
    check_ran(f, o.results["app"], {"TOKEN": s.token}, ph, args=[])
    check_inspect(f, o.results["app"], ph, s)
    f.check(o.results["app"].inspect.get("ImageName") == VARIANT_IMAGE, f"podman ran {o.results['app'].inspect.get('ImageName')!r}")


# --- shared-volume (the `image` volume is emulated: podman kube play cannot mount one)


def build_shared_volume(s: Seeded):
    c = app(env=[var("DB_USER", "awssm:e2e/db#user")])
    return pod("sharedvolume", [c], {"secretsinit.io/mutation-mode": "shared-volume"}), kube.Objects()


def admission_shared_volume(f: Failures, adm: kube.Admission):
    spec = adm.pod["spec"]
    f.check(not spec.get("initContainers"), "shared-volume added init containers")
    vols = [v for v in spec.get("volumes") or [] if "image" in v]
    f.check(len(vols) == 1 and vols[0]["image"].get("reference") == SI_IMAGE, f"image volumes: {vols}")
    mounts = spec["containers"][0].get("volumeMounts") or []
    f.check(any(m.get("mountPath") == "/secrets-init/bin" and m.get("readOnly") for m in mounts), f"no read-only mount at /secrets-init/bin: {mounts}")


def verify_shared_volume(f: Failures, o: Outcome, s: Seeded):
    ph = placeholders_of(o.pod, "app", o.objects)
    check_ran(f, o.results["app"], {"DB_USER": s.user}, ph)
    check_inspect(f, o.results["app"], ph, s)


# --- exec probes (mutate-probes): wrapped with --probe, values taken from PID 1


PROBE_SCRIPT = 'printf %s "$PROBE_TOKEN" | sha256sum'


def build_probes(s: Seeded):
    c = app(env=[var("PROBE_TOKEN", "awssm:e2e/probe")])
    c["command"] = ["/bin/sh", "-c", APP_SCRIPT + "; exec sleep 300", "app"]
    c["livenessProbe"] = {"exec": {"command": ["/bin/sh", "-c", PROBE_SCRIPT]}, "periodSeconds": 10}
    return pod("probes", [c], {"secretsinit.io/mutate-probes": "true"}), kube.Objects()


def admission_probes(f: Failures, adm: kube.Admission):
    admission_init_container(f, adm)
    cmd = adm.pod["spec"]["containers"][0].get("livenessProbe", {}).get("exec", {}).get("command", [])
    f.check(cmd[:1] == [SI_PATH] and "--probe" in cmd, f"the liveness probe is not wrapped with secrets-init --probe: {cmd[:6]}")


def probes_while_running(f: Failures, name: str, probes: dict):
    cmd = probes.get("app", {}).get("livenessProbe")
    if not cmd:
        f.append("no exec liveness probe to run")
        return
    # Delete the secret first: a probe that went to AWS now fails; one that takes the
    # value from the main process's environment (as --probe should) still gets it.
    sm = sm_client()
    sm.delete_secret(SecretId="e2e/probe", ForceDeleteWithoutRecovery=True)
    proc = kube.exec_probe(name, "app", cmd)
    out = proc.stdout.decode(errors="replace")
    want = hashlib.sha256(PROBE_VALUE[0].encode()).hexdigest()
    f.check(proc.returncode == 0, f"app: the liveness probe exited {proc.returncode}: {proc.stderr.decode(errors='replace').strip()[:500]}")
    f.check(want in out, "app: the liveness probe did not see PROBE_TOKEN's value (sha256 differs)")


def verify_probes(f: Failures, o: Outcome, s: Seeded):
    ph = placeholders_of(o.pod, "app", o.objects)
    res = o.results["app"]
    _, env, _ = parse_app_log(res.logs)
    f.check((env or {}).get("PROBE_TOKEN") == PROBE_VALUE[0], f"app: /proc/1/environ PROBE_TOKEN: {describe((env or {}).get('PROBE_TOKEN'), ph.get('PROBE_TOKEN'))}")
    check_inspect(f, res, ph, s)


# --- Parameter Store (awsssm:)


def build_ssm(s: Seeded):
    # No ARN reference here: moto's GetParameters does not take parameter ARNs (AWS does);
    # secrets-init/tests/it/parameters.rs covers ARNs through a proxy that asks moto by name.
    env = [
        var("URL", "awsssm:/e2e/app/db-url"),
        var("SECURE_KEY", "awsssm:/e2e/app/json#secure"),
        var("NUMBER", "awsssm:/e2e/app/json#/n"),
        var("LATEST", "awsssm:/e2e/app/rotating"),
        var("VERSION_1", "awsssm:/e2e/app/rotating##1"),
        var("LABELLED", "awsssm:/e2e/app/rotating##stable"),
        var("LIST", "awsssm:/e2e/app/list"),
        var("MIXED", "${awsssm:/e2e/app/db-url}?user=${awssm:e2e/db#user}"),
    ]
    return pod("ssm", [app(env=env)]), kube.Objects()


def verify_ssm(f: Failures, o: Outcome, s: Seeded):
    p = PARAMS[0]
    expect = {
        "URL": p.url, "SECURE_KEY": p.secure, "NUMBER": "1", "LATEST": p.v2,
        "VERSION_1": p.v1, "LABELLED": p.v1, "LIST": "a,b,c", "MIXED": f"{p.url}?user={s.user}",
    }
    ph = placeholders_of(o.pod, "app", o.objects)
    check_ran(f, o.results["app"], expect, ph)
    check_inspect(f, o.results["app"], ph, s)


# --- secretsinit.io/env-from: a secret's keys and a path's parameters become variables


ENV_FROM = "awssm:e2e/app-env, awsssm:/e2e/env/"


def build_env_from(s: Seeded):
    # No placeholder in the container: the annotation alone selects it.
    c = app(env=[var("OVERRIDDEN", "from-the-pod")])
    return pod("envfrom", [c], {"secretsinit.io/env-from": ENV_FROM}), kube.Objects()


def admission_env_from(f: Failures, adm: kube.Admission):
    admission_init_container(f, adm)
    cmd = adm.pod["spec"]["containers"][0].get("command") or []
    head = cmd[: cmd.index("--")] if "--" in cmd else cmd
    refs = [head[i + 1] for i, a in enumerate(head[:-1]) if a == "--env-from"]
    f.check(refs == ["awssm:e2e/app-env", "awsssm:/e2e/env/"], f"--env-from arguments are {refs}")


def verify_env_from(f: Failures, o: Outcome, s: Seeded):
    p = PARAMS[0]
    res = o.results["app"]
    # SHARED: the later reference (the path) wins; OVERRIDDEN: the pod's own value wins.
    expect = {"SECRET_IMPORTED": p.imported, "PATH_IMPORTED": p.imported_path, "SHARED": "from-path", "OVERRIDDEN": "from-the-pod"}
    check_ran(f, res, expect, {})
    _, env, _ = parse_app_log(res.logs)
    f.check("not-a-name" not in (env or {}), "app: the parameter not-a-name was imported")
    warnings = secrets_init_lines(res.logs)
    f.check(any("`not-a-name` is not a variable name" in line for line in warnings), "app: no warning naming the skipped parameter not-a-name")
    check_inspect(f, res, {}, s)


CASES = [
    Case("sources", build_sources, verify_sources, ["app", "sidecar"], admission_init_container),
    Case("embedded", build_embedded, verify_embedded, verify_admission=admission_init_container),
    Case("nocommand", build_no_command, verify_no_command, verify_admission=admission_no_command),
    Case("userinit", build_user_init, verify_user_init, verify_admission=admission_user_init),
    Case("versioned", build_versioned, verify_versioned, verify_admission=admission_init_container),
    Case("ignoremissing", build_ignore_missing, verify_ignore_missing, verify_admission=admission_init_container),
    Case("missing", build_missing, verify_missing, verify_admission=admission_init_container),
    Case("imageswap", build_image_swap, verify_image_swap, verify_admission=admission_image_swap),
    Case("sharedvolume", build_shared_volume, verify_shared_volume, verify_admission=admission_shared_volume),
    Case("probes", build_probes, verify_probes, verify_admission=admission_probes, while_running=probes_while_running),
    Case("ssm", build_ssm, verify_ssm, verify_admission=admission_init_container),
    Case("envfrom", build_env_from, verify_env_from, verify_admission=admission_env_from),
]


def run_case(case: Case, seeded: Seeded) -> Failures:
    f = Failures()
    out_dir = os.path.join(WORK, "cases", case.name)
    os.makedirs(out_dir, exist_ok=True)
    original, objects = case.build(seeded)
    original = json.loads(json.dumps(original).replace("@OUT@", out_dir))
    outcome = Outcome(pod=original, objects=objects, out_dir=out_dir)
    outcome.seeded = seeded
    adm = kube.admit(WEBHOOK, original)
    with open(os.path.join(out_dir, "admission.json"), "w") as fh:
        json.dump({"allowed": adm.allowed, "message": adm.message, "warnings": adm.warnings, "patch": adm.patch}, fh, indent=1)
    if not adm.allowed:
        f.append(f"the webhook denied the pod: {adm.message}")
        return f
    if case.verify_admission:
        case.verify_admission(f, adm)
    # Reinvocation (reinvocationPolicy: IfNeeded) of the mutated pod changes nothing.
    again = kube.admit(WEBHOOK, adm.pod)
    f.check(again.allowed and not again.patch, f"the mutated pod sent again: allowed={again.allowed}, patch={again.patch}, {again.message}")
    played, probes = kube.kubeletize(adm.pod, objects, out_dir, lambda ref: kube.extract_rootfs(ref, os.path.join(WORK, "rootfs", ref.replace("/", "_").replace(":", "_"))))
    name = played["metadata"]["name"]
    try:
        kube.play(played, objects, out_dir)
        if case.while_running:
            for c in case.containers:
                kube.wait_log(name, c, "E2E-ENVIRON-END")
            case.while_running(f, name, probes)
            kube.run(["podman", "pod", "stop", "-t", "0", name], check=False)
        for c in case.containers:
            kube.wait_exited(name, c)
        for c in case.containers:
            outcome.results[c] = kube.collect(name, c, out_dir)
        case.verify(f, outcome, seeded)
        check_pod_inspect(f, name, seeded)
    finally:
        if f:
            print(f"--- {case.name}: mutated pod as played:\n{json.dumps(played, indent=1)}", file=sys.stderr)
            for c in case.containers:
                proc = kube.run(["podman", "logs", f"{name}-{c}"], check=False)
                print(f"--- {case.name}: logs of {c}:\n{proc.stdout.decode(errors='replace')}{proc.stderr.decode(errors='replace')}", file=sys.stderr)
        kube.down(name, objects.secrets.keys())
    return f


def check_metrics(mutated: int, all_cases: bool) -> Failures:
    """Every case's pod was mutated once; the webhook's counters say the same."""
    f = Failures()
    url = os.environ.get("E2E_METRICS_URL")
    if not url:
        return f
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    got = samples.get('secrets_init_webhook_admission_requests_total{result="mutated"}')
    f.check(got == mutated, f'secrets_init_webhook_admission_requests_total{{result="mutated"}} is {got}, expected {mutated}')
    lookups = sum(v for k, v in samples.items() if k.startswith("secrets_init_webhook_image_config_requests_total{"))
    if all_cases:  # nocommand and imageswap read image configs
        f.check(lookups > 0, "secrets_init_webhook_image_config_requests_total counted no image-config lookups")
    return f


def main() -> int:
    only = [c for c in os.environ.get("E2E_CASES", "").split(",") if c]
    unknown = set(only) - {c.name for c in CASES}
    if unknown:
        print(f"E2E_CASES: unknown case(s) {sorted(unknown)}; known: {[c.name for c in CASES]}", file=sys.stderr)
        return 2
    seeded = seed()
    failed = []
    for case in CASES:
        if only and case.name not in only:
            continue
        t0 = time.monotonic()
        try:
            f = run_case(case, seeded)
        except kube.E2EError as e:
            f = Failures([f"harness: {e}"])
        except Exception:  # noqa: BLE001 - report and go on with the other cases
            f = Failures([f"harness crashed:\n{traceback.format_exc()}"])
        dt = time.monotonic() - t0
        if f:
            failed.append(case.name)
            print(f"FAIL {case.name} ({dt:.1f}s)", file=sys.stderr)
            for line in f:
                print(f"     - {line}", file=sys.stderr)
        else:
            print(f"ok   {case.name} ({dt:.1f}s)", file=sys.stderr)
    ran = sum(1 for c in CASES if not only or c.name in only)
    # A pod without the inject annotation is left alone (the webhook sees every pod).
    plain, _ = build_sources(seeded)
    del plain["metadata"]["annotations"]["secretsinit.io/inject"]
    adm = kube.admit(WEBHOOK, plain)
    if adm.allowed and not adm.patch:
        print("ok   not annotated: allowed unchanged", file=sys.stderr)
    else:
        failed.append("not-annotated")
        print(f"FAIL not annotated: allowed={adm.allowed}, patch={adm.patch}, {adm.message}", file=sys.stderr)
    metrics = check_metrics(ran, not only)
    if metrics:
        failed.append("metrics")
        print("FAIL metrics", file=sys.stderr)
        for line in metrics:
            print(f"     - {line}", file=sys.stderr)
    else:
        print(f"ok   metrics (admission_requests_total{{result=\"mutated\"}} = {ran})", file=sys.stderr)
    if failed:
        print(f"e2e: {len(failed)} case(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
