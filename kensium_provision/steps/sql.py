"""The `sql.database` and `sql.login` step types: SQL Server objects kprov cannot make through AWS.

They render correct, quoted T-SQL (design.md section 7): every name is first allow-listed by its
naming rule and by SQL Server's plain-identifier shape, then quoted anyway (`[..]` with `]`
doubled, `N'..'` with `'` doubled), so neither layer alone stands between an answer and the server.
Each statement is guarded (`IF NOT EXISTS`), so running a script twice is harmless.

With a SQL driver configured (`sql: {driver: pymssql|pyodbc}` in the kprov config) they log in to
the step's `server` as the RDS master (`admin_user`, `admin_password_ref`), run the script and
probe the catalog views. Without one they are manual steps: they show the exact script, with the password as
a placeholder naming its password-manager entry (never the value), and collect the operator's
confirmation. pymssql or pyodbc is used only if installed; neither is a dependency.
"""

# ruff: noqa: S608 - T-SQL is built here on purpose: every name and value goes through quote_identifier or
# quote_string after check_identifier's allow-list (tests/test_sql.py proves injection is refused).

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

from kensium_provision.errors import AbortedError, InputError, StepError
from kensium_provision.model import Mode
from kensium_provision.steps.base import (
    CheckContext,
    Created,
    Difference,
    Param,
    Probe,
    StepContext,
    UndoCheck,
    record_created,
)

# The script-running kit the other SQL step types (offboarding, rotation) share: connection, rows,
# run_batches, run_script, probe_by_hand, run_by_hand, checked_name, CONNECTION_PARAMS.
__all__ = [
    "CONNECTION_PARAMS",
    "SqlDatabase",
    "SqlLogin",
    "SqlScript",
    "check_identifier",
    "checked_name",
    "connected",
    "connection",
    "database_script",
    "database_sizes",
    "login_script",
    "password_placeholder",
    "probe_by_hand",
    "quote_identifier",
    "quote_string",
    "rows",
    "run_batches",
    "run_by_hand",
    "run_script",
]

# A regular identifier that needs no quoting at all; kprov's SQL names (POS_POS01, POS_acme_user)
# all have this shape, and nothing else is let through.
_PLAIN_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,127}$")
_DB_OWNER = "db_owner"


def quote_identifier(name: str) -> str:
    """`name` as a delimited identifier: `[name]`, with `]` doubled (SQL Server's QUOTENAME)."""
    if not isinstance(name, str) or not 1 <= len(name) <= 128:
        raise InputError("a SQL Server identifier is 1-128 characters")
    # isprintable is False for every "Other" (C*) character: the scan only for a name that has one
    if not name.isprintable() and any(unicodedata.category(c).startswith("C") for c in name):
        raise InputError("a SQL Server identifier must not contain control or invisible characters")
    return "[" + name.replace("]", "]]") + "]"


def quote_string(text: str) -> str:
    """`text` as a Unicode string literal: `N'text'`, with `'` doubled."""
    if "\x00" in text:
        raise InputError("a SQL string must not contain NUL")
    return "N'" + text.replace("'", "''") + "'"


def check_identifier(name: object, what: str) -> str:
    """The name if it is a plain identifier (a letter, then letters, digits or _; at most 128), else InputError."""
    if not isinstance(name, str) or not _PLAIN_IDENTIFIER.fullmatch(name):
        raise InputError(f"{what} {name!r} is not a plain SQL Server name (a letter, then letters, digits or _; "
                         "at most 128 characters)")
    return name


def password_placeholder(reference: str) -> str:
    """What a displayed script shows instead of a password."""
    return f"<from the password manager: {reference}>"


@dataclass(frozen=True, slots=True)
class SqlScript:
    """T-SQL batches, run one by one (a `USE` must not share a batch with the CREATE it depends on)."""

    batches: tuple[str, ...]

    @property
    def text(self) -> str:
        """As an operator runs it in SSMS or sqlcmd: batches separated by GO."""
        return "".join(f"{batch}\nGO\n" for batch in self.batches)


