"""gunicorn settings for Enreach tools: ``gunicorn -c gunicorn.conf.py enreach.wsgi:application`` (README, "Deploy").

Every value can be overridden from the environment (``GUNICORN_BIND``, ``GUNICORN_WORKERS``, ``GUNICORN_TIMEOUT``,
``GUNICORN_GRACEFUL_TIMEOUT``), or on the command line as usual. The ``.env`` file beside this one is read first,
exactly as Django's settings read it (variables already in the environment win), so the one file the README's deploy
links as ``.env`` configures gunicorn, its workers and the app alike.

Metrics: prometheus_client's multiprocess mode. ``PROMETHEUS_MULTIPROC_DIR`` (default ``$ENREACH_VAR_DIR/prometheus``)
is where every process (these workers, and the ``qcluster`` workers given the same directory) writes its counts;
``/metrics`` adds them all up, so every worker answers a scrape with the same totals. At start the files of
processes that are gone are removed (the queue cluster's live ones stay); ``child_exit`` marks a dead worker's
gauges as gone.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import environ
from gunicorn.glogging import Logger

_root = Path(__file__).resolve().parent
# Before anything below reads the environment; the workers inherit it (and Django reads the same file again).
environ.Env.read_env(_root / ".env", overwrite=False)
_var = Path(os.environ.get("ENREACH_VAR_DIR") or _root / "var")
# Set before any worker imports prometheus_client (it picks its storage at import).
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_var / "prometheus")

wsgi_app = "enreach.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Sync workers: the app is database- and disk-bound, requests are short, exports run in the queue workers.
workers = int(os.environ.get("GUNICORN_WORKERS") or (os.cpu_count() or 1) * 2 + 1)
# A request taking longer than this is killed (the worker is replaced); downloads stream well within it.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
# On SIGTERM (systemctl stop, a new deploy): workers finish what they serve for up to this long.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
# Replace workers now and then (memory growth of long-lived processes); the metrics of old ones are kept.
max_requests = 2000
max_requests_jitter = 200
# Behind a reverse proxy on the same host: trust its X-Forwarded-* (BEHIND_HTTPS_PROXY in the app's settings).
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"
errorlog = "-"
# Files go out through write() rather than sendfile(): gunicorn counts only write()'s bytes, and the access log's
# "bytes" of a download must be what was sent. Downloads are read in 256 KiB blocks (exports.api.views).
sendfile = False
# gunicorn's runtime control socket lives in the home directory by default; nothing here uses it.
control_socket_disable = True


class JsonAccessLogger(Logger):
    """One JSON object per access-log line (the app's own logs are JSON too with LOG_FORMAT=json)."""

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not (self.cfg.accesslog or self.cfg.logconfig or self.cfg.syslog):
            return
        status = str(getattr(resp, "status", "") or "").split(" ", 1)[0]
        line = {
            "time": self.now(),
            "logger": "gunicorn.access",
            "remote": environ.get("REMOTE_ADDR", "-"),
            "method": environ.get("REQUEST_METHOD"),
            # The query string may carry secrets (?token=...): keep the path only.
            "path": environ.get("PATH_INFO"),
            "status": int(status) if status.isdigit() else status,
            "bytes": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 1),
            # The id the app answered with: the client's when it sent a sane one, else the one the app generated.
            "request_id": _safe(_header(resp, "x-request-id") or environ.get("HTTP_X_REQUEST_ID", "")),
            "user_agent": environ.get("HTTP_USER_AGENT", ""),
            "pid": os.getpid(),
        }
        try:
            self.access_log.info(json.dumps(line))
        except Exception:  # a log line must never fail a request
            self.exception("could not write the access log")


def _safe(value: str) -> str:
    return value if re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", value or "") else ""


def _header(resp: Any, name: str) -> str:
    for key, value in getattr(resp, "headers", None) or []:
        if str(key).lower() == name:
            return str(value)
    return ""


logger_class = JsonAccessLogger


def on_starting(server: Any) -> None:
    """Before the workers start: an empty metrics directory, but for the files of processes still running."""
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    removed = 0
    for path in directory.glob("*.db"):
        match = re.search(r"_(\d+)\.db$", path.name)
        if match and _alive(int(match.group(1))):
            continue
        path.unlink(missing_ok=True)
        removed += 1
    logging.getLogger("gunicorn.error").info("metrics in %s (%d stale files removed)", directory, removed)


def child_exit(server: Any, worker: Any) -> None:
    """A worker ended (crash, max_requests, shutdown): its live gauges stop counting."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
