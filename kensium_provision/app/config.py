"""The kprov config file (design.md section 3): environments and settings, strictly validated.

Pure: stdlib, `yamlio` and `errors` only. Without any config file kprov runs in the embedded sandbox.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from difflib import get_close_matches
from pathlib import Path

from kensium_provision.errors import ChecklistError, ConfigError, InputError, Issue
from kensium_provision.guards import (
    NON_PRODUCTION_PURPOSES,
    PRODUCTION_PURPOSES,
    PURPOSES,
    SANDBOX_ACCOUNT_ID,
    Environment,
)
from kensium_provision.yamlio import Loc, Node, load_file

__all__ = [
    "DEFAULT_REGION",
    "SANDBOX",
    "SANDBOX_ENVIRONMENT",
    "ClientSettings",
    "Config",
    "Environment",
    "JournalSettings",
    "LockSettings",
    "RabbitMqSettings",
    "Route53Settings",
    "SqlSettings",
    "VaultSettings",
    "config_dir",
    "config_path",
    "load_config",
    "state_dir",
]

DEFAULT_REGION = "us-east-1"
SANDBOX = "sandbox"
SANDBOX_ENVIRONMENT = Environment(name=SANDBOX, account_id=SANDBOX_ACCOUNT_ID, region=DEFAULT_REGION,
                                  sandbox=True, purposes=PURPOSES)


@dataclass(frozen=True, slots=True, kw_only=True)
class VaultSettings:
    """Where generated credentials go (design.md section 6)."""

    backend: str = "secretsmanager"  # secretsmanager | command | manual
    command: tuple[str, ...] = ()  # argv of a password-manager CLI; the secret goes on its stdin
    fetch_command: tuple[str, ...] = ()  # argv printing a stored secret on stdout
    timeout: int = 60  # seconds a password-manager command may take

    def settings(self) -> dict[str, object]:
        """What `vault.make_vault` takes: the command keys only for the command backend."""
        if self.backend != "command":
            return {"backend": self.backend}
        found: dict[str, object] = {"backend": self.backend, "command": list(self.command), "timeout": self.timeout}
        if self.fetch_command:
            found["fetch_command"] = list(self.fetch_command)
        return found


@dataclass(frozen=True, slots=True, kw_only=True)
class LockSettings:
    backend: str = "local"  # local | dynamodb
    table: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientSettings:
    """Where the client records live: one DynamoDB table, created on demand by the first install."""

    table: str = "kprov-clients"


@dataclass(frozen=True, slots=True, kw_only=True)
class RabbitMqSettings:
    base_url: str = ""  # overrides the broker console URL from mq.describe_broker


@dataclass(frozen=True, slots=True, kw_only=True)
class SqlSettings:
    """How kprov reaches SQL Server; with no driver, SQL steps become manual steps with the script."""

    driver: str = ""
    encrypt: bool = True
    trust_server_certificate: bool = False
    timeout_seconds: int = 30

    @property
    def configured(self) -> bool:
        return bool(self.driver)


@dataclass(frozen=True, slots=True, kw_only=True)
class Route53Settings:
    hosted_zone_id: str = ""
    domain: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalSettings:
    cloudwatch_log_group: str = ""  # also ship journal records there when set


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """A loaded config: the environments (the sandbox always among them) and the settings."""

    path: str  # the file read; "" for the built-in default
    environments: tuple[Environment, ...]
    default_environment: str = SANDBOX
    vault: VaultSettings = field(default_factory=VaultSettings)
    locks: LockSettings = field(default_factory=LockSettings)
    clients: ClientSettings = field(default_factory=ClientSettings)
    rabbitmq: RabbitMqSettings = field(default_factory=RabbitMqSettings)
    sql: SqlSettings = field(default_factory=SqlSettings)
    route53: Route53Settings = field(default_factory=Route53Settings)
    pos_domain: str = ""
    journal: JournalSettings = field(default_factory=JournalSettings)

    def environment(self, name: str | None = None) -> Environment:
        """The named environment (`--env`), else the default one; an unknown name is an input error."""
        wanted = name or self.default_environment
        for env in self.environments:
            if env.name == wanted:
                return env
        known = ", ".join(e.name for e in self.environments)
        where = f" in {self.path}" if self.path else " (no config file was found)"
        raise InputError(f"unknown environment {wanted!r}{where}; configured: {known}")

    def settings(self) -> dict[str, object]:
        """Plain values for `Runtime.settings` (step types read rabbitmq, sql, route53 from here)."""
        return {
            "rabbitmq": {"base_url": self.rabbitmq.base_url},
            "sql": {"driver": self.sql.driver, "encrypt": self.sql.encrypt,
                    "trust_server_certificate": self.sql.trust_server_certificate,
                    "timeout_seconds": self.sql.timeout_seconds},
            "route53": {"hosted_zone_id": self.route53.hosted_zone_id, "domain": self.route53.domain},
            "pos_domain": self.pos_domain,
            "vault": self.vault.settings(),
            "locks": {"backend": self.locks.backend, "table": self.locks.table},
            "clients": {"table": self.clients.table},
            "journal": {"cloudwatch_log_group": self.journal.cloudwatch_log_group},
        }


# -- where things live ---------------------------------------------------------------------------------


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable, "")
    # The XDG spec says relative values are invalid and must be ignored.
    return Path(value) if value and Path(value).is_absolute() else Path.home() / fallback


def config_dir() -> Path:
    """`$XDG_CONFIG_HOME/kprov`, else `~/.config/kprov`."""
    return _xdg("XDG_CONFIG_HOME", ".config") / "kprov"


def state_dir() -> Path:
    """`KPROV_STATE_DIR`, else `$XDG_STATE_HOME/kprov`, else `~/.local/state/kprov` (journal, sandbox, locks)."""
    override = os.environ.get("KPROV_STATE_DIR", "")
    return Path(override) if override else _xdg("XDG_STATE_HOME", ".local/state") / "kprov"


def config_path(path: Path | None = None) -> Path | None:
    """The config file to read: `--config`, else `KPROV_CONFIG`, else the user's, if it exists."""
    if path is not None:
        return path
    override = os.environ.get("KPROV_CONFIG", "")
    if override:
        return Path(override)  # named explicitly: a missing file is an error, not the sandbox
    default = config_dir() / "config.yaml"
    return default if default.is_file() else None


