"""The fleet's snapshot: what `kprov check client --all` reads once for every client, batched and concurrent.

`read_snapshot` makes the reads AWS can batch (paginated, on a bounded pool):

- `dynamodb:Scan` the client records (one table, hundreds of records a page); `resourcegroupstaggingapi:
  GetResources` the buckets' tags (100 named buckets a call, at once); `rds:DescribeDBInstances`;
  `ec2:DescribeInstances` (pending and running);
  `mq:ListBrokers`; `s3:ListBuckets`; `secretsmanager:ListSecrets` (the password manager's entries, not
  waited for: `SecretListing`);
- `iam:GetAccountAuthorizationDetails` (users with tags, attached and inline policies, groups) and the
  IAM credential report (console password, active access keys) instead of seven calls per user.

Then `read_broker_listings` reads, per broker endpoint, ONE `vhosts`, `users` and `permissions` listing of
the RabbitMQ management API, and `prefetch_exposure` starts, per client bucket, the two reads S3 has no
batch form of (`s3:GetPublicAccessBlock`, `s3:GetBucketPolicy`) on the pool while the clients are checked.

The credential report: one younger than four hours is used; otherwise the check asks IAM to refresh it
through the read-only wall's single exception (`aws.wall.permit`), journaled. A report IAM refuses leaves
`report` None (every user then falls back to its own two reads, see `fleet.facts`).

Nothing here judges anything: `fleet.facts.SnapshotFacts` answers the step types' facts from a Snapshot.
"""

from __future__ import annotations

import csv
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from kensium_provision.aws.call import call, pages
from kensium_provision.errors import KprovError
from kensium_provision.records.clients import (
    CLAIMED,
    RETIRED,
    UNREADABLE,
    ClientRecord,
    OrgIdUse,
    iter_items,
    parse_item,
    record_name,
    table_of,
)

if TYPE_CHECKING:
    from kensium_provision.fleet.model import FleetRequest
    from kensium_provision.runtime import Journal, Runtime

__all__ = [
    "HELD_STATES",
    "REPORT_BUDGET",
    "REPORT_MAX_AGE",
    "BrokerListing",
    "Exposure",
    "SecretListing",
    "Snapshot",
    "client_buckets",
    "prefetch_exposure",
    "read_broker_listings",
    "read_snapshot",
    "wide_client",
]

REPORT_MAX_AGE = timedelta(hours=4)  # IAM itself regenerates a credential report at most this often
REPORT_BUDGET = 60.0  # seconds to wait for IAM to finish a credential report
HELD_STATES = frozenset({"pending", "running"})  # the EC2 instances the snapshot holds; others are asked live

Exposure = tuple[Mapping[str, bool] | None, str | None]  # (Block Public Access, policy text) of one bucket


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerListing:
    """One management API's vhosts, users and permissions, each read once for every client on it."""

    vhosts: frozenset[str]
    users: Mapping[str, Mapping[str, object]]
    permissions: Mapping[str, tuple[Mapping[str, object], ...]]  # by user


