"""Fixtures of the data-path scenarios: the project's one release build
(tests/lib/build.sh), one `Stack` of real processes per test (all killed at
the end, logs printed on failure)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness import REPO, Stack


@pytest.fixture(scope="session")
def binaries() -> Path:
    """The directory of the release binaries: tests/lib/build.sh builds them
    (a no-op when up to date) and prints it; with FLIGHTDECK_BIN_DIR set, as
    run.sh sets it, it only checks that directory."""
    built = subprocess.run([str(REPO / "tests" / "lib" / "build.sh")], cwd=REPO, check=True,
                           stdout=subprocess.PIPE, text=True, timeout=3600)
    return Path(built.stdout.strip())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def stack(binaries, tmp_path, request):
    stack = Stack(tmp_path, binaries)
    try:
        yield stack
    finally:
        stack.close()
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            print(stack.logs())

