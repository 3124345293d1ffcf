"""The kprov config file (design.md section 3): environments and settings, strictly validated.

The file's schema is data (`CONFIG`, read by `yamlschema.Reader` like every kprov YAML file); what
one field cannot say (a sandbox needs no account, a production account never hosts QA) is checked
after it, and every problem is reported at once. Without any config file kprov runs in the embedded
sandbox.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from kensium_provision.errors import ChecklistError, ConfigError, InputError
from kensium_provision.guards import (
    NON_PRODUCTION_PURPOSES,
    PRODUCTION_PURPOSES,
    PURPOSES,
    SANDBOX_ACCOUNT_ID,
    Environment,
)
from kensium_provision.steps.capacity import DEFAULT_TENANTS_PER_HOST
from kensium_provision.yamlio import Node, load_file
from kensium_provision.yamlschema import Bool, Field, Int, Map, MapOf, Reader, Record, Seq, Str

_S = TypeVar("_S")

__all__ = [
    "DEFAULT_REGION",
    "SANDBOX",
    "SANDBOX_ENVIRONMENT",
    "CapacitySettings",
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

    backend: str = "secretsmanager"  # secretsmanager | command | keepassxc | pass | manual
    command: tuple[str, ...] = ()  # argv of a password-manager CLI; the secret goes on its stdin
    fetch_command: tuple[str, ...] = ()  # argv printing a stored secret on stdout
    update_command: tuple[str, ...] = ()  # argv replacing a stored secret with the one on stdin (rotation)
    timeout: int = 60  # seconds a password-manager program may take
    database: str = ""  # keepassxc: the .kdbx file
    key_file: str = ""  # keepassxc: its key file, if it has one
    password: bool = True  # keepassxc: unlocked with a password too (asked at a hidden prompt)
    store: str = ""  # pass: the store directory ("": PASSWORD_STORE_DIR, else ~/.password-store)

    def settings(self) -> dict[str, object]:
        """What `vault.make_vault` takes: each backend's own keys only."""
        if self.backend == "keepassxc":
            return {"backend": self.backend, "database": self.database, "password": self.password,
                    "timeout": self.timeout, **({"key_file": self.key_file} if self.key_file else {})}
        if self.backend == "pass":
            return {"backend": self.backend, "timeout": self.timeout, **({"store": self.store} if self.store else {})}
        if self.backend != "command":
            return {"backend": self.backend}
        found: dict[str, object] = {"backend": self.backend, "command": list(self.command), "timeout": self.timeout}
        for key in ("fetch_command", "update_command"):
            if getattr(self, key):
                found[key] = list(getattr(self, key))
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
class RotationSettings:
    """When a credential is due for rotation: `check` and `kprov fleet` report older ones (issue 18.2)."""

    max_age_days: int = 90
    # How long a replaced IAM access key stays (inactive) before `kprov rotate ORG_ID iam --credential old-key`
    # deletes it; None: the rotation's own answer (default 7).
    access_key_grace_days: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CapacitySettings:
    """Limits no one documents, kept as data so they are easy to change (issue 18.4)."""

    # [INFER] Neither Kensium's pages (domain.md) nor AWS say how many client tenants one shared POS host may
    # serve; the default is a guess (steps.capacity, its one home), to be confirmed with the Kensium services
    # team. `kprov fleet` shows each host's clients against it and `install-client` offers only a host under it.
    tenants_per_host: int = DEFAULT_TENANTS_PER_HOST


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
    anchor_key: str = ""  # password-manager entry of the HMAC key anchoring the ledger (journal.verify)


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
    rotation: RotationSettings = field(default_factory=RotationSettings)
    capacity: CapacitySettings = field(default_factory=CapacitySettings)
    approval_required: tuple[str, ...] = ()  # environments whose applies need a saved plan another identity approved

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
            "rotation": {"max_age_days": self.rotation.max_age_days,
                         **({"access_key_grace_days": self.rotation.access_key_grace_days}
                            if self.rotation.access_key_grace_days is not None else {})},
            "journal": {"cloudwatch_log_group": self.journal.cloudwatch_log_group},
            "capacity": {"tenants_per_host": self.capacity.tenants_per_host},
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
    reader = Reader()
    config = _read_config(reader, root, str(chosen))
    reader.fail(ConfigError)
    if config is None:  # pragma: no cover - a None config always comes with issues
        raise ConfigError([root.loc.issue("", "not a kprov config")])
    return config


# -- the schema -------------------------------------------------------------------------------------

