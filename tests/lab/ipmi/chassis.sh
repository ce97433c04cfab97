#!/bin/sh
# The chassis control program ipmi_sim runs for the lab BMCs: power and boot
# device kept in files under DIR, so tests read the BMC side's state.
# ipmi_sim calls: PROG DIR get power|boot ...  /  PROG DIR set PARM VAL ...
d=$1; op=$2; shift 2
echo "$op $*" >>"$d/log"
case $op in
get)
	for p in "$@"; do
		case $p in
		power) echo "power:$(cat "$d/power")" ;;
		boot) echo "boot:$(cat "$d/boot")" ;;
		*) echo "unknown parameter $p"; exit 1 ;;
		esac
	done ;;
set)
	# A BMC whose reply is lost: with DIR/drop holding the client's
	# address, the first "set" blackholes the route back to it before
	# acting (ipmi_sim runs this program before it replies, inside the
	# BMC's namespace), so the reply never leaves while later requests
	# still arrive and run -- a retransmission would show in the log.
	if [ -s "$d/drop" ]; then
		ip route add blackhole "$(cat "$d/drop")/32" || exit 1
		: >"$d/drop"
	fi
	while [ $# -ge 2 ]; do
		case $1 in
		power) echo "$2" >"$d/power.tmp" && mv "$d/power.tmp" "$d/power" ;;
		boot) echo "$2" >"$d/boot.tmp" && mv "$d/boot.tmp" "$d/boot" ;;
		reset) echo "$2" >>"$d/resets" ;;
		shutdown) echo 0 >"$d/power.tmp" && mv "$d/power.tmp" "$d/power"
			  echo "$2" >>"$d/shutdowns" ;;
		*) echo "unknown parameter $1"; exit 1 ;;
		esac
		shift 2
	done ;;
*) echo "unknown op $op"; exit 1 ;;
esac
