#!/bin/bash
# The CSV export's json and columns layouts of the `everyone` audience, two
# knit servers interleaved on one database, two rounds; after
# docs/bench/scale.sh computed `everyone` on DB.
# Usage: docs/bench/export-layouts-ab.sh OLD_BINARY NEW_BINARY DB > log
# (from the repository root; the servers listen on KNIT_BENCH_PORT, 18450
# by default, one at a time).
set -u
if [ $# -ne 3 ]; then
  echo "usage: $0 OLD_BINARY NEW_BINARY DB > log" >&2
  exit 2
fi
old=$1; new=$2; db=$3; cfg=$(dirname "$0")/everyone.yaml
port=${KNIT_BENCH_PORT:-18450}
. "$(dirname "$0")/common.sh"
for round in 1 2; do
  for bin in $old $new; do
    KNIT_API_TOKEN=tok KNIT_LOG_LEVEL=warn $bin serve --db "$db" --config $cfg \
      --roles ingest,web --addr 127.0.0.1:$port >/tmp/knit-serve-layouts.log 2>&1 &
    pid=$!
    waitReady $port $pid /tmp/knit-serve-layouts.log
    for layout in json columns; do
      echo "== round $round $(basename $bin) layout=$layout $(date -u +%H:%M:%S)" \
        "load $(cut -d' ' -f1-3 /proc/loadavg)"
      $bin bench export --url http://127.0.0.1:$port --api-token tok --audience everyone \
        --layout $layout --server-pid $pid 2>&1 | sed 's/^/   /'
    done
    kill $pid; wait $pid 2>/dev/null
  done
done
echo "== done $(date -u +%H:%M:%S)"
