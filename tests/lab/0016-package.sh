#!/usr/bin/env bash
# The package resource against a local apt repository that the test builds
# (dpkg-deb) and serves inside the lab: node1 serves it over HTTP, every node
# installs from it.  Lab nodes reach no mirror, and nothing leaves the lab.
. "$(dirname "$0")/lib.sh"
lab_up 3

say "build kiln-hello_1.0_all.deb and a repository index"
pkg=$T/pkg
mkdir -p "$pkg/DEBIAN" "$pkg/usr/bin" "$T/repo"
cat >"$pkg/DEBIAN/control" <<CTL
Package: kiln-hello
Version: 1.0
Architecture: all
Maintainer: kiln tests <tests@kiln.invalid>
Description: a package for kiln's package-resource test
CTL
printf '#!/bin/sh\necho hello from kiln-hello\n' >"$pkg/usr/bin/kiln-hello"
chmod 755 "$pkg/usr/bin/kiln-hello"
dpkg-deb --build --root-owner-group "$pkg" "$T/repo/kiln-hello_1.0_all.deb" >/dev/null
(cd "$T/repo" && dpkg-scanpackages --multiversion . /dev/null >Packages 2>/dev/null)
grep -q '^Package: kiln-hello' "$T/repo/Packages" || fail "no index"

addr() { "$KILN" lab status --dir "$LAB" -o json | python3 -c 'import json,sys; print([h["address"] for h in json.load(sys.stdin)["hosts"] if h["name"]==sys.argv[1]][0])' "$1"; }
a1=$(addr node1)

say "node1 serves the repository on $a1:8080"
tar -C "$T/repo" -cf - . | on node1 sh -c 'mkdir -p /srv/kiln-repo && tar -C /srv/kiln-repo -xf -'
on node1 sh -c "cd /srv/kiln-repo && setsid python3 -m http.server 8080 --bind $a1 >/dev/null 2>&1 </dev/null &"
for n in node1 node2 node3; do
	# Only the lab repository: the machine's own sources point at mirrors the lab cannot reach.
	on $n sh -c 'rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*; rm -rf /var/lib/apt/lists/*'
done
for _ in $(seq 1 50); do on node2 sh -c "exec 3<>/dev/tcp/$a1/8080" 2>/dev/null && break; sleep 0.1; done

cat >>"$SPEC" <<YAML
    files:
      - path: /etc/apt/sources.list.d/kiln-test.list
        content: "deb [trusted=yes] http://$a1:8080/ ./\n"
    packages:
      debian: [kiln-hello]
YAML

say "plan shows the install, apply does it on every node"
kiln_rc 2 plan -f "$SPEC" -o json
assert_eq "$(json '[r["message"] for r in j["nodes"][0]["results"] if r["id"].startswith("package:")]')" \
	"['install kiln-hello']" "planned package change"
kiln_rc 0 apply -f "$SPEC"
for n in node1 node2 node3; do
	assert_eq "$(on $n kiln-hello)" "hello from kiln-hello" "$n kiln-hello"
done
dpkg-query -W kiln-hello >/dev/null 2>&1 && fail "the package reached the machine itself"

say "second apply: nothing to install"
kiln_rc 0 apply -f "$SPEC"
assert_contains "$OUT" "3 nodes, 0 changed"
