"""`kprov fleet`: the fleet at a glance (issue 18.4), read-only.

Every client from its record (placement, POS version) with what a fleet check finds now (`fleet.check`,
the same check as `check client --all`), and each shared resource's use against its limit. Opened like
every check: the bootstrap in check mode, so the guards run first and the session is walled.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kensium_provision.fleet.model import Capacity, ClientRow, CredentialAge, FleetOverview

if TYPE_CHECKING:
    from kensium_provision.app.bootstrap import Connection
    from kensium_provision.app.context import Context
    from kensium_provision.fleet.model import FleetReport
    from kensium_provision.records.clients import ClientRecord
    from kensium_provision.steps.base import StepContext

__all__ = ["BrokerLimit", "ExpressSizes", "broker_limits", "build_overview", "express_sizes", "fleet",
           "instance_classes", "sqlserver_instances", "to_csv"]

_NO_LIMIT = "no limit known to kprov"
_TENANTS = "capacity.tenants_per_host in the config: a guess [INFER], to confirm with Kensium"
BrokerLimit = tuple[int | None, str]  # a broker's vhost limit (None: none documented) and where it comes from
ExpressSizes = Mapping[str, int] | str  # an Express instance's databases' data in KB (name lower-cased), or why unknown
_NO_SQL = "size unknown: no SQL connection (sql.driver in the config)"


def sqlserver_instances(rds: Any) -> list[Mapping[str, Any]]:
    """Every RDS for SQL Server instance: one paginated DescribeDBInstances."""
    from kensium_provision.aws.call import pages

    return [i for i in pages(rds, "DescribeDBInstances", "DBInstances", resource="fleet")
            if str(i.get("Engine", "")).startswith("sqlserver")]


def instance_classes(instances: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Each RDS for SQL Server instance (name lower-cased) and its class (`instances`: `sqlserver_instances`)."""
    return {str(i["DBInstanceIdentifier"]).lower(): str(i["DBInstanceClass"]) for i in instances}


def express_sizes(ctx: StepContext, instances: Iterable[Mapping[str, Any]]) -> dict[str, ExpressSizes]:
    """Each Express instance's databases' data sizes: one query (`steps.sql.database_sizes`) per instance, logged
    in as its RDS master (the password manager's `<instance>/master`, as the removal's SQL does), only where a
    SQL connection is configured; else, or when it cannot be read, why the sizes are unknown (never a guess)."""
    from kensium_provision.errors import KprovError
    from kensium_provision.secret import REDACTOR
    from kensium_provision.steps.sql import connected, connection, database_sizes

    found: dict[str, ExpressSizes] = {}
    for db in instances:
        if db.get("Engine") != "sqlserver-ex":
            continue
        identifier = str(db["DBInstanceIdentifier"]).lower()
        if not connected(ctx):
            found[identifier] = _NO_SQL
            continue
        tags = {t["Key"]: t["Value"] for t in db.get("TagList") or ()}
        entry = f"{tags.get('kprov:name', db['DBInstanceIdentifier'])}/master"
        endpoint = db.get("Endpoint") or {}
        try:
            ref = ctx.runtime.vault.find(entry)
            if ref is None:
                found[identifier] = f"size unknown: no {entry} in the password manager"
                continue
            with connection(ctx, {"server": endpoint.get("Address"), "port": endpoint.get("Port") or 1433,
                                  "admin_user": db.get("MasterUsername"), "admin_password_ref": ref}) as conn:
                found[identifier] = database_sizes(conn)
        except KprovError as exc:  # the others still count; this one says why it could not be read
            found[identifier] = f"size unknown: {REDACTOR.redact(str(exc))}"
    return found


def broker_limits(mq: Any) -> dict[str, BrokerLimit]:
    """Each broker (name lower-cased) and its vhost limit (`steps.capacity.broker_vhost_limit`): ListBrokers, then
    one or two reads per mq.m7g broker only; the others have no documented limit and cost nothing more."""
    from kensium_provision.steps.capacity import broker_vhost_limit
    from kensium_provision.steps.rabbitmq_vhost import read_brokers

    found: dict[str, BrokerLimit] = {}
    for broker in read_brokers(mq):
        kind = str(broker.get("HostInstanceType") or "")
        limit = broker_vhost_limit(mq, broker)
        found[str(broker["BrokerName"]).lower()] = (limit, kind if limit is not None
                                                    else f"{kind}: no documented vhost limit")
    return found


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        if value:
            counts[value.lower()] = counts.get(value.lower(), 0) + 1
    return counts


