"""Step types of the client record (`clients.py`): reserve the org id first, write the whole record last.

`client.org-id` makes domain.md N1 ("unique ignoring case") a step that runs before any change, and
reserves the id with a `claimed` record (a conditional write: two operators never both get it) so that
a re-run or a resume of the same install is recognised as this client's. `client.evidence` reads what
the record already evidences. `client.record` writes what the install chose and made, with
password-manager references only, to the client records' DynamoDB table (`clients.table` in the config).

Their probes and verifies read through the run's facts source (`steps.facts`: `client_record`,
`org_id_uses`): live, the table's items and the account's users and buckets; in the fleet check, the
one Scan, user listing and bucket listing read for every client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from kensium_provision import __version__
from kensium_provision.errors import InputError, StepError
from kensium_provision.records.clients import (
    CLAIMED,
    INSTALLED,
    MAX_RECORD_BYTES,
    UNREADABLE,
    ClientRecord,
    RecordTaken,
    decide_owner,
    get_client,
    org_id_owner,
    put_record,
    record_name,
    table_of,
    utc_now,
)
from kensium_provision.steps.base import Created, Difference, Param, Probe, StepContext, UndoCheck, record_created
from kensium_provision.steps.facts import facts

__all__ = ["ClientEvidence", "ClientOrgId", "ClientRecordStep", "records_table", "write_record"]

_SCALARS = (str, int, float, bool, type(None))


def records_table(ctx: StepContext) -> str:
    """The client records' DynamoDB table of this run (the config's `clients.table`)."""
    return table_of(getattr(ctx.runtime, "settings", None))


def write_record(ctx: StepContext, record: ClientRecord, *, claim: bool) -> None:
    """Write a record, conditionally: only while the org id is free or this client's (`clients.put_record`)."""
    text = record.to_json()
    _refuse_secrets(text)
    if len(text.encode()) > MAX_RECORD_BYTES:
        raise StepError(f"the client record of {record.org_id} is {len(text.encode())} bytes; kprov keeps records "
                        f"under {MAX_RECORD_BYTES}", hint="shorten the long answers (general information)")
    put_record(ctx.client("dynamodb"), record, records_table(ctx), claim=claim)


def _owner(ctx: StepContext, org_id: str, client_name: str, table: str) -> ClientRecord | None:
    """`clients.org_id_owner` over the run's facts: this client's record, None when the id is free;
    InputError when the id is another client's."""
    source = facts(ctx)
    uses = source.org_id_uses(ctx, org_id, table)
    own = any(u.kind == "client record" and u.org_id == org_id for u in uses)
    record = source.client_record(ctx, org_id, table) if own else None
    return decide_owner(uses, record, org_id, client_name, table)


def _undone_runs(ctx: StepContext) -> tuple[str, ...]:
    """An undo's re-probe: the runs being undone (the run and those resuming it), whose writes are theirs."""
    runs = ctx.values.get("undone_runs")
    return tuple(str(r) for r in runs) if isinstance(runs, (list, tuple)) else ()


def _refuse_secrets(text: str) -> None:
    from kensium_provision.secret import REDACTOR

    if REDACTOR.leaks(text):  # a credential's value reached the record: never write it
        raise StepError("the client record would contain a credential's value; it holds references only",
                        hint="pass the password-manager reference (a credential step's `ref` output), not the secret")


