#!/bin/sh
# A misbehaving kiln-agent for tests: says hello and sends facts like the
# real one, then answers check/apply according to MODE (tests rewrite this
# line, which also gives each mode its own checksum and cache path):
#   error  an "error" reply        short  "done" with no results
#   many   more results than resources were sent
MODE=error
[ "$1" = serve ] || exit 2
echo '{"op":"hello","version":"0.0.0-fake","protocol":1}'
while IFS= read -r line; do
	case "$line" in
	*'"op":"facts"'*) echo '{"op":"facts","facts":{"os":{"family":"debian"}}}' ;;
	*'"op":"check"'* | *'"op":"apply"'*)
		case $MODE in
		error) echo '{"op":"error","message":"request line too long"}' ;;
		short) echo '{"op":"done","ok":0,"changed":0,"failed":0}' ;;
		many)
			for _ in 1 2 3 4 5 6 7 8 9 10 11 12; do
				echo '{"op":"result","index":0,"id":"file:/x","status":"ok"}'
			done
			echo '{"op":"done"}' ;;
		esac ;;
	*'"op":"exit"'*) exit 0 ;;
	esac
done
