"""Client records: what each client's install chose and made, kept where every operator can read it.

One item per organization in a small DynamoDB table (`clients: {table: ...}` in the config, default
`kprov-clients`; PAY_PER_REQUEST, created by the first install that writes a record). Its partition key
`OrgId` is the org id lower-cased, so two spellings of one org id cannot both hold a record; `Record`
is the JSON document. The document holds the placement (RDS instance, EC2 host, broker), the per-client
names, the install's non-secret answers (so `kprov check client` re-checks what was installed) and
password-manager REFERENCES, never a credential. It lives in the account, not on one operator's disk,
because the next operator (or the fleet check) must find it; one Scan page (1 MB) holds hundreds.

The same module answers domain.md N1 ("org ids are unique ignoring case") from what exists: client
records, `rms_*` IAM users and `fusion-rms-*` buckets. boto3 is never imported here: callers hand in
clients (a `ClientFactory` or a boto3 client), so the read-only wall and the call counter apply.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

from kensium_provision.aws.call import call, pages
from kensium_provision.errors import AwsError, InputError, KprovError
from kensium_provision.naming.rules import check_org_id_unique
from kensium_provision.records import tables  # the one home of kprov's tables (the locks' too)

__all__ = [
    "CLAIMED",
    "DEFAULT_TABLE",
    "FREED",
    "INSTALLED",
    "MAX_RECORD_BYTES",
    "REMOVED",
    "RETIRED",
    "UNREADABLE",
    "ClientRecord",
    "OrgIdUse",
    "RecordTaken",
    "decide_owner",
    "ensure_table",
    "existing_org_ids",
    "find_org_id_uses",
    "free_record",
    "get_client",
    "iter_items",
    "list_clients",
    "org_id_owner",
    "parse_item",
    "parse_record",
    "put_record",
    "record_name",
    "scan_items",
    "table_of",
    "utc_now",
]

DEFAULT_TABLE = "kprov-clients"
RECORD_SCHEMA = 1
CLAIMED = "claimed"  # the first step of an install reserves the org id
INSTALLED = "installed"  # the last step wrote the whole record
UNREADABLE = "unreadable"  # not kprov's JSON: listed (its name still takes the org id), never trusted
# `kprov remove-client` ends a client here: the record is kept (the history stays), never deleted, and its
# org id stays taken (decide_owner refuses it for any install), so a new client can never inherit the old
# one's host name, bucket name or records.
REMOVED = "removed"
# `kprov names free ORG_ID` frees a removed client's org id on purpose: the record is still kept (and the
# journal of the free holds its whole document) until a new install claims the id and overwrites it.
FREED = "freed"
RETIRED = (REMOVED, FREED)  # a client no longer installed: its record is history, not an install to check
IAM_USER_PREFIX = "rms_"  # N14
BUCKET_PREFIX = "fusion-rms-"  # N15
# A DynamoDB item may hold 400 KB, but small records keep a whole fleet in one or two Scan pages (1 MB each)
# and a record is names, answers and references: 4 KB is plenty (it was SSM's standard-tier limit).
MAX_RECORD_BYTES = 4096
# Fields that change on every write: never a reason to call a record different.
VOLATILE = frozenset({"created", "updated", "run_id", "kprov_version"})


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record_name(org_id: str, table: str = DEFAULT_TABLE) -> str:
    """How messages name a client's record: `<table>/<org_id>` (the item's key is the org id lower-cased)."""
    return f"{table}/{org_id}"


def table_of(settings: Mapping[str, object] | None) -> str:
    """The client records' table from the run settings (`Config.settings()["clients"]`), else the default."""
    found = (settings or {}).get("clients")
    table = found.get("table") if isinstance(found, Mapping) else None
    return str(table) if table else DEFAULT_TABLE


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientRecord:
    """One client's install as recorded: names, placement, answers and password-manager references."""

    org_id: str
    client_name: str = ""
    status: str = INSTALLED  # claimed, installed, removed, freed, or unreadable
    purpose: str = ""
    pos_version: str = ""
    deployment_type: str = ""
    db_hosting: str = ""
    tenant_hosting: str = ""
    rds_instance: str = ""
    ec2_host: str = ""
    broker: str = ""
    vhost: str = ""
    rabbitmq_user: str = ""
    database: str = ""
    login: str = ""
    host_name: str = ""
    iam_user: str = ""
    s3_bucket: str = ""
    secrets: Mapping[str, str] = field(default_factory=dict)  # what -> password-manager reference
    answers: Mapping[str, object] = field(default_factory=dict)  # the install's non-secret input answers
    evidence: Mapping[str, object] = field(default_factory=dict)  # manual steps' evidence (who, when, what)
    created: str = ""
    updated: str = ""
    run_id: str = ""
    kprov_version: str = ""
    problem: str = ""  # why an unreadable record could not be read

    def document(self) -> dict[str, object]:
        """The JSON document stored as the item's `Record` (without `problem`, which only describes a bad read)."""
        # Field by field, not `asdict`: that deep-copied every answer and evidence only to replace them with
        # these copies (six times per client in `check client --all`: a fifth of its evaluation).
        body: dict[str, object] = {name: getattr(self, name) for name in _DOCUMENT_FIELDS}
        body["secrets"] = dict(self.secrets)
        body["answers"] = dict(self.answers)
        body["evidence"] = dict(self.evidence)
        return {"schema": RECORD_SCHEMA, **body}

    def to_json(self) -> str:
        # Sorted and compact: the same record always gives the same text, so a checklist may look for
        # a fragment such as `"tenant_name":` in it with JMESPath's contains().
        return json.dumps(self.document(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    def comparable(self) -> dict[str, object]:
        """The fields that matter when deciding whether a record must be rewritten."""
        return {k: v for k, v in self.document().items() if k not in VOLATILE}


_TEXT_FIELDS = tuple(f.name for f in fields(ClientRecord) if f.name not in ("secrets", "answers", "evidence"))
_DOCUMENT_FIELDS = tuple(f.name for f in fields(ClientRecord) if f.name != "problem")


def parse_record(item_key: str, text: str) -> ClientRecord:
    """A record from its item's key (the org id lower-cased) and JSON text; a bad one gives an `unreadable` record.

    The record keeps its org id as the install spelled it (`ACME`); the key only has to be it lower-cased.
    """
    org_id = item_key

    def unreadable(problem: str) -> ClientRecord:
        return ClientRecord(org_id=org_id, status=UNREADABLE, problem=problem)

    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        return unreadable(f"not JSON ({exc.msg} at character {exc.pos})")
    if not isinstance(raw, dict):
        return unreadable("not a JSON object")
    if raw.get("schema") != RECORD_SCHEMA:
        return unreadable(f"schema {raw.get('schema')!r}, expected {RECORD_SCHEMA} (a newer kprov wrote it?)")
    if not isinstance(raw.get("org_id"), str) or raw["org_id"].lower() != item_key:
        return unreadable(f"its org_id {raw.get('org_id')!r} is not its key's {item_key!r}")
    values: dict[str, Any] = {}
    for key in _TEXT_FIELDS:
        value = raw.get(key, "")
        if not isinstance(value, str):
            return unreadable(f"{key} is {type(value).__name__}, not text")
        values[key] = value
    for key in ("secrets", "answers", "evidence"):
        value = raw.get(key, {})
        if not isinstance(value, dict):
            return unreadable(f"{key} is {type(value).__name__}, not an object")
        values[key] = value
    if not all(isinstance(v, str) for v in values["secrets"].values()):
        return unreadable("a secrets entry is not a reference (text)")
    values.pop("problem", None)
    return ClientRecord(**values)


# --- AWS calls ---------------------------------------------------------------------------------------

# Every call goes through `aws.call` (one translation of failures to AwsError).
_NO_TABLE = tables.NO_TABLE


def scan_items(dynamodb: Any, table: str = DEFAULT_TABLE) -> list[dict[str, Any]]:
    """Every item of the records table: ONE paginated, consistent Scan; none while the table does not exist.

    Plan and check never create the table (the read-only wall would refuse it): no table, no records.
    """
    return list(iter_items(dynamodb, table))


def iter_items(dynamodb: Any, table: str = DEFAULT_TABLE) -> Iterator[dict[str, Any]]:
    """`scan_items`, each item as soon as its page is in."""
    return pages(dynamodb, "Scan", "Items", missing=_NO_TABLE, TableName=table, ConsistentRead=True)


def parse_item(item: Mapping[str, Any]) -> ClientRecord:
    """A record from its DynamoDB item (`OrgId`, `Record`)."""
    key = str((item.get("OrgId") or {}).get("S", ""))
    return parse_record(key, str((item.get("Record") or {}).get("S", "")))


def list_clients(dynamodb: Any, table: str = DEFAULT_TABLE) -> list[ClientRecord]:
    """Every client record, sorted by org id: ONE paginated Scan for the whole fleet."""
    return sorted((parse_item(i) for i in scan_items(dynamodb, table)), key=lambda r: r.org_id)


def get_client(dynamodb: Any, org_id: str, table: str = DEFAULT_TABLE) -> ClientRecord | None:
    """One client's record, or None when there is none (exactly this spelling of the org id) or no table."""
    found = call(dynamodb, "GetItem", TableName=table, Key={"OrgId": {"S": org_id.lower()}},
                     ConsistentRead=True, missing=_NO_TABLE)
    item = (found or {}).get("Item")
    if not item:
        return None
    record = parse_item(item)
    # `ACME`'s record is not `acme`'s: the caller asked for exactly this spelling (N1 is decided elsewhere).
    return record if record.org_id == org_id or record.status == UNREADABLE else None


class RecordTaken(KprovError):
    """The conditional write found the org id held by another client (or another spelling of it)."""


def _client_key(client_name: str) -> str:
    return " ".join(client_name.split()).casefold()


def ensure_table(dynamodb: Any, table: str = DEFAULT_TABLE) -> bool:
    """Create the records table (on demand, PAY_PER_REQUEST) if it is missing; True when it was created.

    Only ever called by a write (apply): plan and check treat a missing table as "no records".
    """
    return tables.ensure_table(dynamodb, table, key="OrgId", kind="client-records")


def put_record(dynamodb: Any, record: ClientRecord, table: str = DEFAULT_TABLE, *, claim: bool = False) -> None:
    """Write `record` only if its org id is free or already this client's (same spelling, same client name).

    The condition makes the reservation atomic: two operators can never both claim one org id, in any
    spelling. A `claim` overwrites nothing but this client's own earlier claim (never a finished record), or
    a record whose org id was freed on purpose (`free_record`).
    Raises `RecordTaken` when the condition fails; creates the table when it does not exist yet.
    """
    condition = "attribute_not_exists(OrgId) OR RecordStatus = :freed OR (ClientKey = :client AND Org = :org"
    values: dict[str, Any] = {":client": {"S": _client_key(record.client_name)}, ":org": {"S": record.org_id},
                              ":freed": {"S": FREED}}
    if claim:
        condition += " AND RecordStatus = :claimed"
        values[":claimed"] = {"S": CLAIMED}
    params: dict[str, Any] = {
        "TableName": table, "ConditionExpression": condition + ")", "ExpressionAttributeValues": values,
        "Item": {"OrgId": {"S": record.org_id.lower()}, "Org": {"S": record.org_id},
                 "ClientKey": {"S": _client_key(record.client_name)}, "RecordStatus": {"S": record.status},
                 "Record": {"S": record.to_json()}},
    }
    for attempt in range(2):
        try:
            call(dynamodb, "PutItem", **params)
            return
        except AwsError as exc:
            if exc.code == "ConditionalCheckFailedException":
                raise RecordTaken(f"the client record {record_name(record.org_id, table)} is held by another "
                                  "client or spelling") from None
            if not (exc.code in _NO_TABLE and attempt == 0):
                raise
        ensure_table(dynamodb, table)  # the first record of the account


def free_record(dynamodb: Any, org_id: str, table: str = DEFAULT_TABLE, *, run_id: str, by: str) -> ClientRecord:
    """Free a removed client's org id (status `freed`), conditionally: only while the record says `removed`.

    Returns the record as it was (the caller journals it: the history stays). Raises `InputError` when there
    is no record of that spelling or it is not removed (an installed client is removed first), `RecordTaken`
    when another operator changed it meanwhile.
    """
    record = get_client(dynamodb, org_id, table)
    if record is None or record.status != REMOVED:
        state = "no client record" if record is None else f"the client record says {record.status}"
        raise InputError(f"org id {org_id!r} cannot be freed: {state} ({record_name(org_id, table)})",
                         hint=f"only a removed client's org id is freed: kprov remove-client {org_id} first")
    freed = replace(record, status=FREED, evidence={**record.evidence, "freed_on": utc_now(), "freed_by": by},
                    updated=utc_now(), run_id=run_id)
    try:
        call(dynamodb, "PutItem", TableName=table, ConditionExpression="RecordStatus = :removed AND Org = :org",
             ExpressionAttributeValues={":removed": {"S": REMOVED}, ":org": {"S": org_id}},
             Item={"OrgId": {"S": org_id.lower()}, "Org": {"S": org_id},
                   "ClientKey": {"S": _client_key(record.client_name)}, "RecordStatus": {"S": FREED},
                   "Record": {"S": freed.to_json()}})
    except AwsError as exc:
        if exc.code == "ConditionalCheckFailedException":
            raise RecordTaken(f"the client record {record_name(org_id, table)} changed meanwhile") from None
        raise
    return record


# --- who uses an org id ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrgIdUse:
    """Something in the account that takes an org id: a client record, an IAM user or a bucket."""

    org_id: str
    kind: str  # client record, IAM user, S3 bucket
    name: str  # the resource's own name

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


def find_org_id_uses(factory: Any, table: str = DEFAULT_TABLE) -> list[OrgIdUse]:
    """Everything that takes an org id: client records, `rms_*` IAM users, `fusion-rms-*` buckets.

    `factory` has `.client(service)` (the run's session or a step context).
    """
    records = list_clients(factory.client("dynamodb"), table)
    uses = [OrgIdUse(r.org_id, "client record", record_name(r.org_id, table)) for r in records]
    for user in pages(factory.client("iam"), "ListUsers", "Users"):
        name = str(user["UserName"])
        if name.casefold().startswith(IAM_USER_PREFIX):  # IAM compares user names ignoring case
            uses.append(OrgIdUse(name[len(IAM_USER_PREFIX):], "IAM user", name))
    s3 = factory.client("s3")
    buckets = list(pages(s3, "ListBuckets", "Buckets")) if s3.can_paginate("list_buckets") else \
        call(s3, "ListBuckets").get("Buckets", [])
    for bucket in buckets:
        name = str(bucket["Name"])
        if name.startswith(BUCKET_PREFIX):
            uses.append(OrgIdUse(name[len(BUCKET_PREFIX):], "S3 bucket", name))
    return [u for u in uses if u.org_id]


def existing_org_ids(factory: Any, table: str = DEFAULT_TABLE) -> set[str]:
    """Every org id in use, as spelled where it was found (compare with `naming.check_org_id_unique`)."""
    return {u.org_id for u in find_org_id_uses(factory, table)}


def _same_client(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def org_id_owner(factory: Any, org_id: str, client_name: str, table: str = DEFAULT_TABLE) -> ClientRecord | None:
    """Whether `org_id` may be used for `client_name`: this client's record on a re-run, None when free.

    Raises `InputError` (exit 3, nothing attempted) when the org id is taken ignoring case (`ACME`
    exists and `acme` is asked for), or when its record belongs to another client, or when an IAM
    user or bucket of that org id exists with no record saying whose it is.
    """
    uses = find_org_id_uses(factory, table)
    own = next((u for u in uses if u.kind == "client record" and u.org_id == org_id), None)
    record = get_client(factory.client("dynamodb"), org_id, table) if own is not None else None
    return decide_owner(uses, record, org_id, client_name, table)


def decide_owner(uses: Iterable[OrgIdUse], record: ClientRecord | None, org_id: str,
                 client_name: str, table: str = DEFAULT_TABLE) -> ClientRecord | None:
    """`org_id_owner`'s decision from what was read (pure: the fleet check reads once for every client).

    `uses` are the account's uses of org ids (only those equal to `org_id` ignoring case matter);
    `record` is `org_id`'s own client record, if it has one.
    """
    if record is not None and record.status == UNREADABLE:
        raise InputError(f"the client record {record_name(org_id, table)} is unreadable: {record.problem}",
                         hint=f"fix or delete its item (OrgId {org_id.lower()!r}) in the DynamoDB table {table}, "
                              "then run again")
    if record is not None and record.status == FREED:  # freed on purpose: the id is free again (N1 still applies)
        uses = [u for u in uses if not (u.kind == "client record" and u.org_id == org_id)]
        record = None
    if record is not None and record.status == REMOVED:
        raise InputError(
            f"org id {org_id!r} is taken: client {record.client_name!r} was removed with it (record "
            f"{record_name(org_id, table)}, removed by run {record.run_id or '?'} on {record.updated or '?'}); "
            "a removed client's org id stays taken",
            hint=f"choose another org id; the removed client's record is kept as its history (to reuse the id on "
                 f"purpose: kprov names free {org_id})")
    if record is not None and not _same_client(record.client_name, client_name):
        raise InputError(
            f"org id {org_id!r} belongs to client {record.client_name!r} (record {record_name(org_id, table)}, "
            f"{record.status} by run {record.run_id or '?'}), not to {client_name!r}",
            hint="choose another org id for this client; org ids are unique ignoring case")
    # With this client's record, resources spelled exactly `acme` are its own (made by this install).
    folded = org_id.casefold()
    others = [u for u in uses if u.org_id.casefold() == folded and not (record and u.org_id == org_id)]
    if others:
        problems = check_org_id_unique(org_id, [u.org_id for u in others])
        raise InputError(
            f"{problems[0] if problems else f'org id {org_id!r} is taken'}: "
            + ", ".join(str(u) for u in others) + (" (no client record claims it)" if record is None else ""),
            hint="choose another org id; if these belong to this very client (installed before kprov, or its "
                 f"record was lost), restore its record {record_name(org_id, table)} (DynamoDB table {table}) first")
    return record
