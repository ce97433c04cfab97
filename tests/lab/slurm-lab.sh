# Sourced by the slurm lab tests (0022, 0024) after lib.sh and their time
# guard: the lab (4 systemd hosts behind a bastion, node2 2x A100, node3
# 1x T4, the mirror with Slurm, MariaDB, munge and cron) and a spec with the
# slurm stack: node1 controller, login and database; node4 computes
# without a GPU (node2 and node3 compute because of theirs).  Defines
# on_fail, keep (every output into $T/all-output, for the secrets grep).
PKGS=munge,slurmd,slurmctld,slurmdbd,slurm-client,mariadb-server,cron
NODES="node1 node2 node3 node4"
lab_up 4 --bastion --gpus node2=a100:2,node3=t4:1 --mirror --packages $PKGS
on_fail() {
	local n
	on node1 sinfo -N -o '%N %T %E' 2>&1 || true
	for n in $NODES; do
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

