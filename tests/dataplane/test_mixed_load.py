"""Two gateways, three readers in two consumer groups, a few hundred mixed
requests at once: every request is answered exactly once, with its own answer."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import client, expected_answer

pytestmark = pytest.mark.timeout(300)

REQUESTS = 300
CONCURRENCY = 32
READER_CAPACITY = 4


def one_request(api, i: int) -> tuple[int, str, str]:
    """Request `i`: its kind and model follow from i; returns (i, got, want)."""
    model = "model-a" if i % 2 == 0 else "model-b"
    prompt = f"req-{i} {model} word{i % 7}"
    tokens = 3 + i % 5
    kind = i % 4
    if kind == 0:
        answer = api.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}], max_tokens=tokens)
        return i, answer.choices[0].message.content, expected_answer(prompt, tokens)
    if kind == 1:
        stream = api.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}], max_tokens=tokens,
            stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        return i, text, expected_answer(prompt, tokens)
    if kind == 2:
        answer = api.completions.create(model=model, prompt=prompt, max_tokens=tokens)
        return i, answer.choices[0].text, expected_answer(prompt, tokens)
    answer = api.embeddings.create(model=f"{model}-embed", input=prompt)
    # The vector is checked for shape; its content is the engine's, tested elsewhere.
    return i, f"{len(answer.data)}x{len(answer.data[0].embedding)}", "1x8"


def test_mixed_load_through_two_gateways_and_three_readers(stack):
    models = ["model-a", "model-b", "model-a-embed", "model-b-embed"]
    routes = {"model-a": ["group-a"], "model-b": ["group-b"],
              "model-a-embed": ["group-a"], "model-b-embed": ["group-b"]}
    embed = frozenset({"model-a-embed", "model-b-embed"})
    engines = [stack.engine(models=models, token_delay_ms=1, ttft_ms=2) for _ in range(3)]
    gateways = [stack.gateway(routes, embed=embed), stack.gateway(routes, embed=embed)]
    # reader 0 serves group-a only, reader 1 both groups, reader 2 group-b only.
    groups = [["group-a"], ["group-a", "group-b"], ["group-b"]]
    for engine, reader_groups in zip(engines, groups):
        stack.reader(gateways, reader_groups, engine, capacity=READER_CAPACITY)
    apis = [client(g, timeout=60) for g in gateways]

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        results = list(pool.map(lambda i: one_request(apis[i % 2], i), range(REQUESTS)))

    wrong = [(i, got, want) for i, got, want in results if got != want]
    assert not wrong, f"{len(wrong)} wrong answers, e.g. {wrong[:3]}"
    assert sorted(i for i, _, _ in results) == list(range(REQUESTS))
    stats = [engine.stats() for engine in engines]
    # Exactly once: the engines ran each request once, none twice, none lost.
    assert sum(s["started"] for s in stats) == REQUESTS, stats
    assert sum(s["completed"] for s in stats) == REQUESTS, stats
    for s in stats:
        # Pull respects capacity across both gateways together.
        assert s["max_in_flight"] <= READER_CAPACITY, stats
    # Group membership decides who works: every reader got a share.
    assert all(s["started"] > 0 for s in stats), stats
