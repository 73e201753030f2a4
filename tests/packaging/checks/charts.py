"""Chart checks: strict lint, rendering with default and example values, the
files every chart must have, and values schemas that really reject bad input."""

import json
import os
import re

from .harness import CheckFailed, require
from .manifests import CHARTS, ROOT, chart_value_sets, lint_chart, load_file, render_chart

# Metrics the dashboard may show before any binary exports them, with the
# reason. Everything else the rules and dashboard query must exist in code.
# Metrics a rule or panel may query before a binary exports them, with why.
# Empty: every queried metric is exported.
PENDING_METRICS: dict[str, str] = {}


def lint(chart):
    for _, files in chart_value_sets(chart):
        lint_chart(chart, files)
    return f"{len(chart_value_sets(chart))} value set(s)"


def renders(chart):
    counts = []
    for label, files in chart_value_sets(chart):
        objs = render_chart(chart, files, include_crds=True)
        require(objs, f"charts/{chart} with {label} values renders nothing")
        counts.append(f"{label}={len(objs)}")
    return ", ".join(counts)


def required_files(chart):
    base = os.path.join(ROOT, "charts", chart)
    for rel in ["Chart.yaml", "values.yaml", "values.schema.json", "templates/NOTES.txt", "README.md"]:
        require(os.path.isfile(os.path.join(base, rel)), f"charts/{chart}/{rel} is missing")
    with open(os.path.join(base, "values.schema.json"), encoding="utf-8") as f:
        json.load(f)
    with open(os.path.join(base, "README.md"), encoding="utf-8") as f:
        require("helm install" in f.read(), f"charts/{chart}/README.md has no install example")


BAD_VALUES = {
    "catalog": "extensions:\n  - name: Bad_Name\n    namespace: x\n    packageName: p\n"
               "    upgradeConstraintPolicy: CatalogProvided\n    installer: {create: true}\n",
    "inference-stack": "applications:\n  m:\n    engine: onnx\n    readerConfig: {modelName: x}\n",
    "monitoring": "rules:\n  enabled: true\n  queueBackingUpFor: five minutes\n",
}


def schema_rejects_bad_values(chart, tmpdir):
    path = os.path.join(tmpdir, f"bad-{chart}.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(BAD_VALUES[chart])
    try:
        render_chart(chart, [path])
    except RuntimeError as e:
        require("values" in str(e).lower() or "schema" in str(e).lower(),
                f"rendering failed, but not for the values: {e}")
        return "rejected"
    raise CheckFailed(f"charts/{chart} rendered values its schema should reject:\n{BAD_VALUES[chart]}")


def _crd_version_schema(version="v1alpha1"):
    crd = load_file(os.path.join(ROOT, "config/crd/bases/flightdeck.dev_inferencestacks.yaml"))[0]
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            return v["schema"]["openAPIV3Schema"]
    raise CheckFailed(f"the CRD has no version {version}")


def _compare_keys(path, ours, theirs, problems):
    """Our own objects must list exactly the CRD's fields; Kubernetes types
    (resources, tolerations, ...) are left to the API server."""
    ours_props = ours.get("properties")
    theirs_props = theirs.get("properties")
    if ours_props is None or theirs_props is None:
        return
    if set(ours_props) != set(theirs_props):
        problems.append(f"{path}: chart has {sorted(set(ours_props) - set(theirs_props))} extra, "
                        f"lacks {sorted(set(theirs_props) - set(ours_props))}")
    for key in set(ours_props) & set(theirs_props):
        _compare_keys(f"{path}.{key}", ours_props[key], theirs_props[key], problems)


def inference_stack_schema_mirrors_crd():
    with open(os.path.join(ROOT, "charts/inference-stack/values.schema.json"), encoding="utf-8") as f:
        values = json.load(f)
    spec = _crd_version_schema()["properties"]["spec"]
    defs = values["definitions"]
    problems = []
    _compare_keys("gateway", defs["gateway"], spec["properties"]["gateway"], problems)
    app = spec["properties"]["applications"]["additionalProperties"]
    _compare_keys("applications.*", defs["application"], app, problems)
    top = set(values["properties"]) - {"nameOverride", "labels", "annotations"}
    if top != set(spec["properties"]):
        problems.append(f"spec fields: chart {sorted(top)} vs CRD {sorted(spec['properties'])}")
    require(not problems, "charts/inference-stack/values.schema.json differs from the CRD:\n  " + "\n  ".join(problems))


def _defined_metrics():
    names = set()
    for dirpath, _, files in os.walk(os.path.join(ROOT, "crates")):
        for name in files:
            if name.endswith(".rs"):
                with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                    names.update(re.findall(r'"(flightdeck_[a-z_]+)"', f.read()))
    return names


def monitoring_queries_use_real_metrics():
    objs = render_chart("monitoring", [])
    exprs = []
    for obj in objs:
        if obj["kind"] == "PrometheusRule":
            exprs += [r["expr"] for g in obj["spec"]["groups"] for r in g["rules"]]
        if obj["kind"] == "ConfigMap":
            dashboard = json.loads(obj["data"]["flightdeck.json"])
            exprs += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = set()
    for expr in exprs:
        used.update(re.sub(r"_(bucket|sum|count)$", "", m) for m in re.findall(r"\b(flightdeck_[a-z_]+)", expr))
    defined = _defined_metrics()
    missing = sorted(m for m in used if m not in defined and m not in PENDING_METRICS)
    require(not missing, f"rules/dashboard query metrics no binary exports: {missing}")
    pending = sorted(m for m in used if m in PENDING_METRICS and m not in defined)
    return f"{len(used)} metrics; pending in code: {pending}" if pending else f"{len(used)} metrics"


def dashboard_covers_the_issue():
    with open(os.path.join(ROOT, "charts/monitoring/dashboards/flightdeck.json"), encoding="utf-8") as f:
        dashboard = json.load(f)
    titles = " | ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ["queue depth", "queue wait", "first token", "tokens per second", "429", "readers per group", "reconcile"]:
        require(topic in titles, f"the dashboard has no panel for {topic!r} (panels: {titles})")
    rules = [r["alert"] for o in render_chart("monitoring", []) if o["kind"] == "PrometheusRule"
             for g in o["spec"]["groups"] for r in g["rules"]]
    for alert in ["FlightdeckQueueBackingUp", "FlightdeckNoReadersForModel", "FlightdeckReconcileFailures"]:
        require(alert in rules, f"alert {alert} missing")
    return f"{len(dashboard['panels'])} panels, {len(rules)} alerts"


def all_checks(runner, tmpdir):
    for chart in CHARTS:
        runner.run(f"chart {chart}: files (schema, NOTES, README)", required_files, chart)
        runner.run(f"chart {chart}: lint --strict", lint, chart)
        runner.run(f"chart {chart}: template (default + examples)", renders, chart)
        runner.run(f"chart {chart}: values schema rejects bad values", schema_rejects_bad_values, chart, tmpdir)
    runner.run("chart inference-stack: values schema mirrors the CRD", inference_stack_schema_mirrors_crd)
    runner.run("chart monitoring: queries use exported metrics", monitoring_queries_use_real_metrics)
    runner.run("chart monitoring: dashboard panels and alerts", dashboard_covers_the_issue)
