"""The `rds.db-instance` step type: a shared SQL Server 2019 instance (Express or Web) on Amazon RDS.

Every parameter is checked against AWS's own rules before any call (moto accepts 5 GB of storage
and any password; AWS does not), the master password is fetched from the vault only to send it,
and the create is describe-before-create with reconcile-after-error: CreateDBInstance has no
idempotency token, so a lost response is settled by describing, never by creating again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from kensium_provision.aws.call import pages, translating
from kensium_provision.aws.idempotent import create_client, create_once
from kensium_provision.errors import InputError, StepError
from kensium_provision.model import Mode
from kensium_provision.steps.aws_helpers import in_sandbox, step_call
from kensium_provision.steps.base import Difference, Param, Probe, StepContext
from kensium_provision.steps.capacity import database_limit

__all__ = ["EDITIONS", "FAILED_STATES", "SETTLING_STATES", "USABLE_STATES", "RdsDbInstance", "RdsInstanceReady",
           "engine_versions", "offered", "offered_version", "orderable_classes", "usable"]

EDITIONS: Mapping[str, str] = {"express": "sqlserver-ex", "web": "sqlserver-web"}
_EDITION_OF = {engine: edition.capitalize() for edition, engine in EDITIONS.items()}
# DB instance states, from the RDS User Guide's table "Viewing Amazon RDS DB instance status":
# https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/accessing-monitoring.html#Overview.DBInstance.Status
# Usable: the instance serves connections ("backing-up" every night, "storage-optimization" is "fully
# operational", modifying and maintenance while AWS works on it): a client install may go on.
USABLE_STATES = frozenset({
    "available", "backing-up", "configuring-enhanced-monitoring", "configuring-iam-database-auth",
    "configuring-log-exports", "maintenance", "modifying", "resetting-master-credentials", "storage-optimization",
})
# On the way to usable by themselves: worth waiting for.
SETTLING_STATES = frozenset({
    "creating", "rebooting", "starting", "upgrading", "renaming", "moving-to-vpc", "converting-to-vpc",
})
# Never usable again without someone acting (or going away).
FAILED_STATES = frozenset({
    "failed", "incompatible-credentials", "incompatible-network", "incompatible-option-group",
    "incompatible-parameters", "incompatible-restore", "inaccessible-encryption-credentials",
    "restore-error", "storage-full", "insufficient-capacity", "deleting", "stopped", "stopping",
})


def usable(status: object) -> bool:
    """Whether an RDS DB instance in `status` serves connections (the one test of it in kprov)."""
    return status in USABLE_STATES


_STORAGE_GB = (20, 16384)  # SQL Server Express/Web on gp2/gp3 (moto accepts anything)
_VERSION = re.compile(r"^\d{2}\.\d{2}(?:(?:\.\d+){1,2}(?:\.v\d+)?)?$")  # 15.00.4415.2.v1, or 15.00 (latest 15.00.x)
_CLASS = re.compile(r"^db\.[a-z0-9]+\.[a-z0-9]+$")
_ZONE = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d[a-z]$")
_SG_ID = re.compile(r"^sg-[0-9a-f]{8,17}$")
_SUBNET_GROUP = re.compile(r"^[A-Za-z0-9 ._-]{1,255}$")
# CreateDBInstance's MasterUsername, botocore's rds model: "Must be 1 to 16 letters, numbers, or
# underscores. First character must be a letter." (moto takes any length)
_MASTER_USER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,15}$")
_RESERVED_USERS = frozenset({"sa", "admin_user", "rdsadmin", "public", "sysadmin", "guest", "dbo"})
_HOSTING = ("Shared", "Dedicated")
_GROUPS = "security groups"  # the one difference ModifyDBInstance puts right in place


@dataclass(frozen=True, slots=True, kw_only=True)
class _Spec:
    """The validated parameters of one instance."""

    name: str  # as the operator wrote it (db-POS-01); AWS stores db-pos-01
    engine: str
    engine_version: str
    instance_class: str
    storage: int
    zone: str
    subnet_group: str
    security_group_ids: tuple[str, ...]
    public: bool
    master_username: str
    password_ref: str
    hosting: str
    tags: Mapping[str, str]

    @property
    def identifier(self) -> str:
        return self.name.lower()

    @property
    def major(self) -> str:
        return ".".join(self.engine_version.split(".")[:2])  # 15.00: SQL Server 2019

    def desired(self) -> dict[str, object]:
        return {"identifier": self.name, "edition": _shown_edition(self.engine),
                "engine_version": self.engine_version, "instance_class": self.instance_class,
                "allocated_storage": self.storage, "zone": self.zone, "db_subnet_group": self.subnet_group,
                "security_group_ids": list(self.security_group_ids), "publicly_accessible": self.public,
                "license_model": "license-included", "master_username": self.master_username,
                "master_password": f"<from the password manager: {self.password_ref}>", "tags": dict(self.tags)}


def _shown_edition(engine: str) -> str:
    return f"{_EDITION_OF.get(engine, '?')} ({engine})"


def _text(params: Mapping[str, Any], key: str, pattern: re.Pattern[str], what: str) -> str:
    value = params.get(key)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InputError(f"rds.db-instance {key}: {value!r} is not {what}")
    return value


def _shape(pattern: re.Pattern[str], what: str) -> Any:
    """A `Param.check`: the engine refuses a value of the wrong shape before the first change."""
    def check(value: object) -> str | None:
        return None if isinstance(value, str) and pattern.fullmatch(value) else f"{value!r} is not {what}"
    return check


def _spec(params: Mapping[str, Any]) -> _Spec:
    """Every parameter checked against AWS's rules; no call is made before this passes."""
    name = params.get("identifier")
    if not isinstance(name, str) or not name:
        raise InputError("rds.db-instance needs `identifier` (e.g. db-POS-01)")
    edition = str(params.get("edition", "")).lower()
    if edition not in EDITIONS:
        raise InputError(f"rds.db-instance edition: {params.get('edition')!r} is not Express or Web "
                         "(SQL Server 2019 Express for small Client Hosted databases under 10 GB, Web otherwise)")
    storage = params.get("allocated_storage")
    if isinstance(storage, bool) or not isinstance(storage, int) or not _STORAGE_GB[0] <= storage <= _STORAGE_GB[1]:
        raise InputError(f"rds.db-instance allocated_storage: {storage!r} GB is outside {_STORAGE_GB[0]}-"
                         f"{_STORAGE_GB[1]} GB, what RDS allows for SQL Server {edition.capitalize()}")
    groups = params.get("security_group_ids") or []
    if not isinstance(groups, list) or not groups or not all(isinstance(g, str) and _SG_ID.fullmatch(g)
                                                             for g in groups):
        raise InputError(f"rds.db-instance security_group_ids: {groups!r} is not a list of security group ids "
                         "(sg-...)")
    public = params.get("publicly_accessible", True)
    if not isinstance(public, bool):
        raise InputError("rds.db-instance publicly_accessible must be true or false")
    user = _text(params, "master_username", _MASTER_USER, "a master user name (a letter, then letters, digits "
                 "or _; 1 to 16 characters)")
    if user.lower() in _RESERVED_USERS:
        raise InputError(f"rds.db-instance master_username: {user!r} is reserved by SQL Server or RDS")
    ref = params.get("master_password_ref")
    if not isinstance(ref, str):
        raise InputError("rds.db-instance master_password_ref must be a password-manager reference")
    hosting = str(params.get("hosting") or "Shared")
    if hosting not in _HOSTING:
        raise InputError(f"rds.db-instance hosting: {hosting!r} is not Shared or Dedicated")
    extra = params.get("tags") or {}
    if not isinstance(extra, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in extra.items()):
        raise InputError("rds.db-instance tags must map text keys to text values")
    # AWS lower-cases the identifier: the tag keeps the name as the operator wrote it (db-POS-01).
    tags = {"Name": name, **extra, "kprov:name": name, "kprov:hosting": hosting}
    return _Spec(
        name=name, engine=EDITIONS[edition],
        engine_version=_text(params, "engine_version", _VERSION, "an RDS SQL Server version such as 15.00.4415.2.v1"),
        instance_class=_text(params, "instance_class", _CLASS, "an instance class such as db.t3.small"),
        storage=storage, zone=_text(params, "zone", _ZONE, "an availability zone such as us-east-1a"),
        subnet_group=_text(params, "db_subnet_group", _SUBNET_GROUP, "a DB subnet group name"),
        security_group_ids=tuple(groups), public=public, master_username=user, password_ref=ref,
        hosting=hosting, tags=tags)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def engine_versions(ctx: StepContext, engine: str) -> list[str]:
    """The available versions of an engine, oldest first, as DescribeDBEngineVersions lists them (all pages)."""
    found = pages(ctx.client("rds"), "DescribeDBEngineVersions", "DBEngineVersions", resource=engine,
                  sandbox=in_sandbox(ctx), Engine=engine)
    return sorted({str(v["EngineVersion"]) for v in found if v.get("Status", "available") == "available"},
                  key=_version_key)


