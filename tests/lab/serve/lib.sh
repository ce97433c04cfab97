# kiln serve for lab tests (0100-dhcp, 0102-serve, 0103-dhcp-sync).  Source
# it after defining die(); the test sets NS_S (the server's namespace) and
# TMP (spec at $TMP/cluster.yaml, log appended to $TMP/serve.log), and for
# serve_client_hooks the DHCP clients' files go in $TMP too.

# serve_find_kiln: $KILN as ctest sets it, else a build of this checkout
# (the suite's build-test first: `build-*/` sorts before `build/`).
serve_find_kiln() {
	local src=${KILN_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)} d
	if [ -z "${KILN:-}" ]; then
		for d in "$src/build-test" "$src/build"; do
			[ -x "$d/bin/kiln" ] && KILN=$d/bin/kiln && break
		done
	fi
	[ -x "${KILN:-}" ] || die "kiln not found (set KILN)"
}

# serve_start [CMD...]: start `kiln serve` in $NS_S, behind CMD when given
# (an `env VAR=... ` prefix, say), and wait until this start's
# "event=ready" line; PID is the daemon's, which must have dropped root.
SERVE_STARTS=0
serve_start() {
	SERVE_STARTS=$((SERVE_STARTS + 1))
	ip netns exec "$NS_S" "$@" "$KILN" serve -f "$TMP/cluster.yaml" 2>>"$TMP/serve.log" &
	PID=$!
	for _ in $(seq 100); do
		[ "$(grep -c 'event=ready' "$TMP/serve.log" 2>/dev/null)" -ge "$SERVE_STARTS" ] && break
		kill -0 "$PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$PID" 2>/dev/null || die "kiln serve did not start"
	[ "$(grep -c 'event=ready' "$TMP/serve.log")" -ge "$SERVE_STARTS" ] || die "kiln serve not ready"
	serve_net_pid
}

# serve_net_pid: NPID = the unprivileged process of the daemon $PID (its
# only child), which must have dropped root; the privileged $PID keeps it.
serve_net_pid() {
	NPID=$(pgrep -P "$PID" | head -1)
	[ -n "$NPID" ] || die "kiln serve has no unprivileged process"
	[ "$(awk '/^Uid:/ {print $2}' "/proc/$NPID/status")" != 0 ] || die "kiln serve's network process is root"
	[ "$(awk '/^Uid:/ {print $2}' "/proc/$PID/status")" = 0 ] || die "kiln serve's privileged process is not root"
}

# serve_kill9: SIGKILL the privileged process, as a crash would; its
# unprivileged one dies with it (PR_SET_PDEATHSIG): wait until it has.
serve_kill9() {
	kill -9 "$PID"
	wait "$PID" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$NPID" 2>/dev/null || break; sleep 0.05; done
	kill -0 "$NPID" 2>/dev/null && die "the network process $NPID outlived its parent"
	PID= NPID=
}

# serve_stop: SIGTERM and wait.
serve_stop() {
	kill "$PID"
	wait "$PID" 2>/dev/null || true
	PID=
}

# serve_client_hooks PREFIX: DHCP client hooks in $TMP for a client on a
# /PREFIX network.  dhclient.sh configures the address and records reason
# and new_* in dhclient.env (and removes the address on RELEASE);
# udhcpc.sh does the same into udhcpc.env; dhclient.conf makes dhclient
# announce itself as a BIOS PXE ROM ($PXE_VC), so kiln hands it a loader.
# getv FILE KEY reads one recorded value.
PXE_VC=PXEClient:Arch:00000:UNDI:002001
serve_client_hooks() {
	cat >"$TMP/dhclient.sh" <<EOF
#!/bin/sh
case "\$reason" in
BOUND|RENEW|REBIND|REBOOT)
	ip addr add "\$new_ip_address/$1" dev "\$interface" 2>/dev/null
	env | grep -E '^(reason|new_)' | sort >"$TMP/dhclient.env" ;;
RELEASE|EXPIRE|STOP)
	ip addr del "\$old_ip_address/$1" dev "\$interface" 2>/dev/null ;;
esac
exit 0
EOF
	cat >"$TMP/udhcpc.sh" <<EOF
#!/bin/sh
case "\$1" in
deconfig) ip addr flush dev "\$interface" ;;
bound|renew)
	ip addr flush dev "\$interface"
	ip addr add "\$ip/\$mask" dev "\$interface"
	env | grep -E '^(ip|router|dns|boot_file|hostname|mask|serverid|siaddr|lease)=' |
		sort >"$TMP/udhcpc.env" ;;
esac
exit 0
EOF
	chmod +x "$TMP/dhclient.sh" "$TMP/udhcpc.sh"
	printf 'timeout 15; retry 1;\nsend vendor-class-identifier "%s";\n' "$PXE_VC" \
		>"$TMP/dhclient.conf"
}
getv() { sed -n "s/^$2=//p" "$1" | tr -d "'"; }
