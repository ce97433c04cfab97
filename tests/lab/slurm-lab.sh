# Sourced by the slurm lab tests (0022, 0024) after lib.sh and their time
# guard: the lab (4 systemd hosts behind a bastion, node2 2x A100, node3
# 1x T4, the mirror with Slurm, MariaDB, munge and cron) and a spec with the
# slurm stack: node1 controller, login and database; node4 computes
# without a GPU (node2 and node3 compute because of theirs).
# SLURM_LAB_GROW=1: a fifth host, node5 with 1x H100, in the lab but not
# in the spec; grow_spec adds it.  Defines on_fail, keep (every output into
# $T/all-output, for the secrets grep).
PKGS=munge,slurmd,slurmctld,slurmdbd,slurm-client,mariadb-server,cron
NODES="node1 node2 node3 node4"
if [ -n "${SLURM_LAB_GROW:-}" ]; then
	lab_up 5 --bastion --gpus node2=a100:2,node3=t4:1,node5=h100:1 --mirror --packages $PKGS
else
	lab_up 4 --bastion --gpus node2=a100:2,node3=t4:1 --mirror --packages $PKGS
fi
on_fail() {
	local n
	on node1 sinfo -N -o '%N %T %E' 2>&1 || true
	for n in $NODES ${SLURM_LAB_GROW:+node5}; do
		echo "--- $n: failed units, slurm journal tail"
		on $n systemctl --failed --no-legend 2>&1 || true
		on $n sh -c 'journalctl -q --no-pager -n 15 -u slurmd -u slurmctld -u slurmdbd -u munge 2>&1' || true
	done
}
: >"$T/all-output"
keep() { printf '%s\n%s\n' "$OUT" "$ERR" >>"$T/all-output"; }

# Roles: node1 runs the controller, the login shell and the database;
# node4 computes without a GPU (node2 and node3 compute because of theirs).
python3 - "$SPEC" <<'EOF'
import re, sys
p = sys.argv[1]
s = open(p).read()
s = re.sub(r"(  - name: node1\n(?:    .*\n)*?)    roles: \[worker\]",
           r"\1    roles: [slurm-controller, slurm-login, slurm-db]", s)
s = re.sub(r"(  - name: node4\n(?:    .*\n)*?)    roles: \[worker\]",
           r"\1    roles: [slurm-compute]", s)
s += """  slurm:
    cgroup: false
    scheduler_parameters: bf_interval=2,sched_interval=2
    partitions:
      gpu:
        nodes: [node2, node3]
"""
open(p, "w").write(s)
EOF

if [ -n "${SLURM_LAB_GROW:-}" ]; then
	# node5's lines wait in $SPEC.node5 for grow_spec
	python3 - "$SPEC" <<'EOF'
import re, sys
p = sys.argv[1]
s = open(p).read()
m = re.search(r"  - name: node5\n(?:    .*\n)+", s)
open(p + ".node5", "w").write(m.group(0))
open(p, "w").write(s[:m.start()] + s[m.end():])
EOF
fi
# grow_spec: node5 back into the spec, after node4 (no role: its GPU makes
# it a compute node).
grow_spec() {
	python3 - "$SPEC" <<'EOF'
import re, sys
p = sys.argv[1]
s = open(p).read()
m = re.search(r"  - name: node4\n(?:    .*\n)+", s)
open(p, "w").write(s[:m.end()] + open(p + ".node5").read() + s[m.end():])
EOF
}
