"""Real processes on loopback for the data-path scenarios.

`Stack` starts test engines, gateways and readers (and the real llama.cpp
engine) as child processes on free 127.0.0.1 ports, waits until they answer,
and kills every one of them when the test ends, whatever happened. Each
process logs to a file; the logs of a failed test are printed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import openai

REPO = Path(__file__).resolve().parents[2]
READER_TOKEN = "test-reader-token"


def free_port() -> int:
    """A port the kernel just handed out; the small race is acceptable on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_json(method: str, url: str, body: dict | bytes | None = None,
              headers: dict | None = None, timeout: float = 10.0) -> tuple[int, dict, dict]:
    """One HTTP call with the standard library: (status, headers, JSON body or {}).
    A `bytes` body is sent as it is (for malformed-body tests)."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            status, response_headers = response.status, {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as err:
        raw = err.read()
        status, response_headers = err.code, {k.lower(): v for k, v in err.headers.items()}
    try:
        parsed = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        parsed = {"_raw": raw.decode(errors="replace")}
    return status, response_headers, parsed


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Polls `predicate` until it returns a truthy value; fails with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as err:  # noqa: BLE001 - any failure means "not yet"
            last_error = err
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class Proc:
    """One child process and its log file."""

    name: str
    popen: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            self.popen.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL, as when a pod's node dies: no goodbye to anyone."""
        self.signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, grace: float = 5.0) -> None:
        if not self.alive():
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Engine:
    proc: Proc
    url: str
    models: list[str]

    def stats(self) -> dict:
        return http_json("GET", f"{self.url}/stats")[2]


@dataclass
class Gateway:
    proc: Proc
    url: str
    reader_url: str
    config_path: Path

    def write_config(self, models: dict[str, list[str]], max_depth: int = 1024,
                     timeout_seconds: int = 60) -> None:
        write_gateway_config(self.config_path, models, max_depth, timeout_seconds)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as response:
            return response.read().decode()


@dataclass
class Reader:
    proc: Proc
    admin_url: str


def connected_readers(gateway: Gateway, group: str) -> int:
    """The gateway's count of readers that pulled for `group` lately."""
    prefix = f'flightdeck_gateway_connected_readers{{group="{group}"}} '
    for line in gateway.metrics().splitlines():
        if line.startswith(prefix):
            return int(float(line[len(prefix):]))
    return 0


def write_gateway_config(path: Path, models: dict[str, list[str]], max_depth: int = 1024,
                         timeout_seconds: int = 60, embed: frozenset[str] = frozenset()) -> None:
    """Writes gateway.json atomically (rename), so the gateway never reads half a file.
    Models named in `embed` serve /v1/embeddings (task embed); the others
    chat and completions (task generate), as the operator writes it."""
    config = {
        "queue": {"maxDepth": max_depth, "requestTimeoutSeconds": timeout_seconds},
        "models": {name: {"consumerGroups": groups,
                          "task": "embed" if name in embed else "generate"}
                   for name, groups in models.items()},
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config, indent=2))
    os.replace(tmp, path)


