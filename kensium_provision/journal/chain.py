"""The write-ahead journal: one hash-chained JSONL file per run; the audit log, the history, the resume point.

Stdlib only. Format and checks: design.md section 5, research/reliability-notes.md section 4.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import math
import os
import re
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from itertools import pairwise
from pathlib import Path, PurePath
from typing import Any

from kensium_provision import __version__
from kensium_provision.errors import InputError

__all__ = [
    "DONE_STATUSES",
    "GENESIS",
    "HEADER_FIELDS",
    "MASK",
    "JournalWriter",
    "ResumeState",
    "RunLog",
    "RunSummary",
    "ShippingJournal",
    "canonical",
    "filter_runs",
    "list_runs",
    "read_run",
    "record_hash",
    "resume_point",
    "verify_all",
    "verify_run",
]

MASK = "••••••••"
GENESIS = "0" * 64
# What the header (`run.started`) must carry; the writer adds `kprov_version` and `os_user` itself.
HEADER_FIELDS = (
    "who", "account", "region", "environment", "checklist", "checklist_sha256", "mode", "target", "command",
)
DONE_STATUSES = frozenset({"done", "changed"})  # step.result statuses that resume may skip re-doing
_CHAIN = frozenset({"seq", "ts", "run_id", "event", "prev", "hash"})  # written by the writer, never by callers
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # it names files: no separators, no leading dot
_EVENT = re.compile(r"^[a-z]+(?:\.[a-z_]+)*$")
_MAX_DEPTH = 32

Redact = Callable[[object], object]


def canonical(record: Mapping[str, object]) -> bytes:
    """The bytes a record's hash covers: sorted keys, compact separators, UTF-8."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def record_hash(record: Mapping[str, object]) -> str:
    """sha256 of the canonical JSON of the record without its `hash`."""
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _now() -> datetime:
    return datetime.now(UTC)


