"""Step types of offboarding (`kprov remove-client`, checklists/client/remove.yaml): a client's install in reverse.

What the install made is read back from the client record (`client.removal-record`); then, in order: a
final native backup of the client database (`sql.final-backup`), the database and login dropped
(`sql.drop-database`, `sql.drop-login`), the hub vhost and its user deleted (`rabbitmq.remove-vhost`),
the IAM access keys deactivated (`iam.deactivate-access-keys`), the bucket kept or archived
(`s3.retain-bucket`), the client's password-manager entries scheduled for deletion
(`credential.schedule-deletion`), the Route 53 record released (`route53.release-record`) and the record
marked `removed` (`client.mark-removed`), kept for good.

Each reuses the home of its concern: the SQL connection, quoting and manual fallback of `steps.sql`, the
management client of `steps.rabbitmq_vhost`, the bucket readers of `steps.s3`, the conditional record write
of `steps.client_record`. Every probe is a read, so `--dry-run` makes no write; each act is idempotent
(a resumed or repeated removal finds what is gone and does nothing more).
"""

# ruff: noqa: S608 - T-SQL is built here on purpose, from names allow-listed by sql.check_identifier and quoted
# by sql.quote_identifier / quote_string (as in steps.sql).

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

from kensium_provision.aws.call import call, pages
from kensium_provision.errors import AbortedError, InputError, StepError
from kensium_provision.model import InputSpec
from kensium_provision.records.clients import CLAIMED, REMOVED, UNREADABLE, ClientRecord, get_client, utc_now
from kensium_provision.steps.base import Difference, Param, Probe, StepContext
from kensium_provision.steps.client_record import records_table, write_record
from kensium_provision.steps.facts import facts
from kensium_provision.steps.rabbitmq_vhost import BROKER_PARAMS, checked_vhost_user, management_client
from kensium_provision.steps.s3 import caller_partition
from kensium_provision.steps.sql import (
    CONNECTION_PARAMS,
    SqlScript,
    checked_name,
    connection,
    probe_by_hand,
    quote_identifier,
    quote_string,
    rows,
    run_batches,
    run_script,
)

__all__ = [
    "BACKUP_OPTION",
    "STEP_TYPES",
    "ClientMarkRemoved",
    "ClientRemovalRecord",
    "CredentialScheduleDeletion",
    "IamDeactivateAccessKeys",
    "RabbitMQRemoveVhost",
    "Route53ReleaseRecord",
    "S3RetainBucket",
    "SqlDropDatabase",
    "SqlDropLogin",
    "SqlFinalBackup",
    "drop_database_script",
    "drop_login_script",
]

# RDS for SQL Server native backup needs this option in the instance's option group; the backup is
# msdb.dbo.rds_backup_database and its progress msdb.dbo.rds_task_status
# (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/SQLServer.Procedural.Importing.html).
BACKUP_OPTION = "SQLSERVER_BACKUP_RESTORE"
_TASK_DONE = {"SUCCESS"}
_TASK_FAILED = {"ERROR", "CANCELLED", "CANCEL_REQUESTED"}


# --- the client record: what the install made ---------------------------------------------------------


_RECORD_OUTPUTS = ("client_name", "rds_instance", "database", "login", "broker", "vhost", "rabbitmq_user",
                   "iam_user", "s3_bucket", "host_name", "ec2_host")


