"""`kprov check client --all` (kensium_provision.fleet): reads shared by the fleet, findings per client.

Under moto in-process with the RabbitMQ emulator: the shared estate and three clients are made by the
real install checklist (tests/test_client_install.py's World); larger fleets are cloned from acme's
record as the install leaves one. API call counts are deterministic and asserted; timings never are.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, cast

import jsonschema
import pytest
from moto import mock_aws

from kensium_provision.app.config import SANDBOX_ENVIRONMENT
from kensium_provision.aws.session import AwsSession
from kensium_provision.aws.wall import EXCEPTIONS, ReadOnlyViolation, is_read, permit
from kensium_provision.checklist.catalog import CHECKLISTS_DIR
from kensium_provision.errors import ExitCode
from kensium_provision.fleet import check as fleet
from kensium_provision.fleet import snapshot
from kensium_provision.fleet.facts import SnapshotFacts, step_reads
from kensium_provision.model import Mode
from kensium_provision.records.clients import DEFAULT_TABLE, ClientRecord, get_client, put_record
from kensium_provision.runtime import NullJournal
from kensium_provision.steps.base import StepContext
from kensium_provision.steps.facts import LIVE, facts
from kensium_provision.steps.generic import call_read, search
from kensium_provision.steps.s3 import bucket_policy
from kensium_provision.vault.backends import SecretsManagerVault
from tests.test_client_install import World, answers, build_estate, reset_broker

pytest_plugins = ["rabbitmq_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
ENV = SANDBOX_ENVIRONMENT  # the embedded sandbox kprov runs in without a config: every purpose
# Reads made once per fleet check whatever its size (sts, the records' Scan, the buckets' tags, rds, ec2, mq,
# iam details, credential report get/generate/get, s3 list, secrets list, the broker admin's password, the
# account-level Block Public Access).
SHARED_READS = 16


def install_steps() -> set[str]:
    from kensium_provision.checklist.schema import load_checklist

    return {s.id for s in load_checklist(CHECKLISTS_DIR / "client" / "install.yaml").steps}


# --- the world ----------------------------------------------------------------------------------------


class Fleet:
    """A World with clients, and how to run the fleet check in it."""

    def __init__(self, world: World, tmp_path: Path) -> None:
        self.world, self.tmp_path = world, tmp_path
        self.journal = NullJournal()
        self.session: AwsSession | None = None

    def install(self, org: str) -> None:
        path = answers(self.tmp_path, org_id=org, client_name=f"{org.title()} Inc", tenant_name=org,
                       tenant_host_name=f"{org}.kensiumpos.example")
        report = self.world.install(answers=path, org_id=org)
        assert report.exit_code is ExitCode.OK, report.error or [f.message for f in report.findings]

    def clone(self, org: str) -> None:
        """Make client `org` as the install makes one, from acme's record (fast: no engine)."""
        w = self.world
        dynamodb, iam, s3 = w.client("dynamodb"), w.client("iam"), w.client("s3")
        acme = get_client(dynamodb, "acme")
        assert acme is not None
        record = json.loads(acme.to_json().replace("acme", org).replace("Acme", org.title()))
        vault = SecretsManagerVault(w.client("secretsmanager"), "sandbox")
        from kensium_provision.secret import Secret

        record["secrets"] = {"sql_login": vault.store(f"{org}/sql-login", Secret(f"Sql-{org}-Pw-1234"),
                                                      description="sql", tags={}),
                             "rabbitmq_user": vault.store(f"{org}/rabbitmq-hub", Secret(f"Hub-{org}-Pw-1234"),
                                                          description="hub", tags={})}
        user, bucket = f"rms_{org}", f"fusion-rms-{org}"
        iam.create_user(UserName=user, Tags=[{"Key": "OrgID", "Value": org}])
        iam.create_access_key(UserName=user)
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "OrgId", "Value": org}]})
        policy = bucket_policy(bucket, f"arn:aws:iam::123456789012:user/{user}")
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
        database, login = f"POS_{org}", f"POS_{org}_user"
        w.sql.databases.add(database)
        w.sql.logins[login] = database
        w.sql.users.setdefault(database, set()).add(login)
        broker = w.broker.client()
        broker.put_vhost(org)
        broker.put_user(user, f"Hub-{org}-Pw-1234")
        broker.put_permissions(org, user, ".*", ".*", ".*")
        record.pop("schema")
        put_record(dynamodb, ClientRecord(**record))

    def request(self, **changes: Any) -> fleet.FleetRequest:
        self.session = AwsSession(ENV, mode=Mode.CHECK, in_process=True)
        admin = SecretsManagerVault(self.world.client("secretsmanager"), "sandbox").find("rabbitmq-local/admin")
        settings = {"rabbitmq": {"base_url": self.world.broker.base_url, "admin_user": self.world.broker.admin_user,
                                 "admin_secret": admin}, "sql": {"connect": self.world.sql.connect}, "sandbox": True}
        base = {"env": ENV, "session": self.session, "settings": settings, "environments": (ENV,),
                "journal": self.journal, "sleep": lambda seconds: None}
        return fleet.FleetRequest(**{**base, **changes})

    def check(self, **changes: Any) -> fleet.FleetReport:
        return fleet.check_fleet(self.request(**changes))

    def calls(self, operation: str) -> int:
        assert self.session is not None
        return self.session.counter.count(*operation.split(":"))

    def calls_total(self) -> int:
        assert self.session is not None
        return int(cast("int", self.session.counter.as_dict()["calls"]))


