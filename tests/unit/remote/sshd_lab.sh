#!/bin/bash
# Real sshd on loopback for tests/unit/remote (no namespaces: loopback only).
#
#   sshd_lab.sh start DIR BASEPORT NNODES
#       bastion  127.0.0.1:BASEPORT        (AllowTcpForwarding yes, MaxSessions 1:
#                direct-tcpip channels must not count against it)
#       node i   127.0.0.(2+i):BASEPORT+1+i, i = 0..NNODES-1
#       corrupt  127.0.0.10:BASEPORT+20     (PATH has a `cat` that corrupts uploads)
#       node 7's PATH has a `sync` that logs its arguments to DIR/sync.log
#     plus DIR/id_ed25519 (authorized), DIR/wrong_ed25519 (not authorized),
#     DIR/other_host.pub (a host key no server uses), DIR/fake-agent,
#     DIR/agent.sock (an ssh-agent holding id_ed25519).
#   sshd_lab.sh stop DIR
# With SSHD_LAB_OWNER=PID, a watcher stops them when PID exits.
#
# Every sshd runs in the foreground (-D) as the calling user, with its own
# config, host key and AuthorizedKeysFile in DIR; PIDs go to DIR/pids.
set -euo pipefail

cmd=${1:?usage: sshd_lab.sh start|stop DIR ...}
dir=${2:?DIR}

stop() {
	[ -f "$dir/pids" ] || return 0
	while read -r pid; do
		kill "$pid" 2>/dev/null || true
	done <"$dir/pids"
	while read -r pid; do
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	done <"$dir/pids"
	rm -f "$dir/pids"
}

# start_sshd NAME ADDR PORT EXTRA-CONFIG [ENV...]
# SHLVL=1 keeps bash from sourcing ~/.bashrc for ssh commands (slow, noisy).
start_sshd() {
	local name=$1 addr=$2 port=$3 extra=$4
	ssh-keygen -q -t ed25519 -N '' -C "$name" -f "$dir/host_$name" </dev/null
	cat >"$dir/sshd_$name.conf" <<EOF
Port $port
ListenAddress $addr
HostKey $dir/host_$name
PidFile $dir/sshd_$name.pid
AuthorizedKeysFile $dir/authorized_keys
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
MaxStartups 200:30:400
LogLevel ERROR
SetEnv SHLVL=1 ${5:-}
$extra
EOF
	/usr/sbin/sshd -D -f "$dir/sshd_$name.conf" -E "$dir/sshd_$name.log" \
		</dev/null >/dev/null 2>&1 &
	echo $! >>"$dir/pids"
}

wait_listen() {
	local addr=$1 port=$2
	for _ in $(seq 100); do
		if ss -Hltn "src $addr:$port" | grep -q .; then
			return 0
		fi
		sleep 0.05
	done
	echo "sshd_lab: nothing listens on $addr:$port" >&2
	return 1
}

case $cmd in
start)
	base=${3:?BASEPORT}
	n=${4:?NNODES}
	mkdir -p "$dir" "$dir/fakebin"
	# sshd refuses to start as root without its privilege separation directory.
	if [ "$(id -u)" = 0 ]; then mkdir -p /run/sshd; fi
	trap 'stop' ERR
	ssh-keygen -q -t ed25519 -N '' -C kiln-test -f "$dir/id_ed25519" </dev/null
	ssh-keygen -q -t ed25519 -N '' -C kiln-wrong -f "$dir/wrong_ed25519" </dev/null
	ssh-keygen -q -t ed25519 -N '' -C other -f "$dir/other_host" </dev/null
	cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
	# A `cat` that appends a byte: simulates an upload corrupted in transit.
	printf '#!/bin/sh\n/bin/cat "$@"\nprintf X\n' >"$dir/fakebin/cat"
	chmod 755 "$dir/fakebin/cat"
	# A `sync` that records what it was asked to flush (node 7 only).
	mkdir -p "$dir/syncbin"
	printf '#!/bin/sh\nprintf "%%s\\n" "$*" >>"%s/sync.log"\nexec /bin/sync "$@"\n' \
		"$dir" >"$dir/syncbin/sync"
	chmod 755 "$dir/syncbin/sync"
	# A fake kiln-agent speaking protocol 1 (it records each run in ./ran).
	cat >"$dir/fake-agent" <<'EOF'
