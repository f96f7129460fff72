#!/bin/bash
# A/B of two knit servers under one load generator: serve a fresh SQLite
# file with SERVER_BINARY, drive it with BENCH_BINARY's `knit bench`, stop.
# Usage: docs/bench/ab.sh SERVER_BINARY BENCH_BINARY LABEL BENCH_ARGS...
# e.g.   docs/bench/ab.sh ./knit-old ./knit-new old --write-key wk --mode batch \
#          --batch 100 --concurrency 8 --duration 30s --warmup 5s
# With AB_POSTGRES=SCHEMA the server uses a fresh schema of that name on the
# local PostgreSQL (dropped, created and checkpointed first) instead.
set -u -o pipefail
. "$(dirname "$0")/common.sh"
if [ $# -lt 4 ]; then
  echo "usage: $0 SERVER_BINARY BENCH_BINARY LABEL BENCH_ARGS..." >&2
  exit 2
fi
server=$1; bench=$2; label=$3; shift 3
port=$((18900 + RANDOM % 90))
d=$(mktemp -d /tmp/knit-ab.XXXX)
db=$d/knit.db
if [ -n "${AB_POSTGRES:-}" ]; then
  psql -h 127.0.0.1 -U postgres -d test -qc "SET client_min_messages = warning;
    DROP SCHEMA IF EXISTS $AB_POSTGRES CASCADE; CREATE SCHEMA $AB_POSTGRES; CHECKPOINT" ||
    exit 1
  db="postgres://postgres@127.0.0.1:5432/test?sslmode=disable&search_path=$AB_POSTGRES"
fi
KNIT_WRITE_KEYS=wk KNIT_WEBHOOK_SECRET=ws KNIT_API_TOKEN=tok KNIT_LOG_LEVEL=warn \
  $server serve --db "$db" --addr 127.0.0.1:$port --roles ingest >$d/serve.log 2>&1 &
pid=$!
waitReady $port $pid $d/serve.log
echo "== $label $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
$bench bench --url http://127.0.0.1:$port --server-pid $pid "$@" 2>&1 | sed 's/^/   /'
status=$?
kill $pid 2>/dev/null; wait $pid 2>/dev/null
if [ $status -ne 0 ]; then
  echo "   the end of the server's log:"; tail -n 20 $d/serve.log | sed 's/^/   /'
fi
rm -rf $d
if [ -n "${AB_POSTGRES:-}" ]; then
  psql -h 127.0.0.1 -U postgres -d test -qc "SET client_min_messages = warning;
    DROP SCHEMA $AB_POSTGRES CASCADE"
fi
exit $status
