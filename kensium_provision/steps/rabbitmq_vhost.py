"""The `rabbitmq.vhost` step type: an organization's vhost on a shared broker, its user and permissions.

It speaks the RabbitMQ management API (design.md section 7); boto3 (Amazon MQ) only finds the broker's URL.
What the broker holds (`VhostFacts`) and the region's brokers are read through the run's facts source
(`steps.facts`: `vhost`, `brokers`): live, `read_vhost` and `read_brokers`; in the fleet check, each
broker's listings, read once for every client on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from kensium_provision.aws.call import translating
from kensium_provision.errors import InputError, StepError
from kensium_provision.model import Mode
from kensium_provision.rabbitmq.management import ManagementClient, check_name
from kensium_provision.steps.base import (
    CheckContext,
    Created,
    Difference,
    Param,
    Probe,
    StepContext,
    UndoCheck,
    record_created,
    refusal,
)
from kensium_provision.steps.facts import facts

__all__ = [
    "BROKER_PARAMS",
    "FULL_ACCESS",
    "RabbitMQVhost",
    "VhostFacts",
    "checked_vhost_user",
    "management_client",
    "management_url",
    "read_brokers",
    "read_vhost",
    "vhost_facts",
]

FULL_ACCESS: Mapping[str, str] = {"configure": ".*", "write": ".*", "read": ".*"}
_PERMISSION_KEYS = ("configure", "write", "read")


def _settings(ctx: StepContext) -> Mapping[str, object]:
    found = ctx.runtime.settings.get("rabbitmq")
    return found if isinstance(found, Mapping) else {}


def management_url(ctx: StepContext, params: Mapping[str, Any]) -> str:
    """The management API's base URL: the `base_url` param, else settings `rabbitmq.base_url` (the sandbox),
    else the Amazon MQ broker's console URL (`list_brokers` by name, then `describe_broker`)."""
    for candidate in (params.get("base_url"), _settings(ctx).get("base_url")):
        if isinstance(candidate, str) and candidate:
            return candidate
    broker = params.get("broker")
    if not isinstance(broker, str) or not broker:
        raise InputError("rabbitmq.vhost needs `broker` (an Amazon MQ broker name) or `base_url`")
    return _console_url(ctx, broker)


def read_brokers(mq: Any) -> list[Mapping[str, Any]]:
    """The live `brokers` fact: every broker summary of `mq:ListBrokers` (the run's mq client)."""
    found: list[Mapping[str, Any]] = []
    token = ""
    with translating("mq", "ListBrokers"):
        while True:  # no paginator in every botocore: one loop keeps fakes and moto alike
            page = mq.list_brokers(MaxResults=100, **({"NextToken": token} if token else {}))
            found += page.get("BrokerSummaries", ())
            token = page.get("NextToken") or ""
            if not token:
                return found


def _console_url(ctx: StepContext, broker: str) -> str:
    ids = [str(b["BrokerId"]) for b in facts(ctx).brokers(ctx) if b.get("BrokerName") == broker]
    if len(ids) != 1:
        found = "no broker" if not ids else f"{len(ids)} brokers"
        raise StepError(f"{found} named {broker!r} in this account and region",
                        hint="check the broker name and the region (kprov check shared rabbitmq)")
    with translating("mq", "DescribeBroker"):
        described = ctx.client("mq").describe_broker(BrokerId=ids[0])
    if str(described.get("EngineType", "")).upper() != "RABBITMQ":
        raise StepError(f"broker {broker!r} runs {described.get('EngineType')}, not RabbitMQ")
    state = described.get("BrokerState")
    urls = [i.get("ConsoleURL") for i in described.get("BrokerInstances") or () if i.get("ConsoleURL")]
    if state != "RUNNING" or not urls:
        raise StepError(f"broker {broker!r} is {state}, not RUNNING", hint="wait until it is RUNNING, then run again")
    return str(urls[0])


