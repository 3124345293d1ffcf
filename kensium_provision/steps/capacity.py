"""How many clients a shared resource may hold (issue 16.8): databases per RDS for SQL Server instance, and
client vhosts per Amazon MQ for RabbitMQ broker (its `vhost_max`).

Each client has one hub vhost on a shared broker. Amazon MQ for RabbitMQ 4 applies a default `vhost_max` by
instance type, which a broker configuration may change; RabbitMQ 3 brokers run with the maximum and cannot
change it. Both tables from AWS's documentation (read 2026-12-03):

- defaults of RabbitMQ 4 single-instance brokers, "Default resource limits":
  https://docs.aws.amazon.com/amazon-mq/latest/developer-guide/rabbitmq-resource-limits-configuration.html
- the maxima (RabbitMQ 3's fixed limit, and RabbitMQ 4's ceiling), "Amazon MQ for RabbitMQ maximum resource
  limit": https://docs.aws.amazon.com/amazon-mq/latest/developer-guide/rabbitmq-resource-hard-limit.html
- the configuration key `vhost_max`, "Resource Limit Configuration", with instance-specific sections
  `{{<family>.<size>.<mode>}}`: https://docs.aws.amazon.com/amazon-mq/latest/developer-guide/configure-resource-limits.html

Both pages list mq.m7g only (the maxima up to 8xlarge, the defaults up to 12xlarge, as far as they were
readable); for mq.t3.micro and mq.m5 brokers (RabbitMQ 3) AWS documents no vhost limit (its sizing guide gives
connections, channels, queues and shovels), so none is applied there, nor to a size missing above: `None`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["DEFAULT_TENANTS_PER_HOST", "EXPRESS_DATABASE_MB", "EXPRESS_NEAR_PERCENT", "broker_vhost_limit",
           "configured_vhost_max", "database_limit", "tenants_per_host", "vhost_limit"]

# SQL Server Express caps each database at 10 GB of data (its log does not count): Microsoft's "Editions and
# supported features of SQL Server 2019", Scale limits, "Maximum relational database size":
# https://learn.microsoft.com/en-us/sql/sql-server/editions-and-components-of-sql-server-2019#scale-limits
# RDS for SQL Server's Express edition (engine sqlserver-ex) runs that engine; no AWS page found states the figure.
EXPRESS_DATABASE_MB = 10 * 1024
EXPRESS_NEAR_PERCENT = 80  # `kprov fleet` flags an Express database from here: time to move it to Web

# [INFER] No one documents how many client tenants a shared POS host serves: the config's `capacity:
# tenants_per_host:` says it (app.config.CapacitySettings, whose default this is; a guess to confirm with Kensium).
DEFAULT_TENANTS_PER_HOST = 20


def tenants_per_host(settings: Mapping[str, object]) -> int:
    """`capacity.tenants_per_host` of the run settings (app.config), else the default."""
    capacity = settings.get("capacity")
    found = capacity.get("tenants_per_host") if isinstance(capacity, Mapping) else None
    return found if isinstance(found, int) and not isinstance(found, bool) else DEFAULT_TENANTS_PER_HOST

# Databases per RDS for SQL Server instance by class size (Single-AZ; system databases do not count), from
# https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/CHAP_Limits.html (section "Amazon RDS for Microsoft SQL
# Server limits", its table of the maximum number of databases per DB instance); RDS refuses a database past it.
_DATABASES_BY_SIZE: tuple[tuple[frozenset[str], int], ...] = (
    (frozenset({"micro", "small", "medium", "large"}), 30),
)
_DATABASES_LARGER = 100  # db.*.xlarge and up


def database_limit(instance_class: str) -> int:
    """How many client databases an RDS for SQL Server instance of this class may hold (CHAP_Limits, above)."""
    size = instance_class.rsplit(".", 1)[-1]
    return next((limit for sizes, limit in _DATABASES_BY_SIZE if size in sizes), _DATABASES_LARGER)


_DEFAULT_V4 = {"medium": 10, "large": 50, "xlarge": 100, "2xlarge": 150, "4xlarge": 200, "8xlarge": 250,
               "12xlarge": 300}
_MAXIMUM = {"medium": 10, "large": 1500, "xlarge": 1500, "2xlarge": 1500, "4xlarge": 1500, "8xlarge": 1500}
_SECTION = re.compile(r"^\{\{\s*([a-z0-9]+\.[a-z0-9]+\.[a-z]+)\s*\}\}$")
_SETTING = re.compile(r"^vhost_max\s*=\s*(\d+)\s*$")


def vhost_limit(host_instance_type: str, engine_version: str, configured: int | None = None) -> int | None:
    """The vhosts a broker of this type and version may hold, or None where AWS documents no limit."""
    family, _, size = host_instance_type.removeprefix("mq.").partition(".")
    if family != "m7g":
        return None
    if not engine_version.startswith("4"):
        return _MAXIMUM.get(size)  # RabbitMQ 3: the maximum, which no configuration changes
    if configured is not None:
        return min(configured, _MAXIMUM.get(size, configured))
    return _DEFAULT_V4.get(size)


def configured_vhost_max(data: str, host_instance_type: str, deployment_mode: str) -> int | None:
    """`vhost_max` of a broker configuration revision's base64 `Data`: the broker's own section (family.size.mode,
    mode `single` or `cluster`) wins over the general setting; None when neither sets it."""
    try:
        text = base64.b64decode(data, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return None
    mode = "single" if deployment_mode == "SINGLE_INSTANCE" else "cluster"
    own = f"{host_instance_type.removeprefix('mq.')}.{mode}"
    general: int | None = None
    mine: int | None = None
    section = ""
    for line in (raw.strip() for raw in text.splitlines()):
        header = _SECTION.match(line)
        if header:
            section = header.group(1)
            continue
        setting = _SETTING.match(line)
        if setting is None:
            continue
        if not section:
            general = int(setting.group(1))
        elif section == own:
            mine = int(setting.group(1))
    return mine if mine is not None else general


def broker_vhost_limit(mq: Any, broker: Mapping[str, Any]) -> int | None:
    """A broker's vhost limit (`broker`: its ListBrokers summary): from its type and version, and its current
    configuration's `vhost_max` (RabbitMQ 4). Only an mq.m7g broker has a documented limit, so others cost no
    call; one costs DescribeBroker, and DescribeConfigurationRevision on RabbitMQ 4 (`mq`: the caller's client)."""
    from kensium_provision.aws.call import call

    kind = str(broker.get("HostInstanceType") or "")
    if not kind.startswith("mq.m7g."):
        return None
    described = call(mq, "describe_broker", BrokerId=str(broker["BrokerId"]))
    version = str(described.get("EngineVersion") or "")
    current = (described.get("Configurations") or {}).get("Current") or {}
    configured = None
    if version.startswith("4") and current.get("Id"):
        revision = call(mq, "describe_configuration_revision", ConfigurationId=str(current["Id"]),
                        ConfigurationRevision=str(current.get("Revision", "")))
        configured = configured_vhost_max(str(revision.get("Data") or ""), kind,
                                          str(described.get("DeploymentMode") or ""))
    return vhost_limit(kind, version, configured)