class ClientRemovalRecord:
    """Read what a client's install made from its client record: the names and places the removal undoes.

    A read, always done. No record, an unreadable one, or an install still in progress (`claimed`) stops
    the run before any change (exit 3): kprov removes only what it knows it installed. Outputs the record's
    names (`database`, `login`, `vhost`, `rabbitmq_user`, `iam_user`, `s3_bucket`, `rds_instance`,
    `broker`, `host_name`, `ec2_host`, `client_name`), `removed` (the record says so already), and from the
    install's answers `dns_in_route53`, `dns_zone_id`, `domain`; `by_hand` and `dns_by_hand` say whether the
    manual steps (the tenant, a DNS record outside Route 53) are still to do.

    Example: `org_id: "{{ org_id }}"`, `outputs: {database: database, broker: broker}`.
    """

    name: ClassVar[str] = "client.removal-record"
    summary: ClassVar[str] = "Read a client's record: what its install made, for the removal to undo."
    params: ClassVar[tuple[Param, ...]] = (Param(name="org_id", rule="org-id", doc="The organization id."),)
    outputs: ClassVar[tuple[str, ...]] = (*_RECORD_OUTPUTS, "removed", "status", "dns_in_route53", "dns_zone_id",
                                          "domain", "record", "by_hand", "dns_by_hand")

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        org_id, table = str(params["org_id"]), records_table(ctx)
        record = facts(ctx).client_record(ctx, org_id, table)
        where = f"{table}/{org_id}"
        if record is None:
            raise InputError(f"no client record {where}: kprov removes only a client it installed",
                             hint="`kprov check client --all` lists the recorded clients (org ids are case-sensitive)")
        if record.status == UNREADABLE:
            raise InputError(f"the client record {where} is unreadable: {record.problem}")
        if record.status == CLAIMED:
            raise InputError(f"{org_id}'s install is still in progress (the org id is only reserved, by run "
                             f"{record.run_id or '?'})", hint="finish it (kprov resume) or have its operator stop it")
        answers = record.answers
        outputs: dict[str, object] = {key: str(getattr(record, key)) for key in _RECORD_OUTPUTS}
        removed, route53 = record.status == REMOVED, answers.get("dns_in_route53") is True
        # Manual steps have no probe: once the record says removed, they are not asked again.
        outputs.update(removed=removed, status=record.status, record=where, dns_in_route53=route53,
                       dns_zone_id=str(answers.get("dns_zone_id") or ""), domain=str(answers.get("domain") or ""),
                       by_hand=not removed, dns_by_hand=not removed and not route53)
        return Probe(done=True, note=f"{where}: {record.status} by run {record.run_id or '?'}",
                     current={"record": where, "status": record.status}, outputs=outputs)

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        return dict(probe.outputs)  # never reached: the probe is always done

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        return ()


# --- SQL Server: the final backup, then the database and the login ------------------------------------------


def _option_group_has_backup(ctx: StepContext, instance: str) -> tuple[bool, str]:
    """(whether the instance's option group has SQLSERVER_BACKUP_RESTORE, the option groups' names)."""
    rds = ctx.client("rds")
    found = call(rds, "DescribeDBInstances", DBInstanceIdentifier=instance.lower(), missing=("DBInstanceNotFound",))
    if not found or not found.get("DBInstances"):
        raise StepError(f"RDS instance {instance} does not exist: the client database cannot be backed up")
    groups = [str(m["OptionGroupName"]) for m in found["DBInstances"][0].get("OptionGroupMemberships") or ()]
    for group in groups:
        described = call(rds, "DescribeOptionGroups", OptionGroupName=group, missing=("OptionGroupNotFoundFault",))
        for listed in (described or {}).get("OptionGroupsList") or ():
            if any(o.get("OptionName") == BACKUP_OPTION for o in listed.get("Options") or ()):
                return True, group
    return False, ", ".join(groups) or "none"


def backup_script(database: str, s3_arn: str) -> SqlScript:
    """RDS native backup of one database to an S3 object (a full backup; an existing object is not overwritten)."""
    return SqlScript((
        "exec msdb.dbo.rds_backup_database\n"
        f"    @source_db_name = {quote_string(database)},\n"
        f"    @s3_arn_to_backup_to = {quote_string(s3_arn)},\n"
        "    @overwrite_s3_backup_file = 0,\n"
        "    @type = 'FULL';",
    ))


def _task_rows(conn: Any, database: str) -> list[dict[str, object]]:
    """rds_task_status's rows for a database, by column name (the procedure's result set)."""
    cursor = conn.cursor()
    try:
        cursor.execute(f"exec msdb.dbo.rds_task_status @db_name = {quote_string(database)};")
        columns = [str(c[0]) for c in cursor.description or ()]
        return [dict(zip(columns, row, strict=False)) for row in cursor.fetchall()]
    finally:
        cursor.close()


