"""The step types' facts answered from the fleet's snapshot, and the password manager answered from it.

`SnapshotFacts` satisfies `steps.facts.Facts`: the install checklist's step types ask it exactly what they
ask live (`iam_user`, `bucket_policy`, `vhost`, `client_record`, `org_id_uses`, `db_instances`...), and
judge the answers with their own pure functions, so the fleet check and `kprov check client` find the
same things. A fact the snapshot does not hold is read live (`steps.facts.LIVE`), so the fleet check is
never less thorough than `check client`:

- a user missing from the credential report (made since it was generated, or no report): its login
  profile and access keys, read once;
- a bucket the tagging API did not list (never tagged, or in another region): its tags;
- a bucket whose two per-bucket reads were not prefetched, a vhost given its own `base_url`, EC2
  instances in other states than pending or running, a records table other than the snapshot's.

The generic step types (`aws.assert`, `flow.stop`, a manual step's or a credential's probe) read one call
(`read`). Of those the snapshot answers the ones that ARE one of its facts, recognised by their exact
parameters: `rds:DescribeDBInstances` of everything or of one identifier, `ec2:DescribeInstances` by state
and tag values (`ec2_instances`), `mq:ListBrokers`, `iam:ListUsers` (the authorization details) and
`iam:ListAccessKeys` of one user (the credential report, whose rows hold the keys' states but not their
ids). Any other read (another filter, a wildcard, another service) goes to AWS as `check client` sends it.

`SnapshotVault` is the run's password manager with `find` answered from the Secrets Manager listing, and
each reference fetched once per fleet check: every client on an RDS instance shares its master password,
every broker its admin's.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kensium_provision.aws.call import call, pages
from kensium_provision.errors import KprovError, StepError
from kensium_provision.fleet.snapshot import HELD_STATES, BrokerListing, Snapshot
from kensium_provision.steps.facts import LIVE

if TYPE_CHECKING:
    from kensium_provision.fleet.rotation import KeyDate
    from kensium_provision.records.clients import ClientRecord, OrgIdUse
    from kensium_provision.runtime import Vault
    from kensium_provision.secret import Secret
    from kensium_provision.steps.base import StepContext
    from kensium_provision.steps.iam import IamUserFacts
    from kensium_provision.steps.rabbitmq_vhost import VhostFacts

__all__ = ["SnapshotFacts", "SnapshotVault", "step_reads"]

_WILDCARD = re.compile(r"[*?]")
# A JMESPath query that starts by keeping the elements of a top-level list whose field equals a raw string
# literal: `Users[?UserName=='rms_acme']`, the rest of the query applied to those only.
_EQUALITY_FILTER = re.compile(r"^([A-Za-z]\w*)\[\?([A-Za-z]\w*)\s*==\s*'([^'\\]*)'\]")


def step_reads(steps: Sequence[Any]) -> dict[str, tuple[tuple[str, str, str], ...]]:
    """Each step's generic reads as (service, operation, query template), wherever its parameters hold one
    (aws.assert's own, a manual probe, a flow.stop check, a credential's owner)."""
    def found(value: object) -> list[tuple[str, str, str]]:
        if isinstance(value, Mapping):
            here = [(str(value["service"]), str(value["operation"]), str(value["query"]))] \
                if {"service", "operation", "query"} <= set(value) else []
            return here + [r for v in value.values() for r in found(v)]
        if isinstance(value, list | tuple):
            return [r for v in value for r in found(v)]
        return []

    return {step.id: tuple(found(dict(step.params))) for step in steps}


def _tags(items: object) -> dict[str, str]:
    return {str(t["Key"]): str(t["Value"]) for t in items or ()} if isinstance(items, list) else {}


class SnapshotFacts:
    """`steps.facts.Facts` from a fleet's snapshot; what the snapshot does not hold is read live."""

    def __init__(self, snapshot: Snapshot, queries: Mapping[str, Sequence[tuple[str, str, str]]] | None = None) -> None:
        self.snapshot = snapshot
        # step id -> its generic reads' (service, operation, query template): see `_only`
        self._queries = dict(queries or {})
        self._user_by_name = {str(u["UserName"]): u for u in snapshot.user_list}
        self._account_lock = threading.Lock()
        self._account: tuple[Mapping[str, bool] | None] | None = None  # read once for the whole fleet
        self._lock = threading.Lock()
        # users the credential report does not cover, read on their own once: (console login?, access keys)
        self._credentials: dict[str, tuple[bool, tuple[Mapping[str, Any], ...]]] = {}

    def account_public_access(self, ctx: StepContext) -> Mapping[str, bool] | None:
        with self._account_lock:
            if self._account is None:
                self._account = (LIVE.account_public_access(ctx),)
            return self._account[0]

    # -- the generic read ------------------------------------------------------------------------------------

    def read(self, ctx: StepContext, service: str, operation: str,
             params: Mapping[str, Any]) -> dict[str, Any] | None:
        answer = _READS.get((service, operation))
        return None if answer is None else answer(self, ctx, params)

    # -- the named facts ------------------------------------------------------------------------------------

    def caller(self, ctx: StepContext) -> Mapping[str, str]:
        return dict(self.snapshot.identity)

    def iam_user(self, ctx: StepContext, name: str) -> IamUserFacts | None:
        from kensium_provision.steps.iam import user_facts

        detail = self.snapshot.users.get(name)
        if detail is None:
            return None  # the authorization details list every user: there is no such user
        row = (self.snapshot.report or {}).get(name)
        if row is None:
            login, keys = self._user_credentials(ctx, name)
            active = sum(1 for k in keys if k.get("Status") == "Active")
            row = {"password_enabled": str(login).lower(), "access_key_1_active": str(active >= 1).lower(),
                   "access_key_2_active": str(active >= 2).lower()}
        return user_facts(detail, row)

    def bucket_exists(self, ctx: StepContext, name: str) -> bool:
        return name in self.snapshot.bucket_names  # ListBuckets lists every bucket of the account

    def bucket_tags(self, ctx: StepContext, name: str) -> Mapping[str, str]:
        found = self.snapshot.bucket_tags.get(name)
        return LIVE.bucket_tags(ctx, name) if found is None else found

    def bucket_public_access(self, ctx: StepContext, name: str) -> Mapping[str, bool] | None:
        future = self.snapshot.exposure.get(name)
        return LIVE.bucket_public_access(ctx, name) if future is None else future.result()[0]

    def bucket_policy(self, ctx: StepContext, name: str) -> str | None:
        future = self.snapshot.exposure.get(name)
        return LIVE.bucket_policy(ctx, name) if future is None else future.result()[1]

    def bucket_public_folder(self, ctx: StepContext, name: str) -> bool | None:
        return None  # not read across the fleet (its 2 calls per client); `check client ORG` reads it

    def vhost(self, ctx: StepContext, params: Mapping[str, Any], vhost: str, user: str) -> VhostFacts:
        from kensium_provision.steps.rabbitmq_vhost import vhost_facts

        listing: BrokerListing | str | None = None
        if not params.get("base_url"):  # a broker of its own: not one the snapshot listed
            listing = self.snapshot.listings.get(str(params.get("broker")))
        if listing is None:
            return LIVE.vhost(ctx, params, vhost, user)
        if isinstance(listing, str):
            raise StepError(listing)
        return vhost_facts(vhost=vhost, user=user, vhost_exists=vhost in listing.vhosts,
                           user_record=listing.users.get(user), permissions=listing.permissions.get(user, ()))

    def brokers(self, ctx: StepContext) -> Sequence[Mapping[str, Any]]:
        return self.snapshot.brokers

    def db_instances(self, ctx: StepContext) -> Sequence[Mapping[str, Any]]:
        return self.snapshot.db_instances

    def ec2_instances(self, ctx: StepContext, *, states: Collection[str], tags: Mapping[str, str],
                      zone: str = "") -> Sequence[Mapping[str, Any]]:
        wanted = frozenset(states)
        if not wanted or not wanted <= HELD_STATES:
            return LIVE.ec2_instances(ctx, states=states, tags=tags, zone=zone)

        def selected(instance: Mapping[str, Any]) -> bool:
            held = _tags(instance.get("Tags"))
            return ((instance.get("State") or {}).get("Name") in wanted
                    and all(held.get(k) == v for k, v in tags.items())
                    and (not zone or (instance.get("Placement") or {}).get("AvailabilityZone") == zone))

        found = []
        for reservation in self.snapshot.reservations:
            matched = [i for i in reservation.get("Instances") or () if selected(i)]
            if matched:
                found.append({**reservation, "Instances": matched})
        return found

    def client_record(self, ctx: StepContext, org_id: str, table: str) -> ClientRecord | None:
        from kensium_provision.records.clients import UNREADABLE

        if table != self.snapshot.table:
            return LIVE.client_record(ctx, org_id, table)
        record = self.snapshot.by_key.get(org_id.lower())
        # As `clients.get_client`: `ACME`'s record is not `acme`'s.
        return record if record is not None and (record.org_id == org_id or record.status == UNREADABLE) else None

    def org_id_uses(self, ctx: StepContext, org_id: str, table: str) -> Sequence[OrgIdUse]:
        if table != self.snapshot.table:
            return LIVE.org_id_uses(ctx, org_id, table)
        return self.snapshot.uses.get(org_id.casefold(), ())

    def access_key_dates(self, ctx: StepContext, user: str) -> list[KeyDate]:
        """A user's active access keys and when each was made: from the credential report, else (a user made
        since) its own ListAccessKeys, the same read `iam_user` makes for it, once."""
        from kensium_provision.fleet.rotation import report_key_dates

        row = (self.snapshot.report or {}).get(user)
        if row is not None:
            return report_key_dates(row)
        if user not in self.snapshot.users:
            return []
        return [(str(k["AccessKeyId"]), k["CreateDate"]) for k in self._user_credentials(ctx, user)[1]
                if k.get("Status") == "Active" and k.get("CreateDate") is not None]

    # -- what the snapshot lacks, read once -------------------------------------------------------------

    def _user_credentials(self, ctx: StepContext, user: str) -> tuple[bool, tuple[Mapping[str, Any], ...]]:
        """A user the credential report does not cover: its console login and access keys, read once."""
        with self._lock:
            if user not in self._credentials:
                iam = ctx.client("iam")
                login = call(iam, "get_login_profile", UserName=user, missing=("NoSuchEntity",))
                keys = tuple(pages(iam, "list_access_keys", "AccessKeyMetadata", UserName=user))
                self._credentials[user] = (login is not None, keys)
            return self._credentials[user]

    # -- generic reads that are one of the facts ---------------------------------------------------------

    def _describe_db_instances(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any] | None:
        instances = self.snapshot.db_instances
        if not params:
            return {"DBInstances": [dict(d) for d in instances]}
        identifier = _one_db_instance(params)
        if identifier is None:
            return None
        found = [dict(d) for d in instances if d.get("DBInstanceIdentifier") == identifier]
        if not found and "DBInstanceIdentifier" in params:
            return None  # AWS answers DBInstanceNotFound: let it
        return {"DBInstances": found}

    def _describe_instances(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any] | None:
        selection = _instance_selection(params)
        if selection is None or not selection[0] <= HELD_STATES:
            return None
        states, tags = selection
        return {"Reservations": list(self.ec2_instances(ctx, states=states, tags=tags))}

    def _list_brokers(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any] | None:
        return {"BrokerSummaries": [dict(b) for b in self.snapshot.brokers]} if set(params) <= {"MaxResults"} else None

    def _list_users(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any] | None:
        if set(params) - {"PathPrefix"} or params.get("PathPrefix", "/") != "/":
            return None
        name = self._only(ctx, "iam", "ListUsers", "Users", "UserName")
        if name is not None:  # the query keeps only this user: the others cannot change its answer
            found = self._user_by_name.get(name)
            return {"Users": [dict(found)] if found is not None else [], "IsTruncated": False}
        return {"Users": [dict(u) for u in self.snapshot.user_list], "IsTruncated": False}

    def _only(self, ctx: StepContext, service: str, operation: str, key: str, field: str) -> str | None:
        """The one `field` value the current step's query of this read keeps of the answer's `key` list, when
        the query starts by filtering it so (`Users[?UserName=='rms_acme']...`): then an answer holding only
        those elements gives the query the same result. Without this, each client's manual step (POS's IAM
        user, `ListUsers`) filtered every user of the account, twice: quadratic in the fleet (5,000 clients,
        50 million comparisons). None when the step has no such query, or more than one read of it."""
        from kensium_provision.template import render

        reads = [q for s, o, q in self._queries.get(ctx.step_id, ()) if (s, o) == (service, operation)]
        if len(reads) != 1:
            return None
        try:
            query = render(reads[0], ctx.values)
        except KprovError:
            return None
        match = _EQUALITY_FILTER.match(query)
        return match.group(3) if match and match.group(1) == key and match.group(2) == field else None

    def _list_access_keys(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any] | None:
        user = str(params.get("UserName", ""))
        if set(params) != {"UserName"} or user not in self.snapshot.users:
            return None  # no such user: IAM says so
        row = (self.snapshot.report or {}).get(user)
        if row is None:  # not in the report (made since, or no report): its own read, once
            return {"AccessKeyMetadata": [dict(k) for k in self._user_credentials(ctx, user)[1]], "IsTruncated": False}
        # The report holds no key ids: the entries are labelled as what they are.
        keys = [{"UserName": user, "AccessKeyId": f"(access key {n}, from the credential report)",
                 "Status": "Active" if row.get(f"access_key_{n}_active") == "true" else "Inactive"}
                for n in (1, 2) if row.get(f"access_key_{n}_last_rotated", "N/A") not in ("N/A", "")]
        return {"AccessKeyMetadata": keys, "IsTruncated": False}


