"""`kprov check client --all`: every recorded client checked read-only, with reads shared by the fleet.

The install checklist (`kensium_provision/checklists/client/install.yaml`) still decides what is checked: each
client runs through the real engine in check mode, with the real step types and its answers from its client
record, exactly as `kprov check client ORG` does. What changes is where the facts come from:

- `fleet.snapshot` reads, once for the whole fleet, what AWS can batch (the records' Scan, the tagging API,
  IAM's authorization details and credential report, the RDS, EC2, MQ, S3 and Secrets Manager listings,
  one vhost listing per broker), and per client only the bucket's Block Public Access and policy;
- `fleet.facts` answers the step types' fact readers (`steps.facts`) and the password manager's `find` from
  that snapshot; whatever it does not hold is read live.

So the judgement of every step (its probe and verify, and their pure functions) exists once, in the step
types, and `check client --all` finds what `check client` finds for each client, for 2 API calls per client
plus the batched listings.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kensium_provision.errors import AbortedError, InputError, KprovError
from kensium_provision.fleet.facts import SnapshotFacts, SnapshotVault, step_reads
from kensium_provision.fleet.model import (
    WORKERS,
    ClientResult,
    CredentialAge,
    FleetFinding,
    FleetReport,
    FleetRequest,
    WallException,
)
from kensium_provision.fleet.recorded import input_owners, recorded_checklist, with_unoffered
from kensium_provision.fleet.rotation import age_findings, clock, credential_ages, max_age_days, secret_dates
from kensium_provision.fleet.snapshot import (
    REPORT_MAX_AGE,
    BrokerListing,
    Snapshot,
    prefetch_exposure,
    read_broker_listings,
    read_snapshot,
    wide_client,
)
from kensium_provision.model import Mode
from kensium_provision.records.clients import CLAIMED, RETIRED, UNREADABLE, ClientRecord, record_name, table_of

if TYPE_CHECKING:
    from kensium_provision.model import Checklist
    from kensium_provision.runtime import Journal, Operator, Runtime
    from kensium_provision.steps.base import StepType

__all__ = [
    "REPORT_MAX_AGE",
    "WORKERS",
    "BrokerListing",
    "ClientResult",
    "FleetFinding",
    "FleetReport",
    "FleetRequest",
    "Snapshot",
    "check_fleet",
    "snapshot_runtime",
    "take_snapshot",
]

_INPUT_IN_ERROR = re.compile(r"^(?:no choices for |missing answer for ')?([a-z][a-z0-9_]*)")


def _operator(request: FleetRequest) -> Operator:
    if request.operator is not None:
        return request.operator
    from kensium_provision.checklist.answers import Answers, AnswersOperator

    return AnswersOperator(Answers(), assume_yes=False)


def snapshot_runtime(request: FleetRequest, snapshot: Snapshot, checklist: Checklist | None = None) -> Runtime:
    """A check-mode runtime over the session whose step types and password manager read `snapshot` (and,
    given the checklist, know each step's queries: `SnapshotFacts._only`)."""
    from kensium_provision.naming.loader import load_rules
    from kensium_provision.runtime import NullJournal, Runtime
    from kensium_provision.vault.backends import ManualVault, make_vault

    operator = _operator(request)
    vault = make_vault(request.vault_backend, settings=request.vault_settings or {"backend": request.vault_backend},
                       client_factory=request.session, operator=operator, env_name=request.env.name)
    if not isinstance(vault, ManualVault):  # `credential.vault_can_find` tells the manual one by its type
        vault = SnapshotVault(vault, snapshot, request.env.name)
    return Runtime(mode=Mode.CHECK, run_id=request.run_id, aws=request.session, operator=operator, vault=vault,
                   names=load_rules(), env_name=request.env.name, journal=NullJournal(), settings=request.settings,
                   facts=SnapshotFacts(snapshot, step_reads(checklist.steps) if checklist is not None else None))


def take_snapshot(request: FleetRequest, journal: Journal, pool: ThreadPoolExecutor,
                  management_calls: list[int]) -> tuple[Snapshot, str]:
    """The fleet's snapshot (`fleet.snapshot`), and how the credential report was obtained: the batched reads,
    then each broker's management API listings, and the per-client bucket reads started on `pool`."""
    # Per client, only what S3 has no batch read for: started on the pool once the records and the bucket
    # list are in, and read while the other listings and then the clients' checks go on.
    s3 = wide_client(request.session, "s3", request.workers)
    snapshot, report_note = read_snapshot(request, journal, pool,
                                          exposure=lambda buckets: prefetch_exposure(s3, buckets, pool))
    listings = read_broker_listings(snapshot_runtime(request, snapshot), snapshot.client_brokers(), management_calls)
    return replace(snapshot, listings=listings), report_note


# --- one client -----------------------------------------------------------------------------------


class _StepTracker:
    """A reporter that remembers which step runs (an input error raised by a step names it)."""

    def __init__(self) -> None:
        self.current = ""

    def step_started(self, step_id: str, title: str) -> None:
        self.current = step_id

    def step_finished(self, result: Any) -> None:
        return None

    def progress(self, step_id: str, message: str) -> None:
        return None


def _check_client(record: ClientRecord, *, checklist: Checklist, types: Mapping[str, StepType], runtime: Runtime,
                  request: FleetRequest, owners: Mapping[str, str],
                  offers: tuple[Checklist, dict[str, tuple[str, ...] | str]] | None = None) -> ClientResult:
    from kensium_provision.engine import run as engine
    from kensium_provision.guards import check_purpose

    org_id = record.org_id

    def finding(step: str, message: str, expected: object = None, actual: object = None) -> ClientResult:
        return ClientResult(org_id=org_id, findings=(FleetFinding(org_id=org_id, step=step, message=message,
                                                                  expected=expected, actual=actual),))

    if record.status == UNREADABLE:
        return finding("client-record", f"the client record {record_name(org_id, table_of(request.settings))} "
                       f"is unreadable: {record.problem}")
    if not record.answers:
        return finding("client-record", f"the client record {record_name(org_id, table_of(request.settings))} "
                       "holds no answers to check with",
                       expected="the install's answers", actual=None)
    tracker = _StepTracker()
    rt = replace(runtime, reporter=tracker)
    preset = {**record.answers, **record.evidence, "org_id": org_id}
    try:
        values = engine.resolve_inputs(checklist, rt, preset)
    except (InputError, AbortedError) as exc:
        match = _INPUT_IN_ERROR.match(str(exc))
        step = owners.get(match.group(1), "inputs") if match else "inputs"
        return finding(step, f"the recorded answers no longer hold: {exc}")
    purpose = values.get("purpose")
    problems: list[FleetFinding] = []
    if isinstance(purpose, str):
        rt = replace(rt, purpose=purpose)
        try:
            check_purpose(request.env, purpose, others=request.environments)
        except KprovError as exc:
            problems.append(FleetFinding(org_id=org_id, step=owners.get("purpose", "org-id"), message=str(exc)))
    try:
        report = engine.run(checklist, rt, values, types=types)
        if offers is not None:  # what the install's live choices would no longer offer (fleet.recorded)
            report = with_unoffered(report, offers[0], rt, values, offers[1])
    except (InputError, AbortedError) as exc:
        return ClientResult(org_id=org_id, findings=(*problems, FleetFinding(
            org_id=org_id, step=tracker.current or "inputs", message=str(exc))))
    problems += [FleetFinding(org_id=org_id, step=f.step_id, message=f.message, expected=f.expected, actual=f.actual)
                 for f in report.findings]
    return ClientResult(org_id=org_id, findings=tuple(problems))


# --- the fleet ----------------------------------------------------------------------------------------


def check_fleet(request: FleetRequest) -> FleetReport:
    """Check every recorded client read-only; the report's `exit_code` is 1 if any client has findings."""
    from kensium_provision.checklist.catalog import install_checklist
    from kensium_provision.checklist.schema import load_checklist
    from kensium_provision.guards import run_guards
    from kensium_provision.naming.loader import load_rules
    from kensium_provision.runtime import NullJournal
    from kensium_provision.steps import registry

    start = time.perf_counter()
    session = request.session
    if getattr(session, "cache", None) is not None:
        # The snapshot is the fleet's read cache: a run-wide one would only deep-copy every answer.
        session.cache = None
    journal = request.journal if request.journal is not None else NullJournal()
    who = run_guards(session.identity(), request.env)  # the same guards as every command (guards.run_guards)
    journal.record("guard", guard="identity", outcome="ok", caller=who.arn, account=who.account)
    installed = load_checklist(request.checklist or install_checklist(), rule_ids=load_rules().ids)
    # Answered from each record: a drifted shared resource is a finding of its steps, not an input error.
    checklist = recorded_checklist(installed)
    offered: dict[str, tuple[str, ...] | str] = {}  # the live-choice lookups, shared by the clients
    management_calls: list[int] = []
    results: list[ClientResult] = []
    not_checked: dict[str, str] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, request.workers), thread_name_prefix="kprov-fleet")
    try:
        snapshot, report_note = take_snapshot(request, journal, pool, management_calls)
        journal.record("snapshot", records=len(snapshot.records), users=len(snapshot.users),
                       buckets=len(snapshot.bucket_names), brokers=sorted(snapshot.listings),
                       credential_report=report_note)
        runtime = snapshot_runtime(request, snapshot, checklist)
        max_age, now = max_age_days(request.settings), request.now or clock()
        due: list[CredentialAge] = []
        types = registry()
        owners = input_owners(installed)
        # The per-client runs compute over the snapshot in this one thread (deterministic, and pure CPU, which
        # more threads would not speed up under the GIL) while the pool still reads the buckets.
        # In the order the clients were installed: the order ListSecrets pages their entries (`read_snapshot`),
        # so each client's entries are in when its check asks; reported in org-id order.
        for org_id, record in sorted(snapshot.records.items(), key=lambda kv: (kv[1].created, kv[0])):
            failed = snapshot.secrets.failed() if snapshot.secrets is not None else None
            if failed is not None:  # the password manager's listing: no client can be judged without it
                raise failed
            if record.status == CLAIMED:
                not_checked[org_id] = f"install in progress: the org id is reserved by run {record.run_id or '?'}"
                continue
            if record.status in RETIRED:
                not_checked[org_id] = f"{record.status} by run {record.run_id or '?'}: nothing installed to check"
                continue
            result = _check_client(record, checklist=checklist, types=types, runtime=runtime, request=request,
                                   owners=owners, offers=(installed, offered))
            own = _due(snapshot, runtime, record, max_age, now)
            due += own
            aged = [FleetFinding(org_id=org_id, step=f.step_id, message=f.message, expected=f.expected,
                                 actual=f.actual)
                    for f in age_findings(own, max_age_days=max_age)]
            result = replace(result, findings=(*result.findings, *aged)) if aged else result
            for f in result.findings:
                journal.record("finding", client=f.org_id, step=f.step, message=f.message, expected=f.expected,
                               actual=f.actual)
            results.append(result)
        if snapshot.secrets is not None:
            snapshot.secrets.entries()  # its end: a listing that failed after the last client's entries fails the check
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    results.sort(key=lambda r: r.org_id)
    journal.record("fleet.result", clients=len(results), with_findings=[r.org_id for r in results if not r.ok],
                   not_checked=sorted(not_checked))
    api_calls = session.counter.as_dict()
    return FleetReport(clients=tuple(results), not_checked=dict(sorted(not_checked.items())), api_calls=api_calls,
                       management_api_calls=sum(management_calls), credential_report=report_note,
                       seconds=time.perf_counter() - start, wall_exceptions=wall_exceptions(api_calls),
                       due=tuple(sorted(due, key=lambda d: d.org_id.lower())), max_age_days=max_age)


