"""Capacity of a shared Amazon MQ for RabbitMQ broker (issue 16.8): one hub vhost per client, up to `vhost_max`.

The brokers, their configurations and the client records are real (in-process moto: Amazon MQ and DynamoDB);
the limits are steps.capacity's, from AWS's resource-limit pages.
"""

from __future__ import annotations

import base64

import pytest

from kensium_provision.errors import InputError
from kensium_provision.model import Mode
from kensium_provision.records.clients import ClientRecord, ensure_table, put_record
from kensium_provision.steps.base import StepContext
from kensium_provision.steps.capacity import configured_vhost_max, vhost_limit
from kensium_provision.steps.lookups import LOOKUPS
from tests.checklist_harness import moto_runtime, raw_client


def _broker(name: str, kind: str = "mq.m7g.medium", version: str = "4.2", vhost_max: int | None = None) -> None:
    mq = raw_client("mq")
    extra = {}
    if vhost_max is not None:
        made = mq.create_configuration(Name=f"{name}-limits", EngineType="RABBITMQ", EngineVersion=version)
        data = base64.b64encode(f"vhost_max = {vhost_max}\n".encode()).decode()
        revision = mq.update_configuration(ConfigurationId=made["Id"], Data=data)["LatestRevision"]["Revision"]
        extra = {"Configuration": {"Id": made["Id"], "Revision": revision}}
    mq.create_broker(BrokerName=name, EngineType="RABBITMQ", EngineVersion=version, HostInstanceType=kind,
                     DeploymentMode="SINGLE_INSTANCE", PubliclyAccessible=False, AutoMinorVersionUpgrade=True,
                     Users=[{"Username": "admin", "Password": "a-long-password-1"}], **extra)


def _clients_on(broker: str, count: int, status: str = "installed") -> None:
    dynamodb = raw_client("dynamodb")
    ensure_table(dynamodb)
    for n in range(count):
        put_record(dynamodb, ClientRecord(org_id=f"{broker.lower()}-c{n}", client_name=f"Client {n}", status=status,
                                          broker=broker, vhost=f"{broker.lower()}-c{n}"))


def _offered(mode: Mode = Mode.APPLY, room: bool = True) -> list[str]:
    found = LOOKUPS["brokers"](StepContext(moto_runtime(mode), "broker", {}), {"rule": "mq-broker", "room": room})
    assert isinstance(found, list)
    return found


def test_the_limit_follows_type_version_and_configuration() -> None:
    assert vhost_limit("mq.m7g.medium", "4.2") == 10 and vhost_limit("mq.m7g.large", "4.2") == 50
    assert vhost_limit("mq.m7g.large", "3.13") == 1500  # RabbitMQ 3: the maximum, not configurable
    assert vhost_limit("mq.m7g.large", "4.2", configured=200) == 200
    assert vhost_limit("mq.m7g.large", "4.2", configured=9000) == 1500  # never past the maximum
    assert vhost_limit("mq.t3.micro", "3.13") is None and vhost_limit("mq.m5.large", "3.13") is None


def test_a_configuration_section_for_the_broker_wins_over_the_general_setting() -> None:
    data = base64.b64encode(b"vhost_max = 40\n{{m7g.large.single}}\nvhost_max = 70\n{{m7g.large.cluster}}\n"
                            b"vhost_max = 90\n").decode()
    assert configured_vhost_max(data, "mq.m7g.large", "SINGLE_INSTANCE") == 70
    assert configured_vhost_max(data, "mq.m7g.xlarge", "SINGLE_INSTANCE") == 40
    assert configured_vhost_max("not base64!", "mq.m7g.large", "SINGLE_INSTANCE") is None


def test_a_full_broker_is_not_offered_and_the_one_with_room_is(aws: None) -> None:
    _broker("mq-POS-01")  # mq.m7g.medium on RabbitMQ 4: 10 vhosts by default
    _broker("mq-POS-02", kind="mq.m7g.large", vhost_max=12)
    _clients_on("mq-POS-01", 10)
    _clients_on("mq-POS-02", 11)
    assert _offered() == ["mq-POS-02"]
    assert _offered(Mode.CHECK) == ["mq-POS-01", "mq-POS-02"]  # a check places nobody
    assert _offered(room=False) == ["mq-POS-01", "mq-POS-02"]  # e.g. a rotation of the broker's admin


def test_when_every_broker_is_full_the_install_is_told_to_make_one(aws: None) -> None:
    _broker("mq-POS-01")
    _broker("mq-POS-02", kind="mq.t3.micro", version="3.13")  # no documented limit: never called full
    _clients_on("mq-POS-01", 10)
    _clients_on("mq-POS-02", 500)
    assert _offered() == ["mq-POS-02"]
    raw_client("mq").delete_broker(BrokerId=_id("mq-POS-02"))
    with pytest.raises(InputError, match=r"every shared broker is full: mq-POS-01 \(10 of 10 vhosts, mq.m7g.medium\)"
                       ) as caught:
        _offered()
    assert "kprov provision shared rabbitmq" in (caught.value.hint or "")


def test_removed_clients_free_their_vhosts(aws: None) -> None:
    _broker("mq-POS-01")
    _clients_on("mq-POS-01", 10, status="removed")
    assert _offered() == ["mq-POS-01"]


def _id(name: str) -> str:
    summaries = raw_client("mq").list_brokers()["BrokerSummaries"]
    return next(str(b["BrokerId"]) for b in summaries if b["BrokerName"] == name)
