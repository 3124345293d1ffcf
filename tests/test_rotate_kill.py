"""Issue 18.2's must-show: each credential rotated end to end (the RDS master, the broker admin, the client's SQL
login, hub user and IAM access key) with the vault being KeePassXC, then `pass` (the real programs), kill -9 at
random points, then resume: the account and the vault agree, no credential is lost, and no secret is in any
argv, environment, file or output.

Real `kprov` subprocesses run against a moto server in this process (tests/e2e.py, environment `sandbox`
reached through AWS_ENDPOINT_URL), and the broker admin is rotated on a real rabbitmq-server (a config's
`rabbitmq.base_url`). Being in-process, the test reads moto's own records: the RDS instance's master password
and each IAM access key's secret. kprov is killed two ways:
- after its Nth call of the password manager (N drawn at random, the seed in the failure message): the
  program on PATH is a wrapper that logs its argv and environment, runs the real program (so a write lands),
  then SIGKILLs its parent, kprov, before kprov sees the answer;
- while an AWS request is held at the moto server (ModifyDBInstance, CreateAccessKey, UpdateAccessKey): the
  request lands after kprov is dead, its answer lost;
- at the client SQL login's ALTER LOGIN, just before it lands and just after (its answer lost). No SQL Server
  can run here: the SQL side is tests/fakes.FileSqlServer, a fake whose logins live in a file, loaded in kprov
  as the `pymssql` driver (`sql: {driver: pymssql}` in the config, the fake first on PYTHONPATH), and which
  SIGKILLs its own process, kprov, at the statement named.
At each kill point the value the service takes is in the vault (the entry, or its `-previous`); then
`kprov resume RUN_ID` finishes, and the entry's value is the one the service takes.
"""

from __future__ import annotations

import json
import os
import random
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kensium_provision.errors import ExitCode
from kensium_provision.rabbitmq.management import ManagementClient, RabbitMQError
from kensium_provision.records.clients import INSTALLED, ClientRecord, ensure_table, put_record
from kensium_provision.secret import Secret
from kensium_provision.vault.keepassxc import KeePassXCVault
from kensium_provision.vault.passstore import PassVault
from tests.e2e import ACCOUNT, REGION, MotoServer, World, finished, moto_server, stop, wait_for
from tests.fakes import FileSqlServer, pymssql_shim
from tests.password_managers import gpg_home, make_kdbx, require
from tests.rabbitmq_fixtures import Broker
from tests.test_canary import files_under, leaks
from tests.test_vault_pass import init_store

pytestmark = [pytest.mark.slow, pytest.mark.password_manager, pytest.mark.rabbitmq]
pytest_plugins = ["rabbitmq_fixtures"]

SEED = int(os.environ.get("KPROV_KILL_SEED") or random.SystemRandom().randrange(1 << 30))
KILLS = 2  # random password-manager kill points per credential and backend (the holds come on top)
MASTER = "Initial-Master-1"
LOGIN, SQL_LOGIN_PASSWORD = "POS_acme_user", "Sql-Login-Initial-1"


# --- the password manager, behind a wrapper that can kill kprov ------------------------------------------


@dataclass
class Backend:
    """One real password manager: the config's vault section, the vault as the test reads it, and the
    killing wrapper found first on kprov's PATH."""

    name: str
    settings: dict[str, object]
    vault: Any
    env: dict[str, str]
    root: Path  # the wrapper's files: its log of argv and environment, its call counter, its kill order

    def kill_at(self, n: int) -> None:
        (self.root / "count").write_text("0")
        (self.root / "kill-at").write_text(str(n))

    def calls(self) -> int:
        return int((self.root / "count").read_text() or 0)

    def log(self) -> bytes:
        path = self.root / "calls.log"
        return path.read_bytes() if path.exists() else b""


def _wrapper(program: str, root: Path) -> Path:
    real = require(program)
    folder = root / "bin"
    folder.mkdir(parents=True)
    (root / "count").write_text("0")
    (root / "kill-at").write_text("0")
    script = folder / program
    script.write_text(f"""#!/bin/sh
{{ printf "argv\\0"; printf "%s\\0" "$@"; printf "env\\0"; env -0; printf "\\n"; }} >> "{root}/calls.log"
n=$(( $(cat "{root}/count") + 1 )); echo "$n" > "{root}/count"
"{real}" "$@"; rc=$?
if [ "$n" = "$(cat "{root}/kill-at")" ]; then kill -9 "$PPID"; fi
exit "$rc"
""")
    script.chmod(0o700)
    return folder


