"""The `rabbitmq.vhost` step against the emulator and a real rabbitmq-server, with a small fake runtime."""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pytest

from kensium_provision.errors import AwsError, InputError, StepError
from kensium_provision.model import Mode
from kensium_provision.rabbitmq.management import ManagementClient, RabbitMQError
from kensium_provision.runtime import Runtime
from kensium_provision.secret import Secret, check_password
from kensium_provision.steps.base import Difference, StepContext
from kensium_provision.steps.rabbitmq_vhost import FULL_ACCESS, RabbitMQVhost, management_url

if TYPE_CHECKING:
    from tests.rabbitmq_fixtures import Broker

pytest_plugins = ["rabbitmq_fixtures"]

STEP = RabbitMQVhost()
ENTRY = "acme/rabbitmq-hub"
ADMIN_REF = "fake:mq-POS-01/admin"


class FakeVault:
    """A password manager in a dict; `before_store` runs first on every store (to check ordering)."""

    def __init__(self, before_store: Callable[[str], None] | None = None) -> None:
        self.entries: dict[str, Secret] = {}
        self.stores: list[tuple[str, str, Mapping[str, str]]] = []
        self.before_store = before_store

    def store(self, name: str, secret: Secret, *, description: str, tags: Mapping[str, str]) -> str:
        if self.before_store is not None:
            self.before_store(name)
        if name in self.entries and self.entries[name] != secret:
            raise StepError(f"{name} already holds a different credential")
        self.entries[name] = secret
        self.stores.append((name, description, dict(tags)))
        return f"fake:{name}"

    def fetch(self, reference: str) -> Secret:
        return self.entries[reference.removeprefix("fake:")]

    def find(self, name: str) -> str | None:
        return f"fake:{name}" if name in self.entries else None


class FakeAws:
    """Only the clients a test hands in; asking for any other service fails the test."""

    def __init__(self, **clients: object) -> None:
        self.clients = clients

    def client(self, service: str) -> Any:
        if service not in self.clients:
            raise AssertionError(f"unexpected AWS client {service!r}")
        return self.clients[service]


class FakeMq:
    """Amazon MQ's two read calls, the listing split over two pages."""

    def __init__(self, console_url: str, *, state: str = "RUNNING", engine: str = "RABBITMQ") -> None:
        self.console_url, self.state, self.engine = console_url, state, engine
        self.calls: list[str] = []

    def list_brokers(self, **kwargs: object) -> dict[str, object]:
        self.calls.append(f"list_brokers {kwargs.get('NextToken', '')}".strip())
        if "NextToken" not in kwargs:
            return {"BrokerSummaries": [{"BrokerId": "b-other", "BrokerName": "mq-POS-02"}], "NextToken": "page2"}
        return {"BrokerSummaries": [{"BrokerId": "b-1", "BrokerName": "mq-POS-01"}]}

    def describe_broker(self, BrokerId: str) -> dict[str, object]:
        self.calls.append(f"describe_broker {BrokerId}")
        return {"BrokerId": BrokerId, "BrokerState": self.state, "EngineType": self.engine,
                "BrokerInstances": [{"ConsoleURL": self.console_url, "Endpoints": ["amqps://b-1:5671"]}]}


class NoOperator:
    interactive = False

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the step asked the operator ({name})")


def _ctx(broker: Broker, *, mode: Mode = Mode.APPLY, vault: FakeVault | None = None,
         aws: FakeAws | None = None, settings: Mapping[str, object] | None = None) -> StepContext:
    vault = vault or FakeVault()
    vault.entries.setdefault(ADMIN_REF.removeprefix("fake:"), Secret(broker.admin_password))
    runtime = Runtime(mode=mode, run_id="run-1", aws=aws or FakeAws(), operator=NoOperator(), vault=vault, names=None,
                      settings={"rabbitmq": {"admin_user": broker.admin_user}} if settings is None else settings)
    return StepContext(runtime, "rmq.hub", {})


def _params(target: Broker | None = None, /, **changes: object) -> dict[str, object]:
    params: dict[str, object] = {"vhost": "acme", "user": "acme_hub", "admin_secret": ADMIN_REF,
                                 "user_secret_name": ENTRY, "description": "Acme hub"}
    if target is not None:
        params["base_url"] = target.base_url
    params.update(changes)
    return params


def _state(broker: Broker) -> tuple[object, ...]:
    client = broker.client()
    return client.list_vhosts(), client.list_users(), client.list_permissions()


