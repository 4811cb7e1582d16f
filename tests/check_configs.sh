#!/bin/sh
# Validates every shipped config file with the command that uses it: node configs with
# `levee node --check`, local.ini with `levee local --check`, load-*.ini (scenarios) with
# `levee load --check`, demo.ini by the demo's own tests (and through load-inprocess.ini, whose check loads its limits). A new file that none of these covers fails here, so it cannot ship unchecked.
# usage: check_configs.sh LEVEE_BINARY CONFIGS_DIR
set -u
levee=$1
dir=$2
failed=0
for f in "$dir"/*.ini; do
  name=$(basename "$f")
  if grep -q '^\[node\]' "$f"; then
    "$levee" node --config "$f" --check || failed=1
  elif [ "${name#load-}" != "$name" ]; then
    "$levee" load --check "$f" || failed=1
  elif [ "$name" = local.ini ]; then
    "$levee" local --config "$f" --check || failed=1
  elif [ "$name" = demo.ini ]; then
    echo "$name: checked by the demo tests"
  else
    echo "check_configs: $name is used by no known command; add it here" >&2
    failed=1
  fi
done
exit $failed