#!/bin/sh
[ "$1" = serve ] || exit 2
echo "$$" >>"$(dirname "$0")/ran"
printf '{"op":"hello","version":"0.1.0-fake","protocol":1}\n'
while IFS= read -r line; do
	case "$line" in
	*'"op":"facts"'*) printf '{"op":"facts","facts":{"pid":%d}}\n' "$$" ;;
	*'"op":"check"'* | *'"op":"apply"'*)
		printf '{"op":"result","index":0,"id":"file:/x","status":"ok"}\n'
		printf '{"op":"result","index":1,"id":"file:/y","status":"changed"}\n'
		printf '{"op":"done","ok":1,"changed":1,"failed":0}\n' ;;
	*'"op":"echo"'*) printf '{"op":"done","len":%d}\n' "${#line}" ;;
	*'"op":"big"'*)
		printf '{"op":"done","pad":"'
		head -c 15000000 /dev/zero | tr '\0' a
		printf '"}\n' ;;
	*'"op":"toolong"'*)
		printf '{"op":"done","pad":"'
		head -c 17000000 /dev/zero | tr '\0' a
		printf '"}\n' ;;
	*'"op":"overflow"'*)
		for i in $(seq 70); do
			printf '{"op":"log","pad":"'
			head -c 1000000 /dev/zero | tr '\0' a
			printf '"}\n'
		done
		printf '{"op":"done"}\n' ;;
	*'"op":"bigsplit"'*)
		for i in $(seq 15); do
			printf '{"op":"result","pad":"'
			head -c 1000000 /dev/zero | tr '\0' a
			printf '"}\n'
		done
		printf '{"op":"done"}\n' ;;
	*'"op":"slow"'*)
		for i in 0 1 2 3; do
			sleep 0.8
			printf '{"op":"result","index":%d,"id":"file:/s","status":"ok"}\n' "$i"
		done
		printf '{"op":"done","ok":4,"changed":0,"failed":0}\n' ;;
	*'"op":"chatter"'*) exec yes '{"op":"log","message":"still here"}' ;;
	*'"op":"flood"'*) exec yes '{"op":"result","index":0,"id":"file:/x","status":"ok"}' ;;
	*'"op":"exit"'*) exit 0 ;;
	*) printf '{"op":"error","message":"unknown request"}\n' ;;
	esac
done
EOF
	chmod 755 "$dir/fake-agent"
	start_sshd bastion 127.0.0.1 "$base" "AllowTcpForwarding yes
MaxSessions ${SSHD_LAB_BASTION_MAXSESSIONS:-1}"
	for i in $(seq 0 $((n - 1))); do
		env=
		if [ "$i" = 7 ]; then env="PATH=$dir/syncbin:/usr/local/bin:/usr/bin:/bin"; fi
		start_sshd "node$i" "127.0.0.$((2 + i))" $((base + 1 + i)) "AllowTcpForwarding no" \
			"$env"
	done
	start_sshd corrupt 127.0.0.10 $((base + 20)) "AllowTcpForwarding no" \
		"PATH=$dir/fakebin:/usr/local/bin:/usr/bin:/bin"
	wait_listen 127.0.0.1 "$base"
	for i in $(seq 0 $((n - 1))); do
		wait_listen "127.0.0.$((2 + i))" $((base + 1 + i))
	done
	wait_listen 127.0.0.10 $((base + 20))
	# An ssh-agent holding the test key, for the ssh-agent auth path.
	ssh-agent -D -a "$dir/agent.sock" </dev/null >/dev/null 2>&1 &
	echo $! >>"$dir/pids"
	for _ in $(seq 100); do [ -S "$dir/agent.sock" ] && break; sleep 0.05; done
	SSH_AUTH_SOCK="$dir/agent.sock" ssh-add -q "$dir/id_ed25519" </dev/null
	# If the test process dies without calling stop, kill the sshds anyway.
	if [ -n "${SSHD_LAB_OWNER:-}" ]; then
		(
			trap - ERR
			while kill -0 "$SSHD_LAB_OWNER" 2>/dev/null && [ -f "$dir/pids" ]; do
				sleep 1
			done
			if [ -f "$dir/pids" ]; then
				stop
				rm -rf "$dir"
			fi
		) </dev/null >/dev/null 2>&1 &
	fi
	;;
stop)
	stop
	;;
*)
	echo "usage: sshd_lab.sh start DIR BASEPORT NNODES | stop DIR" >&2
	exit 2
	;;
esac
