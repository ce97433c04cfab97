#!/bin/bash
# kiln validate (the offline plan) and kiln exports: no root, no lab, no SSH.
#   A  a spec with the base stack: exit 0, one line per node with its
#      resource count, the summary line, -o json {ok, nodes}; no state
#      database (nor .kiln/) is created;
#   B  facts recorded in the state database are used (a debian node gets its
#      package resource, a node without facts does not; another cluster's
#      facts are not this one's); the database kiln made is only read;
#   C  a template naming a variable one node lacks: exit 1, one line naming
#      that node and FILE:LINE:COL of the template; -o json ok:false, error;
#   D  a YAML syntax error and an unknown key: exit 1, FILE:LINE:COL, nothing
#      on stdout; an explicit --state that does not exist is not created;
#   E  kiln exports on an empty state: nothing / [], exit 0, nothing created;
#      help for both, listed in 'kiln help';
#   F  the nvidia stack's notes (which branch and modules a node gets, why)
#      under their node in text and -o json, from recorded GPU facts; a card
#      no configured branch supports: exit 1, one line naming node and card.
set -euo pipefail

die() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
command -v jq >/dev/null || die "missing 'jq'"
command -v sqlite3 >/dev/null || die "missing 'sqlite3'"
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=${KILN_SRC:-$(cd "$HERE/../.." && pwd)}
KILN=${KILN:-$SRC/build/bin/kiln}
[ -x "$KILN" ] || die "no kiln at '$KILN' (set KILN)"

TMP=$(mktemp -d /tmp/kiln-validate.XXXXXX)
trap 'rm -rf "$TMP"' EXIT INT TERM
cd "$TMP"
: >known_hosts
no_state() { [ ! -e .kiln ] || die "$1: .kiln/ was created: $(ls -la .kiln)"; }

# Per node: modules, sysctls, swap, hostname, /etc/hosts, admin user, 2 files,
# 1 service = 9; a node whose facts say debian also gets its packages = 10.
cat >cluster.yaml <<'EOF'
cluster: t
ssh: {known_hosts: known_hosts}
vars: {ntp: pool.ntp.org}
nodes:
  - name: n1
    address: 10.0.0.1
    vars: {role_name: first}
  - name: n2
    address: 10.0.0.2
    vars: {role_name: second}
  - name: n3
    address: 10.0.0.3
    vars: {role_name: third}
stacks:
  base:
    admin_user:
      name: kiln
      keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIValidateValidateValidateValidateValid op"]
    packages:
      debian: [curl, chrony]
    files:
      - path: /etc/motd
        content: "managed by kiln\n"
      - path: /etc/kiln/node.conf
        template: "name={{ node.name }} ntp={{ ntp }} role={{ role_name }}\n"
    services:
      - name: chrony
        watch: [/etc/kiln/node.conf]
EOF

# ---- A: renders, offline, nothing created --------------------------------
"$KILN" validate -f cluster.yaml >a.txt 2>a.err || die "A: exit $? ($(cat a.err))"
for n in n1 n2 n3; do
	grep -qxE "$n +9 resources \(no facts: what needs them is left out\)" a.txt ||
		die "A: no line for $n in: $(cat a.txt)"
done
grep -qx 'ok: cluster t: 3 nodes, 27 resources, 3 nodes without facts, 0 waits' a.txt ||
	die "A: summary line: $(tail -1 a.txt)"
[ ! -s a.err ] || die "A: stderr: $(cat a.err)"
no_state A
"$KILN" validate -f cluster.yaml -o json >a.json || die "A: json exit $?"
jq -e '.ok == true and ([.nodes[].name] == ["n1","n2","n3"]) and
	([.nodes[].resources] == [9,9,9]) and ([.nodes[].facts] == [false,false,false]) and
	([.nodes[].needs] == [[],[],[]]) and (has("error") | not)' a.json >/dev/null ||
	die "A: json: $(jq -c . a.json)"
no_state A
# the default spec is ./cluster.yaml
"$KILN" validate >/dev/null || die "A: validate without -f: exit $?"
no_state A
ok "A: every node renders, counts per node, nothing created"

# ---- B: recorded facts are used ------------------------------------------
mkdir B && cp cluster.yaml known_hosts B/ && mkdir B/.kiln
# kiln makes the database and its schema itself (state_open on an empty file)
: >B/.kiln/state.db
"$KILN" exports -f B/cluster.yaml >/dev/null || die "B: exports on an empty file: exit $?"
sqlite3 B/.kiln/state.db "INSERT INTO facts VALUES ('t', 'n1', 1, '{\"os\":{\"family\":\"debian\"}}');
	INSERT INTO facts VALUES ('other', 'n2', 1, '{\"os\":{\"family\":\"debian\"}}');
	INSERT INTO facts VALUES ('t', 'n3', 1, '{\"os\":{\"family\":\"redhat\"}}');"
