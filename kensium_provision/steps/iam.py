"""IAM step types of a client install: verify the org's IAM user that POS's AWS provisioning creates.

POS creates `rms_<org_id>` itself (domain.md section 3.7), so `iam.client-user` only reads; when
something is wrong, act tells the operator what to do in POS or the IAM console. The sandbox, where
no POS runs, has `iam.sandbox-client-user`: a clearly labelled stand-in that makes the user as POS
would, refused anywhere but the sandbox.

What is right is one pure function, `evaluate_user`, over the user's facts, which both step types
read through the run's facts source (`steps.facts`: `iam_user`): live, with per-user reads
(`read_user`); in the fleet check, built from the account's batched reads (`user_facts`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from kensium_provision.aws.call import call, pages
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

__all__ = [
    "IamClientUser",
    "IamSandboxClientUser",
    "IamUserFacts",
    "SandboxOnly",
    "access_key_value",
    "billing_tag_keys",
    "billing_tag_problem",
    "evaluate_user",
    "read_user",
    "require_sandbox",
    "sandbox_problem",
    "user_facts",
]


def billing_tag_keys(ctx: StepContext) -> tuple[str, ...]:
    """The billing tag's accepted keys, canonical first (N17: OrgId and OrgID until Kensium settles it)."""
    variants = getattr(ctx.runtime.names, "variants", None)
    return tuple(variants("org-tag-key")) if variants else ("OrgId", "OrgID")


def billing_tag_problem(tags: Mapping[str, str], keys: Sequence[str], org_id: str) -> Difference | None:
    """None when the billing tag is right: one accepted key present, every present one holding the org id."""
    present = {k: tags[k] for k in keys if k in tags}
    if present and all(v == org_id for v in present.values()):
        return None
    return Difference(f"billing tag {keys[0]}" + (f" (or {', '.join(keys[1:])})" if keys[1:] else ""),
                      present or None, org_id)


def sandbox_problem(settings: Mapping[str, object] | None, env_name: str, step_type: str) -> list[str]:
    """Stand-ins for POS exist only where no POS runs: a problem anywhere but the sandbox (none while the
    environment is not known yet)."""
    if settings is None or settings.get("sandbox") is True:
        return []
    return [f"{step_type} stands in for POS's own AWS provisioning and runs only in the sandbox, "
            f"not in environment {env_name!r}"]


class SandboxOnly:
    """A stand-in step type's parameter check (`steps.base.ChecksParams`): the sandbox, or refused before
    the first change."""

    name: ClassVar[str]

    def check_params(self, params: Mapping[str, Any], ctx: CheckContext) -> list[str]:
        return sandbox_problem(ctx.settings, ctx.env_name, self.name)


def require_sandbox(ctx: StepContext, step_type: str) -> None:
    """`sandbox_problem` as an error, at the step's own turn."""
    problems = sandbox_problem(ctx.runtime.settings, ctx.runtime.env_name, step_type)
    if problems:
        raise InputError(problems[0], hint="answer simulate_pos: false and run AWS provisioning in POS instead")


@dataclass(frozen=True, slots=True, kw_only=True)
class IamUserFacts:
    """What IAM holds for the org's user: read one user at a time (`read_user`) or built from the
    account's batched reads (`user_facts`: authorization details plus a credential-report row)."""

    arn: str
    tags: Mapping[str, str]
    console_login: bool
    attached: tuple[str, ...]
    inline: tuple[str, ...]
    groups: tuple[str, ...]
    active_keys: int


def read_user(ctx: StepContext, user: str) -> IamUserFacts | None:
    """The live `iam_user` fact: one user's facts with per-user reads (seven calls); None: no such user."""
    iam = ctx.client("iam")
    found = call(iam, "get_user", UserName=user, missing=("NoSuchEntity",))
    if found is None:
        return None

    def listed(method: str, key: str) -> list[Any]:
        return list(pages(iam, method, key, UserName=user))

    login = call(iam, "get_login_profile", UserName=user, missing=("NoSuchEntity",))
    keys = listed("list_access_keys", "AccessKeyMetadata")
    return IamUserFacts(
        arn=str(found["User"]["Arn"]),
        tags={t["Key"]: t["Value"] for t in listed("list_user_tags", "Tags")},
        console_login=login is not None,
        attached=tuple(sorted(p["PolicyName"] for p in listed("list_attached_user_policies", "AttachedPolicies"))),
        inline=tuple(sorted(listed("list_user_policies", "PolicyNames"))),
        groups=tuple(sorted(g["GroupName"] for g in listed("list_groups_for_user", "Groups"))),
        active_keys=sum(1 for k in keys if k.get("Status") == "Active"),
    )


