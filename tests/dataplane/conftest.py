"""Fixtures of the data-path scenarios: one release build, one `Stack` of
real processes per test (all killed at the end, logs printed on failure)."""

from __future__ import annotations

import os
import subprocess

import pytest

from harness import BIN_DIR, REPO, Stack

BINARIES = ("flightdeck-gateway", "flightdeck-reader", "flightdeck-test-engine")


@pytest.fixture(scope="session")
def binaries():
    """Builds the three binaries once (a no-op when run.sh already did)."""
    if os.environ.get("FLIGHTDECK_SKIP_BUILD") != "1":
        argv = ["cargo", "build", "--release", "-q"]
        for name in BINARIES:
            argv += ["-p", name]
        subprocess.run(argv, cwd=REPO, check=True, timeout=3000)
    for name in BINARIES:
        assert (BIN_DIR / name).is_file(), f"{name} was not built into {BIN_DIR}"
    return BIN_DIR


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def stack(binaries, tmp_path, request):
    stack = Stack(tmp_path)
    try:
        yield stack
    finally:
        stack.close()
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            print(stack.logs())

