"""Tenants per shared POS host (issue 18.4): no one documents a limit, so it is the config's
`capacity.tenants_per_host` ([INFER], default steps.capacity.DEFAULT_TENANTS_PER_HOST). install-client offers
only a host under it; `kprov fleet` shows each host's clients against it.

The hosts and the client records are real (in-process moto: EC2 and DynamoDB); the inputs are the packaged
client/install checklist's own (its ec2-hosts lookup with `room: true`), resolved by the engine.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from kensium_provision.app.commands.fleet import build_overview
from kensium_provision.app.config import CapacitySettings
from kensium_provision.checklist.catalog import install_checklist
from kensium_provision.engine.run import resolve_inputs
from kensium_provision.errors import InputError
from kensium_provision.model import Mode
from kensium_provision.records.clients import ClientRecord, ensure_table, list_clients, put_record, table_of
from kensium_provision.steps.capacity import DEFAULT_TENANTS_PER_HOST
from tests.checklist_harness import load, moto_runtime, raw_client

SETTINGS = {"capacity": {"tenants_per_host": 3}}


def _host(name: str, version: str = "2024.3") -> None:
    raw_client("ec2").run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}, {"Key": "PosVersion", "Value": version},
                                              {"Key": "kprov:hosting", "Value": "Shared"}]}])


def _tenants(host: str, count: int, status: str = "installed") -> None:
    dynamodb = raw_client("dynamodb")
    ensure_table(dynamodb)
    for n in range(count):
        put_record(dynamodb, ClientRecord(org_id=f"{host.lower()}c{n}", status=status, ec2_host=host))


def _place(host: str, mode: Mode = Mode.APPLY, settings: object = SETTINGS) -> dict[str, object]:
    """The install's own host inputs (pos_version, tenant_hosting, ec2_host), answered."""
    install = load(install_checklist())
    inputs = tuple(i for i in install.inputs if i.id in ("pos_version", "tenant_hosting", "ec2_host"))
    runtime = moto_runtime(mode, settings=settings)
    return resolve_inputs(replace(install, inputs=inputs, steps=()), runtime,
                          {"pos_version": "2024.3", "tenant_hosting": "Shared", "ec2_host": host})


def test_the_default_is_the_configs() -> None:
    assert CapacitySettings().tenants_per_host == DEFAULT_TENANTS_PER_HOST


def test_a_full_host_is_refused_with_those_with_room_listed(aws: None) -> None:
    for name in ("POS01", "POS02", "POS03"):
        _host(name)
    _tenants("POS01", 3)
    _tenants("POS02", 2)
    _tenants("POS03", 5, status="removed")  # a removed client's tenant is gone
    with pytest.raises(InputError, match=r"ec2_host: 'POS01' must be one of: POS02, POS03"):
        _place("POS01")
    assert _place("POS02")["ec2_host"] == "POS02"
    assert _place("POS01", Mode.CHECK)["ec2_host"] == "POS01"  # a check places nobody


def test_when_every_host_is_full_the_install_says_so(aws: None) -> None:
    _host("POS01")
    _tenants("POS01", 3)
    with pytest.raises(InputError, match=r"every shared POS host of this version is full: POS01 \(3 of 3 tenants"
                       ) as caught:
        _place("POS01")
    assert "Shared (New)" in (caught.value.hint or "")
    _tenants("POS01", DEFAULT_TENANTS_PER_HOST)  # the same org ids again and more; without the setting: the default
    with pytest.raises(InputError, match=rf"\({DEFAULT_TENANTS_PER_HOST} of {DEFAULT_TENANTS_PER_HOST} "):
        _place("POS01", settings={})


def test_fleet_shows_each_hosts_tenants_against_the_setting(aws: None) -> None:
    _tenants("POS01", 3)
    _tenants("POS02", 1)
    records = list_clients(raw_client("dynamodb"), table_of({}))
    overview = build_overview(records, {}, generated="now", tenants_per_host=4)
    hosts = {c.name: c for c in overview.capacity if c.kind == "EC2 host"}
    assert (hosts["pos01"].used, hosts["pos01"].limit, hosts["pos01"].percent) == (3, 4, 75)
    assert "[INFER]" in hosts["pos01"].basis and "capacity.tenants_per_host" in hosts["pos01"].basis