def os_user() -> str:
    """`user@host` of the operator's machine (journal records, lock holders)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container uid without a passwd entry
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def _check_run_id(run_id: str) -> str:
    if not _RUN_ID.match(run_id):
        raise InputError(f"{run_id!r} is not a run id (letters, digits, '.', '_' and '-' only)")
    return run_id


def _plain(value: object, redact: Redact | None, depth: int = 0) -> object:
    """Plain JSON values only: a Secret becomes the mask, any other object a placeholder, never its repr."""
    if redact is not None:
        value = redact(value)
    if hasattr(value, "reveal"):  # a Secret, whatever `redact` did with it
        return MASK
    if depth > _MAX_DEPTH:
        return "<unrecordable: nested too deep>"
    if value is None or type(value) in (str, bool, int):
        if type(value) is str and not value.isascii():
            return value.encode("utf-8", "backslashreplace").decode("utf-8")  # lone surrogates can't be UTF-8
        return value
    if type(value) is float:
        return value if math.isfinite(value) else repr(value)  # JSON has no NaN or Infinity
    if isinstance(value, Enum):  # Status, Risk, Mode
        return _plain(value.value, redact, depth + 1)
    if isinstance(value, Mapping):
        return {_key(k, redact): _plain(v, redact, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, redact, depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [_plain(v, redact, depth + 1) for v in value]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True, ensure_ascii=False))
    if isinstance(value, datetime) and value.tzinfo is not None:
        return _timestamp(value)
    if isinstance(value, PurePath):
        return _plain(str(value), redact, depth + 1)
    return f"<unrecordable {type(value).__name__}>"


def _key(key: object, redact: Redact | None) -> str:
    plain = _plain(key, redact, _MAX_DEPTH)
    if isinstance(plain, str):
        return plain
    if type(plain) in (int, bool) or plain is None:
        return json.dumps(plain)
    return f"<unrecordable {type(key).__name__}>"


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:  # a regular file takes it in one write(); loop only for the rare short write
        view = view[os.write(fd, view):]


class JournalWriter:
    """Appends a run's records to `state_dir/runs/<run_id>.jsonl`, each one fsync'ed before `record` returns.

    Every record holds `seq`, `ts`, `run_id`, `event`, the caller's fields, `prev` (the previous record's
    hash) and `hash`. The head (last seq and hash) is also kept in `state_dir/heads/<run_id>.head`.
    Field values pass through `redact`, then anything that is not plain JSON is masked or replaced.

    Fields the readers rely on: `answer` (input, value | reference), `step.intent` (step, phase, risk,
    params), `step.result` (step, status, outputs, error), `step.skipped` (step, reason), `interrupted`,
    `run.finished` (outcome).
    """

    def __init__(
        self,
        state_dir: Path,
        run_id: str,
        *,
        header: Mapping[str, object],
        redact: Redact | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        missing = [name for name in HEADER_FIELDS if name not in header]
        if missing:
            raise ValueError(f"the journal header lacks {', '.join(missing)}")
        clash = sorted(_CHAIN & header.keys())
        if clash:  # checked before the file exists, so a bad header leaves no empty journal behind
            raise ValueError(f"{', '.join(clash)} are written by the journal itself")
        self.run_id = _check_run_id(run_id)
        self._redact, self._clock = redact, clock
        self._lock = threading.Lock()
        runs, heads = _private_dir(state_dir / "runs"), _private_dir(state_dir / "heads")
        self.path = runs / f"{run_id}.jsonl"
        self.head_path = heads / f"{run_id}.head"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        self._fd: int | None = os.open(self.path, flags, 0o600)  # O_EXCL: never append to another run's file
        _fsync_dir(runs)
        self.seq, self.head = 0, GENESIS
        self.last: Mapping[str, object] = {}
        self.record("run.started", **{"kprov_version": __version__, "os_user": os_user(), **header})

    def record(self, event: str, **fields: object) -> None:
        if not _EVENT.match(event):
            raise ValueError(f"{event!r} is not an event name")
        clash = sorted(_CHAIN & fields.keys())
        if clash:
            raise ValueError(f"{', '.join(clash)} are written by the journal itself")
        with self._lock:
            if self._fd is None:
                raise ValueError(f"the journal of run {self.run_id} is closed")
            rec: dict[str, object] = {"seq": self.seq + 1, "ts": _timestamp(self._clock()), "run_id": self.run_id,
                                      "event": event}
            rec.update({name: _plain(value, self._redact) for name, value in fields.items()})
            rec["prev"] = self.head
            rec["hash"] = record_hash(rec)
            line = json.dumps(rec, separators=(",", ":"), ensure_ascii=False) + "\n"
            _write_all(self._fd, line.encode())  # one write per line, O_APPEND: no interleaving
            os.fsync(self._fd)
            self.seq, self.head, self.last = self.seq + 1, str(rec["hash"]), rec
            self._write_head()

    def _write_head(self) -> None:
        # Written after the record: a crash in between leaves the head one behind, which verify accepts.
        tmp = self.head_path.with_name(f".{self.head_path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, json.dumps({"run_id": self.run_id, "seq": self.seq, "hash": self.head}).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.head_path)
        _fsync_dir(self.head_path.parent)

    def close(self, outcome: str, **fields: object) -> None:
        """Write `run.finished` and close the file; a second call does nothing."""
        if self._fd is None:
            return
        self.record("run.finished", outcome=outcome, **fields)
        with self._lock:
            fd, self._fd = self._fd, None
            if fd is not None:
                os.close(fd)

    @property
    def closed(self) -> bool:
        return self._fd is None


class ShippingJournal:
    """A JournalWriter that also ships every record to CloudWatch Logs, an anchor the operator can't rewrite.

    Shipping failures never stop the run (the local journal stays the record); they are kept in `errors`.
    """

    def __init__(self, inner: JournalWriter, client: Any, *, group: str, stream: str) -> None:
        self.inner, self._client, self.group, self.stream = inner, client, group, stream
        self.errors: list[str] = []
        self._lock = threading.Lock()
        for call, kwargs in (("create_log_group", {"logGroupName": group}),
                             ("create_log_stream", {"logGroupName": group, "logStreamName": stream})):
            try:
                getattr(client, call)(**kwargs)
            except Exception as exc:  # boto3 is not imported here: the error code tells
                if _error_code(exc) != "ResourceAlreadyExistsException":
                    self.errors.append(f"{call}: {exc}")
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
            self._client.put_log_events(logGroupName=self.group, logStreamName=self.stream, logEvents=[event])
        except Exception as exc:  # any failure is reported; the run goes on
            self.errors.append(f"record {rec['seq']}: {exc}")


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


# ---- reading ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RunLog:
    """A run's journal as read: the header, the records in file order, and lines that could not be read."""

    run_id: str
    path: Path
    header: Mapping[str, object]
    records: tuple[Mapping[str, object], ...]
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary:
    """One line of `kprov runs`: outcome is the `run.finished` outcome, `interrupted` or `unfinished`."""

    run_id: str
    started: str
    finished: str | None
    outcome: str
    checklist: str
    target: str
    env: str
    who: str
    os_user: str
    mode: str
    client: str
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumeState:
    """What `kprov resume` may reuse from a run; completed steps are re-probed, never trusted blindly.

    `answers` holds non-secret values only; secret answers are password-manager references in
    `secret_refs`. Masked values are left out, so they are asked or probed again.
    """

    run_id: str
    checklist: str
    checklist_sha256: str
    target: str
    answers: Mapping[str, object]
    secret_refs: Mapping[str, str]
    outputs: Mapping[str, Mapping[str, object]]  # step id -> outputs of a done or changed step
    completed: frozenset[str]
    failed: frozenset[str]
    in_flight: str | None  # intended last and never finished: its act may or may not have happened