sum_before=$(sqlite3 B/.kiln/state.db 'SELECT count(*) FROM facts; SELECT count(*) FROM runs;' | tr '\n' ' ')
"$KILN" validate -f B/cluster.yaml -o json >b.json || die "B: exit $?"
jq -e '[.nodes[] | [.name, .resources, .facts]] == [["n1",10,true],["n2",9,false],["n3",9,true]]' \
	b.json >/dev/null || die "B: facts not used as recorded: $(jq -c '.nodes' b.json)"
"$KILN" validate -f B/cluster.yaml >b.txt || die "B: text exit $?"
grep -qxE 'n1 +10 resources' b.txt || die "B: n1 line: $(cat b.txt)"
grep -qx 'ok: cluster t: 3 nodes, 28 resources, 1 nodes without facts, 0 waits' b.txt ||
	die "B: summary: $(tail -1 b.txt)"
[ "$(sqlite3 B/.kiln/state.db 'SELECT count(*) FROM facts; SELECT count(*) FROM runs;' | tr '\n' ' ')" = "$sum_before" ] ||
	die "B: validate wrote to the state database"
ok "B: recorded facts per node and cluster"

# ---- C: a render error names the node and the spec location ---------------
sed -e '/role_name: second/d' -e 's/    vars: {role_name: second}//' cluster.yaml >c.yaml
grep -q 'second' c.yaml && die "C: test setup: n2 still has role_name"
# the location is the file's entry in stacks.base.files (its map, at 'path:')
line=$(grep -n 'path: /etc/kiln/node.conf' c.yaml | cut -d: -f1)
rc=0
"$KILN" validate -f c.yaml >c.out 2>c.err || rc=$?
[ "$rc" = 1 ] || die "C: exit $rc, expected 1"
grep -qx "kiln: c.yaml:$line:9: file '/etc/kiln/node.conf' for node 'n2': .*unknown variable 'role_name'" c.err ||
	die "C: message: $(cat c.err)"
[ "$(wc -l <c.err)" = 1 ] || die "C: not one line: $(cat c.err)"
[ ! -s c.out ] || die "C: text output despite the error: $(cat c.out)"
rc=0
"$KILN" validate -f c.yaml -o json >c.json 2>/dev/null || rc=$?
[ "$rc" = 1 ] || die "C: json exit $rc"
jq -e '.ok == false and ([.nodes[].name] == ["n1"]) and (.error | test("for node .n2.: .*unknown variable .role_name."))' \
	c.json >/dev/null || die "C: json: $(jq -c . c.json)"
no_state C
ok "C: unknown template variable: node, FILE:LINE:COL, exit 1"

# ---- D: spec errors ----------------------------------------------------------
printf 'cluster: t\nssh: {known_hosts: known_hosts}\nnodes: [\n  {name: n1, address: 10.0.0.1}\n' >d.yaml
rc=0
"$KILN" validate -f d.yaml >d.out 2>d.err || rc=$?
[ "$rc" = 1 ] || die "D: syntax error: exit $rc"
grep -qE '^kiln: d\.yaml:[0-9]+:[0-9]+: ' d.err || die "D: syntax error message: $(cat d.err)"
[ "$(wc -l <d.err)" = 1 ] || die "D: syntax error: not one line: $(cat d.err)"
[ ! -s d.out ] || die "D: syntax error printed on stdout"
sed 's/^    packages:/    pakages:/' cluster.yaml >d2.yaml
rc=0
"$KILN" validate -f d2.yaml --state "$TMP/nowhere/state.db" >d.out 2>d.err || rc=$?
[ "$rc" = 1 ] || die "D: unknown key: exit $rc"
grep -qE "^kiln: d2\.yaml:$(grep -n pakages d2.yaml | cut -d: -f1):5: .*'pakages'" d.err ||
	die "D: unknown key message: $(cat d.err)"
"$KILN" validate -f cluster.yaml --state "$TMP/nowhere/state.db" >/dev/null || die "D: --state missing: exit $?"
[ ! -e "$TMP/nowhere" ] || die "D: --state path was created"
no_state D
ok "D: syntax error and unknown key: FILE:LINE:COL, exit 1"

