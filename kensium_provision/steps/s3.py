"""S3 step types of a client install: verify the org's bucket that POS's AWS provisioning creates.

`s3.client-bucket` reads only (domain.md section 3.7): the bucket, its billing tag, Block Public
Access off, and a bucket policy that makes `pub/*` world-readable and NOTHING else public, and gives
the org's IAM user object get/put/delete and list. `s3.sandbox-client-bucket` is the sandbox's
stand-in for POS, refused anywhere else.

What is right is one pure function, `evaluate_bucket`, over the bucket's facts (`read_bucket`), read
through the run's facts source (`steps.facts`: `bucket_exists`, `bucket_tags`, `bucket_public_access`,
`bucket_policy`, and `caller` for the account): live, with per-bucket reads; in the fleet check, from
batched reads plus `read_exposure`, the two per-bucket reads S3 has no batch form of.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from kensium_provision.aws.call import call
from kensium_provision.errors import InputError, StepError
from kensium_provision.steps.base import (
    CheckContext,
    Created,
    Difference,
    Param,
    Probe,
    StepContext,
    UndoCheck,
    record_created,
)
from kensium_provision.steps.facts import facts
from kensium_provision.steps.iam import SandboxOnly, billing_tag_keys, billing_tag_problem, require_sandbox

__all__ = [
    "BucketFacts",
    "S3ClientBucket",
    "S3SandboxClientBucket",
    "bucket_policy",
    "caller_partition",
    "evaluate_bucket",
    "parse_policy",
    "policy_problems",
    "read_bucket",
    "read_bucket_exists",
    "read_bucket_tags",
    "read_exposure",
    "read_policy",
    "read_public_access",
    "read_public_folder",
    "wildcard_match",
]

PUBLIC_FOLDER = "pub/"  # N16
_PAB_FLAGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
_OBJECT_ACTIONS = ("s3:GetObject", "s3:PutObject", "s3:DeleteObject")
_BUCKET_ACTIONS = ("s3:ListBucket",)


def _listed(value: object) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _principals(statement: Mapping[str, Any]) -> list[str]:
    principal = statement.get("Principal")
    if principal == "*":
        return ["*"]
    if isinstance(principal, Mapping):
        return [p for key, value in principal.items() for p in _listed(value) if key in ("AWS", "*")] + \
            ["*" for key in principal if key == "*"]
    return _listed(principal)


def wildcard_match(pattern: str, value: str) -> bool:
    """IAM's wildcards (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html
    #reference_policies_elements_resource_wildcards): `*` any run of characters, `?` any one; nothing else is
    special (fnmatch's `[...]` classes are not IAM's). No regex: a fleet check matches some 15,000 distinct
    resource patterns once each, and compiling them was a tenth of its evaluation."""
    if "*" not in pattern and "?" not in pattern:
        return pattern == value
    p = v = 0
    star, mark = -1, 0  # the last `*` seen, and where in `value` its run ends so far
    while v < len(value):
        if p < len(pattern) and pattern[p] == "*":
            star, mark, p = p, v, p + 1
        elif p < len(pattern) and pattern[p] in ("?", value[v]):
            p, v = p + 1, v + 1
        elif star >= 0:  # the run of the last `*` takes one more character
            mark += 1
            p, v = star + 1, mark
        else:
            return False
    return pattern[p:].strip("*") == ""


def _covers(patterns: Sequence[str], wanted: str) -> bool:
    # IAM matches actions ignoring case and resources exactly; both allow * and ? wildcards.
    return any(wildcard_match(p.lower(), wanted.lower()) for p in patterns)


def _grants(statements: Sequence[Mapping[str, Any]], principal: str, action: str, resource: str) -> bool:
    for s in statements:
        if s.get("Effect") != "Allow" or "NotAction" in s or "NotResource" in s or "NotPrincipal" in s:
            continue
        if principal in _principals(s) and _covers(_listed(s.get("Action")), action) and \
                any(wildcard_match(r, resource) for r in _listed(s.get("Resource"))):
            return True
    return False


def bucket_policy(bucket: str, user_arn: str, partition: str = "aws") -> dict[str, object]:
    """The policy POS's provisioning gives a bucket (domain.md 3.7); the sandbox's stand-in writes it."""
    arn = f"arn:{partition}:s3:::{bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "PublicReadPub", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
             "Resource": f"{arn}/{PUBLIC_FOLDER}*"},
            {"Sid": "OrgUserObjects", "Effect": "Allow", "Principal": {"AWS": user_arn},
             "Action": list(_OBJECT_ACTIONS), "Resource": f"{arn}/*"},
            {"Sid": "OrgUserList", "Effect": "Allow", "Principal": {"AWS": user_arn},
             "Action": list(_BUCKET_ACTIONS), "Resource": arn},
        ],
    }


def policy_problems(policy: Mapping[str, Any] | None, bucket: str, user_arn: str,
                    partition: str = "aws") -> list[Difference]:
    """What is wrong with a bucket policy: public beyond `pub/*`, or the org user's access missing."""
    if policy is None:
        return [Difference("bucket policy", None, "public read of pub/*, and the org user's object access")]
    statements = policy.get("Statement")
    statements = [statements] if isinstance(statements, Mapping) else list(statements or [])
    arn = f"arn:{partition}:s3:::{bucket}"
    public_pub = f"{arn}/{PUBLIC_FOLDER}*"
    problems: list[Difference] = []
    beyond: list[str] = []
    for index, s in enumerate(statements):
        if s.get("Effect") != "Allow":
            continue  # a Deny only takes away
        label = str(s.get("Sid") or f"statement {index + 1}")
        if "NotPrincipal" in s:
            beyond.append(f"{label}: Allow with NotPrincipal (public to everyone else)")
            continue
        if "*" not in _principals(s):
            continue
        if "NotAction" in s or "NotResource" in s or s.get("Condition"):
            beyond.append(f"{label}: public with NotAction/NotResource/Condition")
            continue
        wrong_actions = [a for a in _listed(s.get("Action")) if a.lower() != "s3:getobject"]
        wrong_resources = [r for r in _listed(s.get("Resource")) if r != public_pub]
        if wrong_actions or wrong_resources:
            beyond.append(f"{label}: public {', '.join(_listed(s.get('Action')))} on "
                          f"{', '.join(_listed(s.get('Resource')))}")
    if not _grants(statements, "*", "s3:GetObject", f"{arn}/{PUBLIC_FOLDER}x"):
        problems.append(Difference("public read of pub/*", "missing", f"s3:GetObject on {public_pub} for everyone"))
    if beyond:
        problems.append(Difference("public access beyond pub/*", beyond, []))
    user = user_arn.rsplit("/", 1)[-1]
    missing = [a for a in _OBJECT_ACTIONS if not _grants(statements, user_arn, a, f"{arn}/x")]
    missing += [a for a in _BUCKET_ACTIONS if not _grants(statements, user_arn, a, arn)]
    if missing:
        problems.append(Difference(f"{user}'s access", f"missing {', '.join(missing)}",
                                   f"{', '.join(_OBJECT_ACTIONS)} on {arn}/*, s3:ListBucket on {arn}"))
    return problems


