"""Builds one run from a request: config, environment, session, guards, journal, lock, vault, operator.

The CLI calls `execute`; this is where the injected world is assembled (design.md section 9), so
the CLI stays a thin parser and the engine never sees an adapter it did not get through Runtime.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from kensium_provision.errors import AbortedError, GuardError, InputError
from kensium_provision.model import Checklist, Mode
from kensium_provision.ui.render import manual_note, print_banner

__all__ = ["RunOutcome", "RunRequest", "execute", "list_shared", "new_run_id", "read_session", "step_digests"]


def new_run_id() -> str:
    """Sortable and unique: `20261128T071502Z-3f9a1c`."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRequest:
    """What the operator asked for, as parsed by the CLI."""

    checklist: Path
    mode: Mode
    env_name: str | None = None
    config_path: Path | None = None
    answers_path: Path | None = None
    preset: Mapping[str, object] = field(default_factory=dict)
    assume_yes: bool = False
    interactive: bool = True
    live: bool = True
    command: str = ""
    resume_run_id: str = ""
    recorded: Mapping[str, Mapping[str, object]] = field(default_factory=dict)  # resume: manual evidence
    from_record: str = ""  # check client: take the answers from this org's client record


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOutcome:
    report: Any  # engine.RunReport
    run_id: str
    environment: str
    account: str
    region: str
    caller: str
    api_calls: Mapping[str, object]
    journal_path: str


