"""gunicorn settings of the production recipe (README, "Production deployment").

    gunicorn -c deploy/gunicorn.conf.py "app:create_app()"

One process per core, each with 8 threads: a callback spends most of its time waiting for its
INSERT, and the inbox writer commits the callbacks that arrive meanwhile together (group commit), so
threads are what turn a burst into few round trips (`bench/callbacks.py`: 8 threads answer about a
third more callbacks a second than 4 on 2 cores). The in-process worker is off: `flask worker`
processes apply the events. Every figure can be overridden from the environment.
"""

import multiprocessing
import os

bind = os.environ.get("SCRM_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
worker_class = "gthread"
threads = int(os.environ.get("SCRM_WEB_THREADS", "8"))
# gunicorn 27 opens a control socket at a fixed path by default: a second server on the same host
# would collide with the first. The recipe needs none.
control_socket_disable = True
keepalive = 5
timeout = 30
graceful_timeout = 20
accesslog = os.environ.get("SCRM_ACCESS_LOG") or None  # off by default: the inbox records every callback
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
raw_env = ["SCRM_EMBEDDED_WORKER=0"]
