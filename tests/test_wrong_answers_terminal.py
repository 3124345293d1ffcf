"""Issue 15's wrong answers, typed at the real prompts in a real terminal (tmux) against the sandbox: each is
refused where it is typed, with the rule and an example, the same question is asked again, and kprov has sent
no write when the operator stops (Ctrl-C): the run's journal has no step intent and its call counter no write.

The VPC's repeated zone and IP 999.1.1.1 are in tests/test_validate_terminal.py; here the RDS storage 19 and a
markup engine version, and the install's date 2026-13-01, `maybe` at a yes/no question and the bucket `../x`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kensium_provision.aws.wall import is_read
from tests.test_terminal import ENTER, NO, Operator, Terminal, chosen, example, fresh, shared_estate, typed

__all__ = ["fresh"]  # the fixture, used by name


def _refused(operator: Operator, wrong: str, says: str, *, right: str | None = "", prefilled: str = "") -> str:
    """Clear the prompt's default, type `wrong`, see the rule; then type `right` (or the default again), or,
    with `right=None`, leave the question asked (the caller presses Ctrl-C at it)."""
    pane = operator.pane
    for _ in prefilled:
        pane.send("BSpace")
    pane.type(wrong)
    pane.send("Enter")
    screen = operator.expect(says)
    # The rule is a toolbar under the question, erased once it is answered: read on from the question itself.
    operator.seen = screen.rfind("\n? ", 0, operator.seen) + 3
    deadline = time.monotonic() + 10  # and the wrong answer as typed, on its line (prompt_toolkit may wrap it)
    while wrong not in screen.replace("\n", "") and time.monotonic() < deadline:
        time.sleep(0.1)
        screen = operator.screen()
    assert wrong in screen.replace("\n", ""), screen
    if right is None:
        return screen
    for _ in wrong:
        pane.send("BSpace")
    pane.type(right or prefilled)
    pane.send("Enter")
    return screen


def _last_run(terminal: Terminal, checklist: str) -> list[dict[str, object]]:
    """The records of the newest run of `checklist` (run ids sort by their start)."""
    return [recs for recs in terminal.journals().values() if recs and recs[0].get("checklist") == checklist][-1]


def _nothing_written(terminal: Terminal, checklist: str) -> None:
    records = _last_run(terminal, checklist)
    assert not [r for r in records if r.get("event") == "step.intent"]
    sent = records[-1].get("api_calls", {})
    assert isinstance(sent, dict)
    assert [op for op in sent.get("by_operation", {}) if not is_read(*op.split(":", 1))] == []


@pytest.mark.terminal
def test_the_rds_prompts_refuse_storage_19_and_a_markup_engine_version(fresh: Terminal) -> None:
    done = fresh.kprov("provision", "shared", "vpc", "--answers", example("shared-vpc.yaml"), "--yes")
    assert done.returncode == 0, done.stderr
    pane = fresh.pane("provision", "shared", "rds")
    try:
        operator = Operator(pane)
        operator.converse([("RDS instance name", ENTER), ("edition", ENTER)], stop_at="engine version")
        # `[bold]x[/bold]` stays on its line as typed (never read as markup), and the rule says why it is wrong.
        screens = [_refused(operator, "[bold]x[/bold]", "must be a version made of numbers and dots (for example "
                            "15.00.4415.2.v1)", prefilled="15.00.4415.2.v1")]
        operator.converse([("engine version", ENTER), ("instance class", chosen("db.t3.small"))], stop_at="Storage")
        screens.append(_refused(operator, "19", "must be a number from 20 to 16384 (for example 20)", prefilled="20"))
        operator.converse([("Storage", ENTER)], stop_at="subnet group")  # the refused answer's own redraw
        pane.send("C-c")
        code = pane.exit_code()
    finally:
        pane.close()
    assert code == 130, screens[-1]
    _nothing_written(fresh, "shared-rds")


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Terminal]:
    yield from shared_estate(tmp_path_factory.mktemp("wrong-answers"))


@pytest.mark.terminal
def test_the_install_prompts_refuse_a_wrong_date_maybe_and_the_bucket_dot_dot_x(estate: Terminal) -> None:
    pane = estate.pane("install-client", "gamma")
    try:
        operator = Operator(pane)
        operator.converse([("Who at the client signed off", typed("Jane Roe, Gamma IT"))],
                          stop_at="When did they sign")
        screens = [_refused(operator, "2026-13-01", "must be a real calendar date written YYYY-MM-DD (for example "
                            "2026-11-28)", right="2026-11-02")]
        operator.converse([
            ("When did they sign", ENTER), ("Client (organization) name", typed("Gamma Corporation")),
            ("Purpose of this install", chosen("qa")), ("Site title", typed("Gamma Stores")),
            ("Areas of operation", typed("United States (east coast)")), ("Legal hosting requirements", ENTER),
            ("POS hosting domain", typed("kensiumpos.example"))], stop_at="already running POS")
        screens.append(_refused(operator, "maybe", "answer yes or no (y or n)", right="n", prefilled=""))
        operator.converse([
            ("already running POS", ENTER), ("OnLoyalty", NO), ("POS version", typed("3.10.2")),
            ("Deployment type", chosen("Kensium Hosted")), ("Database edition", chosen("sqlserver-web")),
            ("Database hosting", chosen("Shared")), ("Shared RDS instance", chosen("db-POS-01")),
            ("Tenant host hosting", chosen("Shared")), ("Shared EC2 host", chosen("POS01")),
            ("Shared RabbitMQ broker", chosen("mq-POS-01"))], stop_at="The org's S3 bucket")
        screens.append(_refused(operator, "../x", 'bucket "../x"', prefilled="fusion-rms-gamma"))
        operator.converse([("The org's S3 bucket", ENTER)], stop_at="Route 53 hosted zone")
        pane.send("C-c")
        code = pane.exit_code()
    finally:
        pane.close()
    assert code == 130, screens[-1]
    assert "step s3-bucket" in screens[-1]  # the rule is the step's own, named at the prompt
    _nothing_written(estate, "install-client")


@pytest.mark.terminal
def test_a_database_size_of_minus_one_is_refused_where_it_is_typed(estate: Terminal) -> None:
    # The Express size question comes only with sqlserver-ex: an answers file gives the rest but the size.
    answers = estate.root / "delta.yaml"
    text = Path(example("client-acme.yaml")).read_text().replace("acme", "delta").replace("Acme", "Delta")
    answers.write_text(text.replace("db_engine: sqlserver-web", "db_engine: sqlserver-ex")
                       .replace("deployment_type: Kensium Hosted", "deployment_type: Client Hosted"))
    pane = estate.pane("install-client", "delta", "--answers", str(answers))
    try:
        operator = Operator(pane)
        operator.converse([], stop_at="Largest expected database size")
        screen = _refused(operator, "-1", "must be a number of 1 or more (for example 1)", right=None)
        assert "? Largest expected database size, in GB -1" in screen  # still asked: refused where typed
        pane.send("C-c")  # at the question itself (a right answer would go on to the instance lookup)
        code = pane.exit_code()
    finally:
        pane.close()
    assert code == 130, screen
    _nothing_written(estate, "install-client")


@pytest.mark.terminal
def test_an_email_and_a_time_zone_the_answers_file_lacks_are_refused_where_they_are_typed(estate: Terminal) -> None:
    answers = estate.root / "tenant-manager.yaml"
    answers.write_text("host: POS01\nrds_instance: db-POS-01\nzone: us-east-1a\noperator_access: false\n"
                       "tenant_manager_name: POS01 Default\n"
                       "confirm: {create-database: true, create-login: true, complete-setup: true}\n")
    pane = estate.pane("provision", "shared", "tenant-manager", "--answers", str(answers))
    try:
        operator = Operator(pane)
        operator.converse([], stop_at="Email of the Administrator super user")
        email = _refused(operator, "notanemail", "must be an e-mail address (for example support@example.com)",
                         prefilled="support@fusionpos.com")
        operator.converse([("Email of the Administrator super user", ENTER)], stop_at="Type yes to go on")
        before = _last_run(estate, "shared-tenant-manager")
        typed("yes")(operator, "")
        operator.converse([], stop_at="Default time zone chosen")
        zone = _refused(operator, "Mars/Olympus", "must be an IANA time zone name (for example America/New_York)",
                        right="America/Chicago")
        asked = operator.converse([("Default time zone chosen", ENTER)])
        code, screen = pane.exit_code(), pane.screen()
    finally:
        pane.close()
    assert code == 0, screen
    assert "notanemail" in email.replace("\n", "") and "Mars/Olympus" in zone.replace("\n", "")
    assert not [r for r in before if r.get("event") == "step.intent"]  # the e-mail was refused before any change
    records = _last_run(estate, "shared-tenant-manager")
    text = str(records)
    assert "notanemail" not in text and "Mars/Olympus" not in text  # a refused answer is never journaled
    [setup] = [r for r in records if r.get("event") == "step.result" and r.get("step") == "fill-setup-page"]
    assert setup["outputs"] == {"tenant_manager_name": "POS01 Default", "time_zone": "America/Chicago"}
    assert not asked, asked
