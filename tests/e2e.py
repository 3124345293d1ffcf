"""End-to-end helpers: the real `kprov` in subprocesses, a moto server kprov did not start, configs, journals.

A `World` is one private set of directories (HOME, config, state) and the environment a kprov
subprocess gets: nothing leaks in from the developer's shell (no AWS profile, no proxy, no real AWS
endpoint), and it can be shared by a module's tests (built from `tmp_path_factory`).

`MotoServer` runs moto's `ThreadedMotoServer` in the test process on 127.0.0.1, reached by kprov
only through `AWS_ENDPOINT_URL`. Its WSGI app is wrapped so a test can see which API calls arrive
(`calls`) and hold one of them (`hold`) until the test lets it go, e.g. to kill kprov while its
create is in flight. Being in-process, the test can also change moto's state directly (an RDS
instance back to `creating`).
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
ACCOUNT = "123456789012"  # moto's default account, the sandbox's
REGION = "us-east-1"
SHARED_ESTATE = ("vpc", "rds", "rabbitmq", "ec2", "pos", "tenant-manager")
DEADLINE = 180.0  # seconds: generous, for a loaded 2-core machine; never a timing assertion


def kprov_executable() -> str:
    """The venv's `kprov` console script (beside the interpreter running the tests)."""
    candidate = Path(sys.executable).parent / "kprov"
    if candidate.is_file():
        return str(candidate)
    found = ROOT / ".venv" / "bin" / "kprov"
    if found.is_file():
        return str(found)
    raise RuntimeError("no kprov console script next to the test interpreter: pip install -e .")


