"""Two applications sharing one consumer group, two gateway replicas, the
test engine as the engine (deterministic answers, so a truncated or mixed-up
answer is caught): readers find both gateways through the headless Service;
rolls of the readers and of the gateways under load lose nothing; a stream
longer than Kubernetes' default 30 s grace survives a roll; a reader pod
force-deleted under load loses no request before its first byte; an
application scales to zero and back; deleting the stack removes its pods.

The tests run in file order and share one stack."""

from __future__ import annotations

import json
import threading
import time

import httpx2 as httpx
import pytest

from conftest import figure
from kube import (apply, deployment_rolled_out, ensure_namespace, get, kubectl, live_pods,
                  image, patch_merge, pod_ready, service_url, wait_until)
from load import Load, expected_answer

NAMESPACE = "fleet"
STACK = "fleet"
MODEL = "test-model"
GROUP = "shared"
APPS = ("alpha", "beta")
TOKEN_DELAY_MS = 5
REQUEST_TIMEOUT = 90


def application(batch: int) -> dict:
    return {
        "engine": "llamacpp",
        "image": image("test-engine"),
        "replicas": 1,
        "consumerGroups": [GROUP],
        "extraArgs": ["--token-delay-ms", str(TOKEN_DELAY_MS)],
        "readerConfig": {
            "modelName": "/models/test-model",
            "servedModelName": MODEL,
            "device": "cpu",
            "maxBatchSize": batch,
        },
    }


def stack_object() -> dict:
    return {
        "apiVersion": "flightdeck.dev/v1alpha1",
        "kind": "InferenceStack",
        "metadata": {"name": STACK, "namespace": NAMESPACE},
        "spec": {
            "gateway": {"replicas": 2,
                        "queue": {"maxDepth": 512, "requestTimeoutSeconds": REQUEST_TIMEOUT}},
            "applications": {name: application(8) for name in APPS},
        },
    }


def selector(app: str | None = None, component: str | None = None) -> str:
    labels = [f"app.kubernetes.io/instance={STACK}"]
    if app:
        labels.append(f"flightdeck.dev/application={app}")
    if component:
        labels.append(f"app.kubernetes.io/component={component}")
    return ",".join(labels)


def all_rolled_out() -> bool:
    names = [f"{STACK}-gateway"] + [f"{STACK}-{app}" for app in APPS]
    return all(deployment_rolled_out(NAMESPACE, name) for name in names)


def wait_ready(timeout: float = 300) -> None:
    kubectl("wait", "--for=condition=Ready", f"istack/{STACK}", "-n", NAMESPACE,
            f"--timeout={int(timeout)}s", timeout=timeout + 20)
    wait_until(all_rolled_out, timeout, "every Deployment of the stack to be rolled out")


@pytest.fixture(scope="module")
def fleet():
    ensure_namespace(NAMESPACE)
    apply(stack_object())
    wait_ready()
    yield service_url(NAMESPACE, f"{STACK}-gateway")
    kubectl("delete", "istack", STACK, "-n", NAMESPACE, "--ignore-not-found", "--wait=true", check=False)


def chat(base: str, prompt: str, tokens: int = 4, timeout: float = 30) -> str:
    r = httpx.post(f"{base}/v1/chat/completions", timeout=timeout,
                   json={"model": MODEL, "max_tokens": tokens,
                         "messages": [{"role": "user", "content": prompt}]})
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()["choices"][0]["message"]["content"]


def test_readers_find_both_gateways(fleet):
    gateways = [p for p in live_pods(NAMESPACE, selector(component="gateway")) if pod_ready(p)]
    assert len(gateways) == 2, [p["metadata"]["name"] for p in gateways]
    # A gateway that no reader had found would hold these until the timeout.
    for pod in gateways:
        base = f"http://{pod['status']['podIP']}:8080"
        for i in range(10):
            prompt = f"direct {pod['metadata']['name']} {i}"
            assert chat(base, prompt) == expected_answer(prompt, 4)
    # Through the Service, both applications take work from the shared group.
    served_before = {app: reader_completed(app) for app in APPS}
    load = Load(fleet, MODEL, concurrency=16, total=200).start()
    load.wait_sent(200, 120)
    tally = load.stop()
    assert tally.failed == 0 and tally.truncated == 0, tally.summary() + str(tally.errors)
    served = {app: reader_completed(app) - served_before[app] for app in APPS}
    assert all(n > 0 for n in served.values()), served


def reader_completed(app: str) -> float:
    """Requests the app's readers finished, from their own /metrics."""
    total = 0.0
    for pod in live_pods(NAMESPACE, selector(app)):
        text = httpx.get(f"http://{pod['status']['podIP']}:9090/metrics", timeout=5).text
        for line in text.splitlines():
            if line.startswith("flightdeck_reader_requests_total"):
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_rolls_of_readers_and_gateways_lose_nothing(fleet):
    load = Load(fleet, MODEL, concurrency=16, max_tokens=8, timeout=REQUEST_TIMEOUT + 30).start()
    load.wait_sent(150, 120)
    t0 = time.monotonic()
    # readerConfig rolls the readers (their engine arguments change)...
    for app in APPS:
        patch_merge("istack", STACK, NAMESPACE,
                    {"spec": {"applications": {app: {"readerConfig": {"maxBatchSize": 6}}}}})
    wait_until(lambda: get("deployment", f"{STACK}-{APPS[0]}", NAMESPACE)["metadata"]["generation"] > 1,
               60, "the reader Deployment to change")
    wait_until(all_rolled_out, 600, "the readers to roll")
    t_readers = time.monotonic() - t0
    # ... and a gateway setting rolls the gateways.
    t1 = time.monotonic()
    patch_merge("istack", STACK, NAMESPACE,
                {"spec": {"gateway": {"resources": {"requests": {"cpu": "20m", "memory": "24Mi"}}}}})
    wait_until(lambda: get("deployment", f"{STACK}-gateway", NAMESPACE)["metadata"]["generation"] > 1,
               60, "the gateway Deployment to change")
    wait_until(all_rolled_out, 600, "the gateways to roll")
    t_gateways = time.monotonic() - t1
    load.wait_sent(1000, 600)
    tally = load.stop()
    figure(f"rolls under load (readers {t_readers:.1f} s, gateways {t_gateways:.1f} s): {tally.summary()}")
    assert tally.sent >= 1000 and tally.streamed >= tally.sent // 3 - 1, tally.summary()
    assert tally.failed == 0, tally.summary() + "\n" + "\n".join(tally.errors)
    assert tally.truncated == 0, tally.summary() + "\n" + "\n".join(tally.errors)
    assert tally.cut_with_error_event == 0, tally.summary() + "\n" + "\n".join(tally.errors)


