"""RabbitMQ test backends: a real `rabbitmq-server` on loopback (one per session) and the emulator.

Load it as a plugin (`pytest_plugins = ["rabbitmq_fixtures"]`), so its session fixtures exist once.
"""

from __future__ import annotations

import base64
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kensium_provision.rabbitmq.management import ManagementClient
from kensium_provision.sandbox.rabbitmq import start_emulator

__all__ = ["Broker", "RealServer", "broker", "emulated_rabbitmq", "rabbitmq_missing", "real_rabbitmq"]

ADMIN_USER = "kprov_admin"
SERVER_ENV = "KPROV_TEST_RABBITMQ_SERVER"  # another rabbitmq-server start script (tests of this plugin use it)
START_BUDGET = 60.0  # seconds; it answers after about 10 s on a 2-core machine
# The Debian wrapper in /usr/sbin re-execs through `su`; the script below it runs the node directly.
_DEBIAN_SCRIPT = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


@dataclass(frozen=True, slots=True, kw_only=True)
class Broker:
    """A running management API: where it is and its admin credentials."""

    kind: str  # "real" or "emulator"
    base_url: str
    admin_user: str
    admin_password: str

    def client(self) -> ManagementClient:
        return ManagementClient(self.base_url, self.admin_user, self.admin_password)


def rabbitmq_missing() -> str | None:
    """Why a real server cannot be started here, or None."""
    if _server_script() is None:
        return "rabbitmq-server is not installed (Debian: apt-get install rabbitmq-server)"
    if os.geteuid() == 0 and not _has_user("rabbitmq"):
        return "running as root but there is no `rabbitmq` user to run rabbitmq-server as"
    return None


