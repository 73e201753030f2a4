#!/usr/bin/env python3
"""oci-image.py NAME FILE PATH_IN_IMAGE OUT.tar [ENTRYPOINT...]

Writes a one-layer OCI image archive (oci-layout, index.json, blobs) holding
FILE at PATH_IN_IMAGE, named NAME through the io.containerd.image.name
annotation that `ctr images import` reads. Used for the pause image, which
the CRI plugin needs and cannot pull here; no buildah storage involved, so it
is quick and byte-for-byte reproducible.
"""
import hashlib
import io
import json
import sys
import tarfile


def blob(tar, data):
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
    return f"sha256:{digest}", len(data)


def main(argv):
    if len(argv) < 5:
        sys.exit(__doc__)
    name, src, dest, out = argv[1:5]
    entrypoint = argv[5:] or [dest]
    with open(src, "rb") as f:
        payload = f.read()
    layer_io = io.BytesIO()
    with tarfile.open(fileobj=layer_io, mode="w", format=tarfile.PAX_FORMAT) as layer:
        info = tarfile.TarInfo(dest.lstrip("/"))
        info.size = len(payload)
        info.mode = 0o755
        layer.addfile(info, io.BytesIO(payload))
    layer_bytes = layer_io.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": entrypoint, "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    with tarfile.open(out, "w") as tar:
        layer_digest, layer_size = blob(tar, layer_bytes)
        config_digest, config_size = blob(tar, json.dumps(config).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer_digest, "size": layer_size}],
        }
        manifest_digest, manifest_size = blob(tar, json.dumps(manifest).encode())
        index = {
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest, "size": manifest_size,
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {"io.containerd.image.name": name,
                                "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]},
            }],
        }
        for fname, data in (("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                            ("index.json", json.dumps(index).encode())):
            info = tarfile.TarInfo(fname)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    main(sys.argv)