@pytest.fixture
def three(emulated_rabbitmq: Any, tmp_path: Path) -> Iterator[Fleet]:
    """The shared estate and clients acme, beta and gamma, each installed by the install checklist."""
    reset_broker(emulated_rabbitmq)
    with mock_aws():
        world = World(broker=emulated_rabbitmq)
        build_estate(world)
        f = Fleet(world, tmp_path)
        for org in ("acme", "beta", "gamma"):
            f.install(org)
        yield f
    reset_broker(emulated_rabbitmq)


def by_client(report: fleet.FleetReport) -> dict[str, list[tuple[str, str]]]:
    return {c.org_id: [(f.step, f.message) for f in c.findings] for c in report.clients}


# --- the fleet check ------------------------------------------------------------------------------------


def test_three_installed_clients_pass_with_shared_reads_only(three: Fleet) -> None:
    report = three.check()
    assert by_client(report) == {"acme": [], "beta": [], "gamma": []}
    assert report.ok and report.exit_code is ExitCode.OK and report.not_checked == {}
    calls = report.api_calls
    n = 3
    assert int(calls["calls"]) <= 2 * n + SHARED_READS, calls  # type: ignore[call-overload]
    # Per client only the two S3 reads with no batch form; IAM and the rest are read once for all.
    assert three.calls("s3:GetBucketPolicy") == three.calls("s3:GetPublicAccessBlock") == n
    assert three.calls("s3control:GetPublicAccessBlock") == 1  # the account's, once for every bucket
    for per_user in ("iam:GetUser", "iam:GetLoginProfile", "iam:ListAccessKeys", "iam:ListUserTags",
                     "s3:GetBucketTagging", "s3:HeadBucket", "dynamodb:GetItem", "dynamodb:DescribeTable",
                     "secretsmanager:DescribeSecret"):
        assert three.calls(per_user) == 0, per_user
    assert report.management_api_calls == 3  # one vhosts, users and permissions listing for the broker
    # Read-only: the one operation that is not a read is the wall's journaled exception.
    by_operation = cast("dict[str, dict[str, int]]", calls["by_operation"])
    writes = [k for k in by_operation if not is_read(*k.split(":"))]
    assert by_operation["dynamodb:Scan"]["calls"] == 1
    assert writes == ["iam:GenerateCredentialReport"]
    events = [r["event"] for r in three.journal.records]
    assert events[0] == "guard" and "wall.exception" in events and events[-1] == "fleet.result"
    exception = next(r for r in three.journal.records if r["event"] == "wall.exception")
    assert exception["operation"] == "iam:GenerateCredentialReport" and exception["reason"]


