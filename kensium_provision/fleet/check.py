"""`kprov check client --all`: every recorded client checked read-only, with reads shared by the fleet.

The install checklist (`kensium_provision/checklists/client/install.yaml`) still decides what is checked: each client runs
through the real engine in check mode, with its answers from its client record, exactly as `kprov check
client ORG` does. What changes is where the facts come from. A **snapshot** is read once for the whole
fleet, with the reads AWS can batch (paginated, concurrently):

- `dynamodb:Scan` the client records (one table, hundreds of records a page); `resourcegroupstaggingapi:
  GetResources` the buckets' tags; `rds:DescribeDBInstances`; `ec2:DescribeInstances` (pending and running);
  `mq:ListBrokers`; `s3:ListBuckets`; `secretsmanager:ListSecrets` (the password manager's entries);
- `iam:GetAccountAuthorizationDetails` (users with tags, attached and inline policies, groups) and the
  IAM credential report (console password, active access keys) instead of seven calls per user;
- per broker endpoint ONE `vhosts`, `users` and `permissions` listing of the RabbitMQ management API.

Per client, only what AWS has no batch read for is asked, concurrently in a bounded pool:
`s3:GetPublicAccessBlock` and `s3:GetBucketPolicy` of the client's bucket.

The engine's step types get their facts from the snapshot in two ways. Step types that read through
`ctx.client(...)` generically (`aws.assert`, `flow.stop`, a manual step's probe, the choice lookups,
`client.record`, the password manager) get a client factory whose clients answer a small set of read
operations from the snapshot (filtered as AWS would filter them) and pass every other call to the real,
counted, walled client. The IAM, S3, RabbitMQ and org-id step types read through a hook (`read` /
`look`) that the fleet's subclasses answer from the snapshot; their evaluation is the step types' own
pure functions (`evaluate_user`, `evaluate_bucket`, `VhostFacts.differences`, `decide_owner`). Whatever
the snapshot cannot answer is read live, so the fleet check is never less thorough than `check client`.

The credential report: one younger than four hours is used; otherwise the check asks IAM to refresh it
through the read-only wall's single exception (`aws.wall.permit`), journaled. A user missing from the
report (created since), or a report IAM refuses, falls back to that user's own two reads.
"""

from __future__ import annotations

import csv
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kensium_provision.errors import AbortedError, ExitCode, InputError, KprovError, StepError
from kensium_provision.model import Mode
from kensium_provision.records.clients import (
    CLAIMED,
    UNREADABLE,
    ClientRecord,
    OrgIdUse,
    aws_call,
    decide_owner,
    parse_item,
    read_pages,
    record_name,
    scan_items,
    table_of,
)

if TYPE_CHECKING:
    from kensium_provision.guards import Environment
    from kensium_provision.model import Checklist
    from kensium_provision.runtime import Journal, Operator
    from kensium_provision.steps.base import StepContext, StepType
    from kensium_provision.steps.iam import IamUserFacts
    from kensium_provision.steps.rabbitmq_vhost import VhostFacts
    from kensium_provision.steps.s3 import BucketFacts

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
]

WORKERS = 8  # concurrent reads; botocore's standard retry mode backs off on throttling within each
REPORT_MAX_AGE = timedelta(hours=4)  # IAM itself regenerates a credential report at most this often
REPORT_BUDGET = 60.0  # seconds to wait for IAM to finish a credential report
_EC2_STATES = frozenset({"pending", "running"})  # what the snapshot holds; other states are asked live
_WILDCARD = re.compile(r"[*?]")
_INPUT_IN_ERROR = re.compile(r"^(?:no choices for |missing answer for ')?([a-z][a-z0-9_]*)")


# --- results ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetFinding:
    """One thing wrong with one client: the install step that owns the fact, and what differs."""

    org_id: str
    step: str
    message: str
    expected: object = None
    actual: object = None

    def as_json(self) -> dict[str, object]:
        return {"step": self.step, "message": self.message, "expected": self.expected, "actual": self.actual}


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientResult:
    org_id: str
    findings: tuple[FleetFinding, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.findings


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetReport:
    """A fleet check: per client its findings; what was read and what it cost."""

    clients: tuple[ClientResult, ...]
    not_checked: Mapping[str, str]  # org id -> why (an install still in progress)
    api_calls: Mapping[str, object]  # CallCounter.as_dict()
    management_api_calls: int  # RabbitMQ management API requests (not AWS)
    credential_report: str  # how the IAM credential report was obtained
    seconds: float

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.clients)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if self.ok else ExitCode.FAILED


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetRequest:
    """What a fleet check needs, injected (the CLI builds it from the config; tests from moto)."""

    env: Environment
    session: Any  # aws.session.AwsSession in check mode: counted and walled
    settings: Mapping[str, object] = field(default_factory=dict)  # the run settings (rabbitmq, sql, sandbox)
    vault_backend: str = "secretsmanager"
    vault_settings: Mapping[str, object] = field(default_factory=dict)
    environments: Sequence[Environment] = ()  # every configured environment (the purpose guard names others)
    operator: Operator | None = None  # None: never prompts
    journal: Journal | None = None  # None: an in-memory journal
    run_id: str = "fleet"
    workers: int = WORKERS
    checklist: Path | None = None  # default: the catalog's client/install
    sleep: Callable[[float], None] = time.sleep


