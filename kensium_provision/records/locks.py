"""One lock per target (`client:acme`, `shared:rds:db-POS-01`): local files in the sandbox, DynamoDB for a team.

Locks are leases fenced by a record version, never by clock agreement (the scheme of the Amazon DynamoDB
Lock Client, https://github.com/awslabs/amazon-dynamodb-lock-client#readme, and of Chubby):

- every write of a lock carries its owner id (lock id, run id, holder ARN) and a `version`; a renewal
  increments the version, conditional on the owner id and the version its holder last saw; a release
  is conditional on the owner id;
- the wall-clock times in a lock (`created`, `heartbeat`, `expires`) are the holder's own, for people
  to read. Another client's clock may be minutes off, so it never decides that a lease is over: a
  waiter takes a lock only after it has itself seen the same version unchanged for longer than the
  lease plus a skew bound, measured on its own monotonic clock, and then only with a write conditional
  on that version. A live holder renews every lease/3, so the waiter sees a new version and is refused.
  The waiter's clock only decides whether watching is worth it (the lease looks over to it): a fast
  clock makes a waiter watch and be refused, a slow one makes it wait longer; neither takes a live lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from kensium_provision.aws.call import call, error_code, pages
from kensium_provision.aws.errors import sdk_errors, translate
from kensium_provision.errors import AwsError, InputError, KprovError, LockError
from kensium_provision.records.tables import NO_TABLE, ensure_table, table_exists

__all__ = ["DEFAULT_TABLE", "SKEW_SECONDS", "DynamoLocks", "Heartbeat", "LocalLocks", "LockInfo", "Locks",
           "Notify", "check_target"]

DEFAULT_TABLE = "kprov-locks"
# What a waiter adds to a lease before it takes the lock over: more than clock-rate drift (NTP keeps it
# under 0.5 ms/s), a request's round trip and a pause of the holder between its renewals.
SKEW_SECONDS = 60.0
_TARGET = re.compile(r"^[a-z]+(:[A-Za-z0-9._-]+)+$")
_MAX_TARGET = 200
_CHANGED = "ConditionalCheckFailedException"

Clock = Callable[[], float]  # seconds: time.time (wall clock) or time.monotonic
Notify = Callable[[str], None]  # what an acquirer tells the operator while it watches a lock


def check_target(target: str) -> str:
    """The target if it is a lock target (`kind:name[:name…]`), else an InputError."""
    if len(target) > _MAX_TARGET or not _TARGET.match(target):
        raise InputError(f"{target!r} is not a lock target (like client:acme or shared:rds:db-POS-01)")
    return target


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(round(seconds, 3), UTC)  # milliseconds, what DynamoDB keeps


def _whoami() -> str:
    from kensium_provision.journal.writer import os_user

    return os_user()


@dataclass(frozen=True, slots=True, kw_only=True)
class LockInfo:
    """Who holds a target: the caller ARN (`owner`), `who` as user@host, the process, the run, the lease,
    and the `version` every renewal increments (the fence)."""

    lock_id: str
    target: str
    owner: str
    who: str
    pid: int
    run_id: str
    created: datetime
    expires: datetime
    heartbeat: datetime
    version: int = 0

    @property
    def host(self) -> str:
        return self.who.rpartition("@")[2]

    @property
    def lease(self) -> timedelta:
        """How long the holder says its lease lasts (a difference of its own clock's times: no clock agreement)."""
        return self.expires - self.heartbeat

    def expired(self, now: datetime) -> bool:
        """Whether the lease looks over by the clock that gives `now`: a hint, never a reason to take it."""
        return self.expires < now

    def same_owner(self, other: LockInfo) -> bool:
        return (self.lock_id, self.run_id, self.owner) == (other.lock_id, other.run_id, other.owner)

    def same_version(self, other: LockInfo) -> bool:
        return self.same_owner(other) and self.version == other.version

    def holder(self) -> str:
        return f"{self.owner} ({self.who}, run {self.run_id}, since {self.created:%Y-%m-%d %H:%M} UTC)"

    def to_json(self) -> dict[str, object]:
        return {"lock_id": self.lock_id, "target": self.target, "owner": self.owner, "who": self.who,
                "pid": self.pid, "run_id": self.run_id, "created": self.created.isoformat(),
                "expires": self.expires.isoformat(), "heartbeat": self.heartbeat.isoformat(),
                "version": self.version}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LockInfo:
        return cls(lock_id=str(data["lock_id"]), target=str(data["target"]), owner=str(data["owner"]),
                   who=str(data["who"]), pid=int(data["pid"]), run_id=str(data["run_id"]),
                   created=datetime.fromisoformat(data["created"]), expires=datetime.fromisoformat(data["expires"]),
                   heartbeat=datetime.fromisoformat(data["heartbeat"]), version=int(data.get("version", 0)))


def _new(target: str, *, owner: str, run_id: str, ttl_seconds: float, now: float) -> LockInfo:
    check_target(target)
    if ttl_seconds <= 0:
        raise ValueError("a lock's ttl must be positive")
    return LockInfo(lock_id=str(uuid.uuid4()), target=target, owner=owner, who=_whoami(), pid=os.getpid(),
                    run_id=run_id, created=_at(now), expires=_at(now + ttl_seconds), heartbeat=_at(now))


def _renewed(info: LockInfo, now: float) -> LockInfo:
    return replace(info, heartbeat=_at(now), expires=_at(now) + info.lease, version=info.version + 1)


def _held(holder: LockInfo) -> LockError:
    lease = holder.lease.total_seconds()
    return LockError(
        f"{holder.target} is locked by {holder.holder()}; wait for that run, "
        f"or break the lock with: kprov lock break {holder.lock_id}",
        hint=f"its holder renews its {lease:.0f} s lease every {lease / 3:.0f} s (last at "
             f"{holder.heartbeat:%Y-%m-%d %H:%M:%S} UTC by its clock); a crashed run's lock is taken over by the "
             f"next run once that run has seen it unrenewed for the lease plus {SKEW_SECONDS:.0f} s",
    )


def _lost(info: LockInfo, holder: LockInfo | None) -> LockError:
    now = f"it is now held by {holder.holder()}" if holder else "nobody holds it now"
    return LockError(f"this run no longer holds the lock on {info.target} (lock {info.lock_id}): it was broken, "
                     f"or it expired and was taken over; {now}",
                     hint=f"the run stopped before its next change; `kprov lock list` shows who holds {info.target}, "
                          f"and `kprov resume {info.run_id}` finishes this run once nobody else is changing it")


def _no_lock(lock_id: str) -> LockError:
    return LockError(f"no lock has the id {lock_id}", hint="kprov lock list shows the locks and their ids")


class Locks(Protocol):
    """What the engine and `kprov lock` use; LocalLocks and DynamoLocks satisfy it."""

    def acquire(self, target: str, *, owner: str, run_id: str, ttl_seconds: float,
                notify: Notify | None = None) -> LockInfo: ...

    def heartbeat(self, info: LockInfo) -> LockInfo: ...

    def release(self, info: LockInfo) -> None: ...

    def list(self) -> list[LockInfo]: ...

    def break_(self, lock_id: str) -> LockInfo: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Watch:
    """How a waiter judges another's lease: on its own monotonic clock, with a skew bound (see the module)."""

    clock: Clock = time.time  # only to decide whether watching is worth it
    monotonic: Clock = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    skew_seconds: float = SKEW_SECONDS

    def outlast(self, holder: LockInfo, read: Callable[[], LockInfo | None], notify: Notify | None) -> LockInfo | None:
        """`holder` once this waiter has seen it unchanged for longer than its lease plus the skew bound;
        None if it went away meanwhile. A lease that does not look over, or a new version (a live holder
        renewed it), is refused at once with the holder named."""
        if not holder.expired(_at(self.clock())):
            raise _held(holder)
        wait = holder.lease.total_seconds() + self.skew_seconds
        if notify is not None:
            notify(f"{holder.target}: the lease of {holder.holder()} looks over by this machine's clock; watching it "
                   f"for {wait:.0f} s before taking it over (a live holder renews it meanwhile)")
        poll = min(10.0, max(wait / 10, 0.05))
        start = self.monotonic()  # after the read that saw `holder`: the later, the safer
        while (elapsed := self.monotonic() - start) <= wait:
            self.sleep(max(min(poll, wait - elapsed), 0.001))
            current = read()
            if current is None:
                return None
            if not current.same_version(holder):
                raise _held(current)
        return holder


# ---- local files -----------------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # fails if anyone holds the target
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalLocks:
    """Lock files in one directory, for one host (the sandbox).

    Each target has a file created with O_CREAT|O_EXCL. A `flock` on `dir/.guard` serialises every
    check-and-write (take-over, renewal, release) between processes, so two takers never both win. A
    holder on this host whose process is gone is stale at once; otherwise the lease is judged as in
    DynamoDB (`Watch`): a jump of this host's wall clock (a resumed VM, a hand-set date) takes no live lock.
    """

    def __init__(self, dir: Path, *, clock: Clock = time.time, watch: Watch | None = None) -> None:
        self.dir, self._clock = dir, clock
        self._watch = watch or Watch(clock=clock)

    def path(self, target: str) -> Path:
        """The target's file: readable, with no separators, and a digest so case-folding filesystems can't merge two."""
        check_target(target)
        digest = hashlib.sha256(target.encode()).hexdigest()[:16]
        return self.dir / f"{target.replace(':', '~')[:80]}.{digest}.lock"

    @contextmanager
    def _guard(self, *, shared: bool = False) -> Iterator[None]:
        import fcntl  # POSIX only, like the sandbox

        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.dir / ".guard", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the flock

    def _read(self, path: Path) -> LockInfo | None:
        try:
            return LockInfo.from_json(json.loads(path.read_bytes()))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):  # torn by a crash mid-write: nobody holds it
            return None

    def _read_shared(self, path: Path) -> LockInfo | None:
        with self._guard(shared=True):
            return self._read(path)

    def _claim(self, path: Path, info: LockInfo, seen: LockInfo | None) -> LockInfo | None:
        """Write `info` if the target is free, torn, held by a dead process here, or still exactly `seen`
        (watched out by `Watch`); None when written, else the holder."""
        data = json.dumps(info.to_json()).encode()
        with self._guard():
            try:
                _write_new(path, data)
                return None
            except FileExistsError:
                holder = self._read(path)
            dead = holder is not None and holder.host == socket.gethostname() and not _pid_alive(holder.pid)
            if holder is not None and not dead and not (seen is not None and holder.same_version(seen)):
                return holder
            path.unlink(missing_ok=True)  # the guard means nobody else is deciding now
            _write_new(path, data)
            return None

    def acquire(self, target: str, *, owner: str, run_id: str, ttl_seconds: float,
                notify: Notify | None = None) -> LockInfo:
        path, seen = self.path(target), None
        for _ in range(3):
            info = _new(target, owner=owner, run_id=run_id, ttl_seconds=ttl_seconds, now=self._clock())
            holder = self._claim(path, info, seen)
            if holder is None:
                return info
            seen = self._watch.outlast(holder, lambda: self._read_shared(path), notify)
        raise LockError(f"could not lock {target}: it kept changing hands, try again")

    def heartbeat(self, info: LockInfo) -> LockInfo:
        path = self.path(info.target)
        renewed = _renewed(info, self._clock())
        with self._guard():
            holder = self._read(path)
            if holder is None or not holder.same_version(info):
                raise _lost(info, holder)
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
            _write_new(tmp, json.dumps(renewed.to_json()).encode())
            os.replace(tmp, path)
        return renewed

    def release(self, info: LockInfo) -> None:
        path = self.path(info.target)
        with self._guard():
            holder = self._read(path)
            if holder is None or not holder.same_owner(info):
                raise _lost(info, holder)
            path.unlink()

    def list(self) -> list[LockInfo]:
        if not self.dir.is_dir():
            return []
        with self._guard(shared=True):
            found = [self._read(path) for path in self.dir.glob("*.lock")]
        return sorted((info for info in found if info is not None), key=lambda info: info.target)

    def break_(self, lock_id: str) -> LockInfo:
        with self._guard():
            for path in self.dir.glob("*.lock") if self.dir.is_dir() else ():
                holder = self._read(path)
                if holder is not None and holder.lock_id == lock_id:
                    path.unlink()
                    return holder
        raise _no_lock(lock_id)