def database_script(database: str) -> SqlScript:
    """Create the database unless it exists (names compare as the server's collation does)."""
    name = quote_identifier(database)
    return SqlScript((
        "SET NOCOUNT ON;\n"
        "USE [master];\n"
        f"IF NOT EXISTS (SELECT 1 FROM sys.databases WHERE name = {quote_string(database)})\n"
        f"    CREATE DATABASE {name};",
    ))


def login_script(*, login: str, database: str, password: str, check_policy: bool = True) -> SqlScript:
    """A SQL-authenticated login, expiration off, default database `database`, db_owner there only.

    The CREATE is guarded; the ALTER that follows puts the options right on a login that already
    existed, without touching its password. The user has the login's name (domain.md 3.6 e6).
    """
    who, db, name = quote_identifier(login), quote_identifier(database), quote_string(login)
    policy = "ON" if check_policy else "OFF"
    options = f"DEFAULT_DATABASE = {db}, CHECK_EXPIRATION = OFF, CHECK_POLICY = {policy}"
    server_batch = (
        "SET NOCOUNT ON;\n"
        "USE [master];\n"
        f"IF NOT EXISTS (SELECT 1 FROM sys.server_principals WHERE name = {name})\n"
        f"    CREATE LOGIN {who} WITH PASSWORD = {quote_string(password)}, {options};\n"
        f"ALTER LOGIN {who} WITH {options};"
    )
    database_batch = (
        "SET NOCOUNT ON;\n"
        f"USE {db};\n"
        f"IF NOT EXISTS (SELECT 1 FROM sys.database_principals WHERE name = {name})\n"
        f"    CREATE USER {who} FOR LOGIN {who};\n"
        "IF NOT EXISTS (SELECT 1 FROM sys.database_role_members AS rm\n"
        "               JOIN sys.database_principals AS r ON r.principal_id = rm.role_principal_id\n"
        "               JOIN sys.database_principals AS m ON m.principal_id = rm.member_principal_id\n"
        f"               WHERE r.name = {quote_string(_DB_OWNER)} AND m.name = {name})\n"
        f"    ALTER ROLE {quote_identifier(_DB_OWNER)} ADD MEMBER {who};"
    )
    return SqlScript((server_batch, database_batch))


# --- the connection (optional) ------------------------------------------------------------------


def _settings(ctx: StepContext) -> Mapping[str, Any] | None:
    """The `sql` settings when a connection is configured (a driver, or a `connect` callable), else None."""
    found = ctx.runtime.settings.get("sql")
    if not isinstance(found, Mapping):
        return None
    return found if found.get("driver") or callable(found.get("connect")) else None


def _odbc_value(value: str) -> str:
    return "{" + value.replace("}", "}}") + "}"  # ODBC braces: ; and = inside are then plain text


@contextmanager
def connection(ctx: StepContext, params: Mapping[str, Any]) -> Iterator[Any | None]:
    """A DB-API connection as the RDS master login, or None when no SQL connection is configured.

    Settings `sql` (the config's): `driver` (pymssql or pyodbc; empty: none), `encrypt`,
    `trust_server_certificate`, `timeout_seconds`; or `connect`, a callable taking server, port, user
    and password (a Secret) and returning a DB-API connection (embedders and tests). The server and
    the master login come from the step: `server`, `port`, `admin_user`, `admin_password_ref`.
    """
    settings = _settings(ctx)
    if settings is None:
        yield None
        return
    server, user, ref = params.get("server"), params.get("admin_user"), params.get("admin_password_ref")
    if not all(isinstance(v, str) and v for v in (server, user, ref)):
        raise InputError(f"step {ctx.step_id}: a SQL connection is configured, so the step needs server, admin_user "
                         "and admin_password_ref (the RDS master login's password-manager reference)",
                         hint="or remove the sql driver from the config to run SQL steps by hand")
    port = params.get("port") or 1433
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InputError(f"step {ctx.step_id}: port {port!r} is not a TCP port")
    password = ctx.runtime.vault.fetch(str(ref))  # only now, to log in
    connect = settings.get("connect")
    if callable(connect):
        conn = connect(server=server, port=port, user=user, password=password)
    else:
        conn = _open(settings, str(server), port, str(user), password)
    try:
        yield conn
    finally:
        conn.close()


