"""Password-manager backends: Secrets Manager under moto, a command fed on stdin, the manual operator."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest

from kensium_provision.errors import AbortedError, AwsError, ExitCode, InputError, StepError
from kensium_provision.model import InputSpec
from kensium_provision.secret import MASK, RedactingFilter, Secret, generate_password
from kensium_provision.vault.backends import (
    CommandVault,
    ManualVault,
    SecretsManagerVault,
    entry_name,
    make_vault,
    secret_name,
)

FAKE_PM = Path(__file__).with_name("fake_password_manager.py")


@pytest.fixture
def secret() -> Secret:
    return generate_password("sql-login")


@pytest.fixture
def no_leak(
    secret: Secret, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> Iterator[Callable[[], None]]:
    """Everything at DEBUG (botocore too) through a redacting handler, as kprov's own handlers are set up.

    Call the returned check (or let teardown do it): the value is in no output and no log record.
    """
    redacting = RedactingFilter()
    caplog.handler.addFilter(redacting)  # pytest reuses one capture handler for every test: removed below
    caplog.set_level(logging.DEBUG)

    def check() -> None:
        out, err = capsys.readouterr()
        records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
        texts = [out, err, caplog.text] + [r.getMessage() + (r.exc_text or "") for r in records]
        assert not any(secret.reveal() in text for text in texts)

    try:
        yield check
        check()
    finally:
        caplog.handler.removeFilter(redacting)


# --- names ---------------------------------------------------------------------------------------------------


def test_secret_names_are_built_from_allow_listed_parts() -> None:
    assert secret_name("qa", "acme", "sql-login") == "kprov/qa/acme/sql-login"
    assert secret_name("production", "mq-POS-01", "admin") == "kprov/production/mq-POS-01/admin"
    assert entry_name("db-POS-01/master") == ("db-POS-01", "master")


@pytest.mark.parametrize("part", ["", ".", "..", "a..b", "a/b", "a b", "é", "a\nb", "x" * 129, "a*", "a%2F", "-rf",
                                  ".hidden", "_x"])
def test_secret_name_refuses_anything_outside_the_allow_list(part: str) -> None:
    with pytest.raises(InputError, match="password manager"):
        secret_name("qa", part, "sql-login")
    with pytest.raises(InputError):
        secret_name("qa", "acme", part)


@pytest.mark.parametrize("name", ["acme", "acme/", "/x", "../etc/passwd", "acme/a/b", "acme/..", 42])
def test_entry_names_are_owner_slash_credential(name: Any) -> None:
    with pytest.raises(InputError):
        entry_name(name)


# --- AWS Secrets Manager ---------------------------------------------------------------------------------------


@pytest.fixture
def sm(aws: None) -> Any:
    return boto3.client("secretsmanager", region_name="us-east-1")


REF = re.compile(r"arn:aws:secretsmanager:us-east-1:\d{12}:secret:kprov/sandbox/acme/sql-login-\w{6}#[0-9a-f-]{36}")


def test_secretsmanager_store_names_tags_and_references(sm: Any, secret: Secret, no_leak: Callable[[], None]) -> None:
    vault = SecretsManagerVault(sm, "sandbox")
    assert vault.find("acme/sql-login") is None
    ref = vault.store("acme/sql-login", secret, description="SQL login POS_acme_user", tags={"kprov:org": "acme"})
    assert REF.fullmatch(ref)
    described = sm.describe_secret(SecretId="kprov/sandbox/acme/sql-login")
    assert described["Description"] == "SQL login POS_acme_user"
    assert {t["Key"]: t["Value"] for t in described["Tags"]} == {
        "kprov:managed": "true", "kprov:env": "sandbox", "kprov:org": "acme"}
    assert sm.get_secret_value(SecretId="kprov/sandbox/acme/sql-login")["SecretString"] == secret.reveal()
    assert vault.find("acme/sql-login") == ref
    assert vault.fetch(ref) == secret
    assert vault.fetch(ref.partition("#")[0]) == secret  # a bare ARN reads AWSCURRENT
    assert vault.find("acme/other") is None
    no_leak()


def test_secretsmanager_store_is_idempotent_and_adds_missing_tags(sm: Any, secret: Secret) -> None:
    vault = SecretsManagerVault(sm, "sandbox")
    first = vault.store("acme/sql-login", secret, description="d", tags={})
    again = vault.store("acme/sql-login", Secret(secret.reveal()), description="d", tags={"owner": "ops"})
    assert again == first
    versions = sm.list_secret_version_ids(SecretId="kprov/sandbox/acme/sql-login")["Versions"]
    assert len(versions) == 1
    tags = {t["Key"]: t["Value"] for t in sm.describe_secret(SecretId="kprov/sandbox/acme/sql-login")["Tags"]}
    assert tags["owner"] == "ops" and tags["kprov:managed"] == "true"


def test_secretsmanager_never_overwrites_a_different_value(sm: Any, secret: Secret) -> None:
    vault = SecretsManagerVault(sm, "sandbox")
    vault.store("acme/sql-login", secret, description="d", tags={})
    other = generate_password("sql-login")
    with pytest.raises(StepError, match="never overwrites") as err:
        vault.store("acme/sql-login", other, description="d", tags={})
    assert secret.reveal() not in str(err.value) and other.reveal() not in str(err.value)
    assert sm.get_secret_value(SecretId="kprov/sandbox/acme/sql-login")["SecretString"] == secret.reveal()


def test_secretsmanager_reconciles_a_create_that_lost_a_race(sm: Any, secret: Secret) -> None:
    class RacingClient:
        """Another run creates the same secret between our describe and our create."""

        def __getattr__(self, name: str) -> Any:
            return getattr(sm, name)

        def create_secret(self, **params: Any) -> Any:
            sm.create_secret(Name=params["Name"], SecretString=params["SecretString"])
            return sm.create_secret(**params)

    ref = SecretsManagerVault(RacingClient(), "sandbox").store("acme/sql-login", secret, description="d", tags={})
    assert REF.fullmatch(ref)


def test_secretsmanager_refuses_the_value_in_description_or_tags(sm: Any, secret: Secret) -> None:
    vault = SecretsManagerVault(sm, "sandbox")
    with pytest.raises(InputError, match="description"):
        vault.store("acme/sql-login", secret, description=f"pw {secret.reveal()}", tags={})
    with pytest.raises(InputError, match="tags"):
        vault.store("acme/sql-login", secret, description="d", tags={"note": secret.reveal()})
    assert sm.list_secrets()["SecretList"] == []


def test_secretsmanager_reports_a_secret_scheduled_for_deletion(sm: Any, secret: Secret) -> None:
    vault = SecretsManagerVault(sm, "sandbox")
    vault.store("acme/sql-login", secret, description="d", tags={})
    sm.delete_secret(SecretId="kprov/sandbox/acme/sql-login")
    with pytest.raises(StepError, match="scheduled for deletion") as err:
        vault.store("acme/sql-login", secret, description="d", tags={})
    assert "restore-secret" in err.value.hint


def test_secretsmanager_bad_references_and_aws_errors(sm: Any) -> None:
    vault = SecretsManagerVault(sm, "sandbox")
    for bad in ("manual:acme/x", "kprov/sandbox/acme/x", "arn:aws:s3:::bucket"):
        with pytest.raises(InputError):
            vault.fetch(bad)
    pasted = generate_password("amazon-mq")  # the value itself where a reference belongs
    for backend in (vault, CommandVault(["pm", "{name}"], ["pm", "{name}"]), ManualVault(ScriptedOperator())):
        with pytest.raises(InputError) as err:
            backend.fetch(pasted.reveal())
        assert pasted.reveal() not in str(err.value) and MASK in str(err.value)
    with pytest.raises(AwsError) as aws_err:
        vault.fetch("arn:aws:secretsmanager:us-east-1:123456789012:secret:kprov/sandbox/acme/none-AbCdEf")
    assert aws_err.value.code == "ResourceNotFoundException" and aws_err.value.operation == "GetSecretValue"
    assert aws_err.value.__suppress_context__
    with pytest.raises(InputError):
        vault.store("acme/../x", Secret("whatever-123"), description="", tags={})
    with pytest.raises(InputError):
        SecretsManagerVault(sm, "../prod")


def test_botocore_debug_logs_leak_without_the_filter_and_not_with_it(
    sm: Any, secret: Secret, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="botocore")
    SecretsManagerVault(sm, "sandbox").store("acme/a", secret, description="d", tags={})
    assert secret.reveal() in caplog.text  # the leak path of reliability-notes 4.4 is real here
    caplog.clear()
    redacting = RedactingFilter()
    caplog.handler.addFilter(redacting)
    try:
        SecretsManagerVault(sm, "sandbox").store("acme/b", secret, description="d", tags={})
    finally:
        caplog.handler.removeFilter(redacting)
    assert "SecretString" in caplog.text and MASK in caplog.text
    assert secret.reveal() not in caplog.text


# --- a password-manager command ---------------------------------------------------------------------------


@pytest.fixture
def pm(tmp_path: Path) -> Path:
    return tmp_path


def pm_argv(directory: Path, action: str, *flags: str) -> list[str]:
    return [sys.executable, str(FAKE_PM), "--dir", str(directory), *flags, action, "{name}"]


def calls(directory: Path) -> list[dict[str, Any]]:
    path = directory / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_command_vault_pipes_the_secret_on_stdin_only(
    pm: Path, secret: Secret, monkeypatch: pytest.MonkeyPatch, no_leak: Callable[[], None]
) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token-canary")
    monkeypatch.setenv("LEAKY_SETTING", f"x{secret.reveal()}x")  # any variable holding a secret is dropped too
    vault = CommandVault(pm_argv(pm, "store"), pm_argv(pm, "fetch"))
    ref = vault.store("acme/sql-login", secret, description="SQL login", tags={"a": "b"})
    assert ref == "command:acme/sql-login"
    assert (pm / "entries" / "acme__sql-login").read_bytes() == secret.reveal().encode() + b"\n"
    assert vault.fetch(ref) == secret
    assert vault.find("acme/sql-login") == ref
    assert vault.find("acme/other") is None
    recorded = calls(pm)
    assert [c["action"] for c in recorded] == ["fetch", "store", "fetch", "fetch", "fetch", "fetch"]
    store = recorded[1]
    assert store["argv"][-2:] == ["store", "acme/sql-login"]
    for call in recorded:
        assert secret.reveal() not in json.dumps(call)
        stripped = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "LEAKY_SETTING"}
        assert not stripped & set(call["env"])
        assert call["env"]["AWS_DEFAULT_REGION"] == "us-east-1"  # what is not a credential is kept
        assert call["argv"][-1] in call["cmdline"]  # /proc/<pid>/cmdline, what `ps` shows to every user
    no_leak()


def test_command_vault_is_idempotent_and_never_overwrites(pm: Path, secret: Secret) -> None:
    vault = CommandVault(pm_argv(pm, "store"), pm_argv(pm, "fetch"))
    ref = vault.store("acme/sql-login", secret, description="", tags={})
    assert vault.store("acme/sql-login", secret, description="", tags={}) == ref
    with pytest.raises(StepError, match="never overwrites"):
        vault.store("acme/sql-login", generate_password("sql-login"), description="", tags={})
    assert [c["action"] for c in calls(pm)].count("store") == 1


def test_command_vault_reference_is_the_name_whatever_the_command_prints(pm: Path, secret: Secret) -> None:
    vault = CommandVault(pm_argv(pm, "store", "--print-id"), pm_argv(pm, "fetch"))
    ref = vault.store("acme/sql-login", secret, description="", tags={})
    assert ref == "command:acme/sql-login" == vault.find("acme/sql-login")  # issue 14.11: tests/test_vault_reference
    assert vault.fetch(ref) == secret
    without_fetch = CommandVault(pm_argv(pm, "store"))
    assert without_fetch.store("acme/other", secret, description="", tags={}) == "command:acme/other"


def test_command_vault_failure_names_command_and_code_not_the_secret(
    pm: Path, secret: Secret, no_leak: Callable[[], None]
) -> None:
    vault = CommandVault(pm_argv(pm, "store", "--fail", "3", "--echo"))
    with pytest.raises(StepError) as err:
        vault.store("acme/sql-login", secret, description="", tags={})
    message = str(err.value)
    assert f"{sys.executable!r} failed with exit code 3" in message
    assert f"cannot store: {MASK}" in message  # the tool echoed its stdin; the message shows the mask
    assert secret.reveal() not in message
    with pytest.raises(StepError, match="exit code 1"):
        CommandVault(pm_argv(pm, "store"), pm_argv(pm, "fetch")).fetch("command:acme/missing")
    no_leak()


def test_command_vault_timeout_missing_command_and_missing_fetch(pm: Path, secret: Secret) -> None:
    with pytest.raises(StepError, match=r"did not finish in 0\.3 s"):
        CommandVault(pm_argv(pm, "store", "--sleep", "5"), timeout=0.3).store("acme/x", secret, description="", tags={})
    with pytest.raises(InputError, match="not found"):
        CommandVault(["/nonexistent/kprov-pm", "{name}"]).store("acme/x", secret, description="", tags={})
    vault = CommandVault(pm_argv(pm, "store"))
    assert vault.find("acme/x") is None
    with pytest.raises(InputError, match="fetch_command"):
        vault.fetch("command:acme/x")


@pytest.mark.parametrize("argv", [[], "pass insert {name}", ["pass", "insert"], ["pass", ""], ["pass", 3]])
def test_command_vault_argv_must_be_a_list_with_the_name(argv: Any) -> None:
    with pytest.raises(InputError):
        CommandVault(argv)


def test_command_vault_refuses_bad_names_and_references_before_running(pm: Path, secret: Secret) -> None:
    vault = CommandVault(pm_argv(pm, "store"), pm_argv(pm, "fetch"))
    for name in ("acme/$(reboot)", "acme/../../x", "-rf/x", "acme/a b", "acme"):
        with pytest.raises(InputError):
            vault.store(name, secret, description="", tags={})
    for ref in ("manual:acme/x", "command:acme/x#bad id", "command:acme"):
        with pytest.raises(InputError):
            vault.fetch(ref)
    assert calls(pm) == []


# --- manual ---------------------------------------------------------------------------------------------------


class ScriptedOperator:
    """Answers from a script and records what it was shown."""

    def __init__(self, *, interactive: bool = True, confirm: bool = True, answer: object = None) -> None:
        self.interactive = interactive
        self.confirm_answer = confirm
        self.answer = answer
        self.shown: list[tuple[str, Secret]] = []
        self.confirms: list[str] = []
        self.asked: list[tuple[InputSpec, Callable[[object], str | None]]] = []

    def ask(self, spec: InputSpec, *, default: object, choices: Sequence[str],
            validate: Callable[[object], str | None]) -> object:
        self.asked.append((spec, validate))
        return self.answer

    def confirm(self, message: str, *, default: bool = False, key: str = "") -> bool:
        self.confirms.append(message)
        return self.confirm_answer

    def type_to_confirm(self, message: str, expected: str) -> bool:
        raise AssertionError("not used by the vault")

    def instruct(self, title: str, text: str) -> None:
        raise AssertionError("not used by the vault")

    def show_secret_once(self, label: str, secret: Secret) -> None:
        self.shown.append((label, secret))


def test_manual_vault_shows_once_and_needs_the_confirmation(secret: Secret, no_leak: Callable[[], None]) -> None:
    operator = ScriptedOperator()
    vault = ManualVault(operator)
    assert vault.find("acme/sql-login") is None
    ref = vault.store("acme/sql-login", secret, description="SQL login POS_acme_user", tags={})
    assert ref == "manual:acme/sql-login"
    assert operator.shown == [("acme/sql-login: SQL login POS_acme_user", secret)]
    assert operator.shown[0][1] is secret
    assert operator.confirms == ["Stored in the Kensium Password Manager?"]
    no_leak()


def test_manual_vault_refusal_aborts(secret: Secret) -> None:
    with pytest.raises(AbortedError, match="not stored") as err:
        ManualVault(ScriptedOperator(confirm=False)).store("acme/sql-login", secret, description="", tags={})
    assert err.value.exit_code == ExitCode.ABORTED


def test_manual_vault_needs_a_terminal(secret: Secret) -> None:
    operator = ScriptedOperator(interactive=False)
    with pytest.raises(InputError, match="terminal"):
        ManualVault(operator).store("acme/sql-login", secret, description="", tags={})
    with pytest.raises(InputError, match="terminal"):
        ManualVault(operator).fetch("manual:acme/sql-login")
    assert operator.shown == []


def test_manual_vault_fetch_asks_at_a_secret_prompt(secret: Secret) -> None:
    operator = ScriptedOperator(answer=secret)
    assert ManualVault(operator).fetch("manual:acme/sql-login") is secret
    spec, validate = operator.asked[0]
    assert spec.type == "secret" and "acme/sql-login" in spec.prompt
    assert validate(Secret("")) and validate("") and validate(None)
    assert validate(secret) is None
    assert ManualVault(ScriptedOperator(answer="typed-value-1")).fetch("manual:acme/x") == Secret("typed-value-1")
    with pytest.raises(InputError):
        ManualVault(ScriptedOperator(answer=None)).fetch("manual:acme/x")
    with pytest.raises(InputError):
        ManualVault(operator).fetch("command:acme/x")


# --- the factory ----------------------------------------------------------------------------------------------


class Clients:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def client(self, service: str) -> Any:
        self.asked.append(service)
        return object()


def test_make_vault_builds_each_backend(pm: Path) -> None:
    clients, operator = Clients(), ScriptedOperator()

    def made(kind: str, settings: dict[str, object]) -> object:
        return make_vault(kind, settings=settings, client_factory=clients, operator=operator, env_name="qa")

    sm = made("secretsmanager", {"backend": "secretsmanager"})
    assert isinstance(sm, SecretsManagerVault) and sm.env_name == "qa" and clients.asked == ["secretsmanager"]
    assert isinstance(made("manual", {}), ManualVault)
    command = made("command", {"command": pm_argv(pm, "store"), "fetch_command": pm_argv(pm, "fetch"), "timeout": 5})
    assert isinstance(command, CommandVault)
    assert command.argv == tuple(pm_argv(pm, "store")) and command.timeout == 5.0


@pytest.mark.parametrize(("kind", "settings", "match"), [
    ("onepassword", {}, "unknown vault backend"),
    ("manual", {"backend": "command"}, "settings say 'command'"),
    ("secretsmanager", {"timeout": 5}, "only to the command or keepassxc or pass backend, not secretsmanager"),
    ("pass", {"database": "x.kdbx"}, "only to the keepassxc backend, not pass"),
    ("keepassxc", {}, "needs `database`"),
    ("keepassxc", {"database": "x.kdbx", "password": False}, "needs key_file"),
    ("keepassxc", {"database": "x.kdbx", "password": "secret"}, "vault password must be true"),
    ("manual", {"comand": ["x"]}, "unknown vault setting"),
    ("manual", {"command": ["x", "{name}"]}, "only to the command backend"),
    ("command", {}, "needs `command`"),
    ("command", {"command": ["pm", "{name}"], "timeout": 0}, "timeout"),
    ("command", {"command": ["pm", "{name}"], "timeout": True}, "timeout"),
    ("command", {"command": ["pm", "{name}"], "fetch_command": "pm get"}, "fetch_command"),
])
def test_make_vault_refuses_bad_settings(kind: str, settings: dict[str, object], match: str) -> None:
    with pytest.raises(InputError, match=match):
        make_vault(kind, settings=settings, client_factory=Clients(), operator=ScriptedOperator(), env_name="qa")


def test_vault_module_does_not_import_boto3() -> None:
    code = ("import sys, kensium_provision.vault.backends; "
            "print(sorted(m for m in ('boto3', 'botocore') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- the config's vault: section for each backend -------------------------------------------------------------


def _config_issues(path: Path) -> list[str]:
    from kensium_provision.app.config import load_config
    from kensium_provision.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.exit_code == ExitCode.INVALID
    return str(caught.value).splitlines()


def test_config_reads_the_keepassxc_and_pass_backends_into_make_vault(tmp_path: Path) -> None:
    from kensium_provision.app.config import load_config
    from kensium_provision.vault.backends import KeePassXCVault, PassVault

    path = tmp_path / "config.yaml"
    path.write_text("vault: {backend: keepassxc, database: /srv/team.kdbx, key_file: /srv/team.keyx, password: false,"
                    " timeout: 9}\n")
    settings = load_config(path).vault.settings()
    assert settings == {"backend": "keepassxc", "database": "/srv/team.kdbx", "key_file": "/srv/team.keyx",
                        "password": False, "timeout": 9}
    made = make_vault("keepassxc", settings=settings, client_factory=Clients(), operator=ScriptedOperator(),
                      env_name="qa")
    assert isinstance(made, KeePassXCVault) and str(made.database) == "/srv/team.kdbx"
    path.write_text("vault: {backend: pass, store: /srv/password-store}\n")
    settings = load_config(path).vault.settings()
    assert settings == {"backend": "pass", "store": "/srv/password-store", "timeout": 60}
    made = make_vault("pass", settings=settings, client_factory=Clients(), operator=ScriptedOperator(), env_name="qa")
    assert isinstance(made, PassVault) and str(made.directory) == "/srv/password-store"


def test_config_refuses_vault_keys_of_another_backend_with_their_place(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("vault: {backend: keepassxc, password: false, store: /x}\n")
    assert _config_issues(path) == [  # sorted by place, as every config problem is reported
        f"{path}:1:8: vault: backend: keepassxc needs database: the .kdbx file",
        f"{path}:1:39: vault › password: password: false needs key_file: the database must be unlocked by something",
        f"{path}:1:53: vault › store: store is used only with backend: pass",
    ]


# --- update: rotation replaces a value on purpose -------------------------------------------------------------


def test_secretsmanager_update_makes_a_new_current_version_and_keeps_the_previous(sm: Any, secret: Secret) -> None:
    vault = SecretsManagerVault(sm, "sandbox")
    first = vault.store("acme/sql-login", secret, description="d", tags={})
    rotated = generate_password("sql-login")
    ref = vault.update("acme/sql-login", rotated)
    assert REF.fullmatch(ref) and ref != first
    assert vault.find("acme/sql-login") == ref and vault.fetch(ref) == rotated
    assert vault.fetch(first) == secret  # the old version stays readable (AWSPREVIOUS) until the rotation ends
    stages = {v["VersionId"]: v["VersionStages"] for v in
              sm.list_secret_version_ids(SecretId="kprov/sandbox/acme/sql-login")["Versions"]}
    assert stages[ref.partition("#")[2]] == ["AWSCURRENT"] and stages[first.partition("#")[2]] == ["AWSPREVIOUS"]
    assert vault.update("acme/sql-login", rotated) == ref  # a resumed rotation makes no third version
    assert len(stages) == 2 == len(sm.list_secret_version_ids(SecretId="kprov/sandbox/acme/sql-login")["Versions"])
    with pytest.raises(StepError, match="no secret kprov/sandbox/acme/none to update"):
        vault.update("acme/none", rotated)


def test_command_vault_update_runs_the_update_command_on_stdin(pm: Path, secret: Secret) -> None:
    update = [sys.executable, str(FAKE_PM), "--dir", str(pm), "store", "{name}"]  # the fake's store replaces
    vault = CommandVault(pm_argv(pm, "store"), pm_argv(pm, "fetch"), update_argv=update)
    ref = vault.store("acme/sql-login", secret, description="", tags={})
    rotated = generate_password("sql-login")
    assert vault.update("acme/sql-login", rotated) == ref and vault.fetch(ref) == rotated
    assert vault.update("acme/sql-login", rotated) == ref
    assert [c["action"] for c in calls(pm)].count("store") == 2  # the store, one update; the resumed one reads only
    assert not any(rotated.reveal() in json.dumps(c) for c in calls(pm))
    with pytest.raises(InputError, match="update_command"):
        CommandVault(pm_argv(pm, "store"), pm_argv(pm, "fetch")).update("acme/sql-login", rotated)


def test_manual_vault_update_shows_the_new_value_once_and_needs_the_confirmation(secret: Secret) -> None:
    operator = ScriptedOperator()
    assert ManualVault(operator).update("acme/sql-login", secret) == "manual:acme/sql-login"
    assert operator.shown == [("acme/sql-login: the new value (replace the old one)", secret)]
    with pytest.raises(AbortedError, match="not replaced"):
        ManualVault(ScriptedOperator(confirm=False)).update("acme/sql-login", secret)


def test_every_backend_maps_its_references_to_one_canonical_form(sm: Any, pm: Path) -> None:
    sm_vault = SecretsManagerVault(sm, "sandbox")
    ref = sm_vault.store("acme/x", Secret("Canonical-Sm-1"), description="d", tags={})
    assert sm_vault.canonical(ref) == ref
    command = CommandVault(pm_argv(pm, "store"), pm_argv(pm, "fetch"))
    assert command.canonical("command:acme/x#id-7") == command.canonical("command:acme/x") == "command:acme/x"
    assert ManualVault(ScriptedOperator()).canonical("manual:acme/x") == "manual:acme/x"
    for backend, other in ((command, "manual:acme/x"), (ManualVault(ScriptedOperator()), "command:acme/x")):
        with pytest.raises(InputError):
            backend.canonical(other)
