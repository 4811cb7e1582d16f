#!/bin/sh
# examples/client_hello against a real server: starts `levee node` (server role, any free
# port on 127.0.0.1), runs the example on the port it listens on, and checks what the
# example printed. Waits are bounded polls, never a fixed sleep standing in for an event.
#
# usage: check_client_example.sh <levee binary> <client_hello binary>
set -u
levee=$1 example=$2
dir=$(mktemp -d /tmp/levee-client-example-XXXXXX)
node_pid=
cleanup() {
  [ -n "$node_pid" ] && kill -9 "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
cat > "$dir/server.ini" <<INI
[node]
roles = server
[server]
listen = 127.0.0.1:0
[net]
node_id = example-server
INI
"$levee" node --config "$dir/server.ini" > "$dir/stdout" 2> "$dir/stderr" &
node_pid=$!

# The port, from the line that says the server listens (up to 15 s, looked at every 10 ms).
port=
tries=0
while [ -z "$port" ] && [ $tries -lt 1500 ]; do
  port=$(sed -n 's/.*server listening on .*:\([0-9][0-9]*\)$/\1/p' "$dir/stdout")
  [ -n "$port" ] && break
  kill -0 "$node_pid" 2>/dev/null || break
  tries=$((tries + 1))
  sleep 0.01
done
if [ -z "$port" ]; then
  echo "the server did not start; its stderr:"; cat "$dir/stderr"; exit 1
fi

out=$("$example" 127.0.0.1 "$port" 2>&1)
rc=$?
echo "$out"
[ $rc -eq 0 ] || { echo "client_hello exited with $rc"; exit 1; }
echo "$out" | grep -q "^server 'example-server': frames up to [0-9]* bytes" || exit 1
echo "$out" | grep -q "^satellites: 0$" || exit 1
echo "$out" | grep -q "^refused: not_found" || exit 1
