"""The journal's writer: one hash-chained, fsync'ed JSONL record per event of a run.

Stdlib only (and the package's template engine, for the target). Format and checks: design.md section 5,
research/reliability-notes.md section 4. A record's hash covers its canonical JSON (`canonical`,
`record_hash`); `journal.verify` checks the chain.
"""

from __future__ import annotations

import errno
import getpass
import hashlib
import json
import math
import os
import re
import socket
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path, PurePath

from kensium_provision import __version__
from kensium_provision.errors import ExitCode, KprovError
from kensium_provision.journal.files import check_run_id, heads_dir, runs_dir
from kensium_provision.secret import MASK

__all__ = ["GENESIS", "HEADER_FIELDS", "JournalWriteError", "JournalWriter", "Redact", "append_line", "canonical",
           "check_writable", "os_user", "record_hash"]

GENESIS = "0" * 64
# What the header (`run.started`) must carry; the writer adds `kprov_version` and `os_user` itself.
HEADER_FIELDS = (
    "who", "account", "region", "environment", "checklist", "checklist_sha256", "mode", "target", "command",
)
_CHAIN = frozenset({"seq", "ts", "run_id", "event", "prev", "hash"})  # written by the writer, never by callers
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


class _Target:
    """The header's target template, rendered once the answers it names are known (each at most once)."""

    def __init__(self, template: str) -> None:
        self.template = template
        self.values: dict[str, object] = {}
        self.recorded = ""

    def answered(self, name: object, value: object) -> str | None:
        """The newly rendered target after this answer, or None (still incomplete, or unchanged)."""
        from kensium_provision.template import TemplateError, render

        if not isinstance(name, str):
            return None
        if type(value) in (str, int) and value != MASK:  # never a secret, a flag or a placeholder text
            self.values[name] = value
        else:
            self.values.pop(name, None)
        try:
            rendered = render(self.template, self.values)
        except TemplateError:
            return None
        if rendered == self.recorded:
            return None
        self.recorded = rendered
        return rendered


class JournalWriteError(KprovError):
    """The journal could not be written (disk full, a read-only or missing state dir).

    Exit 3 when the run's first record could not be written (nothing was changed: the journal comes
    before any act), exit 1 once the run has begun. The record being written is cut back, so the file
    holds whole records only.
    """

    def __init__(self, path: Path, exc: OSError, *, started: bool) -> None:
        reason = exc.strerror or str(exc)
        code = f" [{errno.errorcode[exc.errno]}]" if exc.errno is not None and exc.errno in errno.errorcode else ""
        what = (f"the journal of this run stopped at {path}: {reason}{code}; the run stopped with it"
                if started else f"cannot write the journal {path}: {reason}{code}; nothing was changed")
        super().__init__(what, hint="free space in (or fix the permissions of) the state dir (KPROV_STATE_DIR)"
                         + (", then `kprov resume` the run" if started else ", then run again"))
        self.exit_code = ExitCode.FAILED if started else ExitCode.INVALID
        self.cause = exc


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def append_line(fd: int, data: bytes) -> None:
    """Whole lines or nothing: a failed write (ENOSPC, EIO) is cut back to where it began, then raised."""
    start = os.fstat(fd).st_size
    try:
        _write_all(fd, data)  # one write per line, O_APPEND: no interleaving
        os.fsync(fd)
    except OSError:
        try:
            os.ftruncate(fd, start)
            os.fsync(fd)
        except OSError:  # pragma: no cover - the reader reports a torn last line
            pass
        raise


