"""kubectl for the node scenarios: every call goes through the real kubectl
against the harness's cluster (KUBECONFIG from with-cluster.sh), so what the
tests do is what a person types."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import yaml

ROOT = Path(__file__).resolve().parents[2]


class KubectlError(RuntimeError):
    pass


def kubectl(*args: str, stdin: str | None = None, timeout: float = 120, check: bool = True) -> str:
    proc = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise KubectlError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def get(kind: str, name: str | None = None, namespace: str | None = None,
        selector: str | None = None) -> Any:
    args = ["get", kind, "-o", "json"]
    if name:
        args.insert(2, name)
    if namespace:
        args += ["-n", namespace]
    if selector:
        args += ["-l", selector]
    return json.loads(kubectl(*args))


def get_or_none(kind: str, name: str, namespace: str) -> Any | None:
    proc = subprocess.run(["kubectl", "get", kind, name, "-n", namespace, "-o", "json",
                           "--ignore-not-found"], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise KubectlError(proc.stderr.strip())
    return json.loads(proc.stdout) if proc.stdout.strip() else None


def apply(obj: dict, namespace: str | None = None) -> None:
    args = ["apply", "-f", "-"]
    if namespace:
        args += ["-n", namespace]
    kubectl(*args, stdin=json.dumps(obj))


def patch_merge(kind: str, name: str, namespace: str, patch: dict) -> None:
    kubectl("patch", kind, name, "-n", namespace, "--type=merge", "-p", json.dumps(patch))


def ensure_namespace(name: str) -> None:
    apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def load_example(path: str) -> dict:
    with open(ROOT / path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (KubectlError, subprocess.TimeoutExpired) as err:
            last_error = err
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}"
                         + (f" (last error: {last_error})" if last_error else ""))


def pods(namespace: str, selector: str) -> list[dict]:
    return get("pods", namespace=namespace, selector=selector)["items"]


def pod_ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in pod.get("status", {}).get("conditions", []))


def live_pods(namespace: str, selector: str) -> list[dict]:
    """Pods of the selector that are not being deleted."""
    return [p for p in pods(namespace, selector) if not p["metadata"].get("deletionTimestamp")]


def deployment_rolled_out(namespace: str, name: str) -> bool:
    """The Deployment's newest generation is fully rolled out and available,
    and no pod of an older ReplicaSet is left (terminating pods included)."""
    d = get("deployment", name, namespace)
    status, spec = d.get("status", {}), d["spec"]
    want = spec.get("replicas", 1)
    return (status.get("observedGeneration", 0) >= d["metadata"]["generation"]
            and status.get("updatedReplicas", 0) == want
            and status.get("replicas", 0) == want
            and status.get("availableReplicas", 0) == want)


def service_url(namespace: str, name: str, port_name: str | None = None) -> str:
    """http://CLUSTER-IP:PORT of a Service: reachable from the host through
    kube-proxy, as from any pod."""
    svc = get("service", name, namespace)
    ports = svc["spec"]["ports"]
    port = next((p for p in ports if port_name is None or p.get("name") == port_name), ports[0])
    return f"http://{svc['spec']['clusterIP']}:{port['port']}"


def image(name: str) -> str:
    """An image the suite loaded into the node (tests/node/in-cluster.sh
    exports FLIGHTDECK_IMAGE_<NAME>)."""
    value = os.environ.get(f"FLIGHTDECK_IMAGE_{name.upper().replace('-', '_')}")
    if not value:
        raise AssertionError(f"FLIGHTDECK_IMAGE_{name.upper()} is not set: run through tests/node/run.sh")
    return value
