"""Diagnostics under `-v -v`: kprov's and botocore's debug logs to stderr, every line redacted.

Never the root logger at DEBUG and never `boto3.set_stream_logger` (research/reliability-notes.md
section 4.4: botocore logs request parameters and response bodies, passwords included). A
RedactingFilter on the one handler masks every secret kprov generated or read in this process.

That is not enough on its own: botocore logs a response body before kprov has seen, let alone
registered, the secret in it (the SecretAccessKey of CreateAccessKey, the SecretString of
GetSecretValue), and a request body shows a registered multi-line secret (a PEM private key) in an
escaping no registered form matches. So the handler also masks the value of every field whose
name says it holds a credential, in the JSON, XML, form and Python-repr texts botocore logs. Every line
leaves through the output boundary (ui/boundary.py): AWS's bodies may hold escape codes.
"""

from __future__ import annotations

import logging
import re
import sys

from kensium_provision.secret import MASK, RedactingFilter, is_secret_key
from kensium_provision.ui.boundary import neutral

__all__ = ["SecretFieldFilter", "enable_debug", "mask_secret_fields"]

_LOGGERS = ("kensium_provision", "botocore", "boto3", "urllib3")
_KEY = r"[A-Za-z][A-Za-z0-9_.-]{0,127}"
_FIELDS = (
    # JSON, also inside a Python repr of bytes, where its escapes are escaped again ("a\\"b"): the
    # value ends at the quote that ends the member, not at the first quote an escape might hide.
    re.compile(r'(?P<head>"(?P<key>' + _KEY + r')"\s*:\s*")(?P<value>.*?)(?P<tail>"(?=\s*[,}\]]|\s*$))'),
    # Python repr of a dict: 'MasterUserPassword': 'x', 'Authorization': b'x', 'K': "it's"
    re.compile(r"(?P<head>'(?P<key>" + _KEY + r")'\s*:\s*b?')(?P<value>(?:[^'\\]|\\.)*)(?P<tail>')"),
    re.compile(r"(?P<head>'(?P<key>" + _KEY + r")'\s*:\s*b?\")(?P<value>(?:[^\"\\]|\\.)*)(?P<tail>\")"),
    # XML: <SecretAccessKey>x</SecretAccessKey>
    re.compile(r"(?P<head><(?P<key>" + _KEY + r")>)(?P<value>[^<]*)(?P<tail></(?P=key)>)"),
    # form-encoded bodies and query strings: MasterUserPassword=x&...
    re.compile(r"(?P<head>(?<![A-Za-z0-9_.-])(?P<key>" + _KEY + r")=)(?P<value>[^&\s'\"]*)(?P<tail>)"),
)


def mask_secret_fields(text: str) -> str:
    """`text` with the value of every credential-named field (SecretString, MasterUserPassword...) masked."""

    def mask(match: re.Match[str]) -> str:
        if not match.group("value") or not is_secret_key(match.group("key")):
            return match.group(0)
        return f"{match.group('head')}{MASK}{match.group('tail')}"

    for pattern in _FIELDS:
        text = pattern.sub(mask, text)
    return text


class SecretFieldFilter(logging.Filter):
    """Runs after a RedactingFilter (which formats the record): masks credential-named fields too."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_secret_fields(record.getMessage())
        record.args = None
        if record.exc_text:
            record.exc_text = mask_secret_fields(record.exc_text)
        return True


class _TerminalFormatter(logging.Formatter):
    """A log line as the output boundary lets it out: a response body's escape codes shown, not run."""

    def format(self, record: logging.LogRecord) -> str:
        return neutral(super().format(record))


def enable_debug() -> logging.Handler:
    """Send debug logs of kprov and the AWS SDK to stderr through a redacting handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_TerminalFormatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter())
    handler.addFilter(SecretFieldFilter())
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        logger.propagate = False  # never through the root logger, where other handlers would not redact
    return handler