def load_config(path: Path | None = None) -> Config:
    """Read and validate the config (see `config_path`); every problem is reported at once (exit 3)."""
    chosen = config_path(path)
    if chosen is None:
        return Config(path="", environments=(SANDBOX_ENVIRONMENT,))
    try:
        root = load_file(chosen)
    except ChecklistError as exc:
        raise ConfigError(exc.issues) from None
    reader = _Reader()
    config = _read_config(reader, root, str(chosen))
    if reader.issues or config is None:
        raise ConfigError(reader.issues)
    return config


# -- validation ----------------------------------------------------------------------------------------

# Matched with fullmatch; [0-9], not \d, which also matches non-ASCII digits.
_ACCOUNT = re.compile(r"[0-9]{12}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")
_ENV_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
_PROFILE = re.compile(r"[A-Za-z0-9_.+@=,/-]{1,128}")
_URL = re.compile(r"https?://[^\s/?#]+(/\S*)?")
_DOMAIN = re.compile(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}")
_ZONE = re.compile(r"Z[A-Z0-9]{1,31}")
_TABLE = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_LOG_GROUP = re.compile(r"[A-Za-z0-9_./#-]{1,512}")
_KINDS = {"str": "a string", "int": "a whole number", "float": "a number", "bool": "true or false",
          "null": "nothing", "timestamp": "a date", "map": "a mapping", "seq": "a list"}


