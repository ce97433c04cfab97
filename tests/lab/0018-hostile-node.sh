#!/usr/bin/env bash
# Nothing a node sends reaches the operator's terminal raw, and a node cannot
# make kiln hold more than 64 MiB of its replies in a run.  node1 is hostile
# (a managed file holding escape sequences; then a fake agent); node2 runs the
# real agent throughout and must come through every time.
. "$(dirname "$0")/lib.sh"
lab_up 2

# no_raw_controls FILE WHAT: no ESC, BEL or CSI (C1, as UTF-8 or raw) byte.
no_raw_controls() {
	if LC_ALL=C grep -qP '[\x1b\x07\x9b]' "$1"; then
		od -c "$1" | grep -E '033|007|233' | head -5 >&2
		fail "$2: a raw control byte reached the output"
	fi
}
# Both streams of the last kiln_rc, checked for raw controls.
check_streams() {
	no_raw_controls "$T/out" "$1 (stdout)"
	no_raw_controls "$T/err" "$1 (stderr)"
}

say "a managed file whose content on node1 sets the title and clears the screen"
printf 'old \033]0;pwned\a \033[2J\n' | on node1 sh -c 'cat >/etc/kiln-banner'
cat >>"$SPEC" <<'YAML'
    files:
      - path: /etc/kiln-banner
        content: "new\n"
YAML
kiln_rc 2 plan -f "$SPEC"
check_streams "plan with a hostile diff"
assert_contains "$OUT" '-old \e]0;pwned\a \e[2J' "plan diff"
assert_contains "$OUT" '+new' "plan diff"
kiln_rc 2 plan -f "$SPEC" -o json
check_streams "plan -o json"
assert_contains "$(json '[r["diff"] for n in j["nodes"] if n["name"] == "node1" for r in n["results"] if "kiln-banner" in r["id"]][0]')" \
	"$(printf '\033]0;pwned\a')" "json diff keeps the text (escaped by JSON)"

# fake_agent MODE: a kiln-agent that is hostile on node1 and the real one
# elsewhere.  MODE: results (escape sequences in ids, messages, diffs and
# facts), error (in an error reply), flood (70 MB of reply lines).
fake_agent() {
	cat >"$T/$1" <<PY
#!/usr/bin/env python3
import json, os, socket, sys
MODE = "$1"
REAL = "/root/kiln-agent-real"
PY
	cat >>"$T/$1" <<'PY'
if sys.argv[1:] != ["serve"]:
    sys.exit(2)
if socket.gethostname() != "node1":
    os.execv(REAL, [REAL, "serve"])
EVIL = "\x1b]0;pwned\x07\x1b[2J\u009b31m"
def say(o):
    sys.stdout.write(json.dumps(o) + "\n")
    sys.stdout.flush()
say({"op": "hello", "version": "0.0.0-hostile", "protocol": 1})
for line in sys.stdin:
    if not line.strip():
        continue
    req = json.loads(line)
    op = req.get("op")
    if op == "facts":
        say({"op": "facts", "facts": {"os": {"family": "debian", "id": "os" + EVIL},
                                      "kernel": {"release": "k" + EVIL},
                                      "dmi": {"sys_vendor": "v" + EVIL}}})
    elif op in ("check", "apply") and MODE == "flood":
        pad = "a" * 1000000
        for _ in range(70):
            say({"op": "log", "pad": pad})
        say({"op": "done"})
    elif op in ("check", "apply") and MODE == "error":
        say({"op": "error", "message": "boom" + EVIL})
    elif op in ("check", "apply"):
        n = len(req["resources"])
        for i in range(n):
            say({"op": "result", "index": i, "id": "file:/x" + EVIL, "status": "changed",
                 "message": "msg" + EVIL, "diff": "--- a\n+++ b\n-" + EVIL + "\n+\tok\n"})
        say({"op": "done", "ok": 0, "changed": n, "failed": 0})
    elif op == "exit":
        sys.exit(0)
PY
	chmod 755 "$T/$1"
}
# node2's own copy of the real agent (the build tree is not inside nodes).
on node2 sh -c 'cat >/root/kiln-agent-real && chmod 755 /root/kiln-agent-real' \
	<"$(dirname "$KILN")/kiln-agent"
fake_agent results
fake_agent error
fake_agent flood

say "hostile ids, messages and diffs are shown escaped"
kiln_rc 2 plan -f "$SPEC" --agent "$T/results"
check_streams "plan with hostile results"
want='\e]0;pwned\a\e[2J\u009b31m'
assert_contains "$OUT" "~ base.prepare file:/x$want: msg$want" "result line"
assert_contains "$OUT" "      -$want" "diff line"
assert_contains "$OUT" "$(printf '      +\tok')" "diff keeps its tab"
kiln_rc 2 plan -f "$SPEC" --agent "$T/results" -o json
check_streams "plan -o json with hostile results"
assert_eq "$(json '[r["id"] for n in j["nodes"] if n["name"] == "node1" for r in n["results"]][0]')" \
	"$(printf 'file:/x\033]0;pwned\a\033[2J\302\23331m')" "json decodes to what the node sent"

say "a hostile error reply: plan, apply and runs show it escaped"
kiln_rc 1 plan -f "$SPEC" --agent "$T/error"
check_streams "plan with a hostile error"
assert_contains "$OUT" "agent: boom$want" "plan error line"
assert_contains "$ERR" "node1: failed: phase base.prepare: agent: boom$want" "progress line"
kiln_rc 1 apply -f "$SPEC" --agent "$T/error" -o json
run=$(json 'j["run"]')
kiln_rc 0 runs -f "$SPEC" show "$run"
check_streams "runs show"
assert_contains "$OUT" "agent: boom$want" "runs show error"
kiln_rc 0 runs -f "$SPEC" show "$run" -o json
check_streams "runs show -o json"

say "hostile facts: the table shows them escaped"
kiln_rc 0 facts -f "$SPEC" --agent "$T/results"
check_streams "facts table"
assert_contains "$OUT" "os$want" "facts OS"
assert_contains "$OUT" "k$want" "facts kernel"
assert_contains "$OUT" "v$want" "facts vendor"

say "a node that floods 70 MB of replies fails alone, named"
kiln_rc 1 plan -f "$SPEC" --agent "$T/flood" -o json
assert_eq "$(json '[n["status"] for n in j["nodes"]]')" "['failed', 'ok']" "statuses (node2 converged by the apply above)"
assert_eq "$(json 'j["nodes"][0]["error"]')" "phase base.prepare: agent: replies exceed 64 MiB in this run" "flood error"
kiln_rc 1 plan -f "$SPEC" --agent "$T/flood"
assert_contains "$ERR" "node1: failed: phase base.prepare: agent: replies exceed 64 MiB in this run" "flood progress line"

say "the real agent still converges both nodes"
kiln_rc 0 apply -f "$SPEC"
assert_eq "$(on node1 cat /etc/kiln-banner)" new "banner replaced"
