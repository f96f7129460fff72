#!/bin/bash
# Where a SQLite server's time and bytes go under the batch benchmark:
# one 60 s run of 100-message batches from 8 connections on a fresh file,
# with /metrics and /proc/PID/io read 40 s and 60 s into it (the last 20 s,
# when the indexes are largest). Prints, a shared transaction, its
# messages and the mean of each phase, and the bytes the server wrote an
# event. Usage: docs/bench/profile.sh KNIT_BINARY [SECONDS [MODE]] > log:
# SECONDS (60 by default) is the run's length, read at two thirds and at
# the end; MODE is batch (the default) or webhook (single messages from
# 32 connections, as the webhook target); the server listens on
# KNIT_BENCH_PORT (18450 by default). With PROFILE_POSTGRES=SCHEMA the
# server uses a fresh schema of that name on the local PostgreSQL instead
# (dropped at the end); the bytes written are then knit's alone, not the
# database server's. Also prints how many transactions took a read-ahead.
set -u -o pipefail
if [ $# -lt 1 ] || [ $# -gt 3 ]; then
  echo "usage: $0 KNIT_BINARY [SECONDS [batch|webhook]] > log" >&2
  exit 2
fi
bin=$1; seconds=${2:-60}; mode=${3:-batch}; port=${KNIT_BENCH_PORT:-18450}
case $mode in
  batch) load="--write-key wk --mode batch --batch 100 --concurrency 8" ;;
  webhook) load="--webhook-secret ws --mode webhook --concurrency 32" ;;
  *) echo "MODE is batch or webhook, not $mode" >&2; exit 2 ;;
esac
early=$((seconds * 2 / 3)); late=$((seconds - early))
dir=$(mktemp -d /tmp/knit-profile.XXXX)
. "$(dirname "$0")/common.sh"
db=$dir/knit.db
pgsql() { psql -h 127.0.0.1 -U postgres -d test -qc "SET client_min_messages = warning; $1"; }
if [ -n "${PROFILE_POSTGRES:-}" ]; then
  pgsql "DROP SCHEMA IF EXISTS $PROFILE_POSTGRES CASCADE; CREATE SCHEMA $PROFILE_POSTGRES;
    CHECKPOINT" || exit 1
  db="postgres://postgres@127.0.0.1:5432/test?sslmode=disable&search_path=$PROFILE_POSTGRES"
fi
KNIT_WRITE_KEYS=wk KNIT_WEBHOOK_SECRET=ws KNIT_API_TOKEN=tok KNIT_LOG_LEVEL=warn \
  $bin serve --db "$db" --addr 127.0.0.1:$port --roles ingest \
  >$dir/serve.log 2>&1 &
pid=$!
waitReady $port $pid $dir/serve.log
snapshot() { # name: the group-commit metrics and the bytes written so far
  curl -sf -H 'Authorization: Bearer tok' http://127.0.0.1:$port/metrics |
    grep -E '^knit_group_commit_((phase_seconds|messages)_(sum|count)|read_ahead_total)' \
    >$dir/$1.metrics
  awk '/^write_bytes/ {print $2}' /proc/$pid/io >$dir/$1.bytes
}
$bin bench --url http://127.0.0.1:$port $load --duration ${seconds}s --warmup 0s \
  --server-pid $pid | sed 's/^/   /' &
bench=$!
sleep $early; snapshot early
sleep $late; snapshot late
wait $bench
kill $pid; wait $pid 2>/dev/null
join <(sort $dir/early.metrics) <(sort $dir/late.metrics) | awk -v b0="$(cat $dir/early.bytes)" \
  -v b1="$(cat $dir/late.bytes)" -v span=$late '
  { d[$1] = $3 - $2 }
  END {
    groups = d["knit_group_commit_messages_count"]
    events = d["knit_group_commit_messages_sum"]
    printf "last %d s: %d shared transactions, %.0f messages each, %.0f events/s\n",
      span, groups, events / groups, events / span
    printf "  %d of them took a read-ahead\n", d["knit_group_commit_read_ahead_total"]
    split("wait read_ahead resolve write commit sync", phases, " ")
    for (i = 1; i <= 6; i++) {
      p = phases[i]
      s = d["knit_group_commit_phase_seconds_sum{phase=\"" p "\"}"]
      c = d["knit_group_commit_phase_seconds_count{phase=\"" p "\"}"]
      if (c == 0) continue # sync: not in servers before it was measured
      printf "  %-10s %6.1f ms a transaction%s\n", p, 1000 * s / c,
        p == "sync" ? " (callers waiting, beside the next group at work)" : ""
    }
    printf "written: %.1f KB an event (/proc/PID/io write_bytes)\n", (b1 - b0) / events / 1000
  }'
rm -rf $dir
[ -z "${PROFILE_POSTGRES:-}" ] || pgsql "DROP SCHEMA $PROFILE_POSTGRES CASCADE"
