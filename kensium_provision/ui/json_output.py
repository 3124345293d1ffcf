"""`--output json`: every document kprov writes, built and written in one place.

One function per kind of docs/json-output.md (the contract, version 1; the JSON Schema is
docs/json-output.schema.json and tests/test_json_output.py validates real output against it) and one
`emit` that writes a document to stdout. A run's own report (`plan`, `apply`, `check`) is
`ui.render.report_json`; a past run's (`run`) is `journal.history.run_json`.

Plain data in, plain data out: nothing here reads AWS, the journal or the terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kensium_provision.errors import Issue
    from kensium_provision.records.locks import LockInfo
    from kensium_provision.sandbox.server import SandboxInfo
    from kensium_provision.steps.base import StepType
    from kensium_provision.ui.fleet import FleetView

__all__ = [
    "VERSION",
    "audit_verify",
    "check_shared",
    "checklists",
    "emit",
    "error",
    "fleet",
    "fleet_overview",
    "lock_rows",
    "locks",
    "names_check",
    "names_show",
    "runs",
    "sandbox",
    "step_types",
    "validate",
]

VERSION = 1  # `kprov_json`: the contract's version (ui.render.JSON_SCHEMA_VERSION says the same)
Document = dict[str, Any]


def emit(document: Mapping[str, object], stream: IO[str] | None = None) -> None:
    """Write one document (stdout unless told otherwise): indented, UTF-8 as is but for what could act on a
    terminal (ui.boundary.json_text), anything that is not JSON as text."""
    from kensium_provision.ui.boundary import json_text

    out = stream if stream is not None else sys.stdout
    out.write(json_text(document) + "\n")


def _document(kind: str, **fields: object) -> Document:
    return {"kprov_json": VERSION, "kind": kind, **fields}


def error(exc: BaseException, code: int) -> Document:
    """Any command that fails while `--output json` is set."""
    issues: Iterable[Issue] = getattr(exc, "issues", ())
    return _document("error", exit_code=code, error=type(exc).__name__, message=str(exc),
                     hint=getattr(exc, "hint", "") or None, issues=[str(i) for i in issues])


def check_shared(*, ok: bool, runs: Sequence[Mapping[str, object]], conventions: Sequence[str],
                 unchecked: Sequence[Mapping[str, str]] = (), rotation: Sequence[str] | None = None) -> Document:
    """`check shared`; `unchecked`: the records that could not be checked (`resource`, `record`, `problem`);
    `rotation`: the shared credentials due for rotation (fleet.rotation.shared_findings), only when they were
    aged (None: not, e.g. a password manager that keeps no date)."""
    return _document("check-shared", ok=ok, runs=list(runs), conventions=list(conventions),
                     unchecked=list(unchecked), **({"rotation": list(rotation)} if rotation is not None else {}))


def fleet_overview(overview: Mapping[str, object]) -> Document:
    """`kprov fleet`: every client, each shared resource's use against its limit, the credentials due
    (`fleet.model.FleetOverview.as_json`)."""
    return _document("fleet-overview", **overview)


def fleet(report: FleetView, *, run_id: str, environment: str, account: str, region: str,
          caller: str) -> Document:
    """`check client --all`; `wall_exceptions` only when the check sent a non-read through the wall's named
    exception (fleet.model.WallException; FleetView predates it, hence getattr)."""
    exceptions = [e.as_json() for e in getattr(report, "wall_exceptions", ())]
    return _document(
        "fleet", ok=report.ok,
        # `findings` stays text (the contract of version 1); `details` adds each one's step and values.
        clients=[{"org_id": c.org_id, "ok": c.ok, "findings": [f.message for f in c.findings],
                  "details": [f.as_json() for f in c.findings]} for c in report.clients],
        not_checked=[{"org_id": k, "reason": v} for k, v in sorted(report.not_checked.items())],
        run_id=run_id, environment=environment, account=account, region=region, caller=caller,
        seconds=round(report.seconds, 3), api_calls=report.api_calls,
        management_api_calls=report.management_api_calls, credential_report=report.credential_report,
        max_age_days=report.max_age_days, due_for_rotation=[d.as_json() for d in report.due],
        **({"wall_exceptions": exceptions} if exceptions else {}),
    )


def checklists(rows: Sequence[Mapping[str, object]]) -> Document:
    """`list`: each row `id`, `scope`, `title`, `steps`, `ref`, `path`."""
    return _document("list", checklists=list(rows))


def step_types(types: Mapping[str, StepType]) -> Document:
    """`list --step-types`."""
    return _document("step-types", step_types=[
        {"name": n, "summary": t.summary, "params": [
            {"name": p.name, "kind": p.kind, "required": p.required, "doc": p.doc, "rule": p.rule or None}
            for p in t.params], "outputs": list(t.outputs)} for n, t in types.items()])


def validate(issues: Sequence[Issue], files: int) -> Document:
    return _document("validate", ok=not issues, files=files, issues=[str(i) for i in issues])


def names_check(*, rule: str, value: str, problems: Sequence[str], example: str) -> Document:
    return _document("names.check", rule=rule, value=value, ok=not problems, problems=list(problems),
                     example=example)


def names_show(org_id: str, names: Mapping[str, str]) -> Document:
    return _document("names.show", org_id=org_id, names=dict(names))


def runs(rows: Sequence[Mapping[str, str]], *, kind: str = "runs") -> Document:
    """`runs list` (kind `runs`) and `audit show` (kind `audit`): journal summary rows, newest first."""
    if kind not in ("runs", "audit"):
        raise ValueError(f"{kind!r} is not a kind of run listing")
    return _document(kind, runs=list(rows))


def audit_verify(results: Mapping[str, Sequence[str]]) -> Document:
    """`audit verify`: how many journals were verified, and the problems of each one that failed."""
    bad = {k: v for k, v in results.items() if v}
    return _document("audit.verify", ok=not bad, runs=len(results), problems=bad)


def lock_rows(held: Iterable[LockInfo]) -> list[dict[str, str]]:
    """The locks as `lock list` shows them (text and JSON alike)."""
    return [{"lock_id": i.lock_id, "target": i.target, "owner": i.owner, "who": i.who, "run_id": i.run_id,
             "created": str(i.created), "expires": str(i.expires)} for i in held]


def locks(held: Iterable[LockInfo]) -> Document:
    return _document("locks", locks=lock_rows(held))


def sandbox(info: SandboxInfo | None, *, account_id: str, hung: SandboxInfo | None = None) -> Document:
    """`hung`: the server of a sandbox whose process runs but does not answer (`running` and not `answering`)."""
    found = info or hung
    return _document("sandbox", running=found is not None, answering=info is not None,
                     endpoint=found.endpoint if found else None, rabbitmq_url=found.rabbitmq_url if found else None,
                     pid=found.pid if found else None, account_id=account_id)
