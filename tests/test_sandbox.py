"""The sandbox: a moto server shared by kprov processes, on loopback, that never writes request bodies."""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest

from kensium_provision.aws.idempotent import create_client, create_once
from kensium_provision.aws.session import AwsSession
from kensium_provision.guards import Environment
from kensium_provision.model import Mode
from kensium_provision.sandbox.server import (
    RABBITMQ_ADMIN_USER,
    RABBITMQ_SECRET_NAME,
    SandboxError,
    SandboxInfo,
    ensure_running,
    reset,
    status,
    stop,
)
from tests.faults import lose_response

SANDBOX = Environment(name="sandbox", account_id="123456789012", region="us-east-1", sandbox=True,
                      purposes=("qa",))
CANARY = "Canary-Passw0rd-Never-On-Disk-7731"
READ_BACK = textwrap.dedent("""\
    import json, sys, boto3
    ec2 = boto3.client("ec2", endpoint_url=sys.argv[1], region_name="us-east-1",
                       aws_access_key_id="other", aws_secret_access_key="other")
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [sys.argv[2]]}])["Vpcs"]
    print(json.dumps([v["VpcId"] for v in vpcs]))
    """)


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    stop(tmp_path)  # never leave a server behind, whatever the test did


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def read_back(endpoint: str, name: str = "vpc-POS") -> list[str]:
    """The VPCs named `name`, as a second Python process with a fresh boto3 client sees them."""
    done = subprocess.run([sys.executable, "-c", READ_BACK, endpoint, name], capture_output=True, text=True,
                          check=True, timeout=60)
    return list(json.loads(done.stdout))


