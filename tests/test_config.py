"""The config file: locations, the built-in sandbox default, and exact `path:line:col` issues."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kensium_provision.app.config import (
    SANDBOX_ENVIRONMENT,
    Config,
    config_dir,
    config_path,
    load_config,
    state_dir,
)
from kensium_provision.errors import ConfigError, ExitCode, InputError
from kensium_provision.guards import PURPOSES
from kensium_provision.yamlio import MAX_DEPTH
from tests.hostile import DEV_ZERO, deep_flow, fifo, kprov

DESIGN_EXAMPLE = """\
environments:
  sandbox:    {sandbox: true, region: us-east-1}
  qa:         {account_id: "111111111111", region: us-east-1, profile: kensium-qa, purposes: [qa, development, demo]}
  production:
    {account_id: "222222222222", region: us-east-1, profile: kensium-prod, purposes: [production, staging],
     protected: true}
default_environment: qa
vault: {backend: command, command: [op, item, create, "{name}"], fetch_command: [op, read, "{name}"], timeout: 30}
locks: {backend: dynamodb, table: kprov-locks}
rabbitmq: {base_url: "https://b-1.mq.us-east-1.amazonaws.com"}
sql: {driver: ODBC Driver 18 for SQL Server, encrypt: true, timeout_seconds: 15}
route53: {hosted_zone_id: Z0123456789ABC, domain: pos.example.com}
pos_domain: pos.example.com
journal: {cloudwatch_log_group: /kprov/journal}
"""


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def issues_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.exit_code == ExitCode.INVALID
    return str(caught.value).splitlines()


def test_no_config_at_all_is_the_sandbox() -> None:
    config = load_config(None)
    assert config.path == ""
    assert config.environments == (SANDBOX_ENVIRONMENT,)
    env = config.environment()
    assert (env.name, env.sandbox, env.region, env.account_id) == ("sandbox", True, "us-east-1", "123456789012")
    assert env.purposes == PURPOSES
    assert config.vault.backend == "secretsmanager" and config.locks.backend == "local"
    assert config.clients.table == "kprov-clients" and config.settings()["clients"] == {"table": "kprov-clients"}


def test_unknown_environment_is_an_input_error_naming_the_known_ones() -> None:
    message = r"unknown environment 'prod' \(no config file was found\); configured: sandbox"
    with pytest.raises(InputError, match=message):
        load_config(None).environment("prod")


def test_design_example_loads_every_section(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, DESIGN_EXAMPLE))
    assert [e.name for e in config.environments] == ["sandbox", "qa", "production"]
    assert config.environment().name == "qa"
    production = config.environment("production")
    assert production.account_id == "222222222222" and production.protected and production.profile == "kensium-prod"
    assert production.purposes == ("production", "staging")
    assert config.vault.command == ("op", "item", "create", "{name}")
    assert config.vault.fetch_command == ("op", "read", "{name}")
    assert config.vault.timeout == 30
    assert (config.locks.backend, config.locks.table) == ("dynamodb", "kprov-locks")
    assert config.sql.configured and config.sql.timeout_seconds == 15
    assert config.route53.hosted_zone_id == "Z0123456789ABC" and config.pos_domain == "pos.example.com"
    settings_ = config.settings()
    assert settings_["vault"] == {"backend": "command", "command": ["op", "item", "create", "{name}"],
                                  "fetch_command": ["op", "read", "{name}"], "timeout": 30}
    assert settings_["rabbitmq"] == {"base_url": "https://b-1.mq.us-east-1.amazonaws.com"}


def test_the_sandbox_is_always_there_and_the_default_unless_named(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """\
        environments:
          qa: {account_id: "111111111111", region: eu-west-1, purposes: [qa]}
        """))
    assert [e.name for e in config.environments] == ["sandbox", "qa"]
    assert config.environment().name == "sandbox"  # never a real account by accident


def test_vault_settings_for_secretsmanager_carry_only_the_backend() -> None:
    assert load_config(None).settings()["vault"] == {"backend": "secretsmanager"}


def test_a_file_with_several_mistakes_reports_every_one_in_order(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        environments:
          qa:
            account_id: 111111111111
            region: us-east-1
            purposes: [qa, development, testing]
          production:
            account_id: "22222222222"
            regoin: us-east-1
            purposes: [production, staging]
            protected: yes
          demo: {account_id: "333333333333", region: US-EAST-1, purposes: [production, demo]}
        default_environment: prod
        vault: {backend: command}
        locks: {backend: dynamodb}
        colour: red
        """)
    assert issues_of(path) == [
        f"{path}:3:17: environments › qa › account_id: expected a string, got a whole number (111111111111); "
        "YAML reads an unquoted 111111111111 as a whole number: quote it: '111111111111'",
        f"{path}:5:33: environments › qa › purposes[2]: 'testing' is not one of: production, staging, "
        "qa, development, demo",
        f"{path}:7:5: environments › production: missing required key 'region' (for example us-east-1)",
        f"{path}:7:17: environments › production › account_id: '22222222222' is not an AWS account id (exactly 12 "
        "digits)",
        f"{path}:8:5: environments › production › regoin: unknown key 'regoin' (did you mean 'region'?)",
        f"{path}:10:16: environments › production › protected: expected true or false, got yes (YAML reads it as "
        "true); write true or false",
        f"{path}:11:46: environments › demo › region: 'US-EAST-1' is not an AWS region name like us-east-1",
        f"{path}:11:67: environments › demo › purposes: production and staging live only in the POS Production "
        "account, which never hosts qa, development or demo: split them into two environments",
        f"{path}:12:22: default_environment: 'prod' is not a configured environment; configured: sandbox, qa, "
        "production, demo",
        f"{path}:13:8: vault: backend: command needs command: [program, args...] (the secret goes on stdin)",
        f"{path}:14:8: locks: backend: dynamodb needs table: <DynamoDB table name>",
        f"{path}:15:1: colour: unknown key 'colour'; allowed: environments, default_environment, vault, locks, "
        "clients, rotation, capacity, rabbitmq, sql, route53, pos_domain, journal",
    ]