# --- the snapshot ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerListing:
    """One management API's vhosts, users and permissions, each read once for every client on it."""

    vhosts: frozenset[str]
    users: Mapping[str, Mapping[str, object]]
    permissions: Mapping[str, tuple[Mapping[str, object], ...]]  # by user


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """Everything read once for the fleet. Built by `check_fleet`; read-only afterwards (threads share it)."""

    identity: Mapping[str, str]
    table: str  # the client records' DynamoDB table
    items: Mapping[str, Mapping[str, Any]]  # its items by key (the org id lower-cased)
    records: Mapping[str, ClientRecord]  # by org id
    db_instances: tuple[Mapping[str, Any], ...]
    reservations: tuple[Mapping[str, Any], ...]  # pending and running instances
    brokers: tuple[Mapping[str, Any], ...]
    users: Mapping[str, Mapping[str, Any]]  # UserDetail by user name
    user_list: tuple[Mapping[str, Any], ...]  # as ListUsers answers
    report: Mapping[str, Mapping[str, str]] | None  # credential-report rows by user; None: no report
    buckets: tuple[Mapping[str, Any], ...]
    bucket_names: frozenset[str]
    bucket_tags: Mapping[str, Mapping[str, str]]  # bucket name -> tags (buckets the tagging API listed)
    # bucket -> its (Block Public Access, policy text), being read while the clients are checked
    exposure: Mapping[str, Future[tuple[Mapping[str, bool] | None, str | None]]]
    secrets: Mapping[str, Mapping[str, Any]] | None  # Secrets Manager entries by name; None: not listed
    secret_prefix: str
    listings: Mapping[str, BrokerListing | str]  # broker name -> listing, or why it could not be read
    uses: Mapping[str, tuple[OrgIdUse, ...]]  # org id ignoring case -> what takes it
    # users the credential report does not cover, read on their own once: (console login?, access keys)
    live: dict[str, tuple[bool, tuple[Mapping[str, Any], ...]]] = field(default_factory=dict)

    # -- facts for the fleet's step types ----------------------------------------------------------

    def user_facts(self, ctx: StepContext, user: str) -> IamUserFacts | None:
        from kensium_provision.steps.iam import user_facts

        detail = self.users.get(user)
        if detail is None:
            return None  # the authorization details list every user: there is no such user
        row = (self.report or {}).get(user)
        if row is None:
            login, keys = self.credentials(_real(ctx, "iam"), user)
            active = sum(1 for k in keys if k.get("Status") == "Active")
            row = {"password_enabled": str(login).lower(), "access_key_1_active": str(active >= 1).lower(),
                   "access_key_2_active": str(active >= 2).lower()}
        return user_facts(detail, row)

    def credentials(self, iam: Any, user: str) -> tuple[bool, tuple[Mapping[str, Any], ...]]:
        """A user the credential report does not cover: its console login and access keys, read once."""
        with _LIVE_LOCK:
            if user not in self.live:
                login = aws_call(iam, "get_login_profile", UserName=user, missing=("NoSuchEntity",))
                keys = read_pages(iam, "list_access_keys", "AccessKeyMetadata", UserName=user)
                self.live[user] = (login is not None, tuple(keys))
            return self.live[user]

    def bucket_facts(self, ctx: StepContext, bucket: str) -> BucketFacts | None:
        from kensium_provision.steps.s3 import BucketFacts, parse_policy, read_exposure

        if bucket not in self.bucket_names:
            return None  # ListBuckets lists every bucket of the account
        s3 = ctx.client("s3")
        tags = self.bucket_tags.get(bucket)
        if tags is None:  # never tagged, or in another region than the tagging API's: ask the bucket
            tagging = aws_call(s3, "get_bucket_tagging", Bucket=bucket, missing=("NoSuchTagSet",)) or {}
            tags = {t["Key"]: t["Value"] for t in tagging.get("TagSet", ())}
        block, policy = self.exposure[bucket].result() if bucket in self.exposure else read_exposure(s3, bucket)
        return BucketFacts(tags=tags, block_public_access=block, policy=parse_policy(bucket, policy))

    def vhost_facts(self, broker: str, vhost: str, user: str) -> VhostFacts | None:
        from kensium_provision.steps.rabbitmq_vhost import vhost_facts

        listing = self.listings.get(broker)
        if listing is None:
            return None
        if isinstance(listing, str):
            raise StepError(listing)
        return vhost_facts(vhost=vhost, user=user, vhost_exists=vhost in listing.vhosts,
                           user_record=listing.users.get(user), permissions=listing.permissions.get(user, ()))

    def owner(self, org_id: str, client_name: str) -> ClientRecord | None:
        record = self.records.get(org_id)
        return decide_owner(self.uses.get(org_id.casefold(), ()), record, org_id, client_name, self.table)