def offered_version(ctx: StepContext, engine: str, version: str) -> str:
    """The listed version to create: `version` itself, or for a major alone (`15.00`) the latest 15.00.x AWS
    lists; an InputError listing the versions when AWS offers neither."""
    listed = engine_versions(ctx, engine)
    if version in listed:
        return version
    same_major = [v for v in listed if v.startswith(version + ".")]
    if re.fullmatch(r"\d+\.\d+", version) and same_major:
        return same_major[-1]
    raise InputError(f"engine_version: {version} is not an engine version AWS offers for {_shown_edition(engine)}; "
                     f"AWS lists: {', '.join(listed[-8:]) or 'none'}",
                     hint="answer one of them, or the major alone (15.00) for the latest")


def orderable_classes(ctx: StepContext, engine: str, version: str) -> list[str]:
    """The classes DescribeOrderableDBInstanceOptions offers for an engine version, licence included (all pages).
    https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DescribeOrderableDBInstanceOptions.html"""
    found = pages(ctx.client("rds"), "DescribeOrderableDBInstanceOptions", "OrderableDBInstanceOptions",
                  resource=engine, sandbox=in_sandbox(ctx), Engine=engine, EngineVersion=version,
                  LicenseModel="license-included")
    return sorted({str(o["DBInstanceClass"]) for o in found})


