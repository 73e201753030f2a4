"""Runs the commands of a README (tests/readme/run.sh is the entry point).

Every fenced block in sh, bash, console or python must be preceded (blank
lines allowed) by `<!-- readme-test: MODE -->`; see tests/readme/README.md for
the modes. Prints each block before running it and ends with
`readme: N passed, M failed`.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
RUN_LANGS = {"sh", "bash", "console", "python"}
MODES = {"ci", "host", "up", "up-client", "cluster"}
MARKER = re.compile(r"^\s*<!--\s*readme-test:\s*(\S*)\s*-->\s*$")
FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})\s*([^`\s]*)[^`]*$")
# The `up` stack's address; a fixture may move it off 8080 (the blocks see it as
# README_TEST_UP_URL).
UP_URL = os.environ.setdefault("README_TEST_UP_URL", "http://127.0.0.1:8080").rstrip("/")


def env_seconds(name, default):
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        sys.exit(f"readme: {name} must be a number of seconds")


UP_TIMEOUT = env_seconds("README_TEST_UP_TIMEOUT", 1200)
HOST_TIMEOUT = env_seconds("README_TEST_HOST_TIMEOUT", 3600)
BLOCK_TIMEOUT = env_seconds("README_TEST_BLOCK_TIMEOUT", 600)
STOP_GRACE = 30


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    mode: str | None = None
    marker_error: str | None = None

    def where(self, readme):
        return f"{os.path.relpath(readme, ROOT)}:{self.line}"


@dataclass
class Results:
    passed: int = 0
    failed: int = 0
    failures: list = field(default_factory=list)

    def ok(self, what):
        self.passed += 1
        print(f"  ok: {what}", flush=True)

    def fail(self, what, why):
        self.failed += 1
        self.failures.append(f"{what}: {why}")
        print(f"  FAILED: {what}: {why}", flush=True)


def parse(path):
    """Fenced blocks with the marker that precedes each (None if absent)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    blocks, pending, i = [], None, 0
    while i < len(lines):
        line = lines[i]
        marker = MARKER.match(line)
        fence = FENCE.match(line)
        if marker:
            if pending:
                blocks.append((None, pending))
            pending = (i + 1, marker.group(1))
        elif fence:
            indent, ticks, lang = fence.groups()
            body, j = [], i + 1
            closing = re.compile(rf"^ {{0,3}}{re.escape(ticks[0])}{{{len(ticks)},}}\s*$")
            while j < len(lines) and not closing.match(lines[j]):
                body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j])
                j += 1
            block = Block(line=i + 1, lang=lang.lower(), text="\n".join(body) + "\n")
            if pending:
                block.mode = pending[1]
            blocks.append((block, pending))
            pending = None
            i = j
        elif line.strip():
            if pending:
                # A marker followed by prose: it belongs to no block.
                blocks.append((None, pending))
            pending = None
        i += 1
    if pending:
        blocks.append((None, pending))
    return blocks


def console_commands(text):
    """`$ cmd` lines of a console block (with `\\` continuations); output lines are skipped."""
    commands, current = [], None
    for line in text.splitlines():
        if current is not None:
            current += "\n" + line
        elif line.startswith("$ "):
            current = line[2:]
        else:
            continue
        if not current.endswith("\\"):
            commands.append(current)
            current = None
    if current is not None:
        commands.append(current)
    return "\n".join(commands) + "\n"


def script_of(block):
    return console_commands(block.text) if block.lang == "console" else block.text


def show(block, readme):
    print(f"\n--- [{block.mode}] {block.where(readme)} ({block.lang})", flush=True)
    for line in block.text.rstrip("\n").splitlines():
        print(f"  | {line}")
    sys.stdout.flush()


def stream(pipe, prefix, sink=None):
    for raw in iter(pipe.readline, b""):
        text = raw.decode("utf-8", "replace")
        if sink is not None:
            sink.append(text)
        sys.stdout.write(prefix + text + ("" if text.endswith("\n") else "\n"))
        sys.stdout.flush()
    pipe.close()


def descendants(pid):
    """Every live process below pid, from /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_script(cmd, timeout, env=None, capture=False):
    """Runs cmd in its own process group, streaming its output; returns
    (status or None on timeout, captured output)."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    sink = [] if capture else None
    reader = threading.Thread(target=stream, args=(proc.stdout, "    ", sink), daemon=True)
    reader.start()
    try:
        status = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        status = None
    finally:
        # Nothing a block started may outlive it (the up block is run elsewhere).
        kill_group(proc.pid)
        proc.wait()
        reader.join(timeout=5)
    return status, "".join(sink or [])


def bash(script):
    return ["bash", "-euo", "pipefail", "-c", script]


def check_status(results, what, status, timeout):
    if status is None:
        results.fail(what, f"did not finish within {timeout:.0f}s")
        return False
    if status != 0:
        results.fail(what, f"exit status {status}")
        return False
    return True


# --- modes ------------------------------------------------------------------


