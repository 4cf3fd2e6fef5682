"""structlog JSON lines on stdout, each carrying the request id of the request it belongs
to and the id of the process that wrote it."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog


def configure_logging(level: str = "INFO") -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _pid,
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # A line in one write (print() writes the newline apart): with unbuffered output
        # (PYTHONUNBUFFERED, as in the image) several workers' lines would interleave.
        logger_factory=structlog.WriteLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    # Libraries that use stdlib logging (uvicorn, alembic) go through the same renderer.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=structlog.processors.JSONRenderer(), foreign_pre_chain=shared
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in ("uvicorn", "uvicorn.error", "alembic"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Alembic: the migration steps are worth a line, its plugin set-up chatter is not.
    logging.getLogger("alembic").setLevel(max(numeric, logging.WARNING))
    logging.getLogger("alembic.runtime.migration").setLevel(numeric)
    # One access line per request comes from our middleware, not from uvicorn.
    logging.getLogger("uvicorn.access").disabled = True


def _pid(logger: Any, method: str, event: Any) -> Any:
    """Which process wrote the line: several workers write to one stream."""
    event["pid"] = os.getpid()
    return event


def get_logger(name: str = "cdb") -> Any:
    return structlog.get_logger(name)