def offered(ctx: StepContext, spec: _Spec) -> str:
    """The engine version to create, checked with AWS's own answers before any create: a version AWS lists for
    the edition (`offered_version`) and an instance class it offers for that version. A refusal lists the valid
    choices."""
    version = offered_version(ctx, spec.engine, spec.engine_version)
    classes = orderable_classes(ctx, spec.engine, version)
    if spec.instance_class not in classes:
        raise InputError(f"instance_class: {spec.instance_class} is not offered for {_shown_edition(spec.engine)} "
                         f"{version} (licence included); AWS offers: {', '.join(classes) or 'none'}",
                         hint="answer one of those classes")
    return version


def _describe(ctx: StepContext, identifier: str) -> dict[str, Any] | None:
    """The instance, or None; RDS matches identifiers ignoring case (it stores them lower-case)."""
    found = step_call(ctx, "rds", "DescribeDBInstances", resource=identifier, DBInstanceIdentifier=identifier.lower(),
                      missing=("DBInstanceNotFound", "DBInstanceNotFoundFault"))
    instances = (found or {}).get("DBInstances") or []
    return dict(instances[0]) if instances else None


def _tags(found: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in found.get("TagList") or ()}


def _current(found: Mapping[str, Any]) -> dict[str, object]:
    return {"identifier": found.get("DBInstanceIdentifier"), "edition": _shown_edition(str(found.get("Engine"))),
            "engine_version": found.get("EngineVersion"), "instance_class": found.get("DBInstanceClass"),
            "allocated_storage": found.get("AllocatedStorage"), "zone": found.get("AvailabilityZone"),
            "publicly_accessible": found.get("PubliclyAccessible"), "status": found.get("DBInstanceStatus")}


