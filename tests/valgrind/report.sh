#!/bin/sh
# `make check-memory`'s verdict on the memcheck logs in directory $1: fails when no server ran
# under valgrind, or when any log holds an error. Leak records are not errors here: tests end
# most servers with SIGKILL, and threads still running at a clean exit own their memory.
dir="${1:?usage: report.sh DIR}"
set -- "$dir"/memcheck.*.xml
if [ ! -e "$1" ]; then
    echo "check-memory: no memcheck logs in $dir: no server ran under valgrind" >&2
    exit 1
fi
bad=0
for log in "$@"; do
    kinds=$(grep -h '<kind>' "$log" | grep -v '<kind>Leak_' | sed 's/.*<kind>\(.*\)<\/kind>.*/\1/' | sort | uniq -c | tr -s ' \n' ' ')
    if [ -n "$kinds" ]; then
        echo "check-memory: $log:$kinds" >&2
        bad=1
    fi
done
if [ "$bad" -ne 0 ]; then
    echo "check-memory: memcheck found errors (each <error> in the logs above has its stack)" >&2
    exit 1
fi
echo "check-memory: $# server processes ran under memcheck, no errors"
