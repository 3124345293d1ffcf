"""Deployment targets and the guards that run before a run touches AWS, as pure decisions.

No I/O: the caller fetches `sts.get_caller_identity()`; these functions only judge it (stdlib + errors).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kensium_provision.errors import GuardError, InputError

__all__ = [
    "NON_PRODUCTION_PURPOSES",
    "PRODUCTION_PURPOSES",
    "PURPOSES",
    "SANDBOX_ACCOUNT_ID",
    "Environment",
    "Identity",
    "check_account",
    "check_not_federated",
    "check_not_root",
    "check_purpose",
    "confirmation_banner",
    "needs_typed_confirmation",
    "run_guards",
]

PURPOSES = ("production", "staging", "qa", "development", "demo")
PRODUCTION_PURPOSES = frozenset({"production", "staging"})  # only ever in the POS Production account
NON_PRODUCTION_PURPOSES = frozenset(PURPOSES) - PRODUCTION_PURPOSES
SANDBOX_ACCOUNT_ID = "123456789012"  # moto's default account

# arn:<partition>:iam::<12 digits>:root, for aws, aws-cn, aws-us-gov and any future partition.
_ROOT_ARN = re.compile(r"^arn:[a-z][a-z0-9-]*:iam::\d{12}:root$")
# GetFederationToken's users: arn:<partition>:sts::<account>:federated-user/<name>
# (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-arns).
_FEDERATED_ARN = re.compile(r"^arn:[a-z][a-z0-9-]*:sts::\d{12}:federated-user/")


@dataclass(frozen=True, slots=True, kw_only=True)
class Environment:
    """A deployment target: an AWS account and region, and what it may host."""

    name: str
    account_id: str
    region: str
    sandbox: bool = False
    profile: str = ""  # an AWS profile name; empty = boto3's default credential chain
    purposes: tuple[str, ...] = ()
    protected: bool = False
    endpoint_url: str = ""  # sandbox or a local endpoint; empty = AWS (or AWS_ENDPOINT_URL)
    allow_federated_users: bool = False  # see check_not_federated

    def describe(self) -> str:
        kind = "the sandbox" if self.sandbox else f"AWS account {self.account_id}"
        return f"environment {self.name!r} ({kind}, {self.region})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    """Who the AWS credentials belong to, from `sts.get_caller_identity()`."""

    arn: str
    account: str
    user_id: str

    @classmethod
    def from_response(cls, response: Mapping[str, object]) -> Identity:
        return cls(arn=str(response.get("Arn", "")), account=str(response.get("Account", "")),
                   user_id=str(response.get("UserId", "")))

    @property
    def is_root(self) -> bool:
        # The root user's UserId is the account id itself; checking both catches odd partitions.
        return bool(_ROOT_ARN.match(self.arn)) or (bool(self.account) and self.user_id == self.account)

    @property
    def is_federated_user(self) -> bool:
        return bool(_FEDERATED_ARN.match(self.arn))

    @property
    def display_name(self) -> str:
        """`alice`, `alice (role kprov-ops)`, or `root`: how banners and the journal name a person."""
        resource = self.arn.split(":", 5)[5] if self.arn.count(":") >= 5 else self.arn
        parts = resource.split("/")
        if parts[0] == "assumed-role" and len(parts) >= 3:
            return f"{parts[-1]} (role {parts[1]})"
        if resource == "root":
            return "root"
        return parts[-1] or resource or self.user_id


def _identity(identity: Identity | Mapping[str, object]) -> Identity:
    return identity if isinstance(identity, Identity) else Identity.from_response(identity)


def check_not_root(identity: Identity | Mapping[str, object], env: Environment | None = None) -> None:
    """Refuse root credentials (domain rule: never provision as root)."""
    who = _identity(identity)
    if not who.is_root:
        return
    where = f" for {env.describe()}" if env else ""
    profile = env.profile if env and env.profile else "<your profile>"
    login = f"aws sso login --profile {profile}"
    raise GuardError(
        f"Refusing to run as the root user of AWS account {who.account} ({who.arn}){where}: "
        "kprov never provisions with root credentials.",
        hint=f"Sign in with your own IAM identity (for example `{login}`) and run kprov again.",
    )


def check_not_federated(identity: Identity | Mapping[str, object], env: Environment) -> None:
    """Refuse GetFederationToken credentials unless the environment allows them.

    The root guard cannot see through them: root may call GetFederationToken, and GetCallerIdentity then
    names only the federated user, never who minted it
    (https://docs.aws.amazon.com/STS/latest/APIReference/API_GetFederationToken.html). So a federated
    user may be root in disguise; an environment that uses them says so (`allow_federated_users: true`).
    """
    who = _identity(identity)
    if not who.is_federated_user or env.allow_federated_users:
        return
    raise GuardError(
        f"Refusing to run as federated user {who.display_name} ({who.arn}) for {env.describe()}: "
        "GetCallerIdentity cannot tell whether root credentials minted it, and kprov never runs as root.",
        hint="Sign in with your own IAM identity or an IAM Identity Center role; if your team uses "
             f"GetFederationToken on purpose, set `allow_federated_users: true` on environment {env.name!r}.",
    )


def check_account(identity: Identity | Mapping[str, object], env: Environment) -> None:
    """Refuse credentials of another account than the environment's."""
    who = _identity(identity)
    if who.account == env.account_id:
        return
    login = f"aws sso login --profile {env.profile}" if env.profile else "choose the right AWS profile"
    raise GuardError(
        f"Refusing to run: {who.display_name} ({who.arn}) is signed in to AWS account {who.account}, "
        f"but {env.describe()} is account {env.account_id}.",
        hint=f"Sign in to account {env.account_id} ({login}), or pick the environment of account "
             f"{who.account} with --env.",
    )


def check_purpose(env: Environment, purpose: str, *, others: Sequence[Environment] = ()) -> None:
    """Refuse a client install whose purpose the environment does not host.

    The POS Production account hosts only production and staging, never QA, development or demos;
    each environment's `purposes` list (validated by `config`) encodes that. `others` are the other
    configured environments, used only to suggest where the install belongs.
    """
    if purpose not in PURPOSES:
        raise InputError(f"purpose {purpose!r} is not one of: {', '.join(PURPOSES)}")
    if purpose in env.purposes:
        return
    hosts = ", ".join(env.purposes) if env.purposes else "nothing (no purposes are configured)"
    rule = (" The POS Production account never hosts QA, development or demos."
            if purpose in NON_PRODUCTION_PURPOSES and PRODUCTION_PURPOSES & set(env.purposes) else "")
    fits = [o.name for o in others if purpose in o.purposes and o.name != env.name]
    hint = (f"Use --env {fits[0]}." if len(fits) == 1 else
            f"Use one of: {', '.join('--env ' + f for f in fits)}." if fits else
            f"Add {purpose!r} to the purposes of an environment in the kprov config.")
    raise GuardError(
        f"Refusing a {purpose} install in {env.describe()}: it hosts {hosts}.{rule}", hint=hint,
    )


def needs_typed_confirmation(env: Environment, *, destroys: bool = False) -> bool:
    """The operator types the target's name before the first change in a protected environment, and in
    every environment before a run that destroys (a `destroy` step: `--yes` never stands in for it)."""
    return env.protected or destroys


def confirmation_banner(identity: Identity | Mapping[str, object], env: Environment, *,
                        destroys: bool = False) -> tuple[str, ...]:
    """The lines shown before the typed confirmation (a protected environment, or a run that destroys)."""
    who = _identity(identity)
    return (
        f"PROTECTED ENVIRONMENT: {env.name}" if env.protected else f"THIS RUN DESTROYS RESOURCES in {env.name}",
        f"identity: {who.display_name} ({who.arn})",
        f"account:  {who.account}",
        f"region:   {env.region}",
    )


def run_guards(identity: Identity | Mapping[str, object], env: Environment, *, purpose: str = "",
               others: Sequence[Environment] = ()) -> Identity:
    """Every guard in order (root, account, purpose when one is declared); returns the identity."""
    who = _identity(identity)
    check_not_root(who, env)
    check_not_federated(who, env)
    check_account(who, env)
    if purpose:
        check_purpose(env, purpose, others=others)
    return who