def check_ci(results, block, readme):
    """The block is the CI command itself: .ci/run must invoke exactly it."""
    what = f"ci {block.where(readme)}"
    commands = [c.strip() for c in script_of(block).splitlines() if c.strip() and not c.strip().startswith("#")]
    ci_path = os.path.join(ROOT, ".ci", "run")
    try:
        with open(ci_path, encoding="utf-8") as f:
            ci_lines = [line.strip() for line in f]
    except OSError as e:
        results.fail(what, f"cannot read .ci/run: {e}")
        return
    ci_commands = [line for line in ci_lines if line and not line.startswith("#")]
    missing = [c for c in commands if c not in ci_commands]
    if not commands:
        results.fail(what, "the block holds no command")
    elif missing:
        results.fail(what, f".ci/run does not run {missing}")
    else:
        print("  (not run here: it is the command CI runs, and it runs this test)")
        results.ok(f"{what}: .ci/run invokes {commands}")


def run_host(results, block, readme):
    show(block, readme)
    script = script_of(block)
    status, _ = run_script(bash(script), HOST_TIMEOUT)
    if "cluster.sh start" in script:
        # The cluster runs in a session of its own, so killing the block's
        # process group leaves it up when the block fails before its `stop`;
        # a node left running would block every later `start --node`.
        run_script(bash("tests/control-plane/cluster.sh stop"), 120)
    if check_status(results, f"host {block.where(readme)}", status, HOST_TIMEOUT):
        results.ok(f"host {block.where(readme)}")


def check_completion(output):
    """If the client printed an OpenAI JSON answer, it must be a non-empty
    completion; returns why not, or None."""
    text = output.strip()
    if not text.startswith("{"):
        return None
    try:
        body = json.loads(text)
    except json.JSONDecodeError:
        return None
    if "error" in body:
        return f"error answer: {body['error']}"
    choices = body.get("choices")
    if choices is None:
        return None
    if not choices:
        return "no choices in the answer"
    first = choices[0]
    content = (first.get("message") or {}).get("content") or first.get("text") or ""
    if not content.strip():
        return "empty completion"
    return None