def test_drift_on_one_client_names_it_and_its_steps_and_matches_check_client(three: Fleet) -> None:
    w = three.world
    w.broker.client().delete_vhost("beta")
    w.client("s3").put_bucket_tagging(Bucket="fusion-rms-beta", Tagging={"TagSet": [{"Key": "OrgId", "Value": "acme"}]})
    policy = w.client("iam").create_policy(PolicyName="BetaExtra", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]}))
    w.client("iam").attach_user_policy(UserName="rms_beta", PolicyArn=policy["Policy"]["Arn"])
    w.client("iam").create_login_profile(UserName="rms_beta", Password="Some-Console-Pass-1")
    report = three.check()
    assert report.exit_code is ExitCode.FAILED
    found = by_client(report)
    assert found["acme"] == [] and found["gamma"] == []
    steps = {step for step, _ in found["beta"]}
    assert steps == {"hub-vhost", "s3-bucket", "iam-user"} and steps <= install_steps()
    messages = "\n".join(m for _, m in found["beta"])
    assert "vhost: none, should be beta" in messages
    assert "billing tag OrgId (or OrgID): OrgId=acme, should be beta" in messages
    assert "attached policies: BetaExtra, should be none" in messages
    assert "console login: enabled" in messages
    # The same findings as `kprov check client beta`, which reads everything itself.
    single = w.check("beta")
    assert sorted(found["beta"]) == sorted((f.step_id, f.message) for f in single.findings)
    assert [r["client"] for r in three.journal.records if r["event"] == "finding"] == ["beta"] * len(found["beta"])


def test_twelve_clients_still_cost_two_calls_each(three: Fleet) -> None:
    small = three.check()
    small_calls = int(small.api_calls["calls"])  # type: ignore[call-overload]
    for n in range(9):
        three.clone(f"fleet{n:02d}")
    report = three.check()
    assert report.ok, by_client(report)
    n = len(report.clients)
    assert n == 12
    total = int(report.api_calls["calls"])  # type: ignore[call-overload]
    assert total <= 2 * n + SHARED_READS, report.api_calls
    assert three.calls("s3:GetBucketPolicy") == three.calls("s3:GetPublicAccessBlock") == n
    assert three.calls("s3control:GetPublicAccessBlock") == 1  # the account's, once for every bucket
    # What the 9 more clients cost: their 2 S3 reads each, nothing more (one Scan page holds every record).
    assert total - small_calls <= 2 * 9
    assert three.calls("dynamodb:Scan") == 1


def test_an_unreadable_broker_claimed_and_unreadable_records(three: Fleet) -> None:
    dynamodb = three.world.client("dynamodb")
    put_record(dynamodb, ClientRecord(org_id="delta", client_name="Delta", status="claimed", run_id="run-9"))
    dynamodb.put_item(TableName=DEFAULT_TABLE, Item={"OrgId": {"S": "broken"}, "Record": {"S": "{not json"}})
    request = three.request()
    settings = {**request.settings, "rabbitmq": {**request.settings["rabbitmq"], "base_url": "http://127.0.0.1:9"}}  # type: ignore[dict-item]
    report = fleet.check_fleet(three.request(settings=settings))
    assert report.not_checked == {"delta": "install in progress: the org id is reserved by run run-9"}
    found = by_client(report)
    [(step, message)] = found["broken"]
    assert step == "client-record"
    assert message.startswith("the client record kprov-clients/broken is unreadable: not JSON")
    for org in ("acme", "beta", "gamma"):
        assert [s for s, _ in found[org]] == ["hub-vhost"]
        assert "cannot read the broker's management API" in found[org][0][1]


