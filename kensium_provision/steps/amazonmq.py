"""The `mq.broker` step type: a shared Amazon MQ for RabbitMQ broker with its one admin user.

Amazon MQ's own rules are checked before any call, because moto accepts what AWS refuses (a name
with a space, a 4-character password, two users, ACTIVE_STANDBY for RabbitMQ, two subnets for a
single instance, any instance type). Broker names are unique per account but `describe_broker`
needs the id, so an existing broker is found by listing and matching the name; a new one is described
by the BrokerId its CreateBroker returned. The create sends a deterministic `CreatorRequestId`, so a
retried or resumed create gives the same broker. A broker is placed in the POS VPC explicitly: a
SINGLE_INSTANCE broker takes exactly one subnet, and without one AWS puts it in the default VPC (or
fails where there is none):
https://docs.aws.amazon.com/sdk-for-kotlin/api/latest/mq/aws.sdk.kotlin.services.mq.model/-create-broker-request/subnet-ids.html
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from kensium_provision.aws.call import call, pages, translating
from kensium_provision.aws.idempotent import create_client, create_once
from kensium_provision.errors import InputError, StepError
from kensium_provision.model import Mode
from kensium_provision.steps.aws_helpers import in_sandbox
from kensium_provision.steps.base import CheckContext, Difference, Param, Probe, StepContext

__all__ = ["BY_PURPOSE", "FAILED_STATES", "MqBroker", "by_purpose_type", "fitting_types", "instance_type_for",
           "offered"]

BY_PURPOSE = "by-purpose"
# domain.md 2.5: "micro" for QA/staging, "large" for production.
_SIZE_BY_PURPOSE: Mapping[str, str] = {
    "production": "mq.m5.large", "staging": "mq.t3.micro", "qa": "mq.t3.micro",
    "development": "mq.t3.micro", "demo": "mq.t3.micro",
}
# BrokerState values (botocore's mq model, enum BrokerState) that never become RUNNING by themselves;
# CRITICAL_ACTION_REQUIRED: AWS needs the owner to act (e.g. a KMS key or storage) before it is usable.
FAILED_STATES = frozenset({"CREATION_FAILED", "DELETION_IN_PROGRESS", "CRITICAL_ACTION_REQUIRED"})
_STARTING = frozenset({"CREATION_IN_PROGRESS", "REBOOT_IN_PROGRESS"})
_MODES = ("SINGLE_INSTANCE", "CLUSTER_MULTI_AZ")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,50}$")  # botocore model: letters, numbers, dashes, underscores; 1-50
_USER = re.compile(r"^[A-Za-z0-9._-]{2,100}$")  # RabbitMQ users on Amazon MQ; `guest` is refused
_VERSION = re.compile(r"^\d+\.\d+(?:\.\d+)?$")
# The RabbitMQ host types Amazon MQ offers (describe_broker_instance_options; moto lacks that call).
_TYPE = re.compile(r"^mq\.(?:t3\.micro|m5\.(?:large|xlarge|2xlarge|4xlarge)"
                   r"|m7g\.(?:medium|large|xlarge|2xlarge|4xlarge|8xlarge|12xlarge|16xlarge))$")
_SUBNET = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_SG = re.compile(r"^sg-[0-9a-f]{8,17}$")


def instance_type_for(purpose: str) -> str:
    """The documented host instance type of an environment's purpose (micro for QA/staging, large for production)."""
    try:
        return _SIZE_BY_PURPOSE[purpose]
    except KeyError:
        raise InputError(f"host_instance_type {BY_PURPOSE} needs the environment's purpose, and it is "
                         f"{purpose or 'not set'}", hint="choose the instance type explicitly: mq.t3.micro for "
                         "QA/staging, mq.m5.large for production") from None


def by_purpose_type(ctx: StepContext) -> str:
    """The host instance type `by-purpose` gives in this run (an InputError when the purpose is unknown)."""
    return instance_type_for(ctx.runtime.purpose or _environment_purpose(ctx))


