"""The official `openai` client against gateway + reader + test engine: every
endpoint, streaming and not, and the errors a client meets."""

from __future__ import annotations

import base64
import struct

import openai
import pytest

from harness import READER_TOKEN, client, expected_answer, http_json

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def single(stack):
    """One engine, one gateway routing `test-model` (generation) and
    `test-embed` (embeddings) to group `g1`, one reader."""
    engine = stack.engine(models=["test-model", "test-embed"], tokens=6)
    gateway = stack.gateway({"test-model": ["g1"], "test-embed": ["g1"]},
                            embed=frozenset({"test-embed"}))
    stack.reader([gateway], ["g1"], engine)
    return engine, gateway


def test_chat_completion(single):
    _, gateway = single
    answer = client(gateway).chat.completions.create(
        model="test-model", messages=[{"role": "user", "content": "hello flightdeck"}])
    assert answer.choices[0].message.content == expected_answer("hello flightdeck", 6)
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.completion_tokens == 6


def test_streamed_chat_completion(single):
    _, gateway = single
    stream = client(gateway).chat.completions.create(
        model="test-model", messages=[{"role": "user", "content": "one two three"}],
        stream=True, max_tokens=5, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected_answer("one two three", 5)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


def test_completion_and_streamed_completion(single):
    _, gateway = single
    api = client(gateway)
    answer = api.completions.create(model="test-model", prompt="a b c", max_tokens=4)
    assert answer.choices[0].text == "a b c a"
    streamed = "".join(c.choices[0].text for c in api.completions.create(
        model="test-model", prompt="a b c", max_tokens=4, stream=True) if c.choices)
    assert streamed == "a b c a"


def test_embeddings_match_the_engine(single):
    engine, gateway = single
    through_gateway = client(gateway).embeddings.create(model="test-embed", input=["alpha", "beta"])
    assert [d.index for d in through_gateway.data] == [0, 1]
    _, _, direct = http_json("POST", f"{engine.url}/v1/embeddings",
                             {"model": "test-embed", "input": ["alpha", "beta"]})
    for got, want in zip(through_gateway.data, direct["data"]):
        assert got.embedding == pytest.approx(want["embedding"], abs=1e-6)
    assert through_gateway.data[0].embedding != through_gateway.data[1].embedding


def test_embeddings_base64_bytes_are_relayed_unchanged(single):
    engine, gateway = single
    body = {"model": "test-embed", "input": "gamma", "encoding_format": "base64"}
    _, _, via = http_json("POST", f"{gateway.url}/v1/embeddings", body)
    _, _, direct = http_json("POST", f"{engine.url}/v1/embeddings", body)
    assert via["data"][0]["embedding"] == direct["data"][0]["embedding"]
    floats = struct.unpack("<8f", base64.b64decode(via["data"][0]["embedding"]))
    assert sum(x * x for x in floats) == pytest.approx(1.0, rel=1e-4)


def test_a_route_the_model_does_not_serve_is_an_openai_404(single):
    engine, gateway = single
    api = client(gateway)
    with pytest.raises(openai.NotFoundError) as err:
        api.embeddings.create(model="test-model", input="alpha")
    assert err.value.code == "model_not_supported" and err.value.param == "model"
    assert "/v1/embeddings" in err.value.message
    with pytest.raises(openai.NotFoundError):
        api.chat.completions.create(model="test-embed", messages=[{"role": "user", "content": "x"}])
    # Refused at the gateway: the engine never saw either request.
    assert engine.stats()["started"] == 0


def test_models_lists_every_routed_model(stack):
    engine = stack.engine(models=["alpha", "beta"])
    gateway = stack.gateway({"alpha": ["g1"], "beta": ["g1", "g2"], "gamma": ["g3"]})
    stack.reader([gateway], ["g1"], engine)
    ids = sorted(model.id for model in client(gateway).models.list())
    assert ids == ["alpha", "beta", "gamma"]


def test_malformed_bodies_get_400_with_an_openai_error(single):
    _, gateway = single
    for body in (b"{not json", b'{"messages": []}', b'{"model": 42}', b"[]"):
        status, _, answer = http_json("POST", f"{gateway.url}/v1/chat/completions", body)
        assert status == 400, body
        assert set(answer["error"]) >= {"message", "type", "code"}, answer
        assert answer["error"]["type"] == "invalid_request_error"


def test_unknown_model_is_404(single):
    _, gateway = single
    with pytest.raises(openai.NotFoundError) as raised:
        client(gateway).chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert raised.value.body["code"] == "model_not_found"


def test_pulling_without_the_reader_token_is_401(single):
    _, gateway = single
    lease = f"{gateway.reader_url}/v1/reader/lease?groups=g1&waitMs=0"
    status, _, answer = http_json("POST", lease)
    assert status == 401
    assert answer["error"]["type"] == "authentication_error"
    status, _, _ = http_json("POST", lease, headers={"Authorization": "Bearer wrong-token"})
    assert status == 401
    status, _, _ = http_json("POST", lease, headers={"Authorization": f"Bearer {READER_TOKEN}"})
    assert status in (200, 204)


def test_a_reader_with_a_wrong_token_gets_no_work(stack):
    engine = stack.engine()
    gateway = stack.gateway({"test-model": ["g1"]}, timeout_seconds=3)
    stack.reader([gateway], ["g1"], engine, token="wrong-token", wait_ready=False)
    with pytest.raises(openai.APIStatusError) as raised:
        client(gateway).chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": "hi"}])
    assert raised.value.status_code == 504
    assert engine.stats()["started"] == 0

