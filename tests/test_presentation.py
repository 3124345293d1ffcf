"""What the operator reads (issue 15's presentation items, issue 14 item 10): check shared that reports and
goes on, its total line, human wording, tables that fit the terminal and degrade in pipes, copyable SQL.

Commands run in this process against moto (the `aws` fixture); records are put behind kprov's back the
way another operator, an older kprov or an attacker would leave them.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

from kensium_provision.errors import ExitCode
from kensium_provision.ui.render import make_console
from tests.conftest import Kprov

ROOT = Path(__file__).resolve().parent.parent
VPC_ANSWERS = str(ROOT / "examples" / "shared-vpc.yaml")


def provisioned_vpc(kprov: Kprov) -> tuple[object, dict[str, object]]:
    """The sandbox's VPC, made by kprov; the SSM client and the shared record the apply kept."""
    import boto3

    done = kprov("--non-interactive", "provision", "shared", "vpc", "--answers", VPC_ANSWERS, "--yes")
    assert done.code == ExitCode.OK, done.err
    ssm = boto3.client("ssm", region_name="us-east-1")
    [parameter] = ssm.get_parameters_by_path(Path="/kprov/shared/shared-vpc")["Parameters"]
    return ssm, {"path": parameter["Name"], **json.loads(parameter["Value"])}


def test_a_bad_shared_record_is_a_finding_and_the_others_are_still_checked(
        aws: None, kprov: Kprov, capfd: pytest.CaptureFixture[str]) -> None:
    ssm, record = provisioned_vpc(kprov)
    # Sorted first, before the good record: before the fix the check stopped on it (exit 3, nothing else checked).
    bad = {**record, "name": "A\x1b[2J", "answers": {**record["answers"], "vpc_name": "A\x1b[2J\x07"}}  # type: ignore[dict-item]
    ssm.put_parameter(Name="/kprov/shared/shared-vpc/A-bad", Value=json.dumps(bad), Type="String")  # type: ignore[attr-defined]

    done = kprov("--non-interactive", "--output", "json", "check", "shared", "vpc")
    assert done.code == ExitCode.FAILED, done.err
    document = done.json()
    [checked] = document["runs"]  # the good record, checked after the bad one
    assert checked["ok"] and checked["kind"] == "check"
    [unchecked] = document["unchecked"]
    assert unchecked["resource"] == "vpc" and unchecked["record"] == "shared-vpc/A\x1b[2J"
    assert "control or format character" in unchecked["problem"]
    assert "the shared record shared-vpc/A\\u001b[2J cannot be checked" in done.err
    assert done.err.rstrip().endswith(
        "Check shared: 1 resource, 1 instance checked, 1 finding (1 record could not be checked).")


def test_check_shared_names_each_resource_once_and_ends_with_a_total(
        aws: None, kprov: Kprov, capfd: pytest.CaptureFixture[str]) -> None:
    provisioned_vpc(kprov)
    done = kprov("--non-interactive", "--output", "json", "check", "shared", "vpc", "vpc")
    assert done.code == ExitCode.OK, done.err
    assert len(done.json()["runs"]) == 1  # `vpc vpc` checks the VPC once
    assert done.err.rstrip().splitlines()[-1] == "Check shared: 1 resource, 1 instance checked, 0 findings."


# --- tables -------------------------------------------------------------------------------------------------

BOX = set("┏┓┗┛┃━│─┌┐└┘├┤┬┴┼╇╈┡┩╭╮╰╯")
LONG = "arn:aws:sts::123456789012:assumed-role/KensiumOperators/jane.doe@kensium.example-session-0001"


def long_table() -> Table:
    table = Table("run", "outcome", "who", title="Runs", title_justify="left")
    table.add_row("20261202T120000Z-0a1b2c", Text("ok", style="green"), LONG)
    table.add_row("20261202T110000Z-9f8e7d", "interrupted", Text("bob"))
    return table


def test_a_table_off_a_terminal_is_plain_columns_with_nothing_cut() -> None:
    out = io.StringIO()
    make_console(out).print(long_table())  # a pipe: not a terminal, 80 columns by default
    lines = out.getvalue().splitlines()
    assert not BOX & set(out.getvalue())
    assert lines == ["Runs",
                     "run                      outcome      who",
                     f"20261202T120000Z-0a1b2c  ok           {LONG}",
                     "20261202T110000Z-9f8e7d  interrupted  bob"]


def test_a_table_on_a_narrow_terminal_wraps_its_cells_instead_of_cutting_them() -> None:
    out = io.StringIO()
    console = make_console(out)
    console._force_terminal, console.width = True, 60
    console.print(long_table())
    written = out.getvalue()
    assert "…" not in written and BOX & set(written)
    assert all(cell_len(line) <= 60 for line in written.splitlines())
    cells = "".join(line.split("│")[3].strip() for line in written.splitlines() if line.count("│") == 4)
    assert LONG in cells  # folded over several lines, every character there


def test_runs_list_in_a_pipe_is_plain_columns(kprov: Kprov, capfd: pytest.CaptureFixture[str]) -> None:
    from kensium_provision.app.config import state_dir
    from kensium_provision.journal.writer import JournalWriter

    JournalWriter(state_dir(), "20261202T120000Z-0a1b2c", header={
        "who": LONG, "account": "123456789012", "region": "us-east-1", "environment": "production",
        "checklist": "install-client", "checklist_sha256": "0" * 64, "mode": "apply",
        "target": "client:acme-and-a-rather-long-client-name", "command": "install-client acme"}).close("ok")
    done = kprov("runs", "list")
    assert done.code == ExitCode.OK, done.err
    assert not BOX & set(done.err) and "…" not in done.err
    header, row = done.err.splitlines()[1:3]
    assert header.split() == ["run", "started", "(UTC)", "outcome", "mode", "target", "env", "who"]
    assert row.split()[0] == "20261202T120000Z-0a1b2c" and "client:acme-and-a-rather-long-client-name" in row


# --- human wording ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "actual", "expected", "shown"), [
    ("vhost", None, "acme", "vhost: none, should be acme"),
    ("enableDnsHostnames", False, True, "enableDnsHostnames: no, should be yes"),
    ("billing tag OrgId", {"OrgId": "acme"}, "beta", "billing tag OrgId: OrgId=acme, should be beta"),
    ("attached policies", ["BetaExtra"], [], "attached policies: BetaExtra, should be none"),
    ("Reservations[0].Instances[0].Placement.AvailabilityZone", "us-east-1b", "us-east-1a",
     "availability zone: us-east-1b, should be us-east-1a"),
    ("port", 0, 1433, "port: 0, should be 1433"),
])
def test_a_difference_reads_as_words(field: str, actual: object, expected: object, shown: str) -> None:
    from kensium_provision.steps.base import Difference

    assert str(Difference(field, actual, expected)) == shown  # no `is None`, no reprs, no JMESPath
