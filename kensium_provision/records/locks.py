"""One lock per target (`client:acme`, `shared:rds:db-POS-01`): local files in the sandbox, DynamoDB for a team.

Locks are leases: they expire unless renewed, and only their owner (matched by lock id) renews or releases them.
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

from kensium_provision.errors import AwsError, InputError, LockError

__all__ = ["DynamoLocks", "Heartbeat", "LocalLocks", "LockInfo", "Locks", "check_target"]

_TARGET = re.compile(r"^[a-z]+(:[A-Za-z0-9._-]+)+$")
_MAX_TARGET = 200
_ACQUIRE = "attribute_not_exists(LockTarget) OR ExpiresAt < :now"
_MINE = "LockId = :mine"

Clock = Callable[[], float]  # seconds since the epoch, like time.time


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
    """Who holds a target: the caller ARN (`owner`), `who` as user@host, the process, the run, the lease."""

    lock_id: str
    target: str
    owner: str
    who: str
    pid: int
    run_id: str
    created: datetime
    expires: datetime
    heartbeat: datetime

    @property
    def host(self) -> str:
        return self.who.rpartition("@")[2]

    @property
    def lease(self) -> timedelta:
        return self.expires - self.heartbeat

    def expired(self, now: datetime) -> bool:
        return self.expires < now

    def holder(self) -> str:
        return f"{self.owner} ({self.who}, run {self.run_id}, since {self.created:%Y-%m-%d %H:%M} UTC)"

    def to_json(self) -> dict[str, object]:
        return {"lock_id": self.lock_id, "target": self.target, "owner": self.owner, "who": self.who,
                "pid": self.pid, "run_id": self.run_id, "created": self.created.isoformat(),
                "expires": self.expires.isoformat(), "heartbeat": self.heartbeat.isoformat()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LockInfo:
        return cls(lock_id=str(data["lock_id"]), target=str(data["target"]), owner=str(data["owner"]),
                   who=str(data["who"]), pid=int(data["pid"]), run_id=str(data["run_id"]),
                   created=datetime.fromisoformat(data["created"]), expires=datetime.fromisoformat(data["expires"]),
                   heartbeat=datetime.fromisoformat(data["heartbeat"]))


def _new(target: str, *, owner: str, run_id: str, ttl_seconds: float, now: float) -> LockInfo:
    check_target(target)
    if ttl_seconds <= 0:
        raise ValueError("a lock's ttl must be positive")
    return LockInfo(lock_id=str(uuid.uuid4()), target=target, owner=owner, who=_whoami(), pid=os.getpid(),
                    run_id=run_id, created=_at(now), expires=_at(now + ttl_seconds), heartbeat=_at(now))


def _held(holder: LockInfo) -> LockError:
    return LockError(
        f"{holder.target} is locked by {holder.holder()}; wait for that run, "
        f"or break the lock with: kprov lock break {holder.lock_id}",
        hint=f"its lease runs until {holder.expires:%Y-%m-%d %H:%M:%S} UTC; a crashed run's lock frees itself then",
    )


def _lost(info: LockInfo, holder: LockInfo | None) -> LockError:
    now = f"it is now held by {holder.holder()}" if holder else "nobody holds it now"
    return LockError(f"this run no longer holds the lock on {info.target} (lock {info.lock_id}): it was broken, "
                     f"or it expired and was taken over; {now}")


class Locks(Protocol):
    """What the engine and `kprov lock` use; LocalLocks and DynamoLocks satisfy it."""

    def acquire(self, target: str, *, owner: str, run_id: str, ttl_seconds: float) -> LockInfo: ...

    def heartbeat(self, info: LockInfo) -> LockInfo: ...

    def release(self, info: LockInfo) -> None: ...

    def list(self) -> list[LockInfo]: ...

    def break_(self, lock_id: str) -> LockInfo: ...


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

    Each target has a file created with O_CREAT|O_EXCL. A `flock` on `dir/.guard` serialises the
    check-and-take-over of stale locks between processes, so two takers never both win.
    """

    def __init__(self, dir: Path, *, clock: Clock = time.time) -> None:
        self.dir, self._clock = dir, clock

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

    def _stale(self, holder: LockInfo) -> bool:
        if holder.expired(_at(self._clock())):
            return True
        return holder.host == socket.gethostname() and not _pid_alive(holder.pid)

    def acquire(self, target: str, *, owner: str, run_id: str, ttl_seconds: float) -> LockInfo:
        info = _new(target, owner=owner, run_id=run_id, ttl_seconds=ttl_seconds, now=self._clock())
        path, data = self.path(target), json.dumps(info.to_json()).encode()
        with self._guard():
            try:
                _write_new(path, data)
            except FileExistsError:
                holder = self._read(path)
                if holder is not None and not self._stale(holder):
                    raise _held(holder) from None
                path.unlink()  # expired, dead or torn; the guard means nobody else is deciding now
                _write_new(path, data)
        return info

    def heartbeat(self, info: LockInfo) -> LockInfo:
        path = self.path(info.target)
        now = self._clock()
        renewed = replace(info, heartbeat=_at(now), expires=_at(now) + info.lease)
        with self._guard():
            holder = self._read(path)
            if holder is None or holder.lock_id != info.lock_id:
                raise _lost(info, holder)
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
            _write_new(tmp, json.dumps(renewed.to_json()).encode())
            os.replace(tmp, path)
        return renewed

    def release(self, info: LockInfo) -> None:
        path = self.path(info.target)
        with self._guard():
            holder = self._read(path)
            if holder is None or holder.lock_id != info.lock_id:
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
        raise LockError(f"no lock has the id {lock_id}", hint="kprov lock list shows the locks and their ids")


