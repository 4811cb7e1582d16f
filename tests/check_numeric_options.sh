#!/bin/sh
# Every numeric option of every subcommand, and numeric --set overrides: a negative, an
# overflowing or a malformed number is refused before anything runs (exit 2) with one line
# naming the option, the value and the allowed range -- never wrapped around (Boost reads
# "-5" into an unsigned option as 4294967291) or cut short ("7400x" as 7400).
# usage: check_numeric_options.sh LEVEE_BINARY CONFIGS_DIR
set -u
levee=$1
configs=$2
failed=0
# expect "SUBSTRING" ARGS...: exit 2 and stderr holding SUBSTRING.
expect() {
  want=$1
  shift
  err=$("$levee" "$@" 2>&1 >/dev/null)
  rc=$?
  if [ $rc -ne 2 ] || ! printf '%s' "$err" | grep -qF -- "$want"; then
    echo "FAIL: levee $* -> exit $rc: $err" >&2
    echo "      expected exit 2 and: $want" >&2
    failed=1
  else
    echo "ok: levee $* -> $err"
  fi
}
u32='must be a whole number from 0 to 4294967295'
expect "--deadline-ms -5: $u32 ms" query --deadline-ms -5 'count'
expect "--deadline-ms 4294967296: $u32 ms" query --deadline-ms 4294967296 'count'
expect "--deadline-ms 1e3: $u32 ms" query --deadline-ms 1e3 'count'
expect "--deadline-ms 10x: $u32 ms" query --deadline-ms=10x 'count'
expect "--server 127.0.0.1:-1: the port must be a whole number from 1 to 65535" query --server 127.0.0.1:-1 'count'
expect "--server 127.0.0.1:7400x: the port must be a whole number from 1 to 65535" query --server 127.0.0.1:7400x 'count'
expect "--server 127.0.0.1:70000: the port must be a whole number from 1 to 65535" satellites --server 127.0.0.1:70000
expect "--server localhost:0: the port must be a whole number from 1 to 65535" stats --server localhost:0
expect "--server localhost:99999: the port must be a whole number from 1 to 65535, e.g. 127.0.0.1:7400" query --server localhost:99999 'count'
expect "--server localhost: must be host:port, e.g. 127.0.0.1:7400" query --server localhost 'count'
expect "--changes -1: must be a whole number from 0 to 18446744073709551615 changes" satellites --watch --changes -1
expect "--changes 18446744073709551616: must be a whole number from 0 to 18446744073709551615 changes" satellites --watch --changes 18446744073709551616
expect "--rate -5: must be a whole number from 1 to 1000000 events/s" local --check --rate -5
expect "--rate 18446744073709551617: must be a whole number from 1 to 1000000 events/s" local --check --rate 18446744073709551617
expect "--seconds -5: must be a number above 0 and at most 3600 s" demo --seconds -5
expect "--rate -5: must be a number above 0 and at most 100000 per second" load --target actor stats --rate -5
expect "--rate 0: must be a number above 0 and at most 100000 per second" load --target actor stats --rate 0
expect "--closed -1: must be a whole number from 0 to 1000000 requests" load --target actor stats --closed -1
expect "--connections 0: must be a whole number from 1 to 1024 connections" load --target actor stats --connections 0
expect "--duration 1e3: must be a number above 0 and at most 86400 s" load --target actor stats --duration 1e3
expect "--seconds nan: must be a number above 0 and at most 3600 s" demo --seconds nan
expect "--flooders -1: must be a whole number from 0 to 1000 actors" demo --flooders -1
expect "--requesters 4294967297: must be a whole number from 0 to 1000 actors" demo --requesters 4294967297
expect "--window -1: must be a whole number from 1 to 1000000 requests" demo --window -1
expect "--service-us -1: must be a whole number from 1 to 1000000 us" demo --service-us -1
expect "--overload -1: must be a whole number from 1 to 1000 times" demo --overload -1
expect "--payload-bytes -5: must be a whole number from 0 to 1073741824 bytes" demo --payload-bytes -5
# Overrides go through the config's own reading: the key, the value and the range.
expect "server.max_queries = '-5': not a whole number (write e.g. 1024 or 16MiB); must be between 1 and" \
  node --check --config "$configs/server.ini" --set server.max_queries=-5
expect "server.max_queries = '99999999999999999999999': number too large; must be between 1 and" \
  node --check --config "$configs/server.ini" --set server.max_queries=99999999999999999999999
expect "limits.default.mailbox_capacity = '-1': not a whole number (write e.g. 1024 or 16MiB); must be between 1 and 16777216 messages" \
  demo --set limits.default.mailbox_capacity=-1
expect "net.max_frame_bytes = '-1': not a whole number (write e.g. 1024 or 16MiB); must be between 64 and 1073741824 bytes" \
  local --check --set net.max_frame_bytes=-1
expect "satellite.batch_max_rows = '-1': not a whole number (write e.g. 1024 or 16MiB); must be between 1 and 1000000 rows" \
  node --check --config "$configs/satellite-a.ini" --set satellite.batch_max_rows=-1
expect "node.busy_poll_us = -1: must be a whole number of microseconds from 0" \
  node --check --config "$configs/server.ini" --set node.busy_poll_us=-1
expect "source.app.poll_interval_ms = '-1': not a whole number" \
  node --check --config "$configs/satellite-a.ini" --set source.app.poll_interval_ms=-1
expect "source.gen.levels = INFO:4294967296: a weight must be a whole number from 0 to 4294967295" \
  node --check --config "$configs/satellite-a.ini" --set source.gen.type=synthetic --set source.gen.levels=INFO:4294967296
exit $failed
