"""`kprov fleet`'s capacity rows (issue 18.4): each shared resource's use against its limit.

Brokers, their configurations and the client records are real (in-process moto: Amazon MQ and DynamoDB); the
vhost limits are steps.capacity's, the same the install applies (tests/test_broker_capacity.py).
"""

from __future__ import annotations

from typing import Any

from kensium_provision.app.commands.fleet import broker_limits, build_overview, to_csv
from kensium_provision.records.clients import ClientRecord, ensure_table, list_clients, put_record, table_of
from kensium_provision.ui.report_html import render_html
from tests.checklist_harness import raw_client
from tests.test_broker_capacity import _broker


def _records(**on: int) -> list[ClientRecord]:
    dynamodb = raw_client("dynamodb")
    ensure_table(dynamodb)
    for broker, count in on.items():
        for n in range(count):
            put_record(dynamodb, ClientRecord(org_id=f"{broker}-c{n}", broker=broker, ec2_host="kprov-host-1"))
    return list_clients(dynamodb, table_of({}))


def _calls(client: Any) -> list[str]:
    sent: list[str] = []
    client.meta.events.register("before-call.mq.*", lambda model, **_: sent.append(model.name))
    return sent


def test_each_broker_shows_its_vhosts_against_the_limit_install_applies(aws: None) -> None:
    _broker("hub-a")  # mq.m7g.medium on RabbitMQ 4: 10 by default
    _broker("hub-b", kind="mq.m7g.large", vhost_max=12)
    _broker("hub-c", kind="mq.m5.large", version="3.13")  # no documented limit
    records = _records(**{"hub-a": 9, "hub-b": 3, "hub-c": 40})
    mq = raw_client("mq")
    sent = _calls(mq)
    overview = build_overview(records, {}, generated="now", brokers=broker_limits(mq))
    # ListBrokers, then DescribeBroker + DescribeConfigurationRevision for the m7g ones; nothing for hub-c
    assert sent.count("ListBrokers") == 1 and sent.count("DescribeBroker") == 2
    brokers = {c.name: c for c in overview.capacity if c.kind == "broker"}
    assert (brokers["hub-a"].used, brokers["hub-a"].limit, brokers["hub-a"].percent) == (9, 10, 90)
    assert (brokers["hub-b"].used, brokers["hub-b"].limit, brokers["hub-b"].percent) == (3, 12, 25)
    assert (brokers["hub-c"].used, brokers["hub-c"].limit) == (40, None)
    assert brokers["hub-c"].basis == "mq.m5.large: no documented vhost limit"
    assert "capacity,broker,hub-a,9,10,90,mq.m7g.medium" in to_csv(overview)
    page = render_html(overview)
    row = page[page.index('data-resource="hub-a"'):]
    assert row.index('aria-valuenow="90"') < row.index("</tr>")


def test_a_broker_without_clients_is_listed_and_one_not_found_says_so(aws: None) -> None:
    _broker("hub-empty")
    records = _records(**{"hub-gone": 2})
    overview = build_overview(records, {}, generated="now", brokers=broker_limits(raw_client("mq")))
    brokers = {c.name: c for c in overview.capacity if c.kind == "broker"}
    assert (brokers["hub-empty"].used, brokers["hub-empty"].limit) == (0, 10)
    assert (brokers["hub-gone"].used, brokers["hub-gone"].limit, brokers["hub-gone"].basis) == (
        2, None, "not found by ListBrokers")
