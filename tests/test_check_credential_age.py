"""Issue 18.2: `check client --all` reports each client credential older than `rotation.max_age_days` as a
finding, dated by what the check reads anyway (Secrets Manager's ListSecrets, IAM's credential report).

Under in-process moto with the RabbitMQ emulator (tests/test_fleet.py's `three`: acme, beta and gamma made
by the real install checklist, each with its SQL login and hub user passwords in Secrets Manager and, as
`simulate_pos` makes it in the sandbox, an IAM user with one access key). Nothing can make a credential
old in moto, so the check's clock (`FleetRequest.now`) is moved past the age instead.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from kensium_provision.errors import ExitCode
from kensium_provision.fleet import snapshot
from kensium_provision.records.clients import ClientRecord
from tests.test_fleet import SHARED_READS, Fleet, by_client, three  # noqa: F401  (the fixture)

pytest_plugins = ["rabbitmq_fixtures"]

LATER = datetime.now(UTC) + timedelta(days=100)


def _with_max_age(fleet: Fleet, days: int) -> dict[str, Any]:
    return {**fleet.request().settings, "rotation": {"max_age_days": days}}


def test_credentials_older_than_the_age_are_findings_of_their_steps_at_no_extra_call(three: Fleet) -> None:  # noqa: F811
    assert three.check(now=LATER, settings=_with_max_age(three, 200)).ok  # 100 days old: not yet due
    report = three.check(now=LATER)  # the default age, 90 days
    assert report.exit_code is ExitCode.FAILED and report.max_age_days == 90
    found = by_client(report)
    for org in ("acme", "beta", "gamma"):
        steps = dict(found[org])
        assert sorted(steps) == ["hub-vhost", "iam-user", "sql-password"], found[org]
        assert steps["sql-password"].startswith("The password of the SQL login (sql_login) was last set on ")
        assert "days ago (rotation.max_age_days: 90): due for rotation" in steps["sql-password"]
        assert steps["sql-password"].endswith(f"`kprov rotate {org} sql`")
        assert steps["hub-vhost"].endswith(f"`kprov rotate {org} rabbitmq`")
        assert steps["iam-user"].startswith(f"Access key 1 of rms_{org} was last set on ")
        assert steps["iam-user"].endswith(f"`kprov rotate {org} iam`")
    assert [(d.org_id, d.credential, d.kind) for d in report.due][:3] == [
        ("acme", "rabbitmq_user", "secret"), ("acme", "sql_login", "secret"), ("acme", "access key 1 of rms_acme",
                                                                               "access key")]
    assert all(d.age_days >= 99 for d in report.due) and len(report.due) == 9
    # Dated from the snapshot's own reads: no per-secret or per-user read was added.
    assert three.calls("secretsmanager:DescribeSecret") == three.calls("iam:ListAccessKeys") == 0
    assert int(report.api_calls["calls"]) <= 2 * 3 + SHARED_READS  # type: ignore[call-overload]
    assert all("Sql-" not in m and "Hub-" not in m for f in found.values() for _, m in f)  # never a value

    from kensium_provision.app.commands.fleet import build_overview, to_csv

    overview = build_overview([], {}, report, due=report.due, max_age_days=report.max_age_days)
    assert "due,acme,sql_login,secret," in to_csv(overview)  # `kprov fleet` shows the check's own list


def test_a_user_missing_from_the_credential_report_is_aged_by_its_own_listing(three: Fleet,  # noqa: F811
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    real = snapshot._read_report

    def without_beta(iam: Any) -> Any:  # as if rms_beta was made after the report
        found = real(iam)
        return None if found is None else ({k: v for k, v in found[0].items() if k != "rms_beta"}, found[1])

    monkeypatch.setattr(snapshot, "_read_report", without_beta)
    report = three.check(now=LATER)
    [key] = three.world.client("iam").list_access_keys(UserName="rms_beta")["AccessKeyMetadata"]
    assert ("beta", key["AccessKeyId"], "access key") in [(d.org_id, d.credential, d.kind) for d in report.due]
    assert three.calls("iam:ListAccessKeys") == 1  # beta's, once, shared with its iam-user step


def test_one_clients_ages_read_live() -> None:
    """`fleet.rotation.live_ages`: DescribeSecret's LastChangedDate and ListAccessKeys' CreateDate on moto."""
    from kensium_provision.fleet.rotation import live_ages

    with mock_aws():
        sm, iam = boto3.client("secretsmanager", region_name="us-east-1"), boto3.client("iam", region_name="us-east-1")
        made = sm.create_secret(Name="kprov/sandbox/acme/sql-login", SecretString="s3cret-value")
        iam.create_user(UserName="rms_acme")
        key = iam.create_access_key(UserName="rms_acme")["AccessKey"]["AccessKeyId"]
        record = ClientRecord(org_id="acme", iam_user="rms_acme",
                              secrets={"sql_login": f"{made['ARN']}#{made['VersionId']}"})
        assert live_ages(record, sm, iam, max_age_days=90) == ()  # just made
        due = live_ages(record, sm, iam, max_age_days=90, now=LATER)
        assert [(d.org_id, d.credential, d.kind) for d in due] == [("acme", "sql_login", "secret"),
                                                                  ("acme", key, "access key")]
        assert live_ages(record, sm, iam, max_age_days=200, now=LATER) == ()
        removed = ClientRecord(org_id="acme", status="removed", iam_user="rms_acme", secrets=record.secrets)
        assert live_ages(removed, sm, iam, max_age_days=90, now=LATER) == ()  # a removed client's are not due


def test_check_shared_reports_the_rds_master_and_broker_admin_older_than_the_age(
        aws: None, kprov: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from kensium_provision.fleet import rotation
    from tests.e2e import example

    for resource in ("vpc", "rds", "rabbitmq"):
        done = kprov("provision", "shared", resource, "--answers", example(f"shared-{resource}.yaml"), "--yes")
        assert done.code == ExitCode.OK, done.err[-3000:]
    fresh = kprov("check", "shared", "rds", "rabbitmq")
    assert "rotation" not in fresh.err, fresh.err
    # moto stamps each secret with the time it was made: the check's clock is moved on instead (moto still
    # answers DescribeSecret).
    monkeypatch.setattr(rotation, "clock", lambda: LATER)
    later = kprov("check", "shared", "rds", "rabbitmq")
    assert later.code == ExitCode.FAILED
    lines = [line.strip() for line in later.err.splitlines() if "✗ rotation:" in line]
    assert len(lines) == 2, later.err
    admin, master = lines  # by resource: rabbitmq, rds
    assert master.startswith("✗ rotation: The master password of RDS instance db-POS-01 (db-POS-01/master) was "
                             "last set on ") and master.endswith("`kprov rotate shared rds`")
    assert "(mq-POS-01/admin)" in admin and admin.endswith("`kprov rotate shared rabbitmq`")
    assert "2 credentials due for rotation." in later.err
    as_json = kprov("--output", "json", "check", "shared", "rds", "rabbitmq")  # the same two, in the JSON
    assert as_json.code == ExitCode.FAILED
    assert [m.split(" (")[0] for m in as_json.json()["rotation"]] == [
        line.removeprefix("✗ rotation: ").split(" (")[0] for line in lines]


def test_one_clients_due_credentials_become_findings_of_its_check_steps() -> None:
    """`fleet.rotation.with_ages`: what `check client ORG` would add to its report (app.bootstrap, see the
    module), on the report's own step results."""
    from kensium_provision.engine.run import RunReport
    from kensium_provision.fleet import rotation
    from kensium_provision.model import Mode, Risk, Status, StepResult

    steps = [StepResult(step_id=s, title=t, status=Status.DONE, risk=Risk.READ)
             for s, t in (("sql-password", "Generate the client SQL login's password"), ("iam-user", "IAM user"))]
    report = RunReport(checklist_id="install-client", mode=Mode.CHECK, results=tuple(steps))
    with mock_aws():
        sm, iam = boto3.client("secretsmanager", region_name="us-east-1"), boto3.client("iam", region_name="us-east-1")
        made = sm.create_secret(Name="kprov/sandbox/acme/sql-login", SecretString="s3cret-value")
        iam.create_user(UserName="rms_acme")
        record = ClientRecord(org_id="acme", iam_user="rms_acme",
                              secrets={"sql_login": f"{made['ARN']}#{made['VersionId']}"})
        assert rotation.with_ages(report, record, sm, iam, max_age_days=90) is report  # nothing due today
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(rotation, "clock", lambda: LATER)
            later = rotation.with_ages(report, record, sm, iam, max_age_days=90)
    [sql, user] = later.results
    assert sql.status is Status.FAILED and user.status is Status.DONE and later.exit_code is ExitCode.FAILED
    [finding] = sql.findings
    assert finding.message.startswith("Generate the client SQL login's password: The password of the SQL login "
                                      "(sql_login) was last set on ")
    assert finding.message.endswith("`kprov rotate acme sql`") and finding.step_id == "sql-password"
