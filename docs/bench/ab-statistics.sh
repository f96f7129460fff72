#!/bin/bash
# What the statistics of the partitioned events table are worth to the
# built-in audiences on PostgreSQL. Every other table and every partition
# of events is analyzed, as autovacuum would have them; the partitioned
# table itself (which autovacuum never analyzes) alternates between no
# statistics and an ANALYZE, ROUNDS times.
# Usage: docs/bench/ab-statistics.sh KNIT_BINARY PG_URL [ROUNDS] > log
#   (from the repository root, as a superuser: it deletes rows of
#   pg_statistic), on a database seeded with knit bench seed.
set -u -o pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 KNIT_BINARY PG_URL [ROUNDS]" >&2
  exit 2
fi
bin=$1; db=$2; rounds=${3:-2}; cfg=$(dirname "$0")/everyone.yaml
sql() { psql "$db" -v ON_ERROR_STOP=1 -qAtc "$1"; }
stamp() { echo "== $1 $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"; }
audiences() { # label
  for a in cart_abandonment shoe_reorder; do
    stamp "$1 $a"
    echo "   knit bench audiences --db PG --config $cfg --audience $a --runs 3"
    timeout 900 $bin bench audiences --db "$db" --config "$cfg" --audience "$a" --runs 3 2>&1 |
      sed 's/^/   /'
  done
}

stamp "analyze every table but the partitioned events"
for t in $(sql "SELECT relname FROM pg_class WHERE relkind = 'r'
    AND relnamespace = current_schema()::regnamespace ORDER BY 1"); do
  sql "ANALYZE $t" || exit 1
done
for round in $(seq "$rounds"); do
  sql "DELETE FROM pg_statistic WHERE starelid = 'events'::regclass" || exit 1
  echo "   round $round: statistics rows of events: $(sql "SELECT COUNT(*) FROM pg_statistic
    WHERE starelid = 'events'::regclass")"
  audiences "round $round, events not analyzed:"
  sql "ANALYZE events" || exit 1
  echo "   round $round: statistics rows of events: $(sql "SELECT COUNT(*) FROM pg_statistic
    WHERE starelid = 'events'::regclass")"
  audiences "round $round, events analyzed:"
done
stamp done