_LIVE_LOCK = threading.Lock()


def _real(ctx: StepContext, service: str) -> Any:
    """The session's own client (counted, walled), not the snapshot's: for reads the snapshot lacks."""
    factory = ctx.runtime.aws
    return getattr(factory, "session", factory).client(service)


# --- clients that answer reads from the snapshot ------------------------------------------------------

Handler = Callable[[Mapping[str, Any]], dict[str, Any] | None]  # None: not answerable, ask AWS


class _Pages:
    """A paginator's result holding one page: the snapshot's answer."""

    def __init__(self, response: dict[str, Any]) -> None:
        self._response = response

    def __iter__(self) -> Any:
        yield dict(self._response)

    def build_full_result(self) -> dict[str, Any]:
        return dict(self._response)


class _Paginator:
    def __init__(self, handler: Handler, real: Any) -> None:
        self._handler, self._real = handler, real

    def paginate(self, **params: Any) -> Any:
        found = self._handler(params)
        return self._real.paginate(**params) if found is None else _Pages(found)


class _SnapshotClient:
    """A boto3 client whose reads in `handlers` are answered from the snapshot; everything else is the real one."""

    def __init__(self, real: Any, handlers: Mapping[str, Handler]) -> None:
        self._real, self._handlers = real, handlers
        self.meta = real.meta

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._real, name)
        handler = self._handlers.get(name)
        if handler is None:
            return real

        def call(**params: Any) -> Any:
            found = handler(params)
            return real(**params) if found is None else found

        return call

    def can_paginate(self, name: str) -> bool:
        return bool(self._real.can_paginate(name))

    def get_paginator(self, name: str) -> Any:
        handler = self._handlers.get(name)
        real = self._real.get_paginator(name)
        return real if handler is None else _Paginator(handler, real)


class _SnapshotClients:
    """The per-client runs' `ClientFactory`: the session's clients behind the snapshot's answers."""

    def __init__(self, session: Any, snapshot: Snapshot) -> None:
        self.session, self.snapshot = session, snapshot
        self._handlers = _handlers(snapshot, session)
        self._clients: dict[str, _SnapshotClient] = {}

    def client(self, service: str) -> Any:
        found = self._clients.get(service)
        if found is None:
            found = self._clients.setdefault(service, _SnapshotClient(self.session.client(service),
                                                                      self._handlers.get(service, {})))
        return found


def _only(params: Mapping[str, Any], allowed: Iterable[str]) -> bool:
    return not (set(params) - set(allowed))