@dataclass(frozen=True, slots=True, kw_only=True)
class BucketFacts:
    """What S3 holds for the org's bucket."""

    tags: Mapping[str, str]
    block_public_access: Mapping[str, bool] | None  # None: no configuration (off)
    policy: Mapping[str, Any] | None
    account_block_public_access: Mapping[str, bool] | None = None  # the account's: it overrides the bucket's
    public_folder: bool | None = None  # whether `pub/` holds anything (its folder object at least); None: not read


def caller_partition(ctx: StepContext, account_id: str = "") -> tuple[str, str]:
    """(account id, partition): `account_id` when given, else the caller's own account."""
    found = facts(ctx).caller(ctx)
    partition = str(found.get("Arn", "arn:aws:")).split(":")[1] or "aws"
    return str(account_id or found.get("Account", "")), partition


def _identity(ctx: StepContext, params: Mapping[str, Any]) -> tuple[str, str]:
    return caller_partition(ctx, str(params.get("account_id") or ""))


def parse_policy(bucket: str, text: str | None) -> Mapping[str, Any] | None:
    """A bucket policy document from GetBucketPolicy's text (None: no policy)."""
    if text is None:
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        raise StepError(f"the bucket policy of {bucket} is not JSON") from None
    if not isinstance(parsed, Mapping):
        raise StepError(f"the bucket policy of {bucket} is not a JSON object")
    return parsed


# The live bucket facts: one S3 read each (`s3` is the run's client).


def read_public_folder(s3: Any, bucket: str) -> bool:
    """Whether the bucket has the `pub/` folder: POS makes it (an empty `pub/` object, as the console's "Create
    folder" does), and the media gallery lives under it. One ListObjectsV2 of one key under the prefix."""
    # One key is enough: the paginator stops after it (a gallery may hold millions).
    found = call(s3, "list_objects_v2", Bucket=bucket, Prefix=PUBLIC_FOLDER,
                 PaginationConfig={"MaxItems": 1, "PageSize": 1})
    return bool(found.get("Contents"))


