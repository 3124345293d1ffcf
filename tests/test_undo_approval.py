"""Issue 17.4 and 17.5 together: four eyes for an undo. In an environment with `approval: required` an undo,
like any apply, runs only as an approved saved plan: `kprov undo RUN --dry-run --out PLAN` writes it (the undo's
steps, each re-probed, with its digest), a second identity's `kprov approve PLAN` approves it, and `kprov apply
PLAN` re-probes and removes exactly that (stale: refused, naming the step), the journal holding both identities.

The world is test_approval's: in-process moto, a protected QA environment requiring approval, and two IAM users
with access keys (alice plans and applies, bob approves). No fake.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from kensium_provision.errors import ExitCode
from tests.test_approval import ACCOUNT, approval_records, vpcs
from tests.test_approval import world as world  # the fixture, re-exported for pytest
from tests.test_json_output import VALIDATOR
from tests.test_saved_plans import journal_records, rewritten


def _newest_run(before: set[str]) -> str:
    from kensium_provision.app.config import state_dir

    (fresh,) = {p.stem for p in (state_dir() / "runs").glob("*.jsonl")} - before
    return fresh


def _runs() -> set[str]:
    from kensium_provision.app.config import state_dir

    runs = state_dir() / "runs"
    return {p.stem for p in runs.glob("*.jsonl")} if runs.is_dir() else set()


@pytest.fixture
def installed(world: dict[str, Any]) -> dict[str, Any]:
    """The VPC made as the environment requires (alice's plan, bob's approval, alice's apply), and its run id."""
    as_, alice, bob, plan = world["as"], world["alice"], world["bob"], str(world["plan"])
    assert as_(bob, "approve", plan).code == ExitCode.OK
    before = _runs()
    done = as_(alice, "apply", plan, "--answers", world["at_apply"])
    assert done.code == ExitCode.OK, done.err
    assert len(vpcs()) == 1
    at_undo = Path(world["at_apply"]).with_name("at-undo.yaml")  # an undo's steps confirm nothing by hand
    at_undo.write_text("confirm_target: POS-VPC\n")
    return {**world, "run_id": _newest_run(before), "at_undo": str(at_undo)}


def _undo_plan(installed: dict[str, Any], tmp_path: Path) -> Path:
    path = tmp_path / "undo-plan.json"
    made = installed["as"](installed["alice"], "--output", "json", "undo", installed["run_id"], "--dry-run", "--out",
                           str(path))
    assert made.code == ExitCode.OK, made.err
    document = made.json()
    assert document["undoes"] == installed["run_id"] and document["saved_plan"]["path"] == str(path)
    assert sorted(VALIDATOR.iter_errors(document), key=str) == []  # docs/json-output.schema.json
    return path


def test_an_undo_without_an_approved_plan_is_refused_and_its_plan_names_what_it_removes(
        installed: dict[str, Any], tmp_path: Path) -> None:
    as_, alice = installed["as"], installed["alice"]
    direct = as_(alice, "undo", installed["run_id"], "--yes", "--answers", installed["at_undo"])
    assert direct.code == ExitCode.GUARD, direct.err
    assert "requires approval" in direct.err and "--dry-run --out PLAN" in direct.err
    assert len(vpcs()) == 1

    path = _undo_plan(installed, tmp_path)
    plan = json.loads(path.read_text())
    assert (plan["checklist"], plan["undoes"], plan["caller"]) == (
        "undo", installed["run_id"], f"arn:aws:iam::{ACCOUNT}:user/alice")
    planned = {s["id"]: s["status"] for s in plan["steps"]}
    assert planned["undo-vpc"] == "will change" and planned["undo-internet-gateway"] == "will change", planned
    shown = as_(alice, "show", str(path), "--markdown")
    assert shown.code == ExitCode.OK and "Undo vpc" in shown.out and f"kprov undo {installed['run_id']}" in shown.out

    self_approved = as_(alice, "approve", str(path))
    assert self_approved.code == ExitCode.GUARD and "may not approve it" in self_approved.err
    unapproved = as_(alice, "apply", str(path), "--answers", installed["at_undo"])
    assert unapproved.code == ExitCode.GUARD and "is not approved" in unapproved.err
    assert len(vpcs()) == 1


def test_a_second_identitys_approval_lets_the_undo_plan_remove_exactly_what_the_run_made(
        installed: dict[str, Any], tmp_path: Path) -> None:
    as_, alice, bob = installed["as"], installed["alice"], installed["bob"]
    path = _undo_plan(installed, tmp_path)
    assert as_(bob, "approve", str(path)).code == ExitCode.OK
    done = as_(alice, "--output", "json", "apply", str(path), "--answers", installed["at_undo"])
    assert done.code == ExitCode.OK, done.err
    document = done.json()
    assert document["undoes"] == installed["run_id"] and document["saved_plan"]["id"] == json.loads(
        path.read_text())["plan_id"]
    assert sorted(VALIDATOR.iter_errors(document), key=str) == []
    assert vpcs() == []
    last = approval_records()[-1]  # the undo's journal: who approved, who applied
    assert (last["outcome"], last["approver"], last["applier"]) == (
        "ok", f"arn:aws:iam::{ACCOUNT}:user/bob", f"arn:aws:iam::{ACCOUNT}:user/alice")
    assert journal_records("plan.reprobed")[-1]["stale"] == []


def test_the_undo_plans_approver_may_not_apply_it_nor_another_digest(installed: dict[str, Any],
                                                                      tmp_path: Path) -> None:
    as_, alice, bob = installed["as"], installed["alice"], installed["bob"]
    path = _undo_plan(installed, tmp_path)
    assert as_(bob, "approve", str(path)).code == ExitCode.OK
    by_approver = as_(bob, "apply", str(path), "--answers", installed["at_undo"])
    assert by_approver.code == ExitCode.GUARD and "may not also apply it" in by_approver.err
    changed = rewritten(path, tmp_path, created="2000-01-01T00:00:00+00:00")  # same plan id, another digest
    other = as_(alice, "apply", str(changed), "--answers", installed["at_undo"])
    assert other.code == ExitCode.GUARD and "not for this plan's digest" in other.err
    assert len(vpcs()) == 1


def test_an_undo_plan_gone_stale_is_refused_naming_the_step(installed: dict[str, Any], tmp_path: Path) -> None:
    as_, alice, bob = installed["as"], installed["alice"], installed["bob"]
    path = _undo_plan(installed, tmp_path)
    assert as_(bob, "approve", str(path)).code == ExitCode.OK
    # After the review, someone removes the internet gateway by hand: the approved plan is no longer what runs.
    ec2 = boto3.client("ec2", region_name="us-east-1")
    [gateway] = ec2.describe_internet_gateways(Filters=[{"Name": "tag:Name", "Values": ["POS-IGW"]}])[
        "InternetGateways"]
    for attached in gateway.get("Attachments", []):
        ec2.detach_internet_gateway(InternetGatewayId=gateway["InternetGatewayId"], VpcId=attached["VpcId"])
    ec2.delete_internet_gateway(InternetGatewayId=gateway["InternetGatewayId"])
    stale = as_(alice, "apply", str(path), "--answers", installed["at_undo"])
    assert stale.code == ExitCode.INVALID, stale.err
    assert "is stale" in stale.err and "step undo-internet-gateway" in stale.err, stale.err
    assert len(vpcs()) == 1  # nothing removed