def management_client(ctx: StepContext, params: Mapping[str, Any]) -> ManagementClient:
    """A client as the broker admin; read-only unless the run applies changes."""
    settings = _settings(ctx)
    admin_user = params.get("admin_user") or settings.get("admin_user") or "admin"
    # A local RabbitMQ (the sandbox's emulator, or one in the config) has its own admin: settings win.
    reference = settings.get("admin_secret") or params.get("admin_secret")
    if settings.get("admin_secret_entry"):
        reference = ctx.runtime.vault.find(str(settings["admin_secret_entry"])) or reference
    if not isinstance(reference, str) or not reference:
        raise InputError("rabbitmq.vhost needs `admin_secret`: the password-manager reference of the broker admin")
    timeout = settings.get("timeout", 10)
    return ManagementClient(
        management_url(ctx, params),
        str(admin_user),
        ctx.runtime.vault.fetch(reference),
        timeout=float(timeout) if isinstance(timeout, int | float) else 10.0,
        read_only=ctx.runtime.mode in (Mode.PLAN, Mode.CHECK),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class VhostFacts:
    """What the broker holds for this vhost and user (one read of each, one permission listing; or, in
    the fleet check, the broker's whole listings read once for every client on it)."""

    vhost: bool
    user: Mapping[str, object] | None
    here: Mapping[str, str] | None  # the user's permissions on the vhost
    elsewhere: tuple[str, ...]  # other vhosts the user has permissions on

    def differences(self, vhost: str, user: str) -> tuple[Difference, ...]:
        found: list[Difference] = []
        if not self.vhost:
            found.append(Difference("vhost", None, vhost))
        if self.user is None:
            found.append(Difference("user", None, user))
        elif tags := list(self.user.get("tags") or ()):  # type: ignore[call-overload]
            found.append(Difference("user tags", tags, []))
        if self.here != FULL_ACCESS:
            found.append(Difference(f"permissions on {vhost}", self.here, dict(FULL_ACCESS)))
        if self.elsewhere:
            found.append(Difference("permissions on other vhosts", list(self.elsewhere), []))
        return tuple(found)

    def current(self) -> dict[str, object]:
        if not self.vhost and self.user is None and self.here is None and not self.elsewhere:
            return {}
        return {
            "vhost_exists": self.vhost,
            "user_exists": self.user is not None,
            "permissions": self.here,
            "other_vhosts": list(self.elsewhere),
        }


def vhost_facts(*, vhost: str, user: str, vhost_exists: bool, user_record: Mapping[str, object] | None,
                permissions: Sequence[Mapping[str, object]]) -> VhostFacts:
    """The facts of one vhost and user from what the broker answered (pure)."""
    mine = [p for p in permissions if p.get("user") == user]
    here = next((p for p in mine if p.get("vhost") == vhost), None)
    return VhostFacts(
        vhost=vhost_exists,
        user=user_record,
        here={k: str(here.get(k)) for k in _PERMISSION_KEYS} if here is not None else None,
        elsewhere=tuple(sorted(str(p.get("vhost")) for p in mine if p.get("vhost") != vhost)),
    )


def _look(client: ManagementClient, vhost: str, user: str) -> VhostFacts:
    return vhost_facts(vhost=vhost, user=user, permissions=client.list_permissions(),
                       vhost_exists=client.get_vhost(vhost) is not None, user_record=client.get_user(user))


def read_vhost(ctx: StepContext, params: Mapping[str, Any], vhost: str, user: str) -> VhostFacts:
    """The live `vhost` fact: the vhost, the user and the permission listing of the step's broker."""
    return _look(management_client(ctx, params), vhost, user)


def _admin_problem(params: Mapping[str, Any], settings: Mapping[str, object]) -> str | None:
    admin = params.get("admin_user") or settings.get("admin_user") or "admin"
    if params.get("user") == admin:
        return f"rabbitmq.vhost manages a per-organization user, never the broker admin {admin!r}"
    return None


def checked_vhost_user(ctx: StepContext, params: Mapping[str, Any]) -> tuple[str, str]:
    """The step's vhost and user, each a valid name, the user never the broker admin (else InputError)."""
    vhost, user = check_name("vhost", params.get("vhost")), check_name("user", params.get("user"))
    problem = _admin_problem(params, _settings(ctx))
    if problem:
        raise InputError(problem)
    return vhost, user


# How every RabbitMQ step reaches the broker's management API, and as whom (one declaration for all).
BROKER_PARAMS = (
    Param(name="broker", required=False, doc="Amazon MQ broker name (mq-POS-01); its console URL is used."),
    Param(name="base_url", required=False,
          doc="Management API URL, instead of the broker lookup (settings rabbitmq.base_url also overrides)."),
    Param(name="admin_user", required=False,
          doc="The broker admin; default settings rabbitmq.admin_user, else admin (Amazon MQ's)."),
    Param(name="admin_secret", doc="Password-manager reference of the broker admin's password."),
)


class RabbitMQVhost:
    """An organization's vhost (`acme`, `acme_corp`), a user of its own with full access to it and none
    elsewhere, and that user's generated password in the password manager.

    Example: `broker: mq-POS-01`, `vhost: "{{ org_id }}"`, `user: "{{ org_id }}_hub"`, `admin_secret:
    "{{ broker_admin_ref }}"`, `user_secret_name: "{{ org_id }}/rabbitmq-hub"`.
    """

    name: ClassVar[str] = "rabbitmq.vhost"
    summary: ClassVar[str] = "A RabbitMQ vhost with its own user (full access there, none elsewhere)."
    params: ClassVar[tuple[Param, ...]] = (
        *BROKER_PARAMS,
        Param(name="vhost", doc="The vhost: lower-case letters, digits and _ (acme, acme_corp, acme_store1).",
              check=lambda v: refusal(check_name, "vhost", v)),
        Param(name="user", doc="Its user, same alphabet (acme_hub); never the broker admin.",
              check=lambda v: refusal(check_name, "user", v)),
        Param(name="user_secret_name", doc="Password-manager entry for the user's generated password (acme/rabbitmq)."),
        Param(name="description", required=False, default="", doc="The vhost's description."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("vhost", "user", "user_secret_ref", "created")

    def check_params(self, params: Mapping[str, Any], ctx: CheckContext) -> list[str]:
        """The user is never the broker admin (known once the settings are: before the first change)."""
        if ctx.settings is None or "user" not in params or "admin_user" in ctx.pending:
            return []
        rabbit = ctx.settings.get("rabbitmq")
        problem = _admin_problem(params, rabbit if isinstance(rabbit, Mapping) else {})
        return [problem] if problem else []

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        vhost, user = checked_vhost_user(ctx, params)
        seen = facts(ctx).vhost(ctx, params, vhost, user)
        differences = seen.differences(vhost, user)
        entry = str(params["user_secret_name"])
        desired = {"vhost": vhost, "user": user, "permissions": dict(FULL_ACCESS), "other_vhosts": [],
                   "user_password": f"generated, stored as {entry}" if seen.user is None else "unchanged"}
        if differences:
            note = "; ".join(str(d) for d in differences)
            return Probe(done=False, note=note, current=seen.current(), desired=desired, differences=differences)
        reference = ctx.runtime.vault.find(entry)
        note = f"vhost {vhost} and user {user} are in place"
        if reference is None:
            note += f" (no password-manager entry {entry} found for the user's password)"
        return Probe(done=True, note=note, current=seen.current(), desired=desired,
                     outputs={"vhost": vhost, "user": user, "user_secret_ref": reference or "", "created": []})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        vhost, user = checked_vhost_user(ctx, params)
        client = management_client(ctx, params)
        seen = _look(client, vhost, user)
        if seen.user is not None and seen.user.get("tags"):
            raise StepError(f"RabbitMQ user {user} has tags {seen.user.get('tags')}; kprov does not change an "
                            "existing user's tags (it does not know the password to resend)",
                            hint="remove the tags in the broker's management console, then run again")
        strange = [v for v in seen.elsewhere if v != "/" and not _allowed(v)]
        if strange:  # names kprov would not put in a URL: a person looks at these
            raise StepError(f"RabbitMQ user {user} has permissions on vhosts {strange}",
                            hint="revoke them in the broker's management console, then run again")
        vault, entry = ctx.runtime.vault, str(params["user_secret_name"])
        created: list[str] = []
        if not seen.vhost:
            ctx.progress(f"creating vhost {vhost}")
            if client.put_vhost(vhost, description=str(params.get("description") or "")):
                created.append("vhost")
                record_created(ctx, "vhost", vhost, **_admin_ref(params))
        reference = vault.find(entry)
        if seen.user is None:
            # The password is stored before the user exists: a crash in between leaves a stored, unused
            # password that the next run reuses, never a user whose password nobody has.
            if reference is not None:
                password = vault.fetch(reference)
            else:
                from kensium_provision.secret import generate_password

                password = generate_password("rabbitmq-user")
                reference = vault.store(entry, password, description=f"RabbitMQ user {user} (vhost {vhost})",
                                        tags={"rabbitmq-user": user, "rabbitmq-vhost": vhost})
                from kensium_provision.steps.credential import ENTRY

                record_created(ctx, ENTRY, reference, name=entry)
            ctx.progress(f"creating user {user}")
            if client.put_user(user, password, tags=""):
                created.append("user")
                record_created(ctx, "user", user, **_admin_ref(params))
        if seen.here != FULL_ACCESS and client.put_permissions(vhost, user, **FULL_ACCESS) and "user" not in created:
            created.append("permissions")
            record_created(ctx, "permissions", f"{user} on {vhost}", **_admin_ref(params))
        for other in seen.elsewhere:
            ctx.progress(f"revoking {user}'s permissions on {other}")
            client.delete_permissions(other, user)
        return {"vhost": vhost, "user": user, "user_secret_ref": reference or "", "created": created}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        vhost, user = checked_vhost_user(ctx, params)
        return facts(ctx).vhost(ctx, params, vhost, user).differences(vhost, user)

    def undo_check(self, ctx: StepContext, params: Mapping[str, Any], created: Sequence[Created]) -> UndoCheck:
        """What the run made, still there; refused when the user was given tags or other vhosts, or another user
        was given access to the vhost, since (the admin that made it has access from the start, as RabbitMQ gives)."""
        from kensium_provision.steps.credential import ENTRY, entry_check

        params = _unmasked(params, created)
        vhost, user = checked_vhost_user(ctx, params)
        client = management_client(ctx, params)
        seen = _look(client, vhost, user)
        kinds = {c.kind for c in created}
        present = [c for c in created if (c.kind == "vhost" and seen.vhost) or (c.kind == "user" and seen.user)
                   or (c.kind == "permissions" and seen.here is not None)]
        changed: list[str] = []
        if "user" in kinds and seen.user is not None and seen.user.get("tags"):
            changed.append(f"RabbitMQ user {user} has tags {seen.user.get('tags')} since the run")
        if "user" in kinds and seen.elsewhere:
            changed.append(f"RabbitMQ user {user} has permissions on {', '.join(seen.elsewhere)} since the run")
        others = sorted({str(p.get("user")) for p in client.list_permissions()
                         if p.get("vhost") == vhost and p.get("user") not in (user, client.username)})
        if "vhost" in kinds and seen.vhost and others:
            changed.append(f"vhost {vhost} gives access to {', '.join(others)} since the run")
        entries = entry_check(ctx, [c for c in created if c.kind == ENTRY])
        return UndoCheck(present=(*present, *entries.present), changed=(*changed, *entries.changed),
                         by_hand=entries.by_hand)

    def undo(self, ctx: StepContext, params: Mapping[str, Any],
             outputs: Mapping[str, object] | Sequence[Created]) -> None:
        """Delete what this run created (`record_created`, or the act's `created` output). Permissions revoked
        elsewhere are not restored; the user's password-manager entry goes when the run stored it."""
        from kensium_provision.steps.credential import delete_entries

        vhost, user = checked_vhost_user(ctx, params)
        if isinstance(outputs, Mapping):
            created = outputs.get("created") or ()
            if not isinstance(created, list | tuple):
                raise StepError(f"step {ctx.step_id}: cannot undo, its `created` output is {created!r}")
            kinds = {str(c) for c in created}
        else:
            kinds = {c.kind for c in outputs}
            params = _unmasked(params, outputs)
        client = management_client(ctx, params)
        if "user" in kinds:
            client.delete_user(user)
        elif "permissions" in kinds:
            client.delete_permissions(vhost, user)
        if "vhost" in kinds:
            client.delete_vhost(vhost)
        if not isinstance(outputs, Mapping):
            delete_entries(ctx, outputs)


def _admin_ref(params: Mapping[str, Any]) -> dict[str, str]:
    """The broker admin's password-manager reference, journaled with what the act made: the journal masks the
    `admin_secret` parameter (its name says secret), and the undo logs in with it."""
    reference = params.get("admin_secret")
    return {"admin_secret_ref": reference} if isinstance(reference, str) and reference else {}


def _unmasked(params: Mapping[str, Any], created: Sequence[Created]) -> Mapping[str, Any]:
    """The journaled params with the admin's reference put back from what the act journaled (`_admin_ref`)."""
    from kensium_provision.secret import MASK

    reference = next((c.details["admin_secret_ref"] for c in created if c.details.get("admin_secret_ref")), None)
    return {**params, "admin_secret": reference} if params.get("admin_secret") == MASK and reference else params


def _allowed(name: str) -> bool:
    try:
        check_name("vhost", name)
    except InputError:
        return False
    return True
