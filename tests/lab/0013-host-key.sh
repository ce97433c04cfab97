#!/usr/bin/env bash
# A node whose host key changed is refused with a clear message.
. "$(dirname "$0")/lib.sh"
lab_up 2 --bastion
kiln_rc 0 apply -f "$SPEC"

"$KILN" lab rekey --dir "$LAB" node2
kiln_rc 1 apply -f "$SPEC" -o json
assert_eq "$(json 'j["nodes"][0]["status"]')" ok "node1"
assert_eq "$(json 'j["nodes"][1]["status"]')" unreachable "node2"
assert_contains "$(json 'j["nodes"][1]["error"]')" "host key" "node2 error"
assert_contains "$(json 'j["nodes"][1]["error"]')" "does not match" "node2 error"