def build_overview(records: Iterable[ClientRecord], classes: Mapping[str, str], report: FleetReport | None = None,
                   *, generated: str = "", due: tuple[CredentialAge, ...] = (),
                   max_age_days: int = 90, brokers: Mapping[str, BrokerLimit] | None = None,
                   tenants_per_host: int | None = None,
                   express: Mapping[str, ExpressSizes] | None = None) -> FleetOverview:
    """The overview from the client records, the RDS instances' classes and a fleet check's report (if run).

    Retired clients (removed, freed) are listed but use no capacity. The databases-per-instance limit is
    `steps.capacity.database_limit` (cited there); the vhosts per broker limit is `broker_limits`' (the one
    install applies; `brokers` None: not read, so no limit); tenants per host, which no one documents, against
    the config's `capacity.tenants_per_host` (None: its default, steps.capacity.DEFAULT_TENANTS_PER_HOST); each
    client database on an Express instance (`express`, from `express_sizes`) against Express's 10 GB.
    """
    from kensium_provision.records.clients import RETIRED
    from kensium_provision.steps.capacity import (
        DEFAULT_TENANTS_PER_HOST,
        EXPRESS_DATABASE_MB,
        EXPRESS_NEAR_PERCENT,
        database_limit,
    )

    generated = generated or datetime.now(UTC).isoformat(timespec="seconds")
    findings = {c.org_id.lower(): len(c.findings) for c in report.clients} if report else {}
    records = sorted(records, key=lambda r: r.org_id.lower())
    rows = tuple(ClientRow(org_id=r.org_id, status=r.status, rds_instance=r.rds_instance, ec2_host=r.ec2_host,
                           broker=r.broker, pos_version=r.pos_version, findings=findings.get(r.org_id.lower()),
                           last_check=generated if r.org_id.lower() in findings else "") for r in records)
    live = [r for r in records if r.status not in RETIRED]
    databases = _count(r.rds_instance for r in live)
    capacity = [Capacity(kind="RDS instance", name=name, used=databases.get(name, 0),
                         limit=database_limit(classes[name]) if name in classes else None,
                         basis=classes.get(name, "not found by DescribeDBInstances"))
                for name in sorted(set(databases) | set(classes))]
    tenants = tenants_per_host or DEFAULT_TENANTS_PER_HOST
    capacity += [Capacity(kind="EC2 host", name=name, used=used, limit=tenants, basis=_TENANTS)
                 for name, used in sorted(_count(r.ec2_host for r in live).items())]
    vhosts, limits = _count(r.broker for r in live), brokers or {}
    for name in sorted(set(vhosts) | set(limits)):
        limit, basis = limits.get(name, (None, "not found by ListBrokers" if brokers is not None else _NO_LIMIT))
        capacity.append(Capacity(kind="broker", name=name, used=vhosts.get(name, 0), limit=limit, basis=basis))
    for record in sorted(live, key=lambda r: (r.rds_instance.lower(), r.database.lower())):
        sizes = (express or {}).get(record.rds_instance.lower())
        if sizes is None or not record.database:
            continue
        kb = None if isinstance(sizes, str) else sizes.get(record.database.lower())
        basis = sizes if isinstance(sizes, str) else (
            "data files (sys.master_files) against SQL Server Express's 10 GB" if kb is not None
            else "size unknown: not in sys.master_files")
        capacity.append(Capacity(kind="Express database", name=f"{record.database} on {record.rds_instance}",
                                 used=None if kb is None else kb // 1024, limit=EXPRESS_DATABASE_MB, unit="MB",
                                 basis=basis, near_at=EXPRESS_NEAR_PERCENT))
    return FleetOverview(clients=rows, capacity=tuple(capacity), generated=generated, due=due,
                         max_age_days=max_age_days)


def _use(cap: Capacity) -> str:
    """"27 / 30", "8300 / 10240 MB", "40" (no limit), "unknown" (a size not read)."""
    if cap.used is None:
        return "unknown"
    unit = f" {cap.unit}" if cap.unit else ""
    return f"{cap.used}{unit}" if cap.limit is None else f"{cap.used} / {cap.limit}{unit}"


def _sql_context(connection: Connection, settings: Mapping[str, object]) -> StepContext:
    """A read-only step context to log in to SQL Server with: the run settings' `sql` and the config's password
    manager (`bootstrap.open_vault`; the master password is fetched only to connect, never shown)."""
    from kensium_provision.app.bootstrap import open_vault
    from kensium_provision.checklist.answers import Answers, AnswersOperator
    from kensium_provision.model import Mode
    from kensium_provision.naming.loader import load_rules
    from kensium_provision.runtime import NullJournal, Runtime
    from kensium_provision.steps.base import StepContext

    operator = AnswersOperator(Answers(), assume_yes=False)
    runtime = Runtime(mode=Mode.CHECK, run_id="fleet", aws=connection.session, operator=operator,
                      vault=open_vault(connection, operator), names=load_rules(), env_name=connection.env.name,
                      journal=NullJournal(), settings=settings)
    return StepContext(runtime, "fleet-express-sizes", {})


