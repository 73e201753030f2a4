"""A `helm` stand-in for the README test (tests/readme/bin/helm runs it).

TEST STAND-IN, NOT HELM: no helm binary exists on the package registries this
project can reach, so the README's `helm install/upgrade/uninstall` commands
are carried out as: render the chart with tests/packaging/helm_tool.py (the
Helm SDK from PyPI helm-python-sdk: values merged with the chart's defaults,
checked against values.schema.json), then `kubectl create` the chart's crds/
(skipped when present, as helm does) and `kubectl apply` the rest in Helm's
install order. The release's manifest is kept in a Secret
`helm-standin.release.NAME` in the release namespace (helm keeps releases in
Secrets too) so that `uninstall` deletes exactly what `install` created.

Supported:
    helm install NAME CHART [-n NS] [--create-namespace] [-f VALUES]... [--set k=v]... [--set-string k=v]...
    helm upgrade --install NAME CHART (same flags)    helm upgrade NAME CHART (same flags)
    helm uninstall NAME [-n NS]
    helm template NAME CHART [-n NS] [-f VALUES]... [--set k=v]...
    helm lint CHART [-f VALUES]...
Any other flag is refused, so a README that relies on more fails loudly.
"""

import argparse
import base64
import os
import subprocess
import sys
import tempfile
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
HELM_TOOL = os.path.join(HERE, "..", "packaging", "helm_tool.py")
RELEASE_LABEL = "readme-test.flightdeck.dev/helm-release"

# Helm's InstallOrder (pkg/release/util/kind_sorter.go); unknown kinds go last.
INSTALL_ORDER = [
    "PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
    "PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret",
    "SecretList", "ConfigMap", "StorageClass", "PersistentVolume",
    "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole",
    "ClusterRoleList", "ClusterRoleBinding", "ClusterRoleBindingList", "Role",
    "RoleList", "RoleBinding", "RoleBindingList", "Service", "DaemonSet", "Pod",
    "ReplicationController", "ReplicaSet", "Deployment",
    "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass",
    "Ingress", "APIService", "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
]


class HelmError(Exception):
    """A failure the user should read (printed as `Error: ...`, exit 1)."""


def run(cmd, stdin=None, check=True):
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise HelmError(f"{' '.join(cmd[:3])}...: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def kubectl(*args, stdin=None, check=True):
    return run(["kubectl", *args], stdin=stdin, check=check)


def parse_set_value(text, as_string):
    """Helm's typing of --set values: true/false/null/integers, else a string."""
    if as_string:
        return text
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    try:
        if text == str(int(text)):
            return int(text)
    except ValueError:
        pass
    return text


def split_unescaped(text, sep):
    parts, current, escaped = [], "", False
    for ch in text:
        if escaped:
            current += ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


def key_path(key):
    """`a.b[0].c` -> ["a", "b", 0, "c"] (dots may be escaped with a backslash)."""
    path = []
    for part in split_unescaped(key, "."):
        while "[" in part and part.endswith("]"):
            name, _, rest = part.partition("[")
            if name:
                path.append(name)
            index, _, part = rest.partition("]")
            if not index.isdigit():
                raise HelmError(f"--set: bad list index in {key!r}")
            path.append(int(index))
        if part:
            path.append(part)
    return path


def set_path(values, path, value):
    node = values
    for i, step in enumerate(path):
        last = i == len(path) - 1
        nxt = None if last else ({} if isinstance(path[i + 1], str) else [])
        if isinstance(step, int):
            if not isinstance(node, list):
                raise HelmError(f"--set: {path} indexes a non-list")
            while len(node) <= step:
                node.append(None)
            if last:
                node[step] = value
            elif not isinstance(node[step], (dict, list)):
                node[step] = nxt
            if not last:
                node = node[step]
        else:
            if not isinstance(node, dict):
                raise HelmError(f"--set: {path} names a key of a non-map")
            if last:
                node[step] = value
            else:
                if not isinstance(node.get(step), (dict, list)):
                    node[step] = nxt
                node = node[step]


def deep_merge(into, new):
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            deep_merge(into[key], value)
        else:
            into[key] = value


def user_values(args):
    """The user-supplied values exactly as helm builds them: -f files merged in
    order, then every --set applied on top (the SDK merges chart defaults)."""
    values = {}
    for path in args.values:
        with open(path, encoding="utf-8") as f:
            deep_merge(values, yaml.safe_load(f) or {})
    for text, as_string in args.sets:
        for assignment in split_unescaped(text, ","):
            key, eq, value = assignment.partition("=")
            if not eq:
                raise HelmError(f"--set {assignment!r}: expected key=value")
            set_path(values, key_path(key), parse_set_value(value, as_string))
    return values


def render(args, name, namespace):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(user_values(args), f)
        values_file = f.name
    try:
        proc = run([sys.executable, HELM_TOOL, "template", args.chart, "-f", values_file,
                    "--name", name, "--namespace", namespace])
    finally:
        os.unlink(values_file)
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def wait_established(crd_file, seconds=60):
    """helm waits for its CRDs to be served before it applies the rest
    (`kubectl wait` errors while a new CRD has no conditions yet, so poll)."""
    deadline = time.monotonic() + seconds
    while True:
        status = kubectl("get", "-f", crd_file, "-o",
                         'jsonpath={.status.conditions[?(@.type=="Established")].status}',
                         check=False).stdout.strip()
        if status == "True":
            return
        if time.monotonic() > deadline:
            raise HelmError(f"{crd_file}: CRD not Established after {seconds}s")
        time.sleep(0.5)


def cluster_scoped_kinds():
    # Discovery of a just-created API group may lag a moment: kubectl then
    # still lists every other group and exits 1; the kinds listed are enough.
    proc = kubectl("api-resources", "--namespaced=false", "--no-headers", check=False)
    out = proc.stdout
    if not out.strip():
        raise HelmError(f"kubectl api-resources: {proc.stderr.strip()}")
    return {line.split()[-1] for line in out.splitlines() if line.split()}


def order_key(doc):
    kind = doc.get("kind", "")
    return INSTALL_ORDER.index(kind) if kind in INSTALL_ORDER else len(INSTALL_ORDER)


def chart_crds(chart):
    crd_dir = os.path.join(chart, "crds")
    if not os.path.isdir(crd_dir):
        return []
    return sorted(os.path.join(crd_dir, f) for f in os.listdir(crd_dir)
                  if f.endswith((".yaml", ".yml", ".json")))


def release_secret(name):
    return f"helm-standin.release.{name}"


def install(args, upgrade):
    name, namespace = args.name, args.namespace or current_namespace()
    existing = kubectl("get", "secret", "-n", namespace, release_secret(name),
                       "--ignore-not-found", "-o", "name").stdout.strip()
    if existing and not upgrade:
        raise HelmError(f"INSTALLATION FAILED: cannot re-use a name that is still in use: {name}")
    if not existing and upgrade and not args.install:
        raise HelmError(f'UPGRADE FAILED: "{name}" has no deployed releases')
    if args.create_namespace:
        if not kubectl("get", "namespace", namespace, "--ignore-not-found", "-o", "name").stdout.strip():
            kubectl("create", "namespace", namespace)
    if not existing:
        for crd in chart_crds(args.chart):
            if kubectl("get", "-f", crd, check=False).returncode != 0:
                # Like helm, no client-side schema check: kubectl 1.37 knows
                # fields (x-kubernetes-validations) that a 1.20 server drops.
                kubectl("create", "--validate=false", "-f", crd)
            wait_established(crd)
    docs = render(args, name, namespace)
    cluster_kinds = cluster_scoped_kinds()
    for doc in docs:
        meta = doc.setdefault("metadata", {})
        if doc.get("kind") not in cluster_kinds:
            meta.setdefault("namespace", namespace)
        meta.setdefault("labels", {})[RELEASE_LABEL] = name
        annotations = meta.setdefault("annotations", {})
        annotations["meta.helm.sh/release-name"] = name
        annotations["meta.helm.sh/release-namespace"] = namespace
    docs.sort(key=order_key)
    manifest = yaml.safe_dump_all(docs, sort_keys=False)
    if docs:
        applied = kubectl("apply", "-f", "-", stdin=manifest)
        sys.stdout.write(applied.stdout)
    secret = {
        "apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
        "metadata": {"name": release_secret(name), "namespace": namespace,
                     "labels": {RELEASE_LABEL: name}},
        "data": {"manifest": base64.b64encode(manifest.encode()).decode()},
    }
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(secret))
    print(f"NAME: {name}\nNAMESPACE: {namespace}\nSTATUS: deployed (helm stand-in: rendered and applied with kubectl)")


