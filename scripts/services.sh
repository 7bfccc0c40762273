#!/usr/bin/env bash
# Makes this machine ready to build and test: installs the build's system packages
# (scripts/build-deps.sh) and the test tools (Prometheus with promtool, HAProxy, schemathesis) when
# missing, and starts the machine's shared Redis and MariaDB when they are down (never stops
# them). Idempotent; called by scripts/test.sh and .ci/run.
set -euo pipefail

# The build's own packages (cmake for pingora's zlib-ng), as the run command installs them; a
# real Prometheus for the alert-rule test, with promtool for the config and rule checks; and
# HAProxy, the load balancer the readiness test puts in front of two core instances.
bash "$(dirname "$0")/build-deps.sh" prometheus haproxy
# The packages start system services on install; the tests start their own.
if command -v systemctl >/dev/null 2>&1; then
  systemctl stop prometheus haproxy >/dev/null 2>&1 || true
fi

# schemathesis: the API contract run against core's OpenAPI description (from PyPI).
if ! command -v st >/dev/null 2>&1 && ! python3 -c 'import schemathesis' >/dev/null 2>&1; then
  echo "installing schemathesis"
  python3 -m pip install -q --disable-pip-version-check 'schemathesis>=4,<5'
fi
# maplestory-openapi: a published Nexon client, pointed at the proxy by the tests to prove that
# other services can use it as a drop-in Nexon endpoint (pinned: the version the test was
# written against: every 3.x wheel up to 3.11.0 fails to import — a circular import, and httpx
# used but not declared — so the newest 2.x).
if ! python3 -c 'import maplestory_openapi' >/dev/null 2>&1; then
  echo "installing maplestory-openapi"
  python3 -m pip install -q --disable-pip-version-check 'maplestory-openapi==2.13.1'
fi

# Redis: the machine's shared instance on the standard port (started only if it is down).
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi

# MariaDB: the machine's shared instance (root, empty password, database `test`).
if ! mysqladmin -h 127.0.0.1 -u root ping >/dev/null 2>&1; then
  echo "starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
fi
for _ in $(seq 1 60); do
  mysqladmin -h 127.0.0.1 -u root ping >/dev/null 2>&1 && break
  sleep 1
done
mysqladmin -h 127.0.0.1 -u root ping >/dev/null 2>&1 || { echo "MariaDB did not come up" >&2; exit 1; }
mysql -h 127.0.0.1 -u root -e 'CREATE DATABASE IF NOT EXISTS test' >/dev/null
for _ in $(seq 1 30); do
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
  sleep 1
done

