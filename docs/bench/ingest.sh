#!/bin/bash
# Issue #7 ingestion targets, three runs each, a fresh database per run.
# Usage: docs/bench/ingest.sh KNIT_BINARY [ROWS] > log (from the repository
# root; scratch databases go to /tmp, PostgreSQL schemas knit_ing_N are made
# and dropped; servers listen from port KNIT_BENCH_PORT, 18300 by default,
# one port a run). ROWS, an extended regular expression, keeps the rows
# whose label it matches ("sqlite webhook c32 30s", "postgres batch100 c8
# 60s", "ceiling", ...); every row runs without it.
set -u -o pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 KNIT_BINARY [ROWS] > log" >&2
  exit 2
fi
bin=$1; rows=${2:-.}
wanted() { echo "$1" | grep -Eq -- "$rows"; }
port=${KNIT_BENCH_PORT:-18300}
. "$(dirname "$0")/common.sh"
serve() { # serve DB -> sets pid
  KNIT_WRITE_KEYS=wk KNIT_WEBHOOK_SECRET=ws KNIT_API_TOKEN=tok KNIT_LOG_LEVEL=warn \
    $bin serve --db "$1" --addr 127.0.0.1:$port --roles ingest >/tmp/knit-serve-$port.log 2>&1 &
  pid=$!
  waitReady $port $pid /tmp/knit-serve-$port.log
}
stop() { kill $pid; wait $pid 2>/dev/null; port=$((port+1)); }
run() { # label, bench args...
  local label=$1; shift
  echo "== $label $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "   knit bench --url http://127.0.0.1:$port $*"
  $bin bench --url http://127.0.0.1:$port --server-pid $pid "$@" 2>&1 | sed 's/^/   /'
}
sqlite_runs() { # label, bench args...: three runs, each on a fresh file
  local label=$1 i d; shift
  wanted "sqlite $label" || return 0
  for i in 1 2 3; do
    d=$(mktemp -d /tmp/knit-ingest.XXXX)
    serve $d/knit.db
    run "sqlite $label #$i" "$@"
    stop; rm -rf $d
  done
}
sqlite_runs "batch100 c8 60s" --write-key wk --mode batch --batch 100 --concurrency 8 --duration 60s --warmup 5s
sqlite_runs "batch100 c32 60s" --write-key wk --mode batch --batch 100 --concurrency 32 --duration 60s --warmup 5s
sqlite_runs "batch100 c8 60s live" --write-key wk --mode batch --batch 100 --concurrency 8 --duration 60s --warmup 5s --days 0
sqlite_runs "webhook c32 30s" --webhook-secret ws --mode webhook --concurrency 32 --duration 30s --warmup 3s
sqlite_runs "batch100 rate5000 30s" --write-key wk --mode batch --batch 100 --concurrency 16 --rate 5000 --duration 30s --warmup 3s
postgres_runs() { # label, bench args...: three runs, each on a fresh schema
  local label=$1 i schema; shift
  wanted "postgres $label" || return 0
  for i in 1 2 3; do
    schema=knit_ing_$i
    psql -h 127.0.0.1 -U postgres -d test -qc "SET client_min_messages = warning;
      DROP SCHEMA IF EXISTS $schema CASCADE; CREATE SCHEMA $schema; CHECKPOINT" || exit 1
    serve "postgres://postgres@127.0.0.1:5432/test?sslmode=disable&search_path=$schema"
    run "postgres $label #$i" "$@"
    stop
    psql -h 127.0.0.1 -U postgres -d test -qc "SET client_min_messages = warning;
      DROP SCHEMA $schema CASCADE"
  done
}
# autovacuum is off on this server and the test suites make and drop many
# schemas: clean the catalogs first, as autovacuum would.
if wanted postgres; then psql -h 127.0.0.1 -U postgres -d test -qc "VACUUM" || exit 1; fi
postgres_runs "batch100 c8 60s" --write-key wk --mode batch --batch 100 --concurrency 8 --duration 60s --warmup 5s
postgres_runs "batch100 c32 60s" --write-key wk --mode batch --batch 100 --concurrency 32 --duration 60s --warmup 5s
if wanted ceiling; then
  echo "== ceiling $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
  cd "$(dirname "$0")/../.." && PATH=$PATH:/usr/local/go/bin go test -run X \
    -bench 'SQLiteCeiling|IngestLikeCeiling' -benchtime 100000x -count 3 ./cmd/knit/ 2>&1 |
    grep Bench
fi
echo "== done $(date -u +%H:%M:%S)"
