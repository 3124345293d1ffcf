"""RDS instance states (issue 16.5): usable is not only `available`.

RDS User Guide, "Viewing Amazon RDS DB instance status"
(https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/accessing-monitoring.html#Overview.DBInstance.Status):
a working instance passes through backing-up (every night), modifying, maintenance,
storage-optimization... moto keeps every instance `available`, so the tests set the state moto holds.
"""

from __future__ import annotations

import pytest

from kensium_provision.errors import ExitCode
from kensium_provision.model import Mode, Status
from kensium_provision.steps.rds import FAILED_STATES, SETTLING_STATES, USABLE_STATES, usable
from tests.checklist_harness import EXAMPLES, REGION, FakeClock, run_checklist
from tests.fakes import MemoryVault
from tests.test_client_install import World
from tests.test_client_install import world as world  # the fixture, used by name
from tests.test_shared_data import ACCOUNT, network, run_with

pytest_plugins = ["rabbitmq_fixtures"]


def set_status(identifier: str, status: str) -> None:
    from moto.rds.models import rds_backends

    rds_backends[ACCOUNT][REGION].databases[identifier].status = status


def test_the_three_sets_are_apart_and_cover_the_documented_usable_ones() -> None:
    assert not (USABLE_STATES & SETTLING_STATES or USABLE_STATES & FAILED_STATES or SETTLING_STATES & FAILED_STATES)
    assert {"available", "backing-up", "modifying", "maintenance", "storage-optimization",
            "configuring-enhanced-monitoring"} <= USABLE_STATES
    assert not usable("creating") and not usable("stopped") and usable("backing-up")


@pytest.mark.parametrize("status", ["backing-up", "storage-optimization", "modifying", "maintenance"])
def test_a_client_install_during_a_backup_or_a_modification_succeeds(world: World, status: str) -> None:
    set_status("db-pos-01", status)
    report = world.install()
    assert report.exit_code is ExitCode.OK, report.error
    assert {r.step_id: r.status for r in report.results}["db-instance-ready"] is Status.DONE
    check = world.check()
    assert check.exit_code is ExitCode.OK, [f.message for f in check.findings]


def test_a_stopped_instance_is_refused_and_check_says_so(world: World) -> None:
    assert world.install().exit_code is ExitCode.OK
    set_status("db-pos-01", "stopped")
    check = world.check()
    assert check.exit_code is ExitCode.FAILED
    assert [f.step_id for f in check.findings if "stopped" in f.message] == ["db-instance-ready"]


def test_the_shared_rds_checklist_waits_for_creating_and_takes_backing_up(aws: None) -> None:
    vault = MemoryVault()
    network()
    first, _ = run_with("shared/rds", Mode.APPLY, EXAMPLES / "shared-rds.yaml", vault)
    assert first.exit_code is ExitCode.OK, first.error
    set_status("db-pos-01", "backing-up")  # what a new instance does right after `creating`
    check = run_checklist("shared/rds", Mode.CHECK, EXAMPLES / "shared-rds.yaml", vault=vault)
    assert check.exit_code is ExitCode.OK, [f.message for f in check.findings]
    set_status("db-pos-01", "creating")
    clock = FakeClock()
    from moto.rds.models import rds_backends

    def after_a_while(seconds: float) -> None:  # AWS moves it on while kprov waits
        clock.now += seconds
        rds_backends[ACCOUNT][REGION].databases["db-pos-01"].status = "backing-up"

    clock.sleep = after_a_while  # type: ignore[method-assign]
    report, _ = run_with("shared/rds", Mode.APPLY, EXAMPLES / "shared-rds.yaml", vault, clock=clock)
    assert report.exit_code is ExitCode.OK, report.error
    assert clock.now > 1000.0  # it did wait
