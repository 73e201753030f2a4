"""The real thing: llama.cpp's OpenAI server with SmolLM2-135M behind
gateway + reader, asked by the official client."""

from __future__ import annotations

import pytest

from harness import REPO, client

pytestmark = pytest.mark.timeout(300)

LLAMA_SH = REPO / "tests" / "lib" / "llama.sh"


@pytest.fixture
def real(stack):
    engine = stack.llama_engine(LLAMA_SH, alias="smollm2")
    gateway = stack.gateway({"smollm2": ["cpu"]})
    stack.reader([gateway], ["cpu"], engine, capacity=1)
    return engine, gateway


def test_real_model_answers_a_chat_completion_and_a_streamed_one(real):
    engine, gateway = real
    api = client(gateway, timeout=120)
    question = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    answer = api.chat.completions.create(model="smollm2", messages=question, max_tokens=16,
                                         temperature=0)
    text = answer.choices[0].message.content or ""
    assert text.strip(), answer
    # Real generation: token usage is counted by the model's tokenizer.
    assert answer.usage is not None and answer.usage.completion_tokens > 0

    chunks = list(api.chat.completions.create(model="smollm2", messages=question,
                                              max_tokens=16, temperature=0, stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed.strip(), chunks
    # Several content chunks: the tokens were relayed as they came.
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1
    # Same prompt, greedy decoding: the streamed answer is the same text.
    assert streamed == text
    assert "paris" in text.lower(), text
