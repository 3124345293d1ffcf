"""The shared network checklists (vpc, ec2, pos) under moto: plan, apply, plan again, check, drift, refusals.

Each checklist: a plan on an account without it changes nothing and lists what will change; apply
builds it; a second plan finds every step done; check passes; a change made behind kprov's back is a
finding naming the step and what differs; a value moto would take but AWS refuses is refused before
any change. Plus: a CreateVpc whose answer is lost still makes one VPC, and the examples build the
estate unattended.
"""

from __future__ import annotations

import base64
from types import MappingProxyType
from typing import Any

import pytest

from kensium_provision.errors import ExitCode, InputError, StepError
from kensium_provision.model import Mode, Status
from kensium_provision.steps.base import StepContext
from kensium_provision.steps.ec2.instance import Ec2Instance, Ec2KeyPair, Ec2Tags
from kensium_provision.steps.ec2.network import Ec2Subnet
from kensium_provision.steps.ec2.reachability import Rule, ingress_rules
from kensium_provision.steps.ec2.security import Ec2SecurityGroup, operator_cidr
from kensium_provision.steps.rds_network import RdsDbSubnetGroup
from tests.checklist_harness import EXAMPLES, estate_counts, moto_runtime, mutating_calls, raw_client, run_checklist
from tests.fakes import MemoryVault, ScriptedOperator
from tests.faults import lose_response

VPC = {"region": "us-east-1", "primary_zone": "us-east-1a", "secondary_zone": "us-east-1b",
       "operator_name": "Demo Operator", "operator_ip": "203.0.113.10", "confirm": {"read-docs": True}}
EC2 = {"host": "POS01", "zone": "us-east-1a", "image_id": "ami-0123456789abcdef0",
       "admin_password_source": "manual", "admin_password_entry": "POS01/administrator"}
POS = {"host": "POS01", "pos_version": "3.10.2", "installed_version": "3.10.2", "monitor_service": "installed"}
ADMIN_PASSWORD = "Kensium-Test-Pw!42"


@pytest.fixture
def vault() -> MemoryVault:
    return MemoryVault()


def statuses(report: Any) -> dict[str, Status]:
    return {r.step_id: r.status for r in report.results}


def not_done(report: Any, *allowed: str) -> dict[str, str]:
    """Steps neither done nor skipped by their `when`, except `allowed` (manual steps without a probe)."""
    return {r.step_id: r.status.value for r in report.results if r.step_id not in allowed
            and r.status is not Status.DONE and not (r.status is Status.SKIPPED and r.reason.startswith("only when"))}


def finding(report: Any, step_id: str) -> str:
    messages = [f.message for f in report.findings if f.step_id == step_id]
    assert messages, f"no finding for {step_id}: {[f.message for f in report.findings]}"
    first: str = messages[0]
    return first


def vpc_named(name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = raw_client("ec2").describe_vpcs(
        Filters=[{"Name": "tag:Name", "Values": [name]}])["Vpcs"]
    return found


def group_named(name: str) -> dict[str, Any]:
    groups = raw_client("ec2").describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [name]}])["SecurityGroups"]
    assert len(groups) == 1
    group: dict[str, Any] = groups[0]
    return group


def sg_pos_ops() -> dict[str, Any]:
    return group_named("SG-POS-OPS")


def host() -> dict[str, Any]:
    found = raw_client("ec2").describe_instances(Filters=[{"Name": "tag:Name", "Values": ["POS01"]}])
    instance: dict[str, Any] = found["Reservations"][0]["Instances"][0]
    return instance


# --- vpc ------------------------------------------------------------------------------------------