# ---- E: exports on an empty state, help ---------------------------------------
out=$("$KILN" exports -f cluster.yaml) || die "E: exports without a database: exit $?"
[ -z "$out" ] || die "E: exports printed: $out"
[ "$("$KILN" exports -f cluster.yaml -o json | jq -c .)" = "[]" ] || die "E: exports -o json is not []"
no_state E
out=$("$KILN" exports -f B/cluster.yaml) || die "E: exports on an empty table: exit $?"
[ -z "$out" ] || die "E: exports printed: $out"
[ "$("$KILN" exports -f B/cluster.yaml -o json | jq -c .)" = "[]" ] || die "E: empty table -o json is not []"
for c in validate exports; do
	"$KILN" help $c >h.txt || die "E: help $c: exit $?"
	for s in SYNOPSIS DESCRIPTION OPTIONS 'EXIT STATUS' EXAMPLES --state; do
		grep -q -e "$s" h.txt || die "E: help $c has no '$s'"
	done
	"$KILN" $c --help | cmp -s - h.txt || die "E: '$c --help' differs from 'help $c'"
	"$KILN" help | grep -qE "^  $c +" || die "E: 'kiln help' does not list $c"
	rc=0
	"$KILN" $c --bogus 2>/dev/null || rc=$?
	[ "$rc" = 1 ] || die "E: $c --bogus: exit $rc"
done
grep -q 'CI job' <("$KILN" help validate) || die "E: validate help does not say it is for CI"
ok "E: exports on an empty state, help"

# ---- F: a stack's notes: the nvidia choice per node ---------------------------
mkdir F && cp known_hosts F/ && mkdir F/.kiln && : >F/.kiln/state.db
cat >F/cluster.yaml <<'EOF'
cluster: f
ssh: {known_hosts: known_hosts}
nodes:
  - {name: g1, address: 10.0.0.1}
  - {name: g2, address: 10.0.0.2}
  - {name: g3, address: 10.0.0.3}
stacks:
  nvidia:
    branch: 580
EOF
"$KILN" exports -f F/cluster.yaml >/dev/null || die "F: exports on an empty file: exit $?"
gpu() { printf '{"vendor_id":"0x10de","device_id":"%s"}' "$1"; }
sqlite3 F/.kiln/state.db "INSERT INTO facts VALUES ('f', 'g1', 1, '{\"os\":{\"family\":\"debian\",\"id\":\"debian\",\"version_id\":\"12\"},\"kernel\":{\"release\":\"6.1.0-18-amd64\"},\"gpus\":[$(gpu 0x1eb8)]}');
	INSERT INTO facts VALUES ('f', 'g2', 1, '{\"os\":{\"family\":\"redhat\",\"id\":\"rocky\",\"version_id\":\"9.3\"},\"kernel\":{\"release\":\"5.14.0-362.8.1.el9_3.x86_64\"},\"gpus\":[$(gpu 0x102d)]}');"
"$KILN" validate -f F/cluster.yaml >f.txt || die "F: exit $?"
grep -qxE 'g1 +5 resources' f.txt || die "F: g1 line: $(cat f.txt)"
grep -qx '    note: g1: 10de:1eb8 Tesla T4 (Turing) → 580, open modules' f.txt ||
	die "F: g1 note: $(cat f.txt)"
grep -qx '    note: g2: 10de:102d Tesla K80 (Kepler) → 470 (580 not supported), proprietary modules (Kepler card)' f.txt ||
	die "F: g2 note: $(cat f.txt)"
grep -qxE 'g3 +0 resources \(no facts: what needs them is left out\)' f.txt || die "F: g3: $(cat f.txt)"
[ "$(grep -c 'note:' f.txt)" = 2 ] || die "F: notes for a node without facts: $(cat f.txt)"
"$KILN" validate -f F/cluster.yaml -o json >f.json || die "F: json exit $?"
jq -e '[.nodes[] | [.name, (.notes | length)]] == [["g1",1],["g2",1],["g3",0]] and
	(.nodes[1].notes[0] | startswith("g2: 10de:102d Tesla K80 (Kepler) → 470"))' f.json >/dev/null ||
	die "F: json notes: $(jq -c '.nodes' f.json)"
sed -i 's/^    branch: 580$/    branch: 590\n    branches: [590, 580]/' F/cluster.yaml
rc=0
"$KILN" validate -f F/cluster.yaml >f.out 2>f.err || rc=$?
[ "$rc" = 1 ] || die "F: K80 without a 470 branch: exit $rc"
grep -qx "kiln: g2: 10de:102d Tesla K80 (Kepler): no configured branch supports it (470 legacy; allowed: 590, 580); F/cluster.yaml:9:5: stacks.nvidia" f.err ||
	die "F: error line: $(cat f.err)"
[ ! -s f.out ] || die "F: text output despite the error: $(cat f.out)"
ok "F: nvidia notes per node, text and json; an unsupported card fails naming it"