def wait_for(predicate: Callable[[], Any], *, timeout: float = DEADLINE, every: float = 0.05,
             what: str = "a condition") -> Any:
    """Poll until `predicate()` is truthy and return it; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


@dataclass
class World:
    """Private HOME, config and state dirs, and the environment of every kprov subprocess run in them."""

    root: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def state(self) -> Path:
        return self.home / ".local" / "state" / "kprov"

    @property
    def config_dir(self) -> Path:
        return self.home / ".config" / "kprov"

    @property
    def runs(self) -> Path:
        return self.state / "runs"

    def env(self, **overrides: str) -> dict[str, str]:
        empty = self.root / "empty-aws-file"
        if not empty.exists():
            empty.parent.mkdir(parents=True, exist_ok=True)
            empty.write_text("")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_STATE_HOME": str(self.home / ".local" / "state"),
            "TMPDIR": str(self.root / "tmp"),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": str(empty),
            "AWS_SHARED_CREDENTIALS_FILE": str(empty),
            "AWS_EC2_METADATA_DISABLED": "true",
            "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
            "NO_PROXY": "127.0.0.1,localhost",
            "COLUMNS": "200",
            "PYTHONUNBUFFERED": "1",
            # a checkout run with PYTHONPATH=<checkout> tests that checkout's kprov, not the installed one
            **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}),
            **self.extra_env,
            **overrides,
        }
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        return env

    def command(self, *args: str) -> list[str]:
        return [kprov_executable(), *args]

    def kprov(self, *args: str, timeout: float = DEADLINE, env: Mapping[str, str] | None = None,
              input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run `kprov ARGS` to the end; stdin is not a terminal, so kprov never prompts."""
        return subprocess.run(self.command(*args), env={**self.env(), **(env or {})}, cwd=ROOT, text=True,
                              capture_output=True, timeout=timeout, check=False,
                              input=input, stdin=None if input is not None else subprocess.DEVNULL)

    def spawn(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        """Start `kprov ARGS` and return at once (stdout and stderr go to files under root)."""
        tag = f"{time.monotonic_ns()}"
        out = (self.root / f"spawn-{tag}.out").open("w")
        err = (self.root / f"spawn-{tag}.err").open("w")
        process = subprocess.Popen(self.command(*args), env={**self.env(), **(env or {})}, cwd=ROOT, text=True,
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        process.out_path, process.err_path = Path(out.name), Path(err.name)  # type: ignore[attr-defined]
        out.close()
        err.close()
        return process

    def run_ids(self) -> list[str]:
        return sorted(p.stem for p in self.runs.glob("*.jsonl")) if self.runs.is_dir() else []

    def new_run(self, before: Sequence[str]) -> str:
        """The one run id that appeared since `before` was taken."""
        new = sorted(set(self.run_ids()) - set(before))
        assert len(new) == 1, f"expected one new run, found {new}"
        return new[0]

    def records(self, run_id: str) -> list[dict[str, Any]]:
        return read_records(self.runs / f"{run_id}.jsonl")

    def write_config(self, text: str) -> Path:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        path = self.config_dir / "config.yaml"
        path.write_text(text)
        return path

    def answers(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(text)
        return path


def finished(process: subprocess.Popen[str], timeout: float = DEADLINE) -> tuple[int, str, str]:
    """Wait for a spawned kprov; its exit code, stdout and stderr."""
    code = process.wait(timeout=timeout)
    return code, process.out_path.read_text(), process.err_path.read_text()  # type: ignore[attr-defined]


def stop(process: subprocess.Popen[str]) -> None:
    """Never leave a spawned kprov behind (only our own child, by its pid)."""
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)


def read_records(path: Path) -> list[dict[str, Any]]:
    """A journal's complete records (a line still being written is left out)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    records = []
    for line in data.split(b"\n"):
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def moment(record: Mapping[str, Any]) -> float:
    """A journal record's time as seconds since the epoch."""
    from datetime import datetime

    return datetime.fromisoformat(str(record["ts"]).replace("Z", "+00:00")).timestamp()


def events(records: Sequence[Mapping[str, Any]], event: str, step: str | None = None) -> list[Mapping[str, Any]]:
    return [r for r in records if r.get("event") == event and (step is None or r.get("step") == step)]


def example(name: str) -> str:
    return str(EXAMPLES / name)


# ---- a moto server kprov did not start -------------------------------------------------------------------


def _action(environ: Mapping[str, Any], body: bytes) -> str:
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    if target:
        return target.rpartition(".")[2]  # JSON protocols: "AmazonMQ..."/"secretsmanager.CreateSecret"
    if body:
        found = parse_qs(body.decode("utf-8", "replace")).get("Action")
        if found:
            return found[0]
    found = parse_qs(str(environ.get("QUERY_STRING", ""))).get("Action")
    return found[0] if found else f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}"


@dataclass
class _Hold:
    action: str
    nth: int
    containing: bytes = b""
    seen: int = 0
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class MotoServer:
    """moto on 127.0.0.1 in this process; `calls` lists every API action received, in order."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        from kensium_provision.sandbox import lessons

        lessons.teach()  # as the sandbox server: the preflight's simulation, the RDS and MQ offerings
        logging.getLogger("werkzeug").setLevel(logging.CRITICAL)  # one line per request otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.calls: list[str] = []
        self.times: list[float] = []  # time.time() of each call, as `calls`
        self._holds: list[_Hold] = []
        self._lock = threading.Lock()
        self.endpoint = ""

    def start(self) -> MotoServer:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        wsgi = self._server._server  # the werkzeug server: its app is looked up per request
        assert wsgi is not None
        wsgi.app = self._wrap(wsgi.app)
        return self

    def stop(self) -> None:
        for hold in self._holds:
            hold.release.set()
        self._server.stop()

    def _wrap(self, app: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
            action = _action(environ, body)
            held = None
            with self._lock:
                self.calls.append(action)
                self.times.append(time.time())
                for hold in self._holds:
                    if hold.action == action and hold.containing in body and not hold.reached.is_set():
                        hold.seen += 1
                        if hold.seen == hold.nth:
                            held = hold
            if held is not None:
                held.reached.set()
                held.release.wait(DEADLINE)  # the request lands only when the test lets it go
            return app(environ, start_response)

        return wrapped

    def hold(self, action: str, *, nth: int = 1, containing: str = "") -> _Hold:
        """Hold the `nth` `action` request (e.g. "CreateSubnet") whose body holds `containing` (e.g. the Name tag
        of the one subnet wanted, when steps run at once) before moto executes it."""
        hold = _Hold(action=action, nth=nth, containing=containing.encode())
        with self._lock:
            self._holds.append(hold)
        return hold

    def count(self, action: str) -> int:
        with self._lock:
            return self.calls.count(action)

    def called_after(self, action: str, moment: float) -> bool:
        """Whether `action` arrived after `moment` (seconds since the epoch)."""
        with self._lock:
            return any(a == action and t > moment for a, t in zip(self.calls, self.times, strict=True))

    def client(self, service: str) -> Any:
        import boto3
        from botocore.config import Config

        make: Any = boto3.client  # any service by name (the stubs know each one only by its literal name)
        return make(service, endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id="testing",
                    aws_secret_access_key="testing", config=Config(proxies={}))

    def reset(self) -> None:
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST", data=b"")
        with opener.open(request, timeout=30) as response:
            response.read()

    def snapshot(self) -> dict[str, Any]:
        """Everything kprov could have made, as plain data (ids and names): equal before and after = no change."""
        ec2, rds = self.client("ec2"), self.client("rds")

        def ids(items: Sequence[Mapping[str, Any]], key: str) -> list[str]:
            return sorted(str(i[key]) for i in items)

        return {
            "vpcs": ids(ec2.describe_vpcs()["Vpcs"], "VpcId"),
            "subnets": ids(ec2.describe_subnets()["Subnets"], "SubnetId"),
            "security_groups": ids(ec2.describe_security_groups()["SecurityGroups"], "GroupId"),
            "ingress": sorted(json.dumps(g.get("IpPermissions"), sort_keys=True)
                              for g in ec2.describe_security_groups()["SecurityGroups"]),
            "route_tables": ids(ec2.describe_route_tables()["RouteTables"], "RouteTableId"),
            "internet_gateways": ids(ec2.describe_internet_gateways()["InternetGateways"], "InternetGatewayId"),
            "key_pairs": ids(ec2.describe_key_pairs()["KeyPairs"], "KeyName"),
            "instances": sorted(i["InstanceId"] for r in ec2.describe_instances()["Reservations"]
                                for i in r["Instances"]),
            "addresses": ids(ec2.describe_addresses()["Addresses"], "PublicIp"),
            "tags": sorted(f"{t['ResourceId']}:{t['Key']}={t['Value']}" for t in ec2.describe_tags()["Tags"]),
            "db_instances": ids(rds.describe_db_instances()["DBInstances"], "DBInstanceIdentifier"),
            "db_subnet_groups": ids(rds.describe_db_subnet_groups()["DBSubnetGroups"], "DBSubnetGroupName"),
            "brokers": ids(self.client("mq").list_brokers()["BrokerSummaries"], "BrokerName"),
            "secrets": ids(self.client("secretsmanager").list_secrets()["SecretList"], "Name"),
            "parameters": ids(self.client("ssm").describe_parameters()["Parameters"], "Name"),
            "tables": sorted(self.client("dynamodb").list_tables()["TableNames"]),
            "client_records": sorted(i["OrgId"]["S"] for i in self._client_items()),
            "iam_users": ids(self.client("iam").list_users()["Users"], "UserName"),
            "buckets": ids(self.client("s3").list_buckets()["Buckets"], "Name"),
        }

    def _client_items(self) -> list[dict[str, Any]]:
        from kensium_provision.records.clients import DEFAULT_TABLE

        dynamodb = self.client("dynamodb")
        if DEFAULT_TABLE not in dynamodb.list_tables()["TableNames"]:
            return []
        return list(dynamodb.scan(TableName=DEFAULT_TABLE)["Items"])

    def named(self, kind: str, name: str) -> list[str]:
        """EC2 resources of `kind` (vpc, subnet, route-table, internet-gateway, security-group) tagged Name=`name`."""
        ec2 = self.client("ec2")
        tags = ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": [kind]},
                                          {"Name": "key", "Values": ["Name"]}, {"Name": "value", "Values": [name]}])
        return sorted(t["ResourceId"] for t in tags["Tags"])


def moto_server() -> Iterator[MotoServer]:
    """Body of a fixture: `yield from moto_server()`."""
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()
