"""What every step type, lookup and part of kprov calls in AWS: the data `kprov iam policy` and the preflight read.

Keyed by step type name (a test fails when a registered step type has no entry), each phase lists the
API operations it may call, as `<boto3 service>:<Operation>` (the IAM action comes from
`permissions.actions`), and two kinds of reference:

- `vault:<method>`: the password manager's `find`, `store`, `fetch` or `update` (Secrets Manager calls only when
  the config's vault is `secretsmanager`: see `VAULT`);
- `params:` / `params:<name>`: the read call a checklist writes in the step's params (aws.assert's
  `service` and `operation`, or the same under `probe:` or `owner:`), so it is known per checklist.

`resources` narrows an IAM action (a glob: `dynamodb:*`) to ARN templates, where AWS allows it
(checked against AWS's IAM data in the tests); everything else is `*`. `untested` names each operation
a sandbox run does not reach, and why: the recorded-calls test accepts no other declared-but-unused one.
Templates: ${Partition} ${Region} ${Account} ${Environment} ${ClientsTable} ${LocksTable} ${LogGroup}.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from kensium_provision.model import Mode

__all__ = ["COMPONENTS", "LOOKUPS", "PHASES", "STEPS", "VAULT", "Component", "Uses"]

# The phases of a step type each mode runs (the engine's contract: plan probes, check verifies too).
PHASES: Mapping[Mode, tuple[str, ...]] = MappingProxyType({
    Mode.PLAN: ("probe",),
    Mode.CHECK: ("probe", "verify"),
    Mode.APPLY: ("probe", "act", "verify"),
})

CLIENTS_TABLE = "arn:${Partition}:dynamodb:${Region}:${Account}:table/${ClientsTable}"
SECRETS = "arn:${Partition}:secretsmanager:${Region}:${Account}:secret:kprov/${Environment}/*"


@dataclass(frozen=True, slots=True, kw_only=True)
class Uses:
    """A step type's calls per phase (see the module doc for the entries)."""

    probe: tuple[str, ...] = ()
    act: tuple[str, ...] = ()
    verify: tuple[str, ...] = ()
    undo: tuple[str, ...] = ()
    resources: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    untested: Mapping[str, str] = field(default_factory=dict)

    def phase(self, name: str) -> tuple[str, ...]:
        found: tuple[str, ...] = getattr(self, name)
        return found


@dataclass(frozen=True, slots=True, kw_only=True)
class Component:
    """A part of kprov itself that calls AWS in some modes (records, locks, journal, preflight, fleet)."""

    summary: str
    modes: tuple[Mode, ...]
    operations: tuple[str, ...]
    resources: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    untested: Mapping[str, str] = field(default_factory=dict)
    undo: tuple[str, ...] = ()  # its calls in `kprov undo` (its plan and its removal), an undo run's own


_DESCRIBE_USER = ("iam:GetUser", "iam:GetLoginProfile", "iam:ListAccessKeys", "iam:ListAttachedUserPolicies",
                  "iam:ListGroupsForUser", "iam:ListUserPolicies", "iam:ListUserTags")
# steps.s3.read_bucket: the bucket's own reads, and the account's Block Public Access (which overrides it)
_DESCRIBE_BUCKET = ("s3:HeadBucket", "s3:GetBucketPolicy", "s3:GetBucketTagging", "s3:GetPublicAccessBlock",
                    "s3control:GetPublicAccessBlock", "sts:GetCallerIdentity", "s3:ListObjectsV2")  # pub/
_ASSERT = Uses(probe=("params:",), verify=("params:",))
_PATHS = ("ec2:DescribeInstances", "rds:DescribeDBInstances", "ec2:DescribeSecurityGroups", "ec2:DescribeRouteTables",
          "ec2:DescribeSubnets")
_ACTIVE_KEYS = ("iam:GetUser", "iam:ListAccessKeys")
_ARCHIVED = ("s3:HeadBucket", "s3:GetBucketTagging", "s3:GetPublicAccessBlock", "s3:GetBucketPolicy",
             "s3:GetBucketLifecycleConfiguration")
