"""Issue 15.4: a drifted shared resource under a client is a finding of that client, never an input error.

The shared estate and clients are made by the real install checklist under in-process moto with the
RabbitMQ emulator (tests/test_fleet.py's `three`, tests/test_client_install.py's `world`); the drift is
made behind kprov's back with boto3, as an operator's console would.
"""

from __future__ import annotations

from typing import Any

import pytest

from kensium_provision.errors import ExitCode
from tests.test_client_install import World, world  # noqa: F401  (the fixture)
from tests.test_fleet import Fleet, by_client, three  # noqa: F401  (the fixture)

pytest_plugins = ["rabbitmq_fixtures"]

STOPPED_EVERYTHING = "the recorded answers no longer hold"  # the old finding that hid all the others


def _untag_host(estate: World, name: str = "POS01") -> None:
    ec2 = estate.client("ec2")
    [reservation] = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": [name]}])["Reservations"]
    ec2.delete_tags(Resources=[reservation["Instances"][0]["InstanceId"]], Tags=[{"Key": "PosVersion"}])


def _steps(findings: list[tuple[str, str]]) -> list[str]:
    return sorted({step for step, _ in findings})


def test_a_host_without_its_pos_version_tag_is_each_clients_finding_beside_their_others(three: Fleet) -> None:  # noqa: F811
    _untag_host(three.world)
    three.world.broker.client().delete_vhost("beta")
    report = three.check()
    assert report.exit_code is ExitCode.FAILED
    found = by_client(report)
    # The step that reads the tag says what differs; the one the answer belongs to, that an install would
    # no longer offer the host.
    assert _steps(found["acme"]) == _steps(found["gamma"]) == ["tenant-host", "tenant-host-version"]
    assert _steps(found["beta"]) == ["hub-vhost", "tenant-host", "tenant-host-version"]  # beta's own drift too
    acme = dict(found["acme"])
    assert "none, should be 3.10.2" in acme["tenant-host-version"]
    assert "POS01 is no longer among them (an install offers now: none)" in acme["tenant-host"]
    assert not any(STOPPED_EVERYTHING in m or "no choices for" in m for f in found.values() for _, m in f)


def test_a_stopped_rds_instance_and_a_deleted_broker_are_findings_of_their_steps(three: Fleet) -> None:  # noqa: F811
    w = three.world
    w.client("rds").stop_db_instance(DBInstanceIdentifier="db-POS-01")
    [broker] = w.client("mq").list_brokers()["BrokerSummaries"]
    w.client("mq").delete_broker(BrokerId=broker["BrokerId"])
    report = three.check()
    assert report.exit_code is ExitCode.FAILED
    found = by_client(report)
    for org in ("acme", "beta", "gamma"):
        steps = _steps(found[org])
        assert {"db-instance-ready", "broker-admin"} <= set(steps), found[org]
        assert not any(STOPPED_EVERYTHING in m for _, m in found[org])
    assert "stopped" in " ".join(m for step, m in found["acme"] if step == "db-instance-ready")
    assert "mq-POS-01 is no longer among them" in " ".join(m for step, m in found["acme"] if step == "broker-admin")


@pytest.fixture
def installed(world: World, tmp_path: Any) -> World:  # noqa: F811
    from tests.test_client_install import answers

    report = world.install(answers=answers(tmp_path))
    assert report.exit_code is ExitCode.OK, report.error or [f.message for f in report.findings]
    return world


def test_check_client_all_on_the_command_line_reports_the_drift(installed: World, kprov: Any) -> None:
    _untag_host(installed)
    done = kprov("--output", "json", "check", "client", "--all")
    assert done.code == ExitCode.FAILED, done.err
    [client] = done.json()["clients"]
    assert "tenant-host-version" in {d["step"] for d in client["details"]}, client


def test_check_client_org_reports_the_drift_as_a_finding_not_exit_3(installed: World, kprov: Any) -> None:
    _untag_host(installed)
    done = kprov("check", "client", "acme")
    assert "no choices for" not in done.err
    assert done.code == ExitCode.FAILED, done.err
    assert "tenant-host-version" in done.err or "POS version" in done.err
