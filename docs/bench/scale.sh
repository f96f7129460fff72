#!/bin/bash
# Issue #7 computation targets on the 1M-profile / 10M-event data set.
# Usage: docs/bench/scale.sh KNIT_BINARY DB [AUDIENCE_FLAGS] > log, after
#   knit bench seed --db DB --profiles 1000000 --events 10000000 --seed 1
# DB is a SQLite file or a PostgreSQL URL; on PostgreSQL pass --analyze as
# AUDIENCE_FLAGS (autovacuum is off on this server: no statistics). The
# server for the export and the Profile API listens on KNIT_BENCH_PORT
# (18400 by default).
set -u
if [ $# -lt 2 ]; then
  echo "usage: $0 KNIT_BINARY DB [AUDIENCE_FLAGS] > log" >&2
  exit 2
fi
bin=$1; db=$2; flags=${3:-}; cfg=$(dirname "$0")/everyone.yaml
port=${KNIT_BENCH_PORT:-18400}
. "$(dirname "$0")/common.sh"
stamp() { echo "== $1 $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"; }
for a in cart_abandonment shoe_reorder; do
  stamp "audiences $a"
  echo "   knit bench audiences --db $db --config $cfg --audience $a --runs 3 $flags"
  $bin bench audiences --db "$db" --config $cfg --audience $a --runs 3 $flags 2>&1 |
    sed 's/^/   /'
done
stamp "audiences everyone"
echo "   knit bench audiences --db $db --config $cfg --audience everyone --runs 1 $flags"
$bin bench audiences --db "$db" --config $cfg --audience everyone --runs 1 $flags 2>&1 | sed 's/^/   /'
KNIT_API_TOKEN=tok KNIT_LOG_LEVEL=warn $bin serve --db "$db" --config $cfg --roles ingest,web \
  --addr 127.0.0.1:$port >/tmp/knit-serve-scale.log 2>&1 &
pid=$!
waitReady $port $pid /tmp/knit-serve-scale.log
for i in 1 2 3; do
  stamp "export everyone #$i"
  echo "   knit bench export --url http://127.0.0.1:$port --api-token tok --audience everyone --server-pid PID"
  $bin bench export --url http://127.0.0.1:$port --api-token tok --audience everyone --server-pid $pid 2>&1 | sed 's/^/   /'
done
for i in 1 2 3; do
  stamp "profile api #$i"
  echo "   knit bench profiles --url http://127.0.0.1:$port --api-token tok --db $db --duration 30s --concurrency 4 --server-pid PID"
  $bin bench profiles --url http://127.0.0.1:$port --api-token tok --db "$db" --duration 30s --concurrency 4 --server-pid $pid 2>&1 | sed 's/^/   /'
done
kill $pid; wait $pid 2>/dev/null
stamp done