def _open(settings: Mapping[str, Any], server: str, port: int, user: str, password: Any) -> Any:
    from kensium_provision.secret import REDACTOR

    timeout = int(settings.get("timeout_seconds") or 30)
    driver = str(settings.get("driver"))
    try:
        if driver == "pymssql":
            import pymssql  # type: ignore[import-not-found]  # optional

            return pymssql.connect(server=server, port=port, user=user, password=password.reveal(),
                                   login_timeout=timeout, autocommit=True)
        if driver == "pyodbc":
            import pyodbc  # type: ignore[import-not-found]  # optional

            encrypt = "yes" if settings.get("encrypt", True) else "no"
            trust = "yes" if settings.get("trust_server_certificate") else "no"
            text = password.derive(lambda value: (
                f"DRIVER={{ODBC Driver 18 for SQL Server}};SERVER={_odbc_value(f'{server},{port}')};"
                f"UID={_odbc_value(user)};PWD={_odbc_value(value)};Encrypt={encrypt};TrustServerCertificate={trust}"))
            return pyodbc.connect(text.reveal(), autocommit=True, timeout=timeout)
    except ImportError:
        raise StepError(f"the sql driver {driver} is not installed",
                        hint=f"pip install {driver}, or remove the sql driver from the config to run SQL steps "
                             "by hand") from None
    except Exception as exc:  # noqa: BLE001 - driver errors may quote the connection string
        raise StepError(f"cannot connect to SQL Server {server}:{port} as {user}: "
                        f"{REDACTOR.redact(str(exc))[:300]}") from None
    raise InputError(f"unknown sql driver {driver!r}: pymssql or pyodbc")


def connected(ctx: StepContext) -> bool:
    """Whether a SQL connection is configured (else SQL is scripts run by hand, and nothing is read)."""
    return _settings(ctx) is not None


# Data files only (type 0, ROWS): SQL Server Express's 10 GB cap is on a database's data, not its log; `size` is in
# 8 KB pages (https://learn.microsoft.com/en-us/sql/relational-databases/system-catalog-views/sys-master-files-transact-sql).
DATABASE_SIZES = ("SELECT DB_NAME(database_id), SUM(CAST(size AS bigint)) * 8 FROM sys.master_files "
                  "WHERE type = 0 GROUP BY database_id")


def database_sizes(conn: Any) -> dict[str, int]:
    """Every database's data size in KB (name lower-cased, as RDS's default collation compares), one query."""
    return {str(name).lower(): int(kb) for name, kb in rows(conn, DATABASE_SIZES) if name is not None}


def rows(conn: Any, query: str) -> list[tuple[Any, ...]]:
    cursor = conn.cursor()
    try:
        cursor.execute(query)
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()


def run_batches(conn: Any, batches: Sequence[Any], step_id: str) -> None:
    """Run each batch (a str, or a Secret when it holds a password)."""
    from kensium_provision.secret import REDACTOR

    for batch in batches:
        cursor = conn.cursor()
        try:
            cursor.execute(batch.reveal() if hasattr(batch, "reveal") else batch)
            if hasattr(conn, "commit"):
                conn.commit()
        except Exception as exc:  # noqa: BLE001 - server messages can quote the statement
            message = REDACTOR.redact(str(exc))[:300]
            raise StepError(f"step {step_id}: SQL Server refused the script: {message}") from None
        finally:
            cursor.close()


# --- naming ---------------------------------------------------------------------------------------


