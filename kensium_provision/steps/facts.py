"""Facts: what step types read about the account and the brokers, each through one small named reader.

A step type's probe and verify do not call AWS for what they judge: they ask the run's facts source
(`facts(ctx).iam_user(ctx, "rms_acme")`, `.bucket_policy(ctx, bucket)`, `.vhost(ctx, params, vhost,
user)`...) and judge the answer with their own pure functions (`evaluate_user`, `evaluate_bucket`,
`VhostFacts.differences`, `decide_owner`), as pyinfra's operations read a host's facts. So the
judgement exists once, and only where the data comes from differs:

- `LiveFacts`, every run's source: each reader is its step module's own reads (`iam.read_user`,
  `s3.read_bucket_tags`, `rabbitmq_vhost.read_vhost`...), through the run's session (counted, walled
  in plan and check, read-cached);
- the fleet check's snapshot (`fleet.facts.SnapshotFacts`): the same readers answered from reads
  batched once for every client, and whatever the snapshot does not hold asked live.

`read` is the reader of the generic step types (`aws.assert`, `aws.wait`, `flow.stop`, a manual
step's or a credential's aws.assert probe): one read call, all pages. Its answer is the source's own
(the snapshot's, for the reads that are one of its facts) or None: then `generic.call_read` asks AWS.

A Runtime's `facts` is its source; None (every run but the fleet check) means `LIVE`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from kensium_provision.records.clients import ClientRecord, OrgIdUse
    from kensium_provision.steps.base import StepContext
    from kensium_provision.steps.iam import IamUserFacts
    from kensium_provision.steps.rabbitmq_vhost import VhostFacts

__all__ = ["LIVE", "Facts", "LiveFacts", "facts"]


class Facts(Protocol):
    """Where step types read their facts from. Every reader is read-only and takes the step's context."""

    def read(self, ctx: StepContext, service: str, operation: str,
             params: Mapping[str, Any]) -> dict[str, Any] | None:
        """The answer to one generic read call (all pages), or None: not held here, ask AWS."""
        ...

    def caller(self, ctx: StepContext) -> Mapping[str, str]:
        """Who the run is (`sts:GetCallerIdentity`: Account, Arn, UserId)."""
        ...

    def iam_user(self, ctx: StepContext, name: str) -> IamUserFacts | None:
        """The IAM user's tags, login, policies, groups and active keys; None: no such user."""
        ...

    def bucket_exists(self, ctx: StepContext, name: str) -> bool: ...

    def bucket_tags(self, ctx: StepContext, name: str) -> Mapping[str, str]:
        """The bucket's tags ({} when it has none)."""
        ...

    def bucket_public_access(self, ctx: StepContext, name: str) -> Mapping[str, bool] | None:
        """The bucket's Block Public Access flags; None: no configuration (off)."""
        ...

    def bucket_policy(self, ctx: StepContext, name: str) -> str | None:
        """The bucket policy's text; None: no policy."""
        ...

    def account_public_access(self, ctx: StepContext) -> Mapping[str, bool] | None:
        """The account-level Block Public Access flags (they override every bucket's); None: none set."""
        ...

    def bucket_public_folder(self, ctx: StepContext, name: str) -> bool | None:
        """Whether the bucket has its `pub/` folder; None: not read here (no verdict)."""
        ...

    def vhost(self, ctx: StepContext, params: Mapping[str, Any], vhost: str, user: str) -> VhostFacts:
        """What the broker of a `rabbitmq.vhost` step (its params) holds for this vhost and user."""
        ...

    def brokers(self, ctx: StepContext) -> Sequence[Mapping[str, Any]]:
        """Every Amazon MQ broker of the region (`mq:ListBrokers` summaries)."""
        ...

    def db_instances(self, ctx: StepContext) -> Sequence[Mapping[str, Any]]:
        """Every RDS DB instance of the region (`rds:DescribeDBInstances`)."""
        ...

    def ec2_instances(self, ctx: StepContext, *, states: Collection[str], tags: Mapping[str, str],
                      zone: str = "") -> Sequence[Mapping[str, Any]]:
        """The reservations holding the instances in one of `states` that carry every tag of `tags`
        (and, with `zone`, run in that availability zone): `ec2:DescribeInstances` with those filters."""
        ...

    def client_record(self, ctx: StepContext, org_id: str, table: str) -> ClientRecord | None:
        """`org_id`'s client record, exactly that spelling (`records.clients.get_client`); None: none."""
        ...

    def org_id_uses(self, ctx: StepContext, org_id: str, table: str) -> Sequence[OrgIdUse]:
        """What takes `org_id`, ignoring case: client records, `rms_*` IAM users, `fusion-rms-*` buckets."""
        ...


