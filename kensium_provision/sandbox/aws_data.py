"""What AWS offers for the RDS SQL Server and Amazon MQ RabbitMQ choices kprov makes, taught to the sandbox's moto.

moto implements neither `DescribeDBEngineVersions` nor `DescribeBrokerEngineTypes` nor
`DescribeBrokerInstanceOptions`, has no SQL Server orderable options, and creates any engine/class or
version/instance-type pair. `install()` (idempotent; the sandbox server and the tests' `aws` fixture call it
through `sandbox.lessons.teach`) makes moto answer those four reads from the data below and refuse, as AWS does,
a CreateDBInstance or CreateBroker whose pair is not offered.

Where the data comes from, honestly: no maintained package on PyPI ships AWS's RDS or Amazon MQ offerings
(botocore ships the API models only; `awspricing` and `ec2instances-info` are unmaintained and fetch the
Pricing API's offer files online, which this workplace cannot reach). So this is a small table written on
2026-12-02 after AWS's documentation pages, each entry marked with its page; those pages could not be re-read from
this workplace (no internet), so the table is a realistic sample to check against them, not a copy. On a real
account kprov reads the live answers, never this table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["BROKER_OPTIONS", "RABBITMQ_VERSIONS", "SQLSERVER_CLASSES", "SQLSERVER_VERSIONS", "install"]

# SQL Server 2019 (15.00) engine versions RDS lists, from
# https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/CHAP_SQLServer.html#SQLServer.Concepts.General.VersionSupport
SQLSERVER_VERSIONS: tuple[str, ...] = (
    "15.00.4345.5.v1", "15.00.4355.3.v1", "15.00.4365.2.v1", "15.00.4375.4.v1", "15.00.4382.1.v1",
    "15.00.4385.2.v1", "15.00.4390.2.v1", "15.00.4395.2.v1", "15.00.4410.1.v1", "15.00.4415.2.v1",
    "15.00.4420.2.v1",
)
# License-included classes per edition, from
# https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/SQLServer.Concepts.General.InstanceClasses.html
_T3 = ("db.t3.small", "db.t3.medium", "db.t3.large", "db.t3.xlarge")
SQLSERVER_CLASSES: Mapping[str, tuple[str, ...]] = {
    "sqlserver-ex": ("db.t3.micro", *_T3),
    "sqlserver-web": (*_T3, "db.t3.2xlarge", "db.m5.large", "db.m5.xlarge", "db.m5.2xlarge", "db.m5.4xlarge",
                      "db.m6i.large", "db.m6i.xlarge", "db.m6i.2xlarge", "db.m6i.4xlarge", "db.r5.large",
                      "db.r5.xlarge", "db.r5.2xlarge", "db.r5.4xlarge", "db.r6i.large", "db.r6i.xlarge",
                      "db.r6i.2xlarge", "db.r6i.4xlarge"),
}
# Amazon MQ for RabbitMQ versions and host instance types, from
# https://docs.aws.amazon.com/amazon-mq/latest/developer-guide/rabbitmq-version-management.html and
# https://docs.aws.amazon.com/amazon-mq/latest/developer-guide/rmq-broker-instance-types.html
# (RabbitMQ 4 runs on mq.m7g only; mq.t3.micro and mq.m7g.medium are single-instance only).
RABBITMQ_VERSIONS: tuple[str, ...] = ("3.13", "4.2")
_BOTH = ("SINGLE_INSTANCE", "CLUSTER_MULTI_AZ")
BROKER_OPTIONS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # type: (deployment modes, versions)
    "mq.t3.micro": (("SINGLE_INSTANCE",), ("3.13",)),
    **{f"mq.m5.{size}": (_BOTH, ("3.13",)) for size in ("large", "xlarge", "2xlarge", "4xlarge")},
    "mq.m7g.medium": (("SINGLE_INSTANCE",), RABBITMQ_VERSIONS),
    **{f"mq.m7g.{size}": (_BOTH, RABBITMQ_VERSIONS)
       for size in ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")},
}
_ZONES = ("a", "b", "c", "d", "e", "f")


def engine_versions(engine: str) -> list[dict[str, Any]]:
    """DescribeDBEngineVersions' DBEngineVersions for a SQL Server engine (none for any other)."""
    if engine not in SQLSERVER_CLASSES:
        return []
    return [{"Engine": engine, "EngineVersion": v, "DBParameterGroupFamily": f"{engine}-15.0", "Status": "available",
             "DBEngineDescription": "Microsoft SQL Server", "DBEngineVersionDescription": f"SQL Server 2019 {v}"}
            for v in SQLSERVER_VERSIONS]


def orderable(engine: str, version: str, region: str) -> list[dict[str, Any]]:
    """DescribeOrderableDBInstanceOptions' options for an engine and (exact) version."""
    if version and version not in SQLSERVER_VERSIONS:
        return []
    versions = [version] if version else list(SQLSERVER_VERSIONS)
    return [{"Engine": engine, "EngineVersion": v, "DBInstanceClass": c, "LicenseModel": "license-included",
             "AvailabilityZones": [{"Name": f"{region}{z}"} for z in _ZONES], "MultiAZCapable": False,
             "StorageType": "gp3", "MinStorageSize": 20, "MaxStorageSize": 16384}
            for v in versions for c in SQLSERVER_CLASSES.get(engine, ())]