# Patterns are matched in full; [0-9], not \d, which also matches non-ASCII digits.
_ACCOUNT = Str(pattern=r"[0-9]{12}", expect="an AWS account id (exactly 12 digits)")
_REGION = Str(pattern=r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}", expect="an AWS region name like us-east-1")
_ENV_NAME = Str(pattern=r"[a-z][a-z0-9-]{0,31}",
                expect="an environment name (lower-case letters, digits and hyphens, starting with a letter)")
_PROFILE = Str(pattern=r"[A-Za-z0-9_.+@=,/-]{1,128}", expect="an AWS profile name")
_URL = Str(pattern=r"https?://[^\s/?#]+(/\S*)?", expect="an http:// or https:// URL")
_DOMAIN = Str(pattern=r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}",
              expect="a DNS domain name")
_TABLE = Str(pattern=r"[A-Za-z0-9_.-]{3,255}", expect="a DynamoDB table name")

ENVIRONMENT = Map((
    Field("sandbox", Bool(), doc="The embedded sandbox (moto on 127.0.0.1) instead of AWS."),
    Field("account_id", _ACCOUNT, doc="The 12-digit AWS account id, quoted; required unless sandbox."),
    Field("region", _REGION, doc="Required unless sandbox."),
    Field("profile", _PROFILE, doc="An AWS profile; empty: boto3's default credential chain. Never with sandbox."),
    Field("purposes", Seq(Str(choices=PURPOSES), nonempty=f"list at least one purpose ({', '.join(PURPOSES)})"),
          doc="What the account may host; production and staging never together with qa, development or demo."),
    Field("protected", Bool(), doc="A banner, and the operator types the target before the first change."),
    Field("approval", Str(choices=("required", "none")),
          doc="required: an apply runs only a saved plan (--dry-run --out) that another identity approved "
              "(kprov approve PLAN)."),
    Field("endpoint_url", _URL, doc="A local endpoint instead of AWS."),
    Field("allow_federated_users", Bool(), doc="Accept sts GetFederationToken credentials (federated-user ARNs), "
                                              "which cannot tell whether root minted them; default no."),
), name="environment")
VAULT = Map((
    Field("backend", Str(choices=("secretsmanager", "command", "keepassxc", "pass", "manual")),
          doc="Where generated credentials go."),
    Field("command", Seq(Str()), doc="backend: command: argv of a password-manager CLI; {name} is the entry; "
                                     "the secret goes on its stdin."),
    Field("fetch_command", Seq(Str()), doc="backend: command: argv printing a stored secret on stdout."),
    Field("update_command", Seq(Str()), doc="backend: command: argv replacing a stored secret with the one on its "
                                            "stdin (rotation)."),
    Field("timeout", Int(1, 3600), doc="backend: command, keepassxc or pass: seconds a program may take."),
    Field("database", Str(), doc="backend: keepassxc: the .kdbx database file."),
    Field("key_file", Str(), doc="backend: keepassxc: the database's key file, if it has one."),
    Field("password", Bool(), doc="backend: keepassxc: false when the key file alone unlocks the database "
                                  "(unattended runs); else the password is asked at a hidden prompt."),
    Field("store", Str(), doc="backend: pass: the password store (default PASSWORD_STORE_DIR, else "
                              "~/.password-store)."),
), name="vault")
LOCKS = Map((
    Field("backend", Str(choices=("local", "dynamodb"))),
    Field("table", _TABLE, doc="backend: dynamodb: the locks' table."),
), name="locks")
CLIENTS = Map((Field("table", _TABLE, doc="The client records' DynamoDB table."),), name="clients")
ROTATION = Map((Field("max_age_days", Int(1, 3650), doc="A credential older than this is due for rotation "
                                                        "(default 90)."),
                 Field("access_key_grace_days", Int(0, 3650),
                       doc="Days a replaced IAM access key stays inactive before `--credential old-key` deletes it "
                           "(default: the rotation's answer, 7).")), name="rotation")
CAPACITY = Map((Field("tenants_per_host", Int(1, 10000),
                       doc=f"Client tenants one shared POS host may serve (default {DEFAULT_TENANTS_PER_HOST}, a "
                           "guess [INFER] to confirm "
                           "with Kensium): `kprov fleet` shows each host against it, `install-client` offers only "
                           "a host under it."),), name="capacity")
RABBITMQ = Map((Field("base_url", _URL, doc="Overrides the broker console URL from mq.describe_broker."),),
               name="rabbitmq")
