"""The real API server accepts what we ship: the CRD is installed, then every
built-in object and InferenceStack is sent as a server-side dry run. Kinds a
1.20 server does not know (ClusterCatalog, ClusterExtension, monitors,
rules) are validated by checks/validate.py instead."""

import json
import os
import subprocess

import yaml

from .harness import CheckFailed, require
from .manifests import ROOT

UNKNOWN_TO_SERVER = {"olm.operatorframework.io", "monitoring.coreos.com"}
CRD = "inferencestacks.flightdeck.dev"
CRD_SH = os.path.join(ROOT, "tests", "lib", "crd.sh")


_SERVER = {}


def server_is_old():
    """True for servers before 1.25 (see validate_flag)."""
    return validate_flag() == "--validate=false"


def apply_args(kind, dry_run):
    """Server-side apply, except for CRDs on servers before 1.25: their
    typed schema lacks x-kubernetes-validations (CEL rules, 1.25+), so a
    server-side apply of our CRD fails there, while a client-side apply
    succeeds and the server drops the rules it cannot enforce."""
    args = ["apply", "--field-manager=packaging-test"]
    if kind == "CustomResourceDefinition" and server_is_old():
        args.append("--validate=false")
    else:
        args += ["--server-side", validate_flag()]
    if dry_run:
        args.append("--dry-run=server")
    return args + ["-f", "-"]


def validate_flag():
    """Servers from 1.25 check fields themselves (--validate=strict). Older
    ones (the 1.20 test server) have no field validation, and kubectl's
    client-side check against their OpenAPI v2 rejects fields they would
    simply drop (x-kubernetes-validations); schemas are checked strictly by
    validate.py instead."""
    if "flag" in _SERVER:
        return _SERVER["flag"]
    result = subprocess.run(["kubectl", "version", "-o", "json"], capture_output=True, text=True)
    try:
        server = json.loads(result.stdout)["serverVersion"]
        minor = int("".join(ch for ch in server["minor"] if ch.isdigit()))
    except (ValueError, KeyError):
        raise CheckFailed(f"cannot read the server version: {result.stderr.strip()}")
    _SERVER["flag"] = "--validate=strict" if (int(server["major"]), minor) >= (1, 25) else "--validate=false"
    return _SERVER["flag"]


def kubectl(args, stdin=None):
    result = subprocess.run(["kubectl", *args], cwd=ROOT, input=stdin, capture_output=True, text=True)
    if result.returncode != 0:
        raise CheckFailed(f"kubectl {' '.join(args)}:\n{result.stderr.strip()}")
    return result.stdout


def install_crd_and_namespaces(objects):
    """The CRD as every test installs it (tests/lib/crd.sh: `make install`),
    then the namespaces the rendered objects live in."""
    shipped = {o["metadata"]["name"] for _, o in objects if o["kind"] == "CustomResourceDefinition"}
    require(shipped == {CRD}, f"we ship the CRDs {sorted(shipped)}; tests/lib/crd.sh installs {CRD}")
    result = subprocess.run([CRD_SH, "install"], cwd=ROOT, capture_output=True, text=True)
    require(result.returncode == 0, f"tests/lib/crd.sh install:\n{result.stderr.strip()}")
    namespaces = {o["metadata"]["name"]: o for _, o in objects if o["kind"] == "Namespace"}
    namespaces.update({ns: {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
                       for ns in {o["metadata"].get("namespace") for _, o in objects} - {None} - set(namespaces)})
    kubectl(apply_args("Namespace", False), yaml.safe_dump_all(list(namespaces.values())))
    return f"CRD {CRD} installed, {len(namespaces)} namespace(s) applied"


def dry_run_everything(objects):
    sent, skipped = 0, 0
    problems = []
    for source, obj in objects:
        group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
        if group in UNKNOWN_TO_SERVER:
            skipped += 1
            continue
        result = subprocess.run(["kubectl", *apply_args(obj["kind"], True)],
                                cwd=ROOT, input=yaml.safe_dump(obj), capture_output=True, text=True)
        if result.returncode != 0:
            problems.append(f"{source}: {obj['kind']} {obj['metadata'].get('name')}: {result.stderr.strip()}")
        sent += 1
    require(not problems, "the API server rejects:\n  " + "\n  ".join(problems))
    return f"{sent} objects accepted, {skipped} of kinds the 1.20 server does not serve checked by schema"


def invalid_stack_is_rejected():
    """The CRD's schema is enforced: a stack with an unknown engine fails."""
    bad = {"apiVersion": "flightdeck.dev/v1alpha1", "kind": "InferenceStack",
           "metadata": {"name": "bad", "namespace": "default"},
           "spec": {"applications": {"m": {"engine": "onnx", "readerConfig": {"modelName": "x"}}}}}
    result = subprocess.run(["kubectl", *apply_args(bad["kind"], True)],
                            cwd=ROOT, input=yaml.safe_dump(bad), capture_output=True, text=True)
    require(result.returncode != 0 and "engine" in result.stderr,
            f"the API server accepted an InferenceStack with engine onnx: {result.stdout}{result.stderr}")


def make_deploy_and_undeploy():
    """`make install deploy` with another registry and version puts those
    images on the operator; `make undeploy` removes it again (runs last: it
    deletes the CRD and the namespace)."""
    env = dict(os.environ, IMAGE_REGISTRY="registry.example.com/fd", VERSION="9.9.9")
    for target in ("install", "deploy"):
        result = subprocess.run(["make", "-s", target], cwd=ROOT, env=env, capture_output=True, text=True)
        require(result.returncode == 0, f"make {target}: {result.stderr}{result.stdout}")
    deployment = json.loads(kubectl(["-n", "flightdeck-system", "get", "deployment", "flightdeck-operator", "-o", "json"]))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    require(container["image"] == "registry.example.com/fd/flightdeck-operator:9.9.9", f"deployed {container['image']}")
    require("--gateway-image=registry.example.com/fd/flightdeck-gateway:9.9.9" in container.get("args", []),
            f"gateway image not pinned: {container.get('args')}")
    result = subprocess.run(["timeout", "120", "make", "-s", "undeploy"], cwd=ROOT, capture_output=True, text=True)
    require(result.returncode == 0, f"make undeploy: {result.stderr}")
    left = kubectl(["get", "clusterrole", "flightdeck-operator", "--ignore-not-found", "-o", "name"])
    require(not left.strip(), f"make undeploy left {left}")
    return container["image"]


def all_checks(runner, objects):
    runner.run("API server: install the CRD, apply the namespaces", install_crd_and_namespaces, objects)
    runner.run("API server: server-side dry run of every built-in object and InferenceStack", dry_run_everything, objects)
    runner.run("API server: the CRD schema rejects a bad InferenceStack", invalid_stack_is_rejected)
    runner.run("API server: make install deploy (pinned images) and make undeploy", make_deploy_and_undeploy)
