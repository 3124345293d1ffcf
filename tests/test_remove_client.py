"""Offboarding (issue 18.1): checklists/client/remove.yaml after the client install, under moto.

The world is test_client_install's: moto in process with the shared estate, the hub vhost on the RabbitMQ
emulator, and SQL Server as a fake DB-API connection (no SQL Server runs here). The fake learns the removal's
T-SQL below: the drops, and RDS's native backup procedures, whose backup it writes to moto's S3 as RDS would.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from kensium_provision.checklist.answers import AnswersOperator, load_answers
from kensium_provision.checklist.catalog import CHECKLISTS_DIR
from kensium_provision.checklist.schema import load_checklist
from kensium_provision.engine.run import RunReport, resolve_inputs, run
from kensium_provision.errors import ExitCode, InputError
from kensium_provision.guards import Environment, needs_typed_confirmation
from kensium_provision.model import Mode, Risk, Status
from kensium_provision.naming.loader import load_rules
from kensium_provision.records.clients import FREED, REMOVED, get_client
from kensium_provision.steps.base import StepContext
from kensium_provision.steps.offboard import Route53ReleaseRecord, S3RetainBucket
from kensium_provision.vault.backends import SecretsManagerVault
from tests.checklist_harness import moto_runtime, raw_client
from tests.test_client_install import FakeSqlServer, World, build_estate, reset_broker

if TYPE_CHECKING:
    from tests.conftest import Kprov
    from tests.rabbitmq_fixtures import Broker

pytest_plugins = ["rabbitmq_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
REMOVE = CHECKLISTS_DIR / "client" / "remove.yaml"
REMOVE_EXAMPLE = ROOT / "examples" / "client-acme-remove.yaml"
BACKUPS = "kensium-pos-backups"
BACKUP_KEY = "removed/acme/POS_acme-final.bak"
SECRETS = ("kprov/sandbox/acme/sql-login", "kprov/sandbox/acme/rabbitmq-hub", "kprov/sandbox/acme/iam-access-key")


class RemovingSqlServer(FakeSqlServer):
    """FakeSqlServer plus the removal's statements: DROP DATABASE / LOGIN and RDS's backup procedures."""

    def __init__(self) -> None:
        super().__init__()
        self.tasks: list[dict[str, object]] = []
        self.description: list[tuple[str]] = []

    def execute(self, sql: str) -> None:
        self.description = []
        if sql.startswith("SELECT") and (m := re.search(r"FROM sys\.server_principals WHERE name = N'([^']+)'", sql)):
            self.rows = [(m[1],)] if m[1] in self.logins else []
        elif "rds_task_status" in sql:
            columns = ("task_id", "task_type", "database_name", "lifecycle", "task_info", "S3_object_arn")
            self.description = [(c,) for c in columns]
            self.rows = [tuple(t[c] for c in columns) for t in self.tasks]
        elif "rds_backup_database" in sql:
            self.batches += 1
            db = re.search(r"@source_db_name = N'([^']+)'", sql)
            arn = re.search(r"@s3_arn_to_backup_to = N'arn:aws:s3:::([^/]+)/([^']+)'", sql)
            assert db and arn and db[1] in self.databases
            raw_client("s3").put_object(Bucket=arn[1], Key=arn[2], Body=b"TAPE" + db[1].encode())  # as RDS would
            self.tasks.append({"task_id": len(self.tasks) + 1, "task_type": "BACKUP_DB", "database_name": db[1],
                               "lifecycle": "SUCCESS", "task_info": "",
                               "S3_object_arn": f"arn:aws:s3:::{arn[1]}/{arn[2]}"})
        elif m := re.search(r"DROP DATABASE \[([^\]]+)\]", sql):
            self.batches += 1
            self.databases.discard(m[1])
            self.users.pop(m[1], None)
        elif m := re.search(r"DROP LOGIN \[([^\]]+)\]", sql):
            self.batches += 1
            self.logins.pop(m[1], None)
        else:
            super().execute(sql)


class RemovalWorld(World):
    """The install's world, which also runs the removal checklist."""

    def remove(self, mode: Mode = Mode.APPLY, answers: Path = REMOVE_EXAMPLE, **changes: object) -> RunReport:
        checklist = load_checklist(REMOVE, rule_ids=load_rules().ids)
        path = answers
        if changes:  # the example with some answers changed
            path = Path(self.tmp) / "remove.yaml"
            path.write_text(yaml.safe_dump({**yaml.safe_load(answers.read_text()), **changes}))
        vault = SecretsManagerVault(self.client("secretsmanager"), "sandbox")
        operator = AnswersOperator(load_answers(path, checklist), assume_yes=True, fetch_secret=vault.fetch)
        rt = self.runtime(mode, operator)
        values = resolve_inputs(checklist, rt, {"org_id": "acme"})
        return run(checklist, rt, values, types=self.types())

    tmp: str = ""


