#!/usr/bin/env bash
# The container test: build the Dockerfile with podman, run it, probe /healthz and its
# HEALTHCHECK (tests/container/build-and-probe, a copy of the team's shared probe), then check the same image can be a render
# worker (`storybot worker`: Celery, Redis client and psycopg installed).
#
# Usage: tests/container/run.sh [HOST_PORT]        (needs root, as build-and-probe does)
#   BUILD_AND_PROBE=/path/to/build-and-probe       another copy of the probe script
# About 1 minute with cached base images, about 3 the first time (debootstrap + pip).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# The team's probe script, kept beside this one so a clean clone can run it on its own.
PROBE=${BUILD_AND_PROBE:-$ROOT/tests/container/build-and-probe}
PORT=${1:-18080}
[ -x "$PROBE" ] || { echo "FAIL: $PROBE not found or not executable (set BUILD_AND_PROBE)"; exit 1; }

# The image's config serves the web on 0.0.0.0, which storybot refuses without an admin token.
token=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
PROBE_RUN_ARGS="${PROBE_RUN_ARGS:-} -e STORYBOT_ADMIN_TOKEN=$token" "$PROBE" "$ROOT" "$PORT"

# Same storage as build-and-probe (its PROBE_WORK default), so the image it built is found.
WORK=${PROBE_WORK:-$(dirname "$(mktemp -u)")/container-probe}
export CONTAINERS_STORAGE_CONF="$WORK/storage.conf" CONTAINERS_CONF="$WORK/containers.conf"
podman run --rm --network none --no-healthcheck localhost/probe-app:latest sh -c '
  set -e
  python -c "import celery, redis, psycopg; print(\"worker deps: celery\", celery.__version__)" \
    || { echo "FAIL: no worker dependencies in the image (EXTRAS needs workers)"; exit 1; }
  storybot worker --help >/dev/null || { echo "FAIL: no storybot worker command"; exit 1; }
  # No broker in the default config: the worker must refuse with one line, not a traceback.
  out=$(storybot worker 2>&1) && { echo "FAIL: worker started without a broker"; exit 1; }
  case "$out" in *"workers.broker_url"*) ;; *) echo "FAIL: unexpected: $out"; exit 1;; esac
  case "$out" in *Traceback*) echo "FAIL: traceback: $out"; exit 1;; esac
  echo "worker role: refuses to start without workers.broker_url (as it should)"
'
echo "container test: passed"
