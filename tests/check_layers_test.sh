#!/bin/sh
# scripts/check-layers must fail on an include that runs against the table, name the file
# and line, pass a tree that follows it, and refuse to pass without a table.
set -u
script=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/limits" "$dir/server" "$dir/include/levee"
cat > "$dir/ARCHITECTURE.md" <<'DOC'
<!-- layers: begin -->
| folder | may include |
| --- | --- |
| `limits/` | — |
| `include/levee/` | limits |
| `server/` | limits, levee |
<!-- layers: end -->
DOC
printf '#include "limits/a.hpp"\n#include <vector>\n' > "$dir/server/ok.cpp"
printf '#include "levee/client.hpp"\n' > "$dir/server/public.cpp"
printf '#include "limits/a.hpp"\n' > "$dir/include/levee/client.hpp"
"$script" "$dir" || { echo "FAIL: a tree that follows the table was refused"; exit 1; }
printf '#include <string>\n  #include "server/b.hpp"\n' > "$dir/limits/up.hpp"
out=$("$script" "$dir" 2>&1); rc=$?
echo "$out"
[ $rc -eq 1 ] || { echo "FAIL: an upward include passed (rc $rc)"; exit 1; }
echo "$out" | grep -q 'limits/up.hpp:2: limits/ includes server/' \
  || { echo "FAIL: the upward include was not named with its file and line"; exit 1; }
rm "$dir/limits/up.hpp"
sed -i '/layers: begin/d' "$dir/ARCHITECTURE.md"
"$script" "$dir" >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || { echo "FAIL: a missing table was not an error (rc $rc)"; exit 1; }
echo "ok"
