"""SQL steps: quoted, allow-listed T-SQL; the manual path never shows a password; the connected path.

`FakeSqlServer` is a DB-API stand-in that parses exactly the statements kprov renders (quoting
rules included) and refuses an unguarded CREATE of something that exists, as SQL Server does; the
tenant-manager tests in test_shared_data.py use it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kensium_provision.errors import AbortedError, InputError
from kensium_provision.model import Mode
from kensium_provision.naming import loader as naming
from kensium_provision.runtime import Runtime
from kensium_provision.secret import Redactor, Secret
from kensium_provision.steps.base import StepContext
from kensium_provision.steps.sql import (
    SqlDatabase,
    SqlLogin,
    check_identifier,
    database_script,
    login_script,
    password_placeholder,
    quote_identifier,
    quote_string,
)
from tests.fakes import MemoryVault, NoAws, ScriptedOperator

EVIL = "x]; DROP DATABASE master;--"


# --- a tiny T-SQL reader: tokens, statements, a skeleton ------------------------------------------


def _tokens(sql: str) -> list[tuple[str, str]]:
    """(kind, value): ident ([..], ]] unescaped), string (N'..', '' unescaped), or char."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(sql):
        c = sql[i]
        if c == "[":
            j, value = i + 1, []
            while True:
                if sql[j] == "]":
                    if sql[j + 1 : j + 2] == "]":
                        value.append("]")
                        j += 2
                        continue
                    break
                value.append(sql[j])
                j += 1
            out.append(("ident", "".join(value)))
            i = j + 1
        elif c == "N" and sql[i + 1 : i + 2] == "'":
            j, value = i + 2, []
            while True:
                if sql[j] == "'":
                    if sql[j + 1 : j + 2] == "'":
                        value.append("'")
                        j += 2
                        continue
                    break
                value.append(sql[j])
                j += 1
            out.append(("string", "".join(value)))
            i = j + 1
        else:
            out.append(("char", c))
            i += 1
    return out


def skeleton(sql: str) -> str:
    """The script with every identifier and string emptied: what the server would execute, shape-wise."""
    return "".join("[]" if kind == "ident" else "N''" if kind == "string" else value for kind, value in _tokens(sql))


def _statements(batch: str) -> list[list[tuple[str, str]]]:
    statements: list[list[tuple[str, str]]] = [[]]
    for token in _tokens(batch):
        if token == ("char", ";"):
            statements.append([])
        else:
            statements[-1].append(token)
    return [s for s in statements if any(kind != "char" or value.strip() for kind, value in s)]


def _words(tokens: list[tuple[str, str]]) -> str:
    return " ".join("".join("\x00" if k != "char" else v for k, v in tokens).split())


# --- the fake server ------------------------------------------------------------------------------


@dataclass
class _Login:
    name: str
    password: str
    default_db: str
    expiration: bool
    policy: bool


