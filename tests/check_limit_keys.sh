#!/bin/sh
# A rejection's `limit` is a config key an operator can change, or left out when no limit
# refused. Every string literal given to `.limit("...")` in the sources must be a key that
# `levee config-keys` lists (taken from the parsers' own tables); `<kind>` and `<name>` in
# a listed key stand for any name.
# usage: check_limit_keys.sh LEVEE_BINARY SOURCE_ROOT
set -u
levee=$1
root=$2
keys=$("$levee" config-keys) || { echo "check_limit_keys: '$levee config-keys' failed" >&2; exit 2; }
patterns=$(mktemp)
trap 'rm -f "$patterns"' EXIT
echo "$keys" | sed 's/\./\\./g; s/<[a-z]*>/[a-z0-9_-]+/g; s/^/^/; s/$/$/' > "$patterns"
failed=0
found=0
dirs=""
for d in base limits actors net satellite server broker query events persistence streams metadata http apps include; do
  [ -d "$root/$d" ] && dirs="$dirs $root/$d"
done
# -z reads each file whole, so a `.limit(` whose string starts on the next line is seen.
hits=$(grep -rzoP --include='*.cpp' --include='*.hpp' '\.limit\(\s*"[^"]*"' $dirs \
       | tr '\n\0' ' \n' | sed -n 's/^\([^:]*\):.*"\([^"]*\)"$/\1 \2/p')
while read -r file key; do
  [ -n "$file" ] || continue
  found=$((found + 1))
  if [ -z "$key" ]; then
    echo "$file: .limit(\"\"): leave .limit() out when no limit refused" >&2
    failed=1
  elif ! echo "$key" | grep -Eq -f "$patterns"; then
    echo "$file: .limit(\"$key\"): no such config key; name the key an operator would" \
         "change (levee config-keys lists them), or leave .limit() out" >&2
    failed=1
  fi
done <<HITS
$hits
HITS
[ $failed -eq 0 ] && echo "check_limit_keys: $found limit keys, all real config keys"
exit $failed