class ClientOrgId:
    """Reserve the org id for this client; refuse one already taken, ignoring case (domain.md N1).

    The probe looks at everything that takes an org id: client records (the DynamoDB table of
    `clients.table`, keyed by the org id lower-cased), `rms_*` IAM users and `fusion-rms-*` S3 buckets.
    When the id is free, the step reserves it with a client record of status `claimed`, written only if
    no record of that key exists (or only this client's own claim), so two concurrent installs cannot both
    reserve it. When this client's own record is there
    (same client name), the step is done: a re-run or a resume of the same install passes. Anything
    else (`ACME` exists and `acme` is asked for; the record names another client; an `rms_acme` user
    that no record claims) stops the run before any change with exit code 3, naming what holds it.

    Example: `org_id: "{{ org_id }}"`, `client_name: "{{ client_name }}"`, `purpose: "{{ purpose }}"`.
    """

    name: ClassVar[str] = "client.org-id"
    summary: ClassVar[str] = "Check the org id is free (ignoring case) and reserve it with a client record."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="org_id", rule="org-id", doc="The organization id."),
        Param(name="client_name", doc="The client's name: what tells this client from another on a re-run."),
        Param(name="purpose", required=False, default="", doc="production, staging, qa, development or demo."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("org_id", "status", "record")

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        org_id, client_name, table = str(params["org_id"]), str(params["client_name"]), records_table(ctx)
        record = _owner(ctx, org_id, client_name, table)
        name = record_name(org_id, table)
        outputs = {"org_id": org_id, "record": name}
        if record is not None:
            return Probe(done=True, note=f"org id {org_id} is this client's ({record.status} by run {record.run_id})",
                         current={"record": name, "status": record.status},
                         outputs={**outputs, "status": record.status})
        return Probe(done=False, note=f"org id {org_id} is free: reserve it with a client record",
                     desired={"record": name, "status": CLAIMED, "client_name": client_name})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        org_id, client_name = str(params["org_id"]), str(params["client_name"])
        now = utc_now()
        claim = ClientRecord(org_id=org_id, client_name=client_name, status=CLAIMED,
                             purpose=str(params.get("purpose") or ""), created=now, updated=now,
                             run_id=ctx.runtime.run_id, kprov_version=__version__)
        table = records_table(ctx)
        try:
            write_record(ctx, claim, claim=True)
        except RecordTaken as exc:
            # Another run wrote it between our probe and now: whose is it? (InputError if another client's)
            if org_id_owner(ctx, org_id, client_name, table) is None:
                raise StepError(str(exc),
                                hint="another install holds this org id now; run again to see whose") from None
        else:
            record_created(ctx, "client record", org_id, table=table, run=ctx.runtime.run_id)
        return {"org_id": org_id, "status": CLAIMED, "record": record_name(org_id, table)}

    def undo_check(self, ctx: StepContext, params: Mapping[str, Any], created: Sequence[Created]) -> UndoCheck:
        """The record this run reserved: gone, or still this run's (claimed, or completed by its client.record
        step); written since by another run, it is that run's now and is refused."""
        present: list[Created] = []
        changed: list[str] = []
        for made in created:
            table = made.details.get("table") or records_table(ctx)
            record = get_client(ctx.client("dynamodb"), made.id, table)
            if record is None:
                continue
            present.append(made)
            runs = {made.details.get("run"), *_undone_runs(ctx)}
            if record.run_id not in runs or record.status not in (CLAIMED, INSTALLED):
                changed.append(f"the client record {record_name(made.id, table)} was written since by run "
                               f"{record.run_id or '?'} (status {record.status})")
        return UndoCheck(present=tuple(present), changed=tuple(changed))

    def undo(self, ctx: StepContext, params: Mapping[str, Any], created: Sequence[Created]) -> None:
        """Delete the record, only while it is still as `undo_check` saw it (same status: a conditional write)."""
        from kensium_provision.aws.call import call

        for made in created:
            table = made.details.get("table") or records_table(ctx)
            record = get_client(ctx.client("dynamodb"), made.id, table)
            if record is None:
                continue
            ctx.progress(f"deleting the client record {record_name(made.id, table)}")
            call(ctx.client("dynamodb"), "DeleteItem", TableName=table, Key={"OrgId": {"S": made.id.lower()}},
                 ConditionExpression="RecordStatus = :status AND Org = :org",
                 ExpressionAttributeValues={":status": {"S": record.status}, ":org": {"S": made.id}})

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        org_id, client_name, table = str(params["org_id"]), str(params["client_name"]), records_table(ctx)
        try:
            record = _owner(ctx, org_id, client_name, table)
        except InputError as exc:
            return (Difference("org id", str(exc), f"{org_id} reserved for {client_name}"),)
        return () if record is not None else (Difference("client record", None, record_name(org_id, table)),)


class ClientEvidence:
    """Read which evidence the client record already holds: a read, never a change.

    No API shows a tenant or (outside Route 53) a DNS record; the evidence the install's manual steps
    collected, kept in the client record, is what says they were done. Outputs `recorded` (evidence id ->
    whether the record holds it), `evidence` (the values held) and `record`. No record, or no table yet
    (the first install of the account), holds nothing.

    Example: `org_id: "{{ org_id }}"`, `names: [tenant_name, dns_record_target]`, outputs
    `{tenant_recorded: recorded.tenant_name}`.
    """

    name: ClassVar[str] = "client.evidence"
    summary: ClassVar[str] = "Read which manual-step evidence the client record already holds."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="org_id", rule="org-id", doc="The organization id."),
        Param(name="names", kind="list", doc="Evidence ids to look for in the record."),
    )
    outputs: ClassVar[tuple[str, ...]] = ()  # any JMESPath into {"recorded": {...}, "evidence": {...}, "record": ...}

    def _read(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, object]:
        org_id, table = str(params["org_id"]), records_table(ctx)
        record = facts(ctx).client_record(ctx, org_id, table)
        held = dict(record.evidence) if record is not None and record.status != UNREADABLE else {}
        names = [str(n) for n in params.get("names") or ()]
        return {"recorded": {n: n in held for n in names}, "evidence": {n: held[n] for n in names if n in held},
                "record": record_name(org_id, table) if record is not None else "no record yet"}

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        found = self._read(ctx, params)
        recorded = found["recorded"]
        said = ", ".join(f"{n} {'recorded' if held else 'not recorded yet'}" for n, held in recorded.items()) \
            if isinstance(recorded, Mapping) and recorded else "nothing asked"
        return Probe(done=True, note=f"{found['record']}: {said}", current={"record": found["record"]},
                     outputs=found)

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        return dict(probe.outputs)  # never reached: the probe is always done

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        return ()