class SecretListing:
    """The password manager's Secrets Manager entries (`kprov/<env>/...`), by name and by ARN, filled page by
    page on the pool while the clients are checked.

    ListSecrets' pages come one after another (each needs the previous page's token): 151 at 5,000 clients,
    over two minutes in the sandbox. A client's check needs only its own entries, so `get` waits until the
    entry it asks for is listed or the listing has ended (then there is none), not for the last page. A
    listing that failed raises its error to every later question it cannot answer."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._by_name: dict[str, Mapping[str, Any]] = {}
        self._by_arn: dict[str, Mapping[str, Any]] = {}
        self._waiting: set[str] = set()  # the names and ARNs asked for and not listed yet
        self._ended = False
        self._error: BaseException | None = None

    def fill(self, entries: Iterable[Mapping[str, Any]]) -> None:
        """Take `entries` (ListSecrets' pages, as `aws.call.pages` yields them) one by one, then end; run on
        the pool. A waiter is woken only by the entry it waits for, or by the end."""
        try:
            for entry in entries:
                name, arn = str(entry.get("Name")), str(entry.get("ARN") or "")
                with self._changed:
                    self._by_name[name] = entry
                    if arn:
                        self._by_arn[arn] = entry
                    if name in self._waiting or arn in self._waiting:
                        self._changed.notify_all()
        except BaseException as exc:
            self._end(exc)
            raise
        self._end(None)

    def _end(self, error: BaseException | None) -> None:
        with self._changed:
            self._ended, self._error = True, error
            self._changed.notify_all()

    def _wait(self, index: Mapping[str, Mapping[str, Any]], key: str) -> Mapping[str, Any] | None:
        with self._changed:
            if key not in index and not self._ended:
                self._waiting.add(key)
                self._changed.wait_for(lambda: key in index or self._ended)
                self._waiting.discard(key)
            if key in index:
                return index[key]
            if self._error is not None:
                raise self._error
            return None

    def get(self, name: str) -> Mapping[str, Any] | None:
        """The entry named `name`, once listed; None once the listing ended without it."""
        return self._wait(self._by_name, name)

    def by_arn(self, arn: str) -> Mapping[str, Any] | None:
        """The entry whose ARN is `arn`, once listed; None once the listing ended without it."""
        return self._wait(self._by_arn, arn)

    def failed(self) -> BaseException | None:
        """The listing's error, if it has failed by now (without waiting)."""
        with self._changed:
            return self._error

    def entries(self) -> list[Mapping[str, Any]]:
        """Every entry, once the listing has ended (its error raised, if it failed)."""
        with self._changed:
            self._changed.wait_for(lambda: self._ended)
            if self._error is not None:
                raise self._error
            return list(self._by_name.values())


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """Everything read once for the fleet; read-only once built (the pool's threads share it)."""

    identity: Mapping[str, str]  # as sts:GetCallerIdentity answers (Account, Arn, UserId)
    table: str  # the client records' DynamoDB table
    by_key: Mapping[str, ClientRecord]  # its items, parsed, by key (the org id lower-cased)
    records: Mapping[str, ClientRecord]  # the same by org id
    db_instances: tuple[Mapping[str, Any], ...]
    reservations: tuple[Mapping[str, Any], ...]  # holding the instances in HELD_STATES
    brokers: tuple[Mapping[str, Any], ...]  # mq:ListBrokers summaries
    users: Mapping[str, Mapping[str, Any]]  # UserDetail by user name
    user_list: tuple[Mapping[str, Any], ...]  # as ListUsers answers
    report: Mapping[str, Mapping[str, str]] | None  # credential-report rows by user; None: no report
    bucket_names: frozenset[str]
    bucket_tags: Mapping[str, Mapping[str, str]]  # bucket name -> tags (buckets the tagging API listed)
    secrets: SecretListing | None  # the Secrets Manager entries, listed while the clients are checked; None: not listed
    secret_prefix: str
    uses: Mapping[str, tuple[OrgIdUse, ...]]  # org id ignoring case -> what takes it
    listings: Mapping[str, BrokerListing | str]  # broker name -> listing, or why it could not be read
    exposure: Mapping[str, Future[Exposure]]  # bucket -> its two per-bucket reads, running on the pool

    def checked(self) -> list[ClientRecord]:
        """The records the check runs the install for (not an install in progress, not unreadable, not a
        removed client's kept record)."""
        return _checked(self.records.values())

    def client_brokers(self) -> list[str]:
        """The brokers the checked clients' hub vhosts are on."""
        return sorted({str(r.answers.get("broker") or r.broker or "") for r in self.checked()} - {""})

    def client_buckets(self) -> list[str]:
        """The checked clients' buckets that exist."""
        return client_buckets(self.records.values(), self.bucket_names)


def _checked(records: Iterable[ClientRecord]) -> list[ClientRecord]:
    return [r for r in records if r.status not in (CLAIMED, UNREADABLE, *RETIRED)]


def client_buckets(records: Iterable[ClientRecord], bucket_names: frozenset[str]) -> list[str]:
    """The buckets of the clients a check runs the install for, those that exist, in name order."""
    named = {str(r.answers.get("s3_bucket") or r.s3_bucket or "") for r in _checked(records)}
    return sorted(named & bucket_names)


# --- the batched reads ----------------------------------------------------------------------------------


def read_snapshot(request: FleetRequest, journal: Journal, pool: ThreadPoolExecutor,
                  exposure: Callable[[list[str]], Mapping[str, Future[Exposure]]] | None = None,
                  ) -> tuple[Snapshot, str]:
    """The batched reads, concurrently on `pool` (no broker listings yet); how the report was got.

    `exposure`, given client buckets, starts their per-bucket reads: called for each record as soon as its
    Scan page and ListBuckets are in, so those reads run alongside the Scan's later pages and the slower
    listings, not after them. ListSecrets'
    pages (each waits for the previous page's token) are not waited for: the snapshot's `SecretListing`
    fills while the clients are checked."""
    from kensium_provision.steps.rabbitmq_vhost import read_brokers
    from kensium_provision.vault.backends import secret_name

    session = request.session
    who = session.identity()  # asked once per run already (the guards)
    iam, s3 = session.client("iam"), session.client("s3")
    tagging = session.client("resourcegroupstaggingapi")
    prefix = secret_name(request.env.name, "x", "x")[: -len("x/x")]  # kprov/<env>/
    table = table_of(request.settings)
    secrets: SecretListing | None = None
    if request.vault_backend == "secretsmanager":  # first: its pages come one after another, the longest read
        secrets = SecretListing()
        # Oldest first (CreatedDate, ListSecrets' default order key): the shared entries, then the clients in
        # the order they were installed, the order `fleet.check` checks them in.
        pool.submit(secrets.fill, pages(session.client("secretsmanager"), "list_secrets", "SecretList",
                                        Filters=[{"Key": "name", "Values": [prefix]}], IncludePlannedDeletion=True,
                                        SortOrder="asc"))
    partition = who.arn.split(":")[1] or "aws"

    def buckets() -> tuple[frozenset[str], list[Future[dict[str, dict[str, str]]]]]:
        # The buckets' tags go on the pool from here, before any per-bucket read, which would queue ahead of them.
        names = frozenset(str(b["Name"]) for b in call(s3, "list_buckets").get("Buckets", []))
        return names, _bucket_tags(tagging, partition, names, pool)

    listed = pool.submit(buckets)  # before the records' Scan, which waits for it (`_records`)
    batched: dict[str, Future[Any]] = {
        "db": pool.submit(_listed, session.client("rds"), "describe_db_instances", "DBInstances"),
        "ec2": pool.submit(_listed, session.client("ec2"), "describe_instances", "Reservations",
                           Filters=[{"Name": "instance-state-name", "Values": sorted(HELD_STATES)}]),
        "brokers": pool.submit(read_brokers, session.client("mq")),
        "users": pool.submit(_listed, iam, "get_account_authorization_details", "UserDetailList", Filter=["User"]),
        "report": pool.submit(_credential_report, iam, journal, request.sleep, datetime.now(UTC)),
        # Last: the per-bucket reads it starts queue behind everything above.
        "records": pool.submit(_records, session.client("dynamodb"), table, listed, exposure),
    }
    bucket_names, tag_batches = listed.result()
    by_key, started = batched.pop("records").result()
    records = {r.org_id: r for r in by_key.values()}
    got = {key: future.result() for key, future in batched.items()}
    bucket_tags = {arn: tags for batch in tag_batches for arn, tags in batch.result().items()}
    users = {str(u["UserName"]): u for u in got["users"]}
    report, report_note = got["report"]
    snapshot = Snapshot(
        identity={"UserId": who.user_id, "Account": who.account, "Arn": who.arn},
        table=table, by_key=by_key, records=records,
        db_instances=tuple(got["db"]), reservations=tuple(got["ec2"]), brokers=tuple(got["brokers"]),
        users=users,
        user_list=tuple({k: u[k] for k in ("Path", "UserName", "UserId", "Arn", "CreateDate") if k in u}
                        for u in got["users"]),
        report=report,
        bucket_names=bucket_names,
        bucket_tags={arn.rsplit(":", 1)[-1]: tags for arn, tags in bucket_tags.items()},
        secrets=secrets,
        secret_prefix=prefix,
        uses=_uses(records.values(), users, bucket_names, table),
        listings={}, exposure=started,
    )
    return snapshot, report_note


def _records(dynamodb: Any, table: str, listed: Future[tuple[frozenset[str], Any]],
             exposure: Callable[[list[str]], Mapping[str, Future[Exposure]]] | None,
             ) -> tuple[dict[str, ClientRecord], dict[str, Future[Exposure]]]:
    """The client records by item key, from one paginated Scan (a page holds up to 1 MB, hundreds of records;
    none while there is no table), and their buckets' reads, each started as soon as its record's page is
    in, not after the last page (10 at 5,000 clients)."""
    by_key: dict[str, ClientRecord] = {}
    started: dict[str, Future[Exposure]] = {}
    for item in iter_items(dynamodb, table):
        record = by_key[str((item.get("OrgId") or {}).get("S", ""))] = parse_item(item)
        if exposure is not None:
            started.update(exposure(client_buckets([record], listed.result()[0])))
    return by_key, started


def _listed(client: Any, method: str, key: str, **params: Any) -> list[Any]:
    return list(pages(client, method, key, **params))


def _tags(items: object) -> dict[str, str]:
    return {str(t["Key"]): str(t["Value"]) for t in items or ()} if isinstance(items, list) else {}


# GetResources' ResourceARNList holds 1 to 100 ARNs, and takes no type filter and no pagination (botocore's
# model of the API, from AWS's: resourcegroupstaggingapi GetResources, ResourceARNList).
_ARNS_PER_CALL = 100


def _bucket_tags(tagging: Any, partition: str, buckets: Iterable[str],
                 pool: ThreadPoolExecutor) -> list[Future[dict[str, dict[str, str]]]]:
    """The buckets' tags, 100 buckets a call, the calls at once on `pool`: as many calls as the paginated
    listing of every tagged bucket (ResourceTypeFilters s3:bucket) made, but that one's pages come one after
    another (51 at 5,000 clients: the snapshot's longest chain after ListSecrets). A bucket of another region
    is not in the answer (the tagging API is regional), nor one without tags: its tags are read live."""
    names = sorted(buckets)
    return [pool.submit(_tags_of, tagging, [f"arn:{partition}:s3:::{b}" for b in names[n:n + _ARNS_PER_CALL]])
            for n in range(0, len(names), _ARNS_PER_CALL)]


def _tags_of(tagging: Any, arns: list[str]) -> dict[str, dict[str, str]]:
    found = call(tagging, "get_resources", ResourceARNList=arns).get("ResourceTagMappingList") or []
    return {str(r["ResourceARN"]): _tags(r.get("Tags")) for r in found}


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


# --- the credential report --------------------------------------------------------------------------------


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
            while call(iam, "generate_credential_report").get("State") != "COMPLETE":
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
    got = call(iam, "get_credential_report", missing=("ReportNotPresent", "ReportExpired", "ReportInProgress"))
    if not got:
        return None
    content = got.get("Content") or b""
    text = content.decode("utf-8") if isinstance(content, bytes) else str(content)
    rows = {str(r["user"]): dict(r) for r in csv.DictReader(text.splitlines()) if r.get("user")}
    generated = got.get("GeneratedTime")
    if not isinstance(generated, datetime):
        generated = datetime.fromtimestamp(0, UTC)
    return rows, generated if generated.tzinfo else generated.replace(tzinfo=UTC)


# --- per broker, per bucket ---------------------------------------------------------------------------------


def read_broker_listings(runtime: Runtime, brokers: Sequence[str],
                         management_calls: list[int]) -> dict[str, BrokerListing | str]:
    """Per broker its management API's listings, read once per endpoint (the sandbox's brokers share one),
    the endpoints at once.

    `runtime` is the fleet's (its password manager finds each broker's admin); a broker whose API cannot
    be reached gets the reason instead, which each of its clients' vhost step reports. On threads of their
    own, not the fleet's pool: there they queued behind every per-bucket read (10,000 at 5,000 clients),
    and no client can be checked before its broker's listing is in."""
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

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(endpoints))), thread_name_prefix="kprov-broker") as own:
        read = {key: own.submit(listing, client) for key, client in endpoints.items()}
        done = {key: future.result() for key, future in read.items()}
    return {broker: (done[key] if isinstance(key, tuple) else key) for broker, key in of_broker.items()}


def wide_client(session: Any, service: str, connections: int) -> Any:
    """A client of `session` whose connection pool holds `connections` (`AwsSession.client`), for that many
    threads at once."""
    return session.client(service, connections=connections)


def prefetch_exposure(s3: Any, buckets: Iterable[str], pool: ThreadPoolExecutor) -> dict[str, Future[Exposure]]:
    """Start each bucket's Block Public Access and policy reads on the pool (a client's bucket step waits
    for its own, while the clients are checked in order)."""
    from kensium_provision.steps.s3 import read_exposure

    return {b: pool.submit(read_exposure, s3, b) for b in buckets}