def _differences(spec: _Spec, found: Mapping[str, Any]) -> tuple[Difference, ...]:
    diffs: list[Difference] = []
    if found.get("Engine") != spec.engine:
        diffs.append(Difference("edition", _shown_edition(str(found.get("Engine"))), _shown_edition(spec.engine)))
    version = str(found.get("EngineVersion") or "")
    if not version.startswith(spec.major + "."):  # minor upgrades are AWS's business; the major is ours
        diffs.append(Difference("engine version", version, f"{spec.major}.x (from {spec.engine_version})"))
    if found.get("AvailabilityZone") != spec.zone:
        diffs.append(Difference("availability zone", found.get("AvailabilityZone"), spec.zone))
    if found.get("PubliclyAccessible") is not spec.public:
        diffs.append(Difference("publicly accessible", found.get("PubliclyAccessible"), spec.public))
    if found.get("DBInstanceClass") != spec.instance_class:
        diffs.append(Difference("instance class", found.get("DBInstanceClass"), spec.instance_class))
    groups = sorted(g["VpcSecurityGroupId"] for g in found.get("VpcSecurityGroups") or ()
                    if g.get("Status") != "removing")
    if groups != sorted(spec.security_group_ids):  # e.g. an instance from before SG-POS-DB: the hosts cannot reach it
        diffs.append(Difference(_GROUPS, groups, sorted(spec.security_group_ids)))
    return tuple(diffs)


def _outputs(spec: _Spec, found: Mapping[str, Any]) -> dict[str, object]:
    outputs: dict[str, object] = {
        "identifier": found["DBInstanceIdentifier"], "name": _tags(found).get("kprov:name", spec.name),
        "zone": found.get("AvailabilityZone"), "engine": found.get("Engine"),
        "engine_version": found.get("EngineVersion"), "status": found.get("DBInstanceStatus"),
        "arn": found.get("DBInstanceArn"),
    }
    endpoint = found.get("Endpoint") or {}
    if endpoint.get("Address"):  # AWS gives the endpoint only once the instance is far enough along
        outputs["endpoint"], outputs["port"] = endpoint["Address"], endpoint.get("Port", 1433)
    return {k: v for k, v in outputs.items() if v is not None}


def _use(ctx: StepContext, found: Mapping[str, Any]) -> str:
    """In `check shared`: how many client databases the instance holds of what its class allows (client records)."""
    if ctx.runtime.mode is not Mode.CHECK:
        return ""
    from kensium_provision.steps.lookups import databases_by_instance

    used = databases_by_instance(ctx)
    names = {str(found.get("DBInstanceIdentifier", "")).lower(), _tags(found).get("kprov:name", "").lower()} - {""}
    count, limit = sum(used.get(n, 0) for n in names), database_limit(str(found.get("DBInstanceClass", "")))
    return f"; {count} of {limit} client databases{' (full)' if count >= limit else ''}"


