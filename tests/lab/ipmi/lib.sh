# ipmi_sim BMCs for lab tests.  Source it, then per BMC:
#   ipmi_bmc_start NETNS DIR ADDR NAME ADMIN_PASSWORD VIEWER_PASSWORD GUID
# which starts Debian's ipmi_sim in NETNS on ADDR:623 (background; its pid
# is in $!, the caller kills it) with users admin (admin) and viewer (user),
# and a chassis program that keeps power in DIR/power and the boot device
# in DIR/boot (see chassis.sh).
IPMI_CHASSIS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/chassis.sh

# ipmi_client_ns NS BRIDGE ADDR/PREFIX: the namespace the BMCs are reached
# from, with a bridge holding ADDR.
ipmi_client_ns() {
	ip netns add "$1"
	ip -n "$1" link set lo up
	ip -n "$1" link add "$2" type bridge
	ip -n "$1" addr add "$3" dev "$2"
	ip -n "$1" link set "$2" up
}

# ipmi_bmc_ns NS CLIENT_NS BRIDGE VETH ADDR/PREFIX: a BMC's namespace with
# one veth leg (VETH inside, VETH-p on the client's bridge) holding ADDR.
ipmi_bmc_ns() {
	ip netns add "$1"
	ip -n "$1" link set lo up
	ip link add "$4" netns "$1" type veth peer name "$4-p" netns "$2"
	ip -n "$1" addr add "$5" dev "$4"
	ip -n "$1" link set "$4" up
	ip -n "$2" link set "$4-p" master "$3" up
}

ipmi_bmc_start() {
	local ns=$1 d=$2 addr=$3 name=$4 pw=$5 vpw=$6 guid=$7
	mkdir -p "$d/sim"
	echo 0 >"$d/power"
	echo default >"$d/boot"
	: >"$d/log"
	cat >"$d/lan.conf" <<EOF
name "$name"
set_working_mc 0x20
  startlan 1
    addr $addr 623
    priv_limit admin
    allowed_auths_callback none md5 straight
    allowed_auths_user none md5 straight
    allowed_auths_operator none md5 straight
    allowed_auths_admin none md5 straight
    guid $guid
  endlan
  chassis_control "$IPMI_CHASSIS $d"
  user 2 true "admin"  "$pw" admin 10 none md5 straight
  user 3 true "viewer" "$vpw"   user  10 none md5 straight
EOF
	cat >"$d/bmc.emu" <<'EOF'
mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
mc_enable 0x20
EOF
	ip netns exec "$ns" ipmi_sim -n -c "$d/lan.conf" -f "$d/bmc.emu" -s "$d/sim" \
		</dev/null >"$d/sim.log" 2>&1 &
}
