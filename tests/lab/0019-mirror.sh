#!/usr/bin/env bash
# The lab's package mirror: `kiln lab mirror` fetches zsh and every dependency
# once on the machine (from Debian's mirror; cached across runs), `kiln lab up
# --mirror` serves them inside the lab, and a `package` resource installs zsh
# on two nodes with apt, from that repository: its dependency zsh-common
# comes along and its maintainer script (postinst: add-shell) runs; munge's
# postinst makes its key and starts munge.service under the hosts' systemd.
# The machine installs nothing and its apt sources stay as they were.
. "$(dirname "$0")/lib.sh"
CACHE=${KILN_MIRROR_CACHE:-/var/cache/kiln/lab-mirror}
P=zsh D=zsh-common S=munge

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }
# Every file of the machine's apt configuration, with its checksum.
apt_sum() { find /etc/apt -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum; }
debs_stat() { stat -c '%n %s %Y' "$CACHE"/repo/*.deb; }

for p in $P $D $S; do
	installed $p && fail "$p is installed on the machine: this test needs a machine without it"
done
apt_before=$(apt_sum)
shells_before=$(sha256sum </etc/shells)

say "kiln lab mirror --packages $P,$S (Debian's mirror the first time, the cache after)"
kiln_rc 0 lab mirror --packages $P,$S --cache "$CACHE"
grep -qx "Package: $P" "$CACHE/repo/Packages" || fail "$P is not in the index"
grep -qx "Package: $D" "$CACHE/repo/Packages" || fail "dependency $D is not in the index"
grep -qx "Package: $S" "$CACHE/repo/Packages" || fail "$S is not in the index"
grep -qx "$P" "$CACHE/packages" || fail "$CACHE/packages does not list $P"
stat_before=$(debs_stat)

say "a second kiln lab mirror downloads nothing"
kiln_rc 0 -o json lab mirror --packages $P,$S --cache "$CACHE"
assert_eq "$(json 'j["downloaded"], j["refreshed"]')" "(0, False)" "second mirror run"
assert_eq "$(debs_stat)" "$stat_before" "the cache's .debs (names, sizes, mtimes)"

lab_up 2 --mirror --cache "$CACHE"
kiln_rc 0 -o json lab status --dir "$LAB"
maddr=$(json 'j["mirror"]["address"]')
mpid=$(json 'j["mirror"]["pid"]')
addrs=$(json '" ".join(h["address"] for h in j["hosts"])')
assert_eq "$(echo $addrs | wc -w)" 2 "node addresses"
assert_eq "$(json 'j["mirror"]["alive"], j["mirror"]["url"]')" "(True, 'http://$maddr:80/')" "mirror status"
assert_eq "$(json 'j["mirror"]["cache"]')" "$(realpath "$CACHE")" "mirror cache"
assert_eq "$(ps -o user= -p "$mpid")" "nobody" "the mirror server's user"

say "hosts' apt knows only the mirror at $maddr"
for n in node1 node2; do
	assert_eq "$(on $n grep -v '^#' /etc/apt/sources.list)" \
		"deb [trusted=yes] http://$maddr:80/ ./" "$n /etc/apt/sources.list"
	assert_eq "$(on $n sh -c 'ls -A /etc/apt/sources.list.d /var/lib/apt/lists')" \
		"$(printf '/etc/apt/sources.list.d:\n\n/var/lib/apt/lists:')" "$n other apt sources and lists"
done

say "the server answers GET/HEAD for files at the repository's top, nothing else"
code() { on node1 curl -s -o /dev/null -w '%{http_code}' --path-as-is "$@"; }
ln -sfn /etc/passwd "$CACHE/repo/kiln-test-link"
assert_eq "$(code http://$maddr/kiln-test-link)" 404 "a symlink out of the repository"
rm -f "$CACHE/repo/kiln-test-link"
assert_eq "$(code http://$maddr/../packages)" 404 "a path with .."
assert_eq "$(code http://$maddr/%2e%2e/packages)" 404 "an encoded .."
assert_eq "$(code http://$maddr/partial)" 404 "a directory"
assert_eq "$(code http://$maddr/.lock)" 404 "a hidden file"
assert_eq "$(code -X POST http://$maddr/Packages)" 501 "POST (not implemented)"
assert_eq "$(code -I http://$maddr/Packages)" 200 "HEAD"
assert_eq "$(on node1 curl -sI http://$maddr/Packages | tr -d '\r' | grep -i '^content-length:')" \
	"Content-Length: $(stat -c %s "$CACHE/repo/Packages")" "HEAD Content-Length"

cat >>"$SPEC" <<YAML
    packages:
      debian: [$P, $S]
YAML

say "plan shows the install, apply does it on both nodes"
kiln_rc 2 plan -f "$SPEC" -o json
assert_eq "$(json '[r["message"] for r in j["nodes"][0]["results"] if r["id"].startswith("package:")]')" \
	"['install $P $S']" "planned package change"
kiln_rc 0 apply -f "$SPEC"
for n in node1 node2; do
	on $n sh -c "dpkg-query -W -f='\${Status}' $P | grep -qx 'install ok installed'" || fail "$n: $P not installed"
	on $n sh -c "dpkg-query -W -f='\${Status}' $D | grep -qx 'install ok installed'" || fail "$n: $D not installed"
	assert_eq "$(on $n zsh -c 'echo zsh $ZSH_VERSION')" "zsh 5.9" "$n runs zsh"
	# zsh's postinst registers it as a login shell.
	on $n grep -qx /usr/bin/zsh /etc/shells || fail "$n: zsh's postinst did not run (no /usr/bin/zsh in /etc/shells)"
	# munge's postinst made its key and started the service under systemd
	# (lab hosts boot systemd by default)
	assert_eq "$(on $n cat /proc/1/comm)" systemd "$n PID 1"
	on $n test -s /etc/munge/munge.key || fail "$n: munge's postinst made no key"
	assert_eq "$(on $n systemctl is-active munge)" active "$n munge.service, started by its postinst"
	assert_eq "$(on $n systemctl is-enabled munge)" enabled "$n munge.service enabled"
done

say "the .debs came from the mirror, to each node"
log=/run/kiln-lab/$LAB_NAME/mirror.log
for a in $addrs; do
	grep -Eq "^GET /\./${P}_[^ ]+\.deb 200 [0-9]+ $a\$" "$log" || { cat "$log" >&2; fail "no $P download by $a"; }
	grep -Eq "^GET /\./${D}_[^ ]+\.deb 200 [0-9]+ $a\$" "$log" || { cat "$log" >&2; fail "no $D download by $a"; }
done

say "the machine has neither package, the same apt sources and /etc/shells"
for p in $P $D $S; do
	installed $p && fail "$p reached the machine itself"
done
assert_eq "$(apt_sum)" "$apt_before" "the machine's /etc/apt"
assert_eq "$(sha256sum </etc/shells)" "$shells_before" "the machine's /etc/shells"

say "second apply: nothing to install"
kiln_rc 0 apply -f "$SPEC"
assert_contains "$OUT" "2 nodes, 0 changed"

say "lab down stops the server and leaves no mount"
kiln_rc 0 lab down --dir "$LAB"
if [ -e "/proc/$mpid" ] && ! grep -q '^State:.*Z' "/proc/$mpid/status" 2>/dev/null; then
	fail "mirror server $mpid still runs after lab down"
fi
grep -q "/run/kiln-lab/$LAB_NAME" /proc/mounts && fail "lab mounts left after down"
ip netns list | grep -q "^$LAB_NAME-" && fail "lab namespaces left after down"
[ ! -e "/run/kiln-lab/$LAB_NAME.json" ] || fail "state file left after down"