class _Hooks:
    """The guards and the lock, at the moments the engine asks for them."""

    def __init__(self, *, config: Any, env: Any, identity: Any, mode: Mode, console: Console, operator: Any,
                 locks: Any, run_id: str, journal: Any) -> None:
        self.config, self.env, self.identity, self.mode = config, env, identity, mode
        self.console, self.operator, self.locks, self.run_id, self.journal = console, operator, locks, run_id, journal
        self.lock: Any = None
        self.heartbeat: Any = None
        self.purpose_checked = ""

    def check_purpose(self, purpose: str) -> None:
        """The purpose guard (exit 4), journaled; once per purpose and run."""
        from kensium_provision.guards import check_purpose

        if purpose == self.purpose_checked:
            return
        try:
            check_purpose(self.env, purpose, others=self.config.environments)
        except GuardError as exc:
            self.journal.record("guard", guard="purpose", outcome="refused", message=str(exc))
            raise
        self.journal.record("guard", guard="purpose", outcome="ok", purpose=purpose)
        self.purpose_checked = purpose

    def target(self, checklist: Checklist, values: Mapping[str, object]) -> str:
        from kensium_provision.template import render

        text = {k: v for k, v in values.items() if isinstance(v, (str, int)) and not isinstance(v, bool)}
        return render(checklist.target, text) if checklist.target else f"{checklist.scope}:{checklist.id}"

    def after_inputs(self, checklist: Checklist, values: Mapping[str, object]) -> None:
        purpose = values.get("purpose")
        if isinstance(purpose, str):
            self.check_purpose(purpose)
        target = self.target(checklist, values)
        self.journal.record("target", target=target)
        rows = {"caller": f"{self.identity.display_name} ({self.identity.arn})", "account": self.identity.account,
                "region": self.env.region, "environment": self.env.name + (" (sandbox)" if self.env.sandbox else ""),
                "purpose": str(purpose or "-"), "target": target, "mode": self.mode.value}
        print_banner(self.console, rows, protected=self.env.protected)
        if self.mode is Mode.APPLY:
            from kensium_provision.records.locks import Heartbeat

            ttl = 900.0
            self.lock = self.locks.acquire(target, owner=self.identity.arn, run_id=self.run_id, ttl_seconds=ttl)
            self.journal.record("lock.acquired", target=target, lock_id=self.lock.lock_id)
            self.heartbeat = Heartbeat(self.locks, self.lock, interval=ttl / 3).__enter__()

    def before_first_change(self, checklist: Checklist, values: Mapping[str, object]) -> None:
        if not self.env.protected:
            return
        expected = str(values.get("org_id") or self.target(checklist, values).rsplit(":", 1)[-1])
        ok = self.operator.type_to_confirm(
            f"{self.env.name} is a protected environment (account {self.env.account_id}).", expected)
        self.journal.record("guard", guard="typed-confirmation", outcome="ok" if ok else "refused")
        if not ok:
            raise AbortedError(f"the typed confirmation did not match {expected!r}; nothing was changed")

    def release(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()
        if self.lock is not None:
            from kensium_provision.errors import LockError

            try:
                self.locks.release(self.lock)
                self.journal.record("lock.released", target=self.lock.target)
            except LockError as exc:  # lost while we ran: say so, but never hide the run's own error
                self.journal.record("lock.lost", target=self.lock.target, message=str(exc))


class _PurposeFirst:
    """The operator, with the purpose guard applied the moment the purpose is answered: a refused
    purpose exits 4 before any further question or live lookup, not after every input."""

    def __init__(self, inner: Any, hooks: _Hooks) -> None:
        self._inner, self._hooks = inner, hooks
        self.interactive = inner.interactive

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def ask(self, spec: Any, **kwargs: Any) -> object:
        value = self._inner.ask(spec, **kwargs)
        if spec.id == "purpose" and isinstance(value, str):
            self._hooks.check_purpose(value)
        return value


def _endpoint(env: Any, state_dir: Path) -> str:
    """The sandbox's endpoint, starting it on demand; "" for real AWS or a given AWS_ENDPOINT_URL."""
    if not env.sandbox or env.endpoint_url or os.environ.get("AWS_ENDPOINT_URL"):
        return ""
    moto_models = sys.modules.get("moto.core.models")
    if moto_models is not None and getattr(moto_models.botocore_stubber, "enabled", False):
        return ""  # tests running moto in-process
    from kensium_provision.sandbox import server as sandbox

    return str(sandbox.ensure_running(state_dir, region=env.region).endpoint)


def _sandbox_settings(env: Any, state_dir: Path, settings: dict[str, object]) -> dict[str, object]:
    """In the sandbox, client vhosts go to its RabbitMQ emulator, whose admin password it keeps in its Secrets Manager."""
    if not env.sandbox:
        return settings
    rabbit = dict(settings.get("rabbitmq") or {})  # type: ignore[call-overload]
    if not rabbit.get("base_url"):
        from kensium_provision.sandbox import server as sandbox

        info = sandbox.status(state_dir)
        if info is not None and info.rabbitmq_url:
            # The vault entry of the emulator's admin (kprov/sandbox/<entry>), found only if a step needs it.
            entry = info.rabbitmq_secret.removeprefix(f"kprov/{env.name}/")
            rabbit.update(base_url=info.rabbitmq_url, admin_user=sandbox.RABBITMQ_ADMIN_USER, admin_secret_entry=entry)
    return {**settings, "rabbitmq": rabbit, "sandbox": True}


def _settings(env: Any, state_dir: Path, settings: dict[str, object]) -> dict[str, object]:
    """The config's settings plus what steps may need to know of the environment (never credentials)."""
    found = {**settings, "environment": {"name": env.name, "purposes": list(env.purposes), "sandbox": env.sandbox}}
    return _sandbox_settings(env, state_dir, found)


def execute(request: RunRequest, console: Console) -> RunOutcome:
    """Load, guard, run and journal one checklist run."""
    from kensium_provision.app import config as config_module
    from kensium_provision.checklist.answers import AnswersOperator, check_answer_names, load_answers
    from kensium_provision.checklist.schema import load_checklist
    from kensium_provision.engine import run as engine
    from kensium_provision.guards import check_account, check_not_root
    from kensium_provision.naming import rules as naming

    cfg = config_module.load_config(request.config_path)
    env = cfg.environment(request.env_name)
    names = naming.load_rules()
    checklist = load_checklist(request.checklist, display=_display(request.checklist), rule_ids=names.ids)
    answers = load_answers(request.answers_path, checklist) if request.answers_path else None
    if answers is not None:  # names and choices checked before any AWS call
        check_answer_names(answers, checklist, names, request.preset)
    state = config_module.state_dir()

    from kensium_provision.aws.session import AwsSession

    session = AwsSession(env, mode=request.mode, endpoint_url=_endpoint(env, state))
    identity = session.identity()
    check_not_root(identity, env)
    check_account(identity, env)

    if request.from_record:
        request = _with_record_answers(request, session, cfg.clients.table)

    from kensium_provision.journal.chain import JournalWriter
    from kensium_provision.secret import REDACTOR

    run_id = new_run_id()
    journal = JournalWriter(state, run_id, redact=REDACTOR.redact_obj, header={
        "who": identity.arn, "account": identity.account, "region": env.region, "environment": env.name,
        "checklist": checklist.id, "checklist_sha256": checklist.sha256, "mode": request.mode.value,
        "target": checklist.target, "command": request.command, "host": socket.gethostname(),
        "client": request.preset.get("org_id"), "resumes": request.resume_run_id or None,
        "steps": step_digests(checklist)})
    journal_path = str(journal.path)
    if cfg.journal.cloudwatch_log_group:
        from kensium_provision.journal.chain import ShippingJournal

        # The journal's copy in CloudWatch Logs is kprov's own record, not a change to what it provisions,
        # so its client is the one write a plan or check makes: outside the read-only wall.
        logs = AwsSession(env, mode=Mode.APPLY, endpoint_url=session.endpoint_url).client("logs")
        journal = ShippingJournal(journal, logs, group=cfg.journal.cloudwatch_log_group, stream=run_id)
    journal.record("guard", guard="identity", outcome="ok", caller=identity.arn, account=identity.account)

    from kensium_provision.vault.backends import make_vault

    operator: Any
    vault_box: list[Any] = []

    def fetch(reference: str) -> object:
        return vault_box[0].fetch(reference)

    if answers is not None or not request.interactive:
        from kensium_provision.checklist.answers import Answers

        operator = AnswersOperator(answers or Answers(), assume_yes=request.assume_yes, fetch_secret=fetch,
                                   notes=manual_note(console, str(request.answers_path or "")))
    else:
        from kensium_provision.ui.console import ConsoleOperator

        operator = ConsoleOperator(console, assume_yes=request.assume_yes, fetch_secret=fetch)
    vault_settings: dict[str, object] = {"backend": cfg.vault.backend}
    if cfg.vault.command:
        vault_settings["command"] = list(cfg.vault.command)
    if cfg.vault.fetch_command:
        vault_settings["fetch_command"] = list(cfg.vault.fetch_command)
    vault = make_vault(cfg.vault.backend, settings=vault_settings, client_factory=session, operator=operator,
                       env_name=env.name)
    vault_box.append(vault)
    locks = _locks(cfg, session, state)
    hooks = _Hooks(config=cfg, env=env, identity=identity, mode=request.mode, console=console, operator=operator,
                   locks=locks, run_id=run_id, journal=journal)

    from kensium_provision.runtime import Runtime
    from kensium_provision.ui.render import make_reporter

    reporter = make_reporter(console, checklist, live=request.live, mode=request.mode)
    def sleep(seconds: float) -> None:  # time passing makes cached reads stale: a wait polls for AWS's own changes
        session.invalidate()
        time.sleep(seconds)

    runtime = Runtime(mode=request.mode, run_id=run_id, aws=session, operator=_PurposeFirst(operator, hooks),
                      vault=vault, names=names, sleep=sleep,
                      env_name=env.name, purpose="", journal=journal, reporter=reporter, hooks=hooks,
                      assume_yes=request.assume_yes,
                      settings=_settings(env, state, cfg.settings()))
    outcome = "failed"
    try:
        values = engine.resolve_inputs(checklist, runtime, request.preset)
        runtime = _with_purpose(runtime, values)
        hooks.after_inputs(checklist, values)
        report = engine.run(checklist, runtime, values, recorded=request.recorded)
        outcome = "ok" if report.exit_code == 0 else "failed"
        changed = any(r.status.value == "changed" and r.risk.value != "read" for r in report.results)
        if outcome == "ok" and changed and request.mode is Mode.APPLY and checklist.scope == "shared":
            _record_shared(session, checklist, hooks.target(checklist, values), values, run_id, journal)
    except KeyboardInterrupt:
        outcome = "interrupted"
        journal.record("interrupted", where="run")
        raise
    except AbortedError as exc:
        outcome = "aborted"
        journal.record("aborted", message=str(exc))
        raise
    finally:
        close = getattr(reporter, "close", None)
        if close:
            close()
        hooks.release()
        journal.close(outcome, api_calls=session.counter.as_dict())
    return RunOutcome(report=report, run_id=run_id, environment=env.name, account=identity.account,
                      region=env.region, caller=identity.arn, api_calls=session.counter.as_dict(),
                      journal_path=journal_path)


def step_digests(checklist: Checklist) -> list[dict[str, str]]:
    """Each step's id and a digest of its definition, so `resume` can say what changed."""
    import hashlib
    import json

    def digest(step: Any) -> str:
        body = {"type": step.type, "title": step.title, "risk": step.risk.value, "params": step.params,
                "when": None if step.when is None else [step.when.name, step.when.op, step.when.value],
                "outputs": dict(step.outputs)}
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]

    return [{"id": s.id, "digest": digest(s)} for s in checklist.steps]