def _login_works(broker: Broker, user: str, password: Secret) -> bool:
    """A tagless user may not use the management API; the refusal says whether the password was right."""
    try:
        ManagementClient(broker.base_url, user, password).overview()
    except RabbitMQError as exc:
        return exc.reason == "Not management user"
    return True


def _grant_on_default_vhost(broker: Broker, user: str) -> None:
    """What the client refuses to do (grant on `/`), done with a bare request."""
    token = base64.b64encode(f"{broker.admin_user}:{broker.admin_password}".encode()).decode()
    body = json.dumps({"configure": "", "write": "", "read": ".*"}).encode()
    request = urllib.request.Request(f"{broker.base_url}/api/permissions/%2F/{user}", body, method="PUT",
                                     headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201


def _apply(ctx: StepContext, params: Mapping[str, object]) -> Mapping[str, object]:
    probe = STEP.probe(ctx, params)
    outputs = {**probe.outputs, **STEP.act(ctx, params, probe)}
    assert STEP.verify(ctx, params) == ()
    return outputs


# -- behaviour, on both backends --------------------------------------------------------------------------


def test_fresh_broker_gets_vhost_user_password_and_permissions(broker: Broker) -> None:
    admin = broker.client()
    vault = FakeVault(before_store=lambda name: ordering.append(admin.get_user("acme_hub")))
    ordering: list[object] = []
    ctx, params = _ctx(broker, vault=vault), _params(broker)

    probe = STEP.probe(ctx, params)
    assert not probe.done and probe.creates
    assert [d.field for d in probe.differences] == ["vhost", "user", "permissions on acme"]

    outputs = STEP.act(ctx, params, probe)
    assert outputs == {"vhost": "acme", "user": "acme_hub", "user_secret_ref": f"fake:{ENTRY}",
                       "created": ["vhost", "user"]}
    assert ordering == [None]  # the password was stored while the user did not exist yet
    assert vault.stores == [(ENTRY, "RabbitMQ user acme_hub (vhost acme)",
                             {"rabbitmq-user": "acme_hub", "rabbitmq-vhost": "acme"})]
    password = vault.entries[ENTRY]
    assert check_password("rabbitmq-user", password) == []
    assert _login_works(broker, "acme_hub", password)
    assert not _login_works(broker, "acme_hub", Secret("not-the-password-1"))
    assert admin.get_vhost("acme")["description"] == "Acme hub"  # type: ignore[index]
    assert [(p["vhost"], p["configure"], p["write"], p["read"]) for p in admin.list_permissions()
            if p["user"] == "acme_hub"] == [("acme", ".*", ".*", ".*")]
    assert STEP.verify(ctx, params) == ()

    again = STEP.probe(ctx, params)
    assert again.done and not again.differences
    assert again.outputs == {"vhost": "acme", "user": "acme_hub", "user_secret_ref": f"fake:{ENTRY}", "created": []}


def test_plan_and_check_only_read(broker: Broker) -> None:
    before = _state(broker)
    for mode in (Mode.PLAN, Mode.CHECK):
        ctx, params = _ctx(broker, mode=mode), _params(broker)
        probe = STEP.probe(ctx, params)
        assert not probe.done
        assert [d.field for d in STEP.verify(ctx, params)] == ["vhost", "user", "permissions on acme"]
        with pytest.raises(RabbitMQError, match="only reads"):  # the engine never calls act here; if it did
            STEP.act(ctx, params, probe)
    assert _state(broker) == before


def test_drift_is_reported_then_repaired(broker: Broker) -> None:
    ctx, params = _ctx(broker), _params(broker)
    _apply(ctx, params)
    admin = broker.client()
    admin.put_vhost("globex")
    admin.put_permissions("globex", "acme_hub", ".*", ".*", ".*")
    _grant_on_default_vhost(broker, "acme_hub")
    admin.put_permissions("acme", "acme_hub", ".*", ".*", "^amq\\.")
    stores = len(ctx.runtime.vault.stores)  # type: ignore[attr-defined]

    check = _ctx(broker, mode=Mode.CHECK, vault=ctx.runtime.vault)  # type: ignore[arg-type]
    assert list(STEP.verify(check, params)) == [
        Difference("permissions on acme", {"configure": ".*", "write": ".*", "read": "^amq\\."}, dict(FULL_ACCESS)),
        Difference("permissions on other vhosts", ["/", "globex"], []),
    ]
    probe = STEP.probe(ctx, params)
    assert not probe.done and not probe.creates
    assert STEP.act(ctx, params, probe)["created"] == []
    assert STEP.verify(ctx, params) == ()
    assert admin.get_permissions("globex", admin.username) is not None  # only acme_hub's were revoked
    assert len(ctx.runtime.vault.stores) == stores  # type: ignore[attr-defined]


def test_verify_lists_what_went_missing(broker: Broker) -> None:
    ctx, params = _ctx(broker), _params(broker)
    _apply(ctx, params)
    broker.client().delete_user("acme_hub")
    assert list(STEP.verify(ctx, params)) == [Difference("user", None, "acme_hub"),
                                              Difference("permissions on acme", None, dict(FULL_ACCESS))]
    broker.client().delete_vhost("acme")
    assert [d.field for d in STEP.verify(ctx, params)] == ["vhost", "user", "permissions on acme"]


def test_undo_deletes_what_the_run_created(broker: Broker) -> None:
    ctx, params = _ctx(broker), _params(broker)
    before = _state(broker)
    outputs = _apply(ctx, params)
    STEP.undo(ctx, params, outputs)
    assert _state(broker) == before
    assert ENTRY in ctx.runtime.vault.entries  # type: ignore[attr-defined]  # credentials are never deleted


def test_undo_keeps_what_existed_before(broker: Broker) -> None:
    admin = broker.client()
    admin.put_vhost("acme", description="there before")
    ctx, params = _ctx(broker), _params(broker)
    outputs = _apply(ctx, params)
    assert outputs["created"] == ["user"]
    STEP.undo(ctx, params, outputs)
    assert admin.get_vhost("acme") is not None
    assert admin.get_user("acme_hub") is None

    admin.put_user("acme_hub", "existing-password-1")  # vhost and user exist, only the permission is new
    outputs = _apply(ctx, params)
    assert outputs["created"] == ["permissions"]
    STEP.undo(ctx, params, outputs)
    assert admin.get_user("acme_hub") is not None
    assert admin.get_permissions("acme", "acme_hub") is None


def test_a_password_stored_by_a_crashed_run_is_reused(broker: Broker) -> None:
    vault = FakeVault()
    stored = Secret("Stored-Before-Crash-1")
    vault.entries[ENTRY] = stored
    ctx, params = _ctx(broker, vault=vault), _params(broker)
    outputs = _apply(ctx, params)
    assert outputs["user_secret_ref"] == f"fake:{ENTRY}"
    assert vault.stores == []
    assert _login_works(broker, "acme_hub", stored)


def test_existing_user_without_a_password_manager_entry_is_done_with_a_note(broker: Broker) -> None:
    admin = broker.client()
    admin.put_vhost("acme")
    admin.put_user("acme_hub", "made-by-hand-123")
    admin.put_permissions("acme", "acme_hub", ".*", ".*", ".*")
    probe = STEP.probe(_ctx(broker), _params(broker))
    assert probe.done
    assert f"no password-manager entry {ENTRY}" in probe.note
    assert probe.outputs["user_secret_ref"] == ""


def test_a_user_with_tags_is_reported_and_left_alone(broker: Broker) -> None:
    broker.client().put_user("acme_hub", "made-by-hand-123", tags="administrator")
    ctx, params = _ctx(broker), _params(broker)
    probe = STEP.probe(ctx, params)
    assert Difference("user tags", ["administrator"], []) in probe.differences
    before = _state(broker)
    with pytest.raises(StepError, match="tags") as caught:
        STEP.act(ctx, params, probe)
    assert "management console" in caught.value.hint
    assert _state(broker) == before  # refused before any change


def test_wrong_admin_password_fails_with_a_credentials_hint(broker: Broker) -> None:
    vault = FakeVault()
    vault.entries["mq-POS-01/admin"] = Secret("Wrong-Admin-Pass-1")
    with pytest.raises(RabbitMQError) as caught:
        STEP.probe(_ctx(broker, vault=vault), _params(broker))
    assert caught.value.status == 401
    assert "Wrong-Admin-Pass-1" not in str(caught.value) + repr(caught.value)


# -- finding the broker -----------------------------------------------------------------------------------


def test_broker_url_comes_from_amazon_mq(emulated_rabbitmq: Broker) -> None:
    mq = FakeMq(emulated_rabbitmq.base_url)
    ctx = _ctx(emulated_rabbitmq, aws=FakeAws(mq=mq))
    params = _params(broker="mq-POS-01")
    assert management_url(ctx, params) == emulated_rabbitmq.base_url
    assert mq.calls == ["list_brokers", "list_brokers page2", "describe_broker b-1"]
    assert not STEP.probe(ctx, params).done  # and the whole step works through it


def test_base_url_param_then_settings_then_broker(emulated_rabbitmq: Broker) -> None:
    ctx = _ctx(emulated_rabbitmq, settings={"rabbitmq": {"base_url": "http://127.0.0.1:1"}})  # no mq client
    assert management_url(ctx, _params(broker="mq-POS-01", base_url="http://127.0.0.1:2")) == "http://127.0.0.1:2"
    assert management_url(ctx, _params(broker="mq-POS-01")) == "http://127.0.0.1:1"
    with pytest.raises(InputError, match="broker"):
        management_url(_ctx(emulated_rabbitmq), _params())


@pytest.mark.parametrize(("mq", "message"), [
    (FakeMq("https://b-1.mq", state="CREATION_IN_PROGRESS"), "not RUNNING"),
    (FakeMq("https://b-1.mq", engine="ACTIVEMQ"), "not RabbitMQ"),
])
def test_broker_must_be_a_running_rabbitmq(emulated_rabbitmq: Broker, mq: FakeMq, message: str) -> None:
    with pytest.raises(StepError, match=message):
        management_url(_ctx(emulated_rabbitmq, aws=FakeAws(mq=mq)), _params(broker="mq-POS-01"))


def test_unknown_broker_and_aws_errors(emulated_rabbitmq: Broker, aws: None) -> None:
    import boto3

    mq = boto3.client("mq", region_name="us-east-1")
    ctx = _ctx(emulated_rabbitmq, aws=FakeAws(mq=mq))
    with pytest.raises(StepError, match="no broker named 'mq-POS-01'"):
        management_url(ctx, _params(broker="mq-POS-01"))
    mq.create_broker(BrokerName="mq-POS-01", EngineType="RABBITMQ", EngineVersion="3.13",
                     HostInstanceType="mq.t3.micro", DeploymentMode="SINGLE_INSTANCE", PubliclyAccessible=True,
                     AutoMinorVersionUpgrade=True, Users=[{"Username": "admin", "Password": "Admin-Pass-123"}])
    assert management_url(ctx, _params(broker="mq-POS-01")).startswith("https://")

    class Failing:
        def list_brokers(self, **kwargs: object) -> None:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "ListBrokers")

    with pytest.raises(AwsError, match="mq:ListBrokers failed with AccessDenied"):
        management_url(_ctx(emulated_rabbitmq, aws=FakeAws(mq=Failing())), _params(broker="mq-POS-01"))