def to_csv(overview: FleetOverview) -> str:
    """One CSV: a `table` column says which table a row belongs to (client or capacity)."""
    out = io.StringIO()
    writer = csv.writer(out)
    client_keys = ["org_id", "status", "rds_instance", "ec2_host", "broker", "pos_version", "last_check", "findings"]
    writer.writerow(["table", *client_keys])
    for row in overview.clients:
        values = row.as_json()
        writer.writerow(["client", *(values[k] for k in client_keys)])
    capacity_keys = ["kind", "name", "used", "limit", "percent", "basis", "unit", "near_limit"]
    writer.writerow(["table", *capacity_keys])
    for cap in overview.capacity:
        values = cap.as_json()
        writer.writerow(["capacity", *(values[k] for k in capacity_keys)])
    due_keys = ["org_id", "credential", "kind", "changed", "age_days"]
    writer.writerow(["table", *due_keys])
    for cred in overview.due:
        values = cred.as_json()
        writer.writerow(["due", *(values[k] for k in due_keys)])
    return out.getvalue()


def fleet(context: Context, *, html: Path | None = None, csv_file: Path | None = None) -> int:
    """Show the overview (and write --html / --csv); exit 1 when the fleet check found anything."""
    from rich.table import Table
    from rich.text import Text

    from kensium_provision.app.bootstrap import connect, open_config, run_settings
    from kensium_provision.fleet.check import FleetRequest, check_fleet
    from kensium_provision.model import Mode
    from kensium_provision.records.clients import list_clients, table_of
    from kensium_provision.steps.capacity import tenants_per_host
    from kensium_provision.ui import json_output
    from kensium_provision.ui.boundary import shown
    from kensium_provision.ui.report_html import render_html

    console = context.console()
    config, env = open_config(context)
    connection = connect(context, config, env, Mode.CHECK)
    session, settings = connection.session, run_settings(connection)
    report = check_fleet(FleetRequest(env=env, session=session, settings=settings,
                                      vault_backend=config.vault.backend, vault_settings=config.vault.settings(),
                                      environments=tuple(config.environments)))
    records = list_clients(session.client("dynamodb"), table_of(settings))
    # Due for rotation: dated by the check's own snapshot (fleet.rotation), no read of its own.
    max_age = report.max_age_days
    instances = sqlserver_instances(session.client("rds"))
    overview = build_overview(records, instance_classes(instances), report, due=report.due,
                              max_age_days=max_age, brokers=broker_limits(session.client("mq")),
                              tenants_per_host=tenants_per_host(settings),
                              express=express_sizes(_sql_context(connection, settings), instances))
    clients = Table("client", "status", "RDS instance", "EC2 host", "broker", "POS", "findings", title="Clients",
                    title_justify="left")
    for c in overview.clients:
        clients.add_row(*(shown(str(v), one_line=True) for v in (c.org_id, c.status, c.rds_instance, c.ec2_host,
                                                                  c.broker, c.pos_version)),
                        Text("-" if c.findings is None else str(c.findings), "red" if c.findings else "green"))
    console.print(clients)
    shared = Table("kind", "name", "used / limit", "use", "limit from", title="Shared resources",
                   title_justify="left")
    for cap in overview.capacity:
        shared.add_row(cap.kind, shown(cap.name, one_line=True), _use(cap),
                       Text("" if cap.percent is None else f"{cap.percent}%" + (" near the limit" if cap.near_limit
                                                                                 else ""),
                            "red" if cap.near_limit else ""), shown(cap.basis, one_line=True))
    console.print(shared)
    rotation_table = Table("client", "credential", "kind", "last set", "age (days)",
                           title=f"Due for rotation (older than {max_age} days)", title_justify="left")
    for cred in overview.due:
        rotation_table.add_row(shown(cred.org_id, one_line=True), shown(cred.credential, one_line=True), cred.kind,
                               cred.changed, str(cred.age_days))
    console.print(rotation_table)
    if html is not None:
        html.write_text(render_html(overview), encoding="utf-8")
    if csv_file is not None:
        csv_file.write_text(to_csv(overview), encoding="utf-8", newline="")
    if context.json:
        json_output.emit(json_output.fleet_overview(overview.as_json()))
    return int(report.exit_code)