class SqlFinalBackup:
    """The final backup of the client database before anything is removed: RDS native backup to S3.

    Done when the backup object exists (`bucket`/`key`, a HeadObject). With a SQL connection configured and
    the instance's option group holding SQLSERVER_BACKUP_RESTORE, act runs `msdb.dbo.rds_backup_database`
    and polls `msdb.dbo.rds_task_status` until the task succeeds (within `budget` seconds). Otherwise it is
    a manual step: the operator makes the backup (instructions say how) and types where it is kept, the
    evidence `backup_location`; the later drops need that output, so they never run before the backup.

    Outputs: backup_location (`s3://bucket/key`, or the operator's evidence), method (native or manual).
    """

    name: ClassVar[str] = "sql.final-backup"
    summary: ClassVar[str] = "A final native backup of a SQL Server database to S3 (manual without the option)."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="database", doc="The database, e.g. POS_acme."),
        Param(name="rule", doc="The naming rule it follows, e.g. client-database."),
        Param(name="db_instance", doc="The RDS instance that holds it (its option group is looked at)."),
        Param(name="bucket", doc="The S3 bucket of final backups (the option's IAM role may write to it)."),
        Param(name="key", doc="The backup's object key, e.g. final/POS_acme.bak."),
        Param(name="budget", kind="int", required=False, default=3600, minimum=60, maximum=86400,
              doc="Seconds to wait for the backup task."),
        *CONNECTION_PARAMS,
    )
    outputs: ClassVar[tuple[str, ...]] = ("backup_location", "method")

    def evidence(self, params: Mapping[str, Any]) -> list[InputSpec]:
        return [InputSpec(id="backup_location", type="string", evidence=True,
                          prompt=f"Where is the final backup of {params.get('database')} kept? (s3://bucket/key)")]

    @staticmethod
    def _location(params: Mapping[str, Any]) -> str:
        return f"s3://{params['bucket']}/{params['key']}"

    def _exists(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any] | None:
        return call(ctx.client("s3"), "HeadObject", Bucket=str(params["bucket"]), Key=str(params["key"]),
                    missing=("404", "NoSuchKey", "NotFound"))

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        database = checked_name(ctx, params, "database", "rule")
        location = self._location(params)
        head = self._exists(ctx, params)
        if head is not None:
            return Probe(done=True, note=f"the final backup of {database} is at {location} "
                                         f"({head.get('ContentLength', '?')} bytes)",
                         current={"backup": location}, outputs={"backup_location": location, "method": "found"})
        native, groups = _option_group_has_backup(ctx, str(params["db_instance"]))
        how = (f"native backup (option group {groups} has {BACKUP_OPTION})" if native else
               f"manual: the option group ({groups}) lacks {BACKUP_OPTION}")
        return Probe(done=False, note=f"no final backup of {database} at {location} yet: {how}",
                     desired={"backup": location, "database": database})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        database = checked_name(ctx, params, "database", "rule")
        location = self._location(params)
        _, partition = caller_partition(ctx)
        arn = f"arn:{partition}:s3:::{params['bucket']}/{params['key']}"
        native, groups = _option_group_has_backup(ctx, str(params["db_instance"]))
        with connection(ctx, params) as conn:
            if conn is not None and native:
                ctx.progress(f"backing up {database} to {location}")
                run_batches(conn, backup_script(database, arn).batches, ctx.step_id)
                self._wait(ctx, conn, database, arn, int(params.get("budget") or 3600))
                return {"backup_location": location, "method": "native"}
        return {"backup_location": self._by_hand(ctx, params, database, location, arn, native, groups),
                "method": "manual"}

    def _wait(self, ctx: StepContext, conn: Any, database: str, arn: str, budget: int) -> None:
        runtime = ctx.runtime
        deadline = runtime.monotonic() + budget
        while True:
            tasks = [r for r in _task_rows(conn, database) if str(r.get("S3_object_arn") or "") == arn]
            state = str(tasks[-1].get("lifecycle") or "") if tasks else "not listed"
            if state in _TASK_DONE:
                return
            if state in _TASK_FAILED:
                info = str(tasks[-1].get("task_info") or "")[:300] if tasks else ""
                raise StepError(f"the backup task of {database} ended {state}: {info}",
                                hint="see rds_task_status on the instance; nothing was removed")
            if runtime.monotonic() >= deadline:
                raise StepError(f"the backup of {database} is still {state} after {budget} s",
                                hint="run the removal again once the task has finished (it finds the backup)")
            ctx.progress(f"backup of {database}: {state}")
            runtime.sleep(15)

    def _by_hand(self, ctx: StepContext, params: Mapping[str, Any], database: str, location: str, arn: str,
                 native: bool, groups: str) -> str:
        operator = ctx.runtime.operator
        why = ("no SQL connection is configured (`sql` setting)" if native
               else f"the option group ({groups}) of {params['db_instance']} lacks {BACKUP_OPTION}")
        operator.instruct(ctx.step_id, (
            f"Make the final full backup of {database} ({why}). Either add the {BACKUP_OPTION} option (with its "
            f"IAM role) to the option group and, connected as the RDS master, run:\n\n"
            f"{backup_script(database, arn).text}\n"
            f"then wait until `exec msdb.dbo.rds_task_status @db_name = {quote_string(database)}` says SUCCESS; "
            f"or back it up in SSMS and upload the .bak file to {location}. Keep nothing on a laptop."))
        spec = self.evidence(params)[0]
        answer = operator.ask(spec, default=None, choices=(), validate=lambda v: None if str(v).strip() else
                              "say where the backup is kept")
        if not str(answer).strip():
            raise AbortedError(f"step {ctx.step_id}: no final backup, so nothing is removed")
        return str(answer).strip()

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        given = ctx.values.get("backup_location")
        if self._exists(ctx, params) is not None or (isinstance(given, str) and given != self._location(params)):
            return ()
        return (Difference("final backup", None, self._location(params)),)