_RDS_OFFERS = ("rds:DescribeDBEngineVersions", "rds:DescribeOrderableDBInstanceOptions")
_MQ_OFFERS = ("mq:DescribeBrokerEngineTypes", "mq:DescribeBrokerInstanceOptions")
_BACKUP_OPTION = ("rds:DescribeDBInstances", "rds:DescribeOptionGroups")
# The management API as the broker admin: its password from the vault (`find` when the settings name an
# entry), and, for a `broker:` given by name, its console URL from Amazon MQ (steps.rabbitmq_vhost).
_MANAGEMENT = ("vault:find", "vault:fetch", "mq:ListBrokers", "mq:DescribeBroker")
_BY_BROKER_NAME = MappingProxyType(dict.fromkeys(
    ("mq:ListBrokers", "mq:DescribeBroker"), "only for a broker given by name: the sandbox's emulator has a base_url"))
_SQL = Uses(probe=("vault:fetch",), act=("vault:fetch",), verify=("vault:fetch",),
            untested={"vault:fetch": "only with a SQL connection configured (settings sql): the sandbox has none"})
# kprov undo: an entry a run stored in Secrets Manager, deleted at once (steps.credential.entry_check)
_RULE_UNDO = ("ec2:DescribeSecurityGroups", "ec2:RevokeSecurityGroupIngress")  # kprov undo: a rule it added
_ENTRY_UNDO = ("secretsmanager:DescribeSecret", "secretsmanager:DeleteSecret")