def broker_instance_options(region: str) -> list[dict[str, Any]]:
    """DescribeBrokerInstanceOptions' BrokerInstanceOptions for RabbitMQ."""
    return [{"EngineType": "RABBITMQ", "HostInstanceType": kind, "StorageType": "EBS",
             "SupportedDeploymentModes": list(modes), "SupportedEngineVersions": list(versions),
             "AvailabilityZones": [{"Name": f"{region}{z}"} for z in _ZONES]}
            for kind, (modes, versions) in BROKER_OPTIONS.items()]


def broker_refusal(kind: str, version: str, mode: str) -> str | None:
    """Why Amazon MQ refuses a RabbitMQ broker of this type, version and mode, or None."""
    if kind not in BROKER_OPTIONS:
        return f"Broker instance type [{kind}] is not supported for engine RABBITMQ"
    modes, versions = BROKER_OPTIONS[kind]
    if not any(version == v or version.startswith(v + ".") for v in versions):
        return f"Engine version [{version}] is not supported on broker instance type [{kind}]"
    return None if mode in modes else f"Deployment mode [{mode}] is not supported on broker instance type [{kind}]"


# --- teaching moto ------------------------------------------------------------------------------------------


def install() -> None:
    """Teach moto the four reads and the two refusals (idempotent; moto looks methods and routes up per call)."""
    from moto.mq import urls
    from moto.mq.responses import MQResponse
    from moto.rds.responses import RDSResponse

    RDSResponse.describe_db_engine_versions = _describe_db_engine_versions  # type: ignore[attr-defined]
    if not hasattr(RDSResponse, "_kprov_orderable"):
        RDSResponse._kprov_orderable = RDSResponse.describe_orderable_db_instance_options  # type: ignore[attr-defined]
        RDSResponse._kprov_create = RDSResponse.create_db_instance  # type: ignore[attr-defined]
        MQResponse._kprov_create = MQResponse.create_broker  # type: ignore[attr-defined]
    RDSResponse.describe_orderable_db_instance_options = _describe_orderable  # type: ignore[method-assign]
    RDSResponse.create_db_instance = _create_db_instance  # type: ignore[method-assign]
    MQResponse.describe_broker_engine_types = _describe_broker_engine_types  # type: ignore[attr-defined]
    MQResponse.describe_broker_instance_options = _describe_broker_instance_options  # type: ignore[attr-defined]
    MQResponse.create_broker = _create_broker  # type: ignore[method-assign]
    urls.url_paths.setdefault("{0}/v1/broker-engine-types$", MQResponse.dispatch)
    urls.url_paths.setdefault("{0}/v1/broker-instance-options$", MQResponse.dispatch)


def _describe_db_engine_versions(self: Any) -> Any:
    from moto.core.responses import ActionResult

    engine, version = str(self.params.get("Engine") or ""), str(self.params.get("EngineVersion") or "")
    found = [v for v in engine_versions(engine) if not version or v["EngineVersion"].startswith(version)]
    return ActionResult({"DBEngineVersions": found})


def _describe_orderable(self: Any) -> Any:
    from moto.core.responses import ActionResult

    engine = str(self.params.get("Engine") or "")
    if engine not in SQLSERVER_CLASSES:
        return self._kprov_orderable()
    options = orderable(engine, str(self.params.get("EngineVersion") or ""), self.region)
    wanted = self.params.get("DBInstanceClass")
    return ActionResult({"OrderableDBInstanceOptions": [o for o in options
                                                        if not wanted or o["DBInstanceClass"] == wanted]})


def _create_db_instance(self: Any) -> Any:
    from moto.rds.exceptions import InvalidParameterCombination

    engine = str(self.params.get("Engine") or "")
    if engine in SQLSERVER_CLASSES:
        version, kind = str(self.params.get("EngineVersion") or ""), str(self.params.get("DBInstanceClass") or "")
        if not any(o["DBInstanceClass"] == kind for o in orderable(engine, version, self.region)):
            raise InvalidParameterCombination(f"RDS does not support creating a DB instance with the following "
                                              f"combination: DBInstanceClass={kind}, Engine={engine}, "
                                              f"EngineVersion={version}, LicenseModel=license-included.")
    return self._kprov_create()


def _describe_broker_engine_types(self: Any) -> Any:
    from moto.core.responses import ActionResult

    engine = self._get_param("EngineType")
    types = [] if engine not in (None, "", "RABBITMQ") else [
        {"EngineType": "RABBITMQ", "EngineVersions": [{"Name": v} for v in RABBITMQ_VERSIONS]}]
    return ActionResult({"BrokerEngineTypes": types})


def _describe_broker_instance_options(self: Any) -> Any:
    from moto.core.responses import ActionResult

    engine, kind = self._get_param("EngineType"), self._get_param("HostInstanceType")
    options = [] if engine not in (None, "", "RABBITMQ") else broker_instance_options(self.region)
    return ActionResult({"BrokerInstanceOptions": [o for o in options if not kind or o["HostInstanceType"] == kind]})


def _create_broker(self: Any) -> Any:
    from moto.core.exceptions import JsonRESTError

    if self._get_param("EngineType") == "RABBITMQ":
        why = broker_refusal(str(self._get_param("HostInstanceType")), str(self._get_param("EngineVersion")),
                             str(self._get_param("DeploymentMode")))
        if why:
            raise JsonRESTError("BadRequestException", why)
    return self._kprov_create()