def test_one_account_cannot_host_production_and_qa_across_two_environments(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        environments:
          production: {account_id: "222222222222", region: us-east-1, purposes: [production]}
          qa: {account_id: "222222222222", region: us-east-1, purposes: [qa]}
        """)
    assert issues_of(path) == [
        f"{path}:3:20: environments › qa › account_id: account 222222222222 is also environment 'production'; "
        "an account hosting production or staging must never host qa, development or demo",
    ]


def test_sandbox_rules(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        environments:
          sandbox: {region: us-east-1}
          training: {sandbox: true, profile: mine, region: eu-west-1}
        """)
    assert issues_of(path) == [
        f"{path}:2:12: environments › sandbox: the name 'sandbox' is reserved for the embedded sandbox: add "
        "sandbox: true or choose another name",
        f"{path}:3:38: environments › training › profile: a sandbox environment never uses AWS credentials; remove "
        "profile",
    ]


def test_a_sandbox_environment_may_use_another_name_and_region(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "environments:\n  training: {sandbox: true, region: eu-west-1}\n"))
    training = config.environment("training")
    assert training.sandbox and training.account_id == "123456789012" and training.region == "eu-west-1"


def test_command_vault_needs_the_entry_placeholder(tmp_path: Path) -> None:
    path = write(tmp_path, 'vault: {backend: command, command: [op, item, create], timeout: 0}\n')
    assert issues_of(path) == [
        f"{path}:1:36: vault › command: put {{name}} where the password manager keeps the entry, e.g. "
        '[op, item, create, --title, "{name}"]',
        f"{path}:1:65: vault › timeout: expected a whole number from 1 to 3600, got a whole number (0)",
    ]


