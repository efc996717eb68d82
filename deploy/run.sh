#!/usr/bin/env bash
# The production recipe on one host, without containers (README, "Production deployment"):
#
#   DATABASE_URL=postgresql://scrm@db/scrm SECRET_KEY=... WECOM_...=... deploy/run.sh [all|web|worker]
#
#   all     (default) migrate, then gunicorn and SCRM_WORKERS `flask worker` processes
#   web     migrate (unless SCRM_MIGRATE=0), then gunicorn only: for web hosts
#   worker  SCRM_WORKERS `flask worker` processes only: for worker hosts
#
# Hosts share nothing but PostgreSQL (and SECRET_KEY): run `web` on as many hosts as you like behind a
# load balancer and `worker` on as many as you like; every worker runs the scheduler, and each job
# fires once across all of them (its lock is a row in the database). SIGTERM or Ctrl-C stops every
# process gracefully (workers finish their current row); if any process exits on its own, the others
# are stopped too and the script exits non-zero, so that systemd or your supervisor restarts it.
set -euo pipefail
cd "$(dirname "$0")/.."

role="${1:-all}"
case "$role" in all|web|worker) ;; *) echo "usage: deploy/run.sh [all|web|worker]" >&2; exit 2 ;; esac
: "${DATABASE_URL:?set DATABASE_URL to the PostgreSQL database (postgresql://user:password@host/db)}"
: "${SECRET_KEY:?set SECRET_KEY: every host must sign sessions with the same key}"
python="${PYTHON:-.venv/bin/python}"
workers="${SCRM_WORKERS:-2}"
export FLASK_APP=app SCRM_EMBEDDED_WORKER=0

pids=()
stop() {
    trap - TERM INT
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait || true
}
trap 'stop; exit 0' TERM INT

if [ "$role" != worker ] && [ "${SCRM_MIGRATE:-1}" != 0 ]; then
    "$python" -m flask db upgrade
fi
if [ "$role" != worker ]; then
    "$python" -m gunicorn -c deploy/gunicorn.conf.py "app:create_app()" &
    pids+=($!)
fi
if [ "$role" != web ]; then
    for _ in $(seq "$workers"); do
        "$python" -m flask worker &
        pids+=($!)
    done
fi
echo "deploy/run.sh: $role running (pids ${pids[*]}); SIGTERM or Ctrl-C stops" >&2

set +e
wait -n "${pids[@]}"
status=$?
set -e
echo "deploy/run.sh: a process exited with status $status; stopping the others" >&2
stop
exit $(( status == 0 ? 1 : status ))
