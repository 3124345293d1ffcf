"""Issue 17.4: four eyes. In an environment with `approval: required`, `kprov approve PLAN` records the
approver's caller ARN, the plan's digest and the time in the account (DynamoDB, a conditional write), and
`kprov apply PLAN` refuses (exit 4, nothing changed) a plan not approved, approved by the identity applying,
or approved for another digest; the journal records both identities.

The world: in-process moto (the `aws` fixture), a protected QA environment in moto's account, and two IAM
users moto issued access keys to: alice plans and applies, bob approves. Each kprov command runs with one
user's credentials (STS answers with that user's ARN). No fake.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from kensium_provision.errors import ExitCode
from tests.conftest import Kprov
from tests.e2e import example
from tests.test_cli import spy_writes
from tests.test_saved_plans import journal_records, rewritten

ACCOUNT = "123456789012"  # moto's
QA = (f'environments:\n  qa: {{account_id: "{ACCOUNT}", region: us-east-1, purposes: [qa, development, demo],\n'
      '       protected: true, approval: required}\n')
EVERYTHING = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def user(name: str) -> dict[str, str]:
    """An IAM user allowed everything, and its access key (as environment variables)."""
    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="all", PolicyDocument=json.dumps(EVERYTHING))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


@pytest.fixture
def world(aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kprov: Kprov) -> dict[str, Any]:
    config = tmp_path / "config.yaml"
    config.write_text(QA)
    monkeypatch.setenv("KPROV_CONFIG", str(config))
    answers = tmp_path / "vpc.yaml"  # QA is not the sandbox: a public operator address
    answers.write_text(Path(example("shared-vpc.yaml")).read_text().replace("203.0.113.10", "52.94.76.10"))
    at_apply = tmp_path / "at-apply.yaml"  # what a person states at the apply: the manual step, the typed target
    at_apply.write_text("confirm:\n  read-docs: true\nconfirm_target: POS-VPC\n")
    alice, bob = user("alice"), user("bob")

    def as_(who: dict[str, str], *args: str) -> Any:
        for name, value in who.items():
            monkeypatch.setenv(name, value)
        return kprov("--env", "qa", "--non-interactive", *args)

    plan = tmp_path / "plan.json"
    made = as_(alice, "provision", "shared", "vpc", "--dry-run", "--answers", str(answers), "--out", str(plan))
    assert made.code == ExitCode.OK, made.err
    return {"as": as_, "alice": alice, "bob": bob, "plan": plan, "at_apply": str(at_apply), "answers": str(answers)}


def vpcs() -> list[Any]:
    return list(boto3.client("ec2", region_name="us-east-1").describe_vpcs(
        Filters=[{"Name": "tag:Name", "Values": ["POS-VPC"]}])["Vpcs"])


def approval_records() -> list[dict[str, Any]]:
    return [r for r in journal_records("guard") if r.get("guard") == "approval"]


def test_self_approval_is_refused_and_an_unapproved_plan_is_not_applied(world: dict[str, Any],
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    as_, alice, plan = world["as"], world["alice"], str(world["plan"])
    refused = as_(alice, "approve", plan)
    assert refused.code == ExitCode.GUARD, refused.err
    assert f"arn:aws:iam::{ACCOUNT}:user/alice made this plan and may not approve it" in refused.err

    sent = spy_writes(monkeypatch)
    unapproved = as_(alice, "apply", plan, "--answers", world["at_apply"])
    assert unapproved.code == ExitCode.GUARD and "is not approved" in unapproved.err
    assert sent == [] and vpcs() == []  # not one write: the approval is read before the lock
    # An apply without a plan is no way around it.
    direct = as_(alice, "provision", "shared", "vpc", "--answers", world["answers"], "--yes")
    assert direct.code == ExitCode.GUARD and "requires approval" in direct.err and vpcs() == []


def test_a_second_identity_approves_and_the_journal_records_both(world: dict[str, Any]) -> None:
    as_, alice, bob, plan = world["as"], world["alice"], world["bob"], str(world["plan"])
    approved = as_(bob, "--output", "json", "approve", plan)
    assert approved.code == ExitCode.OK, approved.err
    document = approved.json()
    assert document["approver"] == f"arn:aws:iam::{ACCOUNT}:user/bob"
    assert document["digest"] == json.loads(Path(plan).read_text())["digest"]
    item = boto3.client("dynamodb", region_name="us-east-1").get_item(
        TableName="kprov-approvals", Key={"plan_id": {"S": document["plan"]}})["Item"]
    assert item["approver"]["S"].endswith("user/bob") and item["approved_at"]["S"]
    [journaled] = journal_records("plan.approved")  # the approver's own journal says so too
    assert (journaled["approver"], journaled["author"]) == (document["approver"], document["author"])
    again = as_(bob, "approve", plan)  # the conditional write: an approval is never replaced
    assert again.code == ExitCode.GUARD and "approved already by" in again.err

    done = as_(alice, "apply", plan, "--answers", world["at_apply"])
    assert done.code == ExitCode.OK, done.err
    assert len(vpcs()) == 1
    [record] = approval_records()
    assert (record["outcome"], record["approver"], record["applier"]) == (
        "ok", f"arn:aws:iam::{ACCOUNT}:user/bob", f"arn:aws:iam::{ACCOUNT}:user/alice")


def test_the_approver_may_not_also_apply(world: dict[str, Any]) -> None:
    as_, bob, plan = world["as"], world["bob"], str(world["plan"])
    assert as_(bob, "approve", plan).code == ExitCode.OK
    refused = as_(bob, "apply", plan, "--answers", world["at_apply"])
    assert refused.code == ExitCode.GUARD and "approved this plan and may not also apply it" in refused.err
    assert vpcs() == [] and approval_records()[-1]["outcome"] == "refused"


def test_an_approval_of_another_digest_is_refused(world: dict[str, Any], tmp_path: Path) -> None:
    as_, alice, bob, plan = world["as"], world["alice"], world["bob"], world["plan"]
    assert as_(bob, "approve", str(plan)).code == ExitCode.OK
    # After the approval, the plan is changed and its digest computed again (a digest is no signature).
    answers = {**json.loads(plan.read_text())["answers"], "operator_name": "Someone Else"}
    changed = rewritten(plan, tmp_path, answers=answers)
    refused = as_(alice, "apply", str(changed), "--answers", world["at_apply"])
    assert refused.code == ExitCode.GUARD, refused.err
    assert "was approved by" in refused.err and "not for this plan's digest" in refused.err and vpcs() == []


def test_a_failed_approved_apply_says_to_plan_again_and_its_resume_is_refused(
        world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # Where approval is required, a resume would apply what nobody approved (the rest of a plan that no longer
    # matches the account): the failure says to plan again, and `kprov resume` refuses, naming that way.
    from kensium_provision.errors import StepError
    from kensium_provision.steps import registry

    as_, alice, bob, plan = world["as"], world["alice"], world["bob"], str(world["plan"])
    assert as_(bob, "approve", plan).code == ExitCode.OK
    subnet = type(registry()["ec2.subnet"])

    def broken(*_: Any, **__: Any) -> Any:
        raise StepError("the subnet could not be made (injected)")

    with monkeypatch.context() as patched:
        patched.setattr(subnet, "act", broken)
        failed = as_(alice, "apply", plan, "--answers", world["at_apply"])
    assert failed.code == ExitCode.FAILED, failed.err
    assert "kprov resume" not in failed.err and "--dry-run --out" in failed.err, failed.err
    resumed = as_(alice, "resume", _last_run_id(), "--answers", world["at_apply"])
    assert resumed.code == ExitCode.GUARD, resumed.err
    assert "requires approval" in resumed.err and "--dry-run --out" in resumed.err
    assert len(vpcs()) == 1  # the VPC the failed run made, and nothing after it


def _last_run_id() -> str:
    # The newest by when it started (its header), not by id: two runs of one second sort by their random suffix.
    from kensium_provision.app.commands.history import state
    from kensium_provision.journal.reader import list_runs

    return max(list_runs(state()), key=lambda run: run.started).run_id
