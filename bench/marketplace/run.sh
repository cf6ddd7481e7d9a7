#!/bin/sh
# Load scenarios against a generated marketplace (see generate.py). Usage:
#   TUTORAPP_DATABASE_URL=... sh bench/marketplace/run.sh [seconds] [connections]
# Starts `tutorapp serve` (2 workers) on port 8765, runs wrk for search, profile +
# slots and booking, and stops the server. Run from the repository root.
set -eu
SECONDS_PER_RUN=${1:-30}
CONNECTIONS=${2:-32}
PORT=8765
export TUTORAPP_LOG_LEVEL=WARNING TUTORAPP_JOBS_EMBEDDED_WORKER=false TUTORAPP_PROFILE=dev
export TUTORAPP_ACCESS_TOKEN_TTL_SECONDS=${TUTORAPP_ACCESS_TOKEN_TTL_SECONDS:-86400}
.venv/bin/tutorapp serve --port $PORT --workers 2 > bench/marketplace/out/server.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for i in $(seq 1 50); do
  curl -sf "http://127.0.0.1:$PORT/health/live" >/dev/null 2>&1 && break
  curl -sf "http://127.0.0.1:$PORT/api/v1/catalogue/levels" >/dev/null 2>&1 && break
  sleep 0.5
done
for scenario in ${SCENARIOS:-search search_relevance profile_slots booking}; do
  echo "=== $scenario: ${SECONDS_PER_RUN}s, $CONNECTIONS connections, 2 wrk threads"
  wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency \
      -s "bench/marketplace/$scenario.lua" "http://127.0.0.1:$PORT"
done