def _handlers(snap: Snapshot, session: Any) -> dict[str, dict[str, Handler]]:
    """The read operations the snapshot answers, each exactly as AWS would for these parameters, or None."""
    iam = session.client("iam")
    def db_instances(p: Mapping[str, Any]) -> dict[str, Any] | None:
        if not _only(p, ("Filters", "DBInstanceIdentifier")):
            return None
        items = list(snap.db_instances)
        wanted = p.get("DBInstanceIdentifier")
        if wanted is not None:
            items = [d for d in items if d.get("DBInstanceIdentifier") == wanted]
            if not items:
                return None  # AWS answers DBInstanceNotFound: let it
        for f in p.get("Filters") or ():
            values = [str(v) for v in f.get("Values") or ()]
            if f.get("Name") != "db-instance-id" or any(v != v.lower() or _WILDCARD.search(v) for v in values):
                return None
            items = [d for d in items if d.get("DBInstanceIdentifier") in values or d.get("DBInstanceArn") in values]
        return {"DBInstances": items}

    def instances(p: Mapping[str, Any]) -> dict[str, Any] | None:
        if not _only(p, ("Filters",)):
            return None
        tests: list[Callable[[Mapping[str, Any]], bool]] = []
        states = False
        for f in p.get("Filters") or ():
            name, values = str(f.get("Name", "")), {str(v) for v in f.get("Values") or ()}
            if any(_WILDCARD.search(v) for v in values):
                return None
            if name == "instance-state-name":
                if not values <= _EC2_STATES:
                    return None
                states = True
                tests.append(lambda i, v=values: (i.get("State") or {}).get("Name") in v)
            elif name.startswith("tag:"):
                tests.append(lambda i, k=name[4:], v=values: _tags(i.get("Tags")).get(k) in v)
            elif name == "tag-key":
                tests.append(lambda i, v=values: bool(v & set(_tags(i.get("Tags")))))
            elif name == "availability-zone":
                tests.append(lambda i, v=values: (i.get("Placement") or {}).get("AvailabilityZone") in v)
            elif name == "instance-id":
                tests.append(lambda i, v=values: i.get("InstanceId") in v)
            else:
                return None
        if not states:
            return None  # the snapshot holds pending and running instances only
        found = []
        for reservation in snap.reservations:
            matched = [i for i in reservation.get("Instances") or () if all(t(i) for t in tests)]
            if matched:
                found.append({**reservation, "Instances": matched})
        return {"Reservations": found}

    def brokers(p: Mapping[str, Any]) -> dict[str, Any] | None:
        return {"BrokerSummaries": list(snap.brokers)} if _only(p, ("MaxResults",)) else None

    def scan(p: Mapping[str, Any]) -> dict[str, Any] | None:
        if p.get("TableName") != snap.table or not _only(p, ("TableName", "ConsistentRead")):
            return None
        return {"Items": [dict(i) for i in snap.items.values()], "Count": len(snap.items)}

    def get_item(p: Mapping[str, Any]) -> dict[str, Any] | None:
        key = p.get("Key") or {}
        wanted = (key.get("OrgId") or {}).get("S") if isinstance(key, Mapping) and set(key) == {"OrgId"} else None
        if p.get("TableName") != snap.table or not isinstance(wanted, str) or \
                not _only(p, ("TableName", "Key", "ConsistentRead")):
            return None
        found = snap.items.get(wanted)
        return {} if found is None else {"Item": dict(found)}

    def users(p: Mapping[str, Any]) -> dict[str, Any] | None:
        if not _only(p, ("PathPrefix",)) or p.get("PathPrefix", "/") != "/":
            return None
        return {"Users": [dict(u) for u in snap.user_list], "IsTruncated": False}

    def access_keys(p: Mapping[str, Any]) -> dict[str, Any] | None:
        user = str(p.get("UserName", ""))
        if not _only(p, ("UserName",)) or user not in snap.users:
            return None  # no such user: IAM says so
        row = (snap.report or {}).get(user)
        if row is None:  # not in the report (made since, or no report): its own read, once
            return {"AccessKeyMetadata": [dict(k) for k in snap.credentials(iam, user)[1]], "IsTruncated": False}
        # The report holds no key ids: the entries are labelled as what they are.
        keys = [{"UserName": user, "AccessKeyId": f"(access key {n}, from the credential report)",
                 "Status": "Active" if row.get(f"access_key_{n}_active") == "true" else "Inactive"}
                for n in (1, 2) if row.get(f"access_key_{n}_last_rotated", "N/A") not in ("N/A", "")]
        return {"AccessKeyMetadata": keys, "IsTruncated": False}

    def buckets(p: Mapping[str, Any]) -> dict[str, Any] | None:
        return {"Buckets": [dict(b) for b in snap.buckets]} if not p else None

    def identity(p: Mapping[str, Any]) -> dict[str, Any] | None:
        return dict(snap.identity) if not p else None

    def describe_secret(p: Mapping[str, Any]) -> dict[str, Any] | None:
        secret_id = str(p.get("SecretId", ""))
        if snap.secrets is None or not secret_id.startswith(snap.secret_prefix) or not _only(p, ("SecretId",)):
            return None
        entry = snap.secrets.get(secret_id)
        if entry is None:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "ResourceNotFoundException",
                                         "Message": f"Secrets Manager can't find the specified secret ({secret_id})"}},
                              "DescribeSecret")
        return {**entry, "VersionIdsToStages": dict(entry.get("SecretVersionsToStages") or {})}

    return {
        "rds": {"describe_db_instances": db_instances},
        "ec2": {"describe_instances": instances},
        "mq": {"list_brokers": brokers},
        "dynamodb": {"scan": scan, "get_item": get_item},
        "iam": {"list_users": users, "list_access_keys": access_keys},
        "s3": {"list_buckets": buckets},
        "sts": {"get_caller_identity": identity},
        "secretsmanager": {"describe_secret": describe_secret},
    }