def test_vpc_plan_apply_plan_check(aws: None) -> None:
    before = estate_counts()
    runtime = moto_runtime(Mode.PLAN, answers=VPC)
    plan = run_checklist("shared/vpc", Mode.PLAN, runtime=runtime)
    assert estate_counts() == before and mutating_calls(runtime) == []
    assert statuses(plan)["vpc"] is Status.CHANGE
    assert statuses(plan)["public-subnet-primary"] is Status.DEPENDS
    assert statuses(plan)["check-operator-ip"] is Status.DONE
    assert plan.exit_code is ExitCode.OK

    applied = run_checklist("shared/vpc", Mode.APPLY, VPC)
    assert applied.exit_code is ExitCode.OK, applied.error
    assert set(statuses(applied).values()) == {Status.CHANGED, Status.DONE}  # DONE: the address check
    [vpc] = vpc_named("POS-VPC")
    ec2 = raw_client("ec2")
    assert vpc["CidrBlock"] == "10.0.0.0/16" and vpc["InstanceTenancy"] == "default"
    for attribute in ("enableDnsSupport", "enableDnsHostnames"):
        key = attribute[0].upper() + attribute[1:]
        assert ec2.describe_vpc_attribute(VpcId=vpc["VpcId"], Attribute=attribute)[key]["Value"] is True
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]
    assert sorted((s["AvailabilityZone"], s["MapPublicIpOnLaunch"]) for s in subnets) == [
        ("us-east-1a", False), ("us-east-1a", True), ("us-east-1b", False), ("us-east-1b", True)]
    group = raw_client("rds").describe_db_subnet_groups(DBSubnetGroupName="pos-db-subnets")["DBSubnetGroups"][0]
    assert {s["SubnetAvailabilityZone"]["Name"] for s in group["Subnets"]} == {"us-east-1a", "us-east-1b"}
    operator = [{"CidrIp": "203.0.113.10/32", "Description": "Demo Operator"}]
    assert sorted(sg_pos_ops()["IpPermissions"], key=lambda p: p["FromPort"]) == [
        {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "UserIdGroupPairs": [], "Ipv6Ranges": [],
         "PrefixListIds": [], "IpRanges": operator} for port in (1433, 3389)]
    host_group, db_group = group_named("SG-POS-HOST"), group_named("SG-POS-DB")
    assert ingress_rules(host_group) == (Rule("tcp", 443, 443, "0.0.0.0/0", "HTTPS to POS from tenant users"),)
    assert ingress_rules(db_group) == (Rule("tcp", 1433, 1433, host_group["GroupId"], "SQL Server from the POS hosts"),)

    built = estate_counts()
    again = run_checklist("shared/vpc", Mode.PLAN, VPC)
    assert not_done(again, "read-docs") == {}
    assert statuses(again)["read-docs"] is Status.CHANGE  # manual, no probe: a plan always lists it
    check = run_checklist("shared/vpc", Mode.CHECK, VPC)
    assert check.exit_code is ExitCode.OK and check.findings == ()
    assert run_checklist("shared/vpc", Mode.APPLY, VPC).exit_code is ExitCode.OK
    assert estate_counts() == built  # a re-run makes nothing new


def test_vpc_drift_is_found_and_fixed(aws: None) -> None:
    assert run_checklist("shared/vpc", Mode.APPLY, VPC).exit_code is ExitCode.OK
    ec2 = raw_client("ec2")
    [vpc] = vpc_named("POS-VPC")
    ec2.modify_vpc_attribute(VpcId=vpc["VpcId"], EnableDnsHostnames={"Value": False})
    group = sg_pos_ops()
    ec2.revoke_security_group_ingress(GroupId=group["GroupId"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 1433, "ToPort": 1433, "IpRanges": [{"CidrIp": "203.0.113.10/32"}]}])

    check = run_checklist("shared/vpc", Mode.CHECK, VPC)
    assert check.exit_code is ExitCode.FAILED
    assert "enableDnsHostnames: no, should be yes" in finding(check, "vpc")
    # The VPC's drift leaves its id unknown to later steps in check; the rule is found once DNS is fixed.
    assert run_checklist("shared/vpc", Mode.APPLY, VPC).exit_code is ExitCode.OK
    assert ec2.describe_vpc_attribute(VpcId=vpc["VpcId"], Attribute="enableDnsHostnames")[
        "EnableDnsHostnames"]["Value"] is True
    assert run_checklist("shared/vpc", Mode.CHECK, VPC).exit_code is ExitCode.OK

    ec2.revoke_security_group_ingress(GroupId=group["GroupId"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 1433, "ToPort": 1433, "IpRanges": [{"CidrIp": "203.0.113.10/32"}]}])
    check = run_checklist("shared/vpc", Mode.CHECK, VPC)
    assert check.exit_code is ExitCode.FAILED
    assert "203.0.113.10/32" in finding(check, "operator-ip-rule")
    assert [f.step_id for f in check.findings] == ["operator-ip-rule"]