class RdsDbInstance:
    """A SQL Server 2019 instance on RDS: Express or Web edition, licence included, publicly accessible.

    `identifier` follows the rds-instance rule (db-POS-NN); AWS stores it lower-case, so it is
    matched ignoring case and the name as written is kept in the `kprov:name` tag, beside
    `kprov:hosting` (Shared or Dedicated). `edition` Express or Web gives the engine sqlserver-ex or
    sqlserver-web; `engine_version` is a 2019 version (15.00.x) as text. Storage must be 20-16384 GB
    and the master password (`master_password_ref`, fetched from the password manager only to
    send it) 8-128 printable characters without / @ " or space: both are checked before any call.

    An existing instance that differs (another edition, zone, class, public access or major
    version) is a finding; kprov never changes it in place, except its security groups, which
    ModifyDBInstance sets back at once (an instance made before SG-POS-DB gets it). The create is followed by an
    rds.instance-ready step that waits until the instance is usable; `check` requires it usable
    (`available`, or `backing-up`, `modifying`... : `USABLE_STATES`).

    Outputs: identifier (as AWS returns it), name, zone, engine, engine_version, status, arn, and
    endpoint and port once AWS has assigned them.
    """

    name: ClassVar[str] = "rds.db-instance"
    summary: ClassVar[str] = "A shared SQL Server 2019 (Express or Web) instance on Amazon RDS."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="identifier", rule="rds-instance", doc="The instance name, db-POS-NN."),
        Param(name="edition", choices=("Express", "Web"), doc="SQL Server 2019 edition."),
        Param(name="engine_version", kind="version",
              doc="RDS engine version, SQL Server 2019 = 15.00.x, e.g. 15.00.4415.2.v1 (15.00: AWS's latest 15.00.x).",
              check=_shape(_VERSION, "an RDS SQL Server version such as 15.00.4415.2.v1 or 15.00")),
        Param(name="instance_class", doc="DB instance class, e.g. db.t3.small.",
              check=_shape(_CLASS, "an instance class such as db.t3.small")),
        Param(name="allocated_storage", kind="int", minimum=_STORAGE_GB[0], maximum=_STORAGE_GB[1],
              doc="Storage in GB, 20-16384."),
        Param(name="zone", doc="Availability zone (one of the subnet group's)."),
        Param(name="db_subnet_group", doc="The VPC's DB subnet group."),
        Param(name="security_group_ids", kind="list", doc="VPC security group ids, e.g. SG-POS-OPS's."),
        Param(name="publicly_accessible", kind="bool", required=False, default=True,
              doc="Reachable from outside the VPC (needed today for the legacy sync)."),
        Param(name="master_username", doc="The master login (a letter, then letters, digits or _; 1-16).",
              check=_shape(_MASTER_USER, "a master user name (a letter, then letters, digits or _; 1 to 16 "
                                         "characters)")),
        Param(name="master_password_ref", doc="Password-manager reference of the master password."),
        Param(name="hosting", required=False, choices=_HOSTING, default="Shared",
              doc="Shared (many clients) or Dedicated (one client); tagged kprov:hosting."),
        Param(name="tags", kind="map", required=False, doc="More tags."),
    )
    outputs: ClassVar[tuple[str, ...]] = (
        "identifier", "name", "zone", "engine", "engine_version", "status", "arn", "endpoint", "port")

    def not_undoable(self, params: Mapping[str, Any]) -> str:
        """Why `kprov undo` leaves it (shown in the undo plan)."""
        return ("kprov does not delete an RDS instance: it may hold client databases by now, and a deletion is final;"
                " delete it in the RDS console after a final snapshot once nothing uses it")

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        spec = _spec(params)
        found = _describe(ctx, spec.name)
        if found is None:
            version = offered(ctx, spec)  # before any create: AWS's own answer, not a constant
            return Probe(done=False, note=f"{spec.name} does not exist: it will be created",
                         desired={**spec.desired(), "engine_version": version})
        diffs = _differences(spec, found)
        if diffs:
            return Probe(done=False, note=f"{spec.name} exists but differs; kprov does not change it in place",
                         current=_current(found), desired=spec.desired(), differences=diffs)
        return Probe(done=True, note=f"{spec.name} exists ({found.get('DBInstanceStatus')}){_use(ctx, found)}",
                     current=_current(found), desired=spec.desired(), outputs=_outputs(spec, found))

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        from kensium_provision.secret import check_password

        spec = _spec(params)
        if probe.current:
            fixed_by_hand = [d for d in probe.differences if d.field != _GROUPS]
            if fixed_by_hand:
                raise StepError(f"{spec.name} exists but differs: " + "; ".join(map(str, fixed_by_hand)),
                                hint="edition and zone cannot be changed in place: choose another name for a new "
                                     "instance, or fix the answers to match the existing one")
            # Only the security groups differ: RDS changes them in place, without a restart.
            step_call(ctx, "rds", "ModifyDBInstance", resource=spec.name, DBInstanceIdentifier=spec.identifier,
                      VpcSecurityGroupIds=list(spec.security_group_ids), ApplyImmediately=True)
            ctx.forget_reads()
            found = _describe(ctx, spec.name)
            return _outputs(spec, found or {"DBInstanceIdentifier": spec.identifier})
        if not spec.password_ref:  # the credential step found the instance's owner but not its password
            raise InputError(f"no master password for {spec.name}: its password-manager entry is missing")
        password = ctx.runtime.vault.fetch(spec.password_ref)
        problems = check_password("rds-sqlserver-master", password, username=spec.master_username)
        if problems:  # never quotes the value
            raise InputError(f"the master password of {spec.name} would be refused by RDS: {'; '.join(problems)}")
        version = offered(ctx, spec)
        client = create_client(ctx.runtime.aws, "rds")

        def create() -> dict[str, Any]:
            response = client.create_db_instance(
                DBInstanceIdentifier=spec.name, Engine=spec.engine, EngineVersion=version,
                DBInstanceClass=spec.instance_class, AllocatedStorage=spec.storage, LicenseModel="license-included",
                MasterUsername=spec.master_username, MasterUserPassword=password.reveal(),
                DBSubnetGroupName=spec.subnet_group, VpcSecurityGroupIds=list(spec.security_group_ids),
                AvailabilityZone=spec.zone, PubliclyAccessible=spec.public, MultiAZ=False,  # Express has no Multi-AZ
                Tags=[{"Key": k, "Value": v} for k, v in spec.tags.items()])
            return dict(response["DBInstance"])

        ctx.progress(f"creating {spec.name} ({_shown_edition(spec.engine)}) in {spec.zone}")
        with translating("rds", "CreateDBInstance", spec.name, sandbox=in_sandbox(ctx)):
            created = create_once(probe=lambda: _describe(ctx, spec.name), create=create, client_token=None,
                                  sleep=ctx.runtime.sleep, forget=ctx.forget_reads)
        found = created.resource
        if not created.created or created.reconciled:
            diffs = _differences(spec, found)  # made by someone else meanwhile, or our lost create
            if diffs:
                raise StepError(f"{spec.name} appeared meanwhile and differs: " + "; ".join(map(str, diffs)))
        return _outputs(spec, found)

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        spec = _spec(params)
        found = _describe(ctx, spec.name)
        if found is None:
            return (Difference("instance", None, spec.name),)
        diffs = list(_differences(spec, found))
        status = found.get("DBInstanceStatus")
        # Right after a create, AWS says `creating` for many minutes (the next step waits);
        # `check` wants it usable, and a failed state is wrong in either mode.
        if status in FAILED_STATES or (ctx.runtime.mode is Mode.CHECK and not usable(status)):
            diffs.append(Difference("status", status, "usable (available, backing-up, modifying...)"))
        return tuple(diffs)


