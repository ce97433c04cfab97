#!/usr/bin/env bash
# The slurm stack on 4 systemd hosts from the lab mirror: node1 controller,
# login and accounting database, node2 2x A100, node3 1x T4 (the lab's
# device files), node4 CPU only.  Apply brings munged, slurmctld, slurmdbd
# with MariaDB and slurmd up under systemd and every node idle; the Gres
# types are the ones facts found; a GPU job gets one device and sacct
# records it; the munge key is one key, 0400 munge, on every node and in
# nothing kiln writes or prints; a second apply changes nothing.  A job
# runs on across a partition edit (reconfigure, no restart), a local
# slurm.conf edit (shown by plan, repaired, no restart) and a node
# definition change (slurmctld and every slurmd restart).  node5 (1x H100)
# joins: idle with the Gres its facts show, a job on node3 runs on through
# the restarts and completes, a second apply changes nothing.  A GPU taken
# out of node2's facts is named by plan before Slurm drains it.  A --limit run
# without the controller waits for the key and leaves node3's alone.
. "$(dirname "$0")/lib.sh"
SLURM_LAB_GROW=1   # node5 (1x H100) joins late: grow_spec
# Every wait below is bounded; the whole test by this, inside ctest's 600 s (the guard ends
# with the test).
(for _ in $(seq 570); do sleep 1; kill -0 $$ 2>/dev/null || exit 0; done
 echo "FAIL $TEST: over 570 s" >&2; kill -TERM $$) &
. "$(dirname "$0")/slurm-lab.sh"

say "plan before anything exists: the munge key is waited for"
kiln_rc 2 plan -f "$SPEC"
keep
assert_contains "$OUT" "waits for node1 slurm.munge_key"

say "apply: every phase on every node"
kiln_rc 0 apply -f "$SPEC" -o json
keep
assert_eq "$(json '[p for p in j["phases"] if p.startswith("slurm.")]')" \
	"['slurm.install', 'slurm.config', 'slurm.controller', 'slurm.check']" "phases"
assert_eq "$(json 'j["summary"]["failed"]')" 0 "failed nodes"
assert_eq "$(json '[r["status"] for n in j["nodes"] for r in n["results"] if r["phase"] == "slurm.check"]')" \
	"['changed']" "the check ran once, on the controller, and passed"

say "daemons active under systemd"
for u in munge slurmctld slurmdbd mariadb; do
	assert_eq "$(on node1 systemctl is-active $u)" active "node1 $u"
done
for n in node2 node3 node4; do
	for u in munge slurmd; do assert_eq "$(on $n systemctl is-active $u)" active "$n $u"; done
done

say "every node idle, Gres as facts found them"
assert_eq "$(on node1 sinfo -h -N -p all -o '%N %T' | sort | tr '\n' ' ')" \
	"node2 idle node3 idle node4 idle " "node states"
assert_contains "$(on node1 scontrol show node node2)" "Gres=gpu:a100:2" "node2"
assert_contains "$(on node1 scontrol show node node3)" "Gres=gpu:t4:1" "node3"
case "$(on node1 scontrol show node node4)" in *Gres=gpu*) fail "node4 has a Gres" ;; esac
assert_eq "$(on node1 sinfo -h -o '%P %N' | sort | tr '\n' ' ')" \
	"a100 node2 all* node[2-4] gpu node[2-3] t4 node3 " "partitions"

say "a GPU job on node2 sees one device; sacct records it"
out=$(on node1 timeout 60 srun -p a100 --gpus=a100:1 -N1 sh -c 'echo "$(hostname) [$CUDA_VISIBLE_DEVICES]"')
assert_eq "$out" "node2 [0]" "srun --gpus=a100:1"
out=$(on node1 timeout 60 srun --gpus=t4:1 sh -c 'echo "$(hostname) [$CUDA_VISIBLE_DEVICES]"')
assert_eq "$out" "node3 [0]" "srun --gpus=t4:1"
ok=
for _ in $(seq 30); do
	acct=$(on node1 sacct -n -X -P -a -o JobID,State,AllocTRES 2>&1 || true)
	case "$acct" in *gres/gpu:a100=1*) ok=1; break ;; esac
	sleep 1
done
[ -n "$ok" ] || fail "sacct lists no job with gres/gpu:a100=1: $acct"

say "the munge key: one key, 0400 munge:munge, on every node"
key=$(on node1 cat /etc/munge/munge.key)
assert_eq "${#key}" 128 "key length"
for n in $NODES; do
	assert_eq "$(on $n sha256sum /etc/munge/munge.key | cut -d' ' -f1)" \
		"$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)" "$n key"
	assert_eq "$(on $n stat -c '%a %U %G' /etc/munge/munge.key)" "400 munge munge" "$n key mode"