def test_operator_ip_change_moves_the_rule(aws: None) -> None:
    assert run_checklist("shared/vpc", Mode.APPLY, VPC).exit_code is ExitCode.OK
    moved = {**VPC, "operator_ip": "198.51.100.7"}
    plan = run_checklist("shared/vpc", Mode.PLAN, moved)
    rule = next(r for r in plan.results if r.step_id == "operator-ip-rule")
    assert rule.status is Status.CHANGE and rule.diff == (("CidrIp", "203.0.113.10/32", "198.51.100.7/32"),)
    assert run_checklist("shared/vpc", Mode.APPLY, moved).exit_code is ExitCode.OK
    ranges = sg_pos_ops()["IpPermissions"][0]["IpRanges"]
    assert ranges == [{"CidrIp": "198.51.100.7/32", "Description": "Demo Operator"}]


@pytest.mark.parametrize(("answer", "value", "says"), [
    ("operator_ip", "10.1.2.3", "private address"),  # moto would allow it; it opens SQL Server to nobody
    ("operator_ip", "203.0.113.0/24", "range of 256 addresses"),
    ("operator_name", "Jane O'Brien", "sg-rule-description"),  # moto takes the apostrophe, EC2 does not
])
def test_vpc_refuses_before_any_change(aws: None, answer: str, value: str, says: str) -> None:
    before = estate_counts()
    runtime = moto_runtime(Mode.APPLY, answers={**VPC, answer: value})
    with pytest.raises(InputError, match=says):
        run_checklist("shared/vpc", Mode.APPLY, runtime=runtime)
    assert mutating_calls(runtime) == [] and estate_counts() == before


def test_lost_create_vpc_response_makes_one_vpc(aws: None) -> None:
    runtime = moto_runtime(Mode.APPLY, answers=VPC)
    # CreateVpc has no idempotency token: kprov sends it on a single-attempt client and re-probes.
    fault = lose_response(runtime.aws.client("ec2", attempts=1), "ec2.CreateVpc")  # type: ignore[call-arg]
    report = run_checklist("shared/vpc", Mode.APPLY, runtime=runtime)
    assert report.exit_code is ExitCode.OK, report.error
    assert fault.fired == 1 and len(vpc_named("POS-VPC")) == 1
    assert run_checklist("shared/vpc", Mode.APPLY, VPC).exit_code is ExitCode.OK
    assert len(vpc_named("POS-VPC")) == 1


# --- ec2 ------------------------------------------------------------------------------------------