@dataclass
class Stack:
    """The processes of one test; `close()` kills them all."""

    workdir: Path
    # Where the Flightdeck binaries are (tests/lib/build.sh prints it).
    bin_dir: Path
    procs: list[Proc] = field(default_factory=list)
    # Readers started per (gateway URL, consumer group).
    pulling: dict = field(default_factory=dict)

    def _spawn(self, name: str, argv: list[str], env: dict | None = None) -> Proc:
        log = self.workdir / f"{name}-{len(self.procs)}.log"
        handle = open(log, "wb")  # noqa: SIM115 - closed with the process
        full_env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info"), **(env or {})}
        popen = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=full_env,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        handle.close()
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def _wait_ready(self, proc: Proc, url: str, timeout: float = 30.0) -> None:
        def ready():
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.log_tail()}")
            return http_ok(url)

        wait_until(ready, timeout, f"{proc.name} at {url}")

    def engine(self, models=("test-model",), ttft_ms: int = 0, token_delay_ms: int = 0,
               tokens: int = 16, max_concurrency: int = 0, fail_after_tokens: int | None = None,
               port: int | None = None) -> Engine:
        port = port or free_port()
        argv = [str(self.bin_dir / "flightdeck-test-engine"), "--listen", f"127.0.0.1:{port}",
                "--ttft-ms", str(ttft_ms), "--token-delay-ms", str(token_delay_ms),
                "--tokens", str(tokens), "--max-concurrency", str(max_concurrency)]
        for model in models:
            argv += ["--model", model]
        if fail_after_tokens is not None:
            argv += ["--fail-after-tokens", str(fail_after_tokens)]
        proc = self._spawn("engine", argv)
        url = f"http://127.0.0.1:{port}"
        self._wait_ready(proc, f"{url}/health")
        return Engine(proc, url, list(models))

    def llama_engine(self, llama_sh: Path, alias: str = "smollm2",
                     flags: tuple[str, ...] = ()) -> Engine:
        """llama.cpp's llama-server with SmolLM2 (built and cached by
        tests/lib/llama.sh); `flags` go to llama-server."""
        port = free_port()
        proc = self._spawn("llama", ["bash", str(llama_sh), "serve", str(port), alias, *flags])
        url = f"http://127.0.0.1:{port}"
        # /health answers 503 until the model is loaded.
        self._wait_ready(proc, f"{url}/health", timeout=120)
        return Engine(proc, url, [alias])

    def gateway(self, models: dict[str, list[str]], max_depth: int = 1024,
                timeout_seconds: int = 60, config_path: Path | None = None,
                token: str = READER_TOKEN, embed: frozenset[str] = frozenset()) -> Gateway:
        port, reader_port = free_port(), free_port()
        if config_path is None:
            config_path = self.workdir / f"gateway-{len(self.procs)}.json"
            write_gateway_config(config_path, models, max_depth, timeout_seconds, embed)
        argv = [str(self.bin_dir / "flightdeck-gateway"), "--listen", f"127.0.0.1:{port}",
                "--reader-listen", f"127.0.0.1:{reader_port}", "--config", str(config_path),
                "--log-format", "text"]
        proc = self._spawn("gateway", argv, {"FLIGHTDECK_READER_TOKEN": token})
        url = f"http://127.0.0.1:{port}"
        self._wait_ready(proc, f"{url}/healthz")
        return Gateway(proc, url, f"http://127.0.0.1:{reader_port}", config_path)

    def reader(self, gateways: list[Gateway], groups: list[str], engine: Engine,
               capacity: int = 4, token: str = READER_TOKEN, wait_ready: bool = True,
               extra_env: dict | None = None) -> Reader:
        admin_port = free_port()
        argv = [str(self.bin_dir / "flightdeck-reader"),
                "--gateway-urls", ",".join(g.reader_url for g in gateways),
                "--consumer-groups", ",".join(groups),
                "--engine-url", engine.url,
                "--capacity", str(capacity),
                "--admin-listen", f"127.0.0.1:{admin_port}",
                "--log-format", "text"]
        env = {"FLIGHTDECK_READER_TOKEN": token, **(extra_env or {})}
        proc = self._spawn("reader", argv, env)
        admin_url = f"http://127.0.0.1:{admin_port}"
        if wait_ready:
            self._wait_ready(proc, f"{admin_url}/healthz")
            # The reader's /readyz turns ready only when a long-poll returns
            # (up to 20 s when idle), so wait for the gateways to see it pull.
            for gateway in gateways:
                for group in groups:
                    key = (gateway.url, group)
                    self.pulling[key] = self.pulling.get(key, 0) + 1
                    want = self.pulling[key]
                    wait_until(lambda g=gateway, grp=group, n=want: connected_readers(g, grp) >= n,
                               30, f"{proc.name} pulling {group} from {gateway.url}")
        return Reader(proc, admin_url)

    def close(self) -> None:
        for proc in reversed(self.procs):
            try:
                proc.signal(signal.SIGKILL)
                proc.popen.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass

    def logs(self) -> str:
        return "\n".join(f"----- {p.name} ({p.log.name}) -----\n{p.log_tail()}" for p in self.procs)


def client(gateway: Gateway, timeout: float = 30.0) -> openai.OpenAI:
    """The official client pointed at a gateway; no retries, so every error shows."""
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0,
                         timeout=timeout)


def expected_answer(prompt: str, tokens: int) -> str:
    """What flightdeck-test-engine answers: the prompt's words, cycled, `tokens` long."""
    words = prompt.split()
    if not words:
        return " ".join(f"tok{i}" for i in range(tokens))
    return " ".join(words[i % len(words)] for i in range(tokens))


class ConfigMapDir:
    """A directory laid out like a mounted ConfigMap: `gateway.json` is a
    symlink through `..data`, and an update swaps `..data` atomically, the
    way the kubelet does (the file's own inode never changes)."""

    def __init__(self, root: Path):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.version = 0

    @property
    def path(self) -> Path:
        return self.root / "gateway.json"

    def write(self, models: dict[str, list[str]], max_depth: int = 1024,
              timeout_seconds: int = 60) -> None:
        self.version += 1
        version_dir = self.root / f"..2026_{self.version:04d}"
        version_dir.mkdir()
        write_gateway_config(version_dir / "gateway.json", models, max_depth, timeout_seconds)
        tmp_link = self.root / "..data_tmp"
        tmp_link.symlink_to(version_dir.name)
        os.replace(tmp_link, self.root / "..data")
        if not self.path.is_symlink():
            self.path.symlink_to("..data/gateway.json")
