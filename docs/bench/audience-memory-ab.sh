#!/bin/bash
# Peak memory and time of computing audiences, two knit binaries
# interleaved on one database, two rounds: `everyone` (a million members
# on the 1M/10M data set) and cart_abandonment, two runs each, so that the
# second run diffs against a stored result of the same size; after
# `knit bench seed` made DB (see docs/bench/scale.sh).
# Usage: docs/bench/audience-memory-ab.sh OLD_BINARY NEW_BINARY DB
# [AUDIENCE_FLAGS] > log (from the repository root; --analyze as
# AUDIENCE_FLAGS on PostgreSQL).
set -u
if [ $# -lt 3 ] || [ $# -gt 4 ]; then
  echo "usage: $0 OLD_BINARY NEW_BINARY DB [AUDIENCE_FLAGS] > log" >&2
  exit 2
fi
old=$1; new=$2; db=$3; flags=${4:-}; cfg=$(dirname "$0")/everyone.yaml
for round in 1 2; do
  for bin in $old $new; do
    for audience in everyone cart_abandonment; do
      echo "== round $round $(basename $bin) $audience $(date -u +%H:%M:%S)" \
        "load $(cut -d' ' -f1-3 /proc/loadavg)"
      $bin bench audiences --db "$db" --config $cfg --audience $audience --runs 2 \
        $flags 2>&1 | sed 's/^/   /'
    done
  done
done
