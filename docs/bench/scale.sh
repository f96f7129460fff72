#!/bin/bash
# Issue #7 computation targets on the 1M-profile / 10M-event data set.
# Usage: docs/bench/scale.sh KNIT_BINARY DB [AUDIENCE_FLAGS] > log, after
#   knit bench seed --db DB --profiles 1000000 --events 10000000 --seed 1
# DB is a SQLite file or a PostgreSQL URL; on PostgreSQL pass --analyze as
# AUDIENCE_FLAGS (autovacuum is off on this server: no statistics).
set -u
bin=$1; db=$2; flags=${3:-}; cfg=$(dirname "$0")/everyone.yaml
stamp() { echo "== $1 $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"; }
for a in cart_abandonment shoe_reorder; do
  stamp "audiences $a"
  echo "   knit bench audiences --db $db --config $cfg --audience $a --runs 3 $flags"
  $bin bench audiences --db "$db" --config $cfg --audience $a --runs 3 $flags 2>&1 |
    sed 's/^/   /'
done
stamp "audiences everyone"
$bin bench audiences --db "$db" --config $cfg --audience everyone --runs 1 $flags 2>&1 | sed 's/^/   /'
KNIT_API_TOKEN=tok KNIT_LOG_LEVEL=warn $bin serve --db "$db" --config $cfg --roles ingest,web \
  --addr 127.0.0.1:18400 >/tmp/knit-serve-scale.log 2>&1 &
pid=$!
for _ in $(seq 300); do curl -sf http://127.0.0.1:18400/readyz >/dev/null && break; sleep 0.2; done
for i in 1 2 3; do
  stamp "export everyone #$i"
  echo "   knit bench export --url http://127.0.0.1:18400 --api-token tok --audience everyone --server-pid PID"
  $bin bench export --url http://127.0.0.1:18400 --api-token tok --audience everyone --server-pid $pid 2>&1 | sed 's/^/   /'
done
for i in 1 2 3; do
  stamp "profile api #$i"
  echo "   knit bench profiles --url http://127.0.0.1:18400 --api-token tok --db $db --duration 30s --concurrency 4 --server-pid PID"
  $bin bench profiles --url http://127.0.0.1:18400 --api-token tok --db "$db" --duration 30s --concurrency 4 --server-pid $pid 2>&1 | sed 's/^/   /'
done
kill $pid; wait $pid 2>/dev/null
stamp done
