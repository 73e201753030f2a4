"""OLM v1 checks: the CSV matches config/, the bundle's annotations match its
Dockerfile labels, the file-based catalog is well formed and matches its
semver template, published bundle entries never change, and the catalog
chart's installer can grant what the bundle asks for."""

import copy
import os
import re
import subprocess

import yaml

from .harness import CheckFailed, require
from .manifests import ROOT, docs, kustomize, load_file, render_chart

CSV_PATH = "bundle/manifests/flightdeck-operator.clusterserviceversion.yaml"
ANNOTATIONS_PATH = "bundle/metadata/annotations.yaml"
CATALOG_PATH = "catalog/configs/flightdeck-operator/catalog.yaml"
TEMPLATE_PATH = "catalog/operator_catalog.yaml"
OWN_IMAGE = re.compile(r"[^\s\"=]+/(flightdeck-(?:operator|gateway|reader))(?::[^\s\"]+|@sha256:[0-9a-f]+)")


def csv():
    return load_file(os.path.join(ROOT, CSV_PATH))[0]


def normalize_images(value):
    """Our image references as IMAGE(name): the CSV pins registry and
    version, config/ names the defaults."""
    return yaml.safe_load(OWN_IMAGE.sub(r"IMAGE(\1)", yaml.safe_dump(value)))


def csv_deployment_matches_config():
    config = [o for o in kustomize("config/default") if o["kind"] == "Deployment"]
    ours = csv()["spec"]["install"]["spec"]["deployments"]
    require(len(config) == len(ours), f"config/default has {len(config)} Deployments, the CSV {len(ours)}")
    for dep in config:
        match = [d for d in ours if d["name"] == dep["metadata"]["name"]]
        require(match, f"the CSV has no deployment {dep['metadata']['name']}")
        require(normalize_images(match[0]["spec"]) == normalize_images(dep["spec"]),
                f"CSV deployment {dep['metadata']['name']} differs from config/default: run `make bundle`")
    image = ours[0]["spec"]["template"]["spec"]["containers"][0]["image"]
    version = csv()["spec"]["version"]
    require(image.endswith(f"/flightdeck-operator:{version}"), f"CSV runs {image}, not version {version}")
    return f"{len(config)} deployment(s), image {image}"


