#!/usr/bin/env python3
"""Write a synthetic cluster for bench/render-scale.sh.

gen.py DIR N [--mesh]: DIR/cluster.yaml with N nodes in a few groups and
sites, the base stack with 24 files (8 templated), 6 sysctls, 4 modules,
20 services, an admin user and per-family packages: a node renders 50
resources without facts, 51 with its debian facts (the package resource);
and DIR/facts.sql: one debian facts row (~1.5 KB) per node for the state's
facts table, and the three exports a mesh apply records per node.  --mesh also enables the mesh stack (hub topology).
"""
import json
import sys

def main():
    out, n = sys.argv[1], int(sys.argv[2])
    mesh = "--mesh" in sys.argv[3:]
    sites = ["fra1", "ams1", "aws"]
    groups = ["gpu", "storage", "web", "batch"]
    y = ["cluster: scale", "ssh: {known_hosts: known_hosts, user: ops}",
         "vars: {ntp: pool.ntp.org, dns: 10.0.0.53, tier: prod, site_info: {dc: fra1}}",
         "groups:"]
    for g in groups:
        y.append(f"  {g}:")
        y.append(f"    vars: {{driver: \"{g}-drv\", pool: {g}-pool}}")
    y.append("nodes:")
    for i in range(n):
        a, b = divmod(i + 10, 250)
        y.append(f"  - {{name: n{i:05d}, address: 10.{100 + a // 250}.{a % 250}.{b + 1}, "
                 f"site: {sites[i % 3]}, groups: [{groups[i % 4]}], roles: [worker], "
                 f"labels: {{rack: r{i % 40}}}}}")
    y += ["stacks:", "  base:",
          "    modules: [overlay, br_netfilter, nf_conntrack, ip_vs]",
          "    sysctls:"]
    for k, v in [("net.ipv4.ip_forward", 1), ("net.bridge.bridge-nf-call-iptables", 1),
                 ("net.bridge.bridge-nf-call-ip6tables", 1), ("vm.swappiness", 10),
                 ("fs.inotify.max_user_watches", 524288), ("net.core.somaxconn", 4096)]:
        y.append(f"      {k}: \"{v}\"")
    y += ["    admin_user:", "      name: kiln",
          "      keys: [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchBenchBenchBenchBenchBenchBenchBenc op\"]",
          "      groups: [sudo]",
          "    packages:",
          "      debian: [curl, chrony, jq, htop, nfs-common, lvm2]",
          "      redhat: [curl, chrony, jq]",
          "    files:"]
    for f in range(24):
        y.append(f"      - path: /etc/kiln/bench/f{f:02d}.conf")
        if f % 3 == 0:
            y.append("        template: |")
            y.append("          name={{ node.name }} site={{ node.site }} rack={{ node.labels.rack }}")
            y.append("          ntp={{ ntp }} dns={{ dns }} driver={{ driver }} pool={{ pool }}")
            y.append("          cluster={{ cluster.name }} dc={{ site_info.dc }} roles={{ node.roles }}")
        else:
            y.append(f"        content: \"# static file {f}\\nkey{f}=value{f}\\n\"")
            y.append("        mode: \"0640\"")
    y.append("    services:")
    for s in range(20):
        y.append(f"      - name: bench{s:02d}.service")
        if s < 8:
            y.append(f"        watch: [/etc/kiln/bench/f{s * 3:02d}.conf]")
    if mesh:
        y += ["  mesh:", "    network: 10.96.0.0/12", "    topology: hub", "    hubs: [n00000]"]
    with open(f"{out}/cluster.yaml", "w") as f:
        f.write("\n".join(y) + "\n")

    facts = {
        "hostname": "HOST", "os": {"family": "debian", "id": "debian", "version": "12",
                                  "codename": "bookworm", "kernel": "6.1.0-18-amd64",
                                  "arch": "x86_64"},
        "cpu": {"model": "AMD EPYC 7763 64-Core Processor", "sockets": 2, "cores": 128,
                "threads": 256},
        "memory": {"total_bytes": 1081344000000, "swap_bytes": 0},
        "nics": [{"name": f"eth{k}", "mac": f"02:00:00:00:00:{k:02x}", "mtu": 1500,
                  "speed_mbps": 100000, "addresses": [f"10.1.{k}.2/24"]} for k in range(4)],
        "disks": [{"name": f"nvme{k}n1", "size_bytes": 3840755982336, "model": "SAMSUNG MZQL23T8HCLS",
                   "rotational": False} for k in range(4)],
        "gpus": [{"index": k, "name": "NVIDIA H100 80GB HBM3", "memory_bytes": 85520809984,
                  "driver": "550.54.15"} for k in range(8)],
        "systemd": {"version": 252, "running": True},
    }
    with open(f"{out}/facts.sql", "w") as f:
        f.write("BEGIN;\n")
        for i in range(n):
            facts["hostname"] = f"n{i:05d}"
            j = json.dumps(facts, separators=(",", ":")).replace("'", "''")
            f.write(f"INSERT OR REPLACE INTO facts VALUES ('scale','n{i:05d}',1700000000000,'{j}');\n")
            # what a mesh apply records: address, public key, the private key as existing
            a, b = divmod(i + 2, 256)
            f.write(f"INSERT OR REPLACE INTO exports VALUES ('scale','n{i:05d}','mesh','address',"
                    f"'10.{96 + a // 256}.{a % 256}.{b}',0,1700000000000);\n"
                    f"INSERT OR REPLACE INTO exports VALUES ('scale','n{i:05d}','mesh','public_key',"
                    f"'{(('k%05d' % i) * 8)[:43]}=',0,1700000000000);\n"
                    f"INSERT OR REPLACE INTO exports VALUES ('scale','n{i:05d}','mesh','private_key',"
                    f"NULL,1,1700000000000);\n")
        f.write("COMMIT;\n")

main()