# ---- DynamoDB --------------------------------------------------------------------------------------------


def _code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError (duck-typed: boto3 is not imported here)."""
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else None


def _aws(exc: BaseException, operation: str) -> AwsError:
    error = getattr(exc, "response", {}).get("Error", {})
    return AwsError(service="dynamodb", operation=operation, code=str(error.get("Code", "Unknown")),
                    message=str(error.get("Message", exc)))


def _num(moment: datetime) -> dict[str, str]:
    return {"N": f"{moment.timestamp():.3f}"}


def _item(info: LockInfo) -> dict[str, dict[str, str]]:
    return {"LockTarget": {"S": info.target}, "LockId": {"S": info.lock_id}, "Owner": {"S": info.owner},
            "Who": {"S": info.who}, "Pid": {"N": str(info.pid)}, "RunId": {"S": info.run_id},
            "CreatedAt": _num(info.created), "ExpiresAt": _num(info.expires), "HeartbeatAt": _num(info.heartbeat)}


def _from_item(item: dict[str, dict[str, str]]) -> LockInfo:
    def seconds(name: str) -> datetime:
        return _at(float(item[name]["N"]))

    return LockInfo(lock_id=item["LockId"]["S"], target=item["LockTarget"]["S"], owner=item["Owner"]["S"],
                    who=item["Who"]["S"], pid=int(item["Pid"]["N"]), run_id=item["RunId"]["S"],
                    created=seconds("CreatedAt"), expires=seconds("ExpiresAt"), heartbeat=seconds("HeartbeatAt"))


class DynamoLocks:
    """Locks in a DynamoDB table keyed by `LockTarget`: conditional writes, a lease, owner-conditioned release.

    `ExpiresAt` is compared in the conditions; DynamoDB's own TTL (lazy) must not be the lock timeout.
    """

    def __init__(self, client: Any, table: str, *, clock: Clock = time.time) -> None:
        self._client, self.table, self._clock = client, table, clock
        self._all_old: bool | None = None

    def _returns_holder(self) -> bool:
        """Whether this botocore can send ReturnValuesOnConditionCheckFailure (added mid-2023)."""
        if self._all_old is None:
            try:
                members = self._client.meta.service_model.operation_model("PutItem").input_shape.members
                self._all_old = "ReturnValuesOnConditionCheckFailure" in members
            except Exception:  # a fake or an unusual client: fall back to reading the holder
                self._all_old = False
        return self._all_old

    def _key(self, target: str) -> dict[str, dict[str, str]]:
        return {"LockTarget": {"S": target}}

    def ensure_table(self) -> bool:
        """Create the table (on-demand) if it is missing; True when it was created."""
        try:
            self._client.describe_table(TableName=self.table)
            return False
        except Exception as exc:
            if _code(exc) != "ResourceNotFoundException":
                raise _aws(exc, "DescribeTable") if _code(exc) else exc
        try:
            self._client.create_table(
                TableName=self.table, BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": "LockTarget", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "LockTarget", "KeyType": "HASH"}],
            )
        except Exception as exc:
            if _code(exc) != "ResourceInUseException":  # another operator created it just now
                raise _aws(exc, "CreateTable") if _code(exc) else exc
        self._client.get_waiter("table_exists").wait(TableName=self.table, WaiterConfig={"Delay": 2, "MaxAttempts": 60})
        return True

    def _holder(self, target: str) -> LockInfo | None:
        item = self._client.get_item(TableName=self.table, Key=self._key(target), ConsistentRead=True).get("Item")
        return _from_item(item) if item else None

    def acquire(self, target: str, *, owner: str, run_id: str, ttl_seconds: float) -> LockInfo:
        for _ in range(3):  # without ALL_OLD the holder may leave between the put and the read
            now = self._clock()
            info = _new(target, owner=owner, run_id=run_id, ttl_seconds=ttl_seconds, now=now)
            extra = {"ReturnValuesOnConditionCheckFailure": "ALL_OLD"} if self._returns_holder() else {}
            try:
                self._client.put_item(TableName=self.table, Item=_item(info), ConditionExpression=_ACQUIRE,
                                      ExpressionAttributeValues={":now": {"N": f"{now:.3f}"}}, **extra)
                return info
            except Exception as exc:
                if _code(exc) != "ConditionalCheckFailedException":
                    raise _aws(exc, "PutItem") if _code(exc) else exc
                item = getattr(exc, "response", {}).get("Item")
                holder = _from_item(item) if item else self._holder(target)
                if holder is not None:
                    raise _held(holder) from None
        raise LockError(f"could not lock {target}: it kept changing hands, try again")

    def heartbeat(self, info: LockInfo) -> LockInfo:
        now = _at(self._clock())
        renewed = replace(info, heartbeat=now, expires=now + info.lease)
        try:
            self._client.update_item(
                TableName=self.table, Key=self._key(info.target), ConditionExpression=_MINE,
                UpdateExpression="SET ExpiresAt = :expires, HeartbeatAt = :now",
                ExpressionAttributeValues={":mine": {"S": info.lock_id}, ":expires": _num(renewed.expires),
                                           ":now": _num(now)},
            )
        except Exception as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise _aws(exc, "UpdateItem") if _code(exc) else exc
            raise _lost(info, self._holder(info.target)) from None
        return renewed

    def release(self, info: LockInfo) -> None:
        try:
            self._client.delete_item(TableName=self.table, Key=self._key(info.target), ConditionExpression=_MINE,
                                     ExpressionAttributeValues={":mine": {"S": info.lock_id}})
        except Exception as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise _aws(exc, "DeleteItem") if _code(exc) else exc
            raise _lost(info, self._holder(info.target)) from None

    def _scan(self, **kwargs: Any) -> Iterator[LockInfo]:
        start: dict[str, Any] = {}
        while True:
            page = self._client.scan(TableName=self.table, ConsistentRead=True, **kwargs, **start)
            yield from (_from_item(item) for item in page.get("Items", ()))
            if "LastEvaluatedKey" not in page:
                return
            start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}

    def list(self) -> list[LockInfo]:
        try:
            return sorted(self._scan(), key=lambda info: info.target)
        except Exception as exc:
            raise _aws(exc, "Scan") if _code(exc) else exc

    def break_(self, lock_id: str) -> LockInfo:
        try:
            found = next(self._scan(FilterExpression=_MINE, ExpressionAttributeValues={":mine": {"S": lock_id}}), None)
        except Exception as exc:
            raise _aws(exc, "Scan") if _code(exc) else exc
        if found is None:
            raise LockError(f"no lock has the id {lock_id}", hint="kprov lock list shows the locks and their ids")
        try:
            self._client.delete_item(TableName=self.table, Key=self._key(found.target), ConditionExpression=_MINE,
                                     ExpressionAttributeValues={":mine": {"S": lock_id}})
        except Exception as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise _aws(exc, "DeleteItem") if _code(exc) else exc
            raise LockError(f"lock {lock_id} on {found.target} was released or taken over meanwhile") from None
        return found


# ---- keeping a lease alive -------------------------------------------------------------------------------


class Heartbeat:
    """Renews a lock every ttl/3 in a daemon thread while a long step waits.

    The thread stops at the first LockError (the lock was lost) or after `max_failures` other errors in a
    row; `check()` then raises, so the engine stops at the next step boundary.
    """

    def __init__(self, locks: Locks, info: LockInfo, *, interval: float | None = None, max_failures: int = 3) -> None:
        self._locks, self.info, self._max = locks, info, max_failures
        self._interval = interval if interval is not None else info.lease.total_seconds() / 3
        self._stop = threading.Event()
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

    def check(self) -> None:
        """Raise the LockError if the lock was lost."""
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        failures = 0
        while not self._stop.wait(self._interval):
            try:
                self.info = self._locks.heartbeat(self.info)
                failures = 0
            except LockError as exc:
                self.error = exc
                return
            except Exception as exc:  # a throttle or a dropped connection: retry before giving up
                failures += 1
                if failures >= self._max:
                    self.error = LockError(f"could not renew the lock on {self.info.target} {failures} times: {exc}")
                    return
