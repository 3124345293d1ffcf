"""A POS host's Elastic IP (issue 16.2) and Windows computer name (16.3); the DNS check compares with the address.

Under in-process moto: the shared ec2 checklist from its example answers, and the client install (its
estate as tests/test_client_install builds it) with the POS domain in a Route 53 hosted zone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kensium_provision.errors import ExitCode
from kensium_provision.model import Mode, Status
from tests.checklist_harness import EXAMPLES, raw_client, run_checklist
from tests.fakes import MemoryVault
from tests.test_client_install import World, answers
from tests.test_client_install import world as world  # the fixture, used by name

pytest_plugins = ["rabbitmq_fixtures"]


def addresses(name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = raw_client("ec2").describe_addresses(
        Filters=[{"Name": "tag:Name", "Values": [name]}])["Addresses"]
    return found


def test_the_host_gets_one_tagged_elastic_ip_and_keeps_it(aws: None) -> None:
    vault = MemoryVault()
    for name in ("vpc", "ec2"):
        report = run_checklist(f"shared/{name}", Mode.APPLY, EXAMPLES / f"shared-{name}.yaml", vault=vault)
        assert report.exit_code is ExitCode.OK, (name, report.error)
    [address] = addresses("eip-POS01")
    [instance] = [i for r in raw_client("ec2").describe_instances(
        Filters=[{"Name": "tag:Name", "Values": ["POS01"]}])["Reservations"] for i in r["Instances"]]
    assert address["InstanceId"] == instance["InstanceId"] and address["Domain"] == "vpc"
    assert instance["PublicIpAddress"] == address["PublicIp"]
    assert report.values["public_ip"] == address["PublicIp"]

    again = run_checklist("shared/ec2", Mode.APPLY, EXAMPLES / "shared-ec2.yaml", vault=vault)
    assert {r.step_id: r.status for r in again.results}["elastic-ip"] is Status.DONE
    assert len(addresses("eip-POS01")) == 1  # a re-run allocates nothing

    raw_client("ec2").disassociate_address(AssociationId=address["AssociationId"])
    check = run_checklist("shared/ec2", Mode.CHECK, EXAMPLES / "shared-ec2.yaml", vault=vault)
    assert [f.step_id for f in check.findings] == ["elastic-ip"]
    assert run_checklist("shared/ec2", Mode.APPLY, EXAMPLES / "shared-ec2.yaml", vault=vault).exit_code is ExitCode.OK
    assert addresses("eip-POS01")[0]["InstanceId"] == instance["InstanceId"]


def _zone_with_record(target: str) -> str:
    route53 = raw_client("route53")
    zone = route53.create_hosted_zone(Name="kensiumpos.example", CallerReference="kprov-test")["HostedZone"]["Id"]
    route53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [{
        "Action": "CREATE", "ResourceRecordSet": {"Name": "acme.kensiumpos.example", "Type": "A", "TTL": 300,
                                                  "ResourceRecords": [{"Value": target}]}}]})
    return str(zone).rsplit("/", 1)[-1]


def _give_pos01_an_elastic_ip() -> str:
    ec2 = raw_client("ec2")
    [instance] = [i for r in ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": ["POS01"]}])[
        "Reservations"] for i in r["Instances"]]
    allocation = ec2.allocate_address(Domain="vpc", TagSpecifications=[
        {"ResourceType": "elastic-ip", "Tags": [{"Key": "Name", "Value": "eip-POS01"}]}])
    ec2.associate_address(AllocationId=allocation["AllocationId"], InstanceId=instance["InstanceId"])
    return str(allocation["PublicIp"])


def test_the_route53_check_compares_the_record_with_the_hosts_elastic_ip(world: World, tmp_path: Path) -> None:
    public_ip = _give_pos01_an_elastic_ip()
    zone = _zone_with_record("198.51.100.99")  # an old, auto-assigned address
    report = world.install(answers=answers(tmp_path, dns_in_route53=True, dns_zone_id=zone))
    assert report.exit_code is ExitCode.FAILED
    failed = {r.step_id: r for r in report.results}["dns-record-route53"]
    assert failed.status is Status.FAILED and "198.51.100.99" in failed.reason, failed

    raw_client("route53").change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [{
        "Action": "UPSERT", "ResourceRecordSet": {"Name": "acme.kensiumpos.example", "Type": "A", "TTL": 300,
                                                  "ResourceRecords": [{"Value": public_ip}]}}]})
    report = world.install(answers=answers(tmp_path, dns_in_route53=True, dns_zone_id=zone))
    assert report.exit_code is ExitCode.OK, report.error
    assert {r.step_id: r.status for r in report.results}["dns-record-route53"] is Status.DONE


def test_the_windows_computer_name_is_set_at_first_boot_and_checked(aws: None) -> None:
    import base64

    from kensium_provision.steps.ec2.instance import computer_name_script

    vault = MemoryVault()
    for name in ("vpc", "ec2"):
        assert run_checklist(f"shared/{name}", Mode.APPLY, EXAMPLES / f"shared-{name}.yaml", vault=vault).exit_code \
            is ExitCode.OK
    ec2 = raw_client("ec2")
    [instance] = [i for r in ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": ["POS01"]}])[
        "Reservations"] for i in r["Instances"]]
    data = ec2.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="userData")["UserData"]
    script = base64.b64decode(data["Value"]).decode()
    assert script == computer_name_script("POS01")
    assert "Rename-Computer -NewName 'POS01' -Force" in script and "exit 3010" in script  # EC2Launch v2 reboots

    # A host launched without it (by hand, or by an older kprov) is a finding kprov cannot fix in place.
    ec2.stop_instances(InstanceIds=[instance["InstanceId"]])
    empty = base64.b64encode(b"<powershell></powershell>")
    ec2.modify_instance_attribute(InstanceId=instance["InstanceId"], UserData={"Value": empty})
    ec2.start_instances(InstanceIds=[instance["InstanceId"]])
    check = run_checklist("shared/ec2", Mode.CHECK, EXAMPLES / "shared-ec2.yaml", vault=vault)
    [message] = [f.message for f in check.findings if "computer name at first boot" in f.message]
    assert "POS01" in message, message


def test_a_computer_name_that_is_not_one_is_never_put_in_a_script() -> None:
    import pytest

    from kensium_provision.steps.ec2.instance import computer_name_script

    for bad in ("POS01'; Remove-Item C:\\ -Recurse; '", "A" * 16, "1POS"):
        with pytest.raises(ValueError, match="not a Windows computer name"):
            computer_name_script(bad)
