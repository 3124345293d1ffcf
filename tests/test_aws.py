"""The AWS layer: session policy, call counting, the read-only wall, error translation, creates once."""

from __future__ import annotations

import base64
import functools
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, quote_plus

import botocore.exceptions as bx
import pytest

from kensium_provision import __version__
from kensium_provision.aws.errors import iam_action, translate
from kensium_provision.aws.idempotent import Created, create_client, create_once
from kensium_provision.aws.session import AwsSession, SandboxNotRunningError
from kensium_provision.aws.wall import ReadOnlyViolation, is_read
from kensium_provision.errors import AwsError, ExitCode
from kensium_provision.guards import Environment
from kensium_provision.model import Mode
from tests.faults import client_error, error_body, inject, lose_response, no_backoff

ENV = Environment(name="qa", account_id="123456789012", region="us-east-1", purposes=("qa",))
SANDBOX = Environment(name="sandbox", account_id="123456789012", region="us-east-1", sandbox=True,
                      purposes=("qa",))
NAME = "vpc-POS"


@functools.cache
def _shared_boto3_session() -> Any:
    import boto3

    return boto3.Session(region_name="us-east-1")  # its loader caches service models: tests stay fast


def aws_session(mode: Mode = Mode.APPLY, *, read_cache: bool = True) -> AwsSession:
    return AwsSession(ENV, mode=mode, session=_shared_boto3_session(), read_cache=read_cache)


@pytest.fixture
def aws(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """conftest's moto, without retry back-off."""
    no_backoff(monkeypatch)


def vpcs_named(session: AwsSession, name: str = NAME) -> list[dict[str, Any]]:
    found = session.client("ec2").describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [name]}])
    return list(found["Vpcs"])


