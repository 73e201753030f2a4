"""Entry point of the packaging checks (run by tests/packaging/run.sh).

    python check.py static --flightdeck BIN --yamllint BIN   # no cluster
    python check.py cluster                                 # under with-cluster.sh
    python check.py images --operator-binary BIN --workdir DIR
"""

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from checks import charts, cluster, images, olm, validate  # noqa: E402
from checks.harness import Runner  # noqa: E402
from checks.manifests import rendered_everything  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("stage", choices=["static", "cluster", "images"])
    parser.add_argument("--flightdeck")
    parser.add_argument("--yamllint")
    parser.add_argument("--operator-binary")
    parser.add_argument("--workdir")
    args = parser.parse_args()
    runner = Runner()
    if args.stage == "images":
        images.all_checks(runner, args.workdir, args.operator_binary)
        return runner.summary()
    objects = []
    runner.run("render every chart and kustomize tree", lambda: objects.extend(rendered_everything()) or f"{len(objects)} objects")
    if args.stage == "static":
        with tempfile.TemporaryDirectory() as tmp:
            charts.all_checks(runner, tmp)
        olm.all_checks(runner, args.flightdeck)
        if objects:
            validate.all_checks(runner, objects, args.yamllint)
    elif objects:
        cluster.all_checks(runner, objects)
    return runner.summary()


if __name__ == "__main__":
    sys.exit(main())