def _name_problems(params: Mapping[str, Any], ctx: CheckContext, *pairs: tuple[str, str]) -> list[str]:
    """`check_params` of the SQL steps: each (name, rule) pair known so far, by its naming rule and the
    identifier shape, refused before the first change (`checked_name` says the same at the step's turn)."""
    problems: list[str] = []
    for key, rule_key in pairs:
        value, rule = params.get(key), params.get(rule_key)
        if not ctx.known(params, key, rule_key) or not isinstance(rule, str) or not isinstance(value, str):
            continue  # not known yet; a missing rule or a non-text name is `checked_name`'s error at the step's turn
        found = ctx.names.check(rule, value, dict(ctx.values))
        if found:
            problems.append(f"{key} \"{value}\" " + "; ".join(found)
                            + f" (for example {ctx.names.example(rule, dict(ctx.values))})")
            continue
        try:
            check_identifier(value, key)
        except InputError as exc:
            problems.append(str(exc))
    return problems


def checked_name(ctx: StepContext, params: Mapping[str, Any], key: str, rule_key: str) -> str:
    """A name checked by its naming rule (with the run's values as context), then by the identifier shape."""
    value, rule = params.get(key), params.get(rule_key)
    if not isinstance(rule, str) or not rule:
        raise InputError(f"{key} needs `{rule_key}`: the naming rule it follows (e.g. tm-database)")
    if not isinstance(value, str):
        raise InputError(f"{key} must be text, not {type(value).__name__}")
    context = {k: v for k, v in ctx.values.items() if isinstance(v, str)}
    ctx.runtime.names.require(rule, value, context)
    return check_identifier(value, key)


def _where(params: Mapping[str, Any]) -> str:
    server = params.get("server")
    return f"SQL Server {server}" if isinstance(server, str) and server else "the SQL Server instance"


def probe_by_hand(ctx: StepContext, script: SqlScript, outputs: Mapping[str, object], what: str) -> Probe:
    if ctx.runtime.mode is Mode.CHECK:
        return Probe(done=True, note=f"not checkable: no SQL connection is configured (`sql` setting); {what} "
                                     "was confirmed by the operator when it ran", outputs=outputs)
    return Probe(done=False, note=f"manual: no SQL connection is configured, so the operator runs the script ({what})",
                 desired={"script": script.text}, by_hand=True)


def run_by_hand(ctx: StepContext, params: Mapping[str, Any], script: SqlScript, extra: str = "") -> None:
    operator = ctx.runtime.operator
    operator.instruct(ctx.step_id, f"Connect to {_where(params)} as the RDS master user (SSMS or sqlcmd) and run "
                                   f"this script{extra}:\n\n{script.text}")
    if not operator.confirm(f"Did the script run without errors on {_where(params)}?", default=False,
                            key=ctx.step_id):
        raise AbortedError(f"step {ctx.step_id} was not confirmed as done")


def run_script(ctx: StepContext, params: Mapping[str, Any], script: SqlScript, doing: str) -> None:
    """Run `script` over the configured SQL connection, or have the operator run it by hand (no connection)."""
    with connection(ctx, params) as conn:
        if conn is None:
            run_by_hand(ctx, params, script)
        else:
            ctx.progress(doing)
            run_batches(conn, script.batches, ctx.step_id)


CONNECTION_PARAMS = (
    Param(name="server", required=False, doc="The SQL Server host (the RDS endpoint), shown and connected to."),
    Param(name="port", kind="int", required=False, default=1433, doc="Its TCP port."),
    Param(name="admin_user", required=False, doc="The RDS master login, to connect with (when a driver is set)."),
    Param(name="admin_password_ref", required=False,
          doc="Password-manager reference of the master password (fetched only to connect)."),
)