def test_a_user_missing_from_the_credential_report_is_read_on_its_own(three: Fleet,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    real = snapshot._read_report

    def without_beta(iam: Any) -> Any:  # as if rms_beta was made after the report
        found = real(iam)
        return None if found is None else ({k: v for k, v in found[0].items() if k != "rms_beta"}, found[1])

    monkeypatch.setattr(snapshot, "_read_report", without_beta)
    three.world.client("iam").create_login_profile(UserName="rms_beta", Password="Some-Console-Pass-1")
    report = three.check()
    assert [s for s, _ in by_client(report)["beta"]] == ["iam-user"]
    assert three.calls("iam:GetLoginProfile") == three.calls("iam:ListAccessKeys") == 1  # beta's, once


def test_the_fleet_document_validates_against_the_json_schema(three: Fleet) -> None:
    three.world.broker.client().delete_vhost("gamma")
    report = three.check()
    from kensium_provision.ui import json_output

    document = json_output.fleet(report, run_id="r1", environment="sandbox", account="123456789012",
                                 region="us-east-1", caller="arn:aws:iam::123456789012:user/op")
    schema = json.loads((ROOT / "docs" / "json-output.schema.json").read_text())
    plain = json.loads(json.dumps(document, default=str))
    jsonschema.Draft202012Validator(schema).validate(plain)
    finding = jsonschema.Draft202012Validator({**schema["$defs"]["finding"], "$defs": schema["$defs"]})
    for client in plain["clients"]:  # each finding's step and values, as a check report's `finding`
        assert [d["message"] for d in client["details"]] == client["findings"]
        for detail in client["details"]:
            finding.validate(detail)
    gamma = next(c for c in document["clients"] if c["org_id"] == "gamma")
    assert gamma["ok"] is False and {d["step"] for d in gamma["details"]} == {"hub-vhost"}


# --- the snapshot's facts are the live facts ----------------------------------------------------------------


def _contexts(three: Fleet) -> tuple[StepContext, StepContext, fleet.Snapshot, ThreadPoolExecutor]:
    """(a context reading the fleet's snapshot, one reading live, the snapshot, its pool)."""
    request = three.request()
    pool = ThreadPoolExecutor(max_workers=2)
    snap, _ = fleet.take_snapshot(request, NullJournal(), pool, [])
    runtime = fleet.snapshot_runtime(request, snap)
    return StepContext(runtime, "parity", {}), StepContext(replace(runtime, facts=None), "parity", {}), snap, pool


def test_the_snapshot_answers_each_fact_reader_as_the_live_reads_do(three: Fleet) -> None:
    """Every fact the install's step types read: the same answer from the fleet's snapshot as live, and none
    of the snapshot's answers costs an AWS call (so the step types' judgement is the only judgement)."""
    w = three.world
    w.broker.client().delete_permissions("beta", "rms_beta")
    w.client("s3").put_bucket_tagging(Bucket="fusion-rms-beta", Tagging={"TagSet": [{"Key": "OrgId", "Value": "x"}]})
    w.client("s3").delete_bucket_policy(Bucket="fusion-rms-gamma")
    w.client("iam").create_login_profile(UserName="rms_beta", Password="Some-Console-Pass-1")
    fleet_ctx, live_ctx, snap, pool = _contexts(three)
    for future in snap.exposure.values():
        future.result()  # the per-client reads are made: nothing the snapshot answers is asked from here on
    pool.shutdown(wait=True)
    source = facts(fleet_ctx)
    assert isinstance(source, SnapshotFacts) and facts(live_ctx) is LIVE
    pairs: list[tuple[object, object]] = []
    costs = {"snapshot": 0, "live": 0}

    def both(from_snapshot: Callable[[], object], from_live: Callable[[], object]) -> None:
        answers = []
        for side, read in (("snapshot", from_snapshot), ("live", from_live)):
            before = three.calls_total()
            answers.append(read())
            costs[side] += three.calls_total() - before
        pairs.append((answers[0], answers[1]))

    def plain(value: object) -> object:
        """Sequences as lists; without RDS's LatestRestorableTime, which moto computes at each read."""
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items() if k != "LatestRestorableTime"}
        return value

    def same(reader: str, *args: Any, **kwargs: Any) -> None:
        both(lambda: plain(getattr(source, reader)(fleet_ctx, *args, **kwargs)),
             lambda: plain(getattr(LIVE, reader)(live_ctx, *args, **kwargs)))

    acme = snap.records["acme"]
    same("caller")
    for user in ("rms_acme", "rms_beta", "rms_nobody"):
        same("iam_user", user)
    for bucket in ("fusion-rms-acme", "fusion-rms-beta", "fusion-rms-gamma", "fusion-rms-nobody"):
        same("bucket_exists", bucket)
    for bucket in ("fusion-rms-acme", "fusion-rms-beta", "fusion-rms-gamma"):
        same("bucket_tags", bucket)
        same("bucket_public_access", bucket)
        same("bucket_policy", bucket)
    for org in ("acme", "beta", "nobody"):
        same("vhost", {"broker": acme.broker}, org, f"rms_{org}")
    same("brokers")
    same("db_instances")
    same("ec2_instances", states=("running",), tags={"Name": acme.ec2_host})
    same("ec2_instances", states=("pending", "running"), tags={"PosVersion": acme.pos_version})
    for org in ("acme", "ACME", "nobody"):
        same("client_record", org, DEFAULT_TABLE)
    same("org_id_uses", "Beta", DEFAULT_TABLE)
    # The generic reads of the install checklist (aws.assert, flow.stop, manual and credential probes).
    db, host = acme.rds_instance.lower(), acme.ec2_host

    def generic(ctx: StepContext, service: str, operation: str, params: dict[str, Any], query: str) -> object:
        return search(query, call_read(ctx, service, operation, params))

    reads: list[tuple[str, str, dict[str, Any], str]] = [
        ("rds", "DescribeDBInstances", {"Filters": [{"Name": "db-instance-id", "Values": [db]}]},
         "DBInstances[0].{status: DBInstanceStatus, engine: Engine, zone: AvailabilityZone}"),
        ("rds", "DescribeDBInstances", {"Filters": [{"Name": "db-instance-id", "Values": ["db-nobody"]}]},
         "DBInstances[0].DBInstanceIdentifier"),
        ("ec2", "DescribeInstances", {"Filters": [{"Name": "tag:Name", "Values": [host]},
                                                  {"Name": "instance-state-name", "Values": ["running"]}]},
         "Reservations[].Instances[].[Placement.AvailabilityZone, Tags[?Key=='PosVersion'].Value[] | [0]]"),
        ("mq", "ListBrokers", {}, f"BrokerSummaries[?BrokerName=='{acme.broker}'].BrokerId | [0]"),
        ("iam", "ListUsers", {}, "Users[?UserName=='rms_beta'].UserName | [0]"),
        ("iam", "ListAccessKeys", {"UserName": "rms_beta"}, "AccessKeyMetadata[?Status=='Active'].Status | [0]"),
    ]
    for read in reads:
        both(partial(generic, fleet_ctx, *read), partial(generic, live_ctx, *read))
    differing = [(a, b) for a, b in pairs if a != b]
    assert differing == [], '\n'.join(f'{a!r}\n  live: {b!r}' for a, b in differing)
    assert any(a in (None, (), [], {}, False) for a, _ in pairs) and any(a for a, _ in pairs)  # not all alike
    assert costs["snapshot"] == 0 and costs["live"] >= len(pairs), costs


