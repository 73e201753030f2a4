"""`helm` for this repository: a thin command line over the Helm v4 SDK.

No helm binary exists on the package registries this project can reach, but
PyPI's helm-python-sdk is Helm itself: Helm's Go packages (v4) compiled into a
C library. This CLI only parses helm's flags and prints helm's answers; every
action is the SDK's, so releases are real Helm releases: CRDs from `crds/`
first (created on install, never upgraded), Helm's kind ordering, hooks,
ownership checks, server-side apply, and release records in Secrets of type
`helm.sh/release.v1`. `tests/lib/helm/helm` runs it; see README.md beside it.

    helm install NAME CHART [flags]          helm upgrade [--install] NAME CHART [flags]
    helm uninstall NAME... [flags]           helm rollback NAME [REVISION] [flags]
    helm list | status | history | get values | get manifest | get notes
    helm template [NAME] CHART [flags]       helm lint CHART... [flags]
    helm version

Flags are helm's names; a flag helm has but this CLI does not is refused
(argparse), never ignored.
"""

import argparse
import datetime
import json
import os
import re
import sys

import helm_python as helm
import yaml

DEFAULT_TIMEOUT = "5m0s"  # helm's default --timeout


class UsageError(Exception):
    """A command line helm would refuse (printed as `Error: ...`, exit 1)."""


# --- values: helm's MergeValues (pkg/cli/values/options.go) --------------------


def merge_maps(into, new):
    """helm's mergeMaps: maps merge key by key, anything else replaces."""
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge_maps(into[key], value)
        else:
            into[key] = value
    return into


def split_assignments(expression):
    """`a=1,b={x,y},c=d\\,e` -> ["a=1", "b={x,y}", "c=d\\,e"]: commas inside
    braces or after a backslash do not separate assignments (helm's strvals)."""
    parts, current, depth, escaped = [], [], 0, False
    for ch in expression:
        if escaped:
            current.append(ch)
            escaped = False
            continue
        if ch == "\\":
            escaped = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return [p for p in parts if p]


def key_path(key):
    """`a.b[0].c\\.d` -> ["a", "b", 0, "c.d"]."""
    path, name, i = [], [], 0
    while i < len(key):
        ch = key[i]
        if ch == "\\" and i + 1 < len(key):
            name.append(key[i + 1])
            i += 2
            continue
        if ch == ".":
            if name:
                path.append("".join(name))
            name = []
        elif ch == "[":
            if name:
                path.append("".join(name))
            name = []
            end = key.find("]", i)
            if end < 0 or not key[i + 1:end].isdigit():
                raise UsageError(f"bad list index in --set key {key!r}")
            path.append(int(key[i + 1:end]))
            i = end
        else:
            name.append(ch)
        i += 1
    if name:
        path.append("".join(name))
    return path


def set_into(values, path, value):
    """helm's strvals.ParseInto for one assignment: maps on the way are kept
    (other keys survive), list indexes extend the list with nulls, the value
    at the end replaces what was there."""
    node = values
    for step, nxt in zip(path, path[1:] + [None]):
        container = {} if isinstance(nxt, str) else []
        if isinstance(step, int):
            if not isinstance(node, list):
                raise UsageError(f"--set: {path} indexes something that is not a list")
            while len(node) <= step:
                node.append(None)
            if nxt is None:
                node[step] = value
            elif not isinstance(node[step], type(container)):
                node[step] = container
            if nxt is not None:
                node = node[step]
        else:
            if not isinstance(node, dict):
                raise UsageError(f"--set: {path} names a key of something that is not a map")
            if nxt is None:
                node[step] = value
            elif not isinstance(node.get(step), type(container)):
                node[step] = container
            if nxt is not None:
                node = node[step]


def walk(parsed, path):
    for step in path:
        parsed = parsed[step]
    return parsed


def user_values(args):
    """The user-supplied values, built the way helm builds them: -f files
    merged in order, then every --set-json, --set and --set-string (in that
    order, as helm does) applied on top. The SDK types each value exactly as
    helm would; the chart's defaults are merged by the SDK's install/upgrade."""
    values = {}
    for path in args.values:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        merge_maps(values, helm.values_from_yaml(text) or {})
    parsers = (("set_json", helm.parse_set_json), ("set", helm.parse_set_string),
               ("set_string", helm.parse_set_string_values))
    for attr, parse in parsers:
        for expression in getattr(args, attr, None) or []:
            for assignment in split_assignments(expression):
                key, eq, _ = assignment.partition("=")
                if not eq:
                    raise UsageError(f"failed parsing --set data: key {assignment!r} has no value")
                path = key_path(key)
                set_into(values, path, walk(parse(assignment), path))
    return values