def _environment_purpose(ctx: StepContext) -> str:
    """A shared broker has no client purpose: the environment decides (domain.md 2.5). The POS
    Production account (it hosts production) gets the production size; any other, and the sandbox,
    the QA/staging one."""
    env = ctx.runtime.settings.get("environment")
    purposes = env.get("purposes", ()) if isinstance(env, dict) else ()
    if isinstance(env, dict) and not env.get("sandbox") and "production" in purposes:
        return "production"
    return "qa" if purposes else ""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Spec:
    """The validated parameters of one broker."""

    name: str
    engine_version: str
    deployment_mode: str
    host_instance_type: str
    public: bool
    admin_user: str
    password_ref: str
    subnet_ids: tuple[str, ...]
    security_groups: tuple[str, ...]
    auto_minor: bool
    tags: Mapping[str, str]

    def desired(self) -> dict[str, object]:
        return {"name": self.name, "engine": "RABBITMQ", "engine_version": self.engine_version,
                "deployment_mode": self.deployment_mode, "host_instance_type": self.host_instance_type,
                "publicly_accessible": self.public, "admin_user": self.admin_user,
                "admin_password": f"<from the password manager: {self.password_ref}>",
                "subnet_ids": list(self.subnet_ids), "security_groups": list(self.security_groups),
                "tags": dict(self.tags)}


def _ids(params: Mapping[str, Any], key: str, pattern: re.Pattern[str]) -> tuple[str, ...]:
    value = params.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) and pattern.fullmatch(v) for v in value):
        raise InputError(f"mq.broker {key}: {value!r} is not a list of ids")
    return tuple(value)


def _spec(ctx: StepContext, params: Mapping[str, Any]) -> _Spec:
    """Every parameter checked against Amazon MQ's rules; no call is made before this passes."""
    name = params.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InputError(f"mq.broker name: {name!r} must be 1-50 letters, digits, '-' or '_' (Amazon MQ)")
    engine = str(params.get("engine", "RABBITMQ"))
    if engine != "RABBITMQ":
        raise InputError(f"mq.broker engine: {engine!r}; Kensium brokers are RABBITMQ")
    mode = str(params.get("deployment_mode", "SINGLE_INSTANCE"))
    if mode == "ACTIVE_STANDBY_MULTI_AZ":
        raise InputError("mq.broker deployment_mode: ACTIVE_STANDBY_MULTI_AZ is an ActiveMQ mode; a RabbitMQ "
                         "broker is SINGLE_INSTANCE or CLUSTER_MULTI_AZ")
    if mode not in _MODES:
        raise InputError(f"mq.broker deployment_mode: {mode!r} is not one of {', '.join(_MODES)}")
    version = params.get("engine_version")
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise InputError(f"mq.broker engine_version: {version!r} is not a RabbitMQ version such as '3.13' "
                         "(quote it in YAML)")
    kind = str(params.get("host_instance_type") or BY_PURPOSE)
    if kind == BY_PURPOSE:
        kind = by_purpose_type(ctx)
    if not _TYPE.fullmatch(kind):
        raise InputError(f"mq.broker host_instance_type: {kind!r} is not an Amazon MQ RabbitMQ type "
                         "(mq.t3.micro, mq.m5.large..., mq.m7g.large...)")
    if kind == "mq.t3.micro" and mode != "SINGLE_INSTANCE":
        raise InputError("mq.broker: mq.t3.micro brokers are single-instance only")
    public = params.get("publicly_accessible", True)
    auto_minor = params.get("auto_minor_version_upgrade", True)
    if not isinstance(public, bool) or not isinstance(auto_minor, bool):
        raise InputError("mq.broker publicly_accessible and auto_minor_version_upgrade must be true or false")
    user = params.get("admin_user", "admin")
    if not isinstance(user, str) or not _USER.fullmatch(user) or user.lower() == "guest":
        raise InputError(f"mq.broker admin_user: {user!r} must be 2-100 letters, digits, '.', '_' or '-', "
                         "and not guest (Amazon MQ RabbitMQ users)")
    ref = params.get("admin_password_ref")
    if not isinstance(ref, str):
        raise InputError("mq.broker admin_password_ref must be a password-manager reference")
    subnets, groups = _ids(params, "subnet_ids", _SUBNET), _ids(params, "security_groups", _SG)
    if mode == "SINGLE_INSTANCE" and len(subnets) != 1:
        raise InputError(f"mq.broker: a SINGLE_INSTANCE broker takes one subnet of the POS VPC, not {len(subnets)} "
                         "(without one, Amazon MQ puts it in the account's default VPC)")
    if public and groups:
        raise InputError("mq.broker: a public RabbitMQ broker takes no security groups (Amazon MQ keeps it "
                         "outside the VPC); drop security_groups or make it private")
    if not public and not subnets:
        raise InputError("mq.broker: a private broker needs subnet_ids")
    extra = params.get("tags") or {}
    if not isinstance(extra, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in extra.items()):
        raise InputError("mq.broker tags must map text keys to text values")
    return _Spec(name=name, engine_version=version, deployment_mode=mode, host_instance_type=kind, public=public,
                 admin_user=user, password_ref=ref, subnet_ids=subnets, security_groups=groups,
                 auto_minor=auto_minor, tags={"Name": name, **extra, "kprov:name": name})


