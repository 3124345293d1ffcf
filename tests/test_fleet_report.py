"""`kprov fleet` (issue 18.4): the overview of a fleet of 50 clients on moto, its CSV and JSON, and its HTML
page rendered in a real headless Chromium (Debian package chromium; marker `browser`), whose DOM must show
every client and every shared resource's capacity.

The client records are put straight into DynamoDB (as tests/test_fleet.py does) and the RDS instances
are created on moto: the overview reads them as `kprov fleet` does. No fake: Chromium, moto and the
renderer are the real ones; the fleet check's report is not run here (tests/test_fleet.py covers it).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest
from moto import mock_aws

from kensium_provision.app.commands.fleet import build_overview, instance_classes, sqlserver_instances, to_csv
from kensium_provision.fleet.model import FleetOverview
from kensium_provision.records.clients import DEFAULT_TABLE, ClientRecord, list_clients, put_record
from kensium_provision.ui.report_html import render_html

INSTANCES = {"kprov-sql-small": "db.t3.small", "kprov-sql-big": "db.m5.xlarge", "kprov-sql-empty": "db.t3.small"}
ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "docs" / "json-output.schema.json").read_text())
HOSTS = ("kprov-host-1", "kprov-host-2")
BROKERS = ("kprov-hub-1",)


@pytest.fixture
def fleet50() -> Iterator[FleetOverview]:
    """50 installed clients over two RDS instances (one empty), two hosts and one broker; plus one removed."""
    with mock_aws():
        region = "us-east-1"
        rds = boto3.client("rds", region_name=region)
        for name, klass in INSTANCES.items():
            rds.create_db_instance(DBInstanceIdentifier=name, DBInstanceClass=klass, Engine="sqlserver-web",
                                   AllocatedStorage=20, MasterUsername="admin", MasterUserPassword="x" * 12)
        dynamodb = boto3.client("dynamodb", region_name=region)
        for n in range(50):
            put_record(dynamodb, ClientRecord(
                org_id=f"org{n:02d}", client_name=f"Client {n}", pos_version="2024.3", database=f"POS_org{n:02d}",
                rds_instance="kprov-sql-small" if n < 27 else "kprov-sql-big",
                ec2_host=HOSTS[n % 2], broker=BROKERS[0]))
        put_record(dynamodb, ClientRecord(org_id="gone", status="removed", rds_instance="kprov-sql-small"))
        put_record(dynamodb, ClientRecord(org_id="evil", pos_version="<script>alert(1)</script>",
                                          ec2_host="kprov-host-1"))
        # The broker's limit and the Express sizes as `kprov fleet` reads them (broker_limits, express_sizes: their
        # own tests, tests/test_fleet_capacity*.py); here what the page shows of them.
        yield build_overview(list_clients(dynamodb, DEFAULT_TABLE), instance_classes(sqlserver_instances(rds)),
                             generated="2026-12-02T20:00:00+00:00", brokers={"kprov-hub-1": (100, "mq.m7g.xlarge")},
                             tenants_per_host=40, express={"kprov-sql-small": {"pos_org00": 9 * 1024 * 1024}})


def by_name(overview: FleetOverview) -> dict[str, Any]:
    return {c.name: c for c in overview.capacity}


def test_capacity_counts_live_clients_against_the_class_limit(fleet50: FleetOverview) -> None:
    cap = by_name(fleet50)
    assert (cap["kprov-sql-small"].used, cap["kprov-sql-small"].limit) == (27, 30)  # the removed one not counted
    assert cap["kprov-sql-small"].percent == 90
    assert (cap["kprov-sql-big"].used, cap["kprov-sql-big"].limit) == (23, 100)
    assert (cap["kprov-sql-empty"].used, cap["kprov-sql-empty"].limit) == (0, 30)
    assert (cap["kprov-host-1"].used, cap["kprov-host-2"].used, cap["kprov-hub-1"].used) == (26, 25, 50)
    assert (cap["kprov-host-1"].limit, cap["kprov-hub-1"].limit, cap["kprov-hub-1"].percent) == (40, 100, 50)
    assert len(fleet50.clients) == 52


def test_csv_has_every_client_and_resource(fleet50: FleetOverview) -> None:
    rows = list(csv.reader(io.StringIO(to_csv(fleet50))))
    assert sum(r[0] == "client" for r in rows) == 52
    shared = [r for r in rows if r[0] == "capacity"]
    assert {r[2] for r in shared if r[1] != "Express database"} == set(INSTANCES) | set(HOSTS) | set(BROKERS)
    assert sum(r[1] == "Express database" for r in shared) == 27  # every live client database on the instance


def test_html_is_static_and_escaped(fleet50: FleetOverview) -> None:
    page = render_html(fleet50)
    assert "<script" not in page and "&lt;script&gt;" in page
    assert "http://" not in page and "https://" not in page and " src=" not in page


def _cells(dom: str, resource: str) -> list[str]:
    """The text of each cell of a capacity row in the browser's DOM."""
    import re

    at = dom.index(f'data-resource="{resource}"')
    row = dom[at: dom.index("</tr>", at)]
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]


def chromium() -> str:
    found = shutil.which("chromium")
    if found:
        return found
    reason = "chromium is not installed (Debian: apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}: the browser tests must run in CI", pytrace=False)
    pytest.skip(reason)


def run_chromium(tmp_path: Path, *args: str) -> str:
    # The flags headless Chromium needs on this closed network (/work/.library/env/machines/python.md).
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'profile'}", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