# --- cluster access -----------------------------------------------------------


def kubeconfig_namespace(args):
    """The namespace of the kubeconfig's current context, as helm uses it when
    -n is not given (HELM_NAMESPACE first, as in helm)."""
    if os.environ.get("HELM_NAMESPACE"):
        return os.environ["HELM_NAMESPACE"]
    paths = [args.kubeconfig] if args.kubeconfig else \
        [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p] or \
        [os.path.expanduser("~/.kube/config")]
    configs = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                configs.append(yaml.safe_load(f) or {})
        except OSError:
            continue
    context = args.kube_context or next((c.get("current-context") for c in configs if c.get("current-context")), None)
    for config in configs:
        for entry in config.get("contexts") or []:
            if entry.get("name") == context:
                return (entry.get("context") or {}).get("namespace") or "default"
    return "default"


def namespace_of(args):
    return args.namespace or kubeconfig_namespace(args)


def release_action(cfg, action, chart, name, values, options):
    """helm_install / helm_upgrade of the SDK, called as its Python API calls
    them (Config.install/upgrade), with the option keys of the C library's
    contract that the 0.2.2 Python API does not pass on (server_side_apply).
    Returns the release summary."""
    handle, ref = cfg._chart_args(chart)
    options = {key: value for key, value in options.items() if value is not None}
    payload = helm._native.call_string(f"helm_{action}", cfg._raw(), cfg._context_arg(None), handle, ref,
                                       name, json.dumps(values), json.dumps(options) if options else None)
    return json.loads(payload)


def server_side(args, action):
    """--server-side, or FLIGHTDECK_HELM_SERVER_SIDE: the test harness's way to
    say what its cluster needs (see README.md); unset leaves Helm's default
    (install: true; upgrade and rollback: auto, i.e. as the release was made)."""
    value = args.server_side or os.environ.get("FLIGHTDECK_HELM_SERVER_SIDE") or None
    if value not in (None, "true", "false", "auto"):
        raise UsageError(f'--server-side must be true, false or auto, not {value!r}')
    if action == "install" and value is not None:
        return {"true": True, "false": False}.get(value)  # install's option is a bool; auto = default
    return value


def cluster(args, namespace):
    """A Config (cluster connection plus release storage) bound to namespace:
    uninstall, rollback and status act on the Config's namespace."""
    return helm.Config(kubeconfig_path=args.kubeconfig or None, kube_context=args.kube_context or None,
                       namespace=namespace)


def seconds(duration):
    """A Go duration as helm's --timeout takes it ("5m0s", "90s", "1h") -> seconds."""
    if re.fullmatch(r"\d+", duration):
        return int(duration)
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise UsageError(f"invalid duration {duration!r}")
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return max(1, round(sum(float(n) * scale[u] for n, u in parts)))


# --- output -------------------------------------------------------------------


def when(summary):
    stamp = summary.get("deployed_at")
    if not stamp:
        return ""
    moment = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone()
    return moment.strftime("%a %b %e %H:%M:%S %Y")


def chart_of(summary):
    return f"{summary.get('chart_name', '')}-{summary.get('chart_version', '')}"


def print_table(header, rows):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("\t".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


def print_structured(data, output):
    if output == "json":
        print(json.dumps(data))
    else:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))


def print_release(summary, output="table", show_notes=True):
    """What `helm install/upgrade/status` print."""
    if output != "table":
        print_structured({k: v for k, v in summary.items() if k != "manifest"}, output)
        return
    print(f"NAME: {summary['name']}")
    print(f"LAST DEPLOYED: {when(summary)}")
    print(f"NAMESPACE: {summary['namespace']}")
    print(f"STATUS: {summary['status']}")
    print(f"REVISION: {summary['revision']}")
    if show_notes and summary.get("notes"):
        print("NOTES:")
        print(summary["notes"].rstrip("\n"))