def _all_pages(ctx: StepContext, operation: str, key: str, resource: str, **params: Any) -> list[Any]:
    """Every item of a read botocore has no paginator for (Amazon MQ's Describe*Options: NextToken)."""
    items: list[Any] = []
    token = ""
    while True:
        page = call(ctx.client("mq"), operation, resource=resource, sandbox=in_sandbox(ctx),
                    **params, **({"NextToken": token} if token else {}))
        items += (page or {}).get(key) or []
        token = str((page or {}).get("NextToken") or "")
        if not token:
            return items


def _runs(version: str, listed: Iterable[str] | None) -> bool:
    """Whether a listed version covers `version` (3.13 covers 3.13 and its patches, 3.13.7)."""
    return any(version == v or version.startswith(f"{v}.") for v in listed or ())


def fitting_types(ctx: StepContext, version: str, mode: str) -> list[str]:
    """The RabbitMQ host instance types Amazon MQ runs `version` on in `mode`, from its own answers
    (DescribeBrokerEngineTypes, DescribeBrokerInstanceOptions; RabbitMQ 4 runs on mq.m7g only); an InputError
    listing the versions when it offers no such version.
    https://docs.aws.amazon.com/amazon-mq/latest/api-reference/broker-instance-options.html"""
    engines = _all_pages(ctx, "DescribeBrokerEngineTypes", "BrokerEngineTypes", "RABBITMQ", EngineType="RABBITMQ")
    versions = sorted({str(v["Name"]) for e in engines for v in e.get("EngineVersions") or ()})
    if not _runs(version, versions):
        raise InputError(f"engine_version: {version} is not a RabbitMQ version Amazon MQ offers; it lists: "
                         f"{', '.join(versions) or 'none'}", hint="answer one of them")
    options = _all_pages(ctx, "DescribeBrokerInstanceOptions", "BrokerInstanceOptions", "RABBITMQ",
                         EngineType="RABBITMQ")
    return sorted({str(o["HostInstanceType"]) for o in options if _runs(version, o.get("SupportedEngineVersions"))
                   and mode in (o.get("SupportedDeploymentModes") or ())})


def offered(ctx: StepContext, spec: _Spec) -> None:
    """The broker's engine version and host instance type checked with Amazon MQ's own answers before any create;
    a refusal lists the valid choices."""
    fitting = fitting_types(ctx, spec.engine_version, spec.deployment_mode)
    if spec.host_instance_type not in fitting:
        raise InputError(f"host_instance_type: {spec.host_instance_type} does not run RabbitMQ {spec.engine_version} "
                         f"as {spec.deployment_mode} on Amazon MQ; the types that do: {', '.join(fitting) or 'none'}",
                         hint="answer one of those types, or another version")


