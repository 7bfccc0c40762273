#!/usr/bin/env bash
# maple-proxy and nginx (Debian package, proxy_cache + lock + use_stale + background update)
# side by side in one run, both in front of one simulator, on this machine:
#   1. cache-hit throughput and latency for a ~350 KB equipment body (wrk), identity and with
#      `Accept-Encoding: gzip`: maple-proxy sends the gzip form it keeps with the body (the
#      simulator's own gzip, level 6, as it came; with SIM_GZIP=false the simulator sends
#      identity and maple-proxy's form is its own level 1); nginx, `gzip on` at level 1 for
#      JSON, compresses each answer from an identity upstream, and with an upstream that
#      offers gzip caches the gzip variant it was sent (the simulator sends `Vary`),
#   2. a 500-way stampede on one cold key (upstream calls, by the simulator's counter),
#   3. an upstream outage (503s, then hangs) while clients read expired cached keys.
# Usage: scripts/bench-proxy.sh            (OUTAGE_S=60 WRK_S=20 WRK_C=64 to change; SIM_GZIP=false,
#        or true, the default, for the simulator's gzip)
# Needs nginx-light and wrk (installed here when missing) and release binaries (built here).
set -euo pipefail
cd "$(dirname "$0")/.."

OUTAGE_S=${OUTAGE_S:-60}
WRK_S=${WRK_S:-20}
WRK_C=${WRK_C:-64}
SIM_GZIP=${SIM_GZIP:-true}
TTL_S=10
SIM=127.0.0.1:18090
MAPLE=127.0.0.1:18081
MAPLE_ADMIN=127.0.0.1:19081
NGINX=127.0.0.1:18082

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
cargo build --release --workspace --bins -q

work=$(mktemp -d /tmp/maple-bench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

RUST_LOG=warn MAPLE_SIM_LISTEN=$SIM MAPLE_SIM_GZIP=$SIM_GZIP target/release/nexon-sim >"$work/sim.log" 2>&1 &
pids+=($!)

cat >"$work/proxy.yaml" <<EOF
listen: $MAPLE
admin_listen: $MAPLE_ADMIN
upstream: http://$SIM
threads: 2
grace_period_s: 0
ratelimit:
  rps: 100000
routes:
  item_equipment:
    ttl_s: $TTL_S
EOF
RUST_LOG=warn MAPLE_PROXY_CONFIG="$work/proxy.yaml" target/release/maple-proxy >"$work/proxy.log" 2>&1 &
pids+=($!)

mkdir -p "$work/nginx/cache" "$work/nginx/logs"
cat >"$work/nginx/nginx.conf" <<EOF
user root;
worker_processes 2;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  gzip on;
  gzip_types application/json;
  gzip_min_length 1024;
  gzip_comp_level 1;
  proxy_cache_path $work/nginx/cache levels=1:2 keys_zone=nexon:50m max_size=1g inactive=24h use_temp_path=off;
  upstream sim { server $SIM; keepalive 64; }
  server {
    listen $NGINX;
    location /maplestory/v1/ {
      proxy_pass http://sim;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header x-nxopen-api-key maple-sim-dev-key;
      proxy_connect_timeout 1s;
      proxy_read_timeout 3s;
      proxy_cache nexon;
      proxy_cache_key \$uri\$is_args\$args;
      proxy_cache_valid 200 ${TTL_S}s;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 3s;
      proxy_cache_lock_age 3s;
      proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504 http_429;
      proxy_cache_background_update on;
      add_header X-Cache \$upstream_cache_status always;
    }
  }
}
EOF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
pids+=($!)

for url in "http://$SIM/-/stats" "http://$MAPLE_ADMIN/health"; do
  for _ in $(seq 1 100); do curl -fsS -o /dev/null "$url" 2>/dev/null && break; sleep 0.1; done
done
sleep 0.5

echo "# bench-proxy $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) cores: $(nginx -v 2>&1), maple-proxy $(git rev-parse --short HEAD), simulator gzip $SIM_GZIP"

echo
echo "## 1. Cache hit, ~350 KB equipment body: wrk -t2 -c$WRK_C -d${WRK_S}s --latency"
ocid=$(curl -fsS "http://$SIM/maplestory/v1/id?character_name=benchhit" -H 'x-nxopen-api-key: maple-sim-dev-key' | sed 's/.*"ocid":"\([0-9a-f]*\)".*/\1/')
for target in "maple-proxy $MAPLE" "nginx $NGINX"; do
  set -- $target
  url="http://$2/maplestory/v1/character/item-equipment?ocid=$ocid"
  # Warm the entry, both ways (an upstream that sends gzip gives nginx a variant for each).
  # Its TTL is the outage test's 10 s: both proxies refresh it in the background during the
  # run (stale-while-revalidate / background update), alike.
  curl -fsS -o /dev/null "$url"
  curl -fsS -o /dev/null -H 'accept-encoding: gzip' "$url"
  echo "### $1"
  wrk -t2 -c"$WRK_C" -d"${WRK_S}s" --latency "$url" | grep -E 'Latency|Req/Sec|requests in|Requests/sec|Transfer/sec|50%|90%|99%|Non-2xx|Socket errors'
  echo "### $1, Accept-Encoding: gzip ($(curl -fsS -H 'accept-encoding: gzip' -o /dev/null -w '%{size_download}' "$url") bytes a body)"
  wrk -t2 -c"$WRK_C" -d"${WRK_S}s" --latency -H 'Accept-Encoding: gzip' "$url" | grep -E 'Latency|Req/Sec|requests in|Requests/sec|Transfer/sec|50%|90%|99%|Non-2xx|Socket errors'
done

echo
echo "## 2. Stampede: 500 concurrent requests, one cold key, upstream latency 500 ms"
echo "| proxy | requests | upstream calls | statuses | p50 ms | p99 ms | wall s |"
echo "|---|---|---|---|---|---|---|"
for target in "maple-proxy $MAPLE" "nginx $NGINX"; do
  set -- $target
  target/release/proxy-bench stampede --label "$1" --proxy "http://$2" --sim "http://$SIM" --n 500
done

echo
echo "## 3. Upstream outage for ${OUTAGE_S}s: 20 clients reading 20 cached keys expired $((TTL_S + 1))s ago"
echo "| proxy | fault | requests | answered 200 | served stale | statuses | upstream calls | p50 ms | p99 ms |"
echo "|---|---|---|---|---|---|---|---|---|"
for fault in 503 hang; do
  for target in "maple-proxy $MAPLE" "nginx $NGINX"; do
    set -- $target
    target/release/proxy-bench outage --label "$1" --fault "$fault" --proxy "http://$2" \
      --sim "http://$SIM" --keys 20 --concurrency 20 --seconds "$OUTAGE_S" \
      --expire-wait-s $((TTL_S + 1))
  done
done