STEPS: Mapping[str, Uses] = MappingProxyType({
    "aws.assert": _ASSERT,
    "aws.wait": _ASSERT,
    "client.evidence": Uses(probe=("dynamodb:GetItem",), resources={"dynamodb:*": (CLIENTS_TABLE,)}),
    "client.org-id": Uses(
        probe=("dynamodb:GetItem", "dynamodb:Scan", "iam:ListUsers", "s3:ListBuckets"),
        act=("dynamodb:DescribeTable", "dynamodb:CreateTable", "dynamodb:PutItem"),
        verify=("dynamodb:GetItem", "dynamodb:Scan", "iam:ListUsers", "s3:ListBuckets"),
        undo=("dynamodb:GetItem", "dynamodb:DeleteItem"),
        resources={"dynamodb:*": (CLIENTS_TABLE,)}),
    "client.mark-removed": Uses(probe=("dynamodb:GetItem",), act=("dynamodb:GetItem", "dynamodb:PutItem"),
                                verify=("dynamodb:GetItem",), resources={"dynamodb:*": (CLIENTS_TABLE,)}),
    "client.removal-record": Uses(probe=("dynamodb:GetItem",), resources={"dynamodb:*": (CLIENTS_TABLE,)}),
    "client.record-secret": Uses(probe=("dynamodb:GetItem",), act=("dynamodb:GetItem", "dynamodb:PutItem"),
                                 verify=("dynamodb:GetItem",), resources={"dynamodb:*": (CLIENTS_TABLE,)}),
    "client.record": Uses(probe=("dynamodb:GetItem",), act=("dynamodb:GetItem", "dynamodb:PutItem"),
                          verify=("dynamodb:GetItem",), resources={"dynamodb:*": (CLIENTS_TABLE,)}),
    "credential.password": Uses(probe=("vault:find", "params:owner"), act=("vault:store",), verify=("vault:find",),
                                undo=_ENTRY_UNDO, resources={"secretsmanager:*": (SECRETS,)}),
    # Secrets Manager's own calls, made only when the vault is Secrets Manager (else a manual step).
    "credential.schedule-deletion": Uses(
        probe=("secretsmanager:DescribeSecret",),
        act=("secretsmanager:DescribeSecret", "secretsmanager:DeleteSecret"),
        verify=("secretsmanager:DescribeSecret",), resources={"secretsmanager:*": (SECRETS,)}),
    # Reads only: who reaches what, judged from the host, the database and their VPC's groups, routes and subnets
    # (steps/ec2/connectivity.py); its act only refuses.
    "ec2.connectivity": Uses(probe=_PATHS, verify=_PATHS),
    "ec2.elastic-ip": Uses(probe=("ec2:DescribeAddresses",),
                           act=("ec2:DescribeAddresses", "ec2:AllocateAddress", "ec2:AssociateAddress"),
                           verify=("ec2:DescribeAddresses",)),
    "ec2.group-rules": Uses(
        probe=("ec2:DescribeSecurityGroups",),
        act=("ec2:DescribeSecurityGroups", "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"),
        verify=("ec2:DescribeSecurityGroups",),
        undo=_RULE_UNDO,
        untested={"ec2:RevokeSecurityGroupIngress": "only when a rule was widened by hand (drift)"}),
    "ec2.ingress-rule": Uses(probe=("ec2:DescribeSecurityGroups",),
                             act=("ec2:DescribeSecurityGroups", "ec2:AuthorizeSecurityGroupIngress"),
                             verify=("ec2:DescribeSecurityGroups",), undo=_RULE_UNDO),
    # DescribeInstanceAttribute reads back the userData that sets a computer name (`computer_name`).
    "ec2.instance": Uses(
        probe=("ec2:DescribeInstances", "ec2:DescribeInstanceAttribute"),
        act=("ec2:DescribeSubnets", "ec2:RunInstances", "ec2:DescribeInstances", "ec2:ModifyInstanceAttribute",
             "ec2:CreateTags"),
        verify=("ec2:DescribeInstances", "ec2:DescribeInstanceAttribute"),
        untested={"ec2:DescribeInstances": "in act, only after RunInstances' answer was lost, or for a drifted host",
                  "ec2:ModifyInstanceAttribute": "only for a live host whose security groups were changed by hand",
                  "ec2:CreateTags": "only for a live host whose tags were changed by hand"}),
    "ec2.internet-gateway": Uses(
        probe=("ec2:DescribeInternetGateways",),
        act=("ec2:DescribeInternetGateways", "ec2:CreateInternetGateway", "ec2:AttachInternetGateway"),
        verify=("ec2:DescribeInternetGateways",),
        undo=("ec2:DescribeInternetGateways", "ec2:DetachInternetGateway", "ec2:DeleteInternetGateway")),
    "ec2.key-pair": Uses(probe=("ec2:DescribeKeyPairs", "vault:find"),
                         act=("ec2:DescribeKeyPairs", "ec2:ImportKeyPair", "vault:find", "vault:store"),
                         verify=("ec2:DescribeKeyPairs", "vault:find")),
    "ec2.launch-check": Uses(probe=("ec2:DescribeImages", "ec2:DescribeInstanceTypeOfferings"),
                             verify=("ec2:DescribeImages", "ec2:DescribeInstanceTypeOfferings")),
    "ec2.operator-ip": Uses(),  # asks the operator's public address of a web service, not AWS
    "ec2.route-table": Uses(
        probe=("ec2:DescribeRouteTables",),
        act=("ec2:DescribeRouteTables", "ec2:CreateRouteTable", "ec2:CreateRoute", "ec2:AssociateRouteTable"),
        verify=("ec2:DescribeRouteTables",),
        undo=("ec2:DescribeRouteTables", "ec2:DisassociateRouteTable", "ec2:DeleteRouteTable")),
    "ec2.security-group": Uses(probe=("ec2:DescribeSecurityGroups",), act=("ec2:CreateSecurityGroup",),
                               verify=("ec2:DescribeSecurityGroups",),
                               undo=("ec2:DescribeSecurityGroups", "ec2:DescribeNetworkInterfaces",
                                     "ec2:DeleteSecurityGroup")),
    "ec2.subnet": Uses(probe=("ec2:DescribeSubnets",), act=("ec2:CreateSubnet", "ec2:ModifySubnetAttribute"),
                       verify=("ec2:DescribeSubnets",),
                       undo=("ec2:DescribeSubnets", "ec2:DescribeNetworkInterfaces", "ec2:DeleteSubnet")),
    "ec2.tags": Uses(probe=("ec2:DescribeInstances", "ec2:DescribeTags"),
                     act=("ec2:DescribeInstances", "ec2:DescribeTags", "ec2:CreateTags"),
                     verify=("ec2:DescribeInstances", "ec2:DescribeTags")),
    "ec2.vpc": Uses(probe=("ec2:DescribeVpcs", "ec2:DescribeVpcAttribute"),
                    act=("ec2:DescribeVpcs", "ec2:CreateVpc", "ec2:ModifyVpcAttribute"),
                    verify=("ec2:DescribeVpcs", "ec2:DescribeVpcAttribute"),
                    undo=("ec2:DescribeVpcs", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups",
                          "ec2:DescribeRouteTables", "ec2:DescribeInternetGateways", "ec2:DescribeInstances",
                          "ec2:DeleteVpc"),
                    untested={"ec2:DescribeVpcs": "in act, only while CreateVpc answers `pending` (the wait)"}),
    "ec2.windows-password": Uses(probe=("vault:find",), act=("ec2:GetPasswordData", "vault:store"),
                                 verify=("vault:find",),
                                 untested={"ec2:GetPasswordData": "no packaged checklist uses the step yet"}),
    "flow.require": Uses(),
    "flow.select": Uses(),
    "flow.stop": Uses(),
    "iam.client-user": Uses(probe=_DESCRIBE_USER, verify=_DESCRIBE_USER),  # checks a user made by hand
    "iam.deactivate-access-keys": Uses(probe=_ACTIVE_KEYS, act=(*_ACTIVE_KEYS, "iam:UpdateAccessKey"),
                                       verify=_ACTIVE_KEYS),
    # A key rotation: room first (an old inactive key, or one an interrupted rotation made, deleted), the rotation
    # tag, the new key stored, checked with sts signed by it (a client of its own), the old one deactivated.
    "iam.rotate-access-key": Uses(
        probe=("iam:ListAccessKeys", "iam:ListUserTags", "iam:GetAccessKeyLastUsed", "vault:find", "vault:fetch"),
        act=("iam:ListAccessKeys", "iam:ListUserTags", "iam:GetAccessKeyLastUsed", "iam:DeleteAccessKey",
             "iam:TagUser", "iam:CreateAccessKey", "iam:UpdateAccessKey", "iam:UntagUser", "sts:GetCallerIdentity",
             "vault:find", "vault:fetch", "vault:store", "vault:update"),
        verify=("iam:ListAccessKeys", "vault:find", "vault:fetch"),
        untested={"sts:GetCallerIdentity": "signed with the new key by a client of its own, not the run's session",
                  "iam:DeleteAccessKey": "only for an old key past its grace (or asked), or one a killed run made",
                  "iam:GetAccessKeyLastUsed": "only for an active key made while a rotation was under way"}),
    "iam.sandbox-client-user": Uses(probe=(*_DESCRIBE_USER, "vault:find"),
                                    act=("iam:GetUser", "iam:CreateUser", "iam:CreateAccessKey", "vault:store"),
                                    verify=_DESCRIBE_USER,
                                    undo=(*_DESCRIBE_USER, "iam:DeleteAccessKey", "iam:DeleteUser", *_ENTRY_UNDO),
                                    resources={"secretsmanager:*": (SECRETS,)}),
    "manual": Uses(probe=("params:probe",), verify=("params:probe",)),
    # A new broker's or instance's choices are checked with AWS's own offerings first (steps.*.offered).
    "mq.broker": Uses(probe=("mq:ListBrokers", "mq:DescribeBroker", *_MQ_OFFERS),
                      act=("mq:ListBrokers", "mq:DescribeBroker", "mq:CreateBroker", "vault:fetch"),
                      verify=("mq:ListBrokers", "mq:DescribeBroker")),
    "rabbitmq.remove-vhost": Uses(probe=_MANAGEMENT, act=_MANAGEMENT, verify=_MANAGEMENT, untested=_BY_BROKER_NAME),
    # The broker admin logs in as itself: its old value is kept first (`store`, later `update` of <entry>-previous).
    "rabbitmq.rotate-admin": Uses(probe=_MANAGEMENT, act=(*_MANAGEMENT, "vault:store", "vault:update"),
                                  verify=_MANAGEMENT, untested=_BY_BROKER_NAME),
    # A rotation reads the entry's current value, keeps it as <entry>-previous (`store`, later `update`), stores
    # the new one (`update`), and checks it on the service.
    "rabbitmq.rotate-user": Uses(probe=_MANAGEMENT, act=(*_MANAGEMENT, "vault:store", "vault:update"),
                                 verify=_MANAGEMENT,
                                 untested=_BY_BROKER_NAME),
    "rabbitmq.vhost": Uses(probe=_MANAGEMENT, act=(*_MANAGEMENT, "vault:store"), verify=_MANAGEMENT,
                           undo=(*_MANAGEMENT, *_ENTRY_UNDO), untested=_BY_BROKER_NAME,
                           resources={"secretsmanager:*": (SECRETS,)}),
    "rds.db-instance": Uses(probe=("rds:DescribeDBInstances", *_RDS_OFFERS, "dynamodb:Scan"),  # Scan: its use, check
                           act=("rds:DescribeDBInstances", *_RDS_OFFERS, "rds:CreateDBInstance",
                                "rds:ModifyDBInstance", "vault:fetch"),
                           verify=("rds:DescribeDBInstances",), resources={"dynamodb:*": (CLIENTS_TABLE,)},
                           untested={"rds:ModifyDBInstance": "only for an instance whose security groups differ"}),
    # ModifyDBInstance's MasterUserPassword, then DescribeDBInstances until RDS applied it (or a SQL login as master).
    "rds.rotate-master": Uses(probe=("rds:DescribeDBInstances", "vault:find", "vault:fetch"),
                              act=("rds:DescribeDBInstances", "rds:ModifyDBInstance", "vault:find", "vault:fetch",
                                   "vault:store", "vault:update"),
                              verify=("rds:DescribeDBInstances", "vault:find", "vault:fetch"),
                              untested={"rds:DescribeDBInstances": "in probe, only without the admin_user param"}),
    "rds.db-subnet-group": Uses(probe=("ec2:DescribeSubnets", "rds:DescribeDBSubnetGroups"),
                               act=("ec2:DescribeSubnets", "rds:CreateDBSubnetGroup"),
                               verify=("rds:DescribeDBSubnetGroups",),
                               undo=("rds:DescribeDBSubnetGroups", "rds:DescribeDBInstances",
                                     "rds:DeleteDBSubnetGroup")),
    "rds.instance-ready": Uses(probe=("rds:DescribeDBInstances",), verify=("rds:DescribeDBInstances",)),
    "route53.release-record": Uses(
        probe=("route53:ListResourceRecordSets",),
        act=("route53:ListResourceRecordSets", "route53:ChangeResourceRecordSets"),
        verify=("route53:ListResourceRecordSets",),
        untested=dict.fromkeys(("route53:ListResourceRecordSets", "route53:ChangeResourceRecordSets"),
                               "only for a client whose DNS record is in Route 53 (the sandbox's acme is not)")),
    "s3.client-bucket": Uses(probe=_DESCRIBE_BUCKET, verify=_DESCRIBE_BUCKET),  # checks a bucket made by hand
    "s3.retain-bucket": Uses(
        probe=_ARCHIVED, verify=_ARCHIVED,
        act=("s3:PutPublicAccessBlock", "s3:DeleteBucketPolicy", "s3:GetBucketLifecycleConfiguration",
             "s3:PutBucketLifecycleConfiguration", "s3:GetBucketTagging", "s3:PutBucketTagging")),
    "s3.sandbox-client-bucket": Uses(
        probe=_DESCRIBE_BUCKET,
        act=("sts:GetCallerIdentity", "s3:HeadBucket", "s3:CreateBucket", "s3:DeletePublicAccessBlock",
             "s3:PutBucketPolicy", "s3:PutBucketTagging", "s3:PutObject"),
        verify=_DESCRIBE_BUCKET,
        undo=("s3:HeadBucket", "s3:ListObjectsV2", "s3:GetBucketTagging", "s3:DeleteObject", "s3:DeleteBucket")),
    # SQL Server over TDS as the master login (its password fetched from the vault), or by hand: no AWS call.
    "sql.database": replace(_SQL, undo=("vault:fetch",)), "sql.drop-database": _SQL, "sql.drop-login": _SQL,
    "sql.login": replace(_SQL, undo=("vault:fetch",)),
    "sql.rotate-login": Uses(probe=("vault:find", "vault:fetch"),
                             act=("vault:find", "vault:fetch", "vault:store", "vault:update"),
                             verify=("vault:find", "vault:fetch")),
    "sql.final-backup": Uses(
        probe=("s3:HeadObject", *_BACKUP_OPTION), act=("sts:GetCallerIdentity", *_BACKUP_OPTION, "vault:fetch"),
        verify=("s3:HeadObject",),
        untested={"vault:fetch": _SQL.untested["vault:fetch"],
                  "rds:DescribeOptionGroups": "only when the instance is in an option group (the sandbox's is not)"}),
})