def _find(ctx: StepContext, name: str) -> dict[str, Any] | None:
    """The broker named `name` (described), or None; two of that name is an error (moto allows it)."""
    client = ctx.client("mq")
    sandbox = in_sandbox(ctx)
    matches = [b for b in pages(client, "ListBrokers", "BrokerSummaries", resource=name, sandbox=sandbox)
               if b.get("BrokerName") == name]
    if not matches:
        return None
    if len(matches) > 1:
        ids = ", ".join(str(b.get("BrokerId")) for b in matches)
        raise StepError(f"{len(matches)} brokers are named {name} ({ids}); AWS keeps names unique",
                        hint="delete the extra broker by hand after checking which one is in use")
    # NotFoundException (or moto's bare 404): deleted between the listing and now
    return call(client, "DescribeBroker", resource=name, sandbox=sandbox, missing=("NotFoundException", "404"),
                BrokerId=str(matches[0]["BrokerId"]))


def _current(found: Mapping[str, Any]) -> dict[str, object]:
    return {"broker_id": found.get("BrokerId"), "engine": found.get("EngineType"),
            "engine_version": found.get("EngineVersion"), "deployment_mode": found.get("DeploymentMode"),
            "host_instance_type": found.get("HostInstanceType"), "publicly_accessible": found.get("PubliclyAccessible"),
            "state": found.get("BrokerState"), "users": [u.get("Username") for u in found.get("Users") or ()],
            "subnet_ids": found.get("SubnetIds")}


def _differences(spec: _Spec, found: Mapping[str, Any]) -> tuple[Difference, ...]:
    diffs: list[Difference] = []
    if found.get("EngineType") != "RABBITMQ":
        diffs.append(Difference("engine", found.get("EngineType"), "RABBITMQ"))
    if found.get("DeploymentMode") != spec.deployment_mode:
        diffs.append(Difference("deployment mode", found.get("DeploymentMode"), spec.deployment_mode))
    if found.get("HostInstanceType") != spec.host_instance_type:
        diffs.append(Difference("host instance type", found.get("HostInstanceType"), spec.host_instance_type))
    if found.get("PubliclyAccessible") is not spec.public:
        diffs.append(Difference("publicly accessible", found.get("PubliclyAccessible"), spec.public))
    version = str(found.get("EngineVersion") or "")
    if version != spec.engine_version and not version.startswith(spec.engine_version + "."):
        diffs.append(Difference("engine version", version, spec.engine_version))
    if spec.subnet_ids and sorted(found.get("SubnetIds") or ()) != sorted(spec.subnet_ids):
        diffs.append(Difference("subnets", found.get("SubnetIds"), list(spec.subnet_ids)))
    users = [u.get("Username") for u in found.get("Users") or ()]
    if users and spec.admin_user not in users:  # AWS may list no users for RabbitMQ: absence proves nothing
        diffs.append(Difference("admin user", users, spec.admin_user))
    return tuple(diffs)


def _outputs(found: Mapping[str, Any]) -> dict[str, object]:
    outputs: dict[str, object] = {
        "broker_id": found.get("BrokerId"), "broker_arn": found.get("BrokerArn"), "name": found.get("BrokerName"),
        "state": found.get("BrokerState"), "host_instance_type": found.get("HostInstanceType"),
        "engine_version": found.get("EngineVersion"),
    }
    instances = found.get("BrokerInstances") or []
    if instances:  # AWS lists them only once the broker is running
        outputs["console_url"] = instances[0].get("ConsoleURL")
        endpoints = [str(e) for e in instances[0].get("Endpoints") or ()]
        outputs["endpoints"] = endpoints
        amqps = [e for e in endpoints if e.startswith("amqps://")]
        if amqps:
            outputs["amqp_endpoint"] = amqps[0]
    return {k: v for k, v in outputs.items() if v is not None}