def test_lifecycle_state_lasts_across_processes_until_reset(state_dir: Path) -> None:
    assert status(state_dir) is None
    info = ensure_running(state_dir)
    assert info.endpoint == f"http://127.0.0.1:{info.port}" and alive(info.pid)
    assert ensure_running(state_dir) == info  # reused, not restarted
    assert status(state_dir) == info

    session = AwsSession(SANDBOX, mode=Mode.APPLY, endpoint_url=info.endpoint)
    assert session.identity().account == "123456789012"
    vpc = session.client("ec2").create_vpc(
        CidrBlock="10.9.0.0/16",
        TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "vpc-POS"}]}])["Vpc"]
    session.client("secretsmanager").create_secret(Name="kprov/sandbox/acme/sql-login", SecretString=CANARY)
    assert read_back(info.endpoint) == [vpc["VpcId"]]

    # A create whose answer is lost on the way back from the server is found, not made twice.
    client = create_client(session, "ec2")
    lose_response(client, "ec2.CreateVpc")

    def probe() -> str | None:
        found = session.client("ec2").describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["vpc-lost"]}])
        return next((v["VpcId"] for v in found["Vpcs"]), None)

    made = create_once(probe=probe,
                       create=lambda: client.create_vpc(CidrBlock="10.8.0.0/16", TagSpecifications=[
                           {"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "vpc-lost"}]}])["Vpc"]["VpcId"],
                       client_token=None, sleep=lambda _: None)
    assert made.reconciled and read_back(info.endpoint, "vpc-lost") == [made.resource]

    assert reset(state_dir) == info
    assert read_back(info.endpoint) == []
    assert stop(state_dir) is True
    assert status(state_dir) is None and not alive(info.pid)
    assert sorted(p.name for p in (state_dir / "sandbox").iterdir()) == ["server.log", "start.lock"]
    for path in state_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert CANARY.encode() not in data and b"vpc-POS" not in data and b"CreateVpc" not in data, path


def test_server_json_is_private_and_complete(state_dir: Path) -> None:
    info = ensure_running(state_dir)
    server_file = state_dir / "sandbox" / "server.json"
    assert oct(server_file.stat().st_mode & 0o777) == "0o600"
    assert oct((state_dir / "sandbox").stat().st_mode & 0o777) == "0o700"
    assert SandboxInfo(**json.loads(server_file.read_text())) == info
    assert set(json.loads(server_file.read_text())) == {
        "pid", "port", "endpoint", "started", "instance", "rabbitmq_url", "rabbitmq_secret", "region"}


def test_two_processes_starting_at_once_share_one_server(state_dir: Path) -> None:
    argv = [sys.executable, "-m", "kensium_provision.sandbox.server", "start", "--state-dir", str(state_dir)]
    starters = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    answers = []
    for starter in starters:
        out, _ = starter.communicate(timeout=60)
        assert starter.returncode == 0
        answers.append(json.loads(out))
    assert answers[0]["pid"] == answers[1]["pid"]
    assert status(state_dir) is not None and status(state_dir).pid == answers[0]["pid"]  # type: ignore[union-attr]


def test_a_stale_server_file_is_replaced(state_dir: Path) -> None:
    folder = state_dir / "sandbox"
    folder.mkdir()
    stale = SandboxInfo(pid=999999, port=9, endpoint="http://127.0.0.1:9", started="x", instance="old")
    (folder / "server.json").write_text(json.dumps(asdict(stale)))
    assert status(state_dir) is None
    info = ensure_running(state_dir)
    assert info.instance != "old" and info.port != 9


def test_the_server_answers_only_loopback_hosts_and_never_records(state_dir: Path) -> None:
    info = ensure_running(state_dir)

    def ask(method: str, path: str, host: str) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", info.port, timeout=10)
        try:
            connection.request(method, path, headers={"Host": host})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    assert ask("GET", "/moto-api/", "attacker.example")[0] == 403  # DNS rebinding from a web page
    status_code, body = ask("POST", "/moto-api/recorder/start-recording", f"127.0.0.1:{info.port}")
    assert status_code == 403 and b"never records" in body
    assert ask("GET", "/moto-api/", f"localhost:{info.port}")[0] == 200


def test_the_rabbitmq_emulator_is_hosted_and_its_password_only_in_the_sandbox(state_dir: Path) -> None:
    info = ensure_running(state_dir)
    assert info.rabbitmq_url.startswith("http://127.0.0.1:"), info  # the emulator is packaged: never optional
    assert info.rabbitmq_secret == RABBITMQ_SECRET_NAME
    secrets = AwsSession(SANDBOX, mode=Mode.APPLY, endpoint_url=info.endpoint).client("secretsmanager")

    def whoami() -> int:
        password = secrets.get_secret_value(SecretId=RABBITMQ_SECRET_NAME)["SecretString"]
        token = base64.b64encode(f"{RABBITMQ_ADMIN_USER}:{password}".encode()).decode()
        request = urllib.request.Request(f"{info.rabbitmq_url}/api/whoami",
                                         headers={"Authorization": f"Basic {token}"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=10) as response:
            return int(response.status)

    assert whoami() == 200
    password = secrets.get_secret_value(SecretId=RABBITMQ_SECRET_NAME)["SecretString"]
    reset(state_dir)
    assert whoami() == 200  # reseeded after the reset, same password
    assert secrets.get_secret_value(SecretId=RABBITMQ_SECRET_NAME)["SecretString"] == password
    for path in state_dir.rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path


def test_reset_and_stop_without_a_sandbox(state_dir: Path) -> None:
    with pytest.raises(SandboxError, match="the sandbox is not running"):
        reset(state_dir)
    assert stop(state_dir) is False


def test_a_recording_setting_is_never_passed_on(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOTO_ENABLE_RECORDING", "true")
    monkeypatch.setenv("MOTO_RECORDER_FILEPATH", str(state_dir / "recording"))
    info = ensure_running(state_dir)
    environ = Path(f"/proc/{info.pid}/environ").read_bytes().split(b"\0")
    assert not any(item.startswith(b"MOTO_ENABLE_RECORDING=") for item in environ)
    session = AwsSession(SANDBOX, mode=Mode.APPLY, endpoint_url=info.endpoint)
    session.client("secretsmanager").create_secret(Name="kprov/sandbox/acme/x", SecretString=CANARY)
    assert not (state_dir / "recording").exists()
    assert os.environ["MOTO_ENABLE_RECORDING"] == "true"  # the caller's environment is left alone