def user_facts(detail: Mapping[str, Any], report_row: Mapping[str, str]) -> IamUserFacts:
    """Facts from a `GetAccountAuthorizationDetails` UserDetail and the user's credential-report row.

    The report says `password_enabled` (a console login) and `access_key_N_active` (IAM allows two keys).
    """
    return IamUserFacts(
        arn=str(detail["Arn"]),
        tags={str(t["Key"]): str(t["Value"]) for t in detail.get("Tags") or ()},
        console_login=report_row.get("password_enabled") == "true",
        attached=tuple(sorted(str(p["PolicyName"]) for p in detail.get("AttachedManagedPolicies") or ())),
        inline=tuple(sorted(str(p["PolicyName"]) for p in detail.get("UserPolicyList") or ())),
        groups=tuple(sorted(str(g) for g in detail.get("GroupList") or ())),
        active_keys=sum(1 for n in (1, 2) if report_row.get(f"access_key_{n}_active") == "true"),
    )


def evaluate_user(found: IamUserFacts, *, org_id: str, tag_keys: Sequence[str],
                  require_access_key: bool = False) -> list[Difference]:
    """What is wrong with the org's user, as POS provisions it (pure: the same for live and snapshot facts)."""
    problems: list[Difference] = []
    if found.console_login:
        problems.append(Difference("console login", "enabled", "none (programmatic access only)"))
    if found.attached:
        problems.append(Difference("attached policies", list(found.attached), []))
    if found.inline:
        problems.append(Difference("inline policies", list(found.inline), []))
    if found.groups:
        problems.append(Difference("groups", list(found.groups), []))
    tag = billing_tag_problem(found.tags, tag_keys, org_id)
    if tag is not None:
        problems.append(tag)
    if require_access_key and found.active_keys < 1:
        problems.append(Difference("active access keys", 0, "at least 1"))
    return problems


