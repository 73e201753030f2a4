"""Reading and rendering the manifests under test: charts (with helm,
tests/lib/helm: the Helm SDK), kustomize trees (kubectl kustomize), YAML files."""

import glob
import os
import subprocess

import yaml

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(os.path.dirname(HERE))
HELM = os.path.join(ROOT, "tests", "lib", "helm", "helm")
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


def helm(*args, values_files=()):
    cmd = [HELM, *args]
    for f in values_files:
        cmd += ["-f", f]
    return run(cmd)


def lint_chart(chart, values_files):
    # Strict, and for the oldest Kubernetes the charts support (kubeVersion).
    return helm("lint", os.path.join("charts", chart), "--strict", "--kube-version", "v1.20.2",
                "--namespace", CHART_NAMESPACES[chart], values_files=values_files)


def render_chart(chart, values_files, include_crds=False):
    extra = ["--include-crds"] if include_crds else []
    return docs(helm("template", "flightdeck", os.path.join("charts", chart),
                     "--namespace", CHART_NAMESPACES[chart], *extra, values_files=values_files))


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