class RdsInstanceReady:
    """An RDS instance is usable (its status one that serves connections) and runs the expected engine.

    Usable is `USABLE_STATES` (the RDS User Guide's status table): `available`, and the states a
    working instance passes through (the nightly `backing-up`, `modifying`, `maintenance`,
    `storage-optimization`...), so a client install is never refused during a backup. A status on its
    way there (`creating`, `rebooting`, `starting`...) is waited for within `budget` seconds in apply
    (0: never wait); a failed or stopped one is a failure. Read through the run's facts (the fleet
    check answers it from its snapshot). Params: `identifier`, `engine` (optional), `budget`,
    `interval`. Outputs: identifier, status, engine, engine_version, zone, endpoint, port,
    master_user, vpc_id.

    Example: `params: {identifier: '{{ rds_instance }}', engine: sqlserver-web}`, `outputs: {db_zone: zone}`.
    """

    name: ClassVar[str] = "rds.instance-ready"
    summary: ClassVar[str] = "An RDS instance is usable (available, backing-up, modifying...) with the expected engine."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="identifier", doc="The instance (any case: RDS keeps it lower-case)."),
        Param(name="engine", required=False, default="", doc="The engine it must run, e.g. sqlserver-web."),
        Param(name="budget", kind="int", required=False, default=0, doc="Seconds to wait for a starting instance."),
        Param(name="interval", kind="int", required=False, default=30, doc="Seconds between polls."),
    )
    outputs: ClassVar[tuple[str, ...]] = (
        "identifier", "status", "engine", "engine_version", "zone", "endpoint", "port", "master_user", "vpc_id")

    def _read(self, ctx: StepContext, identifier: str) -> dict[str, Any] | None:
        from kensium_provision.steps.generic import call_read

        response = call_read(ctx, "rds", "DescribeDBInstances",
                             {"Filters": [{"Name": "db-instance-id", "Values": [identifier.lower()]}]})
        found = response.get("DBInstances") or []
        return dict(found[0]) if found else None

    @staticmethod
    def _outputs(found: Mapping[str, Any]) -> dict[str, object]:
        endpoint = found.get("Endpoint") or {}
        outputs = {"identifier": found.get("DBInstanceIdentifier"), "status": found.get("DBInstanceStatus"),
                   "engine": found.get("Engine"), "engine_version": found.get("EngineVersion"),
                   "zone": found.get("AvailabilityZone"), "endpoint": endpoint.get("Address"),
                   "port": endpoint.get("Port"), "master_user": found.get("MasterUsername"),
                   "vpc_id": (found.get("DBSubnetGroup") or {}).get("VpcId")}
        return {k: v for k, v in outputs.items() if v is not None}

    def _judge(self, params: Mapping[str, Any], found: Mapping[str, Any] | None) -> list[Difference]:
        identifier, engine = str(params["identifier"]), str(params.get("engine") or "")
        if found is None:
            return [Difference("instance", None, identifier)]
        problems = []
        if engine and found.get("Engine") != engine:
            problems.append(Difference("engine", found.get("Engine"), engine))
        if not usable(found.get("DBInstanceStatus")):
            problems.append(Difference("status", found.get("DBInstanceStatus"), "usable (available, backing-up...)"))
        return problems

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        found = self._read(ctx, str(params["identifier"]))
        problems = self._judge(params, found)
        status = (found or {}).get("DBInstanceStatus")
        note = f"{params['identifier']} is {status} (usable)" if not problems else "; ".join(map(str, problems))
        if status in SETTLING_STATES and not [d for d in problems if d.field != "status"]:
            note = f"{params['identifier']} is {status}: will wait until it is usable"
        return Probe(done=not problems, note=note, current={"status": status}, differences=tuple(problems),
                     outputs=self._outputs(found) if found else {})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        identifier = str(params["identifier"])
        found = self._read(ctx, identifier)
        wrong = [d for d in self._judge(params, found) if d.field != "status"]
        if found is None or wrong:
            raise StepError(f"{identifier}: " + "; ".join(map(str, wrong or self._judge(params, found))),
                            hint="answer another instance, or create it first: kprov provision shared rds")
        runtime = ctx.runtime
        start, budget = runtime.monotonic(), float(params.get("budget") or 0)
        while not usable(status := found.get("DBInstanceStatus")):
            left = budget - (runtime.monotonic() - start)
            if status not in SETTLING_STATES or left <= 0:
                why = "a state it does not leave by itself" if status not in SETTLING_STATES else \
                    f"still so after {budget:.0f} s"
                raise StepError(f"{identifier} is {status}: {why}",
                                hint="see the instance's events in the RDS console; run the same command again "
                                     "once it is usable")
            ctx.progress(f"waiting for {identifier}: {status}, {left:.0f} s left")
            runtime.sleep(min(float(params.get("interval") or 30), left))
            ctx.forget_reads()
            found = self._read(ctx, identifier) or found
        return self._outputs(found)

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        return self._judge(params, self._read(ctx, str(params["identifier"])))
