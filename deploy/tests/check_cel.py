#!/usr/bin/env python3
"""Evaluates the rendered webhook's matchConditions (CEL) against golden pods.

    check_cel.py RENDERED.yaml

The API server evaluates each matchCondition with `object` bound to the AdmissionReview's
object (the pod being created); the webhook is called only when every condition is true,
a false one skips it, and an evaluation error follows failurePolicy (with Fail: the pod
is rejected). So the chart's default conditions must be true for exactly the pods that
need the webhook (a `secretsinit.io/inject` annotation, or an `awssm:`/`awsssm:` env value
in a container or init container) and must never error, whichever optional fields a pod
leaves out. Evaluated with cel-python (PyPI cel-python), a CEL implementation
independent of the chart's template.
"""

from __future__ import annotations

import copy
import sys

import celpy
import yaml

INJECT = {"secretsinit.io/inject": "true"}


def pod(containers, init=None, annotations=None, labels=None) -> dict:
    p = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "apps"},
         "spec": {"containers": containers}}
    if annotations is not None:
        p["metadata"]["annotations"] = annotations
    if labels is not None:
        p["metadata"]["labels"] = labels
    if init is not None:
        p["spec"]["initContainers"] = init
    return p


def c(name="app", env=None, env_from=None) -> dict:
    out = {"name": name, "image": "busybox:1.36"}
    if env is not None:
        out["env"] = env
    if env_from is not None:
        out["envFrom"] = env_from
    return out


def v(name, value) -> dict:
    return {"name": name, "value": value}


SECRET_REF = {"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}

# (name, pod, must the webhook be called?)
GOLDEN = [
    ("annotated, no placeholders", pod([c()], annotations=INJECT), True),
    ("annotated skip (the webhook decides)", pod([c()], annotations={"secretsinit.io/inject": "skip"}), True),
    ("annotated with an invalid value (denied with a message)", pod([c()], annotations={"secretsinit.io/inject": "yes"}), True),
    ("placeholder in a container", pod([c(env=[v("A", "plain"), v("DB", "awssm:prod/db#password")])]), True),
    ("placeholder in the second container", pod([c("a", env=[v("A", "x")]), c("b", env=[v("B", "awssm:x")])]), True),
    ("placeholder in an init container only", pod([c(env=[v("A", "plain")])], init=[c("migrate", env=[v("DB", "awssm:prod/db")])]), True),
    ("init container placeholder, container without env", pod([c()], init=[c("migrate", env=[v("DB", "awssm:prod/db")])]), True),
    ("embedded placeholder", pod([c(env=[v("DSN", "postgres://${awssm:db#user}:${awssm:db#pass}@h/db")])]), True),
    ("SSM Parameter Store placeholder", pod([c(env=[v("URL", "awsssm:/prod/myapp/db-url")])]), True),
    ("embedded SSM placeholder", pod([c(env=[v("URL", "https://${awsssm:/prod/host}/x")])]), True),
    ("legacy awssm:// form", pod([c(env=[v("DB", "awssm://prod/db")])]), True),
    ("annotated, no env anywhere", pod([c()], annotations={**INJECT, "other": "x"}, labels={"app": "x"}), True),
    ("envFrom only", pod([c(env_from=[{"secretRef": {"name": "db"}}])]), False),
    ("secretKeyRef only", pod([c(env=[SECRET_REF])]), False),
    ("plain env", pod([c(env=[v("A", "hello"), v("B", "aws:sm"), v("C", "AWSSM:upper")])]), False),
    ("no annotations, no env, no initContainers", pod([c()]), False),
    ("other annotations only", pod([c()], annotations={"secretsinit.io/injected": "init-container", "x": "y"}), False),
    ("empty annotations and env", pod([c(env=[])], annotations={}), False),
    ("env entries without value", pod([c(env=[{"name": "EMPTY"}, SECRET_REF])]), False),
    ("init container without placeholders", pod([c()], init=[c("i", env=[v("A", "plain")]), c("j")]), False),
    ("empty initContainers", pod([c(env=[v("A", "b")])], init=[]), False),
]


def conditions(rendered: str) -> list[dict]:
    with open(rendered, encoding="utf-8") as fh:
        docs = [d for d in yaml.safe_load_all(fh) if d]
    mwc = [d for d in docs if d["kind"] == "MutatingWebhookConfiguration"]
    if len(mwc) != 1:
        raise SystemExit(f"{rendered}: expected one MutatingWebhookConfiguration")
    conds = mwc[0]["webhooks"][0].get("matchConditions") or []
    if not conds:
        raise SystemExit(f"{rendered}: the webhook has no matchConditions: every pod CREATE would reach it")
    if len(conds) > 64:
        raise SystemExit(f"{rendered}: {len(conds)} matchConditions, the API server allows 64")
    return conds


def evaluate(conds, obj):
    """(called?, errors): every condition true -> called; an error is reported."""
    env = celpy.Environment()
    act = {"object": celpy.json_to_cel(obj), "oldObject": None,
           "request": celpy.json_to_cel({"operation": "CREATE", "namespace": "apps",
                                         "kind": {"group": "", "version": "v1", "kind": "Pod"}})}
    results, errors = [], []
    for cond in conds:
        try:
            r = env.program(env.compile(cond["expression"])).evaluate(act)
        except Exception as e:  # noqa: BLE001 - cel-python raises several kinds
            errors.append(f"{cond['name']}: {e}")
            continue
        if isinstance(r, celpy.CELEvalError) or not isinstance(r, celpy.celtypes.BoolType):
            errors.append(f"{cond['name']}: evaluated to {r!r}, not a bool")
            continue
        results.append(bool(r))
    return all(results) and not errors, errors


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    conds = conditions(sys.argv[1])
    names = [c["name"] for c in conds]
    if len(set(names)) != len(names):
        print(f"duplicate matchCondition names: {names}", file=sys.stderr)
        return 1
    problems = []
    for name, p, want in GOLDEN:
        got, errors = evaluate(conds, p)
        if errors:
            problems.append(f"{name}: evaluation error (would follow failurePolicy): {errors}")
        elif got != want:
            problems.append(f"{name}: webhook {'called' if got else 'skipped'}, want {'called' if want else 'skipped'}")
    # Self-check: the evaluator really distinguishes, so the table above can fail.
    sanity = [{"name": "never", "expression": "false"}]
    if evaluate(sanity, GOLDEN[0][1])[0] or not evaluate([{"name": "x", "expression": "has(object.spec)"}], GOLDEN[0][1])[0]:
        problems.append("cel-python evaluator sanity check failed")
    broken = copy.deepcopy(conds)
    broken[0]["expression"] = "object.metadata.annotations['secretsinit.io/inject'] == 'true'"
    bare = next(p for n, p, _ in GOLDEN if n == "no annotations, no env, no initContainers")
    if not evaluate(broken, bare)[1]:
        problems.append("an unguarded field access did not error on a pod without annotations: the error check is blind")
    if problems:
        print(f"{sys.argv[1]}: matchConditions wrong for {len(problems)} golden pod(s):", file=sys.stderr)
        for x in problems:
            print(f"  - {x}", file=sys.stderr)
        return 1
    called = sum(1 for _, _, w in GOLDEN if w)
    print(f"matchConditions {names}: {len(GOLDEN)} golden pods as expected "
          f"({called} sent to the webhook, {len(GOLDEN) - called} skipped, no evaluation errors)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
