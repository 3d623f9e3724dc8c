#!/bin/sh
# Starts memcachedrep (this script's arguments) under valgrind memcheck, for `make check-memory`
# (the test harness runs it when MEMCACHEDREP_TEST_WRAPPER names it). Each process writes a
# text log and an XML log, where every error is an <error> element written when it happens:
# the tests end servers with SIGKILL, so valgrind's own summary at exit is often never
# written. No leak check, for the same reason.
dir="${MEMCHECK_DIR:-target/memcheck}"
mkdir -p "$dir"
exec valgrind --tool=memcheck --leak-check=no --error-limit=no \
    --log-file="$dir/memcheck.%p.log" --xml=yes --xml-file="$dir/memcheck.%p.xml" "$@"
