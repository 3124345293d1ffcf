"""Express databases near 10 GB (issue 18.4): `kprov fleet` reads each Express instance's database sizes from SQL
Server (`sys.master_files`, one query per instance) where a SQL connection is configured, and otherwise says the
size is unknown, never a guess.

The RDS instances, the client records and the password manager's master entry are real (in-process moto and
the in-memory vault). No SQL Server can run here, so the SQL side is tests/test_sql.py's FakeSqlServer, which
answers exactly the size query kprov sends (a DB-API stand-in; its login is checked against the stored master).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kensium_provision.app.commands.fleet import build_overview, express_sizes, sqlserver_instances, to_csv
from kensium_provision.model import Mode
from kensium_provision.records.clients import ClientRecord, ensure_table, list_clients, put_record, table_of
from kensium_provision.secret import Secret
from kensium_provision.steps.base import StepContext
from kensium_provision.steps.sql import DATABASE_SIZES
from kensium_provision.ui.report_html import render_html
from tests.checklist_harness import moto_runtime, raw_client
from tests.fakes import MemoryVault
from tests.test_sql import FakeSqlServer

MASTER = "Master-Passw0rd-1"
GB_KB = 1024 * 1024


@dataclass
class SizedSqlServer(FakeSqlServer):
    """FakeSqlServer that also answers the size query: each database's data in 8 KB pages, summed to KB."""

    data_kb: dict[str, int] = field(default_factory=dict)

    def query(self, sql: str) -> list[tuple[object, ...]]:
        if sql == DATABASE_SIZES:
            self.queries.append(sql)
            assert self.sessions[-1]["user"] == "posadmin" and self.sessions[-1]["password"] == MASTER
            return [(name, kb) for name, kb in self.data_kb.items()]
        return super().query(sql)


def _instance(name: str, engine: str) -> None:
    raw_client("rds").create_db_instance(
        DBInstanceIdentifier=name.lower(), Engine=engine, DBInstanceClass="db.t3.small", AllocatedStorage=20,
        MasterUsername="posadmin", MasterUserPassword=MASTER, Tags=[{"Key": "kprov:name", "Value": name}])


def _estate() -> list[ClientRecord]:
    _instance("db-POS-01", "sqlserver-ex")
    _instance("db-POS-02", "sqlserver-web")
    dynamodb = raw_client("dynamodb")
    ensure_table(dynamodb)
    for org, instance in (("acme", "db-POS-01"), ("bolt", "db-POS-01"), ("gone", "db-POS-01"), ("webco", "db-POS-02")):
        put_record(dynamodb, ClientRecord(org_id=org, rds_instance=instance, database=f"POS_{org}",
                                          status="removed" if org == "gone" else "installed"))
    return list_clients(dynamodb, table_of({}))


def _context(server: SizedSqlServer | None, vault: MemoryVault) -> StepContext:
    settings = {"sql": {"connect": server.connect}} if server is not None else {"sql": {"driver": ""}}
    return StepContext(moto_runtime(Mode.CHECK, vault=vault, settings=settings), "fleet", {})


def _row(page: str, name: str) -> str:
    """The capacity table's row of `name`: from its <tr to its </tr>."""
    at = page.index(f'data-resource="{name}"')
    return page[page.rindex("<tr", 0, at): page.index("</tr>", at)]


def _master() -> MemoryVault:
    vault = MemoryVault()
    vault.store("db-POS-01/master", Secret(MASTER), description="RDS master of db-POS-01", tags={})
    return vault


def test_each_express_database_is_shown_against_10_gb_and_flagged_from_80_percent(aws: None) -> None:
    records = _estate()
    server = SizedSqlServer(data_kb={"master": 6 * 1024, "pos_acme": int(8.5 * GB_KB), "pos_bolt": GB_KB})
    sizes = express_sizes(_context(server, _master()), sqlserver_instances(raw_client("rds")))
    assert server.queries == [DATABASE_SIZES]  # one query for the one Express instance; the Web one is not read
    overview = build_overview(records, {}, generated="now", express=sizes)
    express = {c.name: c for c in overview.capacity if c.kind == "Express database"}
    assert set(express) == {"POS_acme on db-POS-01", "POS_bolt on db-POS-01"}  # not the removed client's
    acme, bolt = express["POS_acme on db-POS-01"], express["POS_bolt on db-POS-01"]
    assert (acme.used, acme.limit, acme.unit, acme.percent, acme.near_limit) == (8704, 10240, "MB", 85, True)
    assert (bolt.used, bolt.percent, bolt.near_limit) == (1024, 10, False)
    assert "capacity,Express database,POS_acme on db-POS-01,8704,10240,85," in to_csv(overview)
    page = render_html(overview)
    acme_row = _row(page, "POS_acme on db-POS-01")
    assert acme_row.startswith('<tr class="near" data-near="true" ')
    assert "<td>8704 MB</td><td>10240 MB</td>" in acme_row and "85% near the limit" in acme_row
    assert "near" not in _row(page, "POS_bolt on db-POS-01")


def test_without_a_sql_connection_the_size_is_unknown_not_guessed(aws: None) -> None:
    records = _estate()
    sizes = express_sizes(_context(None, _master()), sqlserver_instances(raw_client("rds")))
    overview = build_overview(records, {}, generated="now", express=sizes)
    express = [c for c in overview.capacity if c.kind == "Express database"]
    assert len(express) == 2
    for cap in express:
        assert cap.used is None and cap.percent is None and not cap.near_limit
        assert cap.basis.startswith("size unknown: no SQL connection")
        assert cap.as_json()["used"] is None
    assert "<td>unknown</td>" in render_html(overview)


def test_a_missing_master_entry_says_so(aws: None) -> None:
    _estate()
    server = SizedSqlServer()
    sizes = express_sizes(_context(server, MemoryVault()), sqlserver_instances(raw_client("rds")))
    assert sizes == {"db-pos-01": "size unknown: no db-POS-01/master in the password manager"}
    assert server.sessions == []