# ---- DynamoDB --------------------------------------------------------------------------------------------

_NAMES = {"#target": "LockTarget", "#id": "LockId", "#run": "RunId", "#owner": "Owner", "#version": "Version",
          "#expires": "ExpiresAt", "#beat": "HeartbeatAt"}
_FREE = "attribute_not_exists(#target)"
_OWNED = "#id = :id AND #run = :run AND #owner = :owner"  # the owner id
_AT = _OWNED + " AND #version = :version"  # ... and the version its holder last saw


def _num(moment: datetime) -> dict[str, str]:
    return {"N": f"{moment.timestamp():.3f}"}


def _expression(condition: str, values: dict[str, dict[str, str]], update: str = "") -> dict[str, Any]:
    """The condition (and update) with the attribute names it uses: DynamoDB refuses unused ones."""
    used = set(re.findall(r"#\w+", condition + " " + update))
    params: dict[str, Any] = {"ConditionExpression": condition,
                              "ExpressionAttributeNames": {k: v for k, v in _NAMES.items() if k in used}}
    if values:
        params["ExpressionAttributeValues"] = values
    if update:
        params["UpdateExpression"] = update
    return params


def _owner_values(info: LockInfo, *, version: bool) -> dict[str, dict[str, str]]:
    values = {":id": {"S": info.lock_id}, ":run": {"S": info.run_id}, ":owner": {"S": info.owner}}
    return {**values, ":version": {"N": str(info.version)}} if version else values


