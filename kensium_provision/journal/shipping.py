"""Shipping the journal to CloudWatch Logs as it is written: an anchor the operator cannot rewrite."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kensium_provision.aws.call import call, pages
from kensium_provision.errors import AwsError
from kensium_provision.journal.writer import JournalWriter

__all__ = ["ShippingJournal", "read_shipped"]


def read_shipped(client: Any, group: str) -> dict[str, list[dict[str, Any]]]:
    """Every record shipped to the log group, by run id (its stream), for `audit verify` to compare
    (FilterLogEvents: a read). A message that is not a record is left out: no local record matches it."""
    found: dict[str, list[dict[str, Any]]] = {}
    for event in pages(client, "filter_log_events", "events", logGroupName=group,
                       missing=("ResourceNotFoundException",)):
        try:
            rec = json.loads(str(event.get("message", "")))
        except ValueError:
            continue
        if isinstance(rec, dict) and type(rec.get("seq")) is int:
            found.setdefault(str(event.get("logStreamName", "")), []).append(rec)
    return found


class ShippingJournal:
    """A JournalWriter that also ships every record to CloudWatch Logs, an anchor the operator can't rewrite.

    Shipping failures never stop the run (the local journal stays the record); they are kept in `errors`.
    """

    def __init__(self, inner: JournalWriter, client: Any, *, group: str, stream: str) -> None:
        self.inner, self._client, self.group, self.stream = inner, client, group, stream
        self.errors: list[str] = []
        self._lock = threading.Lock()
        # Each is tried: a role may hold logs:CreateLogStream on a group made by someone else.
        creates: tuple[tuple[str, dict[str, Any]], ...] = (
            ("create_log_group", {"logGroupName": group}),
            ("create_log_stream", {"logGroupName": group, "logStreamName": stream}))
        for operation, params in creates:
            try:
                call(client, operation, missing=("ResourceAlreadyExistsException",), **params)
            except AwsError as exc:  # reported; the run goes on (the local journal is the record)
                self.errors.append(str(exc))
        if inner.last:
            self._ship(inner.last)  # the header, written when the writer was made

    def record(self, event: str, **fields: object) -> None:
        with self._lock:
            self.inner.record(event, **fields)
            self._ship(self.inner.last)

    def close(self, outcome: str, **fields: object) -> None:
        with self._lock:
            if self.inner.closed:
                return
            self.inner.close(outcome, **fields)
            self._ship(self.inner.last)

    def _ship(self, rec: Mapping[str, object]) -> None:
        moment = datetime.fromisoformat(str(rec["ts"]))
        event = {"timestamp": int(moment.timestamp() * 1000),
                 "message": json.dumps(rec, separators=(",", ":"), ensure_ascii=False)}
        try:
            call(self._client, "put_log_events", logGroupName=self.group, logStreamName=self.stream,
                 logEvents=[event])
        except AwsError as exc:  # reported; the run goes on
            self.errors.append(f"record {rec['seq']}: {exc}")