# Named lookups (`choices_from: {lookup: ...}`); a generic lookup's call is read from the checklist.
LOOKUPS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "region": (),
    "availability-zones": ("ec2:DescribeAvailabilityZones",),
    "next-free-name": ("ec2:DescribeInstances", "mq:ListBrokers", "rds:DescribeDBInstances",
                       "ssm:GetParametersByPath"),  # unfinished_of: the shared records (records.shared)
    "rds-instances": ("rds:DescribeDBInstances", "dynamodb:Scan"),  # the client records: databases per instance
    "ec2-hosts": ("ec2:DescribeInstances", "dynamodb:Scan"),  # room: the client records (tenants per host)
    # room: the client records (vhosts per broker), and an mq.m7g broker's version and configuration (vhost_max)
    "brokers": ("mq:ListBrokers", "dynamodb:Scan", "mq:DescribeBroker", "mq:DescribeConfigurationRevision"),
    "vpcs": ("ec2:DescribeVpcs",),
    "subnets": ("ec2:DescribeSubnets",),
    "vpc-zones": ("ec2:DescribeVpcs", "ec2:DescribeSubnets"),
    "rds-instance-classes": _RDS_OFFERS,
    "broker-instance-types": _MQ_OFFERS,
})

# The password manager's methods, when the config's vault is Secrets Manager (vault.backends).
VAULT: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "find": ("secretsmanager:DescribeSecret",),
    "store": ("secretsmanager:DescribeSecret", "secretsmanager:CreateSecret", "secretsmanager:PutSecretValue",
              "secretsmanager:TagResource"),
    "fetch": ("secretsmanager:GetSecretValue",),
    # a rotation: the new value becomes the current version (its GetSecretValue is the vault's own `fetch`)
    "update": ("secretsmanager:DescribeSecret", "secretsmanager:PutSecretValue"),
})
VAULT_RESOURCES: Mapping[str, tuple[str, ...]] = MappingProxyType({"secretsmanager:*": (SECRETS,)})
VAULT_UNTESTED: Mapping[str, str] = MappingProxyType({
    "secretsmanager:PutSecretValue": "only when an entry of that name exists with another value (a re-store)",
    "secretsmanager:TagResource": "only when an existing entry lacks kprov's tags",
})