def _item(info: LockInfo) -> dict[str, dict[str, str]]:
    return {"LockTarget": {"S": info.target}, "LockId": {"S": info.lock_id}, "Owner": {"S": info.owner},
            "Who": {"S": info.who}, "Pid": {"N": str(info.pid)}, "RunId": {"S": info.run_id},
            "CreatedAt": _num(info.created), "ExpiresAt": _num(info.expires), "HeartbeatAt": _num(info.heartbeat),
            "Version": {"N": str(info.version)}}


def _from_item(item: dict[str, dict[str, str]]) -> LockInfo:
    def seconds(name: str) -> datetime:
        return _at(float(item[name]["N"]))

    return LockInfo(lock_id=item["LockId"]["S"], target=item["LockTarget"]["S"], owner=item["Owner"]["S"],
                    who=item["Who"]["S"], pid=int(item["Pid"]["N"]), run_id=item["RunId"]["S"],
                    created=seconds("CreatedAt"), expires=seconds("ExpiresAt"), heartbeat=seconds("HeartbeatAt"),
                    version=int(item.get("Version", {}).get("N", "0")))


class DynamoLocks:
    """Locks in a DynamoDB table keyed by `LockTarget`, fenced by owner id and version (see the module).

    The table is created by the first `acquire` that finds it missing (only an apply acquires); DynamoDB's
    own TTL (lazy) is never the lock timeout.
    """

    def __init__(self, client: Any, table: str = DEFAULT_TABLE, *, clock: Clock = time.time,
                 watch: Watch | None = None) -> None:
        self._client, self.table, self._clock = client, table, clock
        self._watch = watch or Watch(clock=clock)
        self._all_old: bool | None = None

    def _returns_holder(self) -> bool:
        """Whether this botocore can send ReturnValuesOnConditionCheckFailure (added mid-2023)."""
        if self._all_old is None:
            model = getattr(getattr(self._client, "meta", None), "service_model", None)
            operation = getattr(model, "operation_model", None)  # a fake client has none: read the holder
            self._all_old = operation is not None and (
                "ReturnValuesOnConditionCheckFailure" in operation("PutItem").input_shape.members)
        return self._all_old

    def _key(self, target: str) -> dict[str, dict[str, str]]:
        return {"LockTarget": {"S": target}}

    def ensure_table(self) -> bool:
        """Create the table (on-demand) if it is missing; True when it was created."""
        return ensure_table(self._client, self.table, key="LockTarget", kind="locks")

    def table_exists(self) -> bool:
        return table_exists(self._client, self.table)

    def _holder(self, target: str) -> LockInfo | None:
        found = call(self._client, "GetItem", TableName=self.table, Key=self._key(target), ConsistentRead=True,
                     missing=NO_TABLE)
        item = (found or {}).get("Item")
        return _from_item(item) if item else None

    def _claim(self, info: LockInfo, seen: LockInfo | None) -> tuple[bool, LockInfo | None]:
        """Write `info` if the target is free or still exactly `seen`: (True, None); else (False, its holder,
        None when it has just gone). A missing table is created once (the account's first lock)."""
        condition, values = (_FREE, {}) if seen is None else (_AT, _owner_values(seen, version=True))
        extra = {"ReturnValuesOnConditionCheckFailure": "ALL_OLD"} if self._returns_holder() else {}
        params = {"TableName": self.table, "Item": _item(info), **_expression(condition, values), **extra}
        created = False
        while True:
            try:
                self._client.put_item(**params)
                return True, None
            except sdk_errors() as exc:  # raw, for the holder ALL_OLD puts in the error
                code = error_code(exc)
                if code == _CHANGED:
                    item = getattr(exc, "response", {}).get("Item")
                    return False, _from_item(item) if item else self._holder(info.target)
                if code in NO_TABLE and not created:
                    self.ensure_table()
                    created = True
                    continue
                # from None: the SDK's exception holds AWS's text unredacted; translate keeps it redacted
                raise translate(exc, service="dynamodb", operation="PutItem", resource=self.table) from None

    def acquire(self, target: str, *, owner: str, run_id: str, ttl_seconds: float,
                notify: Notify | None = None) -> LockInfo:
        seen: LockInfo | None = None
        for _ in range(3):  # without ALL_OLD the holder may leave between the put and the read
            info = _new(target, owner=owner, run_id=run_id, ttl_seconds=ttl_seconds, now=self._clock())
            written, holder = self._claim(info, seen)
            if written:
                return info
            seen = None if holder is None else self._watch.outlast(holder, lambda: self._holder(target), notify)
        raise LockError(f"could not lock {target}: it kept changing hands, try again")

    def _lost_if_changed(self, exc: AwsError, info: LockInfo) -> LockError:
        if exc.code not in (_CHANGED, *NO_TABLE):
            raise exc
        return _lost(info, self._holder(info.target))

    def heartbeat(self, info: LockInfo) -> LockInfo:
        renewed = _renewed(info, self._clock())
        values = {**_owner_values(info, version=True), ":next": {"N": str(renewed.version)},
                  ":expires": _num(renewed.expires), ":now": _num(renewed.heartbeat)}
        try:
            call(self._client, "UpdateItem", TableName=self.table, Key=self._key(info.target),
                 **_expression(_AT, values, "SET #version = :next, #expires = :expires, #beat = :now"))
        except AwsError as exc:
            raise self._lost_if_changed(exc, info) from None
        return renewed

    def release(self, info: LockInfo) -> None:
        try:
            call(self._client, "DeleteItem", TableName=self.table, Key=self._key(info.target),
                 **_expression(_OWNED, _owner_values(info, version=False)))
        except AwsError as exc:
            raise self._lost_if_changed(exc, info) from None

    def _scan(self, **kwargs: Any) -> Iterator[LockInfo]:
        """Every lock (no table: none), through one consistent, paginated Scan."""
        for item in pages(self._client, "Scan", "Items", missing=NO_TABLE, TableName=self.table,
                          ConsistentRead=True, **kwargs):
            yield _from_item(item)

    def list(self) -> list[LockInfo]:
        return sorted(self._scan(), key=lambda info: info.target)

    def break_(self, lock_id: str) -> LockInfo:
        found = next(self._scan(FilterExpression="#id = :id", ExpressionAttributeNames={"#id": "LockId"},
                                ExpressionAttributeValues={":id": {"S": lock_id}}), None)
        if found is None:
            raise _no_lock(lock_id)
        try:
            call(self._client, "DeleteItem", TableName=self.table, Key=self._key(found.target),
                 **_expression(_OWNED, _owner_values(found, version=False)))
        except AwsError as exc:
            if exc.code != _CHANGED:
                raise
            raise LockError(f"lock {lock_id} on {found.target} was released or taken over meanwhile") from None
        return found


