#!/usr/bin/env python3
"""The cluster DNS's data: Services and Endpoints -> a dnsmasq hosts file.

There is no CoreDNS on the registries this project may use, so the node's
cluster DNS is dnsmasq (--hostsdir, which re-reads changed files by itself)
and this loop, which lists Services and Endpoints every --interval seconds
and rewrites HOSTS_DIR/cluster.hosts when the answer changes:
  SVC.NS.svc.cluster.local            -> the ClusterIP
  SVC.NS.svc.cluster.local (headless) -> every ready endpoint address
  HOST.SVC.NS.svc.cluster.local       -> an endpoint address with a hostname
Polling rather than watching keeps it small; at 0.5 s a pod that turns ready
is in DNS within about a second.

Also `--query NAME --dns IP`: print the A records of NAME from that server
(the harness's readiness check; no dig needed).
"""
import argparse
import json
import os
import random
import socket
import ssl
import struct
import sys
import time
import urllib.request

DOMAIN = "svc.cluster.local"


def get(server, path, token, ctx):
    req = urllib.request.Request(server + path, headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
        return json.load(resp)


def render(services, endpoints):
    ready = {}
    named = []
    for ep in endpoints.get("items", []):
        meta = ep.get("metadata", {})
        key = (meta.get("namespace"), meta.get("name"))
        for subset in ep.get("subsets") or []:
            for addr in subset.get("addresses") or []:
                ip = addr.get("ip")
                if not ip:
                    continue
                ready.setdefault(key, set()).add(ip)
                if addr.get("hostname"):
                    named.append((ip, f"{addr['hostname']}.{key[1]}.{key[0]}.{DOMAIN}"))
    lines = []
    for svc in services.get("items", []):
        meta = svc.get("metadata", {})
        ns, name = meta.get("namespace"), meta.get("name")
        fqdn = f"{name}.{ns}.{DOMAIN}"
        cluster_ip = (svc.get("spec") or {}).get("clusterIP")
        if cluster_ip and cluster_ip != "None":
            lines.append(f"{cluster_ip} {fqdn}")
        elif cluster_ip == "None":
            lines.extend(f"{ip} {fqdn}" for ip in sorted(ready.get((ns, name), ())))
    lines.extend(f"{ip} {host}" for ip, host in named)
    return "".join(line + "\n" for line in sorted(lines))


def refresh_loop(args):
    with open(args.token_file) as f:
        token = f.read().strip()
    ctx = ssl.create_default_context(cafile=args.ca)
    target = os.path.join(args.hosts_dir, "cluster.hosts")
    # Written beside the hosts dir and renamed in: dnsmasq's inotify on the
    # dir must never see a half-written file.
    staging = os.path.join(os.path.dirname(os.path.abspath(args.hosts_dir)), ".cluster.hosts.tmp")
    last = None
    failures = 0
    while True:
        try:
            text = render(get(args.server, "/api/v1/services", token, ctx),
                          get(args.server, "/api/v1/endpoints", token, ctx))
            failures = 0
            if text != last:
                with open(staging, "w") as f:
                    f.write(text)
                os.replace(staging, target)
                last = text
                print(f"{time.strftime('%H:%M:%S')} wrote {text.count(chr(10))} records", flush=True)
        except (OSError, ValueError) as e:  # API server restarting, timeouts
            failures += 1
            if failures in (1, 10) or failures % 100 == 0:
                print(f"listing Services/Endpoints failed ({failures}x): {e}", file=sys.stderr, flush=True)
        time.sleep(args.interval)


def query(name, server, timeout=1.0):
    qid = random.randint(0, 0xFFFF)
    packet = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    packet += b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    packet += struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(packet, (server, 53))
        data, _ = s.recvfrom(4096)
    rid, flags, qd, an = struct.unpack(">HHHH", data[:8])
    if rid != qid or flags & 0xF:
        return []
    pos = 12
    for _ in range(qd):
        while data[pos]:
            pos += data[pos] + 1
        pos += 5
    ips = []
    for _ in range(an):
        if data[pos] & 0xC0 == 0xC0:
            pos += 2
        else:
            while data[pos]:
                pos += data[pos] + 1
            pos += 1
        rtype, _, _, rdlen = struct.unpack(">HHIH", data[pos:pos + 10])
        pos += 10
        if rtype == 1 and rdlen == 4:
            ips.append(socket.inet_ntoa(data[pos:pos + 4]))
        pos += rdlen
    return sorted(ips)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server")
    p.add_argument("--token-file")
    p.add_argument("--ca")
    p.add_argument("--hosts-dir")
    p.add_argument("--interval", type=float, default=0.5)
    p.add_argument("--query")
    p.add_argument("--dns")
    args = p.parse_args()
    if args.query:
        try:
            print("\n".join(query(args.query, args.dns)))
        except OSError as e:
            sys.exit(f"query failed: {e}")
        return
    for opt in ("server", "token_file", "ca", "hosts_dir"):
        if not getattr(args, opt):
            p.error(f"--{opt.replace('_', '-')} is required")
    refresh_loop(args)


if __name__ == "__main__":
    main()
