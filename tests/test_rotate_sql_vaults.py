"""The client SQL login's rotation (checklists/client/rotate.yaml, issue 18.2) with a real password manager.

The vault is the real KeePassXC (`keepassxc-cli` on a .kdbx), then the real `pass` (gpg), each found on PATH
behind the recording wrapper of tests/password_managers.py (it logs argv and environment, then runs the real
program). AWS is moto in process (the RDS instance, the client record). No SQL Server can run on this machine:
the SQL side is tests/fakes.FileSqlServer, a fake that knows each login's password and refuses a login with
another one, as a driver would. When the ALTER LOGIN reaches it, the test reads the password manager with
its own CLI: the new value must be stored by then, the old one kept as the -previous, and the old one must
have been working until that moment.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from kensium_provision.aws.session import AwsSession
from kensium_provision.checklist.answers import Answers, AnswersOperator
from kensium_provision.checklist.catalog import CHECKLISTS_DIR
from kensium_provision.checklist.schema import load_checklist
from kensium_provision.engine.run import resolve_inputs, run
from kensium_provision.errors import ExitCode, StepError
from kensium_provision.guards import Environment
from kensium_provision.model import Mode
from kensium_provision.naming.loader import load_rules
from kensium_provision.records.clients import INSTALLED, ClientRecord, ensure_table, get_client, put_record
from kensium_provision.runtime import NullJournal, Runtime
from kensium_provision.secret import Secret
from kensium_provision.vault.keepassxc import KeePassXCVault
from kensium_provision.vault.passstore import PassVault
from tests.checklist_harness import raw_client
from tests.fakes import FileSqlServer
from tests.password_managers import GpgHome, calls, make_kdbx, recording
from tests.test_canary import files_under, leaks
from tests.test_vault_pass import init_store

pytestmark = [pytest.mark.password_manager]
pytest_plugins = ["password_managers"]  # its gpg fixture

LOGIN, MASTER, OLD = "POS_acme_user", "Sql-Master-Initial-1", "Sql-Login-Initial-1"
ROTATE = CHECKLISTS_DIR / "client" / "rotate.yaml"


@dataclass(frozen=True)
class Estate:
    vault: Any
    sql: FileSqlServer
    log: Path  # the wrapper's record of every password-manager call (argv, environment)
    journal: NullJournal

    def stored(self, entry: str) -> str | None:
        reference = self.vault.find(entry)
        return None if reference is None else str(self.vault.fetch(reference).reveal())

    def rotate(self) -> Any:
        checklist = load_checklist(ROTATE, rule_ids=load_rules().ids)
        env = Environment(name="sandbox", account_id="123456789012", region="us-east-1", sandbox=True)
        operator = AnswersOperator(Answers(values={}, confirm={"tenant-connection-string": True}), assume_yes=True)
        rt = Runtime(mode=Mode.APPLY, run_id="run-rotate", aws=AwsSession(env, mode=Mode.APPLY, in_process=True),
                     operator=operator, vault=self.vault, names=load_rules(), journal=self.journal,
                     env_name="sandbox", purpose="qa", assume_yes=True, settings={"sql": {"connect": self.sql.connect}})
        values = resolve_inputs(checklist, rt, {"org_id": "acme", "credential": "sql-login"})
        return run(checklist, rt, values)


def _vault(backend: str, root: Path, request: pytest.FixtureRequest) -> Any:
    if backend == "keepassxc":
        key = root / "team.keyx"
        return KeePassXCVault(make_kdbx(root / "team.kdbx", key_file=key), password=None, key_file=key)
    gpg: GpgHome = request.getfixturevalue("gpg")
    return PassVault(init_store(root / "store", gpg.key_id))


@pytest.fixture(params=["keepassxc", "pass"])
def estate(request: pytest.FixtureRequest, aws: None, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Estate:
    program = "keepassxc-cli" if request.param == "keepassxc" else "pass"
    log = tmp_path / "calls.log"
    monkeypatch.setenv("PATH", f"{Path(recording(program, log)).parent}{os.pathsep}{os.environ['PATH']}")
    vault = _vault(request.param, tmp_path, request)
    rds = raw_client("rds")
    rds.create_db_instance(DBInstanceIdentifier="db-POS-01", Engine="sqlserver-web", DBInstanceClass="db.t3.small",
                           MasterUsername="admin", MasterUserPassword=MASTER, AllocatedStorage=20)
    dynamodb = raw_client("dynamodb")
    ensure_table(dynamodb)
    vault.store("db-POS-01/master", Secret(MASTER), description="", tags={})
    login_ref = vault.store("acme/sql-login", Secret(OLD), description="", tags={})
    put_record(dynamodb, ClientRecord(org_id="acme", client_name="Acme", status=INSTALLED, rds_instance="db-POS-01",
                                      login=LOGIN, ec2_host="ec2-POS-01", secrets={"sql_login": login_ref}))
    sql = FileSqlServer(tmp_path / "sql" / "logins.json")
    sql.path.parent.mkdir()
    sql.set_password("admin", MASTER)
    sql.set_password(LOGIN, OLD)
    log.write_bytes(b"")  # the canary covers kprov's calls, not the test's own setup
    return Estate(vault, sql, log, NullJournal())


def test_the_sql_login_is_stored_then_set_then_checked_and_leaves_no_secret_anywhere(
        estate: Estate, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    seen_at_alter: list[dict[str, str | None]] = []

    def at_alter(login: str, new: str) -> None:  # the moment the old value stops working
        seen_at_alter.append({"login": login, "new": new, "entry": estate.stored("acme/sql-login"),
                              "previous": estate.stored("acme/sql-login-previous"),
                              "server": estate.sql.password(login)})

    estate.sql.on_alter = at_alter
    report = estate.rotate()
    assert report.exit_code is ExitCode.OK, report.error
    new = estate.stored("acme/sql-login")
    assert new is not None and new != OLD and estate.sql.password(LOGIN) == new

    # Stored first: when the ALTER reached SQL Server the password manager held the new value as the entry and
    # the old one as its -previous, and SQL Server still took the old one.
    assert seen_at_alter == [{"login": LOGIN, "new": new, "entry": new, "previous": OLD, "server": OLD}]
    # The old value worked until then (the probe logged in with it), the new one was checked by logging in.
    events = estate.sql.events()
    alter = events.index(["alter", LOGIN])
    assert ["login", LOGIN] in events[:alter] and events[alter + 1:].count(["login", LOGIN]) >= 1
    assert ["login refused", LOGIN] not in events
    with pytest.raises(StepError, match="Login failed"):  # and now the old value is refused
        estate.sql.connect(server="db", port=1433, user=LOGIN, password=Secret(OLD))

    # The journal and the client record hold references only.
    reference = estate.vault.find("acme/sql-login")
    stored = [r for r in estate.journal.records if r["event"] == "credential.stored"]
    assert [(r["entry"], r["reference"]) for r in stored] == [("acme/sql-login", report.values["sql_login_ref"])]
    assert str(report.values["sql_login_ref"]).split("#")[0] == str(reference).split("#")[0]
    record = get_client(raw_client("dynamodb"), "acme")
    assert record is not None and record.secrets["sql_login"] == report.values["sql_login_ref"]

    # The leak canary: neither value in the password manager's argv or environment, in any file under the test's
    # folders but the fake SQL Server's (its logins file is the server's own store), or in any output.
    out, err = capfd.readouterr()
    journal = json.dumps(estate.journal.records, default=str).encode()
    places = {"password-manager argv and environment": calls(estate.log).encode(), "journal": journal,
              **{k: v for k, v in files_under(tmp_path).items() if not k.startswith(str(estate.sql.path.parent))},
              "stdout": out.encode(), "stderr": err.encode()}
    assert calls(estate.log), "kprov ran the real password manager"
    found = leaks({"old password": OLD, "new password": new, "master password": MASTER}, places)
    assert found == [], "\n".join(found)


class _Cutting:
    """The real password manager, but its update keeps the value without its last character: what a backend that
    cuts or re-encodes a value would do (no real one does it on demand, so this one layer is a fake)."""

    def __init__(self, vault: Any) -> None:
        self._vault = vault

    def __getattr__(self, name: str) -> Any:
        return getattr(self._vault, name)

    def update(self, name: str, secret: Secret) -> str:
        return str(self._vault.update(name, secret.derive(lambda value: value[:-1])))


def test_a_password_manager_that_gives_back_something_else_stops_the_rotation_before_the_login_changes(
        estate: Estate) -> None:
    cutting = replace(estate, vault=_Cutting(estate.vault))
    report = cutting.rotate()
    assert report.exit_code is ExitCode.FAILED
    assert "does not give back the value kprov stored as acme/sql-login" in report.error
    # SQL Server was never asked to change: the old value still works, and it is still in the password manager.
    assert ["alter", LOGIN] not in estate.sql.events() and estate.sql.password(LOGIN) == OLD
    assert estate.stored("acme/sql-login-previous") == OLD
