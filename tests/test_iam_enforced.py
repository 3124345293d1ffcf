"""Issue 17.1/17.2 under enforcement: a run as a role that holds exactly `kprov iam policy --mode apply` (and an
undo as a role that holds exactly `--mode undo`).

moto can authorize every request against the caller's IAM policies (`moto.core.enable_iam_authentication`):
then an action the role lacks is AccessDenied, as on AWS. The world: in-process moto (the `aws` fixture), a QA
environment in moto's account, an operator user whose only right is to assume the role `kprov-operator`, and
the role's one inline policy made from kprov's own document. No fake.

moto evaluates a statement's Action but not its Resource (moto/iam/access_control.py: it authorizes every
non-S3 request against the resource `*`), so the role's policy is the document's actions on `*`; the resource
narrowing is checked against AWS's IAM data in test_iam_policy.py instead. sts:GetCallerIdentity is added for
moto, which authorizes it too; AWS needs no permission for it (permissions.actions.NO_PERMISSION).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import boto3
import pytest

from kensium_provision.errors import ExitCode
from tests.conftest import Kprov
from tests.e2e import example
from tests.test_cli import spy_writes

ACCOUNT = "123456789012"  # moto's
ROLE = "kprov-operator"


def actions_of(kprov: Kprov, *checklists: str, mode: str = "apply") -> list[str]:
    done = kprov("--env", "qa", "--output", "json", "iam", "policy", *checklists, "--mode", mode)
    assert done.code == ExitCode.OK, done.err
    return sorted({a for s in done.json()["policy"]["Statement"] for a in s["Action"]})


@pytest.fixture
def qa(aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(f'environments:\n  qa: {{account_id: "{ACCOUNT}", region: us-east-1, '
                      'purposes: [qa, development, demo]}\n')
    monkeypatch.setenv("KPROV_CONFIG", str(config))
    answers = tmp_path / "vpc.yaml"  # QA is not the sandbox: a public operator address
    answers.write_text(Path(example("shared-vpc.yaml")).read_text().replace("203.0.113.10", "52.94.76.10"))
    return answers


def as_role(monkeypatch: pytest.MonkeyPatch, actions: list[str], role: str = ROLE, user: str = "ops") -> None:
    """The role with exactly `actions` (on `*`), assumed by a user who may do nothing else; its keys in use."""
    iam = boto3.client("iam", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]}
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))
    allowed = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": [*actions, "sts:GetCallerIdentity"], "Resource": "*"}]}
    iam.put_role_policy(RoleName=role, PolicyName="kprov-apply", PolicyDocument=json.dumps(allowed))
    iam.create_user(UserName=user)
    may_assume = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": f"arn:aws:iam::{ACCOUNT}:role/{role}"}]}
    iam.put_user_policy(UserName=user, PolicyName="assume", PolicyDocument=json.dumps(may_assume))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    sts = boto3.client("sts", region_name="us-east-1", aws_access_key_id=key["AccessKeyId"],
                       aws_secret_access_key=key["SecretAccessKey"])
    credentials = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{role}", RoleSessionName=user)["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", credentials["SessionToken"])


def vpcs() -> list[Any]:
    # moto's own credentials (the fixture's): outside the enforcement's reach only by being unknown keys
    ec2 = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    return list(ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["POS-VPC"]}])["Vpcs"])


def test_the_vpc_job_succeeds_as_a_role_with_exactly_the_apply_policy(
        qa: Path, kprov: Kprov, monkeypatch: pytest.MonkeyPatch) -> None:
    actions = actions_of(kprov, "shared/vpc")
    as_role(monkeypatch, actions)
    from moto.core import enable_iam_authentication

    with enable_iam_authentication():
        done = kprov("--env", "qa", "--non-interactive", "provision", "shared", "vpc", "--answers", str(qa), "--yes")
    assert done.code == ExitCode.OK, done.err
    assert len(vpcs()) == 1


def test_with_one_action_removed_the_preflight_names_it_and_the_step_before_any_change(
        qa: Path, kprov: Kprov, monkeypatch: pytest.MonkeyPatch) -> None:
    actions = actions_of(kprov, "shared/vpc")
    assert "ec2:CreateSubnet" in actions
    as_role(monkeypatch, [a for a in actions if a != "ec2:CreateSubnet"])
    sent = spy_writes(monkeypatch)
    from moto.core import enable_iam_authentication

    with enable_iam_authentication():
        refused = kprov("--env", "qa", "--non-interactive", "provision", "shared", "vpc", "--answers", str(qa),
                        "--yes")
    assert refused.code == ExitCode.GUARD, refused.err
    assert "step public-subnet-primary (ec2.subnet): ec2:CreateSubnet on * (no policy allows it)" in refused.err
    assert sent == [] and vpcs() == []


def test_the_enforcement_is_real_without_the_preflight_aws_refuses_the_missing_action(
        qa: Path, kprov: Kprov, monkeypatch: pytest.MonkeyPatch) -> None:
    actions = actions_of(kprov, "shared/vpc")
    as_role(monkeypatch, [a for a in actions if a != "ec2:CreateSubnet"])
    from moto.core import enable_iam_authentication

    with enable_iam_authentication():
        failed = kprov("--env", "qa", "--non-interactive", "provision", "shared", "vpc", "--answers", str(qa),
                       "--yes", "--skip-preflight")
    assert failed.code == ExitCode.FAILED, failed.err
    assert "not authorized to perform: ec2:CreateSubnet" in failed.err
    assert len(vpcs()) == 1  # what came before the subnet was made: the preflight is what keeps it at zero


def test_four_eyes_under_the_apply_policy_the_approvals_table_included(
        qa: Path, kprov: Kprov, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = Path(str(qa.parent / "config.yaml"))
    config.write_text(config.read_text().replace("purposes: [qa, development, demo]}",
                                                 "purposes: [qa, development, demo], approval: required}"))
    actions = actions_of(kprov, "shared/vpc")
    assert {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:CreateTable", "dynamodb:DescribeTable"} <= set(actions)
    from moto.core import enable_iam_authentication

    plan, at_apply = tmp_path / "plan.json", tmp_path / "at-apply.yaml"
    at_apply.write_text("confirm:\n  read-docs: true\n")
    as_role(monkeypatch, actions)  # alice's role: plans and applies
    alice = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    as_role(monkeypatch, actions, role="kprov-approver", user="bob")
    bob = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}

    def as_(who: dict[str, str], *args: str) -> Any:
        for name, value in who.items():
            monkeypatch.setenv(name, value)
        with enable_iam_authentication():
            return kprov("--env", "qa", "--non-interactive", *args)

    made = as_(alice, "provision", "shared", "vpc", "--dry-run", "--answers", str(qa), "--out", str(plan))
    assert made.code == ExitCode.OK, made.err
    approved = as_(bob, "approve", str(plan))
    assert approved.code == ExitCode.OK, approved.err
    done = as_(alice, "apply", str(plan), "--answers", str(at_apply))
    assert done.code == ExitCode.OK, done.err
    assert len(vpcs()) == 1


# --- kprov undo under `kprov iam policy --mode undo` -----------------------------------------------------------


def provisioned(kprov: Kprov, answers: Path, tmp_path: Path) -> tuple[str, str]:
    """The VPC job run by moto's own identity (no enforcement): its run id, and the undo's typed confirmation."""
    done = kprov("--env", "qa", "--non-interactive", "--output", "json", "provision", "shared", "vpc", "--answers",
                 str(answers), "--yes")
    assert done.code == ExitCode.OK, done.err
    confirm = tmp_path / "confirm.yaml"
    confirm.write_text("confirm_target: POS-VPC\n")
    return str(done.json()["run_id"]), str(confirm)


def subnets() -> list[Any]:
    ec2 = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    return list(ec2.describe_subnets(Filters=[{"Name": "tag:Name", "Values": ["POS-*"]}])["Subnets"])


def test_an_undo_succeeds_as_a_role_with_exactly_the_undo_policy(
        qa: Path, kprov: Kprov, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    run_id, confirm = provisioned(kprov, qa, tmp_path)
    actions = actions_of(kprov, "shared/vpc", mode="undo")
    assert "ec2:DeleteVpc" in actions and "ec2:CreateVpc" not in actions
    as_role(monkeypatch, actions)  # the journal is read from this machine: no AWS right for it
    from moto.core import enable_iam_authentication

    with enable_iam_authentication():
        done = kprov("--env", "qa", "--non-interactive", "undo", run_id, "--answers", confirm, "--yes")
    assert done.code == ExitCode.OK, done.err
    assert f"IAM allows arn:aws:iam::{ACCOUNT}:role/{ROLE} all" in done.err
    assert vpcs() == [] and subnets() == []


def test_with_one_undo_action_removed_the_preflight_names_it_and_the_step_before_any_delete(
        qa: Path, kprov: Kprov, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    run_id, confirm = provisioned(kprov, qa, tmp_path)
    made = subnets()
    actions = actions_of(kprov, "shared/vpc", mode="undo")
    assert "ec2:DeleteSubnet" in actions
    as_role(monkeypatch, [a for a in actions if a != "ec2:DeleteSubnet"])
    sent = spy_writes(monkeypatch)
    from moto.core import enable_iam_authentication

    with enable_iam_authentication():
        refused = kprov("--env", "qa", "--non-interactive", "undo", run_id, "--answers", confirm, "--yes")
        planned = kprov("--env", "qa", "--non-interactive", "undo", run_id, "--dry-run", "--preflight")
    assert refused.code == ExitCode.GUARD, refused.err
    said = " ".join(refused.err.split())
    assert "step undo-public-subnet-primary (ec2.subnet): ec2:DeleteSubnet on * (no policy allows it)" in said
    assert "step undo-private-subnet-secondary (ec2.subnet): ec2:DeleteSubnet" in said
    assert "kprov iam policy CHECKLIST --mode undo" in said
    assert planned.code == ExitCode.GUARD and "ec2:DeleteSubnet" in planned.err, planned.err
    assert sent == [] and len(vpcs()) == 1 and len(subnets()) == len(made) == 4  # not one write: no lock either


def test_without_the_undo_preflight_aws_refuses_the_missing_action_midway(
        qa: Path, kprov: Kprov, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    run_id, confirm = provisioned(kprov, qa, tmp_path)
    actions = actions_of(kprov, "shared/vpc", mode="undo")
    as_role(monkeypatch, [a for a in actions if a != "ec2:DeleteSubnet"])
    from moto.core import enable_iam_authentication

    with enable_iam_authentication():
        failed = kprov("--env", "qa", "--non-interactive", "undo", run_id, "--answers", confirm, "--yes",
                       "--skip-preflight")
    assert failed.code == ExitCode.FAILED, failed.err
    assert "permission preflight skipped (--skip-preflight)" in failed.err
    assert "not authorized to perform: ec2:DeleteSubnet" in failed.err
    assert len(vpcs()) == 1  # what came before the subnets was removed: the preflight is what keeps it whole