def _tags(items: object) -> dict[str, str]:
    return {str(t["Key"]): str(t["Value"]) for t in items or ()} if isinstance(items, list) else {}


# --- the fleet's step types: the real ones, with their reads answered from the snapshot ----------------


def _fleet_types(snapshot: Snapshot) -> dict[str, StepType]:
    from kensium_provision.steps import registry
    from kensium_provision.steps.client_record import ClientOrgId
    from kensium_provision.steps.iam import IamClientUser, IamSandboxClientUser
    from kensium_provision.steps.rabbitmq_vhost import RabbitMQVhost
    from kensium_provision.steps.s3 import S3ClientBucket, S3SandboxClientBucket

    class FleetIamUser(IamClientUser):
        def read(self, ctx: StepContext, user: str) -> IamUserFacts | None:
            return snapshot.user_facts(ctx, user)

    class FleetIamSandboxUser(IamSandboxClientUser):
        def read(self, ctx: StepContext, user: str) -> IamUserFacts | None:
            return snapshot.user_facts(ctx, user)

    class FleetBucket(S3ClientBucket):
        def read(self, ctx: StepContext, bucket: str) -> BucketFacts | None:
            return snapshot.bucket_facts(ctx, bucket)

    class FleetSandboxBucket(S3SandboxClientBucket):
        def read(self, ctx: StepContext, bucket: str) -> BucketFacts | None:
            return snapshot.bucket_facts(ctx, bucket)

    class FleetVhost(RabbitMQVhost):
        def look(self, ctx: StepContext, params: Mapping[str, Any], vhost: str, user: str) -> VhostFacts:
            found = None if params.get("base_url") else snapshot.vhost_facts(str(params.get("broker")), vhost, user)
            return found if found is not None else super().look(ctx, params, vhost, user)

    class FleetOrgId(ClientOrgId):
        # ClientOrgId deciding with `decide_owner` over the fleet's one read of records, `rms_*` users and
        # `fusion-rms-*` buckets instead of reading them again per client.
        def owner(self, ctx: StepContext, org_id: str, client_name: str) -> tuple[Any, str]:
            return snapshot.owner(org_id, client_name), snapshot.table

    mine: list[Any] = [FleetIamUser(), FleetIamSandboxUser(), FleetBucket(), FleetSandboxBucket(), FleetVhost(),
                       FleetOrgId()]
    return {**registry(), **{t.name: t for t in mine}}


# --- gathering ----------------------------------------------------------------------------------------


def _credential_report(iam: Any, journal: Journal, sleep: Callable[[float], None],
                       now: datetime) -> tuple[dict[str, dict[str, str]] | None, str]:
    """(rows by user name, or None; how the report was obtained)."""
    from kensium_provision.aws.wall import permit

    found = _read_report(iam)
    if found is not None and now - found[1] <= REPORT_MAX_AGE:
        return found[0], f"used IAM's report of {found[1].isoformat(timespec='seconds')}"
    operation = "iam:GenerateCredentialReport"
    try:
        with permit(operation) as reason:
            journal.record("wall.exception", operation=operation, reason=reason)
            deadline, pause = time.monotonic() + REPORT_BUDGET, 0.25
            while (aws_call(iam, "generate_credential_report") or {}).get("State") != "COMPLETE":
                if time.monotonic() > deadline:
                    return None, f"IAM did not finish a credential report within {REPORT_BUDGET:.0f} s: per-user reads"
                sleep(pause)
                pause = min(pause * 2, 4.0)
    except KprovError as exc:  # AccessDenied, typically: the identity may read but not refresh it
        return None, f"cannot refresh the credential report ({exc}): per-user reads"
    found = _read_report(iam)
    if found is None:
        return None, "IAM generated no credential report: per-user reads"
    return found[0], "refreshed the credential report"


