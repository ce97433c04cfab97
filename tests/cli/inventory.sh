#!/bin/bash
# kiln inventory (docs/spec.md "kiln inventory"): offline, no root, no lab.
#   A  -o json on a spec with groups, children and vars: merged vars follow
#      cluster_var (node > groups nearest first, own groups in listed order >
#      cluster), membership through a child group, group children/hosts,
#      all.hosts in spec order, keys sorted, BMC without its password;
#   B  a spec importing the INI inventory tests/unit/spec/good/inv/hosts.ini:
#      group vars, [all:vars], ansible_* consumed into user/port/bastion;
#   C  --limit: a child group's members, an exclusion, groups left out, a
#      pattern matching nothing is exit 1;
#   D  text: the group tree, one line per node, --vars lines, a control
#      character in a var shown escaped, never raw;
#   E  a bad spec: exit 1, "FILE:LINE:COL: ..." on stderr, nothing on stdout;
#      help: 'kiln help inventory' and 'kiln help' list it.
set -euo pipefail

die() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
command -v jq >/dev/null || die "missing 'jq'"
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=${KILN_SRC:-$(cd "$HERE/../.." && pwd)}
KILN=${KILN:-$SRC/build/bin/kiln}
[ -x "$KILN" ] || die "no kiln at '$KILN' (set KILN)"

TMP=$(mktemp -d /tmp/kiln-inventory.XXXXXX)
trap 'rm -rf "$TMP"' EXIT INT TERM
cd "$TMP"

printf 's3cret-PW-xyz\n' >bmc.pw
cat >cluster.yaml <<'EOF'
cluster: t
ssh: {known_hosts: known_hosts, user: ops, port: 2200}
vars: {ntp: cluster-ntp, tier: dev, only_cluster: c}
# groups in an order where "the last group defined wins" would give other
# values than kiln's precedence (own groups in listed order, then parents)
groups:
  storage:
    vars: {tier: storage-tier, disk: nvme}
  a100:
    vars: {driver: "555"}
  gpu:
    vars: {driver: "550", tier: gpu-tier}
    children: [a100]
nodes:
  - name: n1
    address: 10.0.0.1
    groups: [a100]
    vars: {x: node-x}
  - name: n2
    address: 10.0.0.2
    groups: [storage, gpu]
  - name: n3
    address: 10.0.0.3
    port: 22
    user: root
    roles: [worker, gpu]
    site: onprem
    labels: {rack: r1}
    vars: {ntp: node-ntp, evil: "\e[31mred"}
    bmc: {type: ipmi, address: 10.0.1.3, user: admin, password_file: bmc.pw}
EOF

# ---- A: JSON of the spec's own groups ----------------------------------
"$KILN" inventory -f cluster.yaml -o json >a.json || die "A: exit $?"
q() { jq -ce "$1" a.json >/dev/null || die "A: $2 (got $(jq -c "${3:-$1}" a.json))"; }
q '.cluster == "t"' "cluster name" '.cluster'
q '.all.hosts == ["n1","n2","n3"]' "all.hosts in spec order" '.all.hosts'
q '.nodes | keys == ["n1","n2","n3"]' "node names" '.nodes | keys'
# n1 is in a100 directly and in gpu through gpu's child a100
q '.nodes.n1.groups == ["a100","gpu","all"]' "n1 groups through child a100" '.nodes.n1.groups'
q '.nodes.n2.groups == ["gpu","storage","all"]' "n2 groups sorted" '.nodes.n2.groups'
q '.nodes.n3.groups == ["all"]' "n3 in all only" '.nodes.n3.groups'
# a100 (nearer) beats its parent gpu; gpu beats the cluster; node beats all
q '.nodes.n1.vars == {"driver":"555","tier":"gpu-tier","ntp":"cluster-ntp","only_cluster":"c","x":"node-x"}' \
	"n1 merged vars" '.nodes.n1.vars'
# n2 lists storage before gpu: storage's tier wins
q '.nodes.n2.vars == {"driver":"550","tier":"storage-tier","disk":"nvme","ntp":"cluster-ntp","only_cluster":"c"}' \
	"n2 merged vars (own groups in listed order)" '.nodes.n2.vars'
q '.nodes.n3.vars.ntp == "node-ntp" and .nodes.n3.vars.tier == "dev" and (.nodes.n3.vars | has("driver") | not)' \
	"n3 merged vars" '.nodes.n3.vars'