def _windows_password_hooks(runtime: Any, vault: MemoryVault) -> list[str]:
    """Make moto act like Windows: Platform windows, and password data encrypted to the host's key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    calls: list[str] = []
    client = runtime.aws.client("ec2")

    def windows(parsed: dict[str, Any], **_: Any) -> None:
        for reservation in parsed.get("Reservations") or ():
            for instance in reservation["Instances"]:
                instance["Platform"] = "windows"

    def password(parsed: dict[str, Any], **_: Any) -> None:
        calls.append("GetPasswordData")
        if len(calls) == 1:
            parsed["PasswordData"] = ""  # Windows is still starting: kprov polls
            return
        key = serialization.load_pem_private_key(vault.items["POS01/key-pair"].reveal().encode(), password=None)
        sealed = key.public_key().encrypt(ADMIN_PASSWORD.encode(), padding.PKCS1v15())  # type: ignore[union-attr]
        parsed["PasswordData"] = base64.b64encode(sealed).decode()

    client.meta.events.register("after-call.ec2.DescribeInstances", windows)
    client.meta.events.register("after-call.ec2.GetPasswordData", password)
    return calls


def test_ec2_plan_apply_plan_check_and_drift(aws: None, vault: MemoryVault) -> None:
    assert run_checklist("shared/vpc", Mode.APPLY, VPC).exit_code is ExitCode.OK
    answers = {**EC2, "admin_password_source": "decrypt"}
    before = estate_counts()
    runtime = moto_runtime(Mode.PLAN, answers=answers, vault=vault)
    plan = run_checklist("shared/ec2", Mode.PLAN, runtime=runtime)
    assert estate_counts() == before and mutating_calls(runtime) == [] and vault.items == {}
    assert [k for k, v in statuses(plan).items() if v is Status.CHANGE] == ["key-pair", "launch"]

    runtime = moto_runtime(Mode.APPLY, answers=answers, vault=vault)
    polls = _windows_password_hooks(runtime, vault)
    applied = run_checklist("shared/ec2", Mode.APPLY, runtime=runtime)
    assert applied.exit_code is ExitCode.OK, applied.error
    assert polls == ["GetPasswordData", "GetPasswordData"]
    assert vault.fetch("memory:POS01/administrator").reveal() == ADMIN_PASSWORD
    assert "BEGIN RSA PRIVATE KEY" in vault.fetch("memory:POS01/key-pair").reveal()
    instance = host()
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags == {"Name": "POS01", "PosVersion": "not-installed", "kprov:hosting": "Shared"}
    assert instance["KeyName"] == "POS01-key" and instance["Placement"]["AvailabilityZone"] == "us-east-1a"
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    assert sorted(g["GroupId"] for g in instance["SecurityGroups"]) == sorted(
        [sg_pos_ops()["GroupId"], group_named("SG-POS-HOST")["GroupId"]])

    again = run_checklist("shared/ec2", Mode.PLAN, answers, vault=vault)
    assert not_done(again) == {}
    assert run_checklist("shared/ec2", Mode.CHECK, answers, vault=vault).exit_code is ExitCode.OK

    # Drift: SG-POS-OPS taken off the host.
    default = raw_client("ec2").describe_security_groups(Filters=[
        {"Name": "group-name", "Values": ["default"]}, {"Name": "vpc-id", "Values": [instance["VpcId"]]}])
    raw_client("ec2").modify_instance_attribute(InstanceId=instance["InstanceId"],
                                                Groups=[default["SecurityGroups"][0]["GroupId"]])
    check = run_checklist("shared/ec2", Mode.CHECK, answers, vault=vault)
    assert check.exit_code is ExitCode.FAILED
    assert finding(check, "launch").startswith("Launch the host: SecurityGroups: sg-")
    assert run_checklist("shared/ec2", Mode.APPLY, answers, vault=vault).exit_code is ExitCode.OK
    assert run_checklist("shared/ec2", Mode.CHECK, answers, vault=vault).exit_code is ExitCode.OK
    assert estate_counts()["instances"] == before["instances"] + 1


@pytest.mark.parametrize(("answer", "value", "refusal"), [
    ("image_id", "ami-XYZ", InputError),  # moto launches any image id
    ("instance_type", "t3_large", InputError),
    ("instance_type", "t9.huge", None),  # well-formed, but offered nowhere: a finding, then a failed apply
])
def test_ec2_refuses_before_any_change(aws: None, answer: str, value: str, refusal: Any) -> None:
    assert run_checklist("shared/vpc", Mode.APPLY, VPC).exit_code is ExitCode.OK
    before = estate_counts()
    runtime = moto_runtime(Mode.APPLY, answers={**EC2, answer: value})
    if refusal is not None:
        with pytest.raises(refusal, match="launch-check"):
            run_checklist("shared/ec2", Mode.APPLY, runtime=runtime)
    else:
        report = run_checklist("shared/ec2", Mode.APPLY, runtime=runtime)
        assert report.exit_code is ExitCode.FAILED and "instance type in us-east-1a" in report.error
        assert statuses(report)["launch"] is Status.PENDING
    assert mutating_calls(runtime) == [] and estate_counts() == before


# --- pos ------------------------------------------------------------------------------------------


def test_pos_plan_apply_plan_check_and_drift(aws: None, vault: MemoryVault) -> None:
    assert run_checklist("shared/vpc", Mode.APPLY, VPC).exit_code is ExitCode.OK
    assert run_checklist("shared/ec2", Mode.APPLY, EC2, vault=vault).exit_code is ExitCode.OK
    before = estate_counts()
    runtime = moto_runtime(Mode.PLAN, answers=POS, vault=vault)
    plan = run_checklist("shared/pos", Mode.PLAN, runtime=runtime)
    assert estate_counts() == before and mutating_calls(runtime) == []
    assert statuses(plan) == {"find-host": Status.DONE, "install-pos": Status.CHANGE,
                              "installed-version-matches": Status.DEPENDS, "record-version": Status.CHANGE}

    applied = run_checklist("shared/pos", Mode.APPLY, POS, vault=vault)
    assert applied.exit_code is ExitCode.OK, applied.error
    assert {t["Key"]: t["Value"] for t in host()["Tags"]}["PosVersion"] == "3.10.2"
    again = run_checklist("shared/pos", Mode.PLAN, POS, vault=vault)
    assert not_done(again, "installed-version-matches") == {}  # skipped with the install: nothing to compare
    assert statuses(again)["install-pos"] is Status.SKIPPED  # not asked again on a recorded host
    assert run_checklist("shared/pos", Mode.CHECK, POS, vault=vault).exit_code is ExitCode.OK

    instance_id = host()["InstanceId"]
    raw_client("ec2").create_tags(Resources=[instance_id], Tags=[{"Key": "PosVersion", "Value": "3.9.0"}])
    check = run_checklist("shared/pos", Mode.CHECK, POS, vault=vault)
    assert check.exit_code is ExitCode.FAILED
    assert "tag PosVersion: 3.9.0, should be 3.10.2" in finding(check, "record-version")
    # A host's recorded version is a fact, never overwritten by a re-run.
    reapplied = run_checklist("shared/pos", Mode.APPLY, POS, vault=vault)
    assert reapplied.exit_code is ExitCode.FAILED and "only from not-installed" in reapplied.error
    assert {t["Key"]: t["Value"] for t in host()["Tags"]}["PosVersion"] == "3.9.0"


@pytest.mark.parametrize(("answers", "says"), [
    ({"pos_version": "3." + "1" * 300, "installed_version": "3." + "1" * 300}, "AWS allows 256"),  # moto takes it
    ({"installed_version": "3.9.0"}, "another version"),
])
def test_pos_refuses_before_any_change(aws: None, vault: MemoryVault, answers: dict[str, str],
                                       says: str) -> None:
    assert run_checklist("shared/vpc", Mode.APPLY, VPC).exit_code is ExitCode.OK
    assert run_checklist("shared/ec2", Mode.APPLY, EC2, vault=vault).exit_code is ExitCode.OK
    before = estate_counts()
    runtime = moto_runtime(Mode.APPLY, answers={**POS, **answers}, vault=vault)
    with pytest.raises(InputError, match=says):
        run_checklist("shared/pos", Mode.APPLY, runtime=runtime)
    assert mutating_calls(runtime) == [] and estate_counts() == before
    assert {t["Key"]: t["Value"] for t in host()["Tags"]}["PosVersion"] == "not-installed"


# --- the examples, step types alone, addresses ------------------------------------------------------


def test_examples_build_the_estate_unattended(aws: None, vault: MemoryVault) -> None:
    for name in ("vpc", "ec2", "pos"):
        report = run_checklist(f"shared/{name}", Mode.APPLY, EXAMPLES / f"shared-{name}.yaml", vault=vault)
        assert report.exit_code is ExitCode.OK, (name, report.error)
    for name in ("vpc", "ec2", "pos"):
        check = run_checklist(f"shared/{name}", Mode.CHECK, EXAMPLES / f"shared-{name}.yaml", vault=vault)
        assert check.exit_code is ExitCode.OK, (name, [f.message for f in check.findings])


SUBNET = {"name": "x", "vpc_id": "vpc-0123456789abcdef0", "zone": "us-east-1a"}
LAUNCH = {"name": "POS01", "zone": "us-east-1a", "subnet_id": "subnet-0123456789abcdef0",
          "group_ids": ["sg-0123456789abcdef0"], "key_name": "k", "instance_type": "t3.large",
          "image_id": "ami-0123456789abcdef0"}


@pytest.mark.parametrize(("step", "params", "says"), [
    (Ec2SecurityGroup(), {"name": "sg-POS", "vpc_id": "vpc-0123456789abcdef0", "description": "d"},
     "cannot start with sg-"),
    (Ec2SecurityGroup(), {"name": "SG-POS-OPS", "vpc_id": "vpc-0123456789abcdef0", "description": "d\u00e9j\u00e0"},
     "description"),
    (Ec2Subnet(), {**SUBNET, "cidr": "10.0.0.5/20"}, "not an IPv4 network"),  # moto keeps the host bits
    (Ec2Subnet(), {**SUBNET, "cidr": "10.0.0.0/29"}, "/16 to /28"),
    (Ec2Subnet(), {**SUBNET, "cidr": "10.0.16.0/20", "other_than_zone": "us-east-1a"}, "two different zones"),
    (Ec2Instance(), {**LAUNCH, "instance_type": "T3.large"}, "family.size"),
    (Ec2Instance(), {**LAUNCH, "image_id": "ami-0123"}, "AMI id"),
    (Ec2Tags(), {"resource": "i-0123456789abcdef0", "tags": {"aws:owner": "x"}}, "reserved"),
    (RdsDbSubnetGroup(), {"name": "pos", "subnet_ids": ["subnet-0123456789abcdef0"], "description": "d"},
     "two availability zones"),  # moto makes a one-zone group; AWS refuses it
])
def test_step_types_refuse_what_aws_refuses_without_calling(aws: None, step: Any, params: dict[str, Any],
                                                            says: str) -> None:
    runtime = moto_runtime(Mode.APPLY)
    ctx = StepContext(runtime, "unit", MappingProxyType({}))
    with pytest.raises(InputError, match=says):
        step.probe(ctx, params)
    assert runtime.aws.counter.total == 0  # type: ignore[attr-defined]


def test_one_zone_db_subnet_group_is_refused_before_create(aws: None) -> None:
    assert run_checklist("shared/vpc", Mode.APPLY, VPC).exit_code is ExitCode.OK
    ec2 = raw_client("ec2")
    [vpc] = vpc_named("POS-VPC")
    one_zone = sorted(s["SubnetId"] for s in ec2.describe_subnets(Filters=[
        {"Name": "vpc-id", "Values": [vpc["VpcId"]]}, {"Name": "availability-zone", "Values": ["us-east-1a"]}])[
        "Subnets"])
    runtime = moto_runtime(Mode.APPLY)
    ctx = StepContext(runtime, "one-zone", MappingProxyType({}))
    params = {"name": "one-zone", "subnet_ids": one_zone, "description": "d"}
    probe = RdsDbSubnetGroup().probe(ctx, params)
    assert not probe.done and "cannot be created" in probe.note
    with pytest.raises(Exception, match="two or more availability zones"):
        RdsDbSubnetGroup().act(ctx, params, probe)
    assert mutating_calls(runtime) == []


def test_key_pair_private_key_lives_in_the_password_manager(aws: None, vault: MemoryVault) -> None:
    from kensium_provision.vault.backends import ManualVault

    step, params = Ec2KeyPair(), {"name": "POS09-key", "vault_entry": "POS09/key-pair"}
    ctx = StepContext(moto_runtime(Mode.APPLY, vault=vault), "key-pair", MappingProxyType({}))
    made = step.act(ctx, params, step.probe(ctx, params))
    assert made == {"key_name": "POS09-key", "key_ref": "memory:POS09/key-pair"}
    ec2 = raw_client("ec2")
    fingerprint = ec2.describe_key_pairs(KeyNames=["POS09-key"])["KeyPairs"][0]["KeyFingerprint"]

    # Stored but not in EC2 (a run stopped between the two): the stored key's public half is imported.
    ec2.delete_key_pair(KeyName="POS09-key")
    probe = step.probe(ctx, params)
    assert not probe.done and [d.field for d in probe.differences] == ["key pair in EC2"]
    step.act(ctx, params, probe)
    assert ec2.describe_key_pairs(KeyNames=["POS09-key"])["KeyPairs"][0]["KeyFingerprint"] == fingerprint

    # In EC2 but the private key is gone: reported, never papered over with a new key.
    vault.items.clear()
    probe = step.probe(ctx, params)
    assert [d.field for d in probe.differences] == ["private key in the password manager"]
    with pytest.raises(StepError, match="never shows a private key again"):
        step.act(ctx, params, probe)

    # The manual password manager cannot be asked: an existing pair counts as done.
    manual = moto_runtime(Mode.CHECK, vault=ManualVault(ScriptedOperator()))
    probe = step.probe(StepContext(manual, "key-pair", MappingProxyType({})), params)
    assert probe.done and probe.outputs["key_ref"] == "manual:POS09/key-pair"


@pytest.mark.parametrize(("address", "sandbox_ok", "aws_ok"), [
    ("52.95.110.1", True, True),
    ("52.95.110.1/32", True, True),
    ("203.0.113.10", True, False),  # documentation range: examples only
    ("10.1.2.3", False, False),
    ("192.168.1.20", False, False),
    ("127.0.0.1", False, False),
    ("100.64.0.9", False, False),  # carrier-grade NAT
    ("169.254.169.254", False, False),
    ("52.95.110.0/24", False, False),
    ("2001:db8::1", False, False),
    (" 52.95.110.1", False, False),
    ("52.95.110", False, False),
])
def test_operator_address(address: str, sandbox_ok: bool, aws_ok: bool) -> None:
    for sandbox, ok in ((True, sandbox_ok), (False, aws_ok)):
        if ok:
            assert operator_cidr(address, sandbox=sandbox) == address.split("/")[0] + "/32"
        else:
            with pytest.raises(InputError):
                operator_cidr(address, sandbox=sandbox)