def test_vault_and_lock_options_that_do_not_apply_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        vault: {backend: manual, command: [op], timeout: 0}
        locks: {table: t1}
        """)
    assert issues_of(path) == [
        f"{path}:1:35: vault › command: command is used only with backend: command",
        f"{path}:1:50: vault › timeout: expected a whole number from 1 to 3600, got a whole number (0)",
        f"{path}:1:50: vault › timeout: timeout is used only with backend: command or keepassxc or pass",
        f"{path}:2:16: locks › table: 't1' is not a DynamoDB table name",
        f"{path}:2:16: locks › table: table is used only with backend: dynamodb",
    ]


def test_the_client_records_table_is_named_strictly(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "clients: {table: pos-clients}\n")).settings()["clients"] == \
        {"table": "pos-clients"}
    path = write(tmp_path, """\
        clients: {table: "no spaces", tabel: x}
        locks: {backend: dynamodb, table: kprov-clients}
        """, name="bad.yaml")
    assert issues_of(path) == [
        f"{path}:1:18: clients › table: 'no spaces' is not a DynamoDB table name",
        f"{path}:1:31: clients › tabel: unknown key 'tabel' (did you mean 'table'?)",
        (f"{path}:2:8: locks › table: 'kprov-clients' is the client records' table (clients › table); give the "
         "locks their own table"),
    ]


def test_wrong_types_and_empty_lists(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        environments:
          qa: {account_id: "111111111111", region: us-east-1, purposes: [], endpoint_url: ftp://x}
        pos_domain: 3.10
        sql: {encrypt: 1}
        route53: [a]
        """)
    assert issues_of(path) == [
        f"{path}:2:65: environments › qa › purposes: list at least one purpose (production, staging, qa, "
        "development, demo)",
        f"{path}:2:83: environments › qa › endpoint_url: 'ftp://x' is not an http:// or https:// URL",
        f"{path}:3:13: pos_domain: expected a string, got a number (3.10); YAML reads an unquoted 3.10 as a number: "
        "quote it: '3.10'",
        f"{path}:4:16: sql › encrypt: expected true or false, got a whole number (1)",
        f"{path}:5:10: route53: expected a mapping, got a list",
    ]


def test_yaml_syntax_and_duplicate_keys_are_config_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "environments:\n  qa: {}\n  qa: {}\n")
    assert issues_of(path) == [f"{path}:3:3: duplicate key 'qa' (first at line 2)"]
    broken = write(tmp_path, "environments: [\n", name="broken.yaml")
    assert issues_of(broken)[0].startswith(f"{broken}:2:1: YAML syntax:")


def test_kprov_config_is_read_and_an_explicit_path_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from_env = write(tmp_path, "default_environment: sandbox\n", name="env.yaml")
    explicit = write(tmp_path, "pos_domain: pos.example.com\n", name="explicit.yaml")
    monkeypatch.setenv("KPROV_CONFIG", str(from_env))
    assert load_config(None).path == str(from_env)
    assert load_config(explicit).pos_domain == "pos.example.com"


def test_a_named_config_file_that_is_missing_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KPROV_CONFIG", str(tmp_path / "nope.yaml"))
    lines = issues_of(tmp_path / "nope.yaml")
    assert lines == [f"{tmp_path / 'nope.yaml'}:1:1: cannot read file: No such file or directory"]
    with pytest.raises(ConfigError):
        load_config(None)


def test_the_user_config_file_is_found_under_xdg_config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config_dir() == tmp_path / "kprov"
    assert config_path() is None
    (tmp_path / "kprov").mkdir()
    write(tmp_path / "kprov", "pos_domain: pos.example.com\n")
    assert load_config(None).path == str(tmp_path / "kprov" / "config.yaml")


