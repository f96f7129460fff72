# Shell functions the benchmark scripts here share; sourced, not run.

# waitReady PORT PID LOG: wait up to 30 s for the server to answer /readyz;
# stop the script, with the end of the server's log, if it never does.
waitReady() {
  local _
  for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  echo "the server on port $1 never became ready; the end of its log:" >&2
  tail -n 20 "$3" >&2
  kill "$2" 2>/dev/null
  exit 1
}