def test_an_unreachable_broker_says_so(emulated_rabbitmq: Broker) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RabbitMQError) as caught:
        STEP.probe(_ctx(emulated_rabbitmq), _params(base_url=f"http://127.0.0.1:{port}"))
    assert "reachable" in caught.value.hint


# -- inputs and the contract ------------------------------------------------------------------------------


@pytest.mark.parametrize("changes", [{"vhost": "Acme"}, {"vhost": "../users"}, {"vhost": "a/b"}, {"user": "acme\nX"},
                                    {"user": ""}, {"vhost": "acme%2F.."}, {"user": "kprov_admin"}, {"user": "admin"}])
def test_bad_names_and_the_admin_are_refused_before_any_request(emulated_rabbitmq: Broker,
                                                                changes: dict[str, object]) -> None:
    ctx = _ctx(emulated_rabbitmq, settings={})  # admin user: the default `admin`
    params = _params(base_url="http://127.0.0.1:9", **changes)  # nothing listens on port 9
    if changes.get("user") == "kprov_admin":
        params["admin_user"] = "kprov_admin"
    for call in (lambda: STEP.probe(ctx, params), lambda: STEP.verify(ctx, params),
                 lambda: STEP.undo(ctx, params, {"created": ["vhost"]})):
        with pytest.raises(InputError):
            call()


def test_step_type_contract() -> None:
    assert STEP.name == "rabbitmq.vhost"
    assert STEP.summary
    assert {p.name for p in STEP.params} == {"broker", "base_url", "vhost", "user", "admin_user", "admin_secret",
                                             "user_secret_name", "description"}
    assert {p.name for p in STEP.params if p.required} == {"vhost", "user", "admin_secret", "user_secret_name"}
    assert STEP.outputs == ("vhost", "user", "user_secret_ref", "created")
    for method in ("probe", "act", "verify", "undo"):
        assert callable(getattr(STEP, method))
