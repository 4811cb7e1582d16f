#!/bin/sh
# The exit-code table (apps/README.md "Exit codes", `levee --help`) as each client command
# applies it: 2 for a server that cannot be reached and for a bad argument (a stray
# positional named in the message), 0 for success against a real `levee node`; and
# LEVEE_SERVER as --server's default, the flag winning.
# usage: check_cli_exit_codes.sh LEVEE_BINARY CONFIGS_DIR
set -u
levee=$1
configs=$2
failed=0
# expect CODE "SUBSTRING" ARGS...: that exit code and stderr holding SUBSTRING.
expect() {
  want_rc=$1 want=$2
  shift 2
  err=$("$levee" "$@" 2>&1 >/dev/null)
  rc=$?
  if [ $rc -ne "$want_rc" ] || ! printf '%s' "$err" | grep -qF -- "$want"; then
    echo "FAIL: levee $* -> exit $rc: $err (expected exit $want_rc and: $want)" >&2
    failed=1
  else
    echo "ok: levee $* -> $rc"
  fi
}
# A port nothing listens on: bind one, note it, let it go.
down=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
for sub in stats satellites; do
  expect 2 "cannot reach the server at 127.0.0.1:$down" $sub --server 127.0.0.1:$down
done
expect 2 "cannot reach the server at 127.0.0.1:$down" query --server 127.0.0.1:$down count
expect 2 "cannot reach the broker" stream list --broker 127.0.0.1:$down
expect 2 "unexpected argument 'watch'" satellites watch
expect 2 "unexpected argument 'extra'" stats extra
expect 2 "unexpected argument 'extra'" query count extra
expect 2 "unexpected argument 'extra'" node --config "$configs/server.ini" --check extra
expect 2 "unexpected argument 'x'" demo x
expect 2 "is no cluster action" cluster x
# LEVEE_SERVER is the default; the flag wins over it.
err=$(LEVEE_SERVER=127.0.0.1:$down "$levee" stats 2>&1 >/dev/null); rc=$?
printf '%s' "$err" | grep -qF "127.0.0.1:$down" && [ $rc -eq 2 ] || { echo "FAIL: LEVEE_SERVER not used: $rc $err" >&2; failed=1; }
err=$(LEVEE_SERVER=nonsense "$levee" stats 2>&1 >/dev/null); rc=$?
printf '%s' "$err" | grep -qF "LEVEE_SERVER = nonsense" && [ $rc -eq 2 ] || { echo "FAIL: bad LEVEE_SERVER not named: $rc $err" >&2; failed=1; }

# Success against a real server.
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$levee" node --config "$configs/server.ini" --set server.listen=127.0.0.1:$port --set http.listen=none \
  >"$dir/out" 2>"$dir/err" &
pid=$!
ok=0
i=0
while [ $i -lt 300 ]; do  # up to 30 s for the server to listen
  if "$levee" stats --server 127.0.0.1:$port >/dev/null 2>&1; then ok=1; break; fi
  kill -0 $pid 2>/dev/null || break
  i=$((i + 1))
  sleep 0.1
done
if [ $ok -eq 1 ]; then
  for args in "stats" "satellites" "stats --json"; do
    LEVEE_SERVER=127.0.0.1:$port "$levee" $args >/dev/null 2>&1 || { echo "FAIL: levee $args via LEVEE_SERVER -> $?" >&2; failed=1; }
  done
  LEVEE_SERVER=127.0.0.1:$down "$levee" stats --server 127.0.0.1:$port >/dev/null 2>&1 \
    || { echo "FAIL: --server did not win over LEVEE_SERVER" >&2; failed=1; }
else
  echo "FAIL: the server did not start: $(cat "$dir/err")" >&2
  failed=1
fi
kill $pid 2>/dev/null
wait $pid 2>/dev/null
rm -rf "$dir"
exit $failed
