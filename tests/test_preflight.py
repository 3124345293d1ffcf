"""Issue 17.2: the permission preflight. Before an apply's first change kprov asks IAM
(iam:SimulatePrincipalPolicy) whether the caller may do all of the run, and names each denied step,
action and resource (exit 4) before anything is made.

The world: in-process moto (the `aws` fixture, which answers SimulatePrincipalPolicy with
`sandbox.iam_simulate`, as the sandbox server does), a QA environment in moto's account, and the caller an
IAM user whose access key moto issued, with exactly the policy `kprov iam policy` prints (or that policy
less one action). No fake: the user, its policy, the simulation and the run are all real components.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from kensium_provision.errors import ExitCode, GuardError
from kensium_provision.permissions.preflight import PreflightUnavailable, principal_of
from kensium_provision.sandbox.iam_simulate import decide
from tests.conftest import Kprov
from tests.e2e import example
from tests.test_cli import spy_writes

ACCOUNT = "123456789012"  # moto's
QA = f'environments:\n  qa: {{account_id: "{ACCOUNT}", region: us-east-1, purposes: [qa, development, demo]}}\n'


@pytest.fixture
def qa(aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The QA config, and the answers of the shared VPC with a public operator address (QA is not the sandbox)."""
    config = tmp_path / "config.yaml"
    config.write_text(QA)
    monkeypatch.setenv("KPROV_CONFIG", str(config))
    answers = tmp_path / "vpc.yaml"
    answers.write_text(Path(example("shared-vpc.yaml")).read_text().replace("203.0.113.10", "52.94.76.10"))
    return answers


def printed_policy(kprov: Kprov) -> dict[str, Any]:
    """What `kprov iam policy vpc --mode apply` prints for the QA environment."""
    done = kprov("--env", "qa", "iam", "policy", "vpc", "--mode", "apply")
    assert done.code == ExitCode.OK, done.err
    policy: dict[str, Any] = json.loads(done.out)
    return policy


def without(policy: dict[str, Any], action: str) -> dict[str, Any]:
    statements = [{**s, "Action": [a for a in s["Action"] if a != action]} for s in policy["Statement"]]
    assert sum(len(s["Action"]) for s in statements) == sum(len(s["Action"]) for s in policy["Statement"]) - 1
    return {**policy, "Statement": [s for s in statements if s["Action"]]}


def operator(monkeypatch: pytest.MonkeyPatch, policy: dict[str, Any], name: str = "alice") -> str:
    """An IAM user with `policy` attached, whose access key the run's credentials are; its ARN."""
    iam = boto3.client("iam", region_name="us-east-1")
    arn = str(iam.create_user(UserName=name)["User"]["Arn"])
    made = iam.create_policy(PolicyName=f"kprov-{name}", PolicyDocument=json.dumps(policy))["Policy"]["Arn"]
    iam.attach_user_policy(UserName=name, PolicyArn=made)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    return arn


def preflight_records(kprov: Kprov) -> list[dict[str, Any]]:
    from kensium_provision.app.config import state_dir

    found = []
    for path in sorted((state_dir() / "runs").glob("*.jsonl")):
        found += [r for r in map(json.loads, path.read_text().splitlines())
                  if r.get("event") == "guard" and r.get("guard") == "preflight"]
    return found


def vpcs() -> list[Any]:
    return list(boto3.client("ec2", region_name="us-east-1").describe_vpcs(
        Filters=[{"Name": "tag:Name", "Values": ["POS-VPC"]}])["Vpcs"])


def test_an_apply_lacking_one_action_is_refused_before_any_write_naming_the_step(
        qa: Path, kprov: Kprov, monkeypatch: pytest.MonkeyPatch) -> None:
    alice = operator(monkeypatch, without(printed_policy(kprov), "ec2:CreateVpc"))
    sent = spy_writes(monkeypatch)
    done = kprov("--env", "qa", "provision", "shared", "vpc", "--answers", str(qa), "--yes")
    assert done.code == ExitCode.GUARD, done.err
    assert f"{alice} may not do 1 thing(s) this run needs; nothing was changed" in done.err
    assert "step vpc (ec2.vpc): ec2:CreateVpc on * (no policy allows it)" in done.err
    assert sent == [] and vpcs() == []  # no lock, no VPC, no record: not one write was sent
    assert [r["outcome"] for r in preflight_records(kprov)] == ["refused"]

    shown = kprov("--env", "qa", "--output", "json", "provision", "shared", "vpc", "--answers", str(qa), "--yes")
    error = shown.json()
    assert (error["kind"], error["exit_code"], error["error"]) == ("error", ExitCode.GUARD, "PreflightDenied")
    assert error["issues"] == ["step vpc (ec2.vpc): ec2:CreateVpc on * (no policy allows it)"]
    assert "--skip-preflight" in error["hint"] and sent == []