# --- commands -----------------------------------------------------------------


def wait_strategy(args):
    # helm 4: --wait alone means "watcher"; without it hooks are still waited for.
    return args.wait or "hookOnly"


def install(args, namespace=None):
    namespace = namespace or namespace_of(args)
    with cluster(args, namespace) as cfg:
        try:
            summary = release_action(cfg, "install", args.chart, args.name, user_values(args), {
                "namespace": namespace, "timeout_seconds": seconds(args.timeout),
                "wait": wait_strategy(args), "dry_run": args.dry_run,
                "create_namespace": args.create_namespace, "rollback_on_failure": args.rollback_on_failure,
                "description": args.description, "server_side_apply": server_side(args, "install")})
        except helm.HelmError as e:
            raise helm.HelmError(f"INSTALLATION FAILED: {e}") from e
    print_release(summary, args.output)
    return 0


def upgrade(args):
    namespace = namespace_of(args)
    with cluster(args, namespace) as cfg:
        if args.install:
            # helm's CLI, not its SDK, turns `upgrade --install` of a release
            # that does not exist (or was uninstalled) into an install.
            try:
                latest = cfg.history(args.name, max_revisions=1)
            except helm.HelmNotFoundError:
                latest = []
            if not latest or latest[-1].get("status") == "uninstalled":
                print(f'Release "{args.name}" does not exist. Installing it now.')
                return install(args, namespace)
        try:
            summary = release_action(cfg, "upgrade", args.chart, args.name, user_values(args), {
                "timeout_seconds": seconds(args.timeout), "wait": wait_strategy(args),
                "dry_run": args.dry_run, "reset_values": args.reset_values,
                "reuse_values": args.reuse_values, "cleanup_on_fail": args.cleanup_on_fail,
                "rollback_on_failure": args.rollback_on_failure, "description": args.description,
                "max_history": args.history_max, "server_side_apply": server_side(args, "upgrade")})
        except helm.HelmError as e:
            raise helm.HelmError(f"UPGRADE FAILED: {e}") from e
    if args.output == "table":
        print(f'Release "{args.name}" has been upgraded. Happy Helming!')
    print_release(summary, args.output)
    return 0


def uninstall(args):
    namespace = namespace_of(args)
    with cluster(args, namespace) as cfg:
        for name in args.names:
            # The SDK's message already reads "uninstall: ...", as helm prints it.
            answer = cfg.uninstall(name, keep_history=args.keep_history, timeout=seconds(args.timeout),
                                   ignore_not_found=args.ignore_not_found,
                                   wait=args.wait, description=args.description)
            if answer.get("info"):
                print(answer["info"])
            print(f'release "{name}" uninstalled')
    return 0


def rollback(args):
    with cluster(args, namespace_of(args)) as cfg:
        options = {"version": args.revision, "timeout_seconds": seconds(args.timeout), "wait": args.wait,
                   "dry_run": args.dry_run, "server_side_apply": server_side(args, "rollback")}
        try:
            # helm_rollback, as Config.rollback calls it, with server_side_apply.
            helm._native.call_status("helm_rollback", cfg._raw(), args.name,
                                     json.dumps({k: v for k, v in options.items() if v is not None}))
        except helm.HelmError as e:
            raise helm.HelmError(f"ROLLBACK FAILED: {e}") from e
    print("Rollback was a success! Happy Helming!")
    return 0


def list_releases(args):
    with cluster(args, namespace_of(args)) as cfg:
        releases = cfg.list(all_states=args.all, all_namespaces=args.all_namespaces,
                            name_filter=args.filter)
    if args.short:
        for r in releases:
            print(r["name"])
    elif args.output != "table":
        print_structured(releases, args.output)
    else:
        print_table(["NAME", "NAMESPACE", "REVISION", "UPDATED", "STATUS", "CHART", "APP VERSION"],
                    [[r["name"], r["namespace"], r["revision"], when(r), r["status"], chart_of(r),
                      r.get("app_version", "")] for r in releases])
    return 0


def status(args):
    with cluster(args, namespace_of(args)) as cfg:
        summary = cfg.status(args.name, revision=args.revision)
    print_release(summary, args.output, show_notes=not args.hide_notes)
    return 0