def drop_database_script(database: str) -> SqlScript:
    """Drop the database if it exists, closing its sessions first (a tenant still connected would block it)."""
    name = quote_identifier(database)
    return SqlScript((
        "SET NOCOUNT ON;\n"
        "USE [master];\n"
        f"IF DB_ID({quote_string(database)}) IS NOT NULL\n"
        "BEGIN\n"
        f"    ALTER DATABASE {name} SET SINGLE_USER WITH ROLLBACK IMMEDIATE;\n"
        f"    DROP DATABASE {name};\n"
        "END;",
    ))


def drop_login_script(login: str) -> SqlScript:
    """Drop the server login if it exists (its database user went with the database)."""
    return SqlScript((
        "SET NOCOUNT ON;\n"
        "USE [master];\n"
        f"IF EXISTS (SELECT 1 FROM sys.server_principals WHERE name = {quote_string(login)})\n"
        f"    DROP LOGIN {quote_identifier(login)};",
    ))


def _needs_backup(params: Mapping[str, Any], what: str) -> None:
    backup = params.get("backup")
    if not isinstance(backup, str) or not backup.strip():
        raise InputError(f"{what} needs `backup`: the final backup's location (a sql.final-backup step's output); "
                         "nothing is dropped without one")


class _SqlDrop:
    """What the two drops share: a catalog probe over the configured connection, else the manual script."""

    kind: ClassVar[str]
    catalog: ClassVar[str]

    def _target(self, ctx: StepContext, params: Mapping[str, Any]) -> tuple[str, SqlScript]:
        raise NotImplementedError

    def _exists(self, conn: Any, name: str) -> bool:
        return bool(rows(conn, f"SELECT name FROM {self.catalog} WHERE name = {quote_string(name)}"))

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        name, script = self._target(ctx, params)
        with connection(ctx, params) as conn:
            if conn is None:
                return probe_by_hand(ctx, script, {"dropped": name}, f"dropping {self.kind} {name}")
            if not self._exists(conn, name):
                return Probe(done=True, note=f"{self.kind} {name} does not exist", outputs={"dropped": name})
        return Probe(done=False, note=f"{self.kind} {name} exists: it will be dropped", current={self.kind: name},
                     desired={"script": script.text})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        name, script = self._target(ctx, params)
        run_script(ctx, params, script, f"dropping {self.kind} {name}")
        return {"dropped": name}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        name, _ = self._target(ctx, params)
        with connection(ctx, params) as conn:
            if conn is None or not self._exists(conn, name):
                return ()
        return (Difference(self.kind, name, None),)


class SqlDropDatabase(_SqlDrop):
    """Drop the client database (after its final backup: `backup` must be the backup's location).

    Over a configured SQL connection as the RDS master (as sql.database), else a script the operator runs.
    Example: `name: "POS_{{ org_id }}"`, `rule: client-database`, `backup: "{{ backup_location }}"`.
    """

    name: ClassVar[str] = "sql.drop-database"
    summary: ClassVar[str] = "Drop a SQL Server database after its final backup."
    kind, catalog = "database", "sys.databases"
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="name", doc="The database, e.g. POS_acme."),
        Param(name="rule", doc="Its naming rule, e.g. client-database."),
        Param(name="backup", doc="The final backup's location: the drop never runs without one."),
        *CONNECTION_PARAMS,
    )
    outputs: ClassVar[tuple[str, ...]] = ("dropped",)

    def _target(self, ctx: StepContext, params: Mapping[str, Any]) -> tuple[str, SqlScript]:
        _needs_backup(params, self.name)
        database = checked_name(ctx, params, "name", "rule")
        return database, drop_database_script(database)


class SqlDropLogin(_SqlDrop):
    """Drop the client's SQL Server login. Example: `login: "POS_{{ org_id }}_user"`, `rule: client-login`."""

    name: ClassVar[str] = "sql.drop-login"
    summary: ClassVar[str] = "Drop a SQL Server login."
    kind, catalog = "login", "sys.server_principals"
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="login", doc="The login, e.g. POS_acme_user."),
        Param(name="rule", doc="Its naming rule, e.g. client-login."),
        *CONNECTION_PARAMS,
    )
    outputs: ClassVar[tuple[str, ...]] = ("dropped",)

    def _target(self, ctx: StepContext, params: Mapping[str, Any]) -> tuple[str, SqlScript]:
        login = checked_name(ctx, params, "login", "rule")
        return login, drop_login_script(login)


# --- RabbitMQ: the hub vhost and its user ----------------------------------------------------------------