@pytest.fixture(params=["keepassxc", "pass"])
def backend(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    root = tmp_path / "pm"  # outside kprov's HOME and TMPDIR: the database and the store hold secrets encrypted
    root.mkdir()
    if request.param == "keepassxc":
        key = root / "team.keyx"
        database = make_kdbx(root / "team.kdbx", key_file=key)
        folder = _wrapper("keepassxc-cli", root)
        yield Backend("keepassxc", {"backend": "keepassxc", "database": str(database), "key_file": str(key),
                                    "password": False},
                      KeePassXCVault(database, password=None, key_file=key), {"PATH": f"{folder}:{os.environ['PATH']}"},
                      root)
        return
    require("pass")
    with gpg_home(root / "gnupg") as gpg:
        monkeypatch.setenv("GNUPGHOME", str(gpg.home))  # the test's own reads of the store, and pass init
        store = init_store(root / "store", gpg.key_id)
        folder = _wrapper("pass", root)
        yield Backend("pass", {"backend": "pass", "store": str(store)}, PassVault(store),
                      {"PATH": f"{folder}:{os.environ['PATH']}", "GNUPGHOME": str(gpg.home)}, root)


# --- the account: moto in this process, the broker a real rabbitmq-server -----------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[MotoServer]:
    yield from moto_server()


@dataclass
class Estate:
    server: MotoServer
    world: World
    backend: Backend
    broker: Broker
    outputs: list[str]
    sql: FileSqlServer
    env: dict[str, str]  # kprov's environment: the password manager's, and the fake SQL driver's when configured

    def use_sql(self) -> None:
        """Configure the SQL connection (the fake, as the pymssql driver); only the client SQL login's rotation
        uses it: the RDS master's is checked by RDS's own signal then, as the fake does not follow RDS."""
        self.env = {**self.env, **pymssql_shim(self.sql.path.parent / "driver", self.sql.path)}
        self.world.write_config(json.dumps({"vault": self.backend.settings, "sql": {"driver": "pymssql"},
                                            "rabbitmq": {"base_url": self.broker.base_url}}))

    def stored(self, entry: str) -> str | None:
        reference = self.backend.vault.find(entry)
        return None if reference is None else str(self.backend.vault.fetch(reference).reveal())

    def run(self, *args: str) -> tuple[int, str, str]:
        process = self.world.spawn(*args, env=self.env)
        try:
            code, out, err = finished(process)
        finally:
            stop(process)
        self.outputs += [out, err]
        return code, out, err


@pytest.fixture
def estate(server: MotoServer, backend: Backend, real_rabbitmq: Broker, tmp_path: Path) -> Iterator[Estate]:
    server.reset()
    rds, iam, mq = server.client("rds"), server.client("iam"), server.client("mq")
    rds.create_db_instance(DBInstanceIdentifier="db-POS-01", Engine="sqlserver-web", DBInstanceClass="db.t3.small",
                           MasterUsername="admin", MasterUserPassword=MASTER, AllocatedStorage=20,
                           AvailabilityZone="us-east-1a", Tags=[{"Key": "kprov:name", "Value": "db-POS-01"}])
    mq.create_broker(BrokerName="mq-POS-01", EngineType="RABBITMQ", EngineVersion="3.13",
                     DeploymentMode="SINGLE_INSTANCE", HostInstanceType="mq.t3.micro", PubliclyAccessible=True,
                     AutoMinorVersionUpgrade=True, Users=[{"Username": "admin", "Password": "unused-by-rabbitmq"}])
    iam.create_user(UserName="rms_acme", Tags=[{"Key": "OrgID", "Value": "acme"}])
    key = iam.create_access_key(UserName="rms_acme")["AccessKey"]
    dynamodb = server.client("dynamodb")
    ensure_table(dynamodb)
    put_record(dynamodb, ClientRecord(org_id="acme", client_name="Acme", status=INSTALLED, iam_user="rms_acme",
                                      rds_instance="db-POS-01", broker="mq-POS-01", vhost="acme",
                                      rabbitmq_user="rms_acme", login=LOGIN))
    admin_password, hub_password = "Broker-Admin-Initial-1", "Hub-User-Initial-1"
    broker = real_rabbitmq.client()
    broker.put_user("admin", admin_password, tags="administrator")
    broker.put_vhost("acme")  # the client's hub, as the install makes it
    broker.put_user("rms_acme", hub_password)
    vault = backend.vault
    for entry, value in (("db-POS-01/master", MASTER), ("mq-POS-01/admin", admin_password),
                         ("acme/rabbitmq-hub", hub_password), ("acme/sql-login", SQL_LOGIN_PASSWORD),
                         # the key's secret alone, as installs stored it before the entry named its key id
                         ("acme/iam-access-key", key["SecretAccessKey"])):
        vault.store(entry, Secret(value), description="", tags={})
    sql = FileSqlServer(tmp_path / "sql" / "logins.json")  # outside the world: the fake's own store, in clear
    sql.path.parent.mkdir()
    sql.set_password("admin", MASTER)
    sql.set_password(LOGIN, SQL_LOGIN_PASSWORD)
    world = World(tmp_path / "world", extra_env={"AWS_ENDPOINT_URL": server.endpoint})
    world.write_config(json.dumps({"vault": backend.settings, "rabbitmq": {"base_url": real_rabbitmq.base_url}}))
    try:
        yield Estate(server, world, backend, real_rabbitmq, [], sql, dict(backend.env))
    finally:
        for user in ("admin", "rms_acme"):
            broker.delete_user(user)
        broker.delete_vhost("acme")


# --- what the service takes ----------------------------------------------------------------------------------


def master_password() -> str:
    from moto.rds.models import rds_backends

    return str(rds_backends[ACCOUNT][REGION].databases["db-pos-01"]._master_user_password)  # its getter refuses


def iam_keys() -> dict[str, tuple[str, str]]:
    """rms_acme's keys in moto: id -> (status, secret)."""
    from moto.iam.models import iam_backends

    user = iam_backends[ACCOUNT]["global"].users["rms_acme"]
    return {k.access_key_id: (k.status, k.secret_access_key) for k in user.access_keys}


def _account() -> tuple[str, list[tuple[str, tuple[str, str]]]]:
    return master_password(), sorted(iam_keys().items())


def _reached(held: Any, process: Any) -> Callable[[], bool]:
    return lambda: bool(held.reached.is_set() or process.poll() is not None)


def _changed(account: object) -> Callable[[], bool]:
    return lambda: _account() != account


def admin_logs_in(broker: Broker, password: str | None) -> bool:
    if not password:
        return False
    try:
        ManagementClient(broker.base_url, "admin", password).whoami()
    except RabbitMQError as exc:
        if exc.status != 401:
            raise
        return False
    return True


@dataclass(frozen=True)
class Credential:
    name: str
    args: tuple[str, ...]
    answers: str
    holds: tuple[str, ...]
    works: Callable[[Estate, str | None], bool]  # does the service take this stored value?
    agrees: Callable[[Estate], bool]  # after a finished rotation: the entry is what the service takes, alone
    entry: str
    kills: int = KILLS  # random password-manager kill points
    sql_kills: tuple[str, ...] = ()  # kill-before / kill-after the fake SQL Server's ALTER LOGIN


def _hub_user_takes(estate: Estate, value: str | None) -> bool:
    """The broker holds the hash of `value` for the client's hub user (it has no management tag to log in with)."""
    from kensium_provision.steps.rotation import password_matches

    user = estate.broker.client().get_user("rms_acme")
    return bool(value) and user is not None and password_matches(user, str(value))


def _key_works(estate: Estate, value: str | None) -> bool:
    key_id, _, secret = (value or "").partition(":")
    found = iam_keys().get(key_id)
    return found is not None and found == ("Active", secret)


def _iam_agrees(estate: Estate) -> bool:
    key_id = (estate.stored("acme/iam-access-key") or "").partition(":")[0]
    active = [k for k, (status, _) in iam_keys().items() if status == "Active"]
    return _key_works(estate, estate.stored("acme/iam-access-key")) and active == [key_id]


SQL_KILLS = {"kill-before": "the ALTER LOGIN, before it landed", "kill-after": "the ALTER LOGIN, its answer lost"}


def _login_takes(estate: Estate, value: str | None) -> bool:
    return value is not None and estate.sql.password(LOGIN) == value


CREDENTIALS = {
    "rds-master": Credential(
        "rds-master", ("rotate", "shared", "rds"), "name: db-POS-01\n", ("ModifyDBInstance",),
        lambda e, v: v == master_password(), lambda e: e.stored("db-POS-01/master") == master_password(),
        "db-POS-01/master"),
    "broker-admin": Credential(
        "broker-admin", ("rotate", "shared", "rabbitmq"), "name: mq-POS-01\n", (),
        lambda e, v: admin_logs_in(e.broker, v), lambda e: admin_logs_in(e.broker, e.stored("mq-POS-01/admin")),
        "mq-POS-01/admin"),
    "rabbitmq-user": Credential(
        "rabbitmq-user", ("rotate", "acme", "rabbitmq"), "confirm: {pos-hub-settings: true}\n", (),
        lambda e, v: _hub_user_takes(e, v), lambda e: _hub_user_takes(e, e.stored("acme/rabbitmq-hub")),
        "acme/rabbitmq-hub"),
    "iam-access-key": Credential(
        "iam-access-key", ("rotate", "acme", "iam"),
        "delete_old_key: true\nconfirm: {pos-aws-settings: true}\n", ("CreateAccessKey", "UpdateAccessKey"),
        _key_works, _iam_agrees, "acme/iam-access-key"),
    # One random password-manager kill (the CI budget), and the ALTER LOGIN killed before and after it lands.
    "sql-login": Credential(
        "sql-login", ("rotate", "acme", "sql"), "confirm: {tenant-connection-string: true}\n", (),
        _login_takes, lambda e: _login_takes(e, e.stored("acme/sql-login")), "acme/sql-login",
        kills=1, sql_kills=("kill-before", "kill-after")),
}


def _nothing_lost(estate: Estate, credential: Credential) -> bool:
    """The value the service takes is in the vault: the entry's, or the one kept as its -previous."""
    return any(credential.works(estate, estate.stored(entry))
               for entry in (credential.entry, f"{credential.entry}-previous"))


def _secrets(estate: Estate, seen: set[str]) -> None:
    """Every value the vault and the service held so far (the canaries)."""
    for entry in ("db-POS-01/master", "mq-POS-01/admin", "acme/rabbitmq-hub", "acme/iam-access-key", "acme/sql-login"):
        for name in (entry, f"{entry}-previous"):
            value = estate.stored(name)
            if value:
                seen.update({value, value.partition(":")[2]} - {""})
    seen.add(master_password())
    seen.update(estate.sql.state()["logins"].values())
    seen.update(secret for _, secret in iam_keys().values())


@pytest.mark.parametrize("which", list(CREDENTIALS))
def test_kill_9_at_random_points_then_resume_loses_no_credential_and_leaks_none(
        estate: Estate, which: str) -> None:
    credential, world, rng = CREDENTIALS[which], estate.world, random.Random(f"{SEED}-{which}-{estate.backend.name}")  # noqa: S311
    answers = world.answers(f"{which}.yaml", credential.answers)
    rotate = (*credential.args, "--answers", str(answers), "--yes")
    seen: set[str] = set()
    _secrets(estate, seen)
    where = f"(KPROV_KILL_SEED={SEED}, {estate.backend.name}, {which})"
    if credential.sql_kills:
        estate.use_sql()

    # One rotation to the end: how many password-manager calls it makes, and that it works.
    estate.backend.kill_at(0)
    code, _, err = estate.run(*rotate)
    assert code == ExitCode.OK, f"{where}: {err}"
    assert credential.agrees(estate), where
    _secrets(estate, seen)
    total = estate.backend.calls()
    assert total >= 3, where  # find, fetch, update at least

    killed: list[str] = []

    def resumed(run_id: str, killed_at: str) -> None:
        lost = f"{where}: after the kill at {killed_at}, the service takes no value the password manager holds"
        assert _nothing_lost(estate, credential), lost
        _secrets(estate, seen)
        estate.backend.kill_at(0)
        killed.append(killed_at)
        code, _, err = estate.run("resume", run_id, "--answers", str(answers), "--yes")
        assert code == ExitCode.OK, f"{where}: resume after the kill at {killed_at}: {err}"
        assert credential.agrees(estate), f"{where}: the vault and the account disagree after the kill at {killed_at}"
        _secrets(estate, seen)

    for n in sorted(rng.sample(range(1, total + 1), min(credential.kills, total))):
        estate.backend.kill_at(n)
        before = world.run_ids()
        code, _, _ = estate.run(*rotate)
        if code != -signal.SIGKILL:  # fewer calls this time: it ended before the Nth
            assert code == ExitCode.OK, where
            continue
        resumed(world.new_run(before), f"password-manager call {n} of {total}")

    for action in credential.holds:
        held, before, account = estate.server.hold(action), world.run_ids(), _account()
        estate.backend.kill_at(0)
        process = world.spawn(*rotate, env=estate.env)
        try:
            wait_for(_reached(held, process), what=f"{action} {where}")
            assert held.reached.is_set(), f"{where}: {finished(process)}"
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        finally:
            held.release.set()  # the request lands now, its answer lost with kprov
            stop(process)
        wait_for(_changed(account), what=f"the held {action} to land {where}")
        resumed(world.new_run(before), f"{action} in flight")

    for when in credential.sql_kills:
        estate.backend.kill_at(0)
        (estate.sql.path.parent / when).write_text("ALTER LOGIN")
        before = world.run_ids()
        code, _, err = estate.run(*rotate)
        assert code == -signal.SIGKILL, f"{where}: not killed at {when} ALTER LOGIN: {err}"
        resumed(world.new_run(before), SQL_KILLS[when])

    assert len(killed) >= 1 + len(credential.holds) + len(credential.sql_kills), f"{where}: killed only at {killed}"

    # The leak canary: no value either side ever held is in an argv or environment the password manager got,
    # in any file kprov wrote (journals, locks, crash reports under HOME and TMPDIR), or in anything it printed.
    places = {"password-manager argv and environment": estate.backend.log(), **files_under(world.root),
              "output": "".join(estate.outputs).encode()}
    found = leaks({f"secret {i}": s for i, s in enumerate(sorted(seen))}, places)
    assert found == [], f"{where}:\n" + "\n".join(found)