def _due(snapshot: Snapshot, runtime: Runtime, record: ClientRecord, max_age: int,
         now: datetime) -> tuple[CredentialAge, ...]:
    """A checked client's credentials due for rotation, dated from the snapshot (`fleet.rotation`); none for an
    unreadable record (the caller skips claimed and retired ones)."""
    from kensium_provision.steps.base import StepContext

    if record.status == UNREADABLE:
        return ()
    source = runtime.facts
    ctx = StepContext(runtime, "credential-age", {})
    keys = {record.iam_user: source.access_key_dates(ctx, record.iam_user)} \
        if record.iam_user and isinstance(source, SnapshotFacts) else {}
    listed = snapshot.secrets
    # Only this client's own entries, each waited for alone (`SecretListing`), not the whole listing.
    entries = [listed.by_arn(ref.split("#", 1)[0]) for ref in record.secrets.values()
               if ref.startswith("arn:")] if listed is not None else []
    secrets = secret_dates(e for e in entries if e is not None)
    return credential_ages([record], secrets, keys, max_age_days=max_age, now=now)


def wall_exceptions(api_calls: Mapping[str, Any]) -> tuple[WallException, ...]:
    """The read-only wall's exceptions this check really sent, from the call counter (what reached AWS or was
    attempted), not from what the code meant to do: empty when a fresh credential report was reused."""
    from kensium_provision.aws.wall import EXCEPTIONS

    by_operation: Mapping[str, Mapping[str, int]] = api_calls.get("by_operation") or {}
    return tuple(WallException(operation=op, reason=reason, calls=int(by_operation[op]["calls"]))
                 for op, reason in sorted(EXCEPTIONS.items()) if by_operation.get(op, {}).get("calls"))
