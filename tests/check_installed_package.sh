#!/bin/sh
# The C++ package as a user gets it (issue 18): installs this build into a fresh prefix,
# then, using nothing from the source tree (the examples and the guide are installed too):
#   - every public header (<levee/*.hpp>) compiles on its own, with only the prefix's
#     include directories (no path into the source or build tree);
#   - no installed CMake or pkg-config file names the source or build tree;
#   - examples/ configures as a project of its own with find_package(Levee CONFIG
#     REQUIRED), builds, and each example runs to completion with the output it promises
#     (client_hello against the installed `levee` binary);
#   - exposed_actor, custom_source and stream_sink run to completion, and the installed
#     `levee load` drives exposed_actor --serve;
#   - the client example also builds with pkg-config's levee-client flags alone, the
#     limited echo with levee's (levee.pc) and the custom source with levee-node's, and
#     they run.
#
# usage: check_installed_package.sh <build dir> <source dir> <C++ compiler>
set -u
build=$(cd "$1" && pwd) source=$(cd "$2" && pwd) cxx=$3
dir=$(mktemp -d /tmp/levee-package-XXXXXX)
trap 'rm -rf "$dir"' EXIT
prefix=$dir/prefix
fail() { echo "FAIL: $*"; exit 1; }

cmake --install "$build" --prefix "$prefix" > "$dir/install.log" 2>&1 ||
  { cat "$dir/install.log"; fail "cmake --install failed"; }

for h in "$prefix"/include/levee/*.hpp; do
  name=$(basename "$h")
  echo "#include <levee/$name>" | "$cxx" -std=c++17 -fsyntax-only -I"$prefix/include" \
    -I"$prefix/include/levee/internal" -x c++ - 2> "$dir/header.log" ||
    { cat "$dir/header.log"; fail "<levee/$name> does not compile on its own from the prefix"; }
done

if grep -rl -e "$source" -e "$build" "$prefix/lib/cmake" "$prefix/lib/pkgconfig" > "$dir/leaks" 2>/dev/null; then
  cat "$dir/leaks"; fail "installed package files name the source or build tree"
fi

launcher=
command -v ccache > /dev/null 2>&1 && launcher=-DCMAKE_CXX_COMPILER_LAUNCHER=ccache
examples=$prefix/share/doc/levee/examples
[ -f "$examples/CMakeLists.txt" ] || fail "the examples are not installed in share/doc/levee/examples"
[ -f "$prefix/share/doc/levee/EXTENDING.md" ] || fail "the extension guide is not installed"
cmake -S "$examples" -B "$dir/examples" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_CXX_COMPILER="$cxx" $launcher > "$dir/configure.log" 2>&1 ||
  { cat "$dir/configure.log"; fail "examples/ did not configure against the installed package"; }
cmake --build "$dir/examples" -- -j2 > "$dir/build.log" 2>&1 ||
  { cat "$dir/build.log"; fail "examples/ did not build against the installed package"; }

"$dir/examples/limited_echo" > "$dir/echo.out" 2> "$dir/echo.err" ||
  { cat "$dir/echo.out" "$dir/echo.err"; fail "limited_echo did not run to completion"; }
grep -q "rejected mailbox_full" "$dir/echo.out" ||
  { cat "$dir/echo.out"; fail "limited_echo did not report its refusals"; }

sh "$source/tests/check_client_example.sh" "$prefix/bin/levee" "$dir/examples/client_hello" ||
  fail "client_hello (built from the prefix) against the installed levee"

# The extension examples exit 0 only when what they print came back as promised.
for example in exposed_actor custom_source stream_sink; do
  "$dir/examples/$example" > "$dir/$example.out" 2>&1 ||
    { cat "$dir/$example.out"; fail "$example (built from the prefix) did not run as promised"; }
done
grep -q "hold 500 events from counters" "$dir/custom_source.out" ||
  { cat "$dir/custom_source.out"; fail "custom_source did not count its source's events"; }

# An exposed actor of one's own is a target for the installed `levee load`. Closed loop: an
# open-loop run is declared invalid (exit 3) when the tool falls behind its schedule, which
# a machine busy with the rest of the suite can make it do (a 99 ms stall under ctest -j4).
"$dir/examples/exposed_actor" --serve > "$dir/serve.out" 2>&1 &
serving=$!
port=
for _ in $(seq 1 100); do  # up to 10 s for the line that names the port
  port=$(sed -n "s/^serving 'upper' on 127.0.0.1:\([0-9]*\)$/\1/p" "$dir/serve.out")
  [ -n "$port" ] && break
  kill -0 "$serving" 2> /dev/null || break
  sleep 0.1
done
[ -n "$port" ] || { kill "$serving" 2> /dev/null; cat "$dir/serve.out"; fail "exposed_actor --serve did not say its port"; }
"$prefix/bin/levee" load --target actor upper --server "127.0.0.1:$port" --closed 2 --count 200 \
  --payload-bytes 16 --warmup 0 --json > "$dir/load.json" 2> "$dir/load.err"
load_rc=$?
kill "$serving"
wait "$serving"
[ "$load_rc" -eq 0 ] || { cat "$dir/load.json" "$dir/load.err"; fail "levee load against exposed_actor exited $load_rc"; }
grep -q '"accepted":[1-9]' "$dir/load.json" ||
  { cat "$dir/load.json"; fail "levee load got no answers from exposed_actor"; }

PKG_CONFIG_PATH=$prefix/lib/pkgconfig
export PKG_CONFIG_PATH
flags=$(pkg-config --cflags --libs levee-client) || fail "pkg-config does not know levee-client"
# shellcheck disable=SC2086
"$cxx" -o "$dir/client_hello_pc" "$examples/client_hello.cpp" $flags 2> "$dir/pc.log" ||
  { cat "$dir/pc.log"; fail "client_hello does not build with pkg-config's levee-client flags"; }
flags=$(pkg-config --cflags --libs levee) || fail "pkg-config does not know levee"
# shellcheck disable=SC2086
"$cxx" -o "$dir/limited_echo_pc" "$examples/limited_echo.cpp" $flags 2> "$dir/pc-levee.log" ||
  { cat "$dir/pc-levee.log"; fail "limited_echo does not build with pkg-config's levee flags"; }
"$dir/limited_echo_pc" > "$dir/echo-pc.out" 2>&1 ||
  { cat "$dir/echo-pc.out"; fail "limited_echo built with pkg-config's levee flags did not run to completion"; }
grep -q "rejected mailbox_full" "$dir/echo-pc.out" ||
  { cat "$dir/echo-pc.out"; fail "limited_echo built with pkg-config's levee flags did not report its refusals"; }
flags=$(pkg-config --cflags --libs levee-node) || fail "pkg-config does not know levee-node"
# shellcheck disable=SC2086
"$cxx" -o "$dir/custom_source_pc" "$examples/custom_source.cpp" $flags 2> "$dir/pc-node.log" ||
  { cat "$dir/pc-node.log"; fail "custom_source does not build with pkg-config's levee-node flags"; }
"$dir/custom_source_pc" > "$dir/custom-pc.out" 2>&1 ||
  { cat "$dir/custom-pc.out"; fail "custom_source built with pkg-config's levee-node flags did not run as promised"; }
echo "the installed package builds and runs the examples"