def test_a_plan_asks_only_on_request_and_then_names_the_same_step(
        qa: Path, kprov: Kprov, monkeypatch: pytest.MonkeyPatch) -> None:
    operator(monkeypatch, without(printed_policy(kprov), "ec2:CreateVpc"))
    assert kprov("--env", "qa", "provision", "shared", "vpc", "--dry-run", "--answers", str(qa)).code == ExitCode.OK
    asked = kprov("--env", "qa", "provision", "shared", "vpc", "--dry-run", "--preflight", "--answers", str(qa))
    assert asked.code == ExitCode.GUARD and "step vpc (ec2.vpc): ec2:CreateVpc" in asked.err
    both = kprov("--env", "qa", "provision", "shared", "vpc", "--preflight", "--skip-preflight", "--answers", str(qa))
    assert both.code == ExitCode.USAGE


def test_the_printed_policy_passes_and_the_apply_runs(qa: Path, kprov: Kprov, monkeypatch: pytest.MonkeyPatch) -> None:
    alice = operator(monkeypatch, printed_policy(kprov))
    done = kprov("--env", "qa", "provision", "shared", "vpc", "--answers", str(qa), "--yes")
    assert done.code == ExitCode.OK, done.err
    assert len(vpcs()) == 1
    assert f"permission preflight: IAM allows {alice} all" in done.err
    [record] = preflight_records(kprov)
    assert record["outcome"] == "ok" and record["principal"] == alice and record["actions"] > 10


def test_a_caller_that_may_not_simulate_is_refused_unless_it_skips_the_preflight_journaled(
        qa: Path, kprov: Kprov, monkeypatch: pytest.MonkeyPatch) -> None:
    operator(monkeypatch, without(printed_policy(kprov), "iam:SimulatePrincipalPolicy"))
    sent = spy_writes(monkeypatch)
    refused = kprov("--env", "qa", "provision", "shared", "vpc", "--answers", str(qa), "--yes")
    assert refused.code == ExitCode.GUARD, refused.err
    assert f"iam:SimulatePrincipalPolicy on arn:aws:iam::{ACCOUNT}:user/alice was refused (AccessDenied)" in refused.err
    assert "--skip-preflight" in refused.err and sent == [] and vpcs() == []

    done = kprov("--env", "qa", "provision", "shared", "vpc", "--answers", str(qa), "--yes", "--skip-preflight")
    assert done.code == ExitCode.OK, done.err
    assert "permission preflight skipped" in done.err and len(vpcs()) == 1
    assert [(r["outcome"], r.get("reason")) for r in preflight_records(kprov)] == [
        ("refused", None), ("skipped", "--skip-preflight")]


def test_the_sandbox_apply_passes_the_preflight(aws: None, kprov: Kprov) -> None:
    # The sandbox's caller is moto's own identity (user/moto), which moto lets do everything.
    done = kprov("provision", "shared", "vpc", "--answers", example("shared-vpc.yaml"), "--yes")
    assert done.code == ExitCode.OK, done.err
    assert [(r["outcome"], r["principal"]) for r in preflight_records(kprov)] == [
        ("ok", f"arn:aws:iam::{ACCOUNT}:user/moto")]


# --- whose policies: the principal of a caller ---------------------------------------------------------------