q '.groups.gpu == {"children":["a100"],"hosts":["n2"],"vars":{"driver":"550","tier":"gpu-tier"}}' \
	"group gpu" '.groups.gpu'
q '.groups.a100.hosts == ["n1"] and .groups.storage.hosts == ["n2"]' "direct hosts" '.groups'
q '.all.vars == {"ntp":"cluster-ntp","tier":"dev","only_cluster":"c"}' "all.vars" '.all.vars'
# effective connection settings: ssh defaults where the node sets none
q '.nodes.n1.user == "ops" and .nodes.n1.port == 2200 and .nodes.n1.site == "default"' \
	"n1 connection defaults" '.nodes.n1'
q '.nodes.n3.user == "root" and .nodes.n3.port == 22 and .nodes.n3.site == "onprem" and .nodes.n3.roles == ["worker","gpu"] and .nodes.n3.labels == {"rack":"r1"}' \
	"n3 own settings" '.nodes.n3'
q '.nodes.n3.bmc == {"type":"ipmi","address":"10.0.1.3","port":623,"user":"admin","password_file":"'"$TMP"'/bmc.pw","password_env":null}' \
	"n3 bmc" '.nodes.n3.bmc'
q '.nodes.n1.bmc == null and .nodes.n1.mac == null and .nodes.n1.boot_image == null' "absent fields are null" '.nodes.n1'
! grep -q 's3cret-PW-xyz' a.json || die "A: the BMC password appears in the output"
# keys are sorted as printed (jq keeps the order it reads unless -S)
diff <(jq . a.json) <(jq -S . a.json) >/dev/null || die "A: keys not sorted"
ok "A: json of groups, children and merged vars"

# ---- B: a spec importing an INI inventory --------------------------------
"$KILN" inventory -f "$SRC/tests/unit/spec/good/inventory.yaml" -o json >b.json || die "B: exit $?"
qb() { jq -ce "$1" b.json >/dev/null || die "B: $2 (got $(jq -c "${3:-$1}" b.json))"; }
# gpu01: in a100, a child of gpu, a child of cluster
qb '.nodes.gpu01.groups == ["a100","cluster","gpu","all"]' "gpu01 groups through children" '.nodes.gpu01.groups'
qb '.nodes.gpu01.vars == {"driver":"550","tier":"prod","weight":3,"ratio":0.25,"flag":true,"ntp":"pool.ntp.org"}' \
	"gpu01 vars from [gpu:vars], [cluster:vars], [all:vars]" '.nodes.gpu01.vars'
qb '.nodes.gpu01.user == "ubuntu" and .nodes.gpu01.port == 2222 and .nodes.gpu01.address == "10.214.0.1" and .nodes.gpu01.roles == ["worker","gpu"] and .nodes.gpu01.site == "onprem"' \
	"gpu01 from ansible_* and kiln_*" '.nodes.gpu01'
qb '.nodes.gpu01.bastion == {"host":"192.0.2.1","port":22,"user":"jump"}' "gpu01 bastion" '.nodes.gpu01.bastion'
qb '.nodes["web1.example.com"].user == "deploy"' "host var beats [all:vars]" '.nodes["web1.example.com"].user'
# the spec's own node joins the inventory's gpu group and gets its vars
qb '.nodes["spec-node"].vars.driver == "550" and (.nodes["spec-node"].vars | has("from_spec") | not)' \
	"spec-node vars" '.nodes["spec-node"].vars'
qb '.groups.cluster.children == ["gpu","web"] and .groups.gpu.children == ["a100"]' "children" '.groups'
qb '.groups.gpu.hosts == ["spec-node","gpu01","gpu02","gpu-pc"]' "gpu hosts" '.groups.gpu.hosts'
qb '[.nodes[].vars | keys[] | select(startswith("ansible_"))] == []' "ansible_* consumed" '[.nodes[].vars]'
ok "B: an imported INI inventory"

# ---- C: --limit ---------------------------------------------------------
"$KILN" inventory -f cluster.yaml -o json --limit gpu >c.json || die "C: exit $?"
jq -e '.all.hosts == ["n1","n2"] and (.nodes | keys) == ["n1","n2"]' c.json >/dev/null ||
	die "C: --limit gpu is not n1,n2 (child a100's n1 included): $(jq -c .all.hosts c.json)"
