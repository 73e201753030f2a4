"""What happens when things go wrong: readers killed or stopped, clients
leaving, queues filling up."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx2 as httpx
import openai
import pytest

from harness import client, expected_answer, http_json, wait_until

pytestmark = pytest.mark.timeout(120)

CHAT = "/v1/chat/completions"


def chat_body(prompt: str, **extra) -> dict:
    return {"model": "test-model", "messages": [{"role": "user", "content": prompt}], **extra}


def test_killed_reader_loses_no_leased_request(stack):
    # The slow engine holds every request for 30 s before its first token, so
    # the doomed reader is holding leases (not yet answered) when it dies.
    slow = stack.engine(ttft_ms=30_000, tokens=4)
    fast = stack.engine(tokens=4)
    gateway = stack.gateway({"test-model": ["g1"]})
    doomed = stack.reader([gateway], ["g1"], slow, capacity=4)
    api = client(gateway, timeout=60)
    prompts = [f"leased-{i} x" for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(lambda p=p: api.chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": p}])) for p in prompts]
        wait_until(lambda: slow.stats()["in_flight"] == 4, 20, "4 requests leased by the doomed reader")
        stack.reader([gateway], ["g1"], fast, capacity=4)
        doomed.proc.kill()
        answers = [f.result(timeout=60) for f in futures]
    assert [a.choices[0].message.content for a in answers] == [expected_answer(p, 4) for p in prompts]
    assert fast.stats()["completed"] == 4
    assert "flightdeck_gateway_redeliveries_total" in gateway.metrics()


def test_reader_killed_mid_stream_gives_the_client_an_error_event(stack):
    engine = stack.engine(token_delay_ms=50, tokens=400)
    gateway = stack.gateway({"test-model": ["g1"]})
    reader = stack.reader([gateway], ["g1"], engine)
    stream = client(gateway).chat.completions.create(
        model="test-model", messages=[{"role": "user", "content": "long story"}], stream=True)
    received = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in stream:
            received.append(chunk)
            if len(received) == 5:
                reader.proc.kill()
    # An error event from the gateway, not a dropped connection or a silent end.
    assert not isinstance(raised.value, openai.APIConnectionError), raised.value
    assert 5 <= len(received) < 400


def test_reader_killed_mid_stream_raw_sse_ends_with_an_error_and_no_done(stack):
    engine = stack.engine(token_delay_ms=50, tokens=400)
    gateway = stack.gateway({"test-model": ["g1"]})
    reader = stack.reader([gateway], ["g1"], engine)
    data = []
    with httpx.stream("POST", gateway.url + CHAT, json=chat_body("raw", stream=True),
                      timeout=30) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                data.append(line[len("data: "):])
                if len(data) == 3:
                    reader.proc.kill()
    assert "[DONE]" not in data
    assert data[-1].startswith('{"error"'), data[-3:]


def test_client_disconnect_frees_the_slot_and_cancels_at_the_engine(stack):
    engine = stack.engine(token_delay_ms=50, tokens=1000)
    gateway = stack.gateway({"test-model": ["g1"]})
    stack.reader([gateway], ["g1"], engine, capacity=1)
    with httpx.stream("POST", gateway.url + CHAT, json=chat_body("bye", stream=True),
                      timeout=30) as response:
        lines = response.iter_lines()
        for _ in range(3):
            next(lines)
    # The client went away: the engine must see the cancellation ...
    wait_until(lambda: engine.stats()["cancelled"] == 1, 15, "cancellation at the engine")
    stats = engine.stats()
    assert (stats["in_flight"], stats["completed"]) == (0, 0), stats
    # ... and the reader's only slot serves the next request.
    answer = client(gateway, timeout=20).chat.completions.create(
        model="test-model", messages=[{"role": "user", "content": "next"}], max_tokens=3)
    assert answer.choices[0].message.content == "next next next"


def test_full_queue_answers_429_with_retry_after(stack):
    # No reader serves g1, so requests stay queued until the queue is full.
    gateway = stack.gateway({"test-model": ["g1"]}, max_depth=2, timeout_seconds=20)
    waiting = [threading.Thread(target=post_ignoring_errors, daemon=True,
                                args=("POST", gateway.url + CHAT, chat_body(f"q{i}")),
                                kwargs={"timeout": 30}) for i in range(2)]
    for thread in waiting:
        thread.start()
    wait_until(lambda: queue_depth(gateway) == 2, 10, "two queued requests")
    status, headers, answer = http_json("POST", gateway.url + CHAT, chat_body("one too many"))
    assert status == 429
    assert int(headers["retry-after"]) >= 1
    assert answer["error"]["type"] == "rate_limit_error"
    with pytest.raises(openai.RateLimitError):
        client(gateway).chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": "again"}])


def post_ignoring_errors(method: str, url: str, body: dict, timeout: float) -> None:
    """A request left waiting in the queue; the gateway is killed under it."""
    try:
        http_json(method, url, body, timeout=timeout)
    except OSError:
        pass


def queue_depth(gateway) -> int:
    depth = 0
    for line in gateway.metrics().splitlines():
        if line.startswith("flightdeck_gateway_queue_depth"):
            depth += int(float(line.rsplit(" ", 1)[1]))
    return depth


def test_sigterm_on_a_reader_finishes_its_in_flight_request(stack):
    engine = stack.engine(token_delay_ms=40, tokens=50)
    gateway = stack.gateway({"test-model": ["g1"]})
    reader = stack.reader([gateway], ["g1"], engine)
    stream = client(gateway).chat.completions.create(
        model="test-model", messages=[{"role": "user", "content": "finish me"}], stream=True)
    pieces = []
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
        if len(pieces) == 3:
            reader.proc.signal(signal.SIGTERM)
    assert "".join(pieces) == expected_answer("finish me", 50)
    assert reader.proc.popen.wait(timeout=30) == 0
    assert engine.stats()["completed"] == 1


def test_a_stopping_reader_takes_no_new_work(stack):
    engine = stack.engine(token_delay_ms=40, tokens=50)
    other = stack.engine(tokens=2)
    gateway = stack.gateway({"test-model": ["g1"]})
    reader = stack.reader([gateway], ["g1"], engine)
    api = client(gateway, timeout=30)
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(lambda: api.chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": "long"}]))
        wait_until(lambda: engine.stats()["in_flight"] == 1, 10, "the long request running")
        reader.proc.signal(signal.SIGTERM)
        time.sleep(0.5)
        stack.reader([gateway], ["g1"], other)
        later = api.chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": "later"}])
        assert later.choices[0].message.content == "later later"
        assert running.result(timeout=30).choices[0].message.content == expected_answer("long", 50)
    assert engine.stats()["started"] == 1