done
dbpass=$(on node1 cat /etc/slurm/slurmdbd.pass)
assert_eq "${#dbpass}" 48 "db password length"
assert_eq "$(on node1 stat -c '%a %U' /etc/slurm/slurmdbd.conf)" "600 slurm" "slurmdbd.conf mode"

say "a second apply changes nothing (debug logs kept for the secrets check)"
kiln_rc 0 -vv apply -f "$SPEC"
keep
assert_contains "$OUT" "4 nodes, 0 changed"
kiln_rc 0 plan -f "$SPEC" -o json
keep

say "a partition edit: reconfigure, slurmctld not restarted, a running job survives"
pid=$(on node1 systemctl show -p MainPID --value slurmctld)
jid=$(on node1 sbatch --parsable -p all -w node4 --mem=100M --wrap 'sleep 120')
for _ in $(seq 30); do
	[ "$(on node1 squeue -h -j "$jid" -o %T)" = RUNNING ] && break
	sleep 1
done
assert_eq "$(on node1 squeue -h -j "$jid" -o %T)" RUNNING "job $jid"
sed -i 's/^        nodes: \[node2, node3\]$/        nodes: [node2, node3, node4]/' "$SPEC"
kiln_rc 0 apply -f "$SPEC" -o json
keep
assert_eq "$(json '[r["id"].split(" ")[0] for n in j["nodes"] for r in n["results"] if r["status"] == "changed" and r["id"].startswith("command:")]')" \
	"['command:scontrol']" "handlers that ran (reconfigure alone)"
assert_eq "$(on node1 systemctl show -p MainPID --value slurmctld)" "$pid" "slurmctld pid"
assert_eq "$(on node1 sinfo -h -p gpu -o '%N')" "node[2-4]" "gpu partition after reconfigure"
assert_eq "$(on node1 squeue -h -j "$jid" -o %T)" RUNNING "job $jid after the apply"

say "drift: slurm.conf edited on node3 -> plan shows it, apply repairs it, no restart"
on node3 sh -c 'echo "# local edit" >> /etc/slurm/slurm.conf'
dpid=$(on node3 systemctl show -p MainPID --value slurmd)
kiln_rc 2 plan -f "$SPEC"
keep
assert_contains "$OUT" "-# local edit" "plan"
kiln_rc 0 apply -f "$SPEC"
keep
assert_contains "$OUT" "4 nodes, 1 changed"
case "$(on node3 cat /etc/slurm/slurm.conf)" in *"local edit"*) fail "node3's edit is still there" ;; esac
assert_eq "$(on node3 systemctl show -p MainPID --value slurmd)" "$dpid" "node3 slurmd pid"
assert_eq "$(on node1 squeue -h -j "$jid" -o %T)" RUNNING "job $jid after the repair"