def http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def run_up(results, up_blocks, clients, readme, python):
    if len(up_blocks) != 1:
        for block in up_blocks:
            results.fail(f"up {block.where(readme)}", f"exactly one `up` block is allowed, found {len(up_blocks)}")
        return
    block = up_blocks[0]
    what = f"up {block.where(readme)}"
    show(block, readme)
    if http_ok(f"{UP_URL}/healthz"):
        results.fail(what, f"something already answers on {UP_URL}; stop it first")
        for client in clients:
            results.fail(f"up-client {client.where(readme)}", "not run: the `up` stack did not start")
        return
    proc = subprocess.Popen(bash(script_of(block)), cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    reader = threading.Thread(target=stream, args=(proc.stdout, "    up| "), daemon=True)
    reader.start()
    clients_run = []
    try:
        started = time.monotonic()
        while not http_ok(f"{UP_URL}/healthz"):
            if proc.poll() is not None:
                results.fail(what, f"exited with status {proc.returncode} before {UP_URL}/healthz answered")
                return
            if time.monotonic() - started > UP_TIMEOUT:
                results.fail(what, f"{UP_URL}/healthz did not answer within {UP_TIMEOUT:.0f}s")
                return
            time.sleep(1)
        print(f"  {UP_URL}/healthz answered after {time.monotonic() - started:.0f}s", flush=True)
        for client in clients:
            run_up_client(results, client, readme, python)
            clients_run.append(id(client))
        stop_up(results, what, proc)
    finally:
        for client in clients:
            if id(client) not in clients_run:
                results.fail(f"up-client {client.where(readme)}", "not run: the `up` stack did not serve")
        kill_group(proc.pid)
        proc.wait()
        reader.join(timeout=5)


def run_up_client(results, block, readme, python):
    show(block, readme)
    what = f"up-client {block.where(readme)}"
    if block.lang == "python":
        cmd = [python, "-c", block.text]
    else:
        cmd = bash(script_of(block))
    status, output = run_script(cmd, BLOCK_TIMEOUT, capture=True)
    if not check_status(results, what, status, BLOCK_TIMEOUT):
        return
    why = check_completion(output)
    if why:
        results.fail(what, why)
    else:
        results.ok(what)


def stop_up(results, what, proc):
    """Ctrl-C as a terminal sends it: SIGINT to the whole process group; then
    the group and every process started under it must be gone in 30 s."""
    under = descendants(proc.pid)
    print(f"  stopping: SIGINT to process group {proc.pid} ({len(under) + 1} processes)", flush=True)
    try:
        os.killpg(proc.pid, signal.SIGINT)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + STOP_GRACE
    while time.monotonic() < deadline:
        left = [pid for pid in under if alive(pid)]
        if proc.poll() is not None and not group_alive(proc.pid) and not left:
            break
        time.sleep(0.2)
    left = [pid for pid in under if alive(pid)]
    if proc.poll() is None or group_alive(proc.pid) or left:
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        results.fail(what, f"processes still running {STOP_GRACE}s after SIGINT: {left or [proc.pid]}")
    else:
        results.ok(f"{what}: served, then stopped on SIGINT (status {proc.returncode}) with no process left")


def run_cluster(results, blocks, readme, bin_dir):
    """All cluster blocks in one fresh control plane: in_cluster.py runs them
    under with-cluster.sh and writes its results to a file read back here."""
    with tempfile.TemporaryDirectory(prefix="readme-cluster.") as tmp:
        spec = os.path.join(tmp, "blocks.json")
        out = os.path.join(tmp, "results.json")
        with open(spec, "w", encoding="utf-8") as f:
            json.dump({"readme": readme, "bin_dir": bin_dir,
                       "blocks": [{"line": b.line, "lang": b.lang, "text": b.text} for b in blocks]}, f)
        cmd = [os.path.join(ROOT, "tests", "control-plane", "with-cluster.sh"),
               "--timeout", str(int(BLOCK_TIMEOUT * len(blocks) + 600)),
               sys.executable, os.path.join(HERE, "in_cluster.py"), spec, out]
        print(f"\n--- [cluster] {len(blocks)} block(s) on one fresh local control plane", flush=True)
        status = subprocess.run(cmd, cwd=ROOT, stdin=subprocess.DEVNULL).returncode
        try:
            with open(out, encoding="utf-8") as f:
                inner = json.load(f)
        except (OSError, json.JSONDecodeError):
            inner = None
    if inner is None:
        results.fail("cluster", f"the cluster run ended (status {status}) without results")
        return
    results.passed += inner["passed"]
    results.failed += inner["failed"]
    results.failures += inner["failures"]
    if status != 0 and inner["failed"] == 0:
        results.fail("cluster", f"the cluster run exited with status {status}")


def validate_yaml(results, block, readme, bin_dir):
    """A yaml block holding one InferenceStack must render (`flightdeck render`)."""
    if not re.search(r"^kind:\s*InferenceStack\s*$", block.text, re.M):
        return
    what = f"yaml {block.where(readme)}: flightdeck render"
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(block.text)
    try:
        proc = subprocess.run([os.path.join(bin_dir, "flightdeck"), "render", "-f", f.name],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        results.fail(what, str(e))
        return
    finally:
        os.unlink(f.name)
    if proc.returncode != 0:
        results.fail(what, proc.stderr.strip() or f"exit status {proc.returncode}")
    else:
        results.ok(what)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--readme", default=os.path.join(ROOT, "README.md"))
    p.add_argument("--bin-dir", required=True,
                   help="directory of the flightdeck and flightdeck-operator binaries (tests/lib/build.sh)")
    p.add_argument("--python", default=sys.executable, help="python for `up-client` python blocks")
    p.add_argument("--modes", default=",".join(sorted(MODES)),
                   help="comma-separated modes to run; empty: only check the markers and yaml blocks")
    args = p.parse_args()
    readme = os.path.abspath(args.readme)
    wanted = {mode for mode in args.modes.split(",") if mode}
    if not wanted <= MODES:
        p.error(f"unknown modes {sorted(wanted - MODES)}")
    results = Results()
    by_mode = {mode: [] for mode in MODES}
    print(f"readme: checking {os.path.relpath(readme, ROOT)}", flush=True)
    for block, marker in parse(readme):
        if block is None:
            results.fail(f"{os.path.relpath(readme, ROOT)}:{marker[0]}", "marker is not followed by a fenced block")
        elif block.lang in RUN_LANGS:
            if block.mode is None:
                results.fail(block.where(readme), f"```{block.lang} block has no <!-- readme-test: MODE --> marker before it")
            elif block.mode not in MODES:
                results.fail(block.where(readme), f"unknown mode {block.mode!r} (known: {', '.join(sorted(MODES))})")
            elif block.lang == "python" and block.mode != "up-client":
                results.fail(block.where(readme), f"python blocks run only as up-client, not {block.mode}")
            else:
                by_mode[block.mode].append(block)
        elif block.mode is not None:
            results.fail(block.where(readme), f"marker on a ```{block.lang or '(no language)'} block, which is never run")
        elif block.lang in ("yaml", "yml"):
            validate_yaml(results, block, readme, args.bin_dir)
    if by_mode["up-client"] and not by_mode["up"]:
        results.fail("up-client", "up-client blocks need an `up` block to run against")
    if "ci" in wanted:
        for block in by_mode["ci"]:
            check_ci(results, block, readme)
    if "host" in wanted:
        for block in by_mode["host"]:
            run_host(results, block, readme)
    if "cluster" in wanted and by_mode["cluster"]:
        run_cluster(results, by_mode["cluster"], readme, args.bin_dir)
    if "up" in wanted and by_mode["up"]:
        run_up(results, by_mode["up"], by_mode["up-client"] if "up-client" in wanted else [],
               readme, args.python)
    if results.failures:
        print("\nreadme: failures:")
        for failure in results.failures:
            print(f"  - {failure}")
    print(f"readme: {results.passed} passed, {results.failed} failed", flush=True)
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
