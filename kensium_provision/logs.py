"""Diagnostics under `-v -v`: kprov's and botocore's debug logs to stderr, every line redacted.

Never the root logger at DEBUG and never `boto3.set_stream_logger` (research/reliability-notes.md
section 4.4: botocore logs request parameters and response bodies, passwords included). A
RedactingFilter on the one handler masks every secret kprov generated or read in this process.
"""

from __future__ import annotations

import logging
import sys

from kensium_provision.secret import RedactingFilter

__all__ = ["enable_debug"]

_LOGGERS = ("kensium_provision", "botocore", "boto3", "urllib3")


def enable_debug() -> logging.Handler:
    """Send debug logs of kprov and the AWS SDK to stderr through a redacting handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter())
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        logger.propagate = False  # never through the root logger, where other handlers would not redact
    return handler