def history(args):
    with cluster(args, namespace_of(args)) as cfg:
        revisions = cfg.history(args.name, max_revisions=args.max)
    if args.output != "table":
        print_structured(revisions, args.output)
        return 0
    print_table(["REVISION", "UPDATED", "STATUS", "CHART", "APP VERSION"],
                [[r["revision"], when(r), r["status"], chart_of(r), r.get("app_version", "")]
                 for r in revisions])
    return 0


def get(args):
    with cluster(args, namespace_of(args)) as cfg:
        if args.what == "values":
            values = cfg.get_values(args.name, all_values=args.all, revision=args.revision)
            if args.output == "table":
                print("COMPUTED VALUES:" if args.all else "USER-SUPPLIED VALUES:")
                print_structured(values or None, "yaml")
            else:
                print_structured(values, args.output)
        else:
            summary = cfg.status(args.name, revision=args.revision)
            text = summary.get("manifest" if args.what == "manifest" else "notes", "")
            sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
    return 0


def template(args):
    """`helm template` is helm's install with a client-only dry run: values
    schema, kubeVersion check, rendering and Helm's ordering, and no cluster."""
    with helm.Chart.load(args.chart) as chart:
        if any("helm.sh/hook" in t.get("data", "") for t in chart.templates):
            # The SDK's dry-run answer carries the manifest, not the hooks.
            raise UsageError(f"{args.chart} has hook templates, which this template command cannot print")
        crds = chart.crds if args.include_crds else []
    with helm.Config(storage_driver="memory", namespace=args.namespace or "default") as cfg:
        summary = cfg.install(args.chart, args.name, user_values(args), dry_run="client",
                              namespace=args.namespace or "default")
    for crd in crds:
        sys.stdout.write(f"---\n# Source: {crd['filename']}\n{crd['data'].rstrip()}\n")
    sys.stdout.write(summary.get("manifest", ""))
    return 0


SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}


def lint(args):
    values = user_values(args) or None
    failed = 0
    for chart in args.charts:
        report = helm.lint(chart, values, strict=args.strict, namespace=args.namespace or "default",
                           kube_version=args.kube_version, quiet=args.quiet)
        print(f"==> Linting {chart}")
        worst = 0
        for m in report.get("messages") or []:
            severity = m.get("severity", 0)
            worst = max(worst, severity)
            if not args.quiet or severity >= 2:
                print(f"[{SEVERITY.get(severity, '?')}] {m.get('path')}: {m.get('error')}")
        for error in report.get("errors") or []:
            worst = 3
            print(f"[ERROR] {error}")
        if worst >= (2 if args.strict else 3):
            failed += 1
        print()
    summary = f"{len(args.charts)} chart(s) linted, {failed} chart(s) failed"
    if failed:
        raise UsageError(summary)
    print(summary)
    return 0


def version(args):
    print(f'version.BuildInfo{{Version:"{helm.helm_sdk_version()}", '
          f'HelmPythonSDK:"{helm.__version__}", HelmC:"{helm.helm_c_version()}"}}')
    return 0


# --- command line -------------------------------------------------------------


def parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-n", "--namespace", help="namespace scope (default: the kubeconfig context's)")
    common.add_argument("--kubeconfig", help="path to the kubeconfig file")
    common.add_argument("--kube-context", help="kubeconfig context to use")

    values = argparse.ArgumentParser(add_help=False)
    values.add_argument("-f", "--values", action="append", default=[], help="values YAML file ('-': stdin)")
    values.add_argument("--set", action="append", help="set values (key1=val1,key2=val2)")
    values.add_argument("--set-string", action="append", help="set STRING values")
    values.add_argument("--set-json", action="append", help="set JSON values")

    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table")

    release = argparse.ArgumentParser(add_help=False, parents=[common, values, output])
    release.add_argument("--wait", nargs="?", const="watcher", choices=["watcher", "legacy", "hookOnly"],
                         help="wait until resources are ready (helm 4: watcher)")
    release.add_argument("--timeout", default=DEFAULT_TIMEOUT, help="time to wait for any one operation")
    release.add_argument("--dry-run", nargs="?", const="client", choices=["client", "server", "none"])
    release.add_argument("--rollback-on-failure", "--atomic", action="store_true")
    release.add_argument("--description")
    release.add_argument("--create-namespace", action="store_true",
                         help="create the release namespace if it does not exist")
    release.add_argument("--server-side", choices=["true", "false", "auto"],
                         help="apply with server-side apply (Helm 4's default) or, false, as Helm 3 did")

    p = argparse.ArgumentParser(prog="helm", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("install", parents=[release], help="install a chart")
    c.add_argument("name")
    c.add_argument("chart")
    c.set_defaults(run=install)

    c = sub.add_parser("upgrade", parents=[release], help="upgrade a release")
    c.add_argument("name")
    c.add_argument("chart")
    c.add_argument("-i", "--install", action="store_true", help="install if the release does not exist")
    c.add_argument("--reset-values", action="store_true")
    c.add_argument("--reuse-values", action="store_true")
    c.add_argument("--cleanup-on-fail", action="store_true")
    c.add_argument("--history-max", type=int, default=10)
    c.set_defaults(run=upgrade)

    c = sub.add_parser("uninstall", aliases=["delete"], parents=[common], help="uninstall releases")
    c.add_argument("names", nargs="+", metavar="name")
    c.add_argument("--keep-history", action="store_true")
    c.add_argument("--ignore-not-found", action="store_true")
    c.add_argument("--wait", nargs="?", const="watcher", choices=["watcher", "legacy", "hookOnly"])
    c.add_argument("--timeout", default=DEFAULT_TIMEOUT)
    c.add_argument("--description")
    c.set_defaults(run=uninstall)

    c = sub.add_parser("rollback", parents=[common], help="roll a release back to a revision")
    c.add_argument("name")
    c.add_argument("revision", nargs="?", type=int, help="revision (default: the previous one)")
    c.add_argument("--wait", nargs="?", const="watcher", choices=["watcher", "legacy", "hookOnly"])
    c.add_argument("--timeout", default=DEFAULT_TIMEOUT)
    c.add_argument("--dry-run", nargs="?", const="client", choices=["client", "server", "none"])
    c.add_argument("--server-side", choices=["true", "false", "auto"])
    c.set_defaults(run=rollback)

    c = sub.add_parser("list", aliases=["ls"], parents=[common, output], help="list releases")
    c.add_argument("-A", "--all-namespaces", action="store_true")
    c.add_argument("-a", "--all", action="store_true", help="releases in every state")
    c.add_argument("-q", "--short", action="store_true")
    c.add_argument("--filter")
    c.set_defaults(run=list_releases)

    c = sub.add_parser("status", parents=[common, output], help="a release's status")
    c.add_argument("name")
    c.add_argument("--revision", type=int)
    c.add_argument("--hide-notes", action="store_true")
    c.set_defaults(run=status)

    c = sub.add_parser("history", aliases=["hist"], parents=[common, output], help="a release's revisions")
    c.add_argument("name")
    c.add_argument("--max", type=int, default=256)
    c.set_defaults(run=history)

    c = sub.add_parser("get", help="a release's values, manifest or notes")
    what = c.add_subparsers(dest="what", required=True)
    for name in ("values", "manifest", "notes"):
        w = what.add_parser(name, parents=[common] + ([output] if name == "values" else []))
        w.add_argument("name")
        w.add_argument("--revision", type=int)
        if name == "values":
            w.add_argument("-a", "--all", action="store_true", help="computed values, not only user-supplied")
        w.set_defaults(run=get)

    c = sub.add_parser("template", parents=[values], help="render a chart locally")
    c.add_argument("name", nargs="?", default="release-name")
    c.add_argument("chart")
    c.add_argument("-n", "--namespace")
    c.add_argument("--include-crds", action="store_true")
    c.set_defaults(run=template)

    c = sub.add_parser("lint", parents=[values], help="examine charts for possible issues")
    c.add_argument("charts", nargs="+", metavar="chart")
    c.add_argument("-n", "--namespace")
    c.add_argument("--strict", action="store_true", help="fail on lint warnings")
    c.add_argument("--quiet", action="store_true", help="print only warnings and errors")
    c.add_argument("--kube-version", help="Kubernetes version for capabilities and deprecation checks")
    c.set_defaults(run=lint)

    c = sub.add_parser("version", help="the Helm SDK's version")
    c.set_defaults(run=version)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (helm.HelmError, UsageError, OSError) as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