class RabbitMQRemoveVhost:
    """Delete an organization's hub vhost (its queues and permissions go with it) and its own user.

    The same parameters as `rabbitmq.vhost`, without the password entry; the admin is never deleted
    (`rabbitmq.vhost`'s own name check). A user that also has permissions on another organization's vhost
    is not deleted: the run stops and names the vhosts, for a person to look at.
    """

    name: ClassVar[str] = "rabbitmq.remove-vhost"
    summary: ClassVar[str] = "Delete a RabbitMQ vhost and its own user (never the broker admin)."
    params: ClassVar[tuple[Param, ...]] = (
        *BROKER_PARAMS,
        Param(name="vhost", doc="The vhost, e.g. acme."),
        Param(name="user", doc="Its user, e.g. rms_acme; never the broker admin."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("vhost", "user", "deleted")

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        vhost, user = checked_vhost_user(ctx, params)
        seen = facts(ctx).vhost(ctx, params, vhost, user)
        if not seen.vhost and seen.user is None:
            return Probe(done=True, note=f"vhost {vhost} and user {user} do not exist",
                         outputs={"vhost": vhost, "user": user, "deleted": []})
        return Probe(done=False, note=f"will delete vhost {vhost} and user {user}", current=seen.current(),
                     desired={"vhost": None, "user": None})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        vhost, user = checked_vhost_user(ctx, params)
        seen = facts(ctx).vhost(ctx, params, vhost, user)
        if seen.elsewhere:
            raise StepError(f"RabbitMQ user {user} also has permissions on {list(seen.elsewhere)}: not deleted",
                            hint="revoke them (or find out why) in the broker's management console, then run again")
        client = management_client(ctx, params)
        deleted: list[str] = []
        if seen.vhost and client.delete_vhost(vhost):
            deleted.append("vhost")
        if seen.user is not None and client.delete_user(user):
            deleted.append("user")
        return {"vhost": vhost, "user": user, "deleted": deleted}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        vhost, user = checked_vhost_user(ctx, params)
        seen = facts(ctx).vhost(ctx, params, vhost, user)
        return tuple(d for d in (Difference("vhost", vhost, None) if seen.vhost else None,
                                 Difference("user", user, None) if seen.user is not None else None) if d)


# --- IAM: the access keys ---------------------------------------------------------------------------------


def _active_keys(ctx: StepContext, user: str) -> list[str] | None:
    """The ids of the user's active access keys; None when the user does not exist."""
    iam = ctx.client("iam")
    if call(iam, "GetUser", UserName=user, missing=("NoSuchEntity",)) is None:
        return None
    return sorted(str(k["AccessKeyId"]) for k in pages(iam, "ListAccessKeys", "AccessKeyMetadata", UserName=user)
                  if k.get("Status") == "Active")


class IamDeactivateAccessKeys:
    """Deactivate every access key of the org's IAM user (`rms_<org_id>`): POS can no longer use it.

    Deactivated, not deleted: a removal made by mistake can be undone in the IAM console, and IAM keeps the
    keys' last use for the audit. The user itself stays (POS made it). Outputs: user, deactivated (key ids).
    """

    name: ClassVar[str] = "iam.deactivate-access-keys"
    summary: ClassVar[str] = "Deactivate every access key of an IAM user (kept, not deleted)."
    params: ClassVar[tuple[Param, ...]] = (Param(name="user", rule="iam-user", doc="The user, rms_<org_id>."),)
    outputs: ClassVar[tuple[str, ...]] = ("user", "deactivated")

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        user = str(params["user"])
        active = _active_keys(ctx, user)
        if not active:
            note = f"IAM user {user} does not exist" if active is None else f"{user} has no active access key"
            return Probe(done=True, note=note, outputs={"user": user, "deactivated": []})
        return Probe(done=False, note=f"{user} has {len(active)} active access key(s): {', '.join(active)}",
                     current={"active_keys": active}, desired={"active_keys": []})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        user = str(params["user"])
        active = _active_keys(ctx, user) or []
        for key_id in active:
            ctx.progress(f"deactivating access key {key_id} of {user}")
            call(ctx.client("iam"), "UpdateAccessKey", UserName=user, AccessKeyId=key_id, Status="Inactive")
        return {"user": user, "deactivated": active}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        active = _active_keys(ctx, str(params["user"]))
        return (Difference("active access keys", active, []),) if active else ()


# --- S3: keep or archive the bucket -----------------------------------------------------------------------


def _storage_classes() -> tuple[str, ...]:
    """The storage classes a lifecycle transition may name: botocore's S3 model, not a list typed here."""
    from botocore.session import get_session

    shape = get_session().get_service_model("s3").shape_for("TransitionStorageClass")
    return tuple(str(name) for name in getattr(shape, "enum", ()))


def _check_storage_class(value: object) -> str | None:
    classes = _storage_classes()
    return None if value in classes else f"must be one of {', '.join(classes)} (for example DEEP_ARCHIVE)"


_ARCHIVE_RULE = "kprov-archive"
_RETENTION_TAG = "kprov:retention"
_BLOCK_ALL = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
              "RestrictPublicBuckets": True}


class S3RetainBucket:
    """Keep the org's bucket as it is, or archive it, as the retention answer says.

    `keep`: nothing changes (the bucket and its data stay for the client or the contract). `archive`: public
    access blocked (all four settings), the bucket policy removed (the public pub/ folder and rms_<org_id>'s
    access go), a lifecycle rule moving every object to `storage_class`, and the tag kprov:retention=archived.
    The data is never deleted by kprov. A bucket that does not exist is done (POS never made it).
    """

    name: ClassVar[str] = "s3.retain-bucket"
    summary: ClassVar[str] = "Keep the org's S3 bucket, or archive it (no public access, no policy, cold storage)."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="bucket", doc="The org's bucket, e.g. fusion-rms-acme."),
        Param(name="retention", choices=("keep", "archive"), doc="keep (unchanged) or archive."),
        Param(name="storage_class", required=False, default="DEEP_ARCHIVE", check=_check_storage_class,
              doc="Where archived objects go (an S3 lifecycle transition storage class)."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("bucket", "retention")

    def _lifecycle(self, ctx: StepContext, bucket: str) -> list[Mapping[str, Any]]:
        found = call(ctx.client("s3"), "GetBucketLifecycleConfiguration", Bucket=bucket,
                     missing=("NoSuchLifecycleConfiguration",))
        return list((found or {}).get("Rules") or ())

    def _differences(self, ctx: StepContext, bucket: str, storage_class: str) -> list[Difference]:
        source = facts(ctx)
        found: list[Difference] = []
        if source.bucket_tags(ctx, bucket).get(_RETENTION_TAG) != "archived":
            found.append(Difference(f"tag {_RETENTION_TAG}", source.bucket_tags(ctx, bucket).get(_RETENTION_TAG),
                                    "archived"))
        public = source.bucket_public_access(ctx, bucket)
        if dict(public or {}) != _BLOCK_ALL:
            found.append(Difference("block public access", dict(public or {}), _BLOCK_ALL))
        if source.bucket_policy(ctx, bucket) is not None:
            found.append(Difference("bucket policy", "present", None))
        rules = [r for r in self._lifecycle(ctx, bucket)
                 if r.get("ID") == _ARCHIVE_RULE and r.get("Status") == "Enabled"]
        classes = [t.get("StorageClass") for r in rules for t in r.get("Transitions") or ()]
        if storage_class not in classes:
            found.append(Difference(f"lifecycle rule {_ARCHIVE_RULE}", classes or None, storage_class))
        return found

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        bucket, retention = str(params["bucket"]), str(params["retention"])
        outputs = {"bucket": bucket, "retention": retention}
        if retention == "keep":
            return Probe(done=True, note=f"bucket {bucket} is kept as it is (retention: keep)", outputs=outputs)
        if not facts(ctx).bucket_exists(ctx, bucket):
            return Probe(done=True, note=f"bucket {bucket} does not exist", outputs={**outputs, "retention": "none"})
        storage_class = str(params.get("storage_class") or "DEEP_ARCHIVE")
        differences = self._differences(ctx, bucket, storage_class)
        if not differences:
            return Probe(done=True, note=f"bucket {bucket} is archived ({storage_class})", outputs=outputs)
        return Probe(done=False, note=f"will archive bucket {bucket} ({storage_class})", current={"bucket": bucket},
                     desired={"retention": "archived", "storage_class": storage_class}, differences=tuple(differences))

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        bucket, s3 = str(params["bucket"]), ctx.client("s3")
        storage_class = str(params.get("storage_class") or "DEEP_ARCHIVE")
        ctx.progress(f"archiving bucket {bucket}")
        call(s3, "PutPublicAccessBlock", Bucket=bucket, PublicAccessBlockConfiguration=dict(_BLOCK_ALL))
        call(s3, "DeleteBucketPolicy", Bucket=bucket)
        others = [r for r in self._lifecycle(ctx, bucket) if r.get("ID") != _ARCHIVE_RULE]
        rule = {"ID": _ARCHIVE_RULE, "Status": "Enabled", "Filter": {"Prefix": ""},
                "Transitions": [{"Days": 0, "StorageClass": storage_class}]}
        call(s3, "PutBucketLifecycleConfiguration", Bucket=bucket, LifecycleConfiguration={"Rules": [*others, rule]})
        tags = {**facts(ctx).bucket_tags(ctx, bucket), _RETENTION_TAG: "archived", "kprov:archived-on": utc_now()[:10]}
        call(s3, "PutBucketTagging", Bucket=bucket,
             Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]})
        return {"bucket": bucket, "retention": "archive"}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        bucket = str(params["bucket"])
        if params["retention"] == "keep" or not facts(ctx).bucket_exists(ctx, bucket):
            return ()
        return tuple(self._differences(ctx, bucket, str(params.get("storage_class") or "DEEP_ARCHIVE")))