SQL = Map((
    Field("driver", Str(), doc="The ODBC driver; without one, SQL steps are scripts run by hand."),
    Field("encrypt", Bool()),
    Field("trust_server_certificate", Bool()),
    Field("timeout_seconds", Int(1, 600)),
), name="sql")
ROUTE53 = Map((
    Field("hosted_zone_id", Str(pattern=r"Z[A-Z0-9]{1,31}", expect="a hosted zone id like Z0123456789ABC")),
    Field("domain", _DOMAIN),
), name="route53")
JOURNAL = Map((Field("cloudwatch_log_group", Str(pattern=r"[A-Za-z0-9_./#-]{1,512}",
                                                 expect="a CloudWatch Logs group name"),
                     doc="Also ship journal records there."),
               Field("anchor_key", Str(pattern=r"[A-Za-z0-9_.-]{1,128}/[A-Za-z0-9_.-]{1,128}",
                                       expect="a password-manager entry, owner/credential"),
                     doc="The password-manager entry (owner/credential) holding the HMAC key that anchors "
                         "the journal's ledger; `kprov audit verify` checks it."),
               ), name="journal")
CONFIG = Map((
    Field("environments", MapOf(ENVIRONMENT, keys=_ENV_NAME), doc="Environments by name; sandbox is always there."),
    Field("default_environment", Str(), doc="Used without --env; default sandbox."),
    Field("vault", VAULT),
    Field("locks", LOCKS),
    Field("clients", CLIENTS),
    Field("rotation", ROTATION),
    Field("capacity", CAPACITY),
    Field("rabbitmq", RABBITMQ),
    Field("sql", SQL),
    Field("route53", ROUTE53),
    Field("pos_domain", _DOMAIN),
    Field("journal", JOURNAL),
), name="config")


# -- validation: what one field cannot say -------------------------------------------------------------


def _read_config(reader: Reader, root: Node, path: str) -> Config | None:
    top = reader.record(root, CONFIG, "")
    if top is None:
        return None
    environments: dict[str, Environment] = {SANDBOX: SANDBOX_ENVIRONMENT}
    envs_node = top.child("environments")
    if envs_node is not None:
        environments.update(_read_environments(reader, top, envs_node))
    default = top.text("default_environment") or SANDBOX
    names = [SANDBOX, *(n for n in (envs_node.mapping() if envs_node else {}) if n != SANDBOX)]
    if top.text("default_environment") and default not in names:
        reader.add(top.loc("default_environment"), "default_environment",
                   f"{default!r} is not a configured environment; configured: {', '.join(names)}")

    vault = _vault(reader, top.record("vault"))
    locks = _locks(reader, top.record("locks"))
    clients = _settings(ClientSettings, top.record("clients"))
    if locks.table and locks.table == clients.table:  # one table cannot hold both kinds of item
        reader.add(top.loc("locks"), "locks › table", f"{locks.table!r} is the client records' table "
                   "(clients › table); give the locks their own table")
    if reader.issues:
        return None
    return Config(path=path, environments=tuple(environments.values()), default_environment=default,
                  vault=vault, locks=locks, clients=clients,
                  rotation=_settings(RotationSettings, top.record("rotation")),
                  capacity=_settings(CapacitySettings, top.record("capacity")),
                  rabbitmq=_settings(RabbitMqSettings, top.record("rabbitmq")),
                  sql=_settings(SqlSettings, top.record("sql")),
                  route53=_settings(Route53Settings, top.record("route53")),
                  pos_domain=top.text("pos_domain"), journal=_settings(JournalSettings, top.record("journal")),
                  approval_required=_approval_required(top))


def _approval_required(top: Record) -> tuple[str, ...]:
    envs = top.get("environments")
    return tuple(name for name, env in envs.items() if isinstance(env, Record) and env.text("approval") == "required") \
        if isinstance(envs, dict) else ()


def _settings(kind: type[_S], record: Record | None) -> _S:
    """A settings record from the keys written (their names are the fields'); the others keep their defaults."""
    return kind(**record.present()) if record is not None else kind()


def _read_environments(reader: Reader, top: Record, node: Node) -> dict[str, Environment]:
    envs = top.get("environments")
    if not isinstance(envs, dict):
        return {}
    result: dict[str, Environment] = {}
    accounts: dict[str, tuple[str, frozenset[str]]] = {}  # account id -> (first env, its purposes)
    for name, record in envs.items():
        if not isinstance(record, Record):
            continue
        env = _read_environment(reader, name, record)
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
            reader.add(record.loc("account_id"), record.at("account_id"),
                       f"account {env.account_id} is also environment {first[0]!r}; an account hosting "
                       "production or staging must never host qa, development or demo")
    return result


