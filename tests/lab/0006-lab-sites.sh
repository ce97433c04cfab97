#!/usr/bin/env bash
# kiln lab --sites: an on-prem site behind the bastion (its NAT router) and a
# cloud site on the public network.  From the machine only cloud hosts (and
# the bastion) are reachable; between sites only UDP to a cloud host's
# public endpoint (51820) crosses, NATed by the bastion; the spec names sites
# and endpoints; down leaves no namespace, link, route or rule.
. "$(dirname "$0")/lib.sh"
# The sites take the blocks after SUBNET (here .6 on-prem, .7 cloud, .8
# public): a range no other lab test's subnet (10.213.x) touches.
LAB_SUBNET=10.214.6.0/24
ONPREM=10.214.6 CLOUD=10.214.7 PUB=10.214.8

say "refusals: --sites without --bastion, --nodes that disagrees, one site"
kiln_rc 1 lab up --dir "$LAB" --name "$LAB_NAME" --subnet "$LAB_SUBNET" --sites a:1,b:1
assert_contains "$ERR" "needs --bastion"
kiln_rc 1 lab up --nodes 3 --bastion --dir "$LAB" --name "$LAB_NAME" --subnet "$LAB_SUBNET" --sites a:2,b:2
assert_contains "$ERR" "--nodes 3 but --sites 'a:2,b:2' names 4 in all, 2 in its first site"
kiln_rc 1 lab up --bastion --dir "$LAB" --name "$LAB_NAME" --subnet "$LAB_SUBNET" --sites a:2
assert_contains "$ERR" "at least two sites"
ip netns list | grep -q "^$LAB_NAME-" && fail "a refused up left namespaces"

lab_up 4 --bastion --sites onprem:2,cloud:2
kiln_rc 0 -o json lab status --dir "$LAB"
assert_eq "$(json '[(h["name"], h["address"], h["site"]) for h in j["hosts"]]')" \
	"[('bastion', '$ONPREM.2', 'onprem'), ('node1', '$ONPREM.11', 'onprem'), ('node2', '$ONPREM.12', 'onprem'), ('node3', '$CLOUD.11', 'cloud'), ('node4', '$CLOUD.12', 'cloud')]" "hosts"
assert_eq "$(json '[(s["name"], s["subnet"], s["network"]) for s in j["sites"]]')" \
	"[('onprem', '$ONPREM.0/24', 'nat'), ('cloud', '$CLOUD.0/24', 'public')]" "sites"

say "the spec names sites, on-prem bastions and cloud endpoints"
spec=$(cat "$SPEC")
assert_eq "$(grep -c '^    site: onprem$' "$SPEC")" 2 "on-prem nodes"
assert_eq "$(grep -c '^    site: cloud$' "$SPEC")" 2 "cloud nodes"
assert_eq "$(grep -c "^    bastion: root@$ONPREM.254:22\$" "$SPEC")" 2 "per-node bastions"
assert_contains "$spec" "endpoint: \"$CLOUD.11:51820\""
assert_contains "$spec" "endpoint: \"$CLOUD.12:51820\""
grep -q '^  bastion:' "$SPEC" && fail "a cluster-wide bastion would carry cloud traffic"

say "forwarding: only the bastion routes"
for h in node1 node2 node3 node4; do
	assert_eq "$(on $h cat /proc/sys/net/ipv4/ip_forward)" 0 "$h ip_forward"
done
assert_eq "$(on bastion cat /proc/sys/net/ipv4/ip_forward)" 1 "bastion ip_forward"

# tcp_open ADDR PORT: a TCP connect that gives up after 3 s (drops hang).
tcp_open='exec 3<>"/dev/tcp/$0/$1"'

say "from the machine: a cloud host's sshd answers, an on-prem one is unreachable"
banner=$(timeout 5 bash -c "$tcp_open"'; head -c 4 <&3' "$CLOUD.11" 22) || fail "machine -> $CLOUD.11:22"
assert_eq "$banner" "SSH-" "cloud sshd banner"
timeout 3 bash -c "$tcp_open" "$ONPREM.11" 22 2>/dev/null && fail "machine reached on-prem node1:22"
timeout 3 bash -c "$tcp_open" "$ONPREM.2" 22 2>/dev/null && fail "machine reached the bastion's on-prem leg"

say "facts reach all 4 (on-prem through the bastion, cloud directly)"
kiln_rc 0 facts -f "$SPEC" -o json
assert_eq "$(json 'sorted(n["facts"]["hostname"] for n in j["nodes"])')" "['node1', 'node2', 'node3', 'node4']" "facts hostnames"

