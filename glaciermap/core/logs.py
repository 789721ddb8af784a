"""Logging for workflow steps and the command line.

:func:`step_logging` sends log records to a job's log file (and stderr) and turns a
:class:`~glaciermap.core.errors.GlacierMapError` into one clear line and exit code 1, instead of a
traceback: bad input is the user's to fix, a traceback is for bugs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from glaciermap.core.errors import GlacierMapError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(log_file: str | Path | None = None, level: int = logging.INFO) -> None:
    """Root logger to stderr and, if given, to ``log_file`` (created with its folder)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(level=level, format=FORMAT, handlers=handlers, force=True)
    for noisy in ("rasterio", "pyogrio", "fiona", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextlib.contextmanager
def step_logging(log_file: str | Path | None) -> Iterator[logging.Logger]:
    """Configure logging for one workflow step; user errors end it with one line, exit 1."""
    configure(log_file)
    logger = logging.getLogger("glaciermap.step")
    logger.info("GDAL block cache: %s MB", os.environ.get("GDAL_CACHEMAX", "GDAL's default"))
    try:
        yield logger
    except GlacierMapError as exc:
        logger.error("%s", exc)
        print(f"glaciermap: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
