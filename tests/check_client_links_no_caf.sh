#!/bin/sh
# A program that only talks to Levee needs no actor system: the C++ client
# (include/levee/client.hpp, library levee_client) must neither include a CAF header, even
# through another header, nor link CAF. Checks the header's include tree and a program
# linked with levee_client alone (tests/client_library_test.cpp, examples/client_hello.cpp),
# each linked with --no-as-needed so that every library on its link line shows.
#
# usage: check_client_links_no_caf.sh <c++ compiler> <source dir> <build dir> <program>...
set -u
cxx=$1 src=$2 build=$3
shift 3
failed=0

# Every header client.hpp pulls in, as the compiler finds them.
deps=$("$cxx" -std=c++17 -I"$src" -I"$src/include" -I"$build" -M -x c++ \
  "$src/include/levee/client.hpp") || { echo "cannot preprocess include/levee/client.hpp"; exit 1; }
caf_headers=$(echo "$deps" | tr ' ' '\n' | grep '/caf/')
if [ -n "$caf_headers" ]; then
  echo "include/levee/client.hpp includes CAF headers; keep CAF out of the client's headers:"
  echo "$caf_headers" | head -5
  failed=1
fi

for program in "$@"; do
  if ! readelf -d "$program" > /dev/null; then
    echo "cannot read $program"; failed=1; continue
  fi
  # The shared libraries the program asks for at run time.
  caf_needed=$(readelf -d "$program" | grep NEEDED | grep -i 'libcaf')
  if [ -n "$caf_needed" ]; then
    echo "$program links CAF; levee_client must link only the wire codec (levee_wire):"
    echo "$caf_needed"
    failed=1
  fi

  # Code of CAF's compiled into the program (a static copy, or templates from its headers).
  caf_symbols=$(nm -C "$program" | grep -c ' caf::')
  if [ "$caf_symbols" -ne 0 ]; then
    echo "$program holds $caf_symbols symbols of CAF, e.g.:"
    nm -C "$program" | grep ' caf::' | head -3
    failed=1
  fi
done

[ $failed -eq 0 ] && echo "levee_client: no CAF header, library or symbol in $*"
exit $failed