def check_writable(state_dir: Path) -> None:
    """`JournalWriteError` (exit 3) unless a journal can be written in the state dir. A real write (of a
    probe file, removed at once) in the runs folder or, before the first run, the nearest folder that
    exists: a read-only mount or a full disk shows for root too (root ignores permission bits), and
    nothing is left behind when the run is then refused for another reason."""
    folder = runs_dir(state_dir)
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    probe = folder / f".kprov-writable-{os.getpid()}-{threading.get_ident()}"
    try:
        if not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder))
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _write_all(fd, b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
            probe.unlink(missing_ok=True)
    except OSError as exc:
        raise JournalWriteError(state_dir, exc, started=False) from None


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

    Fields the readers rely on: `answer` (input, value | reference), `target` (target), `step.intent`
    (step, phase, risk, params), `step.result` (step, status, outputs, error), `step.skipped` (step, reason),
    `interrupted`, `run.finished` (outcome).

    A header `target` that is a template (`client:{{ org_id }}`) is journaled rendered as soon as the answers
    it names are recorded: the `answer` record that completes it carries `target` too (one record per call,
    so a shipped copy has them all). A run stopped at a later prompt still says what it was for.
    """

    def __init__(
        self,
        state_dir: Path,
        run_id: str,
        *,
        header: Mapping[str, object],
        redact: Redact | None = None,
        clock: Callable[[], datetime] = _now,
        anchor_key: bytes | None = None,
    ) -> None:
        missing = [name for name in HEADER_FIELDS if name not in header]
        if missing:
            raise ValueError(f"the journal header lacks {', '.join(missing)}")
        clash = sorted(_CHAIN & header.keys())
        if clash:  # checked before the file exists, so a bad header leaves no empty journal behind
            raise ValueError(f"{', '.join(clash)} are written by the journal itself")
        self.run_id = check_run_id(run_id)
        self._redact, self._clock = redact, clock
        self._lock = threading.Lock()
        self.path = runs_dir(state_dir) / f"{run_id}.jsonl"
        self.head_path = heads_dir(state_dir) / f"{run_id}.head"
        self.seq, self.head = 0, GENESIS
        self.last: Mapping[str, object] = {}
        self._broken: JournalWriteError | None = None
        self._fd: int | None = None
        self._state_dir = state_dir
        self.anchor_key = anchor_key  # HMAC key of the ledger's run.closed entry; may be set once known
        template = header.get("target")
        self._target = _Target(template) if isinstance(template, str) and "{{" in template else None
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        try:
            _private_dir(self.path.parent)
            _private_dir(self.head_path.parent)
            self._fd = os.open(self.path, flags, 0o600)  # O_EXCL: never append to another run's file
            _fsync_dir(self.path.parent)
        except FileExistsError as exc:
            if self.path.exists():
                raise
            raise JournalWriteError(self.path, exc, started=False) from None  # a file where a folder should be
        except OSError as exc:
            raise JournalWriteError(self.path, exc, started=False) from None
        try:
            self.record("run.started", **{"kprov_version": __version__, "os_user": os_user(), **header})
            with self._lock:
                self._ledger("run.opened", state_dir)
        except JournalWriteError as exc:  # no header, no run (exit 3): leave no empty journal behind
            self._discard()
            raise JournalWriteError(self.path, exc.cause, started=False) from None

    def record(self, event: str, **fields: object) -> None:
        if not _EVENT.match(event):
            raise ValueError(f"{event!r} is not an event name")
        clash = sorted(_CHAIN & fields.keys())
        if clash:
            raise ValueError(f"{', '.join(clash)} are written by the journal itself")
        with self._lock:
            if self._broken is not None:
                raise self._broken
            if self._fd is None:
                raise ValueError(f"the journal of run {self.run_id} is closed")
            rec: dict[str, object] = {"seq": self.seq + 1, "ts": _timestamp(self._clock()), "run_id": self.run_id,
                                      "event": event}
            rec.update({name: _plain(value, self._redact) for name, value in fields.items()})
            if self._target is not None and event == "answer" and "target" not in rec:
                rendered = self._target.answered(rec.get("input"), rec.get("value"))
                if rendered is not None:
                    rec["target"] = rendered
            rec["prev"] = self.head
            rec["hash"] = record_hash(rec)
            line = json.dumps(rec, separators=(",", ":"), ensure_ascii=False) + "\n"
            self._append(self._fd, line.encode())
            self.seq, self.head, self.last = self.seq + 1, str(rec["hash"]), rec
            try:
                self._write_head()
            except OSError as exc:  # the record stands; the head one behind is what a crash leaves too
                raise self._broke(exc) from None

    def _broke(self, exc: OSError) -> JournalWriteError:
        self._broken = JournalWriteError(self.path, exc, started=self.seq > 0)
        return self._broken

    def _append(self, fd: int, data: bytes) -> None:
        try:
            append_line(fd, data)
        except OSError as exc:
            raise self._broke(exc) from None

    def _ledger(self, event: str, state_dir: Path) -> None:
        """The run's entry in the state dir's ledger (`journal.ledger`), after its record is written."""
        from kensium_provision.journal.ledger import append

        try:
            append(state_dir, event, run_id=self.run_id, journal_seq=self.seq, journal_hash=self.head,
                   ts=str(self.last["ts"]), key=self.anchor_key)
        except OSError as exc:
            raise self._broke(exc) from None

    def _discard(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        for path in (self.path, self.head_path):
            path.unlink(missing_ok=True)

    def _write_head(self) -> None:
        # Written after the record: a crash in between leaves the head one behind, which verify accepts.
        tmp = self.head_path.with_name(f".{self.head_path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, json.dumps({"run_id": self.run_id, "seq": self.seq, "hash": self.head}).encode())
            os.fsync(fd)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)
        os.replace(tmp, self.head_path)
        _fsync_dir(self.head_path.parent)

    def close(self, outcome: str, **fields: object) -> None:
        """Write `run.finished` and close the file; a second call does nothing, nor one after a failed write
        (its error is already on its way: the journal then ends unfinished, as after a crash)."""
        if self._fd is None:
            return
        try:
            if self._broken is None:
                self.record("run.finished", outcome=outcome, **fields)
                with self._lock:
                    self._ledger("run.closed", self._state_dir)
        finally:
            with self._lock:
                fd, self._fd = self._fd, None
                if fd is not None:
                    os.close(fd)

    @property
    def closed(self) -> bool:
        return self._fd is None