@dataclass
class FakeSqlServer:
    """Databases, logins, users and db_owner membership, compared ignoring case (RDS's default collation)."""

    databases: dict[str, str] = field(default_factory=dict)
    logins: dict[str, _Login] = field(default_factory=dict)
    users: dict[tuple[str, str], str] = field(default_factory=dict)  # (db, user) -> login
    owners: set[tuple[str, str]] = field(default_factory=set)
    batches: list[str] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    sessions: list[dict[str, object]] = field(default_factory=list)

    def connect(self, *, server: str, port: int, user: str, password: Secret) -> _Connection:
        self.sessions.append({"server": server, "port": port, "user": user, "password": password.reveal()})
        return _Connection(self)

    # -- reading
    def query(self, sql: str) -> list[tuple[object, ...]]:
        self.queries.append(sql)
        tokens = _tokens(sql)
        strings = [v for k, v in tokens if k == "string"]
        idents = [v for k, v in tokens if k == "ident"]
        if "FROM sys.databases" in sql:
            name = strings[0].casefold()
            return [(self.databases[name],)] if name in self.databases else []
        if "FROM sys.sql_logins" in sql:
            login = self.logins.get(strings[0].casefold())
            return [(login.name, login.default_db, int(login.expiration), int(login.policy))] if login else []
        if "sys.database_principals AS m" in sql:
            db, login_name = idents[0].casefold(), strings[0].casefold()
            mapped = self.users.get((db, login_name))
            if mapped is None:
                return []
            return [(strings[0], int(mapped == login_name), int((db, login_name) in self.owners))]
        raise AssertionError(f"unexpected query {sql!r}")

    # -- running a batch
    def run(self, batch: str) -> None:
        self.batches.append(batch)
        current = "master"
        for tokens in _statements(batch):
            words = _words(tokens)
            values = [v for k, v in tokens if k != "char"]
            if words.startswith("IF NOT EXISTS ("):
                depth, split = 0, 0
                for i, (kind, value) in enumerate(tokens):
                    if kind == "char" and value == "(":
                        depth += 1
                    elif kind == "char" and value == ")":
                        depth -= 1
                        if depth == 0:
                            split = i
                            break
                condition, tokens = tokens[: split + 1], tokens[split + 1 :]
                if self._exists(_words(condition), [v for k, v in condition if k != "char"], current):
                    continue
                words, values = _words(tokens), [v for k, v in tokens if k != "char"]
            current = self._execute(words, values, current)

    def _exists(self, words: str, values: list[str], db: str) -> bool:
        if "FROM sys.databases" in words:
            return values[0].casefold() in self.databases
        if "FROM sys.server_principals" in words:
            return values[0].casefold() in self.logins
        if "sys.database_role_members" in words:
            return (db, values[-1].casefold()) in self.owners
        if "FROM sys.database_principals" in words:
            return (db, values[0].casefold()) in self.users
        raise AssertionError(f"unexpected condition {words!r}")

    def _execute(self, words: str, values: list[str], db: str) -> str:
        if not words or words == "SET NOCOUNT ON":
            return db
        if words == "USE \x00":
            if values[0].casefold() != "master" and values[0].casefold() not in self.databases:
                raise RuntimeError(f"Database '{values[0]}' does not exist")
            return values[0].casefold()
        if words == "CREATE DATABASE \x00":
            if values[0].casefold() in self.databases:
                raise RuntimeError(f"Database '{values[0]}' already exists")
            self.databases[values[0].casefold()] = values[0]
            return db
        options = "DEFAULT_DATABASE = \x00, CHECK_EXPIRATION = OFF, CHECK_POLICY = "
        if words.startswith("CREATE LOGIN \x00 WITH PASSWORD = \x00, " + options):
            name, password, default = values
            if name.casefold() in self.logins:
                raise RuntimeError(f"The server principal '{name}' already exists")
            self.logins[name.casefold()] = _Login(name, password, default, False, words.endswith("ON"))
            return db
        if words.startswith("ALTER LOGIN \x00 WITH " + options):
            login = self.logins[values[0].casefold()]
            login.default_db, login.expiration, login.policy = values[1], False, words.endswith("ON")
            return db
        if words == "CREATE USER \x00 FOR LOGIN \x00":
            if (db, values[0].casefold()) in self.users:
                raise RuntimeError(f"User '{values[0]}' already exists")
            self.users[(db, values[0].casefold())] = values[1].casefold()
            return db
        if words == "ALTER ROLE \x00 ADD MEMBER \x00" and values[0] == "db_owner":
            self.owners.add((db, values[1].casefold()))
            return db
        raise AssertionError(f"unexpected statement {words!r}")


class _Cursor:
    def __init__(self, server: FakeSqlServer) -> None:
        self.server = server
        self.rows: list[tuple[object, ...]] = []

    def execute(self, sql: str) -> None:
        if sql.lstrip().startswith("SELECT"):
            self.rows = self.server.query(sql)
        else:
            self.server.run(sql)
            self.rows = []

    def fetchall(self) -> list[tuple[object, ...]]:
        return self.rows

    def close(self) -> None:
        return None