class SqlDatabase:
    """A database on SQL Server (e.g. the tenant manager's POS_POS01), created unless it exists.

    `name` must follow the naming rule `rule` (tm-database, client-database) and be a plain SQL
    name; it is quoted anyway. With a SQL driver configured, kprov logs in to `server` as the RDS
    master (`admin_user`, `admin_password_ref`), runs the script and probes `sys.databases`;
    without one, the operator is shown the exact script and confirms it ran (and `check` cannot
    verify it).

    Outputs: database, script (the T-SQL, which holds no secret).
    """

    name: ClassVar[str] = "sql.database"
    summary: ClassVar[str] = "A SQL Server database: run over a configured SQL connection, else shown to run by hand."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="name", doc="The database name, e.g. POS_POS01."),
        Param(name="rule", doc="The naming rule the name follows, e.g. tm-database."),
        *CONNECTION_PARAMS,
    )
    outputs: ClassVar[tuple[str, ...]] = ("database", "script")

    def check_params(self, params: Mapping[str, Any], ctx: CheckContext) -> list[str]:
        return _name_problems(params, ctx, ("name", "rule"))

    def _plan(self, ctx: StepContext, params: Mapping[str, Any]) -> tuple[str, SqlScript]:
        database = checked_name(ctx, params, "name", "rule")
        return database, database_script(database)

    def _exists(self, conn: Any, database: str) -> bool:
        return bool(rows(conn, f"SELECT name FROM sys.databases WHERE name = {quote_string(database)}"))

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        database, script = self._plan(ctx, params)
        outputs = {"database": database, "script": script.text}
        with connection(ctx, params) as conn:
            if conn is None:
                return probe_by_hand(ctx, script, outputs, f"database {database}")
            if self._exists(conn, database):
                return Probe(done=True, note=f"database {database} exists", current={"database": database},
                             outputs=outputs)
        return Probe(done=False, note=f"database {database} does not exist: it will be created",
                     desired={"script": script.text})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        database, script = self._plan(ctx, params)
        run_script(ctx, params, script, f"creating database {database}")
        if _settings(ctx) is not None and not probe.current:  # kprov ran it (by hand it is the person's work)
            record_created(ctx, "database", database)
        return {"database": database, "script": script.text}

    def not_undoable(self, params: Mapping[str, Any]) -> str:
        return _drop_by_hand(params, _drops("database", str(params.get("name", ""))))

    def undo_check(self, ctx: StepContext, params: Mapping[str, Any], created: Sequence[Created]) -> UndoCheck:
        return _undo_check(ctx, params, created, "sys.databases")

    def undo(self, ctx: StepContext, params: Mapping[str, Any], created: Sequence[Created]) -> None:
        _undo(ctx, params, created)

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        database, _ = self._plan(ctx, params)
        with connection(ctx, params) as conn:
            if conn is None or self._exists(conn, database):
                return ()
        return (Difference("database", None, database),)


@dataclass(frozen=True, slots=True, kw_only=True)
class _LoginPlan:
    login: str
    database: str
    password_ref: str
    check_policy: bool

    def script(self, password: str) -> SqlScript:
        return login_script(login=self.login, database=self.database, password=password,
                            check_policy=self.check_policy)

    @property
    def shown(self) -> SqlScript:
        return self.script(password_placeholder(self.password_ref))


