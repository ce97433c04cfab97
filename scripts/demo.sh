#!/usr/bin/env bash
# kiln's main job on the local lab: build, make the seeds' hybrid shape —
# 3 on-prem nodes behind a NAT bastion (one forwarded SSH port) and 2 cloud
# nodes — show facts, plan, apply (node preparation, then a WireGuard mesh
# joining the sites), apply again (nothing changes), the mesh's health, plan.
# The lab stays up afterwards: explore with `build/bin/kiln lab exec node2 -- sh`,
# remove it with `build/bin/kiln lab down`.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
kiln=build/bin/kiln
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
if ! "$kiln" lab status >/dev/null 2>&1; then
	step "$kiln" lab up --bastion --sites onprem:3,cloud:2
fi
step "$kiln" facts -f lab/cluster.yaml
step "$kiln" plan -f lab/cluster.yaml || [ $? = 2 ]
step "$kiln" apply -f lab/cluster.yaml
step "$kiln" apply -f lab/cluster.yaml
step "$kiln" mesh status -f lab/cluster.yaml
step "$kiln" plan -f lab/cluster.yaml
step "$kiln" lab exec node2 -- cat /etc/sysctl.d/90-kiln.conf
step "$kiln" lab exec node1 -- ping -c 2 10.99.0.5
echo
echo "The lab is still up: '$kiln lab status', '$kiln lab down' when done."
