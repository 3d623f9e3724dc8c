#!/usr/bin/env bash
# Builds memtier_benchmark from ../shared/memtier_benchmark and installs it as
# /usr/local/bin/memtier_benchmark, for `make bench`. Use this instead of the shared build.sh:
# with autoconf-archive 2022 or later, AX_CODE_COVERAGE no longer substitutes
# @CODE_COVERAGE_RULES@, so memtier's Makefile.am leaves that line literally in the Makefile
# and configure stops at "Something went wrong bootstrapping makefile fragments". The build
# copy drops the line (coverage rules are not needed to build the tool).
# Needs: apt-get install -y build-essential autoconf automake autoconf-archive libtool pkg-config libevent-dev libssl-dev zlib1g-dev
set -euo pipefail
src=$(cd "$(dirname "$0")/../../../shared/memtier_benchmark" && pwd)
work=${WORK:-/tmp/memtier-build2}
rm -rf "$work"; mkdir -p "$work"; cp -r "$src/." "$work/"; chmod -R u+w "$work"
cd "$work"
sed -i '/^@CODE_COVERAGE_RULES@$/d' Makefile.am
# Output goes to build.log; on failure its tail says why.
{ autoreconf -ivf && ./configure && make -j"$(nproc)"; } >build.log 2>&1 || { tail -20 build.log; exit 1; }
install -m 0755 memtier_benchmark /usr/local/bin/memtier_benchmark
echo /usr/local/bin/memtier_benchmark