class MqBroker:
    """A shared Amazon MQ for RabbitMQ broker (mq-POS-NN) with its one admin user.

    Single-instance today (CLUSTER_MULTI_AZ is allowed for a future production cluster; ActiveMQ's
    ACTIVE_STANDBY is refused). `host_instance_type` is `by-purpose` (mq.m5.large when the
    environment's purpose is production, mq.t3.micro for staging, QA, development and demo) or a
    type such as mq.t3.micro, mq.m5.large or mq.m7g.large; an mq.m5 broker cannot be downgraded
    later. The admin user is `admin` (never `guest`); its password (`admin_password_ref`) is fetched
    from the password manager only to send it, after checking Amazon MQ's rules (12+ characters, 4
    distinct, none of , : =). A public broker takes no subnets or security groups.

    An existing broker that differs (type, mode, engine, version, access) is a finding; kprov never
    changes it. The create is followed by an aws.wait step until BrokerState is RUNNING.

    Outputs: broker_id, broker_arn, name, state, host_instance_type, engine_version, and, once
    running, console_url, endpoints and amqp_endpoint.
    """

    name: ClassVar[str] = "mq.broker"
    summary: ClassVar[str] = "A shared Amazon MQ for RabbitMQ broker with its admin user."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="name", rule="mq-broker", doc="The broker name, mq-POS-NN, unique in the account."),
        Param(name="engine", required=False, choices=("RABBITMQ",), default="RABBITMQ", doc="Always RABBITMQ."),
        Param(name="engine_version", kind="version", doc="RabbitMQ version as text, e.g. '3.13'."),
        Param(name="deployment_mode", required=False, choices=_MODES, default="SINGLE_INSTANCE",
              doc="SINGLE_INSTANCE (today) or CLUSTER_MULTI_AZ."),
        Param(name="host_instance_type", required=False, default=BY_PURPOSE,
              doc="by-purpose (micro for QA/staging, large for production) or e.g. mq.t3.micro, mq.m5.large."),
        Param(name="publicly_accessible", kind="bool", required=False, default=True, doc="A public broker."),
        Param(name="admin_user", rule="broker-admin-user", required=False, default="admin",
              doc="The one admin user: admin."),
        Param(name="admin_password_ref", doc="Password-manager reference of the admin password."),
        Param(name="subnet_ids", kind="list", required=False,
              doc="The broker's subnet in the POS VPC (exactly one for SINGLE_INSTANCE)."),
        Param(name="security_groups", kind="list", required=False, doc="A private broker's security group ids."),
        Param(name="auto_minor_version_upgrade", kind="bool", required=False, default=True,
              doc="Required by Amazon MQ for RabbitMQ 3.13 and later."),
        Param(name="tags", kind="map", required=False, doc="More tags."),
    )
    outputs: ClassVar[tuple[str, ...]] = (
        "broker_id", "broker_arn", "name", "state", "host_instance_type", "engine_version", "console_url",
        "endpoints", "amqp_endpoint")

    def not_undoable(self, params: Mapping[str, Any]) -> str:
        """Why `kprov undo` leaves it (shown in the undo plan)."""
        return ("kprov does not delete an Amazon MQ broker: client vhosts may live on it by now; delete it in the "
                "Amazon MQ console once no vhost is left")

    def check_params(self, params: Mapping[str, Any], ctx: CheckContext) -> Sequence[str]:
        """The subnets a deployment mode takes (CreateBroker's SubnetIds, cited above): SINGLE_INSTANCE exactly
        one; CLUSTER_MULTI_AZ none when public, at least one when private; several must be several zones' (not
        checkable without a read: `_spec` and AWS do it)."""
        if not ctx.known(params, "subnet_ids"):
            return []
        subnets = params.get("subnet_ids") or []
        count = len(subnets) if isinstance(subnets, list) else 0
        mode = params.get("deployment_mode", "SINGLE_INSTANCE")
        if mode == "SINGLE_INSTANCE" and count != 1:
            return [f"subnet_ids: a SINGLE_INSTANCE broker takes exactly one subnet of the POS VPC, not {count} "
                    "(for example [subnet-0123456789abcdef0]); without one Amazon MQ uses the default VPC"]
        public = params.get("publicly_accessible", True)
        if mode == "CLUSTER_MULTI_AZ" and public is False and count == 0:
            return ["subnet_ids: a private CLUSTER_MULTI_AZ broker needs at least one subnet "
                    "(for example [subnet-0123456789abcdef0])"]
        return []

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        spec = _spec(ctx, params)
        found = _find(ctx, spec.name)
        if found is None:
            offered(ctx, spec)  # before any create: Amazon MQ's own answer, not a constant
            return Probe(done=False, note=f"{spec.name} does not exist: it will be created", desired=spec.desired())
        diffs = _differences(spec, found)
        if diffs:
            return Probe(done=False, note=f"{spec.name} exists but differs; kprov does not change it",
                         current=_current(found), desired=spec.desired(), differences=diffs)
        return Probe(done=True, note=f"{spec.name} exists ({found.get('BrokerState')})", current=_current(found),
                     desired=spec.desired(), outputs=_outputs(found))

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        from kensium_provision.secret import check_password

        spec = _spec(ctx, params)
        if probe.current:
            raise StepError(f"{spec.name} exists but differs: " + "; ".join(str(d) for d in probe.differences),
                            hint="kprov does not change a broker (an mq.m5 broker cannot become mq.t3.micro): "
                                 "fix the answers to match it, or choose another name")
        if not spec.password_ref:  # the credential step found the broker but not its password
            raise InputError(f"no admin password for {spec.name}: its password-manager entry is missing")
        password = ctx.runtime.vault.fetch(spec.password_ref)
        problems = check_password("amazon-mq", password)
        if problems:  # never quotes the value
            raise InputError(f"the admin password of {spec.name} would be refused by Amazon MQ: {'; '.join(problems)}")
        token = ctx.token()
        client = create_client(ctx.runtime.aws, "mq", client_token=token)

        def create() -> dict[str, Any]:
            optional: dict[str, object] = {}
            if spec.subnet_ids:
                optional["SubnetIds"] = list(spec.subnet_ids)
            if spec.security_groups:
                optional["SecurityGroups"] = list(spec.security_groups)
            answer = client.create_broker(
                BrokerName=spec.name, EngineType="RABBITMQ", EngineVersion=spec.engine_version,
                DeploymentMode=spec.deployment_mode, HostInstanceType=spec.host_instance_type,
                PubliclyAccessible=spec.public, AutoMinorVersionUpgrade=spec.auto_minor,
                AuthenticationStrategy="SIMPLE",
                Users=[{"Username": spec.admin_user, "Password": password.reveal()}],  # one user only
                CreatorRequestId=token, Tags=dict(spec.tags), **optional)
            broker_id = str(answer["BrokerId"])  # the create says which broker it made: no search by name
            made = call(ctx.client("mq"), "DescribeBroker", resource=spec.name, sandbox=in_sandbox(ctx),
                        missing=("NotFoundException", "404"), BrokerId=broker_id)
            # Not visible to a describe yet (eventual consistency): what the create said is enough.
            return made or {"BrokerId": broker_id, "BrokerArn": answer.get("BrokerArn"), "BrokerName": spec.name,
                            "BrokerState": "CREATION_IN_PROGRESS"}

        ctx.progress(f"creating {spec.name} ({spec.host_instance_type}, {spec.deployment_mode})")
        with translating("mq", "CreateBroker", spec.name, sandbox=in_sandbox(ctx)):
            created = create_once(probe=lambda: _find(ctx, spec.name), create=create, client_token=token,
                                  sleep=ctx.runtime.sleep, forget=ctx.forget_reads)
        found = created.resource
        if not created.created or created.reconciled:
            diffs = _differences(spec, found)
            if diffs:
                raise StepError(f"{spec.name} appeared meanwhile and differs: " + "; ".join(map(str, diffs)))
        return _outputs(found)

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        spec = _spec(ctx, params)
        found = _find(ctx, spec.name)
        if found is None:
            return (Difference("broker", None, spec.name),)
        diffs = list(_differences(spec, found))
        state = found.get("BrokerState")
        # Right after a create the broker is CREATION_IN_PROGRESS for many minutes (the next step
        # waits); `check` wants it RUNNING, and a failed state is wrong in either mode.
        starting_ok = ctx.runtime.mode is not Mode.CHECK and state in _STARTING
        if state in FAILED_STATES or (state != "RUNNING" and not starting_ok):
            diffs.append(Difference("state", state, "RUNNING"))
        return tuple(diffs)
