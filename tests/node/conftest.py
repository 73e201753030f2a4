"""Node scenarios: the operator as a pod, stacks whose pods run on a real
kubelet + containerd node, traffic from the host through kube-proxy.

Figures (start-up and rollout timings) are collected with `figure()` and
printed at the end of the run, and written to $FLIGHTDECK_NODE_FIGURES when
set: they are benchmark output, never asserted against a time limit."""

from __future__ import annotations

import os

import pytest

_FIGURES: list[str] = []


def figure(line: str) -> None:
    _FIGURES.append(line)
    print(f"[figure] {line}", flush=True)


def pytest_terminal_summary(terminalreporter):
    if not _FIGURES:
        return
    terminalreporter.section("node figures (printed, not asserted)")
    for line in _FIGURES:
        terminalreporter.write_line(line)
    path = os.environ.get("FLIGHTDECK_NODE_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write("\n".join(_FIGURES) + "\n")


@pytest.fixture(scope="session", autouse=True)
def _cluster_has_a_node():
    from kube import get
    nodes = get("nodes")["items"]
    assert nodes, "the cluster has no node: run through tests/node/run.sh (cluster.sh start --node)"