_Read = Callable[[SnapshotFacts, "StepContext", Mapping[str, Any]], "dict[str, Any] | None"]
_READS: Mapping[tuple[str, str], _Read] = {
    ("rds", "DescribeDBInstances"): SnapshotFacts._describe_db_instances,
    ("ec2", "DescribeInstances"): SnapshotFacts._describe_instances,
    ("mq", "ListBrokers"): SnapshotFacts._list_brokers,
    ("iam", "ListUsers"): SnapshotFacts._list_users,
    ("iam", "ListAccessKeys"): SnapshotFacts._list_access_keys,
}


def _one_db_instance(params: Mapping[str, Any]) -> str | None:
    """The identifier a DescribeDBInstances asks for, when it asks for exactly one (by identifier, or one
    `db-instance-id` filter of one lower-case value without wildcards); else None."""
    if set(params) == {"DBInstanceIdentifier"}:
        return str(params["DBInstanceIdentifier"])
    filters = params.get("Filters") if set(params) == {"Filters"} else None
    if not isinstance(filters, list) or len(filters) != 1 or filters[0].get("Name") != "db-instance-id":
        return None
    values = [str(v) for v in filters[0].get("Values") or ()]
    if len(values) != 1 or values[0] != values[0].lower() or _WILDCARD.search(values[0]):
        return None
    return values[0]