def test_directories_follow_xdg_and_the_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.delenv("KPROV_STATE_DIR")
    assert config_dir() == tmp_path / ".config" / "kprov"
    assert state_dir() == tmp_path / ".local" / "state" / "kprov"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/is/ignored")
    assert state_dir() == tmp_path / ".local" / "state" / "kprov"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert state_dir() == tmp_path / "xdg" / "kprov"
    monkeypatch.setenv("KPROV_STATE_DIR", str(tmp_path / "mine"))
    assert state_dir() == tmp_path / "mine"


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="0123456789abc -\n\u0663", min_size=0, max_size=14))
def test_account_ids_are_exactly_twelve_digits(tmp_path_factory: pytest.TempPathFactory, candidate: str) -> None:
    folder = tmp_path_factory.mktemp("cfg")
    path = write(folder, f'environments:\n  qa: {{account_id: "{candidate}", region: us-east-1, purposes: [qa]}}\n')
    if len(candidate) == 12 and all(c in "0123456789" for c in candidate):
        assert isinstance(load_config(path), Config)
    else:
        with pytest.raises(ConfigError, match="is not an AWS account id"):
            load_config(path)


# --- hostile config files: exit 3 at a position, never a crash or a hang (issue 14, items 8 and 9) ----------


def test_a_deeply_nested_config_is_refused_at_its_position(tmp_path: Path) -> None:
    path = write(tmp_path, "environments:\n  qa: " + deep_flow(480))
    assert issues_of(path) == [f"{path}:2:69: nested more than {MAX_DEPTH} levels deep"]


@pytest.mark.parametrize("hostile", ["fifo", "dev-zero"])
def test_a_config_that_is_not_a_regular_file_is_refused(tmp_path: Path, hostile: str) -> None:
    path = fifo(tmp_path, "config.yaml") if hostile == "fifo" else DEV_ZERO
    what = "a FIFO" if hostile == "fifo" else "a character device"
    assert issues_of(path) == [f"{path}:1:1: cannot read file: not a regular file ({what})"]
    done = kprov("--config", str(path), "lock", "list")
    assert done.returncode == ExitCode.INVALID, done.stderr
    assert f"{path}:1:1: cannot read file: not a regular file ({what})" in done.stderr


def test_yaml_1_1_spellings_are_refused_as_in_checklists_and_naming_rules(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        environments:
          QA: {account_id: "111111111111", region: us-east-1, purposes: [qa]}
          training: {sandbox: true, protected: on}
        sql: {encrypt: yes, trust_server_certificate: False, timeout_seconds: 017}
        vault: {backend: command, command: [op, "{name}"], timeout: 1_000}
        """)
    assert issues_of(path) == [
        f"{path}:2:3: environments › QA: 'QA' is not an environment name (lower-case letters, digits and hyphens, "
        "starting with a letter)",
        f"{path}:3:40: environments › training › protected: expected true or false, got on (YAML reads it as true); "
        "write true or false",
        f"{path}:4:16: sql › encrypt: expected true or false, got yes (YAML reads it as true); write true or false",
        f"{path}:4:47: sql › trust_server_certificate: expected true or false, got False (YAML reads it as false); "
        "write true or false",
        f"{path}:4:71: sql › timeout_seconds: expected a whole number from 1 to 600 in decimal digits, got 017 "
        "(YAML reads it as 15)",
        f"{path}:5:61: vault › timeout: expected a whole number from 1 to 3600 in decimal digits, got 1_000 "
        "(YAML reads it as 1000)",
    ]


def test_the_access_key_grace_is_a_setting_only_when_written(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    rotation = load_config(None).settings()["rotation"]
    assert isinstance(rotation, dict) and "access_key_grace_days" not in rotation  # the rotation's answer wins
    path.write_text("rotation: {access_key_grace_days: 14}\n")
    assert load_config(path).settings()["rotation"] == {"max_age_days": 90, "access_key_grace_days": 14}
    path.write_text("rotation: {access_key_grace_days: -1}\n")
    with pytest.raises(ConfigError):
        load_config(path)