def uninstall(args):
    namespace = args.namespace or current_namespace()
    got = kubectl("get", "secret", "-n", namespace, release_secret(args.name),
                  "--ignore-not-found", "-o", "jsonpath={.data.manifest}").stdout.strip()
    if not got:
        raise HelmError(f"uninstall: Release not loaded: {args.name}: release: not found")
    manifest = base64.b64decode(got).decode()
    deleted = kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", stdin=manifest)
    sys.stdout.write(deleted.stdout)
    kubectl("delete", "secret", "-n", namespace, release_secret(args.name))
    print(f'release "{args.name}" uninstalled')


def template(args):
    docs = render(args, args.name, args.namespace or "default")
    sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False))


def lint(args):
    cmd = [sys.executable, HELM_TOOL, "lint", args.chart]
    for path in args.values:
        cmd += ["-f", path]
    return subprocess.run(cmd).returncode


def current_namespace():
    ns = kubectl("config", "view", "--minify", "-o", "jsonpath={..namespace}", check=False).stdout.strip()
    return ns or "default"


class SetAction(argparse.Action):
    def __call__(self, parser, namespace, value, option_string=None):
        namespace.sets.append((value, option_string == "--set-string"))


def parser():
    p = argparse.ArgumentParser(prog="helm", description="test stand-in for helm (see tests/readme/README.md)")
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("install", "upgrade", "template", "uninstall", "lint"):
        c = sub.add_parser(name)
        c.add_argument("-n", "--namespace")
        if name == "lint":
            c.add_argument("chart")
        else:
            c.add_argument("name")
        if name in ("install", "upgrade", "template"):
            c.add_argument("chart")
            c.add_argument("--set", "--set-string", dest="sets", action=SetAction, default=[])
        if name in ("install", "upgrade", "template", "lint"):
            c.add_argument("-f", "--values", action="append", default=[])
        if name in ("install", "upgrade"):
            c.add_argument("--create-namespace", action="store_true")
        if name == "upgrade":
            c.add_argument("-i", "--install", action="store_true")
    return p


def main():
    args = parser().parse_args()
    try:
        if args.command == "install":
            args.install = True
            install(args, upgrade=False)
        elif args.command == "upgrade":
            install(args, upgrade=True)
        elif args.command == "uninstall":
            uninstall(args)
        elif args.command == "template":
            template(args)
        else:
            return lint(args)
    except (HelmError, OSError, yaml.YAMLError) as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