def _instance_selection(params: Mapping[str, Any]) -> tuple[frozenset[str], dict[str, str]] | None:
    """(states, tags) of a DescribeInstances that filters by exactly one `instance-state-name` filter and
    tag filters of one value each, without wildcards; else None."""
    filters = params.get("Filters") if set(params) == {"Filters"} else None
    if not isinstance(filters, list):
        return None
    states: frozenset[str] | None = None
    tags: dict[str, str] = {}
    for f in filters:
        name, values = str(f.get("Name", "")), [str(v) for v in f.get("Values") or ()]
        if not values or any(_WILDCARD.search(v) for v in values):
            return None
        if name == "instance-state-name" and states is None:
            states = frozenset(values)
        elif name.startswith("tag:") and len(values) == 1 and name[4:] not in tags:
            tags[name[4:]] = values[0]
        else:
            return None
    return None if states is None else (states, tags)


class SnapshotVault:
    """The run's password manager: `find` from the snapshot's Secrets Manager listing (when the backend is
    Secrets Manager), and each reference fetched once per fleet check."""

    def __init__(self, inner: Vault, snapshot: Snapshot, env_name: str) -> None:
        self._inner, self._snapshot, self._env = inner, snapshot, env_name
        self._lock = threading.Lock()
        self._fetched: dict[str, Secret] = {}

    def find(self, name: str) -> str | None:
        listed = self._snapshot.secrets
        if listed is None:
            return self._inner.find(name)
        from kensium_provision.vault.backends import SecretsManagerVault, entry_name, secret_name

        entry = listed.get(secret_name(self._env, *entry_name(name)))  # waits for this entry only
        if entry is None:
            return None  # the listing held every kprov/<env>/ entry: there is none
        stages = dict(entry.get("SecretVersionsToStages") or {})  # ListSecrets' name for DescribeSecret's
        return SecretsManagerVault.reference_of({**entry, "VersionIdsToStages": stages})

    def store(self, name: str, secret: Secret, *, description: str, tags: Mapping[str, str]) -> str:
        return self._inner.store(name, secret, description=description, tags=tags)

    def canonical(self, reference: str) -> str:
        """The run's vault's own form of a reference (`vault.backends.canonical_reference`)."""
        from kensium_provision.vault.backends import canonical_reference

        return str(canonical_reference(self._inner, reference))

    def fetch(self, reference: str) -> Secret:
        with self._lock:
            if reference not in self._fetched:
                self._fetched[reference] = self._inner.fetch(reference)
            return self._fetched[reference]