say "node definitions change (memory_reserve 2G): slurmctld and every slurmd restart, the job runs on"
spid=$(on node4 systemctl show -p MainPID --value slurmd)
mem=$(on node1 scontrol show node node2 | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
sed -i 's/^    cgroup: false$/    cgroup: false\n    memory_reserve: 2G/' "$SPEC"
kiln_rc 0 apply -f "$SPEC" -o json
keep
assert_eq "$(json 'sorted((n["name"], " ".join(r["id"].split(" ")[:3])) for n in j["nodes"] for r in n["results"] if r["status"] == "changed" and r["id"].startswith("command:") and "slurm-check" not in r["id"])')" \
	"[('node1', 'command:systemctl restart slurmctld'), ('node2', 'command:systemctl restart slurmd'), ('node3', 'command:systemctl restart slurmd'), ('node4', 'command:systemctl restart slurmd')]" \
	"handlers that ran (slurmctld, and slurmd on every compute node)"
[ "$(on node1 systemctl show -p MainPID --value slurmctld)" != "$pid" ] || fail "slurmctld was not restarted"
[ "$(on node4 systemctl show -p MainPID --value slurmd)" != "$spid" ] || fail "node4's slurmd was not restarted"
assert_eq "$(on node1 scontrol show node node2 | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')" \
	"$((mem - 1024))" "node2 RealMemory"
assert_eq "$(on node1 squeue -h -j "$jid" -o %T)" RUNNING "job $jid after the restarts"
assert_eq "$(on node1 sinfo -h -N -p all -o '%N %T' | sort | tr '\n' ' ')" \
	"node2 idle node3 idle node4 mixed " "node states after the restarts"

say "node5 (1x H100) joins: idle with its Gres; node3's running job runs on and completes"
j3=$(on node1 sbatch --parsable -p all -w node3 --mem=100M \
	--wrap 'while [ ! -e /tmp/kiln-grow-done ]; do sleep 1; done')
for _ in $(seq 30); do
	[ "$(on node1 squeue -h -j "$j3" -o %T)" = RUNNING ] && break
	sleep 1
done
assert_eq "$(on node1 squeue -h -j "$j3" -o '%T %N')" "RUNNING node3" "job $j3 before node5 joins"
grow_spec
kiln_rc 0 apply -f "$SPEC" -o json
keep
assert_eq "$(json 'j["summary"]["nodes"]')" 5 "nodes in the run"
assert_eq "$(json 'j["summary"]["failed"]')" 0 "failed nodes"
kiln_rc 0 facts -f "$SPEC" --limit node5 -o json
assert_eq "$(json '[g["device_name"] for n in j["nodes"] for g in n["facts"]["gpus"]]')" \
	"['GH100[H100 SXM5 80GB]']" "node5's GPUs in its facts (type h100, docs/slurm.md)"
gres=gpu:h100:1
assert_contains "$(on node1 scontrol show node node5)" "Gres=$gres" "node5 in Slurm"
assert_eq "$(on node1 sinfo -h -N -p all -n node5 -o %T)" idle "node5's state"
assert_eq "$(on node1 squeue -h -j "$j3" -o '%T %N')" "RUNNING node3" "job $j3 after node5 joined"
out=$(on node1 timeout 60 srun -p h100 --gpus=h100:1 sh -c 'echo "$(hostname) [$CUDA_VISIBLE_DEVICES]"')
assert_eq "$out" "node5 [0]" "srun --gpus=h100:1"
on node3 touch /tmp/kiln-grow-done
st=
for _ in $(seq 30); do
	st=$(on node1 sacct -n -X -P -j "$j3" -o State 2>&1 || true)
	[ "$st" = COMPLETED ] && break
	sleep 1
done
assert_eq "$st" COMPLETED "job $j3's end (sacct)"
kiln_rc 0 apply -f "$SPEC"
keep
assert_contains "$OUT" "5 nodes, 0 changed"

say "a GPU gone from node2's facts: plan says so before Slurm drains it"
# the lab's GPU is a directory in node2's copy of /sys/bus/pci/devices
pci=/run/kiln-lab/$LAB_NAME/node2/hw/pci
slot=$(find "$pci" -mindepth 1 -maxdepth 1 -type d | sort | tail -1)
[ -f "$slot/vendor" ] || fail "no lab GPU under $pci"
mv "$slot" "$pci/../gpu-gone"
kiln_rc 2 plan -f "$SPEC"
keep
assert_contains "$OUT" "node2: facts show 1 GPU (a100), slurm.conf defined gpu:a100:2 — a GPU gone; Slurm would drain it" "plan"
mv "$pci/../gpu-gone" "$slot"
kiln_rc 0 plan -f "$SPEC"
keep
case "$OUT" in *"would drain"*) fail "plan with the GPU back: $OUT" ;; esac

say "--limit node3, the controller not in the run: the key is waited for, node3 keeps its own"
kiln_rc 0 apply -f "$SPEC" --limit node3 -o json
keep
assert_eq "$(json '[(n["name"], n["changed"], n.get("waits")) for n in j["nodes"]]')" \
	"[('node3', 0, ['slurm.config: waits for node1 slurm.munge_key'])]" "limited run"
assert_eq "$(on node3 sha256sum /etc/munge/munge.key | cut -d' ' -f1)" \
	"$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)" "node3 key after --limit"

say "no secret in the state, the output or the logs: every run's record, the exports"
kiln_rc 0 exports -f "$SPEC" -o json
keep
assert_eq "$(json 'sorted((x["node"], x["name"], x["secret"], "value" in x) for x in j if x["stack"] == "slurm")')" \
	"[('node1', 'db_password', True, False), ('node1', 'munge_key', True, False), ('node2', 'definition', False, True), ('node3', 'definition', False, True), ('node4', 'definition', False, True), ('node5', 'definition', False, True)]" "slurm exports"
assert_eq "$(json '[x["value"].split(" ")[2] for x in j if x["name"] == "definition" and x["node"] in ("node2", "node5")]')" \
	"['Gres=gpu:a100:2', 'Gres=gpu:h100:1']" "definitions recorded"
kiln_rc 0 runs -f "$SPEC" -o json
keep
for run in $(json '" ".join(str(r["id"]) for r in j)'); do
	kiln_rc 0 runs show "$run" -f "$SPEC" -o json
	keep
done
[ -f "$LAB/.kiln/state.db" ] || fail "no state database in $LAB/.kiln"
for f in "$LAB"/.kiln/state.db* "$T/all-output"; do
	if grep -qF -e "$key" -e "$dbpass" "$f"; then fail "a secret is in $f"; fi
done