def _runs_dir(state_dir: Path) -> Path:
    return state_dir / "runs"


def _journal(state_dir: Path, run_id: str) -> Path:
    path = _runs_dir(state_dir) / f"{_check_run_id(run_id)}.jsonl"
    if not path.is_file():
        raise InputError(f"no journal for run {run_id} in {_runs_dir(state_dir)}")
    return path


def _parse(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    """(line number, record) of every readable line, and what is wrong with the others."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    cut = lines.pop()  # b"" when the file ends with a newline, else a line without one
    records: list[tuple[int, dict[str, Any]]] = []
    problems: list[str] = []
    for number, raw in enumerate(lines, start=1):
        rec = _load(raw)
        if rec is None:
            after = f" (after record {records[-1][1]['seq']})" if records else ""
            problems.append(f"line {number} is not a valid record{after}")
        else:
            records.append((number, rec))
    if cut:
        expected = records[-1][1]["seq"] + 1 if records else 1
        problems.append(f"record {expected} is torn: line {len(lines) + 1} is incomplete (the writer stopped mid-write)")
    return records, problems


def _load(raw: bytes) -> dict[str, Any] | None:
    try:
        rec = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(rec, dict) or type(rec.get("seq")) is not int:
        return None
    return rec


def read_run(state_dir: Path, run_id: str) -> RunLog:
    """The run's journal; a torn last line (a crash mid-write) is reported in `problems`, not raised."""
    path = _journal(state_dir, run_id)
    parsed, problems = _parse(path)
    records = tuple(rec for _, rec in parsed)
    header = records[0] if records and records[0].get("event") == "run.started" else {}
    return RunLog(run_id=run_id, path=path, header=header, records=records, problems=tuple(problems))


def _summary(log: RunLog) -> RunSummary:
    header = log.header
    finished = next((r for r in reversed(log.records) if r.get("event") == "run.finished"), None)
    if finished is not None:
        outcome = str(finished.get("outcome", ""))
    elif any(r.get("event") == "interrupted" for r in log.records):
        outcome = "interrupted"
    else:
        outcome = "unfinished"  # crashed, killed, or still running
    # The header holds the checklist's target template; the run journals the rendered one once known.
    rendered = [r.get("target") for r in log.records if r.get("event") == "target" and isinstance(r.get("target"), str)]
    target = str(rendered[-1]) if rendered else str(header.get("target", ""))
    client = str(header.get("client") or (target.split(":", 1)[1] if target.startswith("client:") else ""))
    return RunSummary(
        run_id=log.run_id,
        started=str(header.get("ts", "")),
        finished=str(finished["ts"]) if finished is not None else None,
        outcome=outcome,
        checklist=str(header.get("checklist", "")),
        target=target,
        env=str(header.get("environment", "")),
        who=str(header.get("who", "")),
        os_user=str(header.get("os_user", "")),
        mode=str(header.get("mode", "")),
        client=client,
        problems=log.problems,
    )


def _run_ids(state_dir: Path) -> list[str]:
    runs = _runs_dir(state_dir)
    if not runs.is_dir():
        return []
    return sorted(p.name.removesuffix(".jsonl") for p in runs.glob("*.jsonl") if _RUN_ID.match(p.stem))


def list_runs(state_dir: Path) -> list[RunSummary]:
    """Every run in the state dir, newest first."""
    summaries = [_summary(read_run(state_dir, run_id)) for run_id in _run_ids(state_dir)]
    return sorted(summaries, key=lambda s: (s.started, s.run_id), reverse=True)


def _moment(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # a naive bound means UTC


def _is_operator(summary: RunSummary, operator: str) -> bool:
    user = summary.os_user.partition("@")[0]
    session = summary.who.rsplit("/", 1)[-1]  # user name or assumed-role session name
    return operator in (summary.who, summary.os_user, user, session)


def filter_runs(
    summaries: Iterable[RunSummary],
    *,
    client: str | None = None,
    env: str | None = None,
    operator: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[RunSummary]:
    """The runs matching every given filter (`kprov audit show`); `operator` is an ARN, user@host or user."""
    chosen = []
    for summary in summaries:
        started = _moment(summary.started)
        if client is not None and summary.client != client:
            continue
        if env is not None and summary.env != env:
            continue
        if operator is not None and not _is_operator(summary, operator):
            continue
        if since is not None and (started is None or started < _utc(since)):
            continue
        if until is not None and (started is None or started > _utc(until)):
            continue
        chosen.append(summary)
    return chosen


# ---- verifying -------------------------------------------------------------------------------------------


def _span(first: int, last: int) -> str:
    return f"record {first} is" if first == last else f"records {first}–{last} are"


def _read_head(path: Path) -> dict[str, Any] | None:
    try:
        head = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(head, dict) or type(head.get("seq")) is not int or not isinstance(head.get("hash"), str):
        return None
    return head


def verify_run(state_dir: Path, run_id: str) -> list[str]:
    """What is wrong with a run's journal, each problem naming its record; empty when intact."""
    parsed, messages = _parse(_journal(state_dir, run_id))
    if not parsed and not messages:
        messages.append("the journal is empty")
    by_seq: dict[int, dict[str, Any]] = {}
    highest = 0
    for _, rec in parsed:
        seq = rec["seq"]
        if rec.get("hash") != record_hash(rec):
            messages.append(f"record {seq} was edited: its hash does not match")
        if rec.get("run_id") != run_id:
            messages.append(f"record {seq} belongs to run {rec.get('run_id')}, not {run_id}")
        if seq in by_seq:
            messages.append(f"record {seq} appears twice")
        elif seq < highest:
            messages.append(f"record {seq} is out of order: it comes after record {highest}")
        by_seq.setdefault(seq, rec)
        highest = max(highest, seq)
    seqs = sorted(by_seq)
    if seqs and seqs[0] > 1:
        messages.append(f"{_span(1, seqs[0] - 1)} missing: the journal starts at record {seqs[0]}")
    elif seqs and by_seq[1].get("prev") != GENESIS:
        messages.append("record 1 does not start the chain: its prev hash is not zero")
    for a, b in pairwise(seqs):
        if b > a + 1:
            messages.append(f"{_span(a + 1, b - 1)} missing: chain broken between {a} and {b}")
        elif by_seq[b].get("prev") != by_seq[a].get("hash"):
            messages.append(f"chain broken between {a} and {b}: record {b} does not point to record {a}'s hash")
    messages.extend(_check_head(state_dir, run_id, by_seq))
    return messages


def _check_head(state_dir: Path, run_id: str, by_seq: Mapping[int, Mapping[str, Any]]) -> list[str]:
    name = f"heads/{run_id}.head"
    path = state_dir / name
    if not path.is_file():
        return [f"the head file {name} is missing: a cut tail would not show"]
    head = _read_head(path)
    if head is None or head.get("run_id") != run_id:
        return [f"the head file {name} is unreadable or belongs to another run"]
    last, head_seq = max(by_seq, default=0), head["seq"]
    if head_seq > last:
        return [f"the journal ends at record {last} but its head says {head_seq}"]
    problems = []
    if head_seq in by_seq and by_seq[head_seq].get("hash") != head["hash"]:
        problems.append(f"record {head_seq} does not match the head: its hash differs from the one kept apart")
    if last > head_seq + 1:  # one behind is a crash between the record and its head
        problems.append(f"{_span(head_seq + 1, last)} past the head (record {head_seq}): added after the run")
    return problems


def verify_all(state_dir: Path) -> dict[str, list[str]]:
    """`verify_run` for every run (an empty list means intact), plus heads whose journal is gone."""
    results = {run_id: verify_run(state_dir, run_id) for run_id in _run_ids(state_dir)}
    heads = state_dir / "heads"
    for path in sorted(heads.glob("*.head")) if heads.is_dir() else ():
        run_id = path.name.removesuffix(".head")
        if run_id not in results and _RUN_ID.match(run_id):
            head = _read_head(path)
            seq = f" (its head says record {head['seq']})" if head else ""
            results[run_id] = [f"the journal runs/{run_id}.jsonl is missing{seq}"]
    return results


# ---- resuming --------------------------------------------------------------------------------------------


def _unmasked(value: object) -> bool:
    return value != MASK and not (isinstance(value, str) and value.startswith("<unrecordable"))


def resume_point(log: RunLog) -> ResumeState:
    """Answers, outputs and step states of a run, from its records in order (a later record wins)."""
    answers: dict[str, object] = {}
    secret_refs: dict[str, str] = {}
    outputs: dict[str, Mapping[str, object]] = {}
    completed: set[str] = set()
    failed: set[str] = set()
    open_steps: list[str] = []  # intended, no result yet, in order
    for rec in log.records:
        event, step = rec.get("event"), rec.get("step")
        if event == "answer" and isinstance(rec.get("input"), str):
            name = rec["input"]
            answers.pop(name, None)
            secret_refs.pop(name, None)
            if isinstance(rec.get("reference"), str):
                secret_refs[name] = rec["reference"]
            elif "value" in rec and not rec.get("secret") and _unmasked(rec["value"]):
                answers[name] = rec["value"]
        elif not isinstance(step, str):
            continue
        elif event == "step.intent":
            open_steps = [s for s in open_steps if s != step] + [step]
        elif event in ("step.result", "step.skipped"):
            open_steps = [s for s in open_steps if s != step]
            status = str(rec.get("status", "")) if event == "step.result" else "skipped"
            completed.discard(step)
            failed.discard(step)
            outputs.pop(step, None)
            if status in DONE_STATUSES:
                completed.add(step)
                found = rec.get("outputs")
                outputs[step] = {k: v for k, v in found.items() if _unmasked(v)} if isinstance(found, dict) else {}
            elif status == "failed":
                failed.add(step)
    header = log.header
    return ResumeState(
        run_id=log.run_id,
        checklist=str(header.get("checklist", "")),
        checklist_sha256=str(header.get("checklist_sha256", "")),
        target=str(header.get("target", "")),
        answers=answers,
        secret_refs=secret_refs,
        outputs=outputs,
        completed=frozenset(completed),
        failed=frozenset(failed),
        in_flight=open_steps[-1] if open_steps else None,
    )
