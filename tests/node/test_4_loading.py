"""An engine that takes a while to load its model (the test engine's
--load-seconds answers /health 503 and /v1/models 200 meanwhile, as
llama-server does): the reader pod stays unready and pulls nothing until
/health says ready, and a request sent during the load waits in the
gateway's queue and is answered, never a 503."""

from __future__ import annotations

import json
import threading
import time

import httpx2 as httpx

from conftest import figure
from kube import (apply, ensure_namespace, get_or_none, image, kubectl, live_pods, pod_ready,
                  service_url, wait_until)

NAMESPACE = "loading"
STACK = "loading"
LOAD_SECONDS = 20


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_loading_engine_gets_no_work_and_no_client_sees_a_503():
    ensure_namespace(NAMESPACE)
    apply({
        "apiVersion": "flightdeck.dev/v1alpha1",
        "kind": "InferenceStack",
        "metadata": {"name": STACK, "namespace": NAMESPACE},
        "spec": {
            "gateway": {"replicas": 1, "queue": {"requestTimeoutSeconds": 120}},
            "applications": {"slow": {
                "engine": "llamacpp",
                "image": image("test-engine"),
                "extraArgs": ["--load-seconds", str(LOAD_SECONDS)],
                "readerConfig": {"modelName": "/models/slow", "servedModelName": "slow",
                                 "device": "cpu", "maxBatchSize": 2},
            }},
        },
    })
    try:
        selector = f"app.kubernetes.io/instance={STACK},flightdeck.dev/application=slow"
        url = wait_until(lambda: get_or_none("service", f"{STACK}-gateway", NAMESPACE)
                         and service_url(NAMESPACE, f"{STACK}-gateway"), 120, "the gateway Service")
        wait_until(lambda: answers(f"{url}/healthz"), 180, "the gateway to answer")
        engine_started = wait_until(
            lambda: next((c["state"]["running"]["startedAt"]
                          for p in live_pods(NAMESPACE, selector)
                          for c in p["status"].get("containerStatuses", [])
                          if c["name"] == "engine" and "running" in c.get("state", {})), None),
            180, "the engine container to start")
        t_engine = time.monotonic()
        answer: dict = {}

        def ask() -> None:
            r = httpx.post(f"{url}/v1/chat/completions", timeout=150,
                           json={"model": "slow", "max_tokens": 3,
                                 "messages": [{"role": "user", "content": "a b c"}]})
            answer.update(status=r.status_code, body=r.text, at=time.monotonic())

        thread = threading.Thread(target=ask)
        thread.start()
        # During the load the pod is not Ready (its reader's /readyz says why).
        time.sleep(LOAD_SECONDS / 2)
        pod = live_pods(NAMESPACE, selector)[0]
        assert not pod_ready(pod), "the reader pod is Ready while its engine still loads"
        assert "status" not in answer, f"answered during the load: {answer}"
        thread.join(180)
        assert answer.get("status") == 200, answer
        assert json.loads(answer["body"])["choices"][0]["message"]["content"] == "a b c", answer
        ready_at = wait_until(lambda: any(pod_ready(p) for p in live_pods(NAMESPACE, selector))
                              and time.monotonic(), 60, "the reader pod to turn Ready")
        figure(f"engine loading {LOAD_SECONDS} s (engine started {engine_started}): the request sent during "
               f"the load was answered {answer['at'] - t_engine:.1f} s after the engine started "
               f"(pod Ready seen {ready_at - t_engine:.1f} s after); no 503")
    finally:
        kubectl("delete", "istack", STACK, "-n", NAMESPACE, "--ignore-not-found", "--wait=true")
