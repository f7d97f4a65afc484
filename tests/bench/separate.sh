#!/usr/bin/env bash
# praxis-bench against the three services as separate processes on PostgreSQL and Redis, as
# they run in Kubernetes: praxis-directory, praxis-identity and praxis-authz on loopback ports
# 16051-16053 (identity's HTTP on 16080), each with its own fresh database. Arguments go to
# praxis-bench. Environment: PRAXIS_BIN (default target/release), PRAXIS_BENCH_POSTGRES
# (default postgres://postgres@127.0.0.1:5432), PRAXIS_BENCH_REDIS (default
# redis://127.0.0.1:6379), AUTHZ_WORKERS (authz's tokio workers; 0 = one per core, 1 = a
# current-thread runtime), BENCH_LOG_DIR (where to keep the services' logs, and their metrics:
# served on 16091-16093 and scraped before they stop).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${PRAXIS_BIN:-target/release}
postgres=${PRAXIS_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}
redis=${PRAXIS_BENCH_REDIS:-redis://127.0.0.1:6379}
work=$(mktemp -d)
pids=()
metrics() { if [ -n "${BENCH_LOG_DIR:-}" ]; then echo "PRAXIS_TELEMETRY__METRICS_LISTEN=127.0.0.1:$1"; fi; }
stop() {
  if [ -n "${BENCH_LOG_DIR:-}" ]; then
    for port in 16091 16092 16093; do
      curl -s "http://127.0.0.1:$port/metrics" >"$work/metrics-$port.txt" || true
    done
  fi
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  # The services' logs outlive the run when BENCH_LOG_DIR names a folder.
  if [ -n "${BENCH_LOG_DIR:-}" ]; then mkdir -p "$BENCH_LOG_DIR" && cp "$work"/*.log "$work"/*.txt "$BENCH_LOG_DIR"/ || true; fi
  rm -rf "$work"
}
trap stop EXIT

for db in bench_directory bench_identity bench_authz; do
  psql "$postgres/postgres" -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
done
secret() { head -c 32 /dev/urandom | base64; }
encryption_key=$(secret)
audit_credential=$(head -c 48 /dev/urandom | base64 | tr -d '=+/')
export PRAXIS_CACHE_URL=$redis PRAXIS_TELEMETRY__LOG_FORMAT=json PRAXIS_TELEMETRY__LOG_FILTER=warn
export PRAXIS_AUTH__JWKS_URL=http://127.0.0.1:16080/.well-known/jwks.json
export PRAXIS_AUTH__API_KEY_URL=http://127.0.0.1:16080/api-keys/verify

wait_for() {
  for _ in $(seq 1 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.2
  done
  echo "nothing listens on 127.0.0.1:$1; its log:" >&2
  tail -20 "$work/$2.log" >&2
  return 1
}

PRAXIS_LISTEN=127.0.0.1:16051 PRAXIS_DATABASE_URL=$postgres/bench_directory \
  PRAXIS_AUTH__SERVICE_CREDENTIALS__AUTHZ=$audit_credential PRAXIS_AUDIT__CHECKPOINT_KEY=$(secret) \
  PRAXIS_ENCRYPTION__KEY=$(secret) env $(metrics 16091) "$bin/praxis-directory" >"$work/directory.log" 2>&1 &
pids+=($!)
wait_for 16051 directory
PRAXIS_LISTEN=127.0.0.1:16052 PRAXIS_HTTP_LISTEN=127.0.0.1:16080 PRAXIS_DATABASE_URL=$postgres/bench_identity \
  PRAXIS_ENCRYPTION__KEY=$encryption_key PRAXIS_DIRECTORY_URL=http://127.0.0.1:16051 \
  PRAXIS_LOGIN__ATTEMPTS_PER_IP_PER_MINUTE=100000000 \
  env $(metrics 16092) "$bin/praxis-identity" >"$work/identity.log" 2>&1 &
pids+=($!)
wait_for 16052 identity
wait_for 16080 identity
PRAXIS_LISTEN=127.0.0.1:16053 PRAXIS_DATABASE_URL=$postgres/bench_authz \
  PRAXIS_DIRECTORY_URL=http://127.0.0.1:16051 PRAXIS_AUDIT_CREDENTIAL=$audit_credential \
  PRAXIS_WORKER_THREADS=${AUTHZ_WORKERS:-0} \
  env $(metrics 16093) "$bin/praxis-authz" >"$work/authz.log" 2>&1 &
pids+=($!)
wait_for 16053 authz

# A platform admin's token, signed with the standalone identity's own key (read from its database).
PRAXIS_BENCH_TOKEN=$(PRAXIS_IDENTITY__DATABASE_URL=$postgres/bench_identity \
  PRAXIS_IDENTITY__ENCRYPTION_KEY=$encryption_key "$bin/praxis" --data-dir "$work/cli" token --platform-admin)
export PRAXIS_BENCH_TOKEN
"$bin/praxis-bench" --directory 127.0.0.1:16051 --identity 127.0.0.1:16052 --authz 127.0.0.1:16053 \
  --label "separate services, PostgreSQL + Redis (authz workers: ${AUTHZ_WORKERS:-0})" "$@"
