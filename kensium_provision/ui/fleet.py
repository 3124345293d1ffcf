"""How a fleet check (`kprov check client --all`) is shown: one row per finding, then the totals.

The report is `fleet.check.FleetReport`; the fleet layer sits above this one, so what is shown is
described here by the protocols below (a `FleetReport` satisfies them) instead of imported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["ClientView", "DueView", "FindingView", "FleetView", "print_api_calls", "print_fleet"]


class FindingView(Protocol):
    @property
    def step(self) -> str: ...

    @property
    def message(self) -> str: ...

    def as_json(self) -> dict[str, object]: ...


class ClientView(Protocol):
    @property
    def org_id(self) -> str: ...

    @property
    def ok(self) -> bool: ...

    @property
    def findings(self) -> Sequence[FindingView]: ...


class DueView(Protocol):
    """A credential due for rotation (fleet.model.CredentialAge)."""

    def as_json(self) -> dict[str, object]: ...


class FleetView(Protocol):
    """What a fleet check found and what it cost."""

    @property
    def ok(self) -> bool: ...

    @property
    def clients(self) -> Sequence[ClientView]: ...

    @property
    def not_checked(self) -> Mapping[str, str]: ...

    @property
    def api_calls(self) -> Mapping[str, object]: ...

    @property
    def management_api_calls(self) -> int: ...

    @property
    def credential_report(self) -> str: ...

    @property
    def seconds(self) -> float: ...

    @property
    def due(self) -> Sequence[DueView]: ...

    @property
    def max_age_days(self) -> int: ...


def print_fleet(console: Console, report: FleetView, *, verbose: bool = False) -> None:
    """A table: one row per finding (a client without findings gets one `ok` row), then the totals.

    Org ids, steps and messages come from the client records and AWS: each one through `shown`.
    """
    from rich.table import Table
    from rich.text import Text

    from kensium_provision.ui.boundary import shown

    table = Table("client", "step", "finding", title="Fleet check", title_justify="left")
    for client in report.clients:
        if client.ok:
            table.add_row(shown(f"✓ {client.org_id}", "green", one_line=True), "", Text("ok", "green"))
        for index, f in enumerate(client.findings):
            table.add_row(shown(f"✗ {client.org_id}", "red", one_line=True) if index == 0 else "",
                          shown(f.step, one_line=True), shown(f.message))
    for org_id, reason in sorted(report.not_checked.items()):
        table.add_row(shown(f"- {org_id}", "dim", one_line=True), "", shown(reason, "dim"))
    console.print(table)
    bad = sum(not c.ok for c in report.clients)
    calls = int(report.api_calls.get("calls", 0))  # type: ignore[call-overload]
    console.print(Text(f"{len(report.clients)} client(s), {bad} with findings · {calls} AWS API calls, "
                       f"{report.management_api_calls} RabbitMQ API calls · {report.seconds:.1f} s · "
                       f"credential report: ", "bold green" if report.ok else "bold red")
                  + shown(report.credential_report), soft_wrap=True)
    if verbose:
        print_api_calls(console, report.api_calls)


def print_api_calls(console: Console, calls: Mapping[str, object]) -> None:
    """`-v`: the AWS API calls of a run or a fleet check, per `service:Operation`, and their total."""
    from rich.table import Table
    from rich.text import Text

    by_operation = calls.get("by_operation") or {}
    table = Table("service:operation", "calls", title="AWS API calls", title_justify="left")
    for key, count in sorted(by_operation.items()):  # type: ignore[attr-defined]
        table.add_row(Text(key), Text(str(count["calls"])))
    table.add_row(Text("total", style="bold"), str(calls.get("calls", "")))
    console.print(table)
