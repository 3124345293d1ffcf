"""One contract suite for the management API client, run against a real rabbitmq-server and the emulator."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kensium_provision.errors import InputError, KprovError
from kensium_provision.rabbitmq.management import ManagementClient, RabbitMQError
from kensium_provision.sandbox.rabbitmq import PASSWORD_ENV, start_emulator
from kensium_provision.secret import Secret

if TYPE_CHECKING:
    from tests.rabbitmq_fixtures import Broker

pytest_plugins = ["rabbitmq_fixtures"]  # tests/ is on sys.path; a plugin, so its session fixtures exist once
ADMIN_USER = "kprov_admin"  # rabbitmq_fixtures.ADMIN_USER (not imported: the plugin must be imported by pytest)

BAD_NAMES = ["../users", "a/b", "acme\nX", "Acme", "acme%2F..", "", "..", "1acme", "acme-corp", "acme corp",
             "a" * 64, "café", "acme\x1b[2J"]
FULL = {"configure": ".*", "write": ".*", "read": ".*"}


def _raw(target: Broker, method: str, path: str, *, auth: str | None = "admin") -> tuple[int, dict[str, str], bytes]:
    """One request without the client, to see status, headers and body exactly as the server sends them."""
    headers = {}
    if auth == "admin":
        token = base64.b64encode(f"{target.admin_user}:{target.admin_password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    elif auth is not None:
        headers["Authorization"] = auth
    request = urllib.request.Request(target.base_url + path, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


# -- the contract: every test below runs on both backends ---------------------------------------------------


def test_overview_and_whoami(broker: Broker) -> None:
    client = broker.client()
    overview = client.overview()
    assert str(overview["rabbitmq_version"]).startswith("3.")
    assert overview["node"]
    assert client.whoami() == {"name": ADMIN_USER, "tags": ["administrator"]}


def test_vhost_create_read_update_delete(broker: Broker) -> None:
    client = broker.client()
    assert client.get_vhost("acme") is None
    assert client.put_vhost("acme", description="Acme hub", tags=("kprov",)) is True  # 201
    assert client.put_vhost("acme", description="Acme hub", tags=("kprov",)) is False  # 204: idempotent
    found = client.get_vhost("acme")
    assert found is not None
    assert {k: found[k] for k in ("name", "description", "tags")} == {"name": "acme", "description": "Acme hub",
                                                                       "tags": ["kprov"]}
    client.put_vhost("acme", description="changed")
    found = client.get_vhost("acme")
    assert found is not None and (found["description"], found["tags"]) == ("changed", [])
    assert [v["name"] for v in client.list_vhosts()] == ["/", "acme"]
    assert client.delete_vhost("acme") is True  # 204
    assert client.delete_vhost("acme") is False  # 404
    assert client.get_vhost("acme") is None


def test_new_vhost_grants_its_creator_full_access(broker: Broker) -> None:
    client = broker.client()
    client.put_vhost("acme_corp")
    assert client.get_permissions("acme_corp", ADMIN_USER) == {"user": ADMIN_USER, "vhost": "acme_corp", **FULL}


def test_default_vhost_is_readable_through_a_quoted_slash(broker: Broker) -> None:
    found = broker.client().get_vhost("/")  # sent as /api/vhosts/%2F
    assert found is not None and found["name"] == "/"


def test_user_create_read_update_delete(broker: Broker) -> None:
    client = broker.client()
    assert client.get_user("acme_hub") is None
    assert client.put_user("acme_hub", Secret("first-password-1"), tags="") is True
    assert client.put_user("acme_hub", "second-password-2", tags="") is False
    found = client.get_user("acme_hub")
    assert found is not None
    assert (found["name"], found["tags"], found["hashing_algorithm"]) == ("acme_hub", [],
                                                                          "rabbit_password_hashing_sha256")
    assert "second-password-2" not in json.dumps(found)
    assert [u["name"] for u in client.list_users()] == ["acme_hub", ADMIN_USER]
    assert client.delete_user("acme_hub") is True
    assert client.delete_user("acme_hub") is False
    assert client.get_user("acme_hub") is None


def test_user_password_is_the_one_sent(broker: Broker) -> None:
    """A tagless user may not use the management API, but the refusal tells a right password from a wrong one."""
    client = broker.client()
    client.put_user("acme_hub", "right-password-1", tags="")
    with pytest.raises(RabbitMQError) as right:
        ManagementClient(broker.base_url, "acme_hub", "right-password-1").overview()
    with pytest.raises(RabbitMQError) as wrong:
        ManagementClient(broker.base_url, "acme_hub", "wrong-password-1").overview()
    assert (right.value.status, right.value.reason) == (401, "Not management user")
    assert (wrong.value.status, wrong.value.reason) == (401, "Login failed")


def test_permissions(broker: Broker) -> None:
    client = broker.client()
    client.put_vhost("acme")
    client.put_vhost("globex")
    client.put_user("acme_hub", "some-password-1")
    assert client.get_permissions("acme", "acme_hub") is None
    assert client.put_permissions("acme", "acme_hub", ".*", ".*", ".*") is True
    assert client.put_permissions("acme", "acme_hub", ".*", ".*", "^amq\\.") is False
    assert client.get_permissions("acme", "acme_hub") == {"user": "acme_hub", "vhost": "acme", "configure": ".*",
                                                          "write": ".*", "read": "^amq\\."}
    client.put_permissions("globex", "acme_hub", "", "", "")
    mine = [p for p in client.list_permissions() if p["user"] == "acme_hub"]
    assert [p["vhost"] for p in mine] == ["acme", "globex"]
    assert client.delete_permissions("globex", "acme_hub") is True
    assert client.delete_permissions("globex", "acme_hub") is False
    assert client.get_permissions("globex", "acme_hub") is None


def test_permissions_need_an_existing_vhost_and_user(broker: Broker) -> None:
    client = broker.client()
    client.put_user("acme_hub", "some-password-1")
    with pytest.raises(RabbitMQError) as missing_vhost:
        client.put_permissions("nope", "acme_hub", ".*", ".*", ".*")
    assert (missing_vhost.value.status, missing_vhost.value.reason) == (400, "vhost_or_user_not_found")
    client.put_vhost("acme")
    with pytest.raises(RabbitMQError) as missing_user:
        client.put_permissions("acme", "nobody", ".*", ".*", ".*")
    assert missing_user.value.status == 400
    assert client.get_permissions("nope", "acme_hub") is None
    assert client.get_permissions("acme", "nobody") is None


def test_deleting_a_user_or_vhost_removes_its_permissions(broker: Broker) -> None:
    client = broker.client()
    for vhost in ("acme", "acme_corp"):
        client.put_vhost(vhost)
    client.put_user("acme_hub", "some-password-1")
    client.put_permissions("acme", "acme_hub", ".*", ".*", ".*")
    client.put_permissions("acme_corp", "acme_hub", ".*", ".*", ".*")
    client.delete_vhost("acme_corp")
    assert {(p["vhost"], p["user"]) for p in client.list_permissions()} == {
        ("/", ADMIN_USER), ("acme", ADMIN_USER), ("acme", "acme_hub")}
    client.delete_user("acme_hub")
    assert {(p["vhost"], p["user"]) for p in client.list_permissions()} == {("/", ADMIN_USER), ("acme", ADMIN_USER)}


def test_list_permissions_is_sorted_by_vhost_then_user(broker: Broker) -> None:
    client = broker.client()
    client.put_vhost("acme")
    client.put_user("acme_hub", "some-password-1")
    client.put_permissions("acme", "acme_hub", ".*", ".*", ".*")
    assert [(p["vhost"], p["user"]) for p in client.list_permissions()] == [
        ("/", ADMIN_USER), ("acme", "acme_hub"), ("acme", ADMIN_USER)]


@pytest.mark.parametrize("path", ["/api/vhosts/nope", "/api/users/nope", "/api/permissions/nope/nobody",
                                  "/api/no-such-endpoint"])
def test_not_found_body(broker: Broker, path: str) -> None:
    status, headers, body = _raw(broker, "GET", path)
    assert status == 404
    assert json.loads(body) == {"error": "Object Not Found", "reason": "Not Found"}
    assert headers["content-type"].startswith("application/json")


def test_delete_of_a_missing_object_is_404(broker: Broker) -> None:
    assert _raw(broker, "DELETE", "/api/vhosts/nope")[0] == 404
    assert _raw(broker, "DELETE", "/api/users/nope")[0] == 404


def test_wrong_password_is_401_and_never_shown(broker: Broker) -> None:
    password = "Wrong-Password-123"
    client = ManagementClient(broker.base_url, ADMIN_USER, Secret(password))
    with pytest.raises(RabbitMQError) as caught:
        client.put_vhost("acme")
    error = caught.value
    assert (error.method, error.path, error.status, error.reason) == ("PUT", "/api/vhosts/acme", 401, "Login failed")
    assert "password" in error.hint
    for text in (str(error), repr(error), repr(error.args), error.hint, repr(client)):
        assert password not in text
        assert base64.b64encode(f"{ADMIN_USER}:{password}".encode()).decode() not in text
    status, _, body = _raw(broker, "GET", "/api/overview",
                           auth="Basic " + base64.b64encode(f"{ADMIN_USER}:{password}".encode()).decode())
    assert (status, json.loads(body)) == (401, {"error": "not_authorized", "reason": "Login failed"})
    assert broker.client().get_vhost("acme") is None


def test_no_credentials_is_a_bare_401_challenge(broker: Broker) -> None:
    status, headers, body = _raw(broker, "GET", "/api/overview", auth=None)
    assert (status, body) == (401, b"")
    assert headers["www-authenticate"] == 'Basic realm="RabbitMQ Management"'


def test_unsupported_method_is_405(broker: Broker) -> None:
    assert _raw(broker, "POST", "/api/vhosts/acme")[0] == 405


def test_names_are_rejected_before_any_request_and_nothing_changes(broker: Broker) -> None:
    client = broker.client()
    before = (client.list_vhosts(), client.list_users(), client.list_permissions())
    calls: tuple[Callable[[str], object], ...] = (
        client.put_vhost, lambda name: client.put_user(name, "some-password-1"), client.get_user,
        lambda name: client.put_permissions(name, "acme_hub", ".*", ".*", ".*"),
        lambda name: client.put_permissions("acme", name, ".*", ".*", ".*"))
    for name in BAD_NAMES:
        for call in calls:
            with pytest.raises(InputError):
                call(name)
    assert (client.list_vhosts(), client.list_users(), client.list_permissions()) == before


# -- client-only behaviour (no broker needed) ------------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    """Records raw request lines and answers with the status in `reply` (and a Location for redirects)."""

    seen: list[tuple[str, str, str | None]]
    reply: int = 200

    def _serve(self) -> None:
        self.seen.append((self.command, self.path, self.headers.get("Authorization")))
        body = b"" if self.reply in (201, 204, 301) else b"{}"
        self.send_response(self.reply)
        if self.reply == 301:
            self.send_header("Location", "http://127.0.0.2:9/steal")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def recorder() -> Iterator[tuple[str, type[_Recorder]]]:
    handler = type("Handler", (_Recorder,), {"seen": [], "reply": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()
    thread.join()


def test_url_parts_are_quoted_one_by_one(recorder: tuple[str, type[_Recorder]]) -> None:
    url, handler = recorder
    client = ManagementClient(url + "/rabbit/", "admin", "some-password-1")
    client.get_vhost("acme_corp")
    client.get_vhost("/")
    client.get_permissions("/", "acme_hub")
    handler.reply = 204
    client.delete_permissions("/", "acme_hub")
    client.put_permissions("acme", "acme_hub", ".*", ".*", ".*")
    assert [(m, p) for m, p, _ in handler.seen] == [
        ("GET", "/rabbit/api/vhosts/acme_corp"),
        ("GET", "/rabbit/api/vhosts/%2F"),
        ("GET", "/rabbit/api/permissions/%2F/acme_hub"),
        ("DELETE", "/rabbit/api/permissions/%2F/acme_hub"),
        ("PUT", "/rabbit/api/permissions/acme/acme_hub"),
    ]
    token = base64.b64encode(b"admin:some-password-1").decode()
    assert {auth for _, _, auth in handler.seen} == {f"Basic {token}"}


def test_the_default_vhost_cannot_be_created_or_deleted() -> None:
    client = ManagementClient("http://127.0.0.1:9", "admin", "some-password-1")
    calls: tuple[Callable[[], object], ...] = (
        lambda: client.put_vhost("/"), lambda: client.delete_vhost("/"),
        lambda: client.put_permissions("/", "acme_hub", ".*", ".*", ".*"))
    for call in calls:
        with pytest.raises(InputError):
            call()


def test_redirects_are_not_followed(recorder: tuple[str, type[_Recorder]]) -> None:
    url, handler = recorder
    handler.reply = 301
    with pytest.raises(RabbitMQError) as caught:
        ManagementClient(url, "admin", "some-password-1").get_vhost("acme")
    assert caught.value.status == 301
    assert "Redirects" in caught.value.hint
    assert len(handler.seen) == 1


def test_bad_names_never_reach_the_network() -> None:
    client = ManagementClient("http://127.0.0.1:9", "admin", "some-password-1")  # nothing listens on port 9
    for name in BAD_NAMES:
        with pytest.raises(InputError):
            client.get_vhost(name)
        with pytest.raises(InputError):
            client.delete_user(name)
        with pytest.raises(InputError):
            client.get_permissions("acme", name)
    with pytest.raises(RabbitMQError):  # a good name does reach it (and finds nothing listening)
        client.get_vhost("acme")


@pytest.mark.parametrize("url", ["ftp://broker", "http://", "file:///etc/passwd", "http://admin:pw-in-url@host",
                                 "http://host/?x=1", "http://host/#top", "broker.example.com", "http://host\n/x",
                                 "http://host:port", "http://host/a/../api", "http://host/%2e%2e", "http://host/a b"])
def test_base_url_must_be_plain_http_or_https(url: str) -> None:
    with pytest.raises(InputError) as caught:
        ManagementClient(url, "admin", "some-password-1")
    assert "pw-in-url" not in str(caught.value)


def test_bad_tags_descriptions_and_logins_are_refused() -> None:
    client = ManagementClient("http://127.0.0.1:9", "admin", "some-password-1")
    with pytest.raises(InputError):
        client.put_vhost("acme", tags=("a,b",))
    with pytest.raises(InputError):
        client.put_vhost("acme", description="line\nbreak")
    with pytest.raises(InputError):
        client.put_user("acme_hub", "")
    with pytest.raises(InputError):
        ManagementClient("http://127.0.0.1:9", "ad:min", "some-password-1")
    with pytest.raises(InputError):
        ManagementClient("http://127.0.0.1:9", "admin", Secret(""))


def test_connection_refused_says_where_and_hints(unused_port: int) -> None:
    client = ManagementClient(f"http://127.0.0.1:{unused_port}", "admin", Secret("Some-Password-1"))
    with pytest.raises(RabbitMQError) as caught:
        client.overview()
    error = caught.value
    assert isinstance(error, KprovError)
    assert error.status is None
    assert f"cannot reach 127.0.0.1:{unused_port}" in str(error)
    assert "reachable" in error.hint and "emulator" in error.hint
    assert "Some-Password-1" not in repr(client) + str(error)


def test_read_only_refuses_changes_before_sending(recorder: tuple[str, type[_Recorder]]) -> None:
    url, handler = recorder
    client = ManagementClient(url, "admin", "some-password-1", read_only=True)
    client.get_vhost("acme")
    calls: tuple[Callable[[], object], ...] = (
        lambda: client.put_vhost("acme"), lambda: client.delete_user("acme_hub"),
        lambda: client.put_permissions("acme", "acme_hub", ".*", ".*", ".*"))
    for call in calls:
        with pytest.raises(RabbitMQError, match="only reads"):
            call()
    assert [m for m, _, _ in handler.seen] == ["GET"]


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- emulator-only behaviour -----------------------------------------------------------------------------


def test_emulator_listens_on_loopback_only() -> None:
    for host in ("0.0.0.0", "192.0.2.1", "::1"):  # noqa: S104 - the test asserts the emulator refuses it
        with pytest.raises(ValueError, match="loopback"):
            start_emulator(host, admin_user="admin", admin_password="some-password-1")


def test_emulator_is_thread_safe(emulated_rabbitmq: Broker) -> None:
    client = emulated_rabbitmq.client()
    errors: list[BaseException] = []

    def create(worker: int) -> None:
        try:
            for i in range(15):
                client.put_vhost(f"w{worker}_{i}")
                client.put_user(f"u{worker}_{i}", "some-password-1")
                client.put_permissions(f"w{worker}_{i}", f"u{worker}_{i}", ".*", ".*", ".*")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(client.list_vhosts()) == 1 + 6 * 15
    assert len([p for p in client.list_permissions() if p["user"] != ADMIN_USER]) == 6 * 15
    for name in [v["name"] for v in client.list_vhosts() if v["name"] != "/"]:
        client.delete_vhost(str(name))
    for name in [u["name"] for u in client.list_users() if u["name"] != ADMIN_USER]:
        client.delete_user(str(name))


def test_emulator_keeps_state_in_a_file(tmp_path: Path) -> None:
    state = tmp_path / "rabbitmq.json"
    first = start_emulator(admin_user="admin", admin_password="first-password-1", state_path=state)
    try:
        client = ManagementClient(first.base_url, "admin", "first-password-1")
        client.put_vhost("acme")
        client.put_user("acme_hub", "user-password-1")
    finally:
        first.stop()
    assert "user-password-1" not in state.read_text()  # salted hashes only
    assert oct(state.stat().st_mode & 0o777) == "0o600"
    second = start_emulator(admin_user="admin", admin_password="second-password-2", state_path=state)
    try:
        client = ManagementClient(second.base_url, "admin", "second-password-2")
        assert client.get_vhost("acme") is not None
        assert client.get_user("acme_hub") is not None
        with pytest.raises(RabbitMQError):
            ManagementClient(second.base_url, "admin", "first-password-1").overview()
    finally:
        second.stop()


def test_emulator_main_takes_the_password_from_the_environment_and_stops_on_sigterm() -> None:
    env = {**os.environ, PASSWORD_ENV: "env-password-12"}
    process = subprocess.Popen(
        [sys.executable, "-m", "kensium_provision.sandbox.rabbitmq", "--port", "0", "--admin-user", "admin"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.split()[-1]
        assert ManagementClient(url, "admin", "env-password-12").whoami()["name"] == "admin"
        assert "env-password-12" not in " ".join(process.args)  # type: ignore[arg-type]
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stderr is not None
        process.stderr.close()
        process.stdout.close()  # type: ignore[union-attr]


def test_emulator_main_reads_the_password_from_stdin() -> None:
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    process = subprocess.Popen(
        [sys.executable, "-m", "kensium_provision.sandbox.rabbitmq", "--port", "0"],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write("stdin-password-12\n")
        process.stdin.close()
        url = process.stdout.readline().split()[-1]
        assert ManagementClient(url, "admin", "stdin-password-12").whoami()["name"] == "admin"
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()  # type: ignore[union-attr]
        process.stderr.close()  # type: ignore[union-attr]


# -- the fixture plugin itself ----------------------------------------------------------------------------


@pytest.mark.parametrize(("ci", "outcome"), [("true", "2 errors"), ("", "2 skipped"), ("false", "2 skipped")])
def test_missing_rabbitmq_server_skips_except_when_ci_is_true(tmp_path: Path, ci: str, outcome: str) -> None:
    (tmp_path / "test_needs_rabbitmq.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.rabbitmq\n"
        "def test_marked():\n    pass\n\n"
        "def test_fixture(real_rabbitmq):\n    pass\n"
    )
    env = {**os.environ, "CI": ci, "KPROV_TEST_RABBITMQ_SERVER": str(tmp_path / "absent"),
           "PYTHONPATH": str(Path(__file__).parent)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rfs", "-p", "rabbitmq_fixtures", "-p", "no:cacheprovider",
         "-W", "ignore::pytest.PytestUnknownMarkWarning", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert outcome in done.stdout, done.stdout + done.stderr
    assert "rabbitmq-server is not installed" in done.stdout
    assert done.returncode == (1 if ci == "true" else 0)
    if ci == "true":
        assert "CI=true" in done.stdout