def _read_report(iam: Any) -> tuple[dict[str, dict[str, str]], datetime] | None:
    got = aws_call(iam, "get_credential_report",
                   missing=("ReportNotPresent", "ReportExpired", "ReportInProgress"))
    if not got:
        return None
    content = got.get("Content") or b""
    text = content.decode("utf-8") if isinstance(content, bytes) else str(content)
    rows = {str(r["user"]): dict(r) for r in csv.DictReader(text.splitlines()) if r.get("user")}
    generated = got.get("GeneratedTime")
    if not isinstance(generated, datetime):
        generated = datetime.fromtimestamp(0, UTC)
    return rows, generated if generated.tzinfo else generated.replace(tzinfo=UTC)


def _uses(records: Iterable[ClientRecord], users: Iterable[str], buckets: Iterable[str],
          table: str) -> dict[str, tuple[OrgIdUse, ...]]:
    """`clients.find_org_id_uses`, from the snapshot, indexed by org id ignoring case."""
    from kensium_provision.records.clients import BUCKET_PREFIX, IAM_USER_PREFIX

    found = [OrgIdUse(r.org_id, "client record", record_name(r.org_id, table)) for r in records]
    found += [OrgIdUse(u[len(IAM_USER_PREFIX):], "IAM user", u) for u in users
              if u.casefold().startswith(IAM_USER_PREFIX)]
    found += [OrgIdUse(b[len(BUCKET_PREFIX):], "S3 bucket", b) for b in buckets if b.startswith(BUCKET_PREFIX)]
    index: dict[str, list[OrgIdUse]] = {}
    for use in found:
        if use.org_id:
            index.setdefault(use.org_id.casefold(), []).append(use)
    return {k: tuple(v) for k, v in index.items()}


def _tag_map(tagging: Any, types: list[str], **params: Any) -> dict[str, dict[str, str]]:
    found = read_pages(tagging, "get_resources", "ResourceTagMappingList", ResourceTypeFilters=types,
                       ResourcesPerPage=100, **params)
    return {str(r["ResourceARN"]): _tags(r.get("Tags")) for r in found}


def _broker_of(record: ClientRecord) -> str:
    return str(record.answers.get("broker") or record.broker or "")


def _bucket_of(record: ClientRecord) -> str:
    return str(record.answers.get("s3_bucket") or record.s3_bucket or "")


def _gather(request: FleetRequest, journal: Journal, pool: ThreadPoolExecutor,
            management_calls: list[int]) -> tuple[Snapshot, str]:
    """The snapshot (reads shared by every client, then the per-client ones) and how the credential report was got."""
    from kensium_provision.steps.s3 import read_exposure
    from kensium_provision.vault.backends import secret_name

    session = request.session
    who = session.identity()  # asked once per run already (the guards)
    iam, s3 = session.client("iam"), session.client("s3")
    tagging = session.client("resourcegroupstaggingapi")
    prefix = secret_name(request.env.name, "x", "x")[: -len("x/x")]  # kprov/<env>/
    table = table_of(request.settings)
    batched: dict[str, Future[Any]] = {
        # One paginated Scan: a page holds up to 1 MB, hundreds of records (none while there is no table).
        "items": pool.submit(scan_items, session.client("dynamodb"), table),
        "bucket_tags": pool.submit(_tag_map, tagging, ["s3:bucket"]),
        "db": pool.submit(read_pages, session.client("rds"), "describe_db_instances", "DBInstances"),
        "ec2": pool.submit(read_pages, session.client("ec2"), "describe_instances", "Reservations",
                           Filters=[{"Name": "instance-state-name", "Values": sorted(_EC2_STATES)}]),
        "brokers": pool.submit(_list_brokers, session.client("mq")),
        "users": pool.submit(read_pages, iam, "get_account_authorization_details", "UserDetailList", Filter=["User"]),
        "report": pool.submit(_credential_report, iam, journal, request.sleep, datetime.now(UTC)),
        "buckets": pool.submit(lambda: (aws_call(s3, "list_buckets") or {}).get("Buckets", [])),
    }
    if request.vault_backend == "secretsmanager":
        batched["secrets"] = pool.submit(read_pages, session.client("secretsmanager"), "list_secrets", "SecretList",
                                         Filters=[{"Key": "name", "Values": [prefix]}], IncludePlannedDeletion=True)
    got = {key: future.result() for key, future in batched.items()}
    items = {str((i.get("OrgId") or {}).get("S", "")): i for i in got["items"]}
    records = {r.org_id: r for r in (parse_item(i) for i in items.values())}
    checked = [r for r in records.values() if r.status not in (CLAIMED, UNREADABLE)]
    users = {str(u["UserName"]): u for u in got["users"]}
    bucket_names = {str(b["Name"]) for b in got["buckets"]}
    report, report_note = got["report"]

    snapshot = Snapshot(
        identity={"UserId": who.user_id, "Account": who.account, "Arn": who.arn},
        table=table, items=items, records=records,
        db_instances=tuple(got["db"]), reservations=tuple(got["ec2"]), brokers=tuple(got["brokers"]),
        users=users,
        user_list=tuple({k: u[k] for k in ("Path", "UserName", "UserId", "Arn", "CreateDate") if k in u}
                        for u in got["users"]),
        report=report,
        buckets=tuple(got["buckets"]), bucket_names=frozenset(bucket_names),
        bucket_tags={arn.rsplit(":", 1)[-1]: tags for arn, tags in got["bucket_tags"].items()},
        exposure={},
        secrets={str(s["Name"]): s for s in got["secrets"]} if "secrets" in got else None,
        secret_prefix=prefix,
        listings={},
        uses=_uses(records.values(), users, bucket_names, table),
    )
    brokers = sorted({_broker_of(r) for r in checked} - {""})
    listings = _broker_listings(_runtime(request, snapshot), brokers, pool, management_calls)
    # Per client, only what S3 has no batch read for: the bucket's Block Public Access and policy. They
    # are read on the pool while the clients are checked in order (a client's bucket step waits for its own).
    exposure = {b: pool.submit(read_exposure, s3, b) for b in sorted({_bucket_of(r) for r in checked} & bucket_names)}
    return replace(snapshot, exposure=exposure, listings=listings), report_note


