"""A tiny check runner: each check is a named function that raises
CheckFailed (or any exception) on failure; the run prints one line per
check and a closing 'N passed, N failed' line that CI reads."""

import traceback


class CheckFailed(Exception):
    """A check found a problem; the message says what and how to fix it."""


class Runner:
    def __init__(self):
        self.passed = 0
        self.failed = []

    def run(self, name, fn, *args):
        try:
            detail = fn(*args)
        except CheckFailed as e:
            self.failed.append(name)
            print(f"FAIL {name}: {e}", flush=True)
        except Exception:  # a crash in a check is a failure, with its trace
            self.failed.append(name)
            print(f"FAIL {name}:\n{traceback.format_exc()}", flush=True)
        else:
            self.passed += 1
            print(f"ok   {name}{': ' + detail if detail else ''}", flush=True)

    def summary(self):
        for name in self.failed:
            print(f"failed: {name}")
        print(f"packaging: {self.passed} passed, {len(self.failed)} failed", flush=True)
        return 0 if not self.failed else 1


def require(condition, message):
    if not condition:
        raise CheckFailed(message)