class SqlLogin:
    """A SQL Server login mapped to a same-named user with db_owner on its own database only.

    SQL Server authentication, password expiration off (`CHECK_EXPIRATION = OFF`), password policy
    per `check_policy` (default on), default database `database`. `login` and `database` must
    follow their naming rules (`login_rule`: tm-login, client-login; `database_rule`: tm-database,
    client-database) and be plain SQL names. The password (`password_ref`, from a
    credential.password step) is fetched from the password manager only to run the script over a
    configured SQL connection (as for sql.database); a script shown to the operator holds a
    placeholder naming the entry. An existing login's options are put right without touching its
    password. Not yet checked: that the login has no user in other databases.

    Outputs: login, database, script (with the placeholder, never the password).
    """

    name: ClassVar[str] = "sql.login"
    summary: ClassVar[str] = "A SQL Server login, db_owner of its own database, password from the password manager."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="login", doc="The login (and user) name, e.g. POS_POS01_user."),
        Param(name="login_rule", doc="The naming rule of the login, e.g. tm-login."),
        Param(name="database", doc="Its database (default database, db_owner there), e.g. POS_POS01."),
        Param(name="database_rule", doc="The naming rule of the database, e.g. tm-database."),
        Param(name="password_ref", doc="Password-manager reference of the login's password."),
        Param(name="check_policy", kind="bool", required=False, default=True,
              doc="Enforce the Windows password policy (CHECK_POLICY); expiration is always off."),
        *CONNECTION_PARAMS,
    )
    outputs: ClassVar[tuple[str, ...]] = ("login", "database", "script")

    def check_params(self, params: Mapping[str, Any], ctx: CheckContext) -> list[str]:
        return _name_problems(params, ctx, ("login", "login_rule"), ("database", "database_rule"))

    def _plan(self, ctx: StepContext, params: Mapping[str, Any]) -> _LoginPlan:
        login = checked_name(ctx, params, "login", "login_rule")
        database = checked_name(ctx, params, "database", "database_rule")
        ref = params.get("password_ref")
        if not isinstance(ref, str) or not ref:
            raise InputError("sql.login needs `password_ref`: the reference a credential.password step gave")
        check_policy = params.get("check_policy", True)
        if not isinstance(check_policy, bool):
            raise InputError("sql.login check_policy must be true or false")
        return _LoginPlan(login=login, database=database, password_ref=ref, check_policy=check_policy)

    def _differences(self, conn: Any, plan: _LoginPlan) -> tuple[bool, tuple[Difference, ...]]:
        """(whether the login exists, what differs)."""
        login = quote_string(plan.login)
        found = rows(conn, "SELECT name, default_database_name, is_expiration_checked, is_policy_checked "
                            f"FROM sys.sql_logins WHERE name = {login}")
        if not found:
            return False, (Difference("login", None, plan.login),)
        _, default_db, expiration, policy = found[0]
        diffs = []
        if str(default_db or "").casefold() != plan.database.casefold():
            diffs.append(Difference("default database", default_db, plan.database))
        if bool(expiration):
            diffs.append(Difference("password expiration", True, False))
        if bool(policy) is not plan.check_policy:
            diffs.append(Difference("password policy", bool(policy), plan.check_policy))
        db = quote_identifier(plan.database)
        user = rows(conn, (
            f"SELECT m.name, CASE WHEN m.sid = SUSER_SID({login}) THEN 1 ELSE 0 END, "
            f"CASE WHEN EXISTS (SELECT 1 FROM {db}.sys.database_role_members AS rm "
            f"JOIN {db}.sys.database_principals AS r ON r.principal_id = rm.role_principal_id "
            f"WHERE rm.member_principal_id = m.principal_id AND r.name = {quote_string(_DB_OWNER)}) THEN 1 ELSE 0 END "
            f"FROM {db}.sys.database_principals AS m WHERE m.name = {login}"))
        if not user:
            diffs.append(Difference(f"user in {plan.database}", None, plan.login))
        else:
            _, mapped, owner = user[0]
            if not mapped:
                diffs.append(Difference(f"user {plan.login} in {plan.database}", "mapped to another login", plan.login))
            if not owner:
                diffs.append(Difference(f"{_DB_OWNER} in {plan.database}", False, True))
        return True, tuple(diffs)

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        plan = self._plan(ctx, params)
        outputs = {"login": plan.login, "database": plan.database, "script": plan.shown.text}
        with connection(ctx, params) as conn:
            if conn is None:
                return probe_by_hand(ctx, plan.shown, outputs, f"login {plan.login}")
            exists, diffs = self._differences(conn, plan)
        if not diffs:
            return Probe(done=True, note=f"login {plan.login} exists, db_owner of {plan.database}",
                         current={"login": plan.login}, outputs=outputs)
        return Probe(done=False, note=f"login {plan.login} " + ("differs" if exists else "does not exist"),
                     current={"login": plan.login} if exists else {}, desired={"script": plan.shown.text},
                     differences=diffs if exists else ())

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        from kensium_provision.secret import check_password

        plan = self._plan(ctx, params)
        with connection(ctx, params) as conn:
            if conn is None:
                run_by_hand(ctx, params, plan.shown, extra=f", replacing the placeholder with the password stored "
                                                           f"as {plan.password_ref}")
            else:
                password = ctx.runtime.vault.fetch(plan.password_ref)
                problems = check_password("sql-login", password, username=plan.login)
                if problems:  # never quotes the value
                    raise InputError(f"the password of {plan.login} does not fit a SQL login: {'; '.join(problems)}")
                batches = [_batch(password, plan, i) for i in range(len(plan.shown.batches))]
                ctx.progress(f"creating login {plan.login} on {plan.database}")
                run_batches(conn, batches, ctx.step_id)
                if not probe.current:
                    record_created(ctx, "login", plan.login)
        return {"login": plan.login, "database": plan.database, "script": plan.shown.text}

    def not_undoable(self, params: Mapping[str, Any]) -> str:
        return _drop_by_hand(params, _drops("login", str(params.get("login", ""))))

    def undo_check(self, ctx: StepContext, params: Mapping[str, Any], created: Sequence[Created]) -> UndoCheck:
        return _undo_check(ctx, params, created, "sys.server_principals")

    def undo(self, ctx: StepContext, params: Mapping[str, Any], created: Sequence[Created]) -> None:
        _undo(ctx, params, created)

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        plan = self._plan(ctx, params)
        with connection(ctx, params) as conn:
            if conn is None:
                return ()
            return self._differences(conn, plan)[1]