class IamClientUser:
    """Verify the org's IAM user `rms_<org_id>`, which POS's AWS provisioning creates (kprov never does).

    Right means: it exists; no console login (no login profile); no attached or inline policies and no
    groups (access comes from the bucket policy); the billing tag `OrgId=<org_id>` (N17: `OrgID`, the
    IAM page's spelling, is accepted too); with `require_access_key`, at least one active access key
    (made by hand after provisioning). When it is wrong, act does not fix it: it says what to do in POS
    or in the IAM console, and the run stops there.

    Example: `user: "rms_{{ org_id }}"`, `org_id: "{{ org_id }}"`, `outputs: {iam_user: user}`.
    """

    name: ClassVar[str] = "iam.client-user"
    summary: ClassVar[str] = "Verify the org's IAM user made by POS: programmatic only, no policies, tagged."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="user", rule="iam-user", doc="The user, rms_<org_id>."),
        Param(name="org_id", rule="org-id", doc="The organization id (the billing tag's value)."),
        Param(name="require_access_key", kind="bool", required=False, default=False,
              doc="Also require at least one active access key (after the manual access-key step)."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("user", "arn", "active_keys")

    def _differences(self, ctx: StepContext, params: Mapping[str, Any], found: IamUserFacts) -> list[Difference]:
        return evaluate_user(found, org_id=str(params["org_id"]), tag_keys=billing_tag_keys(ctx),
                             require_access_key=bool(params.get("require_access_key")))

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        user = str(params["user"])
        found = facts(ctx).iam_user(ctx, user)
        desired = {"user": user, "console_login": "none", "policies": [], "groups": [],
                   f"tag {billing_tag_keys(ctx)[0]}": params["org_id"]}
        if found is None:
            return Probe(done=False, desired=desired,
                         note=f"IAM user {user} does not exist (POS's AWS provisioning creates it)")
        differences = self._differences(ctx, params, found)
        current = {"user": user, "arn": found.arn, "console_login": found.console_login,
                   "active_keys": found.active_keys}
        outputs = {"user": user, "arn": found.arn, "active_keys": found.active_keys}
        if differences:
            return Probe(done=False, note="; ".join(map(str, differences)), current=current, desired=desired,
                         differences=tuple(differences))
        return Probe(done=True, note=f"IAM user {user} is as POS provisions it", current=current, outputs=outputs)

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        user, org_id = str(params["user"]), str(params["org_id"])
        if not probe.current:
            raise StepError(f"IAM user {user} does not exist: kprov does not create it, POS does",
                            hint=f"in POS, run AWS provisioning for {org_id}; then run this again")
        fixes = {
            "console login": f"delete {user}'s console password (IAM console › Users › {user} › "
                             "Security credentials)",
            "attached policies": f"detach the policies from {user}: access comes from the bucket policy",
            "inline policies": f"delete {user}'s inline policies: access comes from the bucket policy",
            "groups": f"remove {user} from its groups",
            "active access keys": f"create an access key for {user} (the manual access-key step)",
        }
        hints = [next((fix for key, fix in fixes.items() if d.field.startswith(key)),
                      f"tag {user} with {billing_tag_keys(ctx)[0]}={org_id} (or run AWS provisioning in POS again)")
                 for d in probe.differences]
        raise StepError(f"IAM user {user} is not as POS provisions it: {probe.note}", hint="; ".join(hints))

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        found = facts(ctx).iam_user(ctx, str(params["user"]))
        if found is None:
            return (Difference("IAM user", None, params["user"]),)
        return tuple(self._differences(ctx, params, found))


def access_key_value(key_id: str, secret: Any) -> Any:
    """What the password manager holds for an access key: `<AccessKeyId>:<SecretAccessKey>` (a Secret)."""
    return secret.derive(lambda value: f"{key_id}:{value}")


class IamSandboxClientUser(SandboxOnly):
    """SANDBOX ONLY: stand in for POS's AWS provisioning and the administrator's access-key step.

    In the sandbox nobody runs POS, so this makes `rms_<org_id>` as POS would (programmatic only, no
    policies, tagged `OrgID=<org_id>` as the IAM page writes it) and one access key, whose secret goes
    straight into the password manager under `access_key_entry` as `<AccessKeyId>:<SecretAccessKey>` (never
    shown, never in a file).
    Refused (exit 3) in any environment but the sandbox; real installs use the manual steps.

    Example: `user: "rms_{{ org_id }}"`, `org_id: "{{ org_id }}"`, `access_key_entry: "{{ org_id }}/iam-access-key"`.
    """

    name: ClassVar[str] = "iam.sandbox-client-user"
    summary: ClassVar[str] = "Sandbox only: make the org's IAM user and access key as POS and its admin would."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="user", rule="iam-user", doc="The user, rms_<org_id>."),
        Param(name="org_id", rule="org-id", doc="The organization id."),
        Param(name="access_key_entry", doc="Password-manager entry for the access key (<org_id>/iam-access-key)."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("user", "access_key_ref")

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        require_sandbox(ctx, self.name)
        user = str(params["user"])
        found = facts(ctx).iam_user(ctx, user)
        entry = str(params["access_key_entry"])
        desired = {"user": user, "access_key": f"one, stored as {entry}", "made_by": "the sandbox's stand-in for POS"}
        if found is None:
            return Probe(done=False, note=f"sandbox: {user} does not exist yet", desired=desired)
        if found.active_keys < 1:
            return Probe(done=False, note=f"sandbox: {user} has no access key yet", desired=desired,
                         current={"user": user, "active_keys": 0})
        return Probe(done=True, note=f"sandbox: {user} and its access key exist",
                     current={"user": user, "active_keys": found.active_keys},
                     outputs={"user": user, "access_key_ref": ctx.runtime.vault.find(entry) or ""})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        require_sandbox(ctx, self.name)
        iam = ctx.client("iam")
        user, org_id = str(params["user"]), str(params["org_id"])
        if facts(ctx).iam_user(ctx, user) is None:
            ctx.progress(f"sandbox stand-in for POS: creating IAM user {user}")
            call(iam, "create_user", UserName=user, Tags=[{"Key": "OrgID", "Value": org_id}])
            record_created(ctx, "IAM user", user)
        from kensium_provision.secret import Secret
        from kensium_provision.steps.credential import ENTRY

        key = call(iam, "create_access_key", UserName=user)["AccessKey"]
        record_created(ctx, "access key", str(key["AccessKeyId"]), user=user)
        secret = Secret(str(key.pop("SecretAccessKey")))  # masked from here on; only the vault sees it
        reference = ctx.runtime.vault.store(
            str(params["access_key_entry"]), access_key_value(str(key["AccessKeyId"]), secret),
            description=f"IAM access key {key['AccessKeyId']} of {user} (sandbox)",
            tags={"iam-user": user, "access-key-id": str(key["AccessKeyId"])})
        record_created(ctx, ENTRY, reference, name=str(params["access_key_entry"]))
        return {"user": user, "access_key_ref": reference}

    def undo_check(self, ctx: StepContext, params: Mapping[str, Any], created: Sequence[Created]) -> UndoCheck:
        """The user, its key and the key's entry, as the run made them: a user given a console login, policies,
        groups, other keys or other tags since is refused."""
        from kensium_provision.steps.credential import ENTRY, entry_check

        iam = ctx.client("iam")
        present: list[Created] = []
        changed: list[str] = []
        keys = {c.id for c in created if c.kind == "access key"}
        for made in created:
            if made.kind == "IAM user":
                found = read_user(ctx, made.id)
                if found is None:
                    continue
                present.append(made)
                listed = {k["AccessKeyId"] for k in pages(iam, "list_access_keys", "AccessKeyMetadata",
                                                           UserName=made.id)}
                extra = [what for what, there in (
                    ("a console login", found.console_login), (f"policies {', '.join(found.attached)}", found.attached),
                    (f"inline policies {', '.join(found.inline)}", found.inline),
                    (f"groups {', '.join(found.groups)}", found.groups),
                    (f"access keys {', '.join(sorted(listed - keys))}", listed - keys),
                    (f"tags {found.tags}", found.tags != {"OrgID": str(params.get("org_id"))})) if there]
                if extra:
                    changed.append(f"IAM user {made.id} has " + ", ".join(extra) + " since the run")
            elif made.kind == "access key":
                user = made.details.get("user", str(params.get("user")))
                there = pages(iam, "list_access_keys", "AccessKeyMetadata", UserName=user) \
                    if read_user(ctx, user) is not None else []
                if any(k["AccessKeyId"] == made.id for k in there):
                    present.append(made)
        entries = entry_check(ctx, [c for c in created if c.kind == ENTRY])
        return UndoCheck(present=(*present, *entries.present), changed=(*changed, *entries.changed),
                         by_hand=entries.by_hand)

    def undo(self, ctx: StepContext, params: Mapping[str, Any], created: Sequence[Created]) -> None:
        """The key's entry, the key, then the user (IAM deletes no user that still has a key)."""
        from kensium_provision.steps.credential import delete_entries

        iam = ctx.client("iam")
        delete_entries(ctx, created)
        for made in (c for c in created if c.kind == "access key"):
            ctx.progress(f"deleting access key {made.id}")
            call(iam, "delete_access_key", UserName=made.details.get("user", str(params.get("user"))),
                 AccessKeyId=made.id, missing=("NoSuchEntity",))
        for made in (c for c in created if c.kind == "IAM user"):
            ctx.progress(f"deleting IAM user {made.id}")
            call(iam, "delete_user", UserName=made.id, missing=("NoSuchEntity",))

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        found = facts(ctx).iam_user(ctx, str(params["user"]))
        if found is None:
            return (Difference("IAM user", None, params["user"]),)
        return () if found.active_keys else (Difference("active access keys", 0, "at least 1"),)