def test_a_stream_longer_than_30s_survives_a_reader_roll(fleet):
    tokens = 40_000 // TOKEN_DELAY_MS // 5 * 5  # about 40 s at the engine's token delay
    prompt = "long stream survives the roll"
    result: dict = {}

    def stream() -> None:
        text, finish = "", None
        with httpx.stream("POST", f"{fleet}/v1/chat/completions", timeout=REQUEST_TIMEOUT + 60,
                          json={"model": MODEL, "max_tokens": tokens, "stream": True,
                                "messages": [{"role": "user", "content": prompt}]}) as r:
            result["status"] = r.status_code
            for line in r.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    result["done"] = result.get("done", False) or line == "data: [DONE]"
                    continue
                event = json.loads(line[6:])
                if "error" in event:
                    result["error"] = event["error"]
                    continue
                for choice in event.get("choices", []):
                    text += (choice.get("delta") or {}).get("content") or ""
                    finish = choice.get("finish_reason") or finish
        result["text"], result["finish"] = text, finish

    t0 = time.monotonic()
    thread = threading.Thread(target=stream)
    thread.start()
    time.sleep(3)
    for app in APPS:
        patch_merge("istack", STACK, NAMESPACE,
                    {"spec": {"applications": {app: {"readerConfig": {"maxBatchSize": 5}}}}})
    wait_until(all_rolled_out, 600, "the readers to roll")
    thread.join(REQUEST_TIMEOUT + 90)
    elapsed = time.monotonic() - t0
    assert result.get("status") == 200, result.get("status")
    assert "error" not in result, result.get("error")
    assert result.get("done"), "the stream ended without [DONE]"
    assert result["text"] == expected_answer(prompt, tokens), "the stream's text is not the whole answer"
    assert elapsed > 30, f"the stream took only {elapsed:.1f} s; it must outlast the default 30 s grace"
    figure(f"a {elapsed:.0f} s stream ({tokens} tokens) finished whole across a reader roll")


def test_force_deleted_reader_loses_no_request_before_first_byte(fleet):
    load = Load(fleet, MODEL, concurrency=16, max_tokens=32, timeout=REQUEST_TIMEOUT + 30).start()
    load.wait_sent(100, 120)
    victim = live_pods(NAMESPACE, selector(APPS[0]))[0]["metadata"]["name"]
    t0 = time.monotonic()
    kubectl("delete", "pod", victim, "-n", NAMESPACE, "--grace-period=0", "--force", check=False)
    wait_until(lambda: any(p["metadata"]["name"] != victim and pod_ready(p)
                           for p in live_pods(NAMESPACE, selector(APPS[0]))),
               300, "a replacement reader pod to be Ready")
    t_replaced = time.monotonic() - t0
    load.wait_sent(load.sent() + 200, 300)
    tally = load.stop()
    figure(f"reader pod force-deleted under load (replacement Ready after {t_replaced:.1f} s): "
           f"{tally.summary()}")
    assert tally.failed == 0, tally.summary() + "\n" + "\n".join(tally.errors)
    # Streams cut mid-way must say so with the SSE error event: a silent
    # truncation is the one thing never allowed.
    assert tally.truncated == 0, tally.summary() + "\n" + "\n".join(tally.errors)


def test_scale_to_zero_and_back(fleet):
    patch_merge("istack", STACK, NAMESPACE, {"spec": {"applications": {APPS[0]: {"replicas": 0}}}})
    wait_until(lambda: not live_pods(NAMESPACE, selector(APPS[0])), 180, f"{APPS[0]}'s pods to go")
    # The other application still serves the shared group.
    prompt = "served while alpha is at zero"
    assert chat(fleet, prompt) == expected_answer(prompt, 4)
    status = get("istack", STACK, NAMESPACE)["status"]["applications"][APPS[0]]
    assert status.get("readyReplicas", 0) == 0, status
    patch_merge("istack", STACK, NAMESPACE, {"spec": {"applications": {APPS[0]: {"replicas": 1}}}})
    wait_until(lambda: any(pod_ready(p) for p in live_pods(NAMESPACE, selector(APPS[0]))), 300,
               f"{APPS[0]} to be back")
    wait_ready()


def test_deleting_the_stack_removes_its_pods(fleet):
    kubectl("delete", "istack", STACK, "-n", NAMESPACE, "--wait=true", timeout=180)
    t0 = time.monotonic()
    wait_until(lambda: not live_pods(NAMESPACE, selector()) and not get(
        "pods", namespace=NAMESPACE, selector=selector())["items"], 300, "every pod of the stack to go")
    figure(f"stack deleted: its pods gone {time.monotonic() - t0:.1f} s after the delete returned")