def _batch(password: Any, plan: _LoginPlan, index: int) -> Any:
    """Batch `index` of the real script, as a Secret (it may hold the password)."""
    make: Callable[[str], str] = lambda value: plan.script(value).batches[index]  # noqa: E731
    return password.derive(make)


# --- undo: a database or login the run created over the SQL connection --------------------------------------


def _drops(kind: str, name: str) -> SqlScript:
    from kensium_provision.steps.offboard import drop_database_script, drop_login_script  # it builds on this module

    return drop_database_script(name) if kind == "database" else drop_login_script(name)


def _drop_by_hand(params: Mapping[str, Any], script: SqlScript) -> str:
    return (f"no SQL connection was configured, so a person ran its script: to undo it, connect to {_where(params)} "
            f"as the RDS master and run:\n{script.text}")


def _undo_check(ctx: StepContext, params: Mapping[str, Any], created: Sequence[Created], catalog: str) -> UndoCheck:
    with connection(ctx, params) as conn:
        if conn is None:
            return UndoCheck(present=tuple(created), by_hand=_drop_by_hand(
                params, SqlScript(tuple(b for c in created for b in _drops(c.kind, c.id).batches))))
        present = [c for c in created if rows(conn, f"SELECT name FROM {catalog} WHERE name = {quote_string(c.id)}")]
        changed = []
        for made in (c for c in present if c.kind == "database"):  # the tenant's data: never dropped by an undo
            tables = [str(r[0]) for r in rows(conn, f"SELECT name FROM {quote_identifier(made.id)}.sys.tables "
                                                    "WHERE is_ms_shipped = 0")]
            if tables:
                changed.append(f"database {made.id} holds tables since the run: {', '.join(sorted(tables)[:5])}"
                               + (f" and {len(tables) - 5} more" if len(tables) > 5 else ""))
    return UndoCheck(present=tuple(present), changed=tuple(changed))


def _undo(ctx: StepContext, params: Mapping[str, Any], created: Sequence[Created]) -> None:
    with connection(ctx, params) as conn:
        if conn is None:
            raise StepError(f"step {ctx.step_id}: no SQL connection is configured, so kprov cannot drop "
                            f"{', '.join(c.id for c in created)}")
        for made in created:
            ctx.progress(f"dropping {made.kind} {made.id}")
            run_batches(conn, _drops(made.kind, made.id).batches, ctx.step_id)
