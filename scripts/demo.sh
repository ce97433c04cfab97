#!/usr/bin/env bash
# kiln's main job on the local lab: build, make a 4-node lab behind a
# bastion, show facts, plan, apply, apply again (nothing changes), plan.
# The lab stays up afterwards: explore with `build/bin/kiln lab exec node2 -- sh`,
# remove it with `build/bin/kiln lab down`.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
kiln=build/bin/kiln
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
if ! "$kiln" lab status >/dev/null 2>&1; then
	step "$kiln" lab up --nodes 4 --bastion
fi
step "$kiln" facts -f lab/cluster.yaml
step "$kiln" plan -f lab/cluster.yaml || [ $? = 2 ]
step "$kiln" apply -f lab/cluster.yaml
step "$kiln" apply -f lab/cluster.yaml
step "$kiln" plan -f lab/cluster.yaml
step "$kiln" lab exec node2 -- cat /etc/sysctl.d/90-kiln.conf
echo
echo "The lab is still up: '$kiln lab status', '$kiln lab down' when done."