def _runtime(request: FleetRequest, snapshot: Snapshot) -> Any:
    """A check-mode runtime whose clients (and password manager) answer reads from `snapshot`."""
    from kensium_provision.naming.rules import load_rules
    from kensium_provision.runtime import NullJournal, Runtime
    from kensium_provision.vault.backends import ManualVault, make_vault

    clients = _SnapshotClients(request.session, snapshot)
    operator = _operator(request)
    vault = make_vault(request.vault_backend, settings=request.vault_settings or {"backend": request.vault_backend},
                       client_factory=clients, operator=operator, env_name=request.env.name)
    if not isinstance(vault, ManualVault):  # `credential.vault_can_find` tells the manual one by its type
        vault = _FetchOnce(vault)
    return Runtime(mode=Mode.CHECK, run_id=request.run_id, aws=clients, operator=operator, vault=vault,
                   names=load_rules(), env_name=request.env.name, journal=NullJournal(), settings=request.settings)


class _FetchOnce:
    """A password manager that fetches each reference once per fleet check: every client on an RDS
    instance logs in with the same master password (with a SQL connection), every broker's admin too."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._fetched: dict[str, Any] = {}

    def find(self, name: str) -> str | None:
        return self._inner.find(name)  # type: ignore[no-any-return]

    def store(self, name: str, secret: Any, *, description: str, tags: Mapping[str, str]) -> str:
        return self._inner.store(name, secret, description=description, tags=tags)  # type: ignore[no-any-return]

    def fetch(self, reference: str) -> Any:
        with self._lock:
            if reference not in self._fetched:
                self._fetched[reference] = self._inner.fetch(reference)
            return self._fetched[reference]


def _list_brokers(mq: Any) -> list[Mapping[str, Any]]:
    found: list[Mapping[str, Any]] = []
    token = ""
    while True:  # no paginator in every botocore: one loop, as steps.rabbitmq_vhost does
        page = aws_call(mq, "list_brokers", MaxResults=100, **({"NextToken": token} if token else {})) or {}
        found += page.get("BrokerSummaries", [])
        token = str(page.get("NextToken") or "")
        if not token:
            return found


def _broker_listings(runtime: Any, brokers: Sequence[str], pool: ThreadPoolExecutor,
                     management_calls: list[int]) -> dict[str, BrokerListing | str]:
    """Per broker its management API's listings, read once per endpoint (the sandbox's brokers share one)."""
    from kensium_provision.steps.base import StepContext
    from kensium_provision.steps.rabbitmq_vhost import management_client

    ctx = StepContext(runtime, "hub-vhost", {})
    endpoints: dict[tuple[str, str], Any] = {}
    of_broker: dict[str, tuple[str, str] | str] = {}
    for broker in brokers:
        try:
            reference = runtime.vault.find(f"{broker}/admin")
            client = management_client(ctx, {"broker": broker, "admin_secret": reference or ""})
        except KprovError as exc:
            of_broker[broker] = f"cannot reach the management API of broker {broker}: {exc}"
            continue
        key = (client.base_url, client.username)
        endpoints.setdefault(key, client)
        of_broker[broker] = key

    def listing(client: Any) -> BrokerListing | str:
        try:
            vhosts = client.list_vhosts()
            users = client.list_users()
            permissions = client.list_permissions()
        except KprovError as exc:
            return f"cannot read the broker's management API: {exc}"
        finally:
            management_calls.append(3)
        by_user: dict[str, list[Mapping[str, object]]] = {}
        for p in permissions:
            by_user.setdefault(str(p.get("user")), []).append(p)
        return BrokerListing(vhosts=frozenset(str(v.get("name")) for v in vhosts),
                             users={str(u.get("name")): u for u in users},
                             permissions={k: tuple(v) for k, v in by_user.items()})

    read = {key: pool.submit(listing, client) for key, client in endpoints.items()}
    done = {key: future.result() for key, future in read.items()}
    return {broker: (done[key] if isinstance(key, tuple) else key) for broker, key in of_broker.items()}


def _operator(request: FleetRequest) -> Any:
    if request.operator is not None:
        return request.operator
    from kensium_provision.checklist.answers import Answers, AnswersOperator

    return AnswersOperator(Answers(), assume_yes=False)


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


def _input_owners(checklist: Checklist) -> dict[str, str]:
    """Each input id -> the first step that uses it (a finding about an answer belongs to that step)."""
    from kensium_provision.template import placeholders

    def names(value: object) -> set[str]:
        if isinstance(value, str):
            return {p.name for p in placeholders(value)}
        if isinstance(value, Mapping):
            return set().union(*(names(v) for v in value.values())) if value else set()
        if isinstance(value, list | tuple):
            return set().union(*(names(v) for v in value)) if value else set()
        return set()

    owners: dict[str, str] = {}
    for step in checklist.steps:
        used = names(step.params)
        if step.type == "flow.select":
            cases = step.params.get("cases")
            used |= {str(v) for v in cases.values()} if isinstance(cases, Mapping) else set()
        for name in used:
            owners.setdefault(name, step.id)
    return owners


def _check_client(record: ClientRecord, *, checklist: Checklist, types: Mapping[str, StepType], runtime: Any,
                  request: FleetRequest, owners: Mapping[str, str]) -> ClientResult:
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
    from kensium_provision.guards import check_account, check_not_root
    from kensium_provision.naming.rules import load_rules
    from kensium_provision.runtime import NullJournal

    start = time.perf_counter()
    session = request.session
    if getattr(session, "cache", None) is not None:
        # The snapshot is the fleet's read cache: a run-wide one would only deep-copy every answer.
        session.cache = None
    journal = request.journal if request.journal is not None else NullJournal()
    who = session.identity()
    check_not_root(who, request.env)
    check_account(who, request.env)
    journal.record("guard", guard="identity", outcome="ok", caller=who.arn, account=who.account)
    checklist = load_checklist(request.checklist or install_checklist(),
                               rule_ids=load_rules().ids)
    management_calls: list[int] = []
    results: list[ClientResult] = []
    not_checked: dict[str, str] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, request.workers), thread_name_prefix="kprov-fleet")
    try:
        snapshot, report_note = _gather(request, journal, pool, management_calls)
        journal.record("snapshot", records=len(snapshot.records), users=len(snapshot.users),
                       buckets=len(snapshot.buckets), brokers=sorted(snapshot.listings),
                       credential_report=report_note)
        runtime = _runtime(request, snapshot)
        types = _fleet_types(snapshot)
        owners = _input_owners(checklist)
        # The per-client runs compute over the snapshot in this one thread (deterministic, and JMESPath's
        # parser cache is not thread-safe) while the pool still reads the buckets.
        for org_id, record in sorted(snapshot.records.items()):
            if record.status == CLAIMED:
                not_checked[org_id] = f"install in progress: the org id is reserved by run {record.run_id or '?'}"
                continue
            result = _check_client(record, checklist=checklist, types=types, runtime=runtime, request=request,
                                   owners=owners)
            for f in result.findings:
                journal.record("finding", client=f.org_id, step=f.step, message=f.message, expected=f.expected,
                               actual=f.actual)
            results.append(result)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    journal.record("fleet.result", clients=len(results), with_findings=[r.org_id for r in results if not r.ok],
                   not_checked=sorted(not_checked))
    return FleetReport(clients=tuple(results), not_checked=not_checked, api_calls=session.counter.as_dict(),
                       management_api_calls=sum(management_calls), credential_report=report_note,
                       seconds=time.perf_counter() - start)
