"""Logging set-up: text or JSON lines on stderr."""

from __future__ import annotations

import json
import logging
import sys
import time


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "thread": record.threadName,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler configure_logging() installs (and replaces when called again)."""


def configure_logging(level: str = "info", fmt: str = "text", prog: str = "wattpush") -> None:
    """Log to stderr at ``level`` as text or JSON lines (LOG_LEVEL / LOG_FORMAT). Calling it
    again replaces its own handler; handlers others installed (a test's capture) stay."""
    handler = _StderrHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s {prog} %(levelname)s [%(threadName)s] %(message)s")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, _StderrHandler):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # urllib3 logs every retry of a refused connection at WARNING; our sender reports those.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