def _what(node: Node) -> str:
    if node.kind in ("map", "seq", "null"):
        return _KINDS[node.kind]
    return repr(node.text) if node.kind == "bool" else f"{_KINDS[node.kind]} ({node.text})"


def _join(crumb: str, key: str) -> str:
    return f"{crumb} › {key}" if crumb else key


class _Reader:
    """Collects every issue of the file instead of stopping at the first."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def add(self, loc: Loc, crumb: str, message: str) -> None:
        self.issues.append(loc.issue(crumb, message))

    def mapping(self, node: Node, crumb: str, keys: tuple[str, ...]) -> dict[str, Node]:
        """The known keys of a mapping; unknown keys are issues (a typo must never be ignored)."""
        if node.kind != "map":
            self.add(node.loc, crumb, f"expected a mapping, got {_what(node)}")
            return {}
        result: dict[str, Node] = {}
        for key, value in node.items():
            if key in keys:
                result[key] = value
                continue
            close = get_close_matches(key, keys, n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; allowed: {', '.join(keys)}"
            self.add(node.key_locs[key], _join(crumb, key), f"unknown key {key!r}{hint}")
        return result

    def string(self, node: Node, crumb: str, *, pattern: re.Pattern[str] | None = None, expect: str = "",
               choices: tuple[str, ...] = ()) -> str | None:
        if node.kind != "str":
            hint = f"; quote it: '{node.text}'" if node.kind in ("int", "float", "bool", "timestamp") else ""
            self.add(node.loc, crumb, f"expected a string, got {_what(node)}{hint}")
            return None
        value = str(node.value)
        if choices and value not in choices:
            self.add(node.loc, crumb, f"{value!r} is not one of: {', '.join(choices)}")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.add(node.loc, crumb, f"{value!r} is not {expect}")
            return None
        return value

    def boolean(self, node: Node, crumb: str) -> bool | None:
        # Only true/false: YAML 1.1 also reads yes/no/on/off as booleans, which reads too loosely here.
        if node.kind != "bool" or node.text not in ("true", "false"):
            self.add(node.loc, crumb, f"expected true or false, got {_what(node)}")
            return None
        return bool(node.value)

    def integer(self, node: Node, crumb: str, low: int, high: int) -> int | None:
        if node.kind != "int" or not isinstance(node.value, int) or not low <= node.value <= high:
            self.add(node.loc, crumb, f"expected a whole number from {low} to {high}, got {_what(node)}")
            return None
        return node.value

    def strings(self, node: Node, crumb: str) -> tuple[str, ...] | None:
        if node.kind != "seq":
            self.add(node.loc, crumb, f"expected a list of strings, got {_what(node)}")
            return None
        assert isinstance(node.value, list)
        items = [self.string(item, f"{crumb}[{i}]") for i, item in enumerate(node.value)]
        return None if any(i is None for i in items) else tuple(i for i in items if i is not None)


_TOP_KEYS = ("environments", "default_environment", "vault", "locks", "clients", "rabbitmq", "sql",
             "route53", "pos_domain", "journal")
_ENV_KEYS = ("sandbox", "account_id", "region", "profile", "purposes", "protected", "endpoint_url")


def _read_config(reader: _Reader, root: Node, path: str) -> Config | None:
    top = reader.mapping(root, "", _TOP_KEYS)
    environments: dict[str, Environment] = {}
    names = [SANDBOX]
    if "environments" in top:
        environments = _read_environments(reader, top["environments"])
        if top["environments"].kind == "map":
            names += [n for n, _ in top["environments"].items() if n != SANDBOX]
    if SANDBOX not in environments:
        environments = {SANDBOX: SANDBOX_ENVIRONMENT, **environments}
    default = SANDBOX
    if "default_environment" in top:
        node = top["default_environment"]
        name = reader.string(node, "default_environment")
        if name is not None and name not in names:
            reader.add(node.loc, "default_environment",
                       f"{name!r} is not a configured environment; configured: {', '.join(names)}")
        default = name or default

    vault = _read_vault(reader, top["vault"]) if "vault" in top else VaultSettings()
    locks = _read_locks(reader, top["locks"]) if "locks" in top else LockSettings()
    clients = _read_clients(reader, top["clients"]) if "clients" in top else ClientSettings()
    if locks.table and locks.table == clients.table:  # one table cannot hold both kinds of item
        reader.add(top["locks"].loc, "locks › table", f"{locks.table!r} is the client records' table "
                   "(clients › table); give the locks their own table")
    rabbitmq = _read_rabbitmq(reader, top["rabbitmq"]) if "rabbitmq" in top else RabbitMqSettings()
    sql = _read_sql(reader, top["sql"]) if "sql" in top else SqlSettings()
    route53 = _read_route53(reader, top["route53"]) if "route53" in top else Route53Settings()
    journal = _read_journal(reader, top["journal"]) if "journal" in top else JournalSettings()
    pos_domain = ""
    if "pos_domain" in top:
        pos_domain = reader.string(top["pos_domain"], "pos_domain", pattern=_DOMAIN, expect="a DNS domain name") or ""
    if reader.issues:
        return None
    return Config(path=path, environments=tuple(environments.values()), default_environment=default,
                  vault=vault, locks=locks, clients=clients, rabbitmq=rabbitmq, sql=sql, route53=route53,
                  pos_domain=pos_domain, journal=journal)


def _read_environments(reader: _Reader, node: Node) -> dict[str, Environment]:
    crumb = "environments"
    if node.kind != "map":
        reader.add(node.loc, crumb, f"expected a mapping of environment names, got {_what(node)}")
        return {}
    result: dict[str, Environment] = {}
    accounts: dict[str, tuple[str, frozenset[str]]] = {}  # account id -> (first env, its purposes)
    for name, env_node in node.items():
        here = _join(crumb, name)
        if not _ENV_NAME.fullmatch(name):
            reader.add(node.key_locs[name], here,
                       "an environment name is lower-case letters, digits and hyphens, starting with a letter")
            continue
        env = _read_environment(reader, name, env_node, here)
        if env is None:
            continue
        result[name] = env
        if env.sandbox:
            continue
        # The POS Production account never hosts QA, development or demos: not in one environment,
        # and not across two environments naming the same account either.
        mine = frozenset(env.purposes)
        first = accounts.setdefault(env.account_id, (name, mine))
        together = mine | first[1]
        if first[0] != name and together & PRODUCTION_PURPOSES and together & NON_PRODUCTION_PURPOSES:
            loc = env_node.value["account_id"].loc if isinstance(env_node.value, dict) else env_node.loc
            reader.add(loc, _join(here, "account_id"),
                       f"account {env.account_id} is also environment {first[0]!r}; an account hosting "
                       "production or staging must never host qa, development or demo")
    return result


def _read_environment(reader: _Reader, name: str, node: Node, crumb: str) -> Environment | None:
    keys = reader.mapping(node, crumb, _ENV_KEYS)
    if node.kind != "map":
        return None
    before = len(reader.issues)
    sandbox = False
    if "sandbox" in keys:
        sandbox = bool(reader.boolean(keys["sandbox"], _join(crumb, "sandbox")))
    if name == SANDBOX and not sandbox:
        reader.add(node.loc, crumb, "the name 'sandbox' is reserved for the embedded sandbox: add sandbox: true "
                                    "or choose another name")
        return None
    account_id = SANDBOX_ACCOUNT_ID if sandbox else ""
    if "account_id" in keys:
        account_id = _read_account(reader, keys["account_id"], _join(crumb, "account_id")) or account_id
    elif not sandbox:
        reader.add(node.loc, crumb, "missing required key 'account_id' (the 12-digit AWS account id, quoted)")
    region = DEFAULT_REGION if sandbox else ""
    if "region" in keys:
        region = reader.string(keys["region"], _join(crumb, "region"), pattern=_REGION,
                               expect="an AWS region name like us-east-1") or region
    elif not sandbox:
        reader.add(node.loc, crumb, "missing required key 'region' (for example us-east-1)")
    profile = ""
    if "profile" in keys:
        if sandbox:
            reader.add(keys["profile"].loc, _join(crumb, "profile"),
                       "a sandbox environment never uses AWS credentials; remove profile")
        else:
            profile = reader.string(keys["profile"], _join(crumb, "profile"), pattern=_PROFILE,
                                    expect="an AWS profile name") or ""
    purposes: tuple[str, ...] = PURPOSES if sandbox else ()
    if "purposes" in keys:
        purposes = _read_purposes(reader, keys["purposes"], _join(crumb, "purposes")) or purposes
    elif not sandbox:
        reader.add(node.loc, crumb, f"missing required key 'purposes' (some of: {', '.join(PURPOSES)})")
    protected = False
    if "protected" in keys:
        protected = bool(reader.boolean(keys["protected"], _join(crumb, "protected")))
    endpoint_url = ""
    if "endpoint_url" in keys:
        endpoint_url = reader.string(keys["endpoint_url"], _join(crumb, "endpoint_url"), pattern=_URL,
                                     expect="an http:// or https:// URL") or ""
    if len(reader.issues) > before:
        return None
    return Environment(name=name, account_id=account_id, region=region, sandbox=sandbox, profile=profile,
                       purposes=purposes, protected=protected, endpoint_url=endpoint_url)


def _read_account(reader: _Reader, node: Node, crumb: str) -> str | None:
    if node.kind in ("int", "float"):
        # An unquoted id is a YAML number: leading zeros vanish (and 0-prefixed ids read as octal).
        reader.add(node.loc, crumb, f'an account id must be quoted: write "{node.text}" (unquoted, YAML reads a '
                                    "number and drops leading zeros)")
        return None
    return reader.string(node, crumb, pattern=_ACCOUNT, expect="an AWS account id (exactly 12 digits)")


def _read_purposes(reader: _Reader, node: Node, crumb: str) -> tuple[str, ...] | None:
    values = reader.strings(node, crumb)
    if values is None:
        return None
    assert isinstance(node.value, list)
    good = True
    for i, (item, value) in enumerate(zip(node.value, values, strict=True)):
        if value not in PURPOSES:
            reader.add(item.loc, f"{crumb}[{i}]", f"{value!r} is not a purpose; purposes: {', '.join(PURPOSES)}")
            good = False
    chosen = set(values)
    if good and chosen & PRODUCTION_PURPOSES and chosen & NON_PRODUCTION_PURPOSES:
        reader.add(node.loc, crumb, "production and staging live only in the POS Production account, which never "
                                    "hosts qa, development or demo: split them into two environments")
        good = False
    if good and not values:
        reader.add(node.loc, crumb, f"list at least one purpose ({', '.join(PURPOSES)})")
        good = False
    return tuple(dict.fromkeys(values)) if good else None


def _read_vault(reader: _Reader, node: Node) -> VaultSettings:
    crumb = "vault"
    keys = reader.mapping(node, crumb, ("backend", "command", "fetch_command", "timeout"))
    backend = "secretsmanager"
    if "backend" in keys:
        backend = reader.string(keys["backend"], _join(crumb, "backend"),
                                choices=("secretsmanager", "command", "manual")) or backend
    argvs: dict[str, tuple[str, ...]] = {}
    timeout = 60
    for key in ("command", "fetch_command", "timeout"):
        if key not in keys:
            continue
        here = _join(crumb, key)
        if backend != "command":
            reader.add(keys[key].loc, here, f"{key} is used only with backend: command")
        elif key == "timeout":
            timeout = reader.integer(keys[key], here, 1, 3600) or timeout
        else:
            argv = reader.strings(keys[key], here)
            if argv is not None and not any("{name}" in part for part in argv):
                reader.add(keys[key].loc, here, "put {name} where the password manager keeps the entry, e.g. "
                                                "[op, item, create, --title, \"{name}\"]")
            argvs[key] = argv or ()
    if backend == "command" and "command" not in keys:
        reader.add(node.loc, crumb, "backend: command needs command: [program, args...] (the secret goes on stdin)")
    return VaultSettings(backend=backend, command=argvs.get("command", ()),
                         fetch_command=argvs.get("fetch_command", ()), timeout=timeout)


def _read_locks(reader: _Reader, node: Node) -> LockSettings:
    keys = reader.mapping(node, "locks", ("backend", "table"))
    backend = "local"
    if "backend" in keys:
        backend = reader.string(keys["backend"], "locks › backend", choices=("local", "dynamodb")) or backend
    table = ""
    if "table" in keys and backend != "dynamodb":
        reader.add(keys["table"].loc, "locks › table", "table is used only with backend: dynamodb")
    elif "table" in keys:
        table = reader.string(keys["table"], "locks › table", pattern=_TABLE, expect="a DynamoDB table name") or ""
    elif backend == "dynamodb":
        reader.add(node.loc, "locks", "backend: dynamodb needs table: <DynamoDB table name>")
    return LockSettings(backend=backend, table=table)


def _read_clients(reader: _Reader, node: Node) -> ClientSettings:
    keys = reader.mapping(node, "clients", ("table",))
    if "table" not in keys:
        return ClientSettings()
    table = reader.string(keys["table"], "clients › table", pattern=_TABLE, expect="a DynamoDB table name")
    return ClientSettings(table=table) if table else ClientSettings()


def _read_rabbitmq(reader: _Reader, node: Node) -> RabbitMqSettings:
    keys = reader.mapping(node, "rabbitmq", ("base_url",))
    url = ""
    if "base_url" in keys:
        url = reader.string(keys["base_url"], "rabbitmq › base_url", pattern=_URL,
                            expect="an http:// or https:// URL") or ""
    return RabbitMqSettings(base_url=url)


def _read_sql(reader: _Reader, node: Node) -> SqlSettings:
    keys = reader.mapping(node, "sql", ("driver", "encrypt", "trust_server_certificate", "timeout_seconds"))
    values: dict[str, object] = {}
    if "driver" in keys:
        values["driver"] = reader.string(keys["driver"], "sql › driver") or ""
    for key in ("encrypt", "trust_server_certificate"):
        if key in keys:
            flag = reader.boolean(keys[key], f"sql › {key}")
            if flag is not None:
                values[key] = flag
    if "timeout_seconds" in keys:
        timeout = reader.integer(keys["timeout_seconds"], "sql › timeout_seconds", 1, 600)
        if timeout is not None:
            values["timeout_seconds"] = timeout
    return SqlSettings(**values)  # type: ignore[arg-type]


def _read_route53(reader: _Reader, node: Node) -> Route53Settings:
    keys = reader.mapping(node, "route53", ("hosted_zone_id", "domain"))
    zone = domain = ""
    if "hosted_zone_id" in keys:
        zone = reader.string(keys["hosted_zone_id"], "route53 › hosted_zone_id", pattern=_ZONE,
                             expect="a hosted zone id like Z0123456789ABC") or ""
    if "domain" in keys:
        domain = reader.string(keys["domain"], "route53 › domain", pattern=_DOMAIN, expect="a DNS domain name") or ""
    return Route53Settings(hosted_zone_id=zone, domain=domain)


def _read_journal(reader: _Reader, node: Node) -> JournalSettings:
    keys = reader.mapping(node, "journal", ("cloudwatch_log_group",))
    group = ""
    if "cloudwatch_log_group" in keys:
        group = reader.string(keys["cloudwatch_log_group"], "journal › cloudwatch_log_group", pattern=_LOG_GROUP,
                              expect="a CloudWatch Logs group name") or ""
    return JournalSettings(cloudwatch_log_group=group)