"$KILN" inventory -f cluster.yaml -o json --limit '!gpu' >c.json || die "C: exit $?"
jq -e '.all.hosts == ["n3"] and (.groups | keys) == []' c.json >/dev/null ||
	die "C: --limit '!gpu' is not n3 alone without groups: $(jq -c '[.all.hosts, (.groups|keys)]' c.json)"
"$KILN" inventory -f cluster.yaml -o json --limit a100 >c.json || die "C: exit $?"
jq -e '(.groups | keys) == ["a100","gpu"] and .groups.gpu.hosts == [] and .groups.gpu.children == ["a100"]' c.json >/dev/null ||
	die "C: --limit a100 groups: $(jq -c .groups c.json)"
rc=0
"$KILN" inventory -f cluster.yaml --limit nosuch >c.out 2>c.err || rc=$?
[ "$rc" = 1 ] || die "C: --limit nosuch: exit $rc, expected 1"
grep -q "'nosuch' matches no node or group" c.err || die "C: --limit nosuch: $(cat c.err)"
[ ! -s c.out ] || die "C: --limit nosuch printed on stdout"
ok "C: --limit"

# ---- D: text --------------------------------------------------------------
"$KILN" inventory -f cluster.yaml --vars >d.txt || die "D: exit $?"
grep -qxE 'n1 +10\.0\.0\.1 +site=default roles=- groups=a100,gpu,all' d.txt || die "D: no n1 line in: $(cat d.txt)"
grep -qxE 'n3 +10\.0\.0\.3 +site=onprem roles=worker,gpu groups=all' d.txt || die "D: no n3 line in: $(cat d.txt)"
# the tree: a100 under gpu, n1 under a100, n2 directly under gpu, n3 under all
awk '/^$/ && ++blank == 2 { exit } { print }' d.txt >d.tree
diff -u - d.tree <<'EOF' || die "D: group tree differs"
cluster t

@all:
  @storage:
    n2
  @gpu:
    @a100:
      n1
    n2
  n3
EOF
# n1's merged vars follow its line, sorted
awk '/^n1 / { on = 1; next } /^[^ ]/ { on = 0 } on' d.txt >d.n1
diff -u - d.n1 <<'EOF' || die "D: n1 --vars lines differ"
    driver=555
    ntp=cluster-ntp
    only_cluster=c
    tier=gpu-tier
    x=node-x
EOF
! grep -q $'\e' d.txt || die "D: a raw ESC reached the terminal output"
grep -qxF '    evil=\e[31mred' d.txt || die "D: the ESC in n3's var is not shown escaped: $(grep evil d.txt)"
"$KILN" inventory -f cluster.yaml >d2.txt || die "D: exit $?"
! grep -q '=' <(grep '^    ' d2.txt) || die "D: vars shown without --vars"
ok "D: text tree, node lines, --vars, escaping"

# ---- E: bad spec, help ------------------------------------------------------
cat >bad.yaml <<'EOF'
cluster: t
ssh: {known_hosts: known_hosts}
nodes:
  - name: n1
    address: 10.0.0.1
  - name: n2
    adress: 10.0.0.2
EOF
rc=0
"$KILN" inventory -f bad.yaml -o json >e.out 2>e.err || rc=$?
[ "$rc" = 1 ] || die "E: bad spec: exit $rc, expected 1"
grep -qx "kiln: bad.yaml:7:5: unknown key 'adress' in node .*" e.err || die "E: bad spec message: $(cat e.err)"
[ "$(wc -l <e.err)" = 1 ] || die "E: bad spec: not one line: $(cat e.err)"
[ ! -s e.out ] || die "E: bad spec printed on stdout"
rc=0
"$KILN" inventory -f missing.yaml >/dev/null 2>e.err || rc=$?
[ "$rc" = 1 ] || die "E: missing spec: exit $rc"
"$KILN" help inventory >h.txt || die "E: help inventory: exit $?"
for s in SYNOPSIS DESCRIPTION OPTIONS 'EXIT STATUS' EXAMPLES --limit --vars; do
	grep -q -e "$s" h.txt || die "E: help has no '$s'"
done
"$KILN" inventory --help | cmp -s - h.txt || die "E: 'inventory --help' differs from 'help inventory'"
"$KILN" help | grep -qE '^  inventory +' || die "E: 'kiln help' does not list inventory"
rc=0
"$KILN" inventory --bogus 2>/dev/null || rc=$?
[ "$rc" = 1 ] || die "E: unknown option: exit $rc"
ok "E: bad spec, help"