def test_a_read_that_is_none_of_the_snapshots_facts_is_asked_of_aws(three: Fleet) -> None:
    fleet_ctx, live_ctx, snap, pool = _contexts(three)
    pool.shutdown(wait=True)
    host = snap.records["acme"].ec2_host
    reads: list[tuple[str, str, dict[str, Any]]] = [
        ("ec2", "DescribeInstances", {"Filters": [{"Name": "tag:Name", "Values": [f"{host[:-1]}*"]},
                                                  {"Name": "instance-state-name", "Values": ["running"]}]}),
        ("ec2", "DescribeInstances", {"Filters": [{"Name": "tag:Name", "Values": [host]}]}),  # any state
        ("ec2", "DescribeInstances", {"Filters": [{"Name": "instance-state-name", "Values": ["stopped"]}]}),
        ("rds", "DescribeDBInstances", {"Filters": [{"Name": "engine", "Values": ["sqlserver-web"]}]}),
        ("iam", "ListUsers", {"PathPrefix": "/kprov/"}),
        ("route53", "ListHostedZones", {}),
    ]
    for service, operation, params in reads:
        assert facts(fleet_ctx).read(fleet_ctx, service, operation, params) is None, (service, operation, params)
        before = three.calls_total()
        found = call_read(fleet_ctx, service, operation, params)
        assert three.calls_total() - before == 1  # asked of AWS, as `check client` asks it
        assert found == call_read(live_ctx, service, operation, params)


# --- the read-only wall's single exception ---------------------------------------------------------------


def test_the_wall_lets_through_only_the_credential_report_and_only_where_permitted() -> None:
    assert set(EXCEPTIONS) == {"iam:GenerateCredentialReport"}
    with mock_aws():
        iam = AwsSession(ENV, mode=Mode.CHECK, in_process=True).client("iam")
        with pytest.raises(ReadOnlyViolation):
            iam.generate_credential_report()
        with permit("iam:GenerateCredentialReport") as reason:
            assert "changes no user" in reason
            assert iam.generate_credential_report()["State"] in ("STARTED", "COMPLETE")
            with pytest.raises(ReadOnlyViolation):
                iam.create_user(UserName="rms_nobody")  # everything else stays refused
            refused: list[BaseException] = []

            def elsewhere() -> None:  # another thread has no permit
                try:
                    iam.generate_credential_report()
                except ReadOnlyViolation as exc:
                    refused.append(exc)

            thread = threading.Thread(target=elsewhere)
            thread.start()
            thread.join()
            assert len(refused) == 1
        with pytest.raises(ReadOnlyViolation):
            iam.generate_credential_report()
        with pytest.raises(ValueError, match="not an allowed exception"), permit("iam:CreateUser"):
            pass