def _bound_rules(objects, account):
    roles = {(o["kind"], o["metadata"]["name"]): o.get("rules", []) for o in objects
             if o["kind"] in ("ClusterRole", "Role")}
    cluster, namespaced = [], []
    for b in objects:
        if b["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        if not any(s.get("kind") == "ServiceAccount" and s.get("name") == account for s in b.get("subjects", [])):
            continue
        rules = roles[(b["roleRef"]["kind"], b["roleRef"]["name"])]
        (cluster if b["kind"] == "ClusterRoleBinding" else namespaced).extend(rules)
    return cluster, namespaced


def csv_permissions_match_config():
    objects = kustomize("config/default")
    spec = csv()["spec"]["install"]["spec"]
    account = spec["deployments"][0]["spec"]["template"]["spec"]["serviceAccountName"]
    cluster, namespaced = _bound_rules(objects, account)
    csv_cluster = [r for p in spec.get("clusterPermissions", []) if p["serviceAccountName"] == account for r in p["rules"]]
    csv_ns = [r for p in spec.get("permissions", []) if p["serviceAccountName"] == account for r in p["rules"]]
    require(csv_cluster == cluster, f"CSV clusterPermissions differ from config/rbac:\n{csv_cluster}\nvs\n{cluster}")
    require(csv_ns == namespaced, f"CSV permissions differ from config/rbac:\n{csv_ns}\nvs\n{namespaced}")
    for rule in cluster + namespaced:
        for field in ("apiGroups", "resources", "verbs"):
            require("*" not in rule.get(field, []), f"wildcard in {rule}")
    return f"{len(cluster)} cluster rule(s), {len(namespaced)} namespaced rule(s) for {account}"


def csv_is_complete():
    c = csv()
    s = c["spec"]
    modes = {m["type"]: m["supported"] for m in s["installModes"]}
    require(modes == {"OwnNamespace": False, "SingleNamespace": False, "MultiNamespace": False, "AllNamespaces": True},
            f"install modes must be AllNamespaces only (OLM v1), got {modes}")
    for field in ("displayName", "description", "icon", "keywords", "links", "maturity", "minKubeVersion",
                  "maintainers", "provider", "version"):
        require(s.get(field), f"CSV spec.{field} is empty")
    require(s["icon"][0]["mediatype"].startswith("image/") and s["icon"][0]["base64data"], "CSV icon is incomplete")
    crds = s.get("customresourcedefinitions", {})
    require(not crds.get("owned"), "the CSV owns a CRD: OLM v1 would require it in the bundle; the catalog chart owns it")
    require(crds.get("required"), "the CSV describes no CRD for the console")
    for d in crds["required"]:
        require(d.get("description") and d.get("displayName"), f"CRD description incomplete: {d}")
    require(not s.get("webhookdefinitions") and not s.get("apiservicedefinitions", {}).get("owned"),
            "no webhooks or API services in the bundle")
    require(c["metadata"]["name"] == f"flightdeck-operator.v{s['version']}", "CSV name must be PACKAGE.vVERSION")
    files = sorted(os.listdir(os.path.join(ROOT, "bundle/manifests")))
    require(files == [os.path.basename(CSV_PATH)], f"bundle/manifests must hold only the CSV (no CRD), has {files}")
    alm = yaml.safe_load(c["metadata"]["annotations"]["alm-examples"])
    require(alm and alm[0]["kind"] == "InferenceStack", "alm-examples has no InferenceStack")
    return f"{c['metadata']['name']}, minKubeVersion {s['minKubeVersion']}"


def annotations():
    return load_file(os.path.join(ROOT, ANNOTATIONS_PATH))[0]["annotations"]


def dockerfile_labels(path):
    """LABEL key=value pairs of a Dockerfile (continuations joined)."""
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        text = f.read().replace("\\\n", " ")
    labels = {}
    for line in text.splitlines():
        if line.strip().startswith("LABEL "):
            for key, value in re.findall(r'([\w./-]+)=("(?:[^"\\]|\\.)*"|\S+)', line.strip()[6:]):
                labels[key] = value[1:-1] if value.startswith('"') else value
    return labels


def bundle_annotations_match_dockerfile():
    a = annotations()
    expected = {
        "operators.operatorframework.io.bundle.mediatype.v1": "registry+v1",
        "operators.operatorframework.io.bundle.manifests.v1": "manifests/",
        "operators.operatorframework.io.bundle.metadata.v1": "metadata/",
        "operators.operatorframework.io.bundle.package.v1": "flightdeck-operator",
    }
    for key, value in expected.items():
        require(a.get(key) == value, f"annotation {key} is {a.get(key)!r}, want {value!r}")
    require(a.get("operators.operatorframework.io.bundle.channel.default.v1") in
            a.get("operators.operatorframework.io.bundle.channels.v1", "").split(","), "default channel not in channels")
    labels = dockerfile_labels("bundle.Dockerfile")
    missing = {k: v for k, v in a.items() if labels.get(k) != v}
    require(not missing, f"bundle.Dockerfile labels differ from annotations.yaml: {missing}")
    return f"{len(a)} annotations"


def catalog_blobs(text=None):
    if text is None:
        with open(os.path.join(ROOT, CATALOG_PATH), encoding="utf-8") as f:
            text = f.read()
    return docs(text)


def _version_key(v):
    core, _, pre = v.partition("-")
    return tuple(int(x) for x in core.split("+")[0].split(".")), pre == "", pre


def catalog_is_valid_fbc():
    blobs = catalog_blobs()
    packages = [b for b in blobs if b["schema"] == "olm.package"]
    channels = [b for b in blobs if b["schema"] == "olm.channel"]
    bundles = [b for b in blobs if b["schema"] == "olm.bundle"]
    require(len(packages) == 1, f"want one olm.package, got {len(packages)}")
    require(len(blobs) == len(packages) + len(channels) + len(bundles), "unknown blob schemas")
    pkg = packages[0]["name"]
    names = [b["name"] for b in bundles]
    require(len(names) == len(set(names)), "duplicate bundle names")
    in_channels = set()
    for ch in channels:
        require(ch["package"] == pkg and ch["name"] and ch["entries"], f"channel {ch} incomplete")
        entries = [e["name"] for e in ch["entries"]]
        require(len(entries) == len(set(entries)), f"channel {ch['name']} lists a bundle twice")
        require(set(entries) <= set(names), f"channel {ch['name']} names bundles not in the catalog")
        replaced = {e.get("replaces") for e in ch["entries"]} | {s for e in ch["entries"] for s in e.get("skips", [])}
        heads = [e for e in entries if e not in replaced]
        require(len(heads) == 1, f"channel {ch['name']} must have one head, has {heads}")
        in_channels |= set(entries)
    require(packages[0]["defaultChannel"] in {c["name"] for c in channels}, "defaultChannel is not a channel")
    require(in_channels == set(names), f"bundles in no channel: {set(names) - in_channels}")
    for b in bundles:
        require(b["package"] == pkg and b["image"], f"bundle {b['name']} incomplete")
        types = [p["type"] for p in b["properties"]]
        require(types.count("olm.package") == 1 and "olm.gvk" in types, f"bundle {b['name']} needs olm.package and olm.gvk")
        version = next(p["value"]["version"] for p in b["properties"] if p["type"] == "olm.package")
        require(b["name"] == f"{pkg}.v{version}", f"bundle {b['name']} does not carry version {version}")
    return f"{len(channels)} channel(s), {len(bundles)} bundle(s), default {packages[0]['defaultChannel']}"


def catalog_matches_template():
    template = load_file(os.path.join(ROOT, TEMPLATE_PATH))[0]
    require(template["schema"] == "olm.semver" and template.get("generateMajorChannels"),
            "the template must be olm.semver with generateMajorChannels")
    listed = {b["image"]: arch for arch in ("candidate", "fast", "stable")
              for b in (template.get(arch) or {}).get("bundles", [])}
    blobs = catalog_blobs()
    bundles = {b["image"]: b for b in blobs if b["schema"] == "olm.bundle"}
    require(set(bundles) == set(listed), f"catalog images {sorted(bundles)} != template images {sorted(listed)}")
    want_channels = {}
    for image, arch in listed.items():
        b = bundles[image]
        version = next(p["value"]["version"] for p in b["properties"] if p["type"] == "olm.package")
        want_channels.setdefault(f"{arch}-v{version.split('.')[0]}", []).append((version, b["name"]))
    got = {c["name"]: [e["name"] for e in c["entries"]] for c in blobs if c["schema"] == "olm.channel"}
    want = {name: [n for _, n in sorted(v, key=lambda x: _version_key(x[0]))] for name, v in want_channels.items()}
    require(got == want, f"channels {got} do not follow the template (one per major, by version): want {want}")
    csv_version = csv()["spec"]["version"]
    require(any(b["name"].endswith(f".v{csv_version}") for b in bundles.values()),
            f"the current bundle {csv_version} is not in the catalog: add its image to {TEMPLATE_PATH}")
    return f"{len(listed)} image(s), channels {sorted(got)}"


def published_bundles_unchanged():
    """Every olm.bundle ever committed stays, byte-identical as data."""
    log = subprocess.run(["git", "log", "--format=%H", "--", CATALOG_PATH], cwd=ROOT, capture_output=True, text=True)
    if log.returncode != 0:
        raise CheckFailed(f"git log failed: {log.stderr}")
    current = {b["name"]: b for b in catalog_blobs() if b["schema"] == "olm.bundle"}
    commits = log.stdout.split()
    seen = 0
    for commit in commits:
        shown = subprocess.run(["git", "show", f"{commit}:{CATALOG_PATH}"], cwd=ROOT, capture_output=True, text=True)
        if shown.returncode != 0:
            continue  # the file was deleted in this commit
        for old in catalog_blobs(shown.stdout):
            if old["schema"] != "olm.bundle":
                continue
            seen += 1
            require(old["name"] in current, f"published bundle {old['name']} (commit {commit[:10]}) was removed")
            require(current[old["name"]] == old,
                    f"published bundle {old['name']} (commit {commit[:10]}) was changed; published entries are immutable")
    return f"{len(commits)} committed version(s), {seen} published entries checked"


def _covers(installer_rules, rule):
    for group in rule.get("apiGroups", [""]):
        for resource in rule.get("resources", []):
            for verb in rule.get("verbs", []):
                if not any(group in r.get("apiGroups", []) and resource in r.get("resources", [])
                           and verb in r.get("verbs", []) and not r.get("resourceNames") for r in installer_rules):
                    return f"{verb} {group or 'core'}/{resource}"
    return None


def installer_can_grant_bundle_permissions():
    objects = render_chart("catalog", [])
    cluster = [r for o in objects if o["kind"] == "ClusterRole" for r in o["rules"]]
    namespaced = [r for o in objects if o["kind"] == "Role" for r in o["rules"]]
    spec = csv()["spec"]["install"]["spec"]
    problems = []
    for p in spec.get("clusterPermissions", []):
        for rule in p["rules"]:
            if (gap := _covers(cluster, rule)):
                problems.append(f"cluster: {gap}")
    for p in spec.get("permissions", []):
        for rule in p["rules"]:
            if (gap := _covers(cluster + namespaced, rule)):
                problems.append(f"namespace: {gap}")
    # What OLM itself creates from the bundle.
    for verb in ("create", "update", "patch", "delete", "get"):
        for resource, rules in (("deployments", namespaced), ("serviceaccounts", namespaced),
                                ("clusterroles", cluster), ("clusterrolebindings", cluster)):
            group = "apps" if resource == "deployments" else ("" if resource == "serviceaccounts" else "rbac.authorization.k8s.io")
            if (gap := _covers(rules, {"apiGroups": [group], "resources": [resource], "verbs": [verb]})):
                problems.append(f"install: {gap}")
    require(not problems, "the catalog chart's installer ServiceAccount lacks:\n  " + "\n  ".join(problems) +
            "\nrun `make bundle` (charts/catalog/files/operator-permissions.yaml)")
    return f"{len(cluster)} cluster and {len(namespaced)} namespaced installer rules"


def chart_crd_is_the_generated_crd():
    chart = load_file(os.path.join(ROOT, "charts/catalog/crds/flightdeck.dev_inferencestacks.yaml"))
    config = kustomize("config/crd")
    require(chart == config, "charts/catalog/crds and config/crd differ: run `cargo run -p flightdeck-cli -- crd --write`")
    versions = [v["name"] for v in chart[0]["spec"]["versions"] if v.get("served")]
    return f"served versions {versions}"


def drift(flightdeck_bin):
    for cmd in (["bundle", "--check"], ["catalog", "--check"]):
        result = subprocess.run([flightdeck_bin, *cmd], cwd=ROOT, capture_output=True, text=True)
        if result.returncode != 0:
            raise CheckFailed(f"`flightdeck {' '.join(cmd)}`: {result.stderr.strip()}")


def all_checks(runner, flightdeck_bin):
    runner.run("generated bundle and catalog are up to date", drift, flightdeck_bin)
    runner.run("CSV deployment matches config/default", csv_deployment_matches_config)
    runner.run("CSV permissions match config/rbac", csv_permissions_match_config)
    runner.run("CSV metadata, install modes, no owned CRD, no webhooks", csv_is_complete)
    runner.run("bundle annotations.yaml match bundle.Dockerfile labels", bundle_annotations_match_dockerfile)
    runner.run("catalog is a valid file-based catalog", catalog_is_valid_fbc)
    runner.run("catalog matches its semver template", catalog_matches_template)
    runner.run("published catalog bundles are never removed or changed", published_bundles_unchanged)
    runner.run("catalog chart installer can grant the bundle's permissions", installer_can_grant_bundle_permissions)
    runner.run("catalog chart CRD is the generated CRD", chart_crd_is_the_generated_crd)