def read_bucket_exists(s3: Any, bucket: str) -> bool:
    """Whether the bucket exists in this account. A 403 is no IAM question first: bucket names are global,
    and HeadBucket answers 403 for a name another account owns (POS then provisions another name)."""
    from kensium_provision.errors import AwsError

    try:
        return call(s3, "head_bucket", Bucket=bucket, missing=("404", "NoSuchBucket", "NotFound")) is not None
    except AwsError as exc:
        if exc.code not in ("403", "AccessDenied", "Forbidden"):
            raise
        raise StepError(f"bucket {bucket}: S3 answers 403 Forbidden: is the name owned elsewhere (another AWS "
                        "account)? Bucket names are global",
                        hint="if POS had to use another name, answer that one as the bucket; if the bucket is "
                             "this account's, your IAM identity lacks s3:ListBucket on it") from None


def read_account_public_access(ctx: StepContext) -> dict[str, bool] | None:
    """The account-level Block Public Access (s3control GetPublicAccessBlock), which overrides every bucket's
    own; None: no configuration. https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html"""
    account = str(facts(ctx).caller(ctx).get("Account", ""))
    block = call(ctx.client("s3control"), "get_public_access_block", AccountId=account,
                 missing=("NoSuchPublicAccessBlockConfiguration",))
    return dict(block["PublicAccessBlockConfiguration"]) if block else None


def read_bucket_tags(s3: Any, bucket: str) -> dict[str, str]:
    tagging = call(s3, "get_bucket_tagging", Bucket=bucket, missing=("NoSuchTagSet",)) or {}
    return {str(t["Key"]): str(t["Value"]) for t in tagging.get("TagSet", ())}


def read_public_access(s3: Any, bucket: str) -> dict[str, bool] | None:
    block = call(s3, "get_public_access_block", Bucket=bucket, missing=("NoSuchPublicAccessBlockConfiguration",))
    return dict(block["PublicAccessBlockConfiguration"]) if block else None


def read_policy(s3: Any, bucket: str) -> str | None:
    policy = call(s3, "get_bucket_policy", Bucket=bucket, missing=("NoSuchBucketPolicy",))
    return str(policy["Policy"]) if policy else None


def read_exposure(s3: Any, bucket: str) -> tuple[Mapping[str, bool] | None, str | None]:
    """(Block Public Access configuration, bucket policy text): the two per-bucket reads S3 has no batch for."""
    return read_public_access(s3, bucket), read_policy(s3, bucket)


def read_bucket(ctx: StepContext, bucket: str) -> BucketFacts | None:
    """One bucket's facts from the run's facts source (live: four calls); None when there is no such bucket."""
    source = facts(ctx)
    if not source.bucket_exists(ctx, bucket):
        return None
    return BucketFacts(tags=source.bucket_tags(ctx, bucket),
                       block_public_access=source.bucket_public_access(ctx, bucket),
                       policy=parse_policy(bucket, source.bucket_policy(ctx, bucket)),
                       account_block_public_access=source.account_public_access(ctx),
                       public_folder=source.bucket_public_folder(ctx, bucket))


def evaluate_bucket(found: BucketFacts, *, bucket: str, org_id: str, user_arn: str, partition: str,
                    tag_keys: Sequence[str]) -> list[Difference]:
    """What is wrong with the org's bucket, as POS provisions it (pure: the same for live and snapshot facts)."""
    problems: list[Difference] = []
    tag = billing_tag_problem(found.tags, tag_keys, org_id)
    if tag is not None:
        problems.append(tag)
    blocked = [f for f in _PAB_FLAGS if (found.block_public_access or {}).get(f)]
    if blocked:
        problems.append(Difference("Block Public Access", blocked, "all off (the bucket policy limits exposure)"))
    account = [f for f in _PAB_FLAGS if (found.account_block_public_access or {}).get(f)]
    if account:  # the account's settings win over the bucket's: pub/ would not be readable
        problems.append(Difference("account-level Block Public Access", account,
                                   "all off (it overrides the bucket's own, so pub/ would not be public)"))
    problems += policy_problems(found.policy, bucket, user_arn, partition)
    if found.public_folder is False:
        problems.append(Difference("public folder", "missing", f"{PUBLIC_FOLDER} (the media gallery POS serves)"))
    return problems