# --- what is sent: 2 reads per client at the transport, concurrently ---------------------------------------


def test_what_reaches_the_transport_is_two_reads_per_client_plus_batched_listings(
        three: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counted where botocore sends each attempt (retries included, as the bench's proxy counts them), not by
    kprov's own counter; the per-bucket reads go through one client whose pool holds every worker's connection."""
    from botocore.endpoint import Endpoint

    sent: list[tuple[str, str]] = []
    lock = threading.Lock()
    real = Endpoint._do_get_response  # type: ignore[attr-defined]  # botocore: one call per attempt

    def counted(self: Endpoint, request: Any, operation_model: Any, context: Any) -> Any:
        with lock:
            sent.append((operation_model.service_model.service_name, operation_model.name))
        return real(self, request, operation_model, context)

    def sent_by(report: fleet.FleetReport) -> list[tuple[str, str]]:
        assert report.ok, by_client(report)
        # IAM's report is polled until complete (moto: 1 or 2 generate calls), whatever the fleet's size.
        return [op for op in sent if op[1] not in ("GenerateCredentialReport", "GetCredentialReport")]

    monkeypatch.setattr(Endpoint, "_do_get_response", counted)
    made: list[Any] = []

    def wide(*args: Any) -> Any:
        made.append(snapshot.wide_client(*args))
        return made[-1]

    monkeypatch.setattr(fleet, "wide_client", wide)
    small = sent_by(three.check())
    sent.clear()
    for n in range(9):
        three.clone(f"fleet{n:02d}")
    sent.clear()
    report = three.check()
    large = sent_by(report)
    assert len(report.clients) == 12
    per_bucket = [op for op in large if op in (("s3", "GetBucketPolicy"), ("s3", "GetPublicAccessBlock"))]
    assert len(per_bucket) == 2 * 12
    assert len(large) - len(small) == 2 * 9  # 9 more clients: their 2 reads each, the listings one page still
    assert len(large) <= 2 * 12 + SHARED_READS
    assert len(made) == 2 and all(c.meta.config.max_pool_connections == fleet.WORKERS > 10 for c in made)


def test_a_listing_the_steps_query_filters_by_one_name_is_answered_with_that_element(three: Fleet) -> None:
    """POS's IAM user (the manual step's `ListUsers` probe) filtered every user of the account for each
    client: the snapshot answers that query with the one user it keeps, and the query's result is the same."""
    from kensium_provision.checklist.schema import load_checklist
    from kensium_provision.naming.loader import load_rules

    checklist = load_checklist(CHECKLISTS_DIR / "client" / "install.yaml", rule_ids=load_rules().ids)
    request = three.request()
    pool = ThreadPoolExecutor(max_workers=2)
    snap, _ = fleet.take_snapshot(request, NullJournal(), pool, [])
    pool.shutdown(wait=True)
    runtime = fleet.snapshot_runtime(request, snap, checklist)
    [(service, operation, query)] = [r for r in step_reads(checklist.steps)["pos-aws-provisioning"]
                                     if r[1] == "ListUsers"]
    for org in ("beta", "nobody"):
        ctx = StepContext(runtime, "pos-aws-provisioning", {"org_id": org})
        live = StepContext(replace(runtime, facts=None), "pos-aws-provisioning", {"org_id": org})
        rendered = query.replace("{{ org_id }}", org)
        answer = call_read(ctx, service, operation, {})
        assert [u["UserName"] for u in answer["Users"]] == ([f"rms_{org}"] if org == "beta" else [])
        assert search(rendered, answer) == search(rendered, call_read(live, service, operation, {}))
    elsewhere = call_read(StepContext(runtime, "iam-user", {"org_id": "beta"}), service, operation, {})
    assert len(elsewhere["Users"]) == len(snap.user_list) > 1  # another step's read: the whole listing