def with_native_backup(world: World) -> None:
    """db-POS-01 in an option group with SQLSERVER_BACKUP_RESTORE, and the backups bucket."""
    rds = world.client("rds")
    rds.create_option_group(OptionGroupName="pos-sqlserver-web", EngineName="sqlserver-web",
                            MajorEngineVersion="15.00", OptionGroupDescription="native backup")
    rds.modify_option_group(OptionGroupName="pos-sqlserver-web", ApplyImmediately=True, OptionsToInclude=[
        {"OptionName": "SQLSERVER_BACKUP_RESTORE",
         "OptionSettings": [{"Name": "IAM_ROLE_ARN", "Value": "arn:aws:iam::123456789012:role/rds-backup"}]}])
    rds.modify_db_instance(DBInstanceIdentifier="db-POS-01", OptionGroupName="pos-sqlserver-web",
                           ApplyImmediately=True)


@pytest.fixture
def world(emulated_rabbitmq: Broker, aws: None, tmp_path: Path) -> Iterator[RemovalWorld]:
    reset_broker(emulated_rabbitmq)
    w = RemovalWorld(broker=emulated_rabbitmq, sql=RemovingSqlServer())
    w.tmp = str(tmp_path)
    build_estate(w)
    w.client("s3").create_bucket(Bucket=BACKUPS)
    installed = w.install()
    assert installed.exit_code is ExitCode.OK, installed.error
    yield w
    reset_broker(emulated_rabbitmq)


def statuses(report: RunReport) -> dict[str, Status]:
    return {r.step_id: r.status for r in report.results}


def estate(world: World) -> dict[str, Any]:
    """What the removal touches, as a plain inventory (compared before and after)."""
    sm, iam, s3 = world.client("secretsmanager"), world.client("iam"), world.client("s3")
    record = get_client(world.client("dynamodb"), "acme")
    mq = world.broker.client()
    return {
        "record": record.status if record else None,
        "databases": sorted(world.sql.databases), "logins": sorted(world.sql.logins),
        "vhost": mq.get_vhost("acme") is not None, "rabbitmq_user": mq.get_user("rms_acme") is not None,
        "keys": sorted(k["Status"] for k in iam.list_access_keys(UserName="rms_acme")["AccessKeyMetadata"]),
        "bucket_tags": {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket="fusion-rms-acme")["TagSet"]},
        "secrets_pending": sorted(n for n in SECRETS if sm.describe_secret(SecretId=n).get("DeletedDate")),
        "backups": sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BACKUPS).get("Contents", [])),
    }


# --- the whole removal ---------------------------------------------------------------------------------