def _server_script() -> Path | None:
    if SERVER_ENV in os.environ:
        chosen = Path(os.environ[SERVER_ENV])
        return chosen if chosen.is_file() else None
    if _DEBIAN_SCRIPT.exists():
        return _DEBIAN_SCRIPT
    found = shutil.which("rabbitmq-server", path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/local/sbin")
    return Path(found) if found else None


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RealServer:
    """One throw-away RabbitMQ node: own node name, ports, data dir and epmd, all on 127.0.0.1.

    As root the node runs as the `rabbitmq` user (Erlang refuses nothing as root, but the data dir
    must belong to the user that writes feature flags there), so the scratch dir is chowned to it.
    The admin user comes from the config file (`default_user`), which keeps its password out of argv.
    """

    def __init__(self) -> None:
        script = _server_script()
        assert script is not None
        self.script = script
        self.password = secrets.token_urlsafe(18)
        self.base = Path(tempfile.mkdtemp(prefix="kprov-rabbitmq-"))
        self.amqp_port, self.mgmt_port, self.dist_port, self.epmd_port = (_free_port() for _ in range(4))
        self.base_url = f"http://127.0.0.1:{self.mgmt_port}"
        self.process: subprocess.Popen[bytes] | None = None
        as_rabbitmq = os.geteuid() == 0
        self.account = pwd.getpwnam("rabbitmq") if as_rabbitmq else pwd.getpwuid(os.geteuid())
        self.env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.base),  # the Erlang cookie is written here
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "RABBITMQ_NODENAME": f"kprov{os.getpid()}{secrets.token_hex(3)}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_LOGS": "-",  # to stdout, which goes to server.out
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.base / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),  # not /etc/rabbitmq's
            "RABBITMQ_PID_FILE": str(self.base / "rabbitmq.pid"),
        }

    def start(self) -> None:
        (self.base / "mnesia").mkdir()
        (self.base / "log").mkdir()
        (self.base / "rabbitmq-env.conf").write_text("")
        (self.base / "enabled_plugins").write_text("[rabbitmq_management].\n")
        conf = self.base / "rabbitmq.conf"
        conf.write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            f"management.tcp.ip = 127.0.0.1\n"
            f"management.tcp.port = {self.mgmt_port}\n"
            f"default_user = {ADMIN_USER}\n"
            f"default_pass = {self.password}\n"
            "default_user_tags.administrator = true\n"
            "default_permissions.configure = .*\n"
            "default_permissions.read = .*\n"
            "default_permissions.write = .*\n"
            "log.console = true\n"
            "log.console.level = warning\n"
        )
        conf.chmod(0o600)
        for path in [self.base, *self.base.rglob("*")]:
            os.chown(path, self.account.pw_uid, self.account.pw_gid)
        self.base.chmod(0o700)
        out = (self.base / "server.out").open("wb")
        with out:
            self.process = subprocess.Popen(
                [str(self.script)],
                env=self.env,
                cwd=self.base,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                user=self.account.pw_uid,
                group=self.account.pw_gid,
                extra_groups=[] if os.geteuid() == 0 else None,
                start_new_session=True,  # its own process group, so stop() can reach erl's children
            )
        self._wait_until_answering()

    def _wait_until_answering(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_BUDGET
        token = base64.b64encode(f"{ADMIN_USER}:{self.password}".encode()).decode()
        request = urllib.request.Request(f"{self.base_url}/api/overview", headers={"Authorization": f"Basic {token}"})
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.25)
        raise RuntimeError(f"rabbitmq-server did not answer within {START_BUDGET:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        path = self.base / "server.out"
        text = path.read_text(errors="replace") if path.exists() else "(no output)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Kill the node's process group (its data dir is thrown away, so no graceful stop), then its epmd."""
        if self.process is not None:
            _kill_group(self.process)
        epmd = shutil.which("epmd", path=self.env["PATH"])
        deadline = time.monotonic() + 10
        while epmd and time.monotonic() < deadline:
            # Only the epmd on this server's private port; it refuses while it still lists the dead node.
            done = subprocess.run(
                [epmd, "-kill"], env=self.env, capture_output=True, text=True, timeout=10, check=False
            )
            if "living nodes" not in done.stdout + done.stderr:
                break
            time.sleep(0.2)
        shutil.rmtree(self.base, ignore_errors=True)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process group we started and wait until every member is gone (beam outlives the script)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            os.killpg(process.pid, 0)
            time.sleep(0.05)
    except ProcessLookupError:
        return


def _require_rabbitmq() -> None:
    reason = rabbitmq_missing()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}: the RabbitMQ tests must run in CI", pytrace=False)
    pytest.skip(reason)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("rabbitmq") is not None:
        _require_rabbitmq()


@pytest.fixture(scope="session")
def real_rabbitmq() -> Iterator[Broker]:
    """A real rabbitmq-server with the management plugin, started once per session."""
    _require_rabbitmq()
    server = RealServer()
    try:
        server.start()
        yield Broker(kind="real", base_url=server.base_url, admin_user=ADMIN_USER, admin_password=server.password)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def emulated_rabbitmq() -> Iterator[Broker]:
    """The in-process emulator of the management API."""
    password = secrets.token_urlsafe(18)
    emulator = start_emulator(admin_user=ADMIN_USER, admin_password=password)
    try:
        yield Broker(kind="emulator", base_url=emulator.base_url, admin_user=ADMIN_USER, admin_password=password)
    finally:
        emulator.stop()


def _reset(target: Broker) -> None:
    """Remove what a test left behind: every vhost but `/`, every user but the admin."""
    client = target.client()
    for vhost in client.list_vhosts():
        if vhost["name"] != "/":
            client.delete_vhost(str(vhost["name"]))
    for user in client.list_users():
        if user["name"] != ADMIN_USER:
            client.delete_user(str(user["name"]))


@pytest.fixture(params=[pytest.param("real", marks=pytest.mark.rabbitmq), "emulator"])
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    """Each backend in turn (the contract suite), reset after the test."""
    target: Broker = request.getfixturevalue(f"{'real' if request.param == 'real' else 'emulated'}_rabbitmq")
    _reset(target)
    yield target
    _reset(target)
