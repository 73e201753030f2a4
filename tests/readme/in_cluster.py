"""The README's `cluster` blocks, run by runner.py under
tests/control-plane/with-cluster.sh (KUBECONFIG set, kubectl on PATH):

    python in_cluster.py SPEC OUT

SPEC (JSON, written by runner.py) holds the README path, the binaries'
directory and the blocks; OUT receives {"passed", "failed", "failures"}.
The blocks run in README order with real Helm on PATH (tests/lib/helm), the
operator in the background, and stand-in CRDs for the OLM v1 and
Prometheus-operator kinds the charts create (standin-crds.yaml). After the
blocks, every Helm release must be deployed and recorded by Helm.
"""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading

from runner import BLOCK_TIMEOUT, ROOT, Block, Results, bash, check_status, kill_group, run_script, script_of, show

HERE = os.path.dirname(os.path.abspath(__file__))
HELM_DIR = os.path.join(ROOT, "tests", "lib", "helm")
# A block that runs helm install/upgrade must leave a Helm release behind.
HELM_WRITE = re.compile(r"(^|[;&|\s])helm\s+(install|upgrade)\b", re.M)


def server_minor():
    """The API server's (major, minor) version."""
    out = subprocess.run(["kubectl", "version", "-o", "json"], capture_output=True, text=True, check=True).stdout
    server = json.loads(out)["serverVersion"]
    return int(server["major"]), int("".join(ch for ch in server["minor"] if ch.isdigit()))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Operator:
    """flightdeck-operator in the background for the cluster blocks. It starts
    once the InferenceStack CRD exists (the README installs it, e.g. with the
    catalog chart) and is started again if it exits, as its Deployment would."""

    CRD = "inferencestacks.flightdeck.dev"

    def __init__(self, binary, log_path):
        self.binary, self.log_path = binary, log_path
        self.proc, self.starts = None, 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.supervise, daemon=True)

    def supervise(self):
        while not self.stop_event.wait(1):
            if self.proc is not None and self.proc.poll() is None:
                continue
            crd = subprocess.run(["kubectl", "get", "crd", self.CRD, "-o",
                                  'jsonpath={.status.conditions[?(@.type=="Established")].status}'],
                                 capture_output=True, text=True)
            if crd.stdout.strip() != "True" or self.stop_event.is_set():
                continue
            if self.proc is not None:
                print(f"  note: flightdeck-operator exited ({self.proc.returncode}); starting it again", flush=True)
            port = free_port()
            with open(self.log_path, "a", encoding="utf-8") as log:
                self.proc = subprocess.Popen(
                    [self.binary, "--watches", "watches.yaml", "--no-leader-election",
                     "--admin-listen", f"127.0.0.1:{port}", "--log-format", "text"],
                    cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True)
            self.starts += 1
            if self.starts == 1:
                print(f"  the CRD exists: flightdeck-operator started in the background "
                      f"(watches.yaml, log {self.log_path})", flush=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stop_event.set()
        self.thread.join(timeout=30)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                kill_group(self.proc.pid)
                self.proc.wait()


def helm_releases_recorded(env):
    """Every release Helm lists is deployed and has its record, a Secret of
    type helm.sh/release.v1 named sh.helm.release.v1.NAME.vREVISION in the
    release namespace. Returns (releases, problems)."""
    listed = subprocess.run(["helm", "list", "--all-namespaces", "--all", "-o", "json"],
                            env=env, capture_output=True, text=True)
    if listed.returncode != 0:
        return [], [f"helm list: {listed.stderr.strip()}"]
    releases = json.loads(listed.stdout or "[]")
    secrets = subprocess.run(["kubectl", "get", "secrets", "--all-namespaces",
                              "--field-selector", "type=helm.sh/release.v1", "-o",
                              "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{\"\\n\"}{end}"],
                             capture_output=True, text=True)
    records = set(secrets.stdout.split())
    problems = []
    for r in releases:
        record = f"{r['namespace']}/sh.helm.release.v1.{r['name']}.v{r['revision']}"
        if r["status"] != "deployed":
            problems.append(f"release {r['namespace']}/{r['name']} is {r['status']}")
        if record not in records:
            problems.append(f"no release record {record} (type helm.sh/release.v1)")
    return releases, problems


def main(spec_path, out_path):
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    readme = spec["readme"]
    results = Results()
    env = dict(os.environ)
    env["PATH"] = HELM_DIR + os.pathsep + env["PATH"]
    log_path = tempfile.mktemp(prefix="readme-operator.", suffix=".log")
    operator = Operator(os.path.join(spec["bin_dir"], "flightdeck-operator"), log_path)
    blocks = [Block(line=raw["line"], lang=raw["lang"], text=raw["text"], mode="cluster") for raw in spec["blocks"]]
    try:
        print("  installing stand-in CRDs for OLM v1 and Prometheus-operator kinds (tests/readme/standin-crds.yaml)", flush=True)
        subprocess.run(["kubectl", "apply", "-f", os.path.join(HERE, "standin-crds.yaml")], check=True)
        subprocess.run(["kubectl", "wait", "--for=condition=Established", "--timeout=60s", "crd",
                        "-l", "readme-test.flightdeck.dev/stand-in=true"], check=True)
        print(f"  helm on PATH: {HELM_DIR}/helm (the Helm v4 SDK; real releases)", flush=True)
        if server_minor() < (1, 25):
            # Helm 4 applies server-side by default, CRDs from crds/ included,
            # and servers before 1.25 refuse a server-side apply of our CRD
            # (".x-kubernetes-validations: field not declared in schema") while
            # a create succeeds and drops the CEL rules. So here helm applies
            # client-side, as Helm 3 did and `helm --server-side=false` does.
            env["FLIGHTDECK_HELM_SERVER_SIDE"] = "false"
            print("  Kubernetes < 1.25: helm runs with --server-side=false (FLIGHTDECK_HELM_SERVER_SIDE; "
                  "see tests/lib/helm/README.md)", flush=True)
        print("  flightdeck-operator starts in the background once the InferenceStack CRD exists", flush=True)
        operator.start()
        for block in blocks:
            show(block, readme)
            what = f"cluster {block.where(readme)}"
            status, _ = run_script(bash(script_of(block)), BLOCK_TIMEOUT, env=env)
            if check_status(results, what, status, BLOCK_TIMEOUT):
                results.ok(what)
        if any(HELM_WRITE.search(script_of(b)) for b in blocks):
            releases, problems = helm_releases_recorded(env)
            what = "cluster: Helm releases deployed and recorded"
            if not releases:
                results.fail(what, "the blocks run helm install/upgrade, yet Helm lists no release")
            elif problems:
                results.fail(what, "; ".join(problems))
            else:
                results.ok(f"{what}: " + ", ".join(f"{r['namespace']}/{r['name']} v{r['revision']}"
                                                     for r in releases))
    except (subprocess.CalledProcessError, OSError) as e:
        results.fail("cluster setup", str(e))
    finally:
        operator.stop()
        if operator.starts > 1:
            print(f"  note: flightdeck-operator was started {operator.starts} times", flush=True)
        if os.path.exists(log_path):
            if results.failed:
                print(f"  operator log (last lines, {log_path}):", flush=True)
                with open(log_path, encoding="utf-8", errors="replace") as f:
                    for line in f.read().splitlines()[-20:]:
                        print(f"    {line}")
            else:
                os.unlink(log_path)
        with open(out_path, "w", encoding="utf-8") as f:
            json.dump({"passed": results.passed, "failed": results.failed, "failures": results.failures}, f)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
