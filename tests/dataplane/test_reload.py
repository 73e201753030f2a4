"""Routing reload: the gateway picks up a rewritten gateway.json (swapped in
the way the kubelet updates a mounted ConfigMap) without dropping queued work."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import ConfigMapDir, client, expected_answer, wait_until

pytestmark = pytest.mark.timeout(120)


def test_adding_a_model_keeps_queued_requests(stack, tmp_path):
    config = ConfigMapDir(tmp_path / "config")
    config.write({"model-a": ["group-a"]})
    gateway = stack.gateway({}, config_path=config.path)
    api = client(gateway, timeout=60)
    assert [m.id for m in api.models.list()] == ["model-a"]
    prompts = [f"queued-{i} a" for i in range(5)]
    with ThreadPoolExecutor(len(prompts)) as pool:
        # No reader yet: these wait in group-a's queue across the reload.
        futures = [pool.submit(lambda p=p: api.chat.completions.create(
            model="model-a", messages=[{"role": "user", "content": p}], max_tokens=3))
            for p in prompts]
        config.write({"model-a": ["group-a"], "model-b": ["group-b"]})
        wait_until(lambda: sorted(m.id for m in api.models.list()) == ["model-a", "model-b"],
                   15, "model-b to appear after the reload")
        engine = stack.engine(models=["model-a", "model-b"])
        stack.reader([gateway], ["group-a", "group-b"], engine)
        answers = [f.result(timeout=60).choices[0].message.content for f in futures]
    assert answers == [expected_answer(p, 3) for p in prompts]
    new = api.chat.completions.create(
        model="model-b", messages=[{"role": "user", "content": "fresh b"}], max_tokens=2)
    assert new.choices[0].message.content == "fresh b"
