"""Issue 17.2 for `kprov undo`: its own permission preflight, before its first delete.

The undo simulates (permissions.preflight.run_preflight, as an apply does) exactly what its plan sends: the
undone step types' `Uses.undo` for the steps that created something, and kprov's own undo calls. The world is
test_preflight's: in-process moto (the `aws` fixture answers SimulatePrincipalPolicy with sandbox.iam_simulate),
a QA environment in moto's account, callers that are real moto users or roles with real policies; where a run
must fail midway, moto's own IAM enforcement makes it fail (test_iam_enforced's role). No fake.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from kensium_provision.errors import ExitCode
from tests.conftest import Kprov
from tests.test_cli import spy_writes
from tests.test_iam_enforced import actions_of, as_role, subnets
from tests.test_preflight import ACCOUNT, operator, preflight_records, qa, vpcs  # noqa: F401 (qa: a fixture)


def undo_policy(kprov: Kprov, *, less: str = "") -> dict[str, Any]:
    """`kprov iam policy vpc --mode undo` for QA, less one action."""
    done = kprov("--env", "qa", "iam", "policy", "vpc", "--mode", "undo")
    assert done.code == ExitCode.OK, done.err
    policy: dict[str, Any] = json.loads(done.out)
    statements = [{**s, "Action": [a for a in s["Action"] if a != less]} for s in policy["Statement"]]
    return {**policy, "Statement": [s for s in statements if s["Action"]]}


def provisioned(kprov: Kprov, answers: Path, tmp_path: Path, *extra: str) -> tuple[str, str]:
    """The VPC job (by whoever the credentials are): its run id, and the undo's typed confirmation."""
    done = kprov("--env", "qa", "--non-interactive", "--output", "json", "provision", "shared", "vpc", "--answers",
                 str(answers), "--yes", *extra)
    assert done.json()["run_id"], done.err
    confirm = tmp_path / "confirm.yaml"
    confirm.write_text("confirm_target: POS-VPC\n")
    return str(done.json()["run_id"]), str(confirm)


def simulated(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every action the runs ask IAM to simulate (iam:SimulatePrincipalPolicy's ActionNames)."""
    from kensium_provision.aws.session import AwsSession

    asked: set[str] = set()
    make = AwsSession.client

    def client(self: AwsSession, service: str, **kwargs: Any) -> Any:
        made = make(self, service, **kwargs)
        made.meta.events.register("before-parameter-build.iam.SimulatePrincipalPolicy",
                                  lambda params, **_: asked.update(params["ActionNames"]), unique_id="test-asked")
        return made

    monkeypatch.setattr(AwsSession, "client", client)
    return asked


def test_an_undo_lacking_one_action_is_refused_before_any_delete_and_says_so_in_json(
        qa: Path, kprov: Kprov, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # noqa: F811
    run_id, confirm = provisioned(kprov, qa, tmp_path)
    alice = operator(monkeypatch, undo_policy(kprov, less="ec2:DeleteVpc"))
    sent = spy_writes(monkeypatch)
    shown = kprov("--env", "qa", "--output", "json", "undo", run_id, "--answers", confirm, "--yes")
    error = shown.json()
    assert (error["kind"], error["exit_code"], error["error"]) == ("error", ExitCode.GUARD, "PreflightDenied")
    assert error["issues"] == ["step undo-vpc (ec2.vpc): ec2:DeleteVpc on * (no policy allows it)"]
    assert f"{alice} may not do 1 thing(s) this run needs; nothing was changed" in error["message"]
    assert "--mode undo" in error["hint"] and "--skip-preflight" in error["hint"]
    assert sent == [] and len(vpcs()) == 1
    assert [r["outcome"] for r in preflight_records(kprov)][-1] == "refused"


def test_the_undo_preflight_is_journaled_and_skipped_only_on_request(
        qa: Path, kprov: Kprov, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # noqa: F811
    run_id, confirm = provisioned(kprov, qa, tmp_path)
    operator(monkeypatch, undo_policy(kprov, less="iam:SimulatePrincipalPolicy"))
    refused = kprov("--env", "qa", "--non-interactive", "undo", run_id, "--answers", confirm, "--yes")
    assert refused.code == ExitCode.GUARD, refused.err
    assert "iam:SimulatePrincipalPolicy" in refused.err and len(vpcs()) == 1
    both = kprov("--env", "qa", "undo", run_id, "--preflight", "--skip-preflight")
    assert both.code == ExitCode.USAGE
    done = kprov("--env", "qa", "--non-interactive", "undo", run_id, "--answers", confirm, "--yes",
                 "--skip-preflight")
    assert done.code == ExitCode.OK, done.err
    assert "permission preflight skipped (--skip-preflight)" in done.err and vpcs() == []
    # the VPC job's own (ok, moto's identity), the refused undo's, the skipped one's (run ids of one second sort
    # by their random suffix: compare the outcomes, not their file order)
    assert sorted((r["outcome"], r.get("reason", "")) for r in preflight_records(kprov)) == [
        ("ok", ""), ("refused", ""), ("skipped", "--skip-preflight")]


def test_an_undo_simulates_exactly_what_its_plan_removes(
        qa: Path, kprov: Kprov, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # noqa: F811
    from moto.core import enable_iam_authentication

    # A VPC job that failed at its first subnet (AWS refused it): the VPC is all it made.
    as_role(monkeypatch, [a for a in actions_of(kprov, "shared/vpc") if a != "ec2:CreateSubnet"])
    with enable_iam_authentication():
        run_id, confirm = provisioned(kprov, qa, tmp_path, "--skip-preflight")
    assert len(vpcs()) == 1 and subnets() == []
    # Its undo, by a role that may not delete a subnet (nor remove a shared record): no step of it needs to.
    undo = actions_of(kprov, "shared/vpc", mode="undo")
    as_role(monkeypatch, [a for a in undo if a not in ("ec2:DeleteSubnet", "ssm:DeleteParameter")],
            role="kprov-undo", user="undoer")
    asked = simulated(monkeypatch)
    with enable_iam_authentication():
        done = kprov("--env", "qa", "--non-interactive", "undo", run_id, "--answers", confirm, "--yes")
    assert done.code == ExitCode.OK, done.err
    assert vpcs() == []
    assert "ec2:DeleteVpc" in asked and "iam:SimulatePrincipalPolicy" in asked
    assert not {"ec2:DeleteSubnet", "ssm:DeleteParameter"} & asked  # not in its plan: no subnet, no shared record
    [record] = [r for r in preflight_records(kprov) if r.get("principal") == f"arn:aws:iam::{ACCOUNT}:role/kprov-undo"]
    assert record["outcome"] == "ok" and record["actions"] == len(asked)


def test_a_sandbox_undo_passes_its_preflight(aws: None, kprov: Kprov, tmp_path: Path) -> None:
    from tests.e2e import example

    done = kprov("--output", "json", "provision", "shared", "vpc", "--answers", example("shared-vpc.yaml"), "--yes")
    assert done.code == ExitCode.OK, done.err
    confirm = tmp_path / "confirm.yaml"
    confirm.write_text("confirm_target: POS-VPC\n")
    undone = kprov("undo", done.json()["run_id"], "--answers", str(confirm), "--yes")
    assert undone.code == ExitCode.OK, undone.err
    records = preflight_records(kprov)
    assert [r["outcome"] for r in records] == ["ok", "ok"] and "not simulated" not in undone.err
    assert boto3.client("ec2", region_name="us-east-1").describe_vpcs(
        Filters=[{"Name": "tag:Name", "Values": ["POS-VPC"]}])["Vpcs"] == []
