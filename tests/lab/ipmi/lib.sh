# ipmi_sim BMCs for lab tests.  Source it, then per BMC:
#   ipmi_bmc_start NETNS DIR ADDR NAME ADMIN_PASSWORD VIEWER_PASSWORD GUID
# which starts Debian's ipmi_sim in NETNS on ADDR:623 (background; its pid
# is in $!, the caller kills it) with users admin (admin) and viewer (user),
# and a chassis program that keeps power in DIR/power and the boot device
# in DIR/boot (see chassis.sh).
IPMI_CHASSIS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/chassis.sh

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
