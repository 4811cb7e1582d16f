#!/bin/sh
# check_limit_keys.sh must refuse a `.limit("...")` that names no config key (also when the
# string is on the next line), name the file and the key, and pass real keys.
set -u
script=$1
levee=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/net"
cat > "$dir/net/ok.cpp" <<'SRC'
auto a = rejection::of(code::mailbox_full).limit("limits.service.mailbox_capacity");
auto b = rejection::of(code::rate_limited)
           .limit(
             "net.max_msgs_per_sec");
auto c = rejection::of(code::bad_request).detail("no limit refused");
SRC
out=$(sh "$script" "$levee" "$dir") || { echo "FAIL: real keys were refused"; exit 1; }
echo "$out" | grep -q '^check_limit_keys: 2 limit keys' \
  || { echo "FAIL: not both keys were found: $out"; exit 1; }
cat > "$dir/net/bad.cpp" <<'SRC'
auto d = rejection::of(code::bad_request)
           .limit(
             "net.no_such_key")
           .detail("x");
SRC
out=$(sh "$script" "$levee" "$dir" 2>&1); rc=$?
echo "$out"
[ $rc -eq 1 ] || { echo "FAIL: an unknown key passed (rc $rc)"; exit 1; }
echo "$out" | grep -q 'net/bad.cpp: .limit("net.no_such_key"): no such config key' \
  || { echo "FAIL: the unknown key was not named with its file"; exit 1; }
echo "$out" | grep -q 'ok.cpp' && { echo "FAIL: a real key was reported"; exit 1; }
echo "ok"
