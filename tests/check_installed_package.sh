#!/bin/sh
# The C++ package as a user gets it (issue 18): installs this build into a fresh prefix,
# then, using nothing from the source tree but examples/ itself:
#   - every public header (<levee/*.hpp>) compiles on its own, with only the prefix's
#     include directories (no path into the source or build tree);
#   - no installed CMake or pkg-config file names the source or build tree;
#   - examples/ configures as a project of its own with find_package(Levee CONFIG
#     REQUIRED), builds, and each example runs to completion with the output it promises
#     (client_hello against the installed `levee` binary);
#   - the client example also builds with pkg-config's levee-client flags alone, and the
#     limited echo with levee's (levee.pc), and runs.
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
cmake -S "$source/examples" -B "$dir/examples" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
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

PKG_CONFIG_PATH=$prefix/lib/pkgconfig
export PKG_CONFIG_PATH
flags=$(pkg-config --cflags --libs levee-client) || fail "pkg-config does not know levee-client"
# shellcheck disable=SC2086
"$cxx" -o "$dir/client_hello_pc" "$source/examples/client_hello.cpp" $flags 2> "$dir/pc.log" ||
  { cat "$dir/pc.log"; fail "client_hello does not build with pkg-config's levee-client flags"; }
flags=$(pkg-config --cflags --libs levee) || fail "pkg-config does not know levee"
# shellcheck disable=SC2086
"$cxx" -o "$dir/limited_echo_pc" "$source/examples/limited_echo.cpp" $flags 2> "$dir/pc-levee.log" ||
  { cat "$dir/pc-levee.log"; fail "limited_echo does not build with pkg-config's levee flags"; }
"$dir/limited_echo_pc" > "$dir/echo-pc.out" 2>&1 ||
  { cat "$dir/echo-pc.out"; fail "limited_echo built with pkg-config's levee flags did not run to completion"; }
grep -q "rejected mailbox_full" "$dir/echo-pc.out" ||
  { cat "$dir/echo-pc.out"; fail "limited_echo built with pkg-config's levee flags did not report its refusals"; }
echo "the installed package builds and runs the examples"
