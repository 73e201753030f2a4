"""A small `helm` stand-in over the Helm SDK (PyPI helm-python-sdk): there is
no helm binary on any registry this project can reach.

    python helm_tool.py lint CHART [-f VALUES]...       # strict lint
    python helm_tool.py template CHART [-f VALUES]... [--include-crds]
                                [--name NAME] [--namespace NS]

`template` validates the values against the chart's values.schema.json and
prints the rendered manifests as one YAML stream (sorted by template path),
like `helm template`.
"""

import argparse
import sys

import helm_python as helm
import yaml


def merged_values(files):
    values = {}
    for path in files:
        with open(path, encoding="utf-8") as f:
            deep_merge(values, yaml.safe_load(f) or {})
    return values


def deep_merge(into, new):
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            deep_merge(into[key], value)
        else:
            into[key] = value


def lint(args):
    report = helm.lint(args.chart, merged_values(args.values) or None, strict=True,
                       namespace=args.namespace, kube_version="v1.20.2")
    problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    for m in report.get("messages", []):
        print(f"[{ {0: 'UNKNOWN', 1: 'INFO', 2: 'WARNING', 3: 'ERROR'}.get(m.get('severity'), '?')}] "
              f"{m.get('path')}: {m.get('error')}", file=sys.stderr)
    for e in report.get("errors") or []:
        print(f"[ERROR] {e}", file=sys.stderr)
    if problems or report.get("errors"):
        print(f"lint failed: {args.chart}", file=sys.stderr)
        return 1
    print(f"lint ok: {args.chart}")
    return 0


def template(args):
    chart = helm.Chart.load(args.chart)
    values = merged_values(args.values)
    try:
        chart.validate_schema(values)
    except helm.HelmError as e:
        print(f"values do not match {args.chart}/values.schema.json: {e}", file=sys.stderr)
        return 1
    rendered = chart.render(values, name=args.name, namespace=args.namespace, is_install=True)
    out = []
    if args.include_crds:
        for crd in chart.crds:
            out.append(f"# Source: {crd.get('name')}\n{crd.get('data', '')}")
    for path in sorted(rendered):
        text = rendered[path]
        if path.endswith("NOTES.txt") or not text.strip():
            continue
        out.append(f"# Source: {path}\n{text}")
    sys.stdout.write("\n---\n".join(out) + "\n")
    return 0


def main():
    parser = argparse.ArgumentParser(prog="helm_tool")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("lint", "template"):
        p = sub.add_parser(name)
        p.add_argument("chart")
        p.add_argument("-f", "--values", action="append", default=[])
        p.add_argument("--namespace", default="default")
        if name == "template":
            p.add_argument("--name", default="release-name")
            p.add_argument("--include-crds", action="store_true")
    args = parser.parse_args()
    try:
        return lint(args) if args.command == "lint" else template(args)
    except helm.HelmError as e:
        print(f"helm {args.command} {args.chart}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