_RECORD_TEXT = (
    ("purpose", "", "production, staging, qa, development or demo."),
    ("pos_version", "", "The POS version of the client's tenant."),
    ("deployment_type", "", "Kensium Hosted or Client Hosted."),
    ("db_hosting", "", "Shared, Shared (New) or Dedicated."),
    ("tenant_hosting", "", "Shared, Shared (New) or Dedicated."),
    ("rds_instance", "rds-instance", "The RDS instance holding the client's database."),
    ("ec2_host", "ec2-host", "The EC2 host holding the client's tenant."),
    ("broker", "mq-broker", "The Amazon MQ broker holding the hub vhost."),
    ("vhost", "vhost-hub", "The hub vhost."),
    ("rabbitmq_user", "rabbitmq-user", "The RabbitMQ user of the hub vhost."),
    ("database", "client-database", "The client's SQL Server database."),
    ("login", "client-login", "The client's SQL Server login."),
    ("host_name", "host-name", "The public host name of the cloud tenant."),
    ("iam_user", "iam-user", "The org's IAM user (made by POS)."),
    ("s3_bucket", "", "The org's S3 bucket (made by POS; fusion-rms-<org_id> unless that was taken)."),
)


class ClientRecordStep:
    """Write the client record: what this install chose and made, where every operator can read it.

    The client records' DynamoDB table (an item keyed by the org id lower-cased, its JSON document in
    `Record`) holds the placement (RDS instance, EC2 host, broker), the names, the install's
    non-secret answers (so `kprov check client <org_id>` re-checks exactly what was installed), the
    evidence of manual steps, and password-manager REFERENCES: a credential's value is refused.
    The probe compares field by field (timestamps and run id aside); act overwrites, conditionally: only
    while the org id is free or this client's (same spelling, same client name). `answers` and
    `evidence` NAME values (no braces: an input that was not asked, or the evidence of a manual step
    already done, has no value to render); evidence this run did not collect keeps what the record holds.

    Example: `org_id: "{{ org_id }}"`, `client_name: "{{ client_name }}"`, `rds_instance: "{{ db_instance }}"`,
    `secrets: {sql_login: "{{ sql_password_ref }}"}`, `answers: [org_id, purpose, db_hosting]` (input ids),
    `evidence: [tenant_name]` (evidence ids).
    """

    name: ClassVar[str] = "client.record"
    summary: ClassVar[str] = "Write the client record (DynamoDB, keyed by the org id): references only."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="org_id", rule="org-id", doc="The organization id."),
        Param(name="client_name", doc="The client's name."),
        *(Param(name=n, rule=rule, required=False, default="", doc=doc) for n, rule, doc in _RECORD_TEXT),
        Param(name="secrets", kind="map", required=False, doc="What -> password-manager reference (never a value)."),
        Param(name="answers", kind="list", required=False,
              doc="Input ids whose answers to keep (for `kprov check client`); ones not asked are left out."),
        Param(name="evidence", kind="list", required=False, doc="Names of manual-step evidence values to keep."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("record", "org_id", "created", "updated")

    def _desired(self, ctx: StepContext, params: Mapping[str, Any], current: ClientRecord | None) -> ClientRecord:
        secrets = dict(params.get("secrets") or {})
        for key, value in secrets.items():
            if hasattr(value, "reveal") or not isinstance(value, str):
                raise StepError(f"client record secrets.{key} must be a password-manager reference (text), "
                                "never the credential itself")
        answers: dict[str, object] = {}
        for item in params.get("answers") or ():
            name = str(item)
            if name not in ctx.values:
                continue  # an input this install did not ask (its `when` did not hold)
            value = ctx.values[name]
            if hasattr(value, "reveal"):
                raise StepError(f"client record answers.{name} is a secret: the record holds references only")
            if not isinstance(value, _SCALARS):
                raise StepError(f"client record answers.{name} is a {type(value).__name__}, not a plain value")
            answers[name] = value
        evidence: dict[str, object] = {}
        for item in params.get("evidence") or ():
            name = str(item)
            if name in ctx.values and not hasattr(ctx.values[name], "reveal"):
                evidence[name] = ctx.values[name]
            elif current is not None and name in current.evidence:
                evidence[name] = current.evidence[name]
        now = utc_now()
        keep = current if current is not None and current.status != UNREADABLE else None
        return ClientRecord(
            org_id=str(params["org_id"]), client_name=str(params["client_name"]), status=INSTALLED,
            **{n: str(params.get(n) or "") for n, _, _ in _RECORD_TEXT},
            secrets=secrets, answers=answers, evidence=evidence,
            created=keep.created if keep is not None and keep.created else now, updated=now,
            run_id=ctx.runtime.run_id, kprov_version=__version__)

    def _differences(self, ctx: StepContext, current: ClientRecord | None,
                     desired: ClientRecord) -> tuple[Difference, ...]:
        if current is None:
            return ()
        if current.status == UNREADABLE:
            return (Difference("record", f"unreadable: {current.problem}", "a kprov client record"),)
        have, want = current.comparable(), desired.comparable()
        from kensium_provision.vault.backends import canonical_reference

        for side in (have, want):  # references compare through the vault (issue 14.11), never as raw text
            refs = side.get("secrets")
            if isinstance(refs, dict):
                side["secrets"] = {k: canonical_reference(ctx.runtime.vault, v) for k, v in refs.items()}
        found: list[Difference] = []
        for key in sorted(set(have) | set(want)):
            a, b = have.get(key), want.get(key)
            if isinstance(a, dict) and isinstance(b, dict):
                found += [Difference(f"{key}.{k}", a.get(k), b.get(k)) for k in sorted(set(a) | set(b))
                          if a.get(k) != b.get(k)]
            elif a != b:
                found.append(Difference(key, a, b))
        return tuple(found)

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        org_id, table = str(params["org_id"]), records_table(ctx)
        name = record_name(org_id, table)
        current = facts(ctx).client_record(ctx, org_id, table)
        desired = self._desired(ctx, params, current)
        _refuse_secrets(desired.to_json())
        shown = {"record": name, **desired.comparable()}
        if current is None:
            return Probe(done=False, note=f"no client record {name} yet", desired=shown)
        differences = self._differences(ctx, current, desired)
        outputs = {"record": name, "org_id": org_id, "created": current.created, "updated": current.updated}
        if differences:
            note = f"the client record differs in {len(differences)} field(s)"
            if current.status == CLAIMED:
                note = "the org id is reserved; the record is written when the install is complete"
            return Probe(done=False, note=note, current={"record": name, "status": current.status},
                         desired=shown, differences=differences)
        return Probe(done=True, note=f"{name} is up to date", outputs=outputs,
                     current={"record": name, "status": current.status})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        table = records_table(ctx)
        current = get_client(ctx.client("dynamodb"), str(params["org_id"]), table)
        desired = self._desired(ctx, params, current)
        try:
            write_record(ctx, desired, claim=False)
        except RecordTaken as exc:
            raise StepError(str(exc), hint="another install took this org id; kprov check client shows whose") from None
        return {"record": record_name(desired.org_id, table), "org_id": desired.org_id, "created": desired.created,
                "updated": desired.updated}

    def not_undoable(self, params: Mapping[str, Any]) -> str:
        return ("it completes the client record: the record goes with the org id's reservation (client.org-id) "
                "when the same run made it, and is kept otherwise")

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        table = records_table(ctx)
        current = facts(ctx).client_record(ctx, str(params["org_id"]), table)
        if current is None:
            return (Difference("client record", None, record_name(str(params["org_id"]), table)),)
        return self._differences(ctx, current, self._desired(ctx, params, current))
