#!/bin/bash
# kiln exports: the state's exports for the spec's cluster, offline.
#   A  rows written into the database kiln made: sorted by node, stack,
#      name; another cluster's rows left out; -o json fields;
#   B  a secret shows as "(secret)" and has no "value" in JSON, even if a
#      value were somehow stored; a value with an escape sequence, a C1
#      control and a bidi override is shown escaped, never raw;
#   C  a bad spec: exit 1, nothing on stdout.
set -euo pipefail

die() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
command -v jq >/dev/null || die "missing 'jq'"
command -v sqlite3 >/dev/null || die "missing 'sqlite3'"
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=${KILN_SRC:-$(cd "$HERE/../.." && pwd)}
KILN=${KILN:-$SRC/build/bin/kiln}
[ -x "$KILN" ] || die "no kiln at '$KILN' (set KILN)"

TMP=$(mktemp -d /tmp/kiln-exports.XXXXXX)
trap 'rm -rf "$TMP"' EXIT INT TERM
cd "$TMP"
: >known_hosts
cat >cluster.yaml <<'EOF'
cluster: t
ssh: {known_hosts: known_hosts}
nodes:
  - {name: n1, address: 10.0.0.1}
  - {name: n2, address: 10.0.0.2}
EOF
mkdir .kiln && : >.kiln/state.db
"$KILN" exports >/dev/null || die "exports on an empty file: exit $?"   # kiln makes the schema
# 1700000000000 ms = 2023-11-14T22:13:20Z
evil=$(printf 'ab\033[31mRED\302\205x\342\200\256y')
sqlite3 .kiln/state.db <<EOF
INSERT INTO exports VALUES ('t', 'n2', 'mesh', 'public_key', 'PUBKEY2=', 0, 1700000000000);
INSERT INTO exports VALUES ('t', 'n1', 'mesh', 'public_key', '$evil', 0, 1700000000000);
INSERT INTO exports VALUES ('t', 'n1', 'mesh', 'address', '10.99.0.1', 0, 1700000001000);
INSERT INTO exports VALUES ('t', 'n1', 'mesh', 'private_key', 'LEAKED-SECRET', 1, 1700000000000);
INSERT INTO exports VALUES ('other', 'n1', 'mesh', 'address', 'OTHER-CLUSTER', 0, 1700000000000);
EOF

# ---- A: rows, order, cluster ----------------------------------------------
"$KILN" exports -o json >a.json || die "A: exit $?"
jq -e '[.[] | [.node, .stack, .name]] == [["n1","mesh","address"],["n1","mesh","private_key"],["n1","mesh","public_key"],["n2","mesh","public_key"]]' \
	a.json >/dev/null || die "A: rows/order: $(jq -c '[.[] | [.node,.stack,.name]]' a.json)"
jq -e '.[0] == {"node":"n1","stack":"mesh","name":"address","value":"10.99.0.1","secret":false,"updated":"2023-11-14T22:13:21Z","updated_ms":1700000001000}' \
	a.json >/dev/null || die "A: row fields: $(jq -c '.[0]' a.json)"
! grep -q OTHER-CLUSTER a.json || die "A: another cluster's row shown"
ok "A: rows sorted, fields, cluster scope"

# ---- B: secrets and escaping ---------------------------------------------------
jq -e '.[1].secret == true and (.[1] | has("value") | not)' a.json >/dev/null ||
	die "B: secret row in json: $(jq -c '.[1]' a.json)"
! grep -q LEAKED a.json || die "B: a secret's value in json"
# JSON: every non-ASCII character as \uXXXX, the ESC as \u001b
grep -qiF '"ab\u001b[31mRED\u0085x\u202ey"' a.json || die "B: json escaping: $(jq -c '.[2].value' a.json)"
! LC_ALL=C grep -q $'[\x1b\x80-\xff]' a.json || die "B: raw control or non-ASCII bytes in json"
"$KILN" exports >b.txt || die "B: text exit $?"
head -1 b.txt | grep -qE '^NODE +STACK +NAME +UPDATED +VALUE$' || die "B: header: $(head -1 b.txt)"
[ "$(wc -l <b.txt)" = 5 ] || die "B: not 4 rows and a header: $(cat b.txt)"
grep -qxE 'n1 +mesh +private_key +2023-11-14T22:13:20Z +\(secret\)' b.txt || die "B: secret line: $(cat b.txt)"
! grep -q LEAKED b.txt || die "B: a secret's value in text"
grep -qxE 'n2 +mesh +public_key +2023-11-14T22:13:20Z +PUBKEY2=' b.txt || die "B: n2 line: $(cat b.txt)"
grep -qF 'ab\e[31mRED\u0085x\u202ey' b.txt || die "B: value not shown escaped: $(grep public_key b.txt | head -1)"
! LC_ALL=C grep -q $'[\x1b\x80-\xff]' b.txt || die "B: raw control or non-ASCII bytes reached the terminal output"
ok "B: secrets never shown, values escaped"

# ---- C: a bad spec -----------------------------------------------------------------
printf 'cluster: t\nnodes: 3\n' >bad.yaml
rc=0
"$KILN" exports -f bad.yaml >c.out 2>c.err || rc=$?
[ "$rc" = 1 ] || die "C: exit $rc"
grep -qE '^kiln: bad\.yaml:[0-9]+:[0-9]+: ' c.err || die "C: message: $(cat c.err)"
[ ! -s c.out ] || die "C: printed on stdout"
ok "C: bad spec"