def create_vpc(client: Any, name: str = NAME) -> dict[str, Any]:
    tags = [{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": name}]}]
    return dict(client.create_vpc(CidrBlock="10.20.0.0/16", TagSpecifications=tags)["Vpc"])


# -- the session ---------------------------------------------------------------------------------------------


def test_one_policy_for_every_client() -> None:
    session = aws_session()
    config = session.client("ec2").meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": 4}
    assert (config.connect_timeout, config.read_timeout, config.region_name) == (5, 60, "us-east-1")
    assert config.user_agent_extra == f"kprov/{__version__}"
    assert session.client("ec2") is session.client("ec2")
    single = session.client("ec2", attempts=1)
    assert single is not session.client("ec2")
    assert single.meta.config.retries == {"mode": "standard", "total_max_attempts": 1}


def test_every_session_and_the_iam_action_lookup_parse_a_service_model_once() -> None:
    """One loader (it caches what it parsed) for every session of the process and for the preflight's
    operation-to-action lookup: EC2's model alone takes ~0.1 s to parse."""
    from kensium_provision.permissions import actions

    sessions = [AwsSession(ENV, mode=Mode.APPLY, endpoint_url="http://127.0.0.1:1") for _ in range(3)]
    loaders = {id(s._boto3_session()._session.get_component("data_loader")) for s in sessions}
    loaders.add(id(actions._botocore().get_component("data_loader")))
    assert len(loaders) == 1
    loader = sessions[0]._boto3_session()._session.get_component("data_loader")
    assert len(loader.search_paths) == len(set(loader.search_paths))  # boto3's folder once, not once a session


def test_aws_endpoint_url_keeps_working_and_an_environment_endpoint_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    assert aws_session().client("sts").meta.endpoint_url == "http://127.0.0.1:4566"
    sandbox = AwsSession(SANDBOX, mode=Mode.APPLY, endpoint_url="http://127.0.0.1:5999")
    for service in ("sts", "ec2", "rds", "mq", "secretsmanager"):
        assert sandbox.client(service).meta.endpoint_url == "http://127.0.0.1:5999"
    assert sandbox.client("sts").meta.config.proxies == {}  # never through an HTTP_PROXY
    assert sandbox.client("sts")._request_signer._credentials.access_key == "kprov-sandbox"


def test_a_sandbox_without_endpoint_never_reaches_real_aws() -> None:
    with pytest.raises(SandboxNotRunningError, match="the sandbox is not running"):
        AwsSession(SANDBOX, mode=Mode.APPLY)


def test_a_sandbox_environment_works_under_in_process_moto(aws: None) -> None:
    assert AwsSession(SANDBOX, mode=Mode.APPLY, in_process=True).identity().account == "123456789012"


def test_in_process_moto_alone_does_not_make_a_sandbox_session_reachable(aws: None) -> None:
    """Only the caller says the sandbox is served in this process: no sniffing of sys.modules (issue 13)."""
    with pytest.raises(SandboxNotRunningError, match="the sandbox is not running"):
        AwsSession(SANDBOX, mode=Mode.APPLY)


def test_modules_import_without_boto3_botocore_or_moto() -> None:
    code = ("import sys\n"
            "import kensium_provision.app.config, kensium_provision.guards, kensium_provision.sandbox.server\n"
            "import kensium_provision.aws.session, kensium_provision.aws.wall, kensium_provision.aws.calls\n"
            "import kensium_provision.aws.errors, kensium_provision.aws.idempotent, kensium_provision.aws.call\n"
            "import kensium_provision.steps.aws_helpers, kensium_provision.steps.ec2\n"
            "loaded = sorted(m for m in ('boto3', 'botocore', 'moto') if m in sys.modules)\n"
            "assert not loaded, loaded\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- counting ------------------------------------------------------------------------------------------------


def test_calls_and_retry_attempts_are_counted(aws: None) -> None:
    session = aws_session()
    ec2 = session.client("ec2")
    inject(ec2, "ec2.CreateVpc", status=503, code="Unavailable", times=2)
    create_vpc(ec2)
    ec2.describe_vpcs()
    with pytest.raises(bx.ClientError):
        ec2.describe_vpcs(VpcIds=["vpc-00000000000000000"])
    assert session.counter.as_dict() == {
        "calls": 3, "attempts": 5, "errors": 1,
        "by_operation": {
            "ec2:CreateVpc": {"calls": 1, "attempts": 3, "errors": 0},
            "ec2:DescribeVpcs": {"calls": 2, "attempts": 2, "errors": 1},
        },
    }
    assert session.counter.total == 3 and session.counter.attempts == 5


def test_transport_failures_are_counted_as_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    no_backoff(monkeypatch)
    session = AwsSession(ENV, mode=Mode.APPLY, endpoint_url="http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(bx.EndpointConnectionError):
        session.client("sts").get_caller_identity()
    assert session.counter.as_dict()["by_operation"] == {
        "sts:GetCallerIdentity": {"calls": 1, "attempts": 4, "errors": 1}}


def test_counting_is_thread_safe(aws: None) -> None:
    session = aws_session(read_cache=False)  # every call must reach moto to be counted
    sts = session.client("sts")

    def work() -> None:
        for _ in range(10):
            sts.get_caller_identity()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert session.counter.count("sts", "GetCallerIdentity") == 40


# -- the read-only wall --------------------------------------------------------------------------------------


def buggy_probe(session: AwsSession) -> dict[str, Any]:
    """A step type's probe that creates instead of only describing: the bug the wall exists for."""
    found = vpcs_named(session)
    return found[0] if found else create_vpc(session.client("ec2"))


@pytest.mark.parametrize("mode", [Mode.PLAN, Mode.CHECK])
def test_the_wall_refuses_a_create_in_plan_and_check_and_nothing_changes(aws: None, mode: Mode) -> None:
    before = aws_session().client("ec2").describe_vpcs()["Vpcs"]
    session = aws_session(mode)
    with pytest.raises(ReadOnlyViolation) as caught:
        buggy_probe(session)
    assert caught.value.exit_code == ExitCode.INTERNAL and int(caught.value.exit_code) == 70
    assert (caught.value.service, caught.value.operation) == ("ec2", "CreateVpc")
    assert str(caught.value) == (f"read-only wall: ec2:CreateVpc is not a read and this run is in {mode.value} "
                                 "mode; nothing was sent")
    assert aws_session().client("ec2").describe_vpcs()["Vpcs"] == before
    assert session.counter.as_dict()["by_operation"] == {  # the refused call never went out
        "ec2:DescribeVpcs": {"calls": 1, "attempts": 1, "errors": 0}}


def test_the_wall_lets_reads_through_and_apply_is_not_walled(aws: None) -> None:
    plan = aws_session(Mode.PLAN)
    plan.identity()
    plan.client("ec2").describe_availability_zones()
    plan.client("dynamodb").list_tables()
    created = buggy_probe(aws_session())
    assert vpcs_named(plan)[0]["VpcId"] == created["VpcId"]


@pytest.mark.parametrize(("service", "operation", "read"), [
    ("ec2", "DescribeVpcs", True),
    ("sts", "GetCallerIdentity", True),
    ("s3", "HeadBucket", True),
    ("s3", "ListObjectsV2", True),
    ("dynamodb", "Scan", True),
    ("dynamodb", "Query", True),
    ("dynamodb", "BatchGetItem", True),
    ("logs", "FilterLogEvents", True),
    ("ec2", "SearchTransitGatewayRoutes", True),
    ("iam", "SimulatePrincipalPolicy", True),
    ("ec2", "CreateVpc", False),
    ("ec2", "RunInstances", False),
    ("dynamodb", "PutItem", False),
    ("dynamodb", "BatchWriteItem", False),
    ("iam", "GenerateCredentialReport", False),
    ("logs", "StartQuery", False),
    ("s3", "Listen", False),  # a prefix must end at a word boundary
    ("secretsmanager", "GetRandomPassword", True),
])
def test_what_counts_as_a_read(service: str, operation: str, read: bool) -> None:
    assert is_read(service, operation) is read


# -- error translation ---------------------------------------------------------------------------------------


def test_access_denied_names_the_missing_iam_action(aws: None) -> None:
    ec2 = aws_session().client("ec2")
    inject(ec2, "ec2.CreateVpc", status=403, code="UnauthorizedOperation",
           message="You are not authorized to perform this operation. Encoded authorization failure message: abc")
    with pytest.raises(bx.ClientError) as caught:
        create_vpc(ec2)
    error = translate(caught.value, service="ec2", operation="CreateVpc", resource=NAME)
    assert isinstance(error, AwsError) and error.exit_code == ExitCode.FAILED
    assert str(error) == ("ec2:CreateVpc failed with UnauthorizedOperation: vpc-POS: you are not authorized to "
                          "perform this operation (encoded details withheld)")
    assert error.hint.startswith("Your IAM identity lacks ec2:CreateVpc (on this resource).")
    assert "aws sts decode-authorization-message" in error.hint


@pytest.mark.parametrize(("service", "operation", "action"), [
    ("ec2", "CreateVpc", "ec2:CreateVpc"),
    ("s3", "ListBuckets", "s3:ListAllMyBuckets"),
    ("s3", "HeadObject", "s3:GetObject"),
    ("elbv2", "DescribeLoadBalancers", "elasticloadbalancing:DescribeLoadBalancers"),
])
def test_iam_action_names(service: str, operation: str, action: str) -> None:
    assert iam_action(service, operation) == action


def test_throttling_says_how_often_it_was_retried(aws: None) -> None:
    sts = aws_session().client("sts")
    inject(sts, "sts.GetCallerIdentity", status=400, code="Throttling", message="Rate exceeded", times=10)
    with pytest.raises(bx.ClientError) as caught:
        sts.get_caller_identity()
    error = translate(caught.value, service="sts", operation="GetCallerIdentity")
    assert str(error) == "sts:GetCallerIdentity failed with Throttling: Rate exceeded"
    assert error.hint.startswith("AWS throttled the call; kprov retried it 3 times.")


def test_parameter_validation_never_keeps_values() -> None:
    canary = "Sup3r-Secret-Canary-4242"
    rds = aws_session().client("rds")
    with pytest.raises(bx.ParamValidationError) as caught:
        rds.create_db_instance(DBInstanceIdentifier="db-pos-01", Engine="sqlserver-web",
                               MasterUserPassword=12345678901, Iops=canary, Nope=canary)
    assert canary in str(caught.value)  # botocore's own text holds it...
    error = translate(caught.value, service="rds", operation="CreateDBInstance", resource="db-pos-01")
    text = f"{error} {error.hint} {error.args}"
    assert canary not in text and "12345678901" not in text  # ...kprov's never does
    assert str(error) == ("rds:CreateDBInstance failed with ParamValidation: db-pos-01: invalid parameters: "
                          "DBInstanceClass (missing), Nope (unknown), MasterUserPassword (wrong type), "
                          "Iops (wrong type)")


def test_no_credentials_says_how_to_log_in() -> None:
    error = translate(bx.NoCredentialsError(), service="sts", operation="GetCallerIdentity", profile="kensium-qa")
    assert error.code == "NoCredentials"
    assert str(error) == "sts:GetCallerIdentity failed with NoCredentials: no AWS credentials were found"
    assert "`aws sso login --profile kensium-qa`" in error.hint


def test_expired_credentials_say_how_to_log_in_again() -> None:
    failure = client_error("ExpiredToken", "The security token has expired", status=403, operation="DescribeVpcs")
    error = translate(failure, service="ec2", operation="DescribeVpcs", profile="kensium-prod")
    assert error.hint == ("The AWS credentials are invalid or expired. Log in again: "
                          "`aws sso login --profile kensium-prod`.")


def test_an_unreachable_sandbox_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    no_backoff(monkeypatch)
    session = AwsSession(SANDBOX, mode=Mode.APPLY, endpoint_url="http://127.0.0.1:9")
    with pytest.raises(bx.EndpointConnectionError) as caught:
        session.identity()
    error = translate(caught.value, service="sts", operation="GetCallerIdentity", sandbox=True)
    assert str(error) == ('sts:GetCallerIdentity failed with EndpointConnectionError: cannot connect to '
                          'http://127.0.0.1:9/')
    assert error.hint.startswith("The sandbox is not running")
    remote = translate(bx.EndpointConnectionError(endpoint_url="https://ec2.eu-west-9.amazonaws.com/"),
                       service="ec2", operation="DescribeVpcs")
    assert remote.hint.startswith("Check the network")


def test_a_lost_answer_says_it_may_have_happened() -> None:
    error = translate(bx.ReadTimeoutError(endpoint_url="https://ec2.us-east-1.amazonaws.com/"),
                      service="ec2", operation="CreateVpc")
    assert str(error) == ("ec2:CreateVpc failed with ReadTimeoutError: no answer from "
                          "https://ec2.us-east-1.amazonaws.com/ (retried)")
    assert "may still have taken effect" in error.hint


def test_what_moto_does_not_implement(aws: None) -> None:
    rds = aws_session().client("rds")
    with pytest.raises(NotImplementedError) as caught:  # moto in-process, query protocol: not a ClientError
        rds.describe_reserved_db_instances()  # (DescribeDBEngineVersions is answered by sandbox.aws_data now)
    error = translate(caught.value, service="rds", operation="DescribeReservedDBInstances")
    assert error.code == "NotImplemented"
    assert str(error).endswith("the sandbox (moto) does not implement rds:DescribeReservedDBInstances")
    from botocore.parsers import ResponseParserError

    unreadable = translate(ResponseParserError("<html>500</html>"), service="rds", operation="X", sandbox=True)
    assert unreadable.code == "UnreadableResponse" and "moto" in str(unreadable)


@pytest.mark.parametrize("echo", [
    lambda pw: pw,  # as sent
    lambda pw: base64.b64encode(pw.encode()).decode(),  # a service that quotes the request body encoded
    lambda pw: quote(pw, safe=""),  # ... or URL-encoded (query protocol: the form body)
    lambda pw: quote_plus(pw),
])
def test_an_aws_error_message_echoing_a_secret_is_redacted(aws: None, echo: Callable[[str], str]) -> None:
    """A validation error that quotes the MasterUserPassword sent: kprov's error never shows it, in any form."""
    from botocore.stub import Stubber

    from kensium_provision.aws.call import call
    from kensium_provision.secret import MASK, Secret

    password = Secret(f"Echoed-Pw/{secrets.token_hex(6)}+x=")  # '/', '+' and '=' differ once URL-encoded
    rds = aws_session().client("rds")
    with Stubber(rds) as stub:
        stub.add_client_error("create_db_instance", service_error_code="InvalidParameterValue", http_status_code=400,
                              service_message=f"Invalid master password {echo(password.reveal())}: too short")
        with pytest.raises(AwsError) as caught:
            call(rds, "CreateDBInstance", resource="db-pos-01", DBInstanceIdentifier="db-pos-01",
                 DBInstanceClass="db.t3.small", Engine="sqlserver-ex", MasterUsername="admin",
                 MasterUserPassword=password.reveal())
    error = caught.value
    text = f"{error} {error.hint} {error.args!r} {vars(error)!r}"
    assert echo(password.reveal()) not in text
    # The rest of the text is not compared: REDACTOR is process-wide, and other tests register short values.
    assert str(error).startswith(f"rds:CreateDBInstance failed with InvalidParameterValue: db-pos-01: Invalid master "
                                 f"password {MASK}")


def test_an_unknown_exception_keeps_only_its_type() -> None:
    error = translate(ValueError("password=hunter2"), service="ec2", operation="CreateVpc")
    assert str(error) == "ec2:CreateVpc failed with ValueError: unexpected ValueError"
    assert translate(error, service="x", operation="y") is error


# -- fault injection itself ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("service", "op", "method", "code"), [
    ("ec2", "ec2.DescribeVpcs", "describe_vpcs", "RequestLimitExceeded"),
    ("sts", "sts.GetCallerIdentity", "get_caller_identity", "Throttling"),
    ("secretsmanager", "secretsmanager.ListSecrets", "list_secrets", "ThrottlingException"),
    ("mq", "mq.ListBrokers", "list_brokers", "TooManyRequestsException"),
    ("s3", "s3.ListBuckets", "list_buckets", "SlowDown"),
])
def test_injected_errors_parse_in_every_protocol(aws: None, service: str, op: str, method: str, code: str) -> None:
    client = aws_session().client(service, attempts=1)
    fault = inject(client, op, status=400, code=code, message="slow down")
    with pytest.raises(bx.ClientError) as caught:
        getattr(client, method)()
    assert caught.value.response["Error"]["Code"] == code
    assert (fault.sends, fault.fired) == (1, 1)


def test_an_injected_fault_is_not_executed_by_moto_behind_it(aws: None) -> None:
    session = aws_session()
    ec2 = session.client("ec2", attempts=1)
    inject(ec2, "ec2.CreateVpc", status=500, code="InternalError")
    with pytest.raises(bx.ClientError):
        create_vpc(ec2)
    assert vpcs_named(session) == []


def test_error_body_refuses_unknown_protocols() -> None:
    with pytest.raises(ValueError, match="smithy-rpc-v2-cbor"):
        error_body("smithy-rpc-v2-cbor", "X", "y")


# -- creates that never duplicate ----------------------------------------------------------------------------


def no_sleep(_: float) -> None:
    return None


def make_vpc_once(session: AwsSession, client: Any) -> Created[dict[str, Any]]:
    def probe() -> dict[str, Any] | None:
        found = vpcs_named(session)
        return found[0] if found else None

    return create_once(probe=probe, create=lambda: create_vpc(client), client_token=None, sleep=no_sleep,
                       forget=session.invalidate)


def test_a_blind_sdk_retry_after_a_lost_response_duplicates(aws: None) -> None:
    """Why token-less creates use a single-attempt client: botocore re-sends after a lost response."""
    session = aws_session()
    ec2 = session.client("ec2")
    lose_response(ec2, "ec2.CreateVpc")
    create_vpc(ec2)
    assert len(vpcs_named(session)) == 2


def test_create_client_is_single_attempt_only_without_a_token(aws: None) -> None:
    session = aws_session()
    assert create_client(session, "ec2") is session.client("ec2", attempts=1)
    assert create_client(session, "mq", client_token="kprov-abc") is session.client("mq")


def test_an_existing_resource_is_returned_without_a_create(aws: None) -> None:
    session = aws_session()
    first = make_vpc_once(session, create_client(session, "ec2"))
    again = make_vpc_once(session, create_client(session, "ec2"))
    assert (first.created, again.created, again.attempts) == (True, False, 0)
    assert again.resource["VpcId"] == first.resource["VpcId"]
    assert session.counter.count("ec2", "CreateVpc") == 1


def test_a_lost_response_after_a_successful_create_is_reconciled(aws: None) -> None:
    session = aws_session()
    client = create_client(session, "ec2")
    fault = lose_response(client, "ec2.CreateVpc")
    result = make_vpc_once(session, client)
    assert (result.created, result.reconciled, result.attempts) == (True, True, 1)
    assert fault.sends == 1  # botocore did not re-send it
    assert [v["VpcId"] for v in vpcs_named(session)] == [result.resource["VpcId"]]


def test_throttling_on_create_is_retried_and_makes_one(aws: None) -> None:
    session = aws_session()
    client = create_client(session, "ec2")
    fault = inject(client, "ec2.CreateVpc", status=400, code="RequestLimitExceeded", times=2)
    result = make_vpc_once(session, client)
    assert (result.created, result.reconciled, result.attempts, fault.sends) == (True, False, 3, 3)
    assert len(vpcs_named(session)) == 1


def test_a_500_on_create_is_reprobed_then_retried_and_makes_one(aws: None) -> None:
    session = aws_session()
    client = create_client(session, "ec2")
    inject(client, "ec2.CreateVpc", status=500, code="InternalError", times=1)
    result = make_vpc_once(session, client)
    assert (result.created, result.reconciled, result.attempts) == (True, False, 2)
    assert len(vpcs_named(session)) == 1
    assert session.counter.count("ec2", "DescribeVpcs") == 1 + 3 + 1  # first probe, 3 settle probes, the check


def test_persistent_failure_gives_up_after_the_bound(aws: None) -> None:
    session = aws_session()
    client = create_client(session, "ec2")
    fault = inject(client, "ec2.CreateVpc", status=503, code="Unavailable", times=100)
    with pytest.raises(bx.ClientError):
        make_vpc_once(session, client)
    assert fault.sends == 4 and vpcs_named(session) == []


def test_a_real_error_is_raised_at_once(aws: None) -> None:
    session = aws_session()
    client = create_client(session, "ec2")
    fault = inject(client, "ec2.CreateVpc", status=400, code="VpcLimitExceeded", times=5)
    with pytest.raises(bx.ClientError, match="VpcLimitExceeded"):
        make_vpc_once(session, client)
    assert fault.sends == 1


def test_already_exists_is_reconciled_by_a_probe(aws: None) -> None:
    session = aws_session()
    ec2 = session.client("ec2")
    calls = {"probes": 0}
    existing = create_vpc(ec2)

    def late_probe() -> dict[str, Any] | None:  # misses it the first time (another operator's race)
        calls["probes"] += 1
        return None if calls["probes"] == 1 else existing

    def create() -> dict[str, Any]:
        raise client_error("InvalidVpc.Duplicate", "exists", status=400, operation="CreateVpc")

    result = create_once(probe=late_probe, create=create, client_token=None, sleep=no_sleep)
    assert (result.created, result.reconciled, result.resource) == (False, True, existing)


def test_with_a_token_one_probe_follows_an_ambiguous_failure(aws: None) -> None:
    session = aws_session()
    token = "kprov-" + "a" * 32
    secrets = create_client(session, "secretsmanager", client_token=token)
    inject(secrets, "secretsmanager.CreateSecret", status=500, code="InternalServiceError", times=4)
    probes: list[int] = []

    def probe() -> dict[str, Any] | None:
        probes.append(1)
        return None

    result = create_once(
        probe=probe, client_token=token, sleep=no_sleep,
        create=lambda: secrets.create_secret(Name="kprov/qa/acme/x", SecretString="v", ClientRequestToken=token))
    assert result.created and result.attempts == 2 and len(probes) == 2  # first probe + one after the 500


def test_read_cache_answers_repeated_reads_until_a_write(aws: None) -> None:
    session = aws_session()
    ec2 = session.client("ec2")
    ec2.describe_vpcs()
    ec2.describe_vpcs()
    assert session.counter.count("ec2", "DescribeVpcs") == 1  # the second answer came from the run's cache
    ec2.create_vpc(CidrBlock="10.1.0.0/16")  # a write empties the cache
    after = ec2.describe_vpcs()
    assert session.counter.count("ec2", "DescribeVpcs") == 2
    assert any(v["CidrBlock"] == "10.1.0.0/16" for v in after["Vpcs"])
    after["Vpcs"].clear()  # callers get copies: mutating one never corrupts the cache
    assert ec2.describe_vpcs()["Vpcs"]
    session.invalidate()  # the engine (before act) and the run's sleep (waits) do this
    ec2.describe_vpcs()
    assert session.counter.count("ec2", "DescribeVpcs") == 3


def test_read_cache_keeps_definite_errors_and_the_identity(aws: None) -> None:
    from botocore.exceptions import ClientError

    session = aws_session()
    iam = session.client("iam")
    iam.create_user(UserName="rms_acme")
    for _ in range(2):  # "no console login" is an answer too: asked once, raised both times
        with pytest.raises(ClientError) as caught:
            iam.get_login_profile(UserName="rms_acme")
        assert caught.value.response["Error"]["Code"] == "NoSuchEntity"
    assert session.counter.count("iam", "GetLoginProfile") == 1
    session.client("sts").get_caller_identity()
    session.invalidate()
    session.client("sts").get_caller_identity()  # who the caller is cannot change within a run
    assert session.counter.count("sts", "GetCallerIdentity") == 1
    session.invalidate()
    with pytest.raises(ClientError):
        iam.get_login_profile(UserName="rms_acme")
    assert session.counter.count("iam", "GetLoginProfile") == 2