class S3ClientBucket:
    """Verify the org's S3 bucket `fusion-rms-<org_id>`, which POS's AWS provisioning creates.

    Right means: it exists; the billing tag `OrgId=<org_id>` (`OrgID` accepted too, N17); Block
    Public Access off (all four flags false, or no configuration) because the bucket policy is what
    limits exposure; and that policy allows everyone `s3:GetObject` on `arn:aws:s3:::<bucket>/pub/*`
    and NOTHING else publicly, and gives the org's IAM user (`arn:aws:iam::<account>:user/rms_<org_id>`)
    get/put/delete on the objects and list on the bucket. kprov never changes it: act says what to do.

    Example: `bucket: "fusion-rms-{{ org_id }}"`, `org_id: "{{ org_id }}"`, `user: "rms_{{ org_id }}"`.
    """

    name: ClassVar[str] = "s3.client-bucket"
    summary: ClassVar[str] = "Verify the org's S3 bucket made by POS: tagged, pub/* public and nothing else."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="bucket", doc="fusion-rms-<org_id>, or the name POS used when that one was taken."),
        Param(name="org_id", rule="org-id", doc="The organization id (the billing tag's value)."),
        Param(name="user", rule="iam-user", doc="The org's IAM user, rms_<org_id>."),
        Param(name="account_id", required=False, default="", doc="The user's account (default: the caller's)."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("bucket", "arn")

    def check_params(self, params: Mapping[str, Any], ctx: CheckContext) -> list[str]:
        """The bucket is fusion-rms-<org_id> or a name POS may use instead: refused before the first change."""
        if not ctx.known(params, "bucket", "org_id"):
            return []
        bucket, org_id = str(params["bucket"]), str(params["org_id"])
        names = ctx.names
        if names.check("s3-bucket", bucket, {"org_id": org_id}) and names.check("s3-bucket-alternative", bucket, {}):
            problems = names.check("s3-bucket", bucket, {"org_id": org_id})
            example = names.example("s3-bucket", {"org_id": org_id})
            return [f"bucket \"{bucket}\" " + "; ".join(problems) + f" (for example {example})"]
        return []

    def _check_name(self, ctx: StepContext, params: Mapping[str, Any]) -> str:
        problems = self.check_params(params, CheckContext(ctx.runtime.names))
        if problems:
            raise InputError(f"step {ctx.step_id}: {problems[0]}")
        return str(params["bucket"])

    def _differences(self, ctx: StepContext, params: Mapping[str, Any], found: BucketFacts) -> list[Difference]:
        account, partition = _identity(ctx, params)
        return evaluate_bucket(found, bucket=str(params["bucket"]), org_id=str(params["org_id"]),
                               user_arn=f"arn:{partition}:iam::{account}:user/{params['user']}",
                               partition=partition, tag_keys=billing_tag_keys(ctx))

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        bucket = self._check_name(ctx, params)
        found = read_bucket(ctx, bucket)
        desired = {"bucket": bucket, f"tag {billing_tag_keys(ctx)[0]}": params["org_id"], "block_public_access": "off",
                   "public": f"s3:GetObject on {PUBLIC_FOLDER}* only", "org_user": "get/put/delete objects, list"}
        if found is None:
            return Probe(done=False, desired=desired,
                         note=f"bucket {bucket} does not exist (POS's AWS provisioning creates it)")
        differences = self._differences(ctx, params, found)
        current = {"bucket": bucket, "tags": dict(found.tags), "policy": "present" if found.policy else "none"}
        if differences:
            return Probe(done=False, note="; ".join(map(str, differences)), current=current, desired=desired,
                         differences=tuple(differences))
        return Probe(done=True, note=f"bucket {bucket} is as POS provisions it", current=current,
                     outputs={"bucket": bucket, "arn": f"arn:{_identity(ctx, params)[1]}:s3:::{bucket}"})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        bucket, org_id = str(params["bucket"]), str(params["org_id"])
        if not probe.current:
            raise StepError(f"bucket {bucket} does not exist: kprov does not create it, POS does",
                            hint=f"in POS, run AWS provisioning for {org_id}; if the name was taken, POS used "
                                 "another name: answer it as the bucket, then run this again")
        raise StepError(f"bucket {bucket} is not as POS provisions it: {probe.note}",
                        hint=f"run AWS provisioning for {org_id} in POS again, or fix it in the S3 console "
                             "(tag, Block Public Access, bucket policy); never make more than pub/* public")

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        found = read_bucket(ctx, self._check_name(ctx, params))
        if found is None:
            return (Difference("bucket", None, params["bucket"]),)
        return tuple(self._differences(ctx, params, found))


class S3SandboxClientBucket(SandboxOnly):
    """SANDBOX ONLY: stand in for POS's AWS provisioning of the org's bucket.

    In the sandbox nobody runs POS, so this makes `fusion-rms-<org_id>` as POS would: tag `OrgId`,
    Block Public Access removed, the documented bucket policy (public `pub/*`, the org user's object
    access), and the `pub/` folder. Refused (exit 3) in any environment but the sandbox.

    Example: `bucket: "fusion-rms-{{ org_id }}"`, `org_id: "{{ org_id }}"`, `user: "rms_{{ org_id }}"`.
    """

    name: ClassVar[str] = "s3.sandbox-client-bucket"
    summary: ClassVar[str] = "Sandbox only: make the org's S3 bucket and policy as POS would."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="bucket", rule="s3-bucket", doc="fusion-rms-<org_id>."),
        Param(name="org_id", rule="org-id", doc="The organization id."),
        Param(name="user", rule="iam-user", doc="The org's IAM user, rms_<org_id> (must exist: the policy names it)."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("bucket",)

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        require_sandbox(ctx, self.name)
        bucket = str(params["bucket"])
        found = read_bucket(ctx, bucket)
        # A make that stopped midway (its policy or its pub/ folder missing) is made again, not taken as done.
        if found is None or found.policy is None or found.public_folder is False:
            return Probe(done=False, note=f"sandbox: bucket {bucket} is not provisioned yet",
                         current={"bucket": bucket} if found else {},
                         desired={"bucket": bucket, "made_by": "the sandbox's stand-in for POS"})
        return Probe(done=True, note=f"sandbox: bucket {bucket} exists", outputs={"bucket": bucket})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        require_sandbox(ctx, self.name)
        s3 = ctx.client("s3")
        bucket, org_id = str(params["bucket"]), str(params["org_id"])
        ctx.progress(f"sandbox stand-in for POS: creating bucket {bucket}")
        if read_bucket(ctx, bucket) is None:
            region = s3.meta.region_name
            extra: dict[str, Any] = {} if region == "us-east-1" else \
                {"CreateBucketConfiguration": {"LocationConstraint": region}}
            call(s3, "create_bucket", Bucket=bucket, **extra)
            record_created(ctx, "bucket", bucket)
        call(s3, "put_bucket_tagging", Bucket=bucket, Tagging={"TagSet": [{"Key": "OrgId", "Value": org_id}]})
        # New buckets block public access; it must go before a public policy is accepted (as POS does).
        call(s3, "delete_public_access_block", Bucket=bucket)
        account, partition = _identity(ctx, {})
        policy = bucket_policy(bucket, f"arn:{partition}:iam::{account}:user/{params['user']}", partition)
        call(s3, "put_bucket_policy", Bucket=bucket, Policy=json.dumps(policy))
        call(s3, "put_object", Bucket=bucket, Key=PUBLIC_FOLDER, Body=b"")
        return {"bucket": bucket}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        found = read_bucket(ctx, str(params["bucket"]))
        return () if found is not None and found.policy is not None else (Difference("bucket", None, params["bucket"]),)

    def undo_check(self, ctx: StepContext, params: Mapping[str, Any], created: Sequence[Created]) -> UndoCheck:
        """The bucket as the run made it: only its `pub/` folder in it, only its OrgId tag; else refused."""
        s3 = ctx.client("s3")
        present: list[Created] = []
        changed: list[str] = []
        for made in (c for c in created if c.kind == "bucket"):
            if call(s3, "head_bucket", Bucket=made.id, missing=("404", "NoSuchBucket", "NotFound")) is None:
                continue
            present.append(made)
            keys = [o["Key"] for o in call(s3, "list_objects_v2", Bucket=made.id).get("Contents", ())]
            others = sorted(k for k in keys if k != PUBLIC_FOLDER)
            if others:
                changed.append(f"bucket {made.id} holds objects the run did not put there: {', '.join(others[:5])}"
                               + (f" and {len(others) - 5} more" if len(others) > 5 else ""))
            tags = read_bucket_tags(s3, made.id)
            if tags != {"OrgId": str(params.get("org_id"))}:
                changed.append(f"bucket {made.id}'s tags are {tags or 'none'} since the run")
        return UndoCheck(present=tuple(present), changed=tuple(changed))

    def undo(self, ctx: StepContext, params: Mapping[str, Any], created: Sequence[Created]) -> None:
        """Its `pub/` folder, then the bucket (its policy and tags go with it)."""
        s3 = ctx.client("s3")
        for made in (c for c in created if c.kind == "bucket"):
            ctx.progress(f"deleting bucket {made.id}")
            call(s3, "delete_object", Bucket=made.id, Key=PUBLIC_FOLDER, missing=("NoSuchBucket",))
            call(s3, "delete_bucket", Bucket=made.id, missing=("NoSuchBucket",))