def test_remove_acme_leaves_exactly_the_documented_leftovers(world: RemovalWorld) -> None:
    with_native_backup(world)
    before = estate(world)
    assert before["databases"] == ["POS_acme"] and before["vhost"] and before["keys"] == ["Active"]

    report = world.remove()
    assert report.exit_code is ExitCode.OK, report.error or [f.message for f in report.findings]
    done = statuses(report)
    assert done["final-backup"] is Status.CHANGED and done["drop-database"] is Status.CHANGED
    assert done["dns-record-route53"] is Status.SKIPPED  # acme's DNS is not in Route 53: the manual step ran
    after = estate(world)
    assert after["record"] == REMOVED
    assert (after["databases"], after["logins"], after["vhost"], after["rabbitmq_user"]) == ([], [], False, False)
    assert after["keys"] == ["Inactive"]  # deactivated, not deleted
    assert after["secrets_pending"] == sorted(SECRETS)
    assert after["backups"] == [BACKUP_KEY]
    assert after["bucket_tags"]["kprov:retention"] == "archived"  # the example archives it
    s3 = world.client("s3")
    assert s3.get_public_access_block(Bucket="fusion-rms-acme")["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
    with pytest.raises(s3.exceptions.ClientError, match="NoSuchBucketPolicy"):
        s3.get_bucket_policy(Bucket="fusion-rms-acme")
    rules = s3.get_bucket_lifecycle_configuration(Bucket="fusion-rms-acme")["Rules"]
    assert [(r["ID"], r["Transitions"][0]["StorageClass"]) for r in rules] == [("kprov-archive", "DEEP_ARCHIVE")]
    deletion = world.client("secretsmanager").describe_secret(SecretId=SECRETS[0])
    # moto's DeletedDate is when the secret goes for good: the 30-day recovery window of the example
    assert (deletion["DeletedDate"] - deletion["LastChangedDate"]).days in (29, 30)
    record = get_client(world.client("dynamodb"), "acme")
    assert record is not None and record.evidence["removal_final_backup"] == f"s3://{BACKUPS}/{BACKUP_KEY}"
    assert record.evidence["removal_requested_by"] and record.database == "POS_acme"  # the history stays

    world.acts.clear()
    again = world.remove()  # a repeated removal finds everything done and changes nothing
    assert again.exit_code is ExitCode.OK, again.error
    assert world.acts == [] and world.mutating_calls() == []


def test_a_removed_clients_org_id_is_refused_for_a_new_install(world: RemovalWorld) -> None:
    with_native_backup(world)
    assert world.remove().exit_code is ExitCode.OK
    with pytest.raises(InputError, match=r"org id 'acme' is taken: client 'Acme Corporation' was removed") as caught:
        world.install()
    assert caught.value.exit_code is ExitCode.INVALID
    assert get_client(world.client("dynamodb"), "acme").status == REMOVED  # type: ignore[union-attr]


def test_dry_run_of_a_removal_makes_no_write(world: RemovalWorld) -> None:
    with_native_backup(world)
    before, batches = estate(world), world.sql.batches
    world.acts.clear()  # the install's
    plan = world.remove(Mode.PLAN)
    assert plan.exit_code is ExitCode.OK, plan.error
    assert world.acts == [] and world.mutating_calls() == [] and world.sql.batches == batches
    assert estate(world) == before
    st = statuses(plan)
    assert st["final-backup"] is Status.CHANGE and st["hub-vhost"] is Status.CHANGE
    assert st["drop-database"] is Status.DEPENDS  # never before the backup's location is known


def test_without_the_backup_option_the_backup_is_a_manual_step_with_its_location_as_evidence(
        world: RemovalWorld) -> None:
    # db-POS-01's option group lacks SQLSERVER_BACKUP_RESTORE: kprov cannot back up by itself.
    report = world.remove(backup_location="s3://kensium-pos-backups/by-hand/POS_acme.bak")
    assert report.exit_code is ExitCode.OK, report.error
    assert world.sql.tasks == []  # type: ignore[attr-defined]
    record = get_client(world.client("dynamodb"), "acme")
    assert record is not None
    assert record.evidence["removal_final_backup"] == "s3://kensium-pos-backups/by-hand/POS_acme.bak"


def test_without_backup_evidence_nothing_is_removed(world: RemovalWorld) -> None:
    before = estate(world)
    # No SQLSERVER_BACKUP_RESTORE, and the answers give no backup location: the run stops at the backup
    # (the engine either raises the missing answer or reports the step failed: both stop before any drop).
    try:
        report = world.remove()
        stopped = report.error if statuses(report)["drop-database"] is Status.PENDING else "the drop ran"
    except InputError as exc:
        stopped = str(exc)
    assert "missing answer for 'backup_location'" in stopped
    assert estate(world) == before


def test_every_change_of_the_removal_is_a_destroy_but_the_backup() -> None:
    checklist = load_checklist(REMOVE, rule_ids=load_rules().ids)
    changing = {s.id: s.risk for s in checklist.steps if s.risk is not Risk.READ}
    assert changing.pop("final-backup") is Risk.CREATE
    assert set(changing.values()) == {Risk.DESTROY}


def test_names_free_frees_only_a_removed_org_id_and_journals_the_record(
        world: RemovalWorld, kprov: Kprov, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_cli import at_a_terminal

    asked = at_a_terminal(monkeypatch)
    refused = kprov("names", "free", "acme")  # installed, not removed: never freed
    assert refused.code == ExitCode.INVALID and "remove-client acme first" in refused.err and not asked
    with_native_backup(world)
    assert world.remove().exit_code is ExitCode.OK
    done = kprov("names", "free", "acme")
    assert done.code == ExitCode.OK, done.err
    assert asked == ["A new client may then be installed as acme. Type acme to go on:"]
    record = get_client(world.client("dynamodb"), "acme")
    assert record is not None and record.status == FREED and record.evidence["removal_final_backup"]
    journal = "".join(p.read_text() for p in (Path(os.environ["KPROV_STATE_DIR"]) / "runs").glob("*.jsonl"))
    assert '"client.freed"' in journal and '"status":"removed"' in journal.replace(" ", "")
    # Free in the records, but rms_acme and fusion-rms-acme (kept by the removal) still take the id (N1).
    with pytest.raises(InputError, match="IAM user rms_acme"):
        world.install()
    # Once they are gone too (and the old secrets), a new install may claim the freed id over the kept record.
    iam, s3, sm = world.client("iam"), world.client("s3"), world.client("secretsmanager")
    for key in iam.list_access_keys(UserName="rms_acme")["AccessKeyMetadata"]:
        iam.delete_access_key(UserName="rms_acme", AccessKeyId=key["AccessKeyId"])
    iam.delete_user(UserName="rms_acme")
    for obj in s3.list_objects_v2(Bucket="fusion-rms-acme").get("Contents", []):
        s3.delete_object(Bucket="fusion-rms-acme", Key=obj["Key"])
    s3.delete_bucket(Bucket="fusion-rms-acme")
    for name in SECRETS:
        sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    again = world.install()
    assert again.exit_code is ExitCode.OK, again.error
    assert get_client(world.client("dynamodb"), "acme").status == "installed"  # type: ignore[union-attr]


# --- the typed confirmation: always, on every environment, never --yes ---------------------------------


def test_a_destroying_run_needs_the_typed_confirmation_on_an_unprotected_environment() -> None:
    qa = Environment(name="qa", account_id="123456789012", region="us-east-1", purposes=("qa",))
    assert needs_typed_confirmation(qa) is False
    assert needs_typed_confirmation(qa, destroys=True) is True


def test_yes_alone_does_not_remove(world: RemovalWorld, kprov: Kprov) -> None:
    before = estate(world)
    done = kprov("remove-client", "acme", "--yes", "--non-interactive", "--answers", str(REMOVE_EXAMPLE))
    assert done.code == ExitCode.INVALID, done.err  # the typed org id is a missing answer: nothing attempted
    assert "THIS RUN DESTROYS RESOURCES in sandbox" in done.err
    assert "confirm_target: acme" in done.err
    assert estate(world) == before


def test_remove_client_dry_run_on_the_command_line_changes_nothing(world: RemovalWorld, kprov: Kprov) -> None:
    before = estate(world)
    done = kprov("--output", "json", "remove-client", "acme", "--dry-run", "--answers", str(REMOVE_EXAMPLE))
    # (hub-vhost fails here: the CLI has no sandbox broker, and moto's Amazon MQ console URL does not resolve)
    steps = {s["id"]: s["status"] for s in done.json()["steps"]}
    assert steps["record"] == "done" and steps["final-backup"] == "will change", steps
    assert estate(world) == before


# --- single step types ---------------------------------------------------------------------------------


def _ctx(mode: Mode) -> StepContext:
    return StepContext(moto_runtime(mode), "step", {})


def test_the_route53_record_is_released_exactly_as_it_is(aws: None) -> None:
    r53 = raw_client("route53")
    zone = r53.create_hosted_zone(Name="kensiumpos.example", CallerReference="z1")["HostedZone"]["Id"]
    record = {"Name": "acme.kensiumpos.example.", "Type": "A", "TTL": 300,
              "ResourceRecords": [{"Value": "198.51.100.7"}]}
    r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [
        {"Action": "CREATE", "ResourceRecordSet": record},
        {"Action": "CREATE", "ResourceRecordSet": {**record, "Name": "acme2.kensiumpos.example."}}]})
    step, params = Route53ReleaseRecord(), {"zone_id": zone, "record": "acme.kensiumpos.example", "type": "A"}
    probe = step.probe(_ctx(Mode.PLAN), params)
    assert not probe.done and "198.51.100.7" in probe.note
    assert step.act(_ctx(Mode.APPLY), params, probe) == {"released": ["198.51.100.7"]}
    assert step.probe(_ctx(Mode.PLAN), params).done and step.verify(_ctx(Mode.CHECK), params) == ()
    names = [r["Name"] for r in r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]]
    assert "acme2.kensiumpos.example." in names and "acme.kensiumpos.example." not in names


