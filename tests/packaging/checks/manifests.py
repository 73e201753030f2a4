"""Reading and rendering the manifests under test: charts (through the Helm
SDK), kustomize trees (kubectl kustomize), YAML files."""

import glob
import os
import subprocess
import sys

import yaml

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(os.path.dirname(HERE))
HELM_TOOL = os.path.join(HERE, "helm_tool.py")
CHARTS = ["catalog", "inference-stack", "monitoring"]
# Namespace each chart is rendered into, as its README installs it.
CHART_NAMESPACES = {"catalog": "flightdeck-system", "inference-stack": "llm", "monitoring": "monitoring"}


def docs(text):
    return [d for d in yaml.safe_load_all(text) if d]


def load_file(path):
    with open(path, encoding="utf-8") as f:
        return docs(f.read())


def run(cmd, **kw):
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, **kw)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stderr}{result.stdout}")
    return result.stdout


def chart_value_sets(chart):
    """(label, [values files]) for the defaults and every examples/*.yaml."""
    sets = [("default", [])]
    for path in sorted(glob.glob(os.path.join(ROOT, "charts", chart, "examples", "*.yaml"))):
        sets.append((os.path.basename(path)[:-5], [path]))
    return sets


def helm(command, chart, values_files, *extra):
    cmd = [sys.executable, HELM_TOOL, command, os.path.join("charts", chart),
           "--namespace", CHART_NAMESPACES[chart], *extra]
    for f in values_files:
        cmd += ["-f", f]
    return run(cmd)


def render_chart(chart, values_files, include_crds=False):
    extra = ["--name", "flightdeck"] + (["--include-crds"] if include_crds else [])
    return docs(helm("template", chart, values_files, *extra))


def kustomize(path):
    return docs(run(["kubectl", "kustomize", path]))


def rendered_everything():
    """Every rendered object, as (source label, object)."""
    out = []
    for chart in CHARTS:
        for label, files in chart_value_sets(chart):
            for obj in render_chart(chart, files, include_crds=True):
                out.append((f"charts/{chart} ({label})", obj))
    for tree in ["config/default", "config/crd", "config/samples"]:
        for obj in kustomize(tree):
            out.append((tree, obj))
    return out