# --- the password manager: the client's entries -------------------------------------------------------------


# Secrets Manager keeps a deleted secret for 7 to 30 days (default 30) before it is gone for good, and it can
# be restored until then (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_DeleteSecret.html).
_RECOVERY_DAYS = (7, 30)


def _secrets_manager_names(ctx: StepContext, entries: Sequence[str]) -> list[str] | None:
    """The Secrets Manager names of vault entries when the run's vault is Secrets Manager; None otherwise."""
    from kensium_provision.vault.backends import SecretsManagerVault, entry_name, secret_name

    vault = ctx.runtime.vault
    if not isinstance(vault, SecretsManagerVault):
        return None
    return [secret_name(vault.env_name, *entry_name(e)) for e in entries]


class CredentialScheduleDeletion:
    """Schedule the client's password-manager entries for deletion, with a recovery window.

    With the Secrets Manager vault, each existing entry gets DeleteSecret with RecoveryWindowInDays
    (`recovery_window_days`, 7-30): it can be restored until then, and kprov never deletes one at once.
    With another password manager it is a manual step: the operator archives the entries and confirms.
    Done when every entry is gone or pending deletion. Outputs: scheduled (names -> deletion date).
    """

    name: ClassVar[str] = "credential.schedule-deletion"
    summary: ClassVar[str] = "Schedule password-manager entries for deletion after a recovery window."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="entries", kind="list", doc="Vault entries <owner>/<credential>, e.g. acme/sql-login."),
        Param(name="recovery_window_days", kind="int", required=False, default=30, minimum=_RECOVERY_DAYS[0],
              maximum=_RECOVERY_DAYS[1], doc="Days the entries can still be restored (Secrets Manager: 7-30)."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("scheduled",)

    def _state(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, str] | None:
        """Secret name -> its deletion date ("" while it is not scheduled); None: not Secrets Manager."""
        names = _secrets_manager_names(ctx, [str(e) for e in params.get("entries") or ()])
        if names is None:
            return None
        found: dict[str, str] = {}
        for name in names:
            described = call(ctx.client("secretsmanager"), "DescribeSecret", SecretId=name,
                             missing=("ResourceNotFoundException",))
            if described is not None:
                found[name] = str(described.get("DeletedDate") or "")
        return found

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        entries = [str(e) for e in params.get("entries") or ()]
        state = self._state(ctx, params)
        if state is None:
            return Probe(done=False, note="manual: the operator archives the entries in the password manager",
                         desired={"entries": entries})
        pending = sorted(n for n, when in state.items() if not when)
        if not pending:
            return Probe(done=True, note=f"{len(state)} entr(ies) pending deletion, none left to schedule",
                         outputs={"scheduled": dict(state)})
        days = int(params.get("recovery_window_days") or 30)
        return Probe(done=False, note=f"will schedule {len(pending)} secret(s) for deletion in {days} days",
                     current={"secrets": pending}, desired={"recovery_window_days": days})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        entries = [str(e) for e in params.get("entries") or ()]
        days = int(params.get("recovery_window_days") or 30)
        state = self._state(ctx, params)
        if state is None:
            operator = ctx.runtime.operator
            operator.instruct(ctx.step_id, "In the password manager, move these entries to its archive (or expire "
                                           f"them) and delete them after {days} days: " + ", ".join(entries))
            if not operator.confirm(f"Are {', '.join(entries)} archived?", default=False, key=ctx.step_id):
                raise AbortedError(f"step {ctx.step_id} was not confirmed as done")
            return {"scheduled": dict.fromkeys(entries, f"archived by hand, delete after {days} days")}
        for name in sorted(n for n, when in state.items() if not when):
            ctx.progress(f"scheduling {name} for deletion in {days} days")
            done = call(ctx.client("secretsmanager"), "DeleteSecret", SecretId=name, RecoveryWindowInDays=days)
            state[name] = str(done.get("DeletionDate") or "")
        return {"scheduled": dict(state)}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        state = self._state(ctx, params) or {}
        return tuple(Difference(f"secret {n}", "not scheduled for deletion", "pending deletion")
                     for n, when in sorted(state.items()) if not when)


# --- Route 53: the client's record ------------------------------------------------------------------------


def _fqdn(name: str) -> str:
    return name.lower().rstrip(".") + "."


class Route53ReleaseRecord:
    """Delete the client's record (`acme.pos.example.com`, type A) from its Route 53 hosted zone.

    The DELETE sends the record set exactly as Route 53 holds it (ChangeResourceRecordSets needs that).
    Done when there is no such record. Outputs: released (the record's values, for the journal).
    """

    name: ClassVar[str] = "route53.release-record"
    summary: ClassVar[str] = "Delete a DNS record from a Route 53 hosted zone."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="zone_id", doc="The hosted zone id (Z...)."),
        Param(name="record", doc="The record's name, e.g. acme.pos.example.com."),
        Param(name="type", required=False, default="A", doc="The record type."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("released",)

    def _find(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any] | None:
        name, kind = _fqdn(str(params["record"])), str(params.get("type") or "A")
        listed = call(ctx.client("route53"), "ListResourceRecordSets", HostedZoneId=str(params["zone_id"]),
                      StartRecordName=name, StartRecordType=kind, MaxItems="1")
        return next((dict(r) for r in listed.get("ResourceRecordSets") or ()
                     if _fqdn(str(r.get("Name"))) == name and r.get("Type") == kind), None)

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        found = self._find(ctx, params)
        if found is None:
            return Probe(done=True, note=f"no {params.get('type') or 'A'} record {params['record']}",
                         outputs={"released": []})
        values = [str(v.get("Value")) for v in found.get("ResourceRecords") or ()]
        return Probe(done=False, note=f"will delete {found['Type']} record {params['record']} -> {', '.join(values)}",
                     current={"record": str(params["record"]), "values": values}, desired={"record": None})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        found = self._find(ctx, params)
        if found is None:
            return {"released": []}
        call(ctx.client("route53"), "ChangeResourceRecordSets", HostedZoneId=str(params["zone_id"]),
             ChangeBatch={"Comment": f"kprov remove-client (run {ctx.runtime.run_id})",
                          "Changes": [{"Action": "DELETE", "ResourceRecordSet": found}]})
        return {"released": [str(v.get("Value")) for v in found.get("ResourceRecords") or ()]}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        return () if self._find(ctx, params) is None else (Difference("record", params["record"], None),)


# --- the client record: removed, kept ----------------------------------------------------------------------


class ClientMarkRemoved:
    """Mark the client record `removed` and keep it for good: its history, and the org id stays taken.

    The removal's facts go into the record's evidence (`removal` values: where the final backup is, what was
    done with the bucket, the secrets pending deletion, who asked), beside the install's. Written with the
    install's own conditional write (same org id spelling, same client). Outputs: record, status.
    """

    name: ClassVar[str] = "client.mark-removed"
    summary: ClassVar[str] = "Mark the client record removed (kept, never deleted; the org id stays taken)."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="org_id", rule="org-id", doc="The organization id."),
        Param(name="removal", kind="map", doc="What the removal leaves: backup location, bucket retention..."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("record", "status")

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        org_id, table = str(params["org_id"]), records_table(ctx)
        record = facts(ctx).client_record(ctx, org_id, table)
        where = f"{table}/{org_id}"
        if record is not None and record.status == REMOVED:
            return Probe(done=True, note=f"{where} is marked removed ({record.updated})",
                         outputs={"record": where, "status": REMOVED})
        return Probe(done=False, note=f"{where} will be marked removed and kept",
                     current={"status": record.status if record else None}, desired={"status": REMOVED},
                     differences=(Difference("status", record.status if record else None, REMOVED),))

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        org_id, table = str(params["org_id"]), records_table(ctx)
        record = get_client(ctx.client("dynamodb"), org_id, table)
        if record is None or record.status == UNREADABLE:
            raise StepError(f"the client record {table}/{org_id} is gone or unreadable: it cannot be marked removed")
        removal = {f"removal_{k}": _plain(v) for k, v in dict(params.get("removal") or {}).items()}
        marked: ClientRecord = replace(record, status=REMOVED, evidence={**record.evidence, **removal},
                                       updated=utc_now(), run_id=ctx.runtime.run_id)
        write_record(ctx, marked, claim=False)
        return {"record": f"{table}/{org_id}", "status": REMOVED}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        record = facts(ctx).client_record(ctx, str(params["org_id"]), records_table(ctx))
        status = record.status if record is not None else None
        return () if status == REMOVED else (Difference("status", status, REMOVED),)


def _plain(value: object) -> object:
    """A value the record's JSON holds as it is (text, number, bool), else its JSON text."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return json.dumps(value, sort_keys=True, default=str)


STEP_TYPES = (ClientRemovalRecord, SqlFinalBackup, SqlDropDatabase, SqlDropLogin, RabbitMQRemoveVhost,
              IamDeactivateAccessKeys, S3RetainBucket, CredentialScheduleDeletion, Route53ReleaseRecord,
              ClientMarkRemoved)