def test_keep_leaves_the_bucket_alone_and_the_storage_class_comes_from_botocore(aws: None) -> None:
    raw_client("s3").create_bucket(Bucket="fusion-rms-acme")
    step = S3RetainBucket()
    probe = step.probe(_ctx(Mode.PLAN), {"bucket": "fusion-rms-acme", "retention": "keep"})
    assert probe.done and "kept" in probe.note
    check = next(p for p in step.params if p.name == "storage_class").check
    assert check is not None and check("DEEP_ARCHIVE") is None
    problem = check("COLD_STORAGE")
    assert problem is not None and "GLACIER" in problem


def test_secrets_are_scheduled_only_with_a_window_aws_allows() -> None:
    from kensium_provision.steps.offboard import CredentialScheduleDeletion

    window = next(p for p in CredentialScheduleDeletion.params if p.name == "recovery_window_days")
    assert (window.minimum, window.maximum, window.default) == (7, 30, 30)


def test_a_removed_client_is_history_not_an_install_to_check(world: RemovalWorld, kprov: Kprov) -> None:
    """`check client acme` and `check client --all` do not report everything the removal removed."""
    with_native_backup(world)
    assert world.remove().exit_code is ExitCode.OK
    one = kprov("check", "client", "acme")
    assert one.code == ExitCode.INVALID, one.err
    assert "client 'acme' was removed" in one.err and "there is no install to check" in one.err
    fleet = kprov("--output", "json", "check", "client", "--all")
    assert fleet.code == ExitCode.OK, fleet.err
    document = fleet.json()
    assert document["clients"] == []
    assert [(c["org_id"], c["reason"].split(" by run ")[0]) for c in document["not_checked"]] == [("acme", "removed")]