def test_an_assumed_role_is_simulated_as_its_role_and_an_sso_role_by_its_path(aws: None) -> None:
    iam = boto3.client("iam", region_name="us-east-1")
    trust = json.dumps({"Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}]})
    sso = iam.create_role(RoleName="AWSReservedSSO_Admin_0123", Path="/aws-reserved/sso.amazonaws.com/",
                          AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    assert principal_of(f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_Admin_0123/alice", iam) == sso
    assert principal_of(f"arn:aws:sts::{ACCOUNT}:assumed-role/kprov-ops/alice", iam) == \
        f"arn:aws:iam::{ACCOUNT}:role/kprov-ops"
    assert principal_of(f"arn:aws:iam::{ACCOUNT}:user/ops/alice", iam) == f"arn:aws:iam::{ACCOUNT}:user/ops/alice"
    with pytest.raises(PreflightUnavailable, match="IAM simulates only a user or a role"):
        principal_of(f"arn:aws:sts::{ACCOUNT}:federated-user/bob", iam)


def test_a_role_under_a_path_is_found_through_iam_and_its_denials_named(aws: None) -> None:
    from kensium_provision.permissions.policy import Need
    from kensium_provision.permissions.preflight import run_preflight

    iam = boto3.client("iam", region_name="us-east-1")
    trust = json.dumps({"Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}]})
    role = iam.create_role(RoleName="kprov-ops", Path="/ops/", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    iam.put_role_policy(RoleName="kprov-ops", PolicyName="vpc", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:*", "Resource": "*"},
                       {"Effect": "Deny", "Action": "ec2:CreateTags", "Resource": "*"}]}))
    need = [Need(where="step vpc (ec2.vpc)", step_id="vpc", operation=f"ec2:{name}", action=f"ec2:{name}",
                 resources=("*",)) for name in ("CreateVpc", "CreateTags")]
    with pytest.raises(GuardError) as refused:
        run_preflight(iam, f"arn:aws:sts::{ACCOUNT}:assumed-role/kprov-ops/alice", need, region="us-east-1")
    assert f"{role} may not do 1 thing(s)" in str(refused.value)
    assert "step vpc (ec2.vpc): ec2:CreateTags on * (a policy denies it)" in str(refused.value)


def test_the_requests_go_at_once_and_the_denials_keep_their_order(aws: None) -> None:
    """Every SimulatePrincipalPolicy on a thread of its own (aws.gather), the first too (a role's path is
    looked up only when IAM does not know the role); the refusal lists the denials in the order of the
    requests, whatever order they came back."""
    import threading

    from kensium_provision.permissions.policy import Need
    from kensium_provision.permissions.preflight import run_preflight

    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_user(UserName="bob")
    iam.put_user_policy(UserName="bob", PolicyName="none", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:DescribeVpcs", "Resource": "*"}]}))
    threads: list[str] = []
    iam.meta.events.register("before-call.iam.SimulatePrincipalPolicy",
                             lambda **_: threads.append(threading.current_thread().name))
    # Three resource groups: three requests.
    need = [Need(where=f"step {n} (ssm.parameter)", step_id=n, operation="ssm:PutParameter", action="ssm:PutParameter",
                 resources=(f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/{n}",)) for n in ("a", "b", "c")]
    with pytest.raises(GuardError) as refused:
        run_preflight(iam, f"arn:aws:iam::{ACCOUNT}:user/bob", need, region="us-east-1")
    assert len(threads) == 3 and all(name.startswith("kprov-read") for name in threads), threads
    text = str(refused.value)
    assert text.index("step a (") < text.index("step b (") < text.index("step c ("), text


# --- the sandbox's simulation itself -----------------------------------------------------------------------------


def test_the_sandbox_simulation_honours_deny_not_action_resources_and_the_requested_region() -> None:
    allow_eu = json.dumps({"Statement": [
        {"Effect": "Allow", "Action": "ec2:*", "Resource": "*",
         "Condition": {"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}},
        {"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::fusion-rms-*"},
        {"Effect": "Deny", "Action": "S3:DeleteBucket", "Resource": "*"}]})
    us, eu = {"aws:requestedregion": ["us-east-1"]}, {"aws:requestedregion": ["eu-west-1"]}
    assert decide([allow_eu], "ec2:CreateVpc", "*", us) == "implicitDeny"
    assert decide([allow_eu], "ec2:CreateVpc", "*", eu) == "allowed"
    assert decide([allow_eu], "s3:PutObject", "arn:aws:s3:::fusion-rms-acme", us) == "allowed"
    assert decide([allow_eu], "s3:PutObject", "arn:aws:s3:::other", us) == "implicitDeny"
    assert decide([allow_eu], "iam:CreateUser", "arn:aws:s3:::fusion-rms-acme", us) == "implicitDeny"
    assert decide([allow_eu], "s3:deletebucket", "arn:aws:s3:::fusion-rms-acme", us) == "explicitDeny"


def test_a_resume_asks_again_and_skips_only_on_request(qa: Path, kprov: Kprov, monkeypatch: pytest.MonkeyPatch) -> None:
    operator(monkeypatch, without(printed_policy(kprov), "iam:SimulatePrincipalPolicy"))
    done = kprov("--env", "qa", "--output", "json", "provision", "shared", "vpc", "--answers", str(qa), "--yes",
                 "--skip-preflight")
    assert done.code == ExitCode.OK, done.err
    run_id = done.json()["run_id"]
    refused = kprov("--env", "qa", "resume", run_id, "--yes")
    assert refused.code == ExitCode.GUARD and "iam:SimulatePrincipalPolicy" in refused.err, refused.err
    resumed = kprov("--env", "qa", "resume", run_id, "--yes", "--skip-preflight")
    assert resumed.code == ExitCode.OK, resumed.err
    # Run ids of one second sort by their random suffix: compare the outcomes, not their file order.
    assert sorted(r["outcome"] for r in preflight_records(kprov)) == ["refused", "skipped", "skipped"]
    # remove-client and rotate take the same choice
    for command in (("remove-client", "acme"), ("rotate", "acme", "sql")):
        assert kprov(*command, "--preflight", "--skip-preflight").code == ExitCode.USAGE
