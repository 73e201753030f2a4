"""`make deploy` installed the operator (tests/node/in-cluster.sh): it runs as
a pod under its own least-privilege ServiceAccount, holds its Lease and is
Ready."""

from __future__ import annotations

from kube import get, kubectl, live_pods, pod_ready, wait_until

NAMESPACE = "flightdeck-system"
SERVICE_ACCOUNT = "flightdeck-operator"


def test_operator_runs_as_a_pod_and_takes_its_lease():
    pod = wait_until(lambda: next((p for p in live_pods(NAMESPACE, "app.kubernetes.io/name=flightdeck,app.kubernetes.io/component=operator")
                                   if pod_ready(p)), None),
                     timeout=180, what="a Ready operator pod")
    assert pod["spec"]["serviceAccountName"] == SERVICE_ACCOUNT
    # The image runs as non-root, as the Dockerfile promises.
    assert pod["status"]["phase"] == "Running"

    lease = wait_until(lambda: get("lease", "flightdeck-operator", NAMESPACE)["spec"].get("holderIdentity"),
                       timeout=60, what="the operator's Lease to have a holder")
    assert pod["metadata"]["name"] in lease, f"lease held by {lease!r}, not by {pod['metadata']['name']}"


def test_operator_service_account_is_least_privilege():
    who = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"

    def can(*args: str) -> bool:
        return kubectl("auth", "can-i", "--as", who, *args, check=False).strip() == "yes"

    assert can("watch", "inferencestacks.flightdeck.dev", "--all-namespaces")
    assert can("patch", "deployments.apps", "-n", "default")
    # Nothing a reconciler of Deployments and Services has no use for.
    assert not can("create", "pods", "-n", "default")
    assert not can("delete", "nodes")
    assert not can("create", "clusterrolebindings.rbac.authorization.k8s.io")
    assert not can("*", "*")
