"""Images: the operator, bundle and catalog images are built with buildah
(vfs storage, chroot isolation: no Docker engine needed) into OCI layouts,
then checked with skopeo (labels, entrypoint, user) and umoci (contents).
The operator image packages a prebuilt static binary (BINARIES=prebuilt):
no base image can be pulled here, and that is what the Dockerfile's
prebuilt path is for."""

import json
import os
import shutil
import struct
import subprocess
import time

from .harness import CheckFailed, require
from .manifests import ROOT, load_file
from .olm import ANNOTATIONS_PATH, CATALOG_PATH, CSV_PATH


class Builder:
    def __init__(self, workdir):
        self.workdir = workdir
        self.store = ["--root", os.path.join(workdir, "root"), "--runroot", os.path.join(workdir, "runroot"),
                      "--storage-driver", "vfs"]
        self.timings = {}

    def _run(self, cmd):
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise CheckFailed(f"{' '.join(cmd)}:\n{result.stderr[-4000:]}{result.stdout[-2000:]}")
        return result.stdout

    def build(self, name, dockerfile, context, target=None, build_args=()):
        start = time.monotonic()
        cmd = ["buildah", *self.store, "bud", "--isolation", "chroot", "--layers=false", "-f", dockerfile,
               "-t", f"localhost/{name}:test"]
        if target:
            cmd += ["--target", target]
        for arg in build_args:
            cmd += ["--build-arg", arg]
        self._run([*cmd, context])
        os.makedirs(os.path.join(self.workdir, "oci"), exist_ok=True)
        layout = os.path.join(self.workdir, "oci", name)
        self._run(["buildah", *self.store, "push", f"localhost/{name}:test", f"oci:{layout}:test"])
        self.timings[name] = time.monotonic() - start
        return layout

    def inspect(self, layout):
        return json.loads(self._run(["skopeo", "inspect", "--config", f"oci:{layout}:test"]))

    def unpack(self, layout):
        dest = layout + "-rootfs"
        self._run(["umoci", "raw", "unpack", "--rootless", "--image", f"{layout}:test", dest])
        return dest


def stage(workdir, name, files):
    """A minimal build context holding only `files` (repo path -> context path)."""
    ctx = os.path.join(workdir, f"{name}-context")
    for src, dst in files.items():
        target = os.path.join(ctx, dst)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.isdir(src):
            shutil.copytree(src, target)
        else:
            shutil.copy2(src, target)
    return ctx


def is_static_elf(path):
    """True when the ELF file has no PT_INTERP (no dynamic loader needed)."""
    with open(path, "rb") as f:
        head = f.read(64)
        require(head[:4] == b"\x7fELF" and head[4] == 2, f"{path} is not a 64-bit ELF file")
        phoff, = struct.unpack_from("<Q", head, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))


def operator_image(builder, operator_binary):
    ctx = stage(builder.workdir, "operator", {operator_binary: "dist/flightdeck-operator"})
    layout = builder.build("flightdeck-operator", os.path.join(ROOT, "Dockerfile"), ctx,
                           target="operator", build_args=["BINARIES=prebuilt"])
    config = builder.inspect(layout)["config"]
    require(config.get("Entrypoint") == ["/usr/local/bin/flightdeck-operator"], f"entrypoint {config.get('Entrypoint')}")
    user = config.get("User", "")
    require(user and user.split(":")[0] not in ("", "0", "root"), f"the image runs as {user!r}, not a non-root user")
    require(config.get("Labels", {}).get("org.opencontainers.image.title") == "flightdeck-operator", "title label")
    rootfs = builder.unpack(layout)
    files = sorted(os.path.relpath(os.path.join(d, f), rootfs) for d, _, fs in os.walk(rootfs) for f in fs)
    require(files == ["usr/local/bin/flightdeck-operator"], f"the image holds more than the binary: {files}")
    binary = os.path.join(rootfs, files[0])
    require(is_static_elf(binary), "the operator binary is dynamically linked: it cannot run FROM scratch")
    if os.geteuid() == 0:
        # Inside the image's own root: nothing but the binary exists there.
        result = subprocess.run(["chroot", rootfs, "/usr/local/bin/flightdeck-operator", "--version"],
                                capture_output=True, text=True)
        require(result.returncode == 0, f"the binary does not run in the image's root: {result.stderr}")
    return f"entrypoint {config['Entrypoint'][0]}, user {user}, {os.path.getsize(binary) // (1 << 20)} MiB static binary"


def bundle_image(builder):
    ctx = stage(builder.workdir, "bundle", {os.path.join(ROOT, "bundle"): "bundle"})
    layout = builder.build("flightdeck-operator-bundle", os.path.join(ROOT, "bundle.Dockerfile"), ctx)
    labels = builder.inspect(layout)["config"].get("Labels", {})
    annotations = load_file(os.path.join(ROOT, ANNOTATIONS_PATH))[0]["annotations"]
    differ = {k: (v, labels.get(k)) for k, v in annotations.items() if labels.get(k) != v}
    require(not differ, f"bundle image labels differ from annotations.yaml (want, got): {differ}")
    rootfs = builder.unpack(layout)
    for rel in (CSV_PATH, ANNOTATIONS_PATH):
        inside = os.path.join(rootfs, rel.split("/", 1)[1])
        require(os.path.isfile(inside), f"the bundle image lacks /{rel.split('/', 1)[1]}")
        with open(inside, "rb") as a, open(os.path.join(ROOT, rel), "rb") as b:
            require(a.read() == b.read(), f"/{rel.split('/', 1)[1]} in the image differs from {rel}")
    return f"{len(annotations)} labels match annotations.yaml"


def catalog_image(builder):
    ctx = stage(builder.workdir, "catalog", {os.path.join(ROOT, "catalog"): "catalog"})
    layout = builder.build("flightdeck-operator-catalog", os.path.join(ROOT, "Dockerfile.catalog"), ctx)
    labels = builder.inspect(layout)["config"].get("Labels", {})
    require(labels.get("operators.operatorframework.io.index.configs.v1") == "/configs",
            f"catalog image label: {labels}")
    rootfs = builder.unpack(layout)
    inside = os.path.join(rootfs, "configs", CATALOG_PATH.split("/", 2)[2])
    require(os.path.isfile(inside), f"the catalog image lacks /configs/{CATALOG_PATH.split('/', 2)[2]}")
    return "label operators.operatorframework.io.index.configs.v1=/configs, FBC under /configs"


def all_checks(runner, workdir, operator_binary):
    builder = Builder(workdir)
    runner.run("image: operator (FROM scratch, static, non-root)", operator_image, builder, operator_binary)
    runner.run("image: bundle (labels = annotations.yaml)", bundle_image, builder)
    runner.run("image: catalog (FBC under /configs)", catalog_image, builder)
    if builder.timings:
        print("image build times: " + ", ".join(f"{k} {v:.1f}s" for k, v in builder.timings.items()))
