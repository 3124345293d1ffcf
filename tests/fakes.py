"""Fakes for engine tests: a recording step type, scripted operator, memory vault, simple names."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from kensium_provision.errors import StepError
from kensium_provision.model import InputSpec, Mode
from kensium_provision.runtime import NullJournal, Runtime
from kensium_provision.steps.base import Difference, Param, Probe, StepContext


class FakeNames:
    """Every name is fine unless it starts with BAD."""

    def check(self, rule: str, value: str, context: Mapping[str, str] | None = None) -> list[str]:
        return [f"{value!r} breaks naming rule {rule}"] if value.startswith("BAD") else []

    def require(self, rule: str, value: str, context: Mapping[str, str] | None = None) -> str:
        from kensium_provision.errors import InputError

        if value.startswith("BAD"):
            raise InputError(f"{value!r} breaks naming rule {rule}")
        return value

    def example(self, rule: str, context: Mapping[str, str] | None = None) -> str:
        return "good-name"


class MemoryVault:
    def __init__(self) -> None:
        self.items: dict[str, Any] = {}

    def store(self, name: str, secret: Any, *, description: str, tags: Mapping[str, str]) -> str:
        self.items[name] = secret
        return f"memory:{name}"

    def fetch(self, reference: str) -> Any:
        return self.items[reference.removeprefix("memory:")]

    def find(self, name: str) -> str | None:
        return f"memory:{name}" if name in self.items else None


class ScriptedOperator:
    interactive = False

    def __init__(self, answers: Mapping[str, object] | None = None, confirm: bool = True) -> None:
        self.answers = dict(answers or {})
        self.confirm_answer = confirm
        self.asked: list[str] = []
        self.confirmed: list[str] = []

    def ask(self, spec: InputSpec, *, default: object, choices: Sequence[str],
            validate: Callable[[object], str | None]) -> object:
        self.asked.append(spec.id)
        return self.answers.get(spec.id, default)

    def confirm(self, message: str, *, default: bool = False, key: str = "") -> bool:
        self.confirmed.append(message)
        return self.confirm_answer

    def type_to_confirm(self, message: str, expected: str) -> bool:
        return self.answers.get("confirm_target") == expected

    def instruct(self, title: str, text: str) -> None:
        return None

    def show_secret_once(self, label: str, secret: Any) -> None:
        return None


class RecordingStep:
    """A step type over a dict 'world': done when world[key] == value. Records every call."""

    name: ClassVar[str] = "fake.set"
    summary: ClassVar[str] = "Set a key in a fake world."
    params: ClassVar[tuple[Param, ...]] = (Param(name="key"), Param(name="value", kind="any"))
    outputs: ClassVar[tuple[str, ...]] = ("key", "value")

    def __init__(self, world: dict[str, object]) -> None:
        self.world = world
        self.calls: list[tuple[str, str]] = []

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        self.calls.append(("probe", ctx.step_id))
        current = self.world.get(params["key"])
        done = current == params["value"]
        return Probe(done=done, current={"value": current} if current is not None else {},
                     desired={"value": params["value"]},
                     differences=() if done or current is None else (Difference("value", current, params["value"]),),
                     outputs={"key": params["key"], "value": current} if done else {})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        self.calls.append(("act", ctx.step_id))
        self.world[params["key"]] = params["value"]
        return {"key": params["key"], "value": params["value"]}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        self.calls.append(("verify", ctx.step_id))
        current = self.world.get(params["key"])
        return () if current == params["value"] else (Difference("value", current, params["value"]),)


class NoAws:
    def client(self, service: str) -> Any:
        raise AssertionError(f"no AWS in this test (asked for {service})")


def make_runtime(mode: Mode, operator: Any = None, **kwargs: Any) -> Runtime:
    return Runtime(mode=mode, run_id="run-test", aws=NoAws(), operator=operator or ScriptedOperator(),
                   vault=MemoryVault(), names=FakeNames(), journal=kwargs.pop("journal", NullJournal()),
                   assume_yes=kwargs.pop("assume_yes", True), **kwargs)


# What steps.rotation.rotate_login_script sends.
_ALTER_LOGIN = re.compile(r"SET NOCOUNT ON;\nUSE \[master\];\n"
                          r"ALTER LOGIN \[([^\]]+)\] WITH PASSWORD = N'((?:[^']|'')*)';")


class FileSqlServer:
    """A fake SQL Server whose logins live in a JSON file, so it outlives a `kprov` process killed with -9.

    No SQL Server runs on the test machine; this one knows each login's password and exactly what
    `sql.rotate-login` sends: a login (refused with the wrong password, as a driver refuses it) and
    `ALTER LOGIN [x] WITH PASSWORD = N'...'`. Anything else is refused, so a new statement is noticed.
    In-process it is the `sql.connect` setting; in a `kprov` subprocess it is the `pymssql` module (see
    `pymssql_shim`). `events` in the file records each login and ALTER, in order, without the passwords.
    A `kill-before` or `kill-after` file beside it holding part of a statement (e.g. `ALTER LOGIN`) has the
    process SIGKILL itself just before that statement lands, or just after (the server changed, the answer
    lost with kprov).
    """

    def __init__(self, path: Any, on_alter: Callable[[str, str], None] | None = None) -> None:
        self.path = Path(path)
        self.on_alter = on_alter  # called before the ALTER lands: (login, new password)

    def state(self) -> dict[str, Any]:
        return dict(json.loads(self.path.read_text())) if self.path.exists() else {"logins": {}, "events": []}

    def _write(self, state: Mapping[str, Any]) -> None:
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(state))
        os.replace(partial, self.path)  # whole or not at all, whenever the process dies

    def password(self, login: str) -> str | None:
        found = self.state()["logins"].get(login)
        return None if found is None else str(found)

    def set_password(self, login: str, password: str) -> None:
        state = self.state()
        state["logins"][login] = password
        self._write(state)

    def events(self) -> list[list[str]]:
        return [list(e) for e in self.state()["events"]]

    def _event(self, *event: str) -> None:
        state = self.state()
        state["events"].append(list(event))
        self._write(state)

    def connect(self, *, server: str, port: int, user: str, password: Any, **_: Any) -> _FileSqlConnection:
        given = password.reveal() if hasattr(password, "reveal") else str(password)
        if self.password(user) != given:
            self._event("login refused", user)
            if hasattr(password, "reveal"):  # the `sql.connect` callable: it fails as sql._open wraps a driver
                raise StepError(f"cannot connect to SQL Server {server}:{port} as {user}: Login failed")
            raise PermissionError(f"Login failed for user '{user}'.")  # the pymssql driver's own failure
        self._event("login", user)
        return _FileSqlConnection(self)

    def execute(self, sql: str) -> None:
        m = _ALTER_LOGIN.fullmatch(sql)
        if m is None:
            raise ValueError(f"the fake SQL Server does not know this statement: {sql[:40]!r}")
        login, new = m[1], m[2].replace("''", "'")
        if self.password(login) is None:
            raise ValueError(f"Cannot alter the login '{login}', because it does not exist.")
        if self.on_alter is not None:
            self.on_alter(login, new)
        self._killed("kill-before", sql)
        self.set_password(login, new)
        self._event("alter", login)
        self._killed("kill-after", sql)

    def _killed(self, when: str, sql: str) -> None:
        """SIGKILL this process, once, when the `when` file beside the logins names part of `sql`."""
        order = self.path.parent / when
        if order.exists() and order.read_text().strip() in sql:
            order.unlink()
            os.kill(os.getpid(), signal.SIGKILL)


class _FileSqlConnection:
    """The DB-API connection and cursor `steps.sql` uses (cursor, execute, commit, close)."""

    def __init__(self, server: FileSqlServer) -> None:
        self._server = server

    def cursor(self) -> _FileSqlConnection:
        return self

    def execute(self, sql: str) -> None:
        self._server.execute(sql)

    def commit(self) -> None:
        return None

    def close(self) -> None:
        return None


def pymssql_shim(folder: Any, state: Any) -> dict[str, str]:
    """A `pymssql` module in `folder` that is a FileSqlServer on `state`: the environment (PYTHONPATH) that has a
    `kprov` subprocess configured with `sql: {driver: pymssql}` log in to it instead of a real SQL Server."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pymssql.py").write_text(
        '"""The test\'s fake SQL Server as the pymssql driver (tests/fakes.py FileSqlServer)."""\n'
        "from tests.fakes import FileSqlServer\n\n"
        f"connect = FileSqlServer({str(Path(state).absolute())!r}).connect\n")
    root = Path(__file__).resolve().parent.parent
    return {"PYTHONPATH": os.pathsep.join((str(folder), str(root)))}
