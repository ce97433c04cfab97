#!/usr/bin/env bash
# kiln trusts no agent reply it cannot account for: an error reply, too few
# results or too many all fail the node, named, with exit 1 — never "ok".
. "$(dirname "$0")/lib.sh"
lab_up 1

# fake_agent MODE: tests/lab/agents/fake-agent.sh answering in that mode.
fake_agent() {
	sed "s/^MODE=.*/MODE=$1/" "$KILN_SRC/tests/lab/agents/fake-agent.sh" >"$T/$1"
	chmod 755 "$T/$1"
}
fake_agent error
fake_agent short
fake_agent many

kiln_rc 1 apply -f "$SPEC" --agent "$T/error" -o json
assert_eq "$(json 'j["nodes"][0]["status"]')" failed "error reply"
assert_eq "$(json 'j["nodes"][0]["error"]')" "phase base.prepare: agent: request line too long" "error reply message"
assert_eq "$(json 'j["nodes"][0]["failed_in"]')" "base.prepare" "the phase it failed in"

kiln_rc 1 plan -f "$SPEC" --agent "$T/short" -o json
assert_eq "$(json 'j["nodes"][0]["status"]')" failed "no results"
assert_contains "$(json 'j["nodes"][0]["error"]')" "agent: 0 results for" "no results message"

kiln_rc 1 apply -f "$SPEC" --agent "$T/many" -o json
assert_eq "$(json 'j["nodes"][0]["status"]')" failed "too many results"
assert_contains "$(json 'j["nodes"][0]["error"]')" "more results than the" "too many results message"

say "the real agent still converges the node"
kiln_rc 0 apply -f "$SPEC"
