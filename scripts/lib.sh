# Shared by the benchmark and soak scripts: `source "$root/scripts/lib.sh"`.

# wait_ready URL SECONDS PID [LOG]: waits until core at URL answers /health/ready, polling every
# 0.1 s for at most SECONDS. Returns 0 once it answers; otherwise (the time is up, or process
# PID ended) prints why and the last lines of LOG to stderr and exits the script with 1.
wait_ready() {
  local url="$1" seconds="$2" pid="$3" log="${4:-}"
  local tries=$((seconds * 10))
  for _ in $(seq 1 "$tries"); do
    curl -fsS -o /dev/null "$url/health/ready" 2>/dev/null && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "the stack exited before it was ready" >&2
      [ -n "$log" ] && tail -20 "$log" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "the stack did not become ready within ${seconds} s" >&2
  [ -n "$log" ] && tail -20 "$log" >&2
  exit 1
}