class LiveFacts:
    """Every fact read live, by its step module's own reads through the run's session."""

    def read(self, ctx: StepContext, service: str, operation: str,
             params: Mapping[str, Any]) -> dict[str, Any] | None:
        return None  # `generic.call_read` asks AWS itself

    def caller(self, ctx: StepContext) -> Mapping[str, str]:
        from kensium_provision.aws.call import call

        found = call(ctx.client("sts"), "get_caller_identity")
        return {k: str(found[k]) for k in ("Account", "Arn", "UserId") if k in found}

    def iam_user(self, ctx: StepContext, name: str) -> IamUserFacts | None:
        from kensium_provision.steps.iam import read_user

        return read_user(ctx, name)

    def bucket_exists(self, ctx: StepContext, name: str) -> bool:
        from kensium_provision.steps.s3 import read_bucket_exists

        return read_bucket_exists(ctx.client("s3"), name)

    def bucket_tags(self, ctx: StepContext, name: str) -> Mapping[str, str]:
        from kensium_provision.steps.s3 import read_bucket_tags

        return read_bucket_tags(ctx.client("s3"), name)

    def bucket_public_access(self, ctx: StepContext, name: str) -> Mapping[str, bool] | None:
        from kensium_provision.steps.s3 import read_public_access

        return read_public_access(ctx.client("s3"), name)

    def bucket_policy(self, ctx: StepContext, name: str) -> str | None:
        from kensium_provision.steps.s3 import read_policy

        return read_policy(ctx.client("s3"), name)

    def account_public_access(self, ctx: StepContext) -> Mapping[str, bool] | None:
        from kensium_provision.steps.s3 import read_account_public_access

        return read_account_public_access(ctx)

    def bucket_public_folder(self, ctx: StepContext, name: str) -> bool | None:
        from kensium_provision.steps.s3 import read_public_folder

        return read_public_folder(ctx.client("s3"), name)

    def vhost(self, ctx: StepContext, params: Mapping[str, Any], vhost: str, user: str) -> VhostFacts:
        from kensium_provision.steps.rabbitmq_vhost import read_vhost

        return read_vhost(ctx, params, vhost, user)

    def brokers(self, ctx: StepContext) -> Sequence[Mapping[str, Any]]:
        from kensium_provision.steps.rabbitmq_vhost import read_brokers

        return read_brokers(ctx.client("mq"))

    def db_instances(self, ctx: StepContext) -> Sequence[Mapping[str, Any]]:
        from kensium_provision.steps.lookups import read_db_instances

        return read_db_instances(ctx)

    def ec2_instances(self, ctx: StepContext, *, states: Collection[str], tags: Mapping[str, str],
                      zone: str = "") -> Sequence[Mapping[str, Any]]:
        from kensium_provision.steps.lookups import read_ec2_instances

        return read_ec2_instances(ctx, states=states, tags=tags, zone=zone)

    def client_record(self, ctx: StepContext, org_id: str, table: str) -> ClientRecord | None:
        from kensium_provision.records.clients import get_client

        return get_client(ctx.client("dynamodb"), org_id, table)

    def org_id_uses(self, ctx: StepContext, org_id: str, table: str) -> Sequence[OrgIdUse]:
        from kensium_provision.records.clients import find_org_id_uses

        return [u for u in find_org_id_uses(ctx, table) if u.org_id.casefold() == org_id.casefold()]


LIVE: Facts = LiveFacts()


def facts(ctx: StepContext) -> Facts:
    """The run's facts source: its Runtime's `facts`, else live reads."""
    source = getattr(ctx.runtime, "facts", None)
    return LIVE if source is None else cast(Facts, source)