# ---- keeping a lease alive -------------------------------------------------------------------------------


class Heartbeat:
    """Renews a lock every ttl/3 in a daemon thread while a long step waits, and on demand (`check`).

    The thread stops at the first LockError (the lock was lost) or after `max_failures` other errors in a
    row; `check()` then raises. The engine calls `check()` before every act, which renews the lease at
    once under the same mutex as the thread (so both renew from the version last seen): a lock broken or
    taken over since the last beat stops the run before its next change.
    """

    def __init__(self, locks: Locks, info: LockInfo, *, interval: float | None = None, max_failures: int = 3) -> None:
        self._locks, self.info, self._max = locks, info, max_failures
        self._interval = interval if interval is not None else info.lease.total_seconds() / 3
        self._stop = threading.Event()
        self._mutex = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"kprov-heartbeat-{info.target}", daemon=True)
        self.error: LockError | None = None

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _renew(self) -> None:
        with self._mutex:
            if self.error is None:
                self.info = self._locks.heartbeat(self.info)

    def check(self) -> None:
        """Raise a LockError if the lock is lost, or cannot be renewed now; else it is renewed."""
        if self.error is not None:
            raise self.error
        try:
            self._renew()
        except LockError as exc:
            self.error = exc
            self._stop.set()
            raise
        except (KprovError, OSError) as exc:  # AWS or the disk failed: no proof the lock is still ours
            raise LockError(f"could not renew the lock on {self.info.target}: {exc}; stopped before the next "
                            "change") from exc
        if self.error is not None:  # the thread lost it while we waited for the mutex
            raise self.error

    def _run(self) -> None:
        failures = 0
        while not self._stop.wait(self._interval):
            try:
                self._renew()
                failures = 0
            except LockError as exc:
                self.error = exc
                return
            except (KprovError, OSError) as exc:  # a throttle or a dropped connection: retry before giving up
                failures += 1
                if failures >= self._max:
                    self.error = LockError(f"could not renew the lock on {self.info.target} {failures} times: {exc}")
                    return