# A listener on node3: UDP 51820 and 9999, TCP 8080; one line per datagram
# or connection ("udp PORT SRC DATA", "tcp SRC"); exits on the datagram "end".
listener='
import select, socket, sys
u1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u1.bind(("0.0.0.0", 51820))
u2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u2.bind(("0.0.0.0", 9999))
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("0.0.0.0", 8080)); t.listen(8)
print("ready", flush=True)
while True:
    r, _, _ = select.select([u1, u2, t], [], [], 20)
    if not r:
        print("timeout", flush=True); sys.exit(1)
    for s in r:
        if s is t:
            c, a = t.accept(); print("tcp", a[0], flush=True); c.close(); continue
        d, a = s.recvfrom(64)
        print("udp", s.getsockname()[1], a[0], d.decode(), flush=True)
        if d == b"end":
            sys.exit(0)
'
send='import socket, sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))'
on node3 python3 -c "$listener" >"$T/node3.log" 2>&1 &
lpid=$!
for _ in $(seq 100); do grep -q ready "$T/node3.log" && break; sleep 0.1; done
grep -q ready "$T/node3.log" || fail "node3's listener did not start: $(cat "$T/node3.log")"

say "between sites: on-prem -> cloud UDP 51820 arrives NATed; nothing else crosses"
on node1 python3 -c "$send" "$CLOUD.11" 51820 wg-from-node1
on node1 python3 -c "$send" "$CLOUD.11" 9999 other-from-node1
on node1 timeout 3 bash -c "$tcp_open" "$CLOUD.11" 8080 2>/dev/null && fail "node1 connected to node3:8080"
on node1 timeout 3 bash -c "$tcp_open" "$CLOUD.11" 22 2>/dev/null && fail "node1 connected to node3:22"
timeout 3 bash -c "$tcp_open" "$CLOUD.11" 8080 2>/dev/null && fail "the machine connected to node3:8080"
# Within the cloud site everything passes (and proves the listener works).
on node4 timeout 3 bash -c "$tcp_open" "$CLOUD.11" 8080 || fail "node4 -> node3:8080 (same site)"
on node4 python3 -c "$send" "$CLOUD.11" 9999 end
wait "$lpid" || fail "node3's listener: $(cat "$T/node3.log")"
log=$(cat "$T/node3.log")
assert_contains "$log" "udp 51820 $PUB.2 wg-from-node1" "node3 log (NAT to the bastion's public address)"
assert_contains "$log" "tcp $CLOUD.12" "node3 log"
assert_eq "$(grep -c "$ONPREM\.\|other-from\|tcp $PUB\|tcp $ONPREM" <<<"$log")" 0 "node3 log: $log; packets from on-prem or the machine"

say "cloud -> on-prem: nothing gets there"
on node1 python3 -c '
import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 51820))
print("ready", flush=True); s.settimeout(3)
try:
    d, a = s.recvfrom(64); print("got", a[0], d.decode(), flush=True)
except socket.timeout:
    print("nothing", flush=True)' >"$T/node1.log" 2>&1 &
lpid=$!
for _ in $(seq 100); do grep -q ready "$T/node1.log" && break; sleep 0.1; done
on node3 python3 -c "$send" "$ONPREM.11" 51820 from-cloud 2>/dev/null || true
on node3 python3 -c "$send" "$ONPREM.2" 51820 from-cloud 2>/dev/null || true
on node3 python3 -c "$send" "$PUB.2" 51820 from-cloud 2>/dev/null || true
on node3 timeout 3 bash -c "$tcp_open" "$ONPREM.11" 22 2>/dev/null && fail "node3 connected to node1:22"
wait "$lpid" || true
assert_eq "$(tail -1 "$T/node1.log")" nothing "node1 received from the cloud"

say "down leaves no namespaces, links, routes or rules"
kiln_rc 0 lab down --dir "$LAB"
ip netns list | grep -q "^$LAB_NAME-" && fail "namespaces left: $(ip netns list | grep "^$LAB_NAME-")"
ip link show "ks-$LAB_NAME" >/dev/null 2>&1 && fail "link ks-$LAB_NAME left"
ip link show "kl-$LAB_NAME" >/dev/null 2>&1 && fail "link kl-$LAB_NAME left"
ip route show table all | grep -q "10\.214\.[678]\." && fail "routes left: $(ip route show table all | grep '10\.214\.[678]\.')"
nft list tables 2>/dev/null | grep -q kiln_lab && fail "nftables rules in the machine's namespace"
[ -e "/run/kiln-lab/$LAB_NAME.json" ] && fail "state file left"
true