class _Connection:
    def __init__(self, server: FakeSqlServer) -> None:
        self.server = server
        self.closed = False

    def cursor(self) -> _Cursor:
        return _Cursor(self.server)

    def commit(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True


# --- rendering ------------------------------------------------------------------------------------


def test_quoting_doubles_the_closing_delimiter() -> None:
    assert quote_identifier("POS_POS01") == "[POS_POS01]"
    assert quote_identifier("a]b") == "[a]]b]"
    assert quote_string("O'Brien") == "N'O''Brien'"
    assert quote_string("") == "N''"


def test_quoting_refuses_what_no_identifier_may_hold() -> None:
    for bad in ("", "x" * 129, "a\x00b", "a\u202eb", "a\nb"):
        with pytest.raises(InputError):
            quote_identifier(bad)
    with pytest.raises(InputError):
        quote_string("a\x00")


def test_database_script_is_exact_and_guarded() -> None:
    assert database_script("POS_POS01").text == (
        "SET NOCOUNT ON;\n"
        "USE [master];\n"
        "IF NOT EXISTS (SELECT 1 FROM sys.databases WHERE name = N'POS_POS01')\n"
        "    CREATE DATABASE [POS_POS01];\n"
        "GO\n"
    )


def test_login_script_is_exact() -> None:
    script = login_script(login="POS_POS01_user", database="POS_POS01", password="Pa55w0rd!x", check_policy=True)
    options = "DEFAULT_DATABASE = [POS_POS01], CHECK_EXPIRATION = OFF, CHECK_POLICY = ON"
    assert script.batches == (
        "SET NOCOUNT ON;\n"
        "USE [master];\n"
        "IF NOT EXISTS (SELECT 1 FROM sys.server_principals WHERE name = N'POS_POS01_user')\n"
        f"    CREATE LOGIN [POS_POS01_user] WITH PASSWORD = N'Pa55w0rd!x', {options};\n"
        f"ALTER LOGIN [POS_POS01_user] WITH {options};",
        "SET NOCOUNT ON;\n"
        "USE [POS_POS01];\n"
        "IF NOT EXISTS (SELECT 1 FROM sys.database_principals WHERE name = N'POS_POS01_user')\n"
        "    CREATE USER [POS_POS01_user] FOR LOGIN [POS_POS01_user];\n"
        "IF NOT EXISTS (SELECT 1 FROM sys.database_role_members AS rm\n"
        "               JOIN sys.database_principals AS r ON r.principal_id = rm.role_principal_id\n"
        "               JOIN sys.database_principals AS m ON m.principal_id = rm.member_principal_id\n"
        "               WHERE r.name = N'db_owner' AND m.name = N'POS_POS01_user')\n"
        "    ALTER ROLE [db_owner] ADD MEMBER [POS_POS01_user];",
    )
    assert script.text.count("\nGO\n") == 2
    assert "CHECK_POLICY = OFF" in login_script(login="a", database="b", password="p", check_policy=False).text


def test_injection_is_refused_by_the_allow_list() -> None:
    with pytest.raises(InputError, match="not a plain SQL Server name"):
        check_identifier(EVIL, "name")
    rules = naming.load_rules()
    assert rules.check("tm-database", EVIL, {"host": "POS01"})
    assert rules.check("client-database", EVIL, {"org_id": "acme"})


def test_injection_is_quoted_harmlessly_anyway() -> None:
    # Independently of the allow-list: rendered, the hostile name is one identifier, not a statement.
    evil_db = database_script(EVIL).text
    assert skeleton(evil_db) == skeleton(database_script("POS_POS01").text)
    assert "[x]]; DROP DATABASE master;--]" in evil_db
    assert [v for k, v in _tokens(evil_db) if k == "ident"] == ["master", EVIL]
    evil_password = "x'); DROP LOGIN [sa]; --"
    script = login_script(login=EVIL, database=EVIL, password=evil_password).text
    assert skeleton(script) == skeleton(login_script(login="a", database="b", password="c").text)
    assert evil_password in [v for k, v in _tokens(script) if k == "string"]
    server = FakeSqlServer()
    server.databases[EVIL.casefold()] = EVIL
    for batch in login_script(login=EVIL, database=EVIL, password=evil_password).batches:
        server.run(batch)
    assert server.logins[EVIL.casefold()].password == evil_password
    assert (EVIL.casefold(), EVIL.casefold()) in server.owners


@settings(max_examples=200, deadline=None)
@given(name=st.text(st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn")), min_size=1, max_size=128),
       password=st.text(st.characters(blacklist_characters="\x00"), max_size=64))
def test_any_text_stays_inside_its_quotes(name: str, password: str) -> None:
    assert skeleton(database_script(name).text) == skeleton(database_script("x").text)
    rendered = login_script(login=name, database=name, password=password).text
    assert skeleton(rendered) == skeleton(login_script(login="x", database="x", password="x").text)
    assert [v for k, v in _tokens(rendered) if k == "string"].count(password) >= 1


def test_the_fake_server_refuses_an_unguarded_create() -> None:
    server = FakeSqlServer()
    server.run(database_script("POS_POS01").batches[0])
    server.run(database_script("pos_pos01").batches[0])  # guarded: the same database ignoring case
    with pytest.raises(RuntimeError, match="already exists"):
        server.run("CREATE DATABASE [POS_POS01];")


# --- the steps --------------------------------------------------------------------------------------

HOST_VALUES = {"host": "POS01"}
DATABASE = {"name": "POS_POS01", "rule": "tm-database", "server": "db-pos-01.example.rds.amazonaws.com"}


def _login_params(**more: object) -> dict[str, object]:
    return {"login": "POS_POS01_user", "login_rule": "tm-login", "database": "POS_POS01",
            "database_rule": "tm-database", "password_ref": "memory:POS01/tm-sql-login",
            "server": "db-pos-01.example.rds.amazonaws.com", **more}


class RecordingOperator(ScriptedOperator):
    def __init__(self, confirm: bool = True) -> None:
        super().__init__(confirm=confirm)
        self.instructions: list[tuple[str, str]] = []
        self.keys: list[str] = []

    def instruct(self, title: str, text: str) -> None:
        self.instructions.append((title, text))

    def confirm(self, message: str, *, default: bool = False, key: str = "") -> bool:
        self.keys.append(key)
        return super().confirm(message, default=default, key=key)


def _ctx(mode: Mode, step_id: str, *, operator: Any = None, vault: Any = None,
         settings: Mapping[str, object] | None = None) -> StepContext:
    runtime = Runtime(mode=mode, run_id="run-sql", aws=NoAws(), operator=operator or RecordingOperator(),
                      vault=vault or MemoryVault(), names=naming.load_rules(), settings=settings or {})
    return StepContext(runtime, step_id, HOST_VALUES)


def _vault_with_login_password() -> tuple[MemoryVault, Secret]:
    vault = MemoryVault()
    secret = Secret("Zq7#kP2$wL9!vR4m")
    vault.store("POS01/tm-sql-login", secret, description="", tags={})
    vault.store("db-POS-01/master", Secret("Master-Pa55word-01"), description="", tags={})
    return vault, secret


def test_names_are_checked_by_their_rule_with_the_run_values() -> None:
    ctx = _ctx(Mode.PLAN, "create-database")
    with pytest.raises(InputError, match="breaks naming rule tm-database"):
        SqlDatabase().probe(ctx, {**DATABASE, "name": "POS_POS02"})  # named after another host
    with pytest.raises(InputError, match="breaks naming rule tm-database"):
        SqlDatabase().probe(ctx, {**DATABASE, "name": EVIL})
    with pytest.raises(InputError, match="breaks naming rule tm-login"):
        SqlLogin().probe(ctx, _login_params(login="POS_POS01_user]; DROP LOGIN sa;--"))


def test_without_a_connection_the_step_is_manual_and_never_shows_the_password() -> None:
    vault, secret = _vault_with_login_password()
    operator = RecordingOperator()
    ctx = _ctx(Mode.APPLY, "create-login", operator=operator, vault=vault)
    probe = SqlLogin().probe(ctx, _login_params())
    assert not probe.done and probe.note.startswith("manual")
    outputs = SqlLogin().act(ctx, _login_params(), probe)
    [(title, text)] = operator.instructions
    assert title == "create-login"
    assert password_placeholder("memory:POS01/tm-sql-login") in text
    assert "WITH PASSWORD = N'<from the password manager: memory:POS01/tm-sql-login>'" in text
    assert secret.reveal() not in text and secret.reveal() not in str(outputs)
    assert operator.keys == ["create-login"]
    assert skeleton(str(outputs["script"])) == skeleton(login_script(login="a", database="b", password="c").text)
    assert SqlLogin().verify(ctx, _login_params()) == ()


def test_a_declined_manual_script_aborts() -> None:
    ctx = _ctx(Mode.APPLY, "create-database", operator=RecordingOperator(confirm=False))
    with pytest.raises(AbortedError):
        SqlDatabase().act(ctx, DATABASE, SqlDatabase().probe(ctx, DATABASE))


def test_check_without_a_connection_is_not_checkable_rather_than_a_finding() -> None:
    probe = SqlDatabase().probe(_ctx(Mode.CHECK, "create-database"), DATABASE)
    assert probe.done and probe.note.startswith("not checkable")
    assert probe.outputs["database"] == "POS_POS01"


def test_a_driver_setting_alone_is_not_a_connection_without_the_master_login() -> None:
    ctx = _ctx(Mode.PLAN, "create-database", settings={"sql": {"driver": "pymssql"}})
    with pytest.raises(InputError, match="admin_user and admin_password_ref"):
        SqlDatabase().probe(ctx, DATABASE)
    empty = _ctx(Mode.PLAN, "create-database", settings={"sql": {"driver": "", "encrypt": True}})
    assert SqlDatabase().probe(empty, DATABASE).note.startswith("manual")  # the config's unset driver


def test_connected_steps_create_probe_and_verify() -> None:
    server = FakeSqlServer()
    vault, secret = _vault_with_login_password()
    settings_ = {"sql": {"connect": server.connect}}
    admin = {"admin_user": "admin", "admin_password_ref": "memory:db-POS-01/master"}
    ctx = _ctx(Mode.APPLY, "create-database", vault=vault, settings=settings_)
    database = {**DATABASE, **admin}
    probe = SqlDatabase().probe(ctx, database)
    assert not probe.done
    SqlDatabase().act(ctx, database, probe)
    assert SqlDatabase().verify(ctx, database) == ()
    assert SqlDatabase().probe(ctx, database).done
    login = _login_params(**admin)
    ctx = _ctx(Mode.APPLY, "create-login", vault=vault, settings=settings_)
    probe = SqlLogin().probe(ctx, login)
    assert not probe.done and probe.current == {}
    outputs = SqlLogin().act(ctx, login, probe)
    assert server.logins["pos_pos01_user"] == _Login("POS_POS01_user", secret.reveal(), "POS_POS01", False, True)
    assert ("pos_pos01", "pos_pos01_user") in server.owners
    assert SqlLogin().verify(ctx, login) == ()
    assert SqlLogin().probe(ctx, login).done
    assert secret.reveal() not in str(outputs)
    assert {s["user"] for s in server.sessions} == {"admin"}
    assert {s["password"] for s in server.sessions} == {"Master-Pa55word-01"}
    # Drift: expiration switched on by hand is found, and a second apply puts it right.
    server.logins["pos_pos01_user"].expiration = True
    [difference] = SqlLogin().verify(ctx, login)
    assert str(difference) == "password expiration: yes, should be no"
    SqlLogin().act(ctx, login, SqlLogin().probe(ctx, login))
    assert SqlLogin().verify(ctx, login) == ()
    assert server.logins["pos_pos01_user"].password == secret.reveal()  # the ALTER never touches it


def test_a_password_unfit_for_a_login_is_refused_before_it_is_sent() -> None:
    server = FakeSqlServer()
    server.databases["pos_pos01"] = "POS_POS01"
    vault = MemoryVault()
    vault.store("POS01/tm-sql-login", Secret("short", redactor=Redactor()), description="", tags={})
    vault.store("db-POS-01/master", Secret("Master-Pa55word-01"), description="", tags={})
    ctx = _ctx(Mode.APPLY, "create-login", vault=vault, settings={"sql": {"connect": server.connect}})
    login = _login_params(admin_user="admin", admin_password_ref="memory:db-POS-01/master")
    with pytest.raises(InputError, match="does not fit a SQL login") as caught:
        SqlLogin().act(ctx, login, SqlLogin().probe(ctx, login))
    assert "short" not in str(caught.value)
    assert server.batches == [] and server.logins == {}
