"""A load generator that behaves like an application: the official `openai`
client (with its default retries on connection errors, as users run it),
a mix of plain and streamed chats, and an exact account of every request.

The answers of flightdeck-test-engine are deterministic (the prompt's words,
cycled, `max_tokens` long), so a truncated or mixed-up answer is detected,
not guessed."""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field

import httpx2 as httpx
import openai


def expected_answer(prompt: str, tokens: int) -> str:
    """What flightdeck-test-engine answers (see crates/test-engine/src/generation.rs)."""
    words = prompt.split()
    return " ".join(words[i % len(words)] for i in range(tokens))


@dataclass
class Tally:
    sent: int = 0
    ok: int = 0
    streamed: int = 0
    # Failed without a byte of answer: the request is lost to the client.
    failed: int = 0
    # A stream that ended with the gateway's SSE error event after some content.
    cut_with_error_event: int = 0
    # A stream or answer that ended short or wrong without an error: never allowed.
    truncated: int = 0
    # HTTP requests beyond one per logical request (the client's retries).
    retries: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        data = sorted(self.latencies)
        return data[min(len(data) - 1, int(q * len(data)))]

    def summary(self) -> str:
        p50 = statistics.median(self.latencies) if self.latencies else float("nan")
        return (f"sent {self.sent} (streamed {self.streamed}), ok {self.ok}, failed {self.failed}, "
                f"truncated {self.truncated}, cut with SSE error event {self.cut_with_error_event}, "
                f"client retries {self.retries}; latency p50 {p50 * 1000:.0f} ms, "
                f"p99 {self.percentile(0.99) * 1000:.0f} ms")


class Load:
    """`concurrency` workers send requests to `base_url` until `stop()` (or
    until `total` have been sent); every third request streams."""

    def __init__(self, base_url: str, model: str, concurrency: int = 16, max_tokens: int = 8,
                 total: int | None = None, timeout: float = 120.0, check_answers: bool = True):
        self.base_url = base_url.rstrip("/") + "/v1"
        self.model = model
        self.concurrency = concurrency
        self.max_tokens = max_tokens
        self.total = total
        self.timeout = timeout
        self.check_answers = check_answers
        self.tally = Tally()
        self._lock = threading.Lock()
        self._next = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> "Load":
        for w in range(self.concurrency):
            t = threading.Thread(target=self._worker, name=f"load-{w}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> Tally:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self.timeout + 30)
        return self.tally

    def sent(self) -> int:
        with self._lock:
            return self.tally.sent

    def wait_sent(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.sent() < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"load sent only {self.sent()} of {n} requests in {timeout:.0f}s: "
                                     + self.tally.summary())
            time.sleep(0.1)

    def _take(self) -> int | None:
        with self._lock:
            if self._stop.is_set() or (self.total is not None and self._next >= self.total):
                return None
            i = self._next
            self._next += 1
            self.tally.sent += 1
            return i

    def _record(self, **counts: int) -> None:
        with self._lock:
            for key, value in counts.items():
                setattr(self.tally, key, getattr(self.tally, key) + value)

    def _worker(self) -> None:
        http_requests = 0

        def count(_request: httpx.Request) -> None:
            nonlocal http_requests
            http_requests += 1

        with httpx.Client(timeout=self.timeout, event_hooks={"request": [count]}) as http:
            api = openai.OpenAI(base_url=self.base_url, api_key="unused", http_client=http,
                                timeout=self.timeout)
            while (i := self._take()) is not None:
                before = http_requests
                self._one(api, i)
                self._record(retries=max(0, http_requests - before - 1))

    def _one(self, api: openai.OpenAI, i: int) -> None:
        prompt = f"load-{i} w{i % 11} x{i % 7}"
        want = expected_answer(prompt, self.max_tokens)
        messages = [{"role": "user", "content": prompt}]
        stream = i % 3 == 0
        t0 = time.monotonic()
        got, finish = "", None
        try:
            if stream:
                self._record(streamed=1)
                chunks = api.chat.completions.create(model=self.model, messages=messages,
                                                     max_tokens=self.max_tokens, stream=True)
                for chunk in chunks:
                    for choice in chunk.choices:
                        got += choice.delta.content or ""
                        finish = choice.finish_reason or finish
            else:
                answer = api.chat.completions.create(model=self.model, messages=messages,
                                                     max_tokens=self.max_tokens)
                got, finish = answer.choices[0].message.content or "", answer.choices[0].finish_reason
        except openai.APIError as err:
            # An SSE error event raises APIError after content arrived: the
            # stream was cut and said so. Anything before a byte is a loss.
            if stream and got:
                self._record(cut_with_error_event=1)
            else:
                self._record(failed=1)
            self._note(f"#{i} {'stream' if stream else 'chat'}: {type(err).__name__}: {err}")
            return
        elapsed = time.monotonic() - t0
        if finish is None or (self.check_answers and got != want) or not got:
            self._record(truncated=1)
            self._note(f"#{i}: finish_reason {finish!r}, got {got[:60]!r}, want {want[:60]!r}")
            return
        with self._lock:
            self.tally.ok += 1
            self.tally.latencies.append(elapsed)

    def _note(self, message: str) -> None:
        with self._lock:
            if len(self.tally.errors) < 20:
                self.tally.errors.append(message)