@pytest.mark.browser
def test_the_page_in_headless_chromium_shows_every_client_and_capacity(fleet50: FleetOverview,
                                                                       tmp_path: Path) -> None:
    page = tmp_path / "fleet.html"
    page.write_text(render_html(fleet50), encoding="utf-8")
    screenshot = Path(os.environ.get("KPROV_FLEET_SCREENSHOT", tmp_path / "fleet.png"))
    run_chromium(tmp_path, f"--screenshot={screenshot}", "--window-size=1200,3000", page.as_uri())
    assert screenshot.stat().st_size > 10_000  # a real rendering, not an empty page
    dom = run_chromium(tmp_path, "--dump-dom", page.as_uri())
    for n in range(50):
        assert f'data-client="org{n:02d}"' in dom
    for cap in fleet50.capacity:
        assert f'data-resource="{cap.name}"' in dom
    assert 'aria-valuenow="90"' in dom and 'style="width:90%"' in dom  # kprov-sql-small's bar, 27 of 30
    assert "<script" not in dom  # the escaped POS version stayed text
    # The capacity rows as the browser shows them: count against limit, the bar, and where the limit comes from.
    assert _cells(dom, "kprov-hub-1") == ["broker", "kprov-hub-1", "50", "100", "50%", "mq.m7g.xlarge"]
    host = _cells(dom, "kprov-host-1")
    assert host[:5] == ["EC2 host", "kprov-host-1", "26", "40", "65%"] and "[INFER]" in host[5]
    assert _cells(dom, "POS_org00 on kprov-sql-small")[2:5] == ["9216 MB", "10240 MB", "90% near the limit"]
    assert _cells(dom, "POS_org01 on kprov-sql-small")[2:5] == ["unknown", "10240 MB", ""]
    assert 'data-near="true" data-resource="POS_org00 on kprov-sql-small"' in dom


def test_credentials_due_are_shown_and_the_age_is_configured(tmp_path: Path) -> None:
    """The due list itself is the fleet check's (tests/test_check_credential_age.py); here what shows it."""
    from kensium_provision.app.config import load_config
    from kensium_provision.fleet.model import CredentialAge

    due = (CredentialAge(org_id="acme", credential="sql_login", kind="secret", changed="2026-08-01", age_days=124),
           CredentialAge(org_id="acme", credential="AKIAEXAMPLEKEY", kind="access key", changed="2026-08-02",
                         age_days=123))
    overview = FleetOverview(clients=(), capacity=(), generated="now", due=due)
    page, table = render_html(overview), to_csv(overview)
    assert "AKIAEXAMPLEKEY" in page and "sql_login" in page and "due,acme,sql_login,secret,2026-08-01,124" in table
    config = tmp_path / "kprov.yaml"
    config.write_text("rotation:\n  max_age_days: 30\n", encoding="utf-8")
    assert load_config(config).settings()["rotation"] == {"max_age_days": 30}


def test_kprov_fleet_writes_the_page_csv_and_json_read_only(aws: None, kprov: Any, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The command itself in the in-process sandbox: the check's bootstrap (walled session), records on moto."""
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    for n in range(3):
        put_record(dynamodb, ClientRecord(org_id=f"org{n}", ec2_host="kprov-host-1", broker="kprov-hub-1"))
    monkeypatch.setenv("KPROV_STATE_DIR", str(tmp_path / "state"))
    page, table = tmp_path / "fleet.html", tmp_path / "fleet.csv"
    result = kprov("--output", "json", "fleet", "--html", str(page), "--csv", str(table))
    document = json.loads(result.out)  # stdout holds the document alone; the tables go to stderr
    assert (document["kprov_json"], document["kind"]) == (1, "fleet-overview")
    jsonschema.Draft202012Validator(SCHEMA).validate(document)
    assert [c["org_id"] for c in document["clients"]] == ["org0", "org1", "org2"]
    assert {(c["name"], c["used"], c["limit"]) for c in document["capacity"]} == {
        ("kprov-host-1", 3, 20), ("kprov-hub-1", 3, None)}  # the sandbox has no broker of that name
    assert document["due_for_rotation"] == []
    shown = result.err
    assert "3 / 20" in shown and "[INFER]" in shown  # the host's tenants against capacity.tenants_per_host
    assert 'data-client="org2"' in page.read_text() and "capacity,broker,kprov-hub-1,3" in table.read_text()


def test_the_json_documents_carry_the_credentials_due_and_the_shared_rotation_findings() -> None:
    """`check client --all`'s `due_for_rotation` and `check shared`'s `rotation`, valid against the schema."""
    from kensium_provision.fleet.model import CredentialAge, FleetReport
    from kensium_provision.ui import json_output

    due = CredentialAge(org_id="acme", credential="sql_login", kind="secret", changed="2026-08-01", age_days=124)
    calls = {"calls": 0, "attempts": 0, "errors": 0, "by_operation": {}}
    report = FleetReport(clients=(), not_checked={}, api_calls=calls, management_api_calls=0,
                         credential_report="fresh", seconds=0.1, due=(due,), max_age_days=90)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    checked = json_output.fleet(report, run_id="r1", environment="sandbox", account="123456789012",
                                region="us-east-1", caller="arn:aws:iam::123456789012:user/op")
    validator.validate(checked)
    assert (checked["due_for_rotation"], checked["max_age_days"]) == ([due.as_json()], 90)
    message = "The master password of RDS instance db-POS-01 (db-POS-01/master) was last set 120 days ago"
    shared = json_output.check_shared(ok=False, runs=[], conventions=[], rotation=[message])
    validator.validate(shared)
    assert shared["rotation"] == [message]
    assert "rotation" not in json_output.check_shared(ok=True, runs=[], conventions=[])  # not aged: not claimed
    bad = {**shared, "rotation": [{"not": "text"}]}
    assert not validator.is_valid(bad)