def _record_shared(session: Any, checklist: Checklist, target: str, values: Mapping[str, object], run_id: str,
                   journal: Any) -> None:
    """Keep a shared resource's answers in the account, so `check shared` needs no answers file."""
    from kensium_provision.records.shared import put_shared_record

    name = ".".join(target.split(":")[2:]) or checklist.id
    answers = {spec.id: values[spec.id] for spec in checklist.inputs if spec.id in values}
    path = put_shared_record(session.client("ssm"), checklist.id, name, answers, run_id)
    journal.record("shared.recorded", path=path)


def read_session(env_name: str | None, config_path: Path | None) -> Any:
    """A read-only (walled) session of the environment, after the identity guards."""
    from kensium_provision.app import config as config_module
    from kensium_provision.aws.session import AwsSession
    from kensium_provision.guards import check_account, check_not_root

    cfg = config_module.load_config(config_path)
    env = cfg.environment(env_name)
    session = AwsSession(env, mode=Mode.CHECK, endpoint_url=_endpoint(env, config_module.state_dir()))
    identity = session.identity()
    check_not_root(identity, env)
    check_account(identity, env)
    return session


def list_shared(session: Any, checklist_id: str) -> list[Any]:
    """The shared records of one checklist in the environment's account (read-only)."""
    from kensium_provision.records.shared import list_shared_records

    return list_shared_records(session.client("ssm"), checklist_id)


def _with_record_answers(request: RunRequest, session: Any, table: str) -> RunRequest:
    """`check client ORG`: the install's own answers, from the client record every operator can read."""
    from dataclasses import replace

    from kensium_provision.records.clients import get_client

    record = get_client(session.client("dynamodb"), request.from_record, table)
    if record is None or not record.answers:
        raise InputError(f"no client record for {request.from_record!r} in this account and region",
                         hint="was it installed with kprov? `kprov check client --all` lists the recorded clients; "
                              "or pass --answers FILE")
    return replace(request, preset={**record.answers, **record.evidence, **request.preset}, interactive=False)


def _with_purpose(runtime: Any, values: Mapping[str, object]) -> Any:
    from dataclasses import replace

    purpose = values.get("purpose")
    return replace(runtime, purpose=purpose) if isinstance(purpose, str) else runtime


def _locks(cfg: Any, session: Any, state: Path) -> Any:
    from kensium_provision.records.locks import DynamoLocks, LocalLocks

    if cfg.locks.backend == "dynamodb":
        return DynamoLocks(session.client("dynamodb"), cfg.locks.table)
    return LocalLocks(state / "locks")


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
