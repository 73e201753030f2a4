"""Every rendered object validates: built-in kinds against the Kubernetes
JSON schemas (kubernetes-validate, strict), InferenceStacks against the
generated CRD's openAPIV3Schema, OLM and Prometheus-operator objects against
tests/packaging/schemas/ (the fields we use, from their published APIs)."""

import json
import os
import subprocess

import jsonschema
import kubernetes_validate

from .harness import CheckFailed, require
from .manifests import HERE, ROOT, load_file

# Oldest and newest schema sets kubernetes-validate ships; the CSV's
# minKubeVersion (1.20) is older than both, and the API server check covers it.
K8S_VERSIONS = [kubernetes_validate.utils.all_versions()[0], kubernetes_validate.utils.latest_version()]
CUSTOM_SCHEMAS = {
    ("olm.operatorframework.io/v1", "ClusterCatalog"): "clustercatalog.json",
    ("olm.operatorframework.io/v1", "ClusterExtension"): "clusterextension.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.json",
}


def crd_schemas():
    out = {}
    for crd in load_file(os.path.join(ROOT, "config/crd/bases/flightdeck.dev_inferencestacks.yaml")):
        for v in crd["spec"]["versions"]:
            out[(f"{crd['spec']['group']}/{v['name']}", crd["spec"]["names"]["kind"])] = v["schema"]["openAPIV3Schema"]
    return out


def validate_all(objects):
    crds = crd_schemas()
    custom = {}
    for key, name in CUSTOM_SCHEMAS.items():
        with open(os.path.join(HERE, "schemas", name), encoding="utf-8") as f:
            custom[key] = json.load(f)
    problems = []
    counts = {"kubernetes": 0, "crd": 0, "custom": 0}
    for source, obj in objects:
        key = (obj.get("apiVersion"), obj.get("kind"))
        where = f"{source}: {key[1]} {obj.get('metadata', {}).get('name')}"
        try:
            if key in crds:
                jsonschema.validate(obj, crds[key])
                counts["crd"] += 1
            elif key in custom:
                jsonschema.validate(obj, custom[key])
                counts["custom"] += 1
            else:
                for version in K8S_VERSIONS:
                    kubernetes_validate.validate(obj, version, strict=True)
                counts["kubernetes"] += 1
        except kubernetes_validate.utils.SchemaNotFoundError:
            problems.append(f"{where}: no schema for {key} (add one to tests/packaging/schemas)")
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as e:
            problems.append(f"{where}: {e.message} at {'/'.join(str(p) for p in e.absolute_path)}")
    require(not problems, "invalid objects:\n  " + "\n  ".join(problems))
    return f"{sum(counts.values())} objects ({counts['kubernetes']} built-in on {'/'.join(K8S_VERSIONS)}, " \
           f"{counts['crd']} InferenceStacks, {counts['custom']} OLM/monitoring)"


def yamllint(yamllint_bin):
    targets = ["config", "catalog", "bundle", "charts/catalog/values.yaml", "charts/catalog/examples",
               "charts/inference-stack/values.yaml", "charts/inference-stack/examples",
               "charts/monitoring/values.yaml", "charts/monitoring/examples", "watches.yaml"]
    conf = os.path.join(HERE, "yamllint.yaml")
    result = subprocess.run([yamllint_bin, "-s", "-c", conf, *targets], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise CheckFailed(result.stdout + result.stderr)


def all_checks(runner, objects, yamllint_bin):
    runner.run("every rendered object validates against its schema", validate_all, objects)
    runner.run("yamllint (config, catalog, bundle, chart values)", yamllint, yamllint_bin)