def _read_environment(reader: Reader, name: str, env: Record) -> Environment | None:
    before = len(reader.issues)
    sandbox = env.flag("sandbox")
    if name == SANDBOX and not sandbox:
        reader.add(env.node.loc, env.crumb,
                   "the name 'sandbox' is reserved for the embedded sandbox: add sandbox: true or choose another name")
        return None
    if sandbox and "profile" in env:
        reader.add(env.loc("profile"), env.at("profile"),
                   "a sandbox environment never uses AWS credentials; remove profile")
    if not sandbox:
        for key, hint in (("account_id", "the 12-digit AWS account id, quoted"), ("region", "for example us-east-1"),
                          ("purposes", f"some of: {', '.join(PURPOSES)}")):
            if key not in env:
                reader.missing(env, key, hint)
    purposes = env.texts("purposes")
    written = env.child("purposes")
    every_one_valid = written is not None and len(purposes) == len(written.sequence())
    if every_one_valid and set(purposes) & PRODUCTION_PURPOSES and set(purposes) & NON_PRODUCTION_PURPOSES:
        reader.add(env.loc("purposes"), env.at("purposes"), "production and staging live only in the POS Production "
                   "account, which never hosts qa, development or demo: split them into two environments")
    if len(reader.issues) > before:
        return None
    return Environment(name=name, account_id=env.text("account_id") or (SANDBOX_ACCOUNT_ID if sandbox else ""),
                       region=env.text("region") or (DEFAULT_REGION if sandbox else ""), sandbox=sandbox,
                       profile=env.text("profile"), purposes=tuple(dict.fromkeys(purposes)) or PURPOSES,
                       protected=env.flag("protected"), endpoint_url=env.text("endpoint_url"),
                       allow_federated_users=env.flag("allow_federated_users"))


_VAULT_KEYS = {"command": ("command", "fetch_command", "update_command", "timeout"),
               "keepassxc": ("database", "key_file", "password", "timeout"), "pass": ("store", "timeout")}


def _vault(reader: Reader, vault: Record | None) -> VaultSettings:
    if vault is None:
        return VaultSettings()
    backend = vault.text("backend") or "secretsmanager"
    for key in ("command", "fetch_command", "update_command", "timeout", "database", "key_file", "password", "store"):
        if key in vault and key not in _VAULT_KEYS.get(backend, ()):
            owners = " or ".join(b for b, keys in _VAULT_KEYS.items() if key in keys)
            reader.add(vault.loc(key), vault.at(key), f"{key} is used only with backend: {owners}")
    timeout = vault.number("timeout") or 60
    if backend == "keepassxc":
        if "database" not in vault:
            reader.add(vault.node.loc, vault.crumb, "backend: keepassxc needs database: the .kdbx file")
        if "password" in vault and not vault.flag("password") and "key_file" not in vault:
            reader.add(vault.loc("password"), vault.at("password"), "password: false needs key_file: the database "
                                                                    "must be unlocked by something")
        return VaultSettings(backend=backend, database=vault.text("database"), key_file=vault.text("key_file"),
                             password=vault.flag("password") if "password" in vault else True, timeout=timeout)
    if backend == "pass":
        return VaultSettings(backend=backend, store=vault.text("store"), timeout=timeout)
    if backend != "command":
        return VaultSettings(backend=backend)
    for key in ("command", "fetch_command", "update_command"):
        argv = vault.texts(key)
        if key in vault and key in vault.values and not any("{name}" in part for part in argv):
            reader.add(vault.loc(key), vault.at(key), "put {name} where the password manager keeps the entry, e.g. "
                                                      '[op, item, create, --title, "{name}"]')
    if "command" not in vault:
        reader.add(vault.node.loc, vault.crumb,
                   "backend: command needs command: [program, args...] (the secret goes on stdin)")
    return VaultSettings(backend=backend, command=vault.texts("command"), fetch_command=vault.texts("fetch_command"),
                         update_command=vault.texts("update_command"), timeout=timeout)


def _locks(reader: Reader, locks: Record | None) -> LockSettings:
    if locks is None:
        return LockSettings()
    backend = locks.text("backend") or "local"
    if "table" in locks and backend != "dynamodb":
        reader.add(locks.loc("table"), locks.at("table"), "table is used only with backend: dynamodb")
        return LockSettings(backend=backend)
    if backend == "dynamodb" and "table" not in locks:
        reader.add(locks.node.loc, locks.crumb, "backend: dynamodb needs table: <DynamoDB table name>")
    return LockSettings(backend=backend, table=locks.text("table"))
