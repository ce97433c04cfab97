#!/usr/bin/env bash
# kiln run and kiln jobs on the slurm stack's lab (slurm-lab.sh: node2 2x
# A100, node3 1x T4, node4 CPU only): requests no node can hold are refused
# before anything is sent, naming the shortfall; a GPU job lands where its
# type is, with one device; --nodes 2 runs a task on each of two nodes;
# --at starts no earlier than asked; --every puts the submission on the
# login node's cron, each run a job that kiln jobs lists; sacct records
# the GPU TRES.  docs/jobs.md.
. "$(dirname "$0")/lib.sh"
(for _ in $(seq 570); do sleep 1; kill -0 $$ 2>/dev/null || exit 0; done
 echo "FAIL $TEST: over 570 s" >&2; kill -TERM $$) &
. "$(dirname "$0")/slurm-lab.sh"

say "apply the slurm stack; every compute node idle"
kiln_rc 0 apply -f "$SPEC" -o json
keep
assert_eq "$(json 'j["summary"]["failed"]')" 0 "failed nodes"
assert_eq "$(on node1 sinfo -h -N -p all -o '%N %T' | sort | tr '\n' ' ')" \
	"node2 idle node3 idle node4 idle " "node states"
assert_eq "$(on node1 systemctl is-active cron)" active "cron on the login node"
# ---- kiln run / kiln jobs (docs/jobs.md) -----------------------------------
# wait_job ID: until kiln jobs shows the job finished; its entry into $OUT
wait_job() {
	local st
	for _ in $(seq 90); do
		kiln_rc 0 jobs -f "$SPEC" -o json
		st=$(json "[x['state'] for x in j if x['id'] == '$1'][-1:]")
		case "$st" in *COMPLETED*|*FAILED*|*CANCELLED*|*TIMEOUT*) return 0 ;; esac
		sleep 1
	done
	fail "job $1 did not finish: $st"
}
jstate() { json "[x['$2'] for x in j if x['id'] == '$1'][-1]"; }

say "kiln run: refused before submission when no node can hold it"
kiln_rc 1 run -f "$SPEC" --gpus a100:3 -- true
assert_contains "$ERR" "no node has 3 a100 GPUs (the most on one node: 2, on node2)"
kiln_rc 1 run -f "$SPEC" --gpus 3 -- true
assert_contains "$ERR" "no node has 3 GPUs (the most on one node: 2, on node2)"
kiln_rc 1 run -f "$SPEC" --nodes 2 --gpus t4:1 -- true
assert_contains "$ERR" "--nodes 2: only 1 node has 1 t4 GPU (node3)"

say "kiln run --gpus a100:1: node2, one device; --gpus t4:1: node3"
kiln_rc 0 run -f "$SPEC" --gpus a100:1 --log /tmp/kiln-run-%j.out -- \
	sh -c 'echo "$(hostname) cuda=$CUDA_VISIBLE_DEVICES"'
a100=$OUT
kiln_rc 0 run -f "$SPEC" --gpus t4:1 --log /tmp/kiln-run-%j.out -- \
	sh -c 'echo "$(hostname) cuda=$CUDA_VISIBLE_DEVICES"'
t4=$OUT
wait_job "$a100"
assert_eq "$(jstate "$a100" state)" COMPLETED "a100 job"
assert_eq "$(jstate "$a100" gpus)" a100:1 "a100 job's GPU TRES"
assert_eq "$(on node2 cat /tmp/kiln-run-$a100.out)" "node2 cuda=0" "a100 job output"
wait_job "$t4"
assert_eq "$(jstate "$t4" nodelist)" node3 "t4 job node"
assert_eq "$(on node3 cat /tmp/kiln-run-$t4.out)" "node3 cuda=0" "t4 job output"
assert_contains "$(on node1 sacct -n -P -X -j "$a100" -o AllocTRES)" "gres/gpu:a100=1" "sacct TRES"

say "kiln run --nodes 2: one task on each of two nodes"
kiln_rc 0 run -f "$SPEC" --nodes 2 --log /tmp/kiln-run-%j.out -- hostname
two=$OUT
wait_job "$two"
assert_eq "$(jstate "$two" state)" COMPLETED "2-node job"
first=$(jstate "$two" nodelist)
n=$(python3 -c 'import sys; print(sys.argv[1])' "$first" | sed 's/node\[\([0-9]\).*/node\1/')
out=$(on "$n" cat /tmp/kiln-run-$two.out | sort -u | wc -l)
assert_eq "$out" 2 "distinct hostnames from the 2-node job ($first)"

say "kiln run --at now+15s: starts no earlier"
kiln_rc 0 run -f "$SPEC" --at now+15s -- true
later=$OUT
wait_job "$later"
python3 - "$(jstate "$later" submit)" "$(jstate "$later" start)" <<'PY' || fail "--at: started too early"
import sys, datetime
s, t = (datetime.datetime.fromisoformat(x) for x in sys.argv[1:3])
sys.exit(0 if (t - s).total_seconds() >= 15 else 1)
PY

say "kiln run --every: cron on the login node submits it each minute; kiln jobs lists the runs"
kiln_rc 0 run -f "$SPEC" --every '* * * * *' --name kiln-every -- true
assert_contains "$(on node1 crontab -l)" "# kiln-run:kiln-every" "crontab entry"
kiln_rc 0 run -f "$SPEC" --every '* * * * *' --name kiln-every -- true
assert_eq "$(on node1 crontab -l | grep -c 'kiln-run:kiln-every')" 1 "entries after the same name again"
for _ in $(seq 150); do
	kiln_rc 0 jobs -f "$SPEC" -o json
	[ "$(json "len([x for x in j if x['name'] == 'kiln-every' and x['state'] == 'COMPLETED'])")" -ge 2 ] && break
	sleep 1
done
assert_eq "$(json "len(set(x['id'] for x in j if x['name'] == 'kiln-every' and x['state'] == 'COMPLETED')) >= 2")" \
	True "two runs of the schedule, each a job"
kiln_rc 0 jobs -f "$SPEC" cancel --every kiln-every
case "$(on node1 crontab -l 2>/dev/null || true)" in *kiln-every*) fail "schedule still in the crontab" ;; esac