COMPONENTS: Mapping[str, Component] = MappingProxyType({
    "identity": Component(summary="who the caller is (no permission needed)", modes=tuple(Mode),
                          operations=("sts:GetCallerIdentity",), undo=("sts:GetCallerIdentity",)),
    "preflight": Component(
        summary="the permission preflight: may the caller do all of this run?", modes=(Mode.PLAN, Mode.APPLY),
        operations=("iam:SimulatePrincipalPolicy", "iam:GetRole"),
        undo=("iam:SimulatePrincipalPolicy", "iam:GetRole"),
        resources={"iam:SimulatePrincipalPolicy": ("arn:${Partition}:iam::${Account}:user/*",
                                                   "arn:${Partition}:iam::${Account}:role/*"),
                   "iam:GetRole": ("arn:${Partition}:iam::${Account}:role/*",)},
        untested={"iam:GetRole": "only when the caller's role has a path (an SSO role)"}),
    "shared-records": Component(
        summary="the answers of shared resources, in SSM under /kprov/shared", modes=(Mode.CHECK, Mode.APPLY),
        operations=("ssm:GetParametersByPath", "ssm:PutParameter"),
        # an undo removes the record the undone run wrote, once all it made is gone (engine.undo)
        undo=("ssm:GetParameter", "ssm:DeleteParameter"),
        resources={"ssm:*": ("arn:${Partition}:ssm:${Region}:${Account}:parameter/kprov/shared",
                             "arn:${Partition}:ssm:${Region}:${Account}:parameter/kprov/shared/*")}),
    "client-records": Component(
        summary="the client records (DynamoDB), read by `check client`", modes=(Mode.CHECK,),
        operations=("dynamodb:GetItem", "dynamodb:Scan"), resources={"dynamodb:*": (CLIENTS_TABLE,)}),
    "locks": Component(
        summary="the locks between operators (DynamoDB, locks: backend: dynamodb)", modes=(Mode.APPLY,),
        operations=("dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"),
        undo=("dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"),
        resources={"dynamodb:*": ("arn:${Partition}:dynamodb:${Region}:${Account}:table/${LocksTable}",)},
        untested={"dynamodb:GetItem": "only when another run holds the lock",
                  "dynamodb:UpdateItem": "the heartbeat, every 300 s: a sandbox run is shorter"}),
    "journal": Component(
        summary="the journal's copy in CloudWatch Logs (journal: cloudwatch_log_group)", modes=(Mode.APPLY,),
        operations=("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"),
        undo=("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"),
        resources={"logs:CreateLogGroup": ("arn:${Partition}:logs:${Region}:${Account}:log-group:${LogGroup}",),
                   "logs:*": ("arn:${Partition}:logs:${Region}:${Account}:log-group:${LogGroup}:log-stream:*",)}),
    # The journal's CloudWatch copy read back to verify a run before its resume or undo (`kprov audit verify`).
    "journal-verify": Component(
        summary="the journal's copy in CloudWatch Logs, compared before a resume or an undo", modes=(Mode.CHECK,),
        operations=("logs:FilterLogEvents",), undo=("logs:FilterLogEvents",),
        resources={"logs:FilterLogEvents": ("arn:${Partition}:logs:${Region}:${Account}:log-group:${LogGroup}",)}),
    # `kprov approve` writes an approval, `kprov apply PLAN` reads it (plans.approvals; its own table, created by
    # the first approval): only where an environment says `approval: required`.
    "approvals": Component(
        summary="four eyes: the approvals of saved plans (DynamoDB, approval: required)", modes=(Mode.APPLY,),
        operations=("dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:CreateTable", "dynamodb:PutItem"),
        undo=("dynamodb:DescribeTable", "dynamodb:GetItem"),  # `kprov apply PLAN` of an approved undo plan
        resources={"dynamodb:*": ("arn:${Partition}:dynamodb:${Region}:${Account}:table/kprov-approvals",)},
        untested={"dynamodb:CreateTable": "only the first approval in an account creates the table"}),
    "fleet": Component(
        summary="`check client --all` and `kprov fleet`: the whole fleet read in batches", modes=(Mode.CHECK,),
        operations=("dynamodb:Scan", "ec2:DescribeInstances", "ec2:DescribeSecurityGroups",
                    "iam:GetAccountAuthorizationDetails", "iam:GetCredentialReport", "iam:GenerateCredentialReport",
                    "iam:ListAccessKeys",
                    "mq:ListBrokers", "mq:DescribeBroker", "mq:DescribeConfigurationRevision",
                    "rds:DescribeDBInstances", "resourcegroupstaggingapi:GetResources",
                    "s3:ListBuckets", "s3:GetBucketPolicy", "s3:GetPublicAccessBlock", "s3control:GetPublicAccessBlock",
                    "secretsmanager:ListSecrets", "secretsmanager:DescribeSecret",
                    "secretsmanager:GetSecretValue"),
        resources={"dynamodb:*": (CLIENTS_TABLE,), "secretsmanager:GetSecretValue": (SECRETS,),
                   "secretsmanager:DescribeSecret": (SECRETS,)},
        # kprov fleet's capacity (app.commands.fleet): a broker's vhost limit, an Express database's size
        untested={"mq:DescribeBroker": "kprov fleet, for an mq.m7g broker only (the sandbox's is an mq.m5)",
                  "mq:DescribeConfigurationRevision": "kprov fleet, for an mq.m7g broker on RabbitMQ 4 only",
                  "secretsmanager:DescribeSecret": "kprov fleet, the RDS master's entry, only with a SQL connection "
                                                   "configured and an Express instance (the sandbox has neither)"}),
})
