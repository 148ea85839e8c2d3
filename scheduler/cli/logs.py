"""How the `powerplane` processes log: plain text lines (the default) or one JSON object
per line (`--log-format json`, for log pipelines such as Loki or Elasticsearch).

In JSON, each record has `time`, `level`, `logger` and `message`, plus the ids the code
passed with it (`extra=`): `job_id`, `run_id`, `site_id`, `tenant`, `grid_event_id`;
a process that serves one site (the agent) stamps its `site_id` on every record. The
JSON comes from python-json-logger."""

from __future__ import annotations

import logging

from pythonjsonlogger.json import JsonFormatter

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Stamp(logging.Filter):
    """Adds fixed fields to every record that does not carry them already."""

    def __init__(self, fields: dict[str, str]):
        super().__init__()
        self.fields = fields

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self.fields.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def configure_logging(level: str, log_format: str = "text", **fields: str) -> None:
    """Log to stderr at `level` in `log_format`; `fields` go on every JSON record."""
    logging.basicConfig(level=level.upper(), handlers=[log_handler(log_format, **fields)], force=True)


def log_handler(log_format: str = "text", stream=None, **fields: str) -> logging.Handler:
    """A handler writing `log_format` to `stream` (default stderr)."""
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {log_format!r}")
    handler = logging.StreamHandler(stream)
    if log_format == "json":
        handler.setFormatter(
            JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})
        )
        if fields:
            handler.addFilter(_Stamp(fields))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    return handler
