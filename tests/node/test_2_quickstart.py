"""examples/quickstart.yaml on the node with the real llama.cpp engine image
(llama-server built from source, SmolLM2's GGUF baked in): the pods turn
Ready only once the model answers, `kubectl wait` returns, status counts the
ready pods, and the official openai client gets an answer, a stream and the
model list through the gateway's ClusterIP Service from the host."""

from __future__ import annotations

import os
import time

import httpx2 as httpx
import openai
import pytest

from conftest import figure
from kube import (apply, ensure_namespace, get, get_or_none, image, kubectl, live_pods,
                  load_example, pod_ready, service_url, wait_until)

NAMESPACE = "quickstart"
STACK = "quickstart"
MODEL = "smollm2"


@pytest.fixture(scope="module")
def applied():
    ensure_namespace(NAMESPACE)
    stack = load_example("examples/quickstart.yaml")
    app = stack["spec"]["applications"][MODEL]
    # The example names a Hugging Face repository; the node has no internet,
    # so the stack runs the image that carries the same model at a path.
    app["image"] = image("llamacpp")
    app["readerConfig"]["modelName"] = os.environ["FLIGHTDECK_LLAMA_MODEL"]
    t0 = time.monotonic()
    apply(stack, NAMESPACE)
    yield t0
    kubectl("delete", "istack", STACK, "-n", NAMESPACE, "--ignore-not-found", "--wait=true")
    wait_until(lambda: not live_pods(NAMESPACE, f"app.kubernetes.io/instance={STACK}"), 120,
               "the quickstart's pods to go")


def ready(applied) -> str:
    """Waits (if the first test did not) until the stack is Ready; its URL."""
    kubectl("wait", "--for=condition=Ready", f"istack/{STACK}", "-n", NAMESPACE, "--timeout=600s",
            timeout=620)
    return service_url(NAMESPACE, f"{STACK}-gateway")


def test_first_answer_and_ready(applied):
    t0 = applied
    url = wait_until(lambda: get_or_none("service", f"{STACK}-gateway", NAMESPACE)
                     and service_url(NAMESPACE, f"{STACK}-gateway"), 120, "the gateway Service")
    api = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=30)
    statuses: list[int] = []

    # A request sent before any reader is up waits in the gateway's queue and
    # is answered once the model is loaded; until the gateway pod itself
    # answers, the connection is refused. Any HTTP error status is a defect
    # (the reader must not pull while the engine still loads).
    def answered():
        try:
            return api.chat.completions.create(model=MODEL, max_tokens=8,
                                               messages=[{"role": "user", "content": "Say hi."}])
        except openai.APIStatusError as err:
            statuses.append(err.status_code)
            return None
        except (openai.APIConnectionError, openai.APITimeoutError):
            return None

    first = wait_until(answered, 600, "the first answered chat", interval=0.5)
    t_first = time.monotonic() - t0
    assert first.choices[0].message.content, first
    assert statuses == [], f"the gateway answered errors while the stack started: {statuses}"

    t_wait = time.monotonic()
    kubectl("wait", "--for=condition=Ready", f"istack/{STACK}", "-n", NAMESPACE, "--timeout=600s",
            timeout=620)
    t_ready = time.monotonic() - t0
    figure(f"quickstart (llama.cpp, images cached): kubectl apply -> first answered request "
           f"{t_first:.1f} s, -> condition Ready {t_ready:.1f} s "
           f"(kubectl wait itself {time.monotonic() - t_wait:.1f} s)")


def test_status_counts_ready_pods(applied):
    ready(applied)
    stack = get("istack", STACK, NAMESPACE)
    status = stack["status"]
    assert status["applications"][MODEL]["readyReplicas"] == 1, status
    assert status["gateway"]["readyReplicas"] == 1, status
    readers = live_pods(NAMESPACE, f"app.kubernetes.io/instance={STACK},flightdeck.dev/application={MODEL}")
    assert len(readers) == 1 and pod_ready(readers[0]), readers
    # Both containers of the reader pod run: the reader and the engine.
    assert {c["name"]: c["ready"] for c in readers[0]["status"]["containerStatuses"]} \
        and all(c["ready"] for c in readers[0]["status"]["containerStatuses"])


def test_openai_client_chat_stream_and_models(applied):
    url = ready(applied)
    api = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)

    models = [m.id for m in api.models.list()]
    assert MODEL in models, models

    answer = api.chat.completions.create(
        model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "What is 2 + 2?"}])
    assert answer.choices[0].message.content.strip()
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert answer.usage and answer.usage.completion_tokens > 0

    text, finish, usage = "", None, None
    t0 = time.monotonic()
    for chunk in api.chat.completions.create(
            model=MODEL, max_tokens=32, stream=True, stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "Name three colours."}]):
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
        usage = chunk.usage or usage
    assert text.strip() and finish in ("stop", "length"), (text, finish)
    assert usage and usage.completion_tokens > 0, usage
    figure(f"quickstart: one streamed chat of {usage.completion_tokens} tokens in "
           f"{time.monotonic() - t0:.2f} s through gateway + reader + llama-server")


def test_a_route_the_model_does_not_serve_is_refused_by_the_gateway(applied):
    # The quickstart's task is generate: llama-server runs without
    # --embeddings, and the gateway answers for it instead of relaying.
    url = ready(applied)
    api = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=30)
    with pytest.raises(openai.NotFoundError) as err:
        api.embeddings.create(model=MODEL, input="hello")
    assert err.value.code == "model_not_supported", err.value


def test_a_pod_is_ready_only_once_the_model_answers(applied):
    ready(applied)
    # The reader pod's readiness comes from the reader, which counts the
    # engine ready only on its real /health. A Ready pod answers at once.
    reader = live_pods(NAMESPACE, f"app.kubernetes.io/instance={STACK},flightdeck.dev/application={MODEL}")[0]
    assert pod_ready(reader)
    ip = reader["status"]["podIP"]
    body = httpx.get(f"http://{ip}:9090/readyz", timeout=5)
    assert body.status_code == 200, body.text
