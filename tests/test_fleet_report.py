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
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from kensium_provision.app.commands.fleet import build_overview, instance_classes, to_csv
from kensium_provision.fleet.model import FleetOverview
from kensium_provision.records.clients import DEFAULT_TABLE, ClientRecord, list_clients, put_record
from kensium_provision.ui.report_html import render_html

INSTANCES = {"kprov-sql-small": "db.t3.small", "kprov-sql-big": "db.m5.xlarge", "kprov-sql-empty": "db.t3.small"}
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
                org_id=f"org{n:02d}", client_name=f"Client {n}", pos_version="2024.3",
                rds_instance="kprov-sql-small" if n < 27 else "kprov-sql-big",
                ec2_host=HOSTS[n % 2], broker=BROKERS[0]))
        put_record(dynamodb, ClientRecord(org_id="gone", status="removed", rds_instance="kprov-sql-small"))
        put_record(dynamodb, ClientRecord(org_id="evil", pos_version="<script>alert(1)</script>",
                                          ec2_host="kprov-host-1"))
        yield build_overview(list_clients(dynamodb, DEFAULT_TABLE), instance_classes(rds),
                             generated="2026-12-02T20:00:00+00:00")


def by_name(overview: FleetOverview) -> dict[str, Any]:
    return {c.name: c for c in overview.capacity}


def test_capacity_counts_live_clients_against_the_class_limit(fleet50: FleetOverview) -> None:
    cap = by_name(fleet50)
    assert (cap["kprov-sql-small"].used, cap["kprov-sql-small"].limit) == (27, 30)  # the removed one not counted
    assert cap["kprov-sql-small"].percent == 90
    assert (cap["kprov-sql-big"].used, cap["kprov-sql-big"].limit) == (23, 100)
    assert (cap["kprov-sql-empty"].used, cap["kprov-sql-empty"].limit) == (0, 30)
    assert (cap["kprov-host-1"].used, cap["kprov-host-2"].used, cap["kprov-hub-1"].used) == (26, 25, 50)
    assert cap["kprov-hub-1"].limit is None
    assert len(fleet50.clients) == 52


def test_csv_has_every_client_and_resource(fleet50: FleetOverview) -> None:
    rows = list(csv.reader(io.StringIO(to_csv(fleet50))))
    assert sum(r[0] == "client" for r in rows) == 52
    assert {r[2] for r in rows if r[0] == "capacity"} == set(INSTANCES) | set(HOSTS) | set(BROKERS)


def test_html_is_static_and_escaped(fleet50: FleetOverview) -> None:
    page = render_html(fleet50)
    assert "<script" not in page and "&lt;script&gt;" in page
    assert "http://" not in page and "https://" not in page and " src=" not in page


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
    import json

    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    for n in range(3):
        put_record(dynamodb, ClientRecord(org_id=f"org{n}", ec2_host="kprov-host-1", broker="kprov-hub-1"))
    monkeypatch.setenv("KPROV_STATE_DIR", str(tmp_path / "state"))
    page, table = tmp_path / "fleet.html", tmp_path / "fleet.csv"
    result = kprov("--output", "json", "fleet", "--html", str(page), "--csv", str(table))
    document = json.loads(result.out[result.out.index('{\n  "kind": "fleet-overview"'):])
    assert [c["org_id"] for c in document["clients"]] == ["org0", "org1", "org2"]
    assert {(c["name"], c["used"]) for c in document["capacity"]} == {("kprov-host-1", 3), ("kprov-hub-1", 3)}
    assert 'data-client="org2"' in page.read_text() and "capacity,broker,kprov-hub-1,3" in table.read_text()
