"""The one bootstrap: every command that touches AWS opens its world here, in the same order.

`open_config` reads the config and picks the environment (no AWS yet); `connect` makes the session
of the command's mode, asks STS who the caller is and runs the guards (root, account) before any
other request; `open_journal`, `open_operator`, `open_vault` and `open_locks` make the rest from the
same config. A checklist run (`execute`), the fleet check and the lock commands all go through these
functions, so a setting means one thing everywhere: `vault.timeout` reaches the password manager,
`locks.backend` chooses the locks of runs and of `kprov lock`, and `journal.cloudwatch_log_group` is
written only by runs that may write (apply, a lock break): a plan or a check sends no write at all,
so its journal stays on this machine.

Nothing here parses a command line: the commands (`app.commands`) build a request and a `Context`.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kensium_provision.errors import AbortedError, GuardError, InputError
from kensium_provision.model import Checklist, Mode

if TYPE_CHECKING:
    from rich.console import Console

    from kensium_provision.app.config import Config
    from kensium_provision.app.context import Context
    from kensium_provision.aws.session import AwsSession
    from kensium_provision.checklist.answers import Answers
    from kensium_provision.guards import Environment, Identity
    from kensium_provision.records.locks import Locks
    from kensium_provision.runtime import Operator, Vault

__all__ = [
    "AGAIN_WITH_APPROVAL",
    "Connection",
    "RunJournal",
    "RunOutcome",
    "RunRequest",
    "anchor_key",
    "connect",
    "execute",
    "list_shared",
    "new_run_id",
    "open_config",
    "open_journal",
    "open_local_journal",
    "open_locks",
    "open_operator",
    "open_vault",
    "requires_approval",
    "run_settings",
    "sandbox_endpoint",
    "step_digests",
]


def new_run_id() -> str:
    """Unique, and sorted as started: `20261128T071502.417Z-3f9a1c`. The milliseconds order two runs of one
    second (the random part does not); `kprov runs` and undo's "what ran after" read that order."""
    now = datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S}.{now.microsecond // 1000:03d}Z-{uuid.uuid4().hex[:6]}"


# --- the pieces every AWS command opens ------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Connection:
    """An environment opened for AWS work: a session of one mode, and its caller, already guarded."""

    config: Config
    env: Environment
    state: Path
    session: AwsSession
    identity: Identity


class RunJournal(Protocol):
    """What a command writes its records to (a `JournalWriter`, or one that also ships them)."""

    def record(self, event: str, **fields: object) -> None: ...

    def close(self, outcome: str, **fields: object) -> None: ...


def open_config(context: Context, *, env_name: str | None = None) -> tuple[Config, Environment]:
    """The config and the chosen environment (`env_name`, else `--env`, else the default); no AWS call."""
    from kensium_provision.app.config import load_config

    config = load_config(context.config)
    return config, config.environment(env_name or context.env)


def sandbox_endpoint(context: Context, env: Environment, state: Path) -> str:
    """The sandbox's endpoint, reached through the context (started on demand); "" for real AWS, an
    environment with its own endpoint, or a given AWS_ENDPOINT_URL."""
    if not env.sandbox or env.endpoint_url or os.environ.get("AWS_ENDPOINT_URL"):
        return ""
    return context.sandbox(state, env.region)


def connect(context: Context, config: Config, env: Environment, mode: Mode) -> Connection:
    """A session of `mode` (walled in plan and check) and its caller, after the root and account guards."""
    from kensium_provision.app.config import state_dir
    from kensium_provision.app.context import in_process_sandbox
    from kensium_provision.aws.session import AwsSession
    from kensium_provision.guards import run_guards

    state = state_dir()
    session = AwsSession(env, mode=mode, endpoint_url=sandbox_endpoint(context, env, state),
                         in_process=context.sandbox is in_process_sandbox)
    identity = run_guards(session.identity(), env)  # before any other request of the command
    return Connection(config=config, env=env, state=state, session=session, identity=identity)


def open_journal(connection: Connection, run_id: str, *, mode: Mode,
                 header: Mapping[str, object]) -> tuple[RunJournal, Path]:
    """The command's journal, headed by the caller, account, region and environment; and its path.

    Only a command that may write (`Mode.APPLY`) also ships it to CloudWatch Logs when the config says
    so: a plan's or a check's session is walled, and the journal's copy would be its only write.
    """
    from kensium_provision.journal.shipping import ShippingJournal

    env, identity = connection.env, connection.identity
    writer = _writer(connection.state, run_id, {"who": identity.arn, "account": identity.account, **header}, env)
    group = connection.config.journal.cloudwatch_log_group
    if group and mode is Mode.APPLY:
        shipping = ShippingJournal(writer, connection.session.client("logs"), group=group, stream=run_id)
        return shipping, writer.path
    return writer, writer.path


def open_local_journal(env: Environment, state: Path, run_id: str, *,
                       header: Mapping[str, object]) -> tuple[RunJournal, Path]:
    """The journal of a command that asked AWS nothing (local locks): the operator is this machine's user,
    and no account was verified."""
    from kensium_provision.journal.writer import os_user

    writer = _writer(state, run_id, {"who": os_user(), "account": "", **header}, env)
    return writer, writer.path


def _writer(state: Path, run_id: str, header: Mapping[str, object], env: Environment) -> Any:
    from kensium_provision.journal.writer import JournalWriter
    from kensium_provision.secret import REDACTOR

    return JournalWriter(state, run_id, redact=REDACTOR.redact_obj, header={
        "region": env.region, "environment": env.name, "host": socket.gethostname(), **header})


def open_operator(console: Console, *, interactive: bool, assume_yes: bool = False, answers: Answers | None = None,
                  answers_source: str = "", fetch_secret: Callable[[str], object] | None = None) -> Operator:
    """Who answers: a person at a terminal, the answers file first when there is one; without a terminal
    the answers file alone (or nobody), never prompting."""
    from kensium_provision.ui.console import ConsoleOperator

    terminal = ConsoleOperator(console, assume_yes=assume_yes, fetch_secret=fetch_secret) if interactive else None
    if answers is None and terminal is not None:
        return terminal
    from kensium_provision.checklist.answers import Answers as NoAnswers
    from kensium_provision.checklist.answers import AnswersOperator
    from kensium_provision.ui.render import manual_note

    return AnswersOperator(answers or NoAnswers(), assume_yes=assume_yes, fetch_secret=fetch_secret,
                           notes=manual_note(console, answers_source), terminal=terminal)


def open_vault(connection: Connection, operator: Operator) -> Vault:
    """The password manager of the config's `vault:` section, every setting of it (`timeout` too)."""
    from kensium_provision.vault.backends import make_vault

    vault = connection.config.vault
    return make_vault(vault.backend, settings=vault.settings(), client_factory=connection.session,
                      operator=operator, env_name=connection.env.name)


def anchor_key(config: Config, vault: Vault) -> bytes | None:
    """The HMAC key anchoring the journal's ledger (`journal.anchor_key`, a password-manager entry), or None."""
    entry = config.journal.anchor_key
    if not entry:
        return None
    reference = vault.find(entry)
    if reference is None:
        raise InputError(f"the password manager has no entry {entry} (journal.anchor_key in the config)",
                         hint="store a long random key there first (e.g. `openssl rand -hex 32`), or remove the "
                              "setting")
    return vault.fetch(reference).reveal().encode()


def open_locks(config: Config, state: Path, connection: Connection | None = None) -> Locks:
    """The locks of the config's `locks:` section: DynamoDB (through the guarded session) or local files."""
    from kensium_provision.records.locks import DynamoLocks, LocalLocks

    if config.locks.backend == "dynamodb":
        if connection is None:
            raise ValueError("DynamoDB locks need a connection: connect() first")
        return DynamoLocks(connection.session.client("dynamodb"), config.locks.table)
    return LocalLocks(state / "locks")


def run_settings(connection: Connection) -> dict[str, object]:
    """The config's settings plus what steps may need to know of the environment (never credentials)."""
    env = connection.env
    found: dict[str, object] = {**connection.config.settings(),
                                "environment": {"name": env.name, "purposes": list(env.purposes),
                                                "sandbox": env.sandbox}}
    if not env.sandbox:
        return found
    # In the sandbox, client vhosts go to its RabbitMQ emulator, whose admin password the sandbox keeps in its
    # own Secrets Manager: the vault entry's name (kprov/sandbox/<entry>), found only if a step needs it.
    rabbit = dict(found.get("rabbitmq") or {})  # type: ignore[call-overload]
    if not rabbit.get("base_url"):
        from kensium_provision.sandbox import server as sandbox

        info = sandbox.status(connection.state)
        if info is not None and info.rabbitmq_url:
            entry = info.rabbitmq_secret.removeprefix(f"kprov/{env.name}/")
            rabbit.update(base_url=info.rabbitmq_url, admin_user=sandbox.RABBITMQ_ADMIN_USER, admin_secret_entry=entry)
    return {**found, "rabbitmq": rabbit, "sandbox": True}


# --- a checklist run ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRequest:
    """One checklist run, as a command asks for it (the global options come with the `Context`)."""

    checklist: Path
    mode: Mode
    env_name: str | None = None  # overrides --env (resume: the environment the run began in)
    answers_path: Path | None = None
    preset: Mapping[str, object] = field(default_factory=dict)
    assume_yes: bool = False
    interactive: bool = True  # False: never prompt, even at a terminal
    live: bool = True
    command: str = ""
    resume_run_id: str = ""
    recorded: Mapping[str, Mapping[str, object]] = field(default_factory=dict)  # resume: manual evidence
    from_record: str = ""  # check client: take the answers from this org's client record
    run_id: str = ""  # the id to journal under (new_run_id() when empty): the caller can name the run if it fails
    corrections: tuple[Mapping[str, object], ...] = ()  # resume: answers corrected, journaled as `answer.corrected`
    # The permission preflight: "auto" (an apply's, before its first change), "run" (a plan's too: --preflight),
    # "skip" (--skip-preflight: journaled).
    preflight: str = "auto"
    step_by_step: bool = False  # --step: an apply asks Y/n at each step instead of the plan then one yes
    plan_out: Path | None = None  # --dry-run --out PLAN: write the saved plan there (plans.saved)
    saved_plan: Any = None  # apply PLAN: the plans.saved.SavedPlan to re-probe and apply
    # A run whose checklist is made in memory (engine.undo.UndoRun): its `checklist`, and `run(runtime, values)`
    prepared: Any = None


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

    def __init__(self, *, connection: Connection, mode: Mode, console: Console, operator: Operator, locks: Locks,
                 run_id: str, journal: RunJournal, preflight: str = "auto", prepared: Any = None) -> None:
        self.config, self.env, self.identity = connection.config, connection.env, connection.identity
        self.session, self.preflight_choice = connection.session, preflight
        self.prepared = prepared  # an undo's (engine.undo.UndoRun): its preflight reads the undone steps' types
        self.mode, self.console, self.operator, self.locks = mode, console, operator, locks
        self.run_id, self.journal = run_id, journal
        self.lock: Any = None
        self.heartbeat: Any = None
        self.purpose_checked = ""
        # Steps proven independent act at once (engine.schedule): one renewal at a time, and a lost lock is
        # journaled once, then every later act is refused with the same error.
        self._fence = threading.Lock()
        self._lost: Exception | None = None

    def check_purpose(self, purpose: str) -> None:
        """The purpose guard (exit 4), journaled; once per purpose and run."""
        from kensium_provision.guards import run_guards

        if purpose == self.purpose_checked:
            return
        try:
            run_guards(self.identity, self.env, purpose=purpose, others=self.config.environments)
        except GuardError as exc:
            self.journal.record("guard", guard="purpose", outcome="refused", message=str(exc))
            raise
        self.journal.record("guard", guard="purpose", outcome="ok", purpose=purpose)
        self.purpose_checked = purpose

    def target(self, checklist: Checklist, values: Mapping[str, object]) -> str:
        from kensium_provision.engine.once import target_of

        return target_of(checklist, values)

    def after_inputs(self, checklist: Checklist, values: Mapping[str, object]) -> None:
        from kensium_provision.ui.render import print_banner

        purpose = values.get("purpose")
        if isinstance(purpose, str):
            self.check_purpose(purpose)
        target = self.target(checklist, values)
        self.journal.record("target", target=target)
        rows = {"caller": f"{self.identity.display_name} ({self.identity.arn})", "account": self.identity.account,
                "region": self.env.region, "environment": self.env.name + (" (sandbox)" if self.env.sandbox else ""),
                "purpose": str(purpose or "-"), "target": target, "mode": self.mode.value}
        print_banner(self.console, rows, protected=self.env.protected)
        self.preflight(checklist, values)  # before the lock: its PutItem is the run's first write
        if self.mode is Mode.APPLY:
            from rich.text import Text

            from kensium_provision.records.locks import Heartbeat

            def notify(message: str) -> None:  # the message quotes the lock's item: text, never markup
                self.console.print(Text(message, style="yellow"))

            ttl = 900.0
            self.lock = self.locks.acquire(target, owner=self.identity.arn, run_id=self.run_id, ttl_seconds=ttl,
                                           notify=notify)
            self.journal.record("lock.acquired", target=target, lock_id=self.lock.lock_id)
            self.heartbeat = Heartbeat(self.locks, self.lock, interval=ttl / 3).__enter__()

    def preflight(self, checklist: Checklist, values: Mapping[str, object]) -> None:
        """May the caller do all this run will do (permissions.preflight)? Refused: exit 4, journaled. An undo's
        (checklist scope `undo`) is what its undo steps send: the undone step types' `undo` (`--mode undo`)."""
        from kensium_provision.app.commands.iam import scope_of
        from kensium_provision.permissions.policy import needs, undo_needs
        from kensium_provision.permissions.preflight import run_preflight

        if self.mode is Mode.CHECK or (self.mode is Mode.PLAN and self.preflight_choice != "run"):
            return
        if self.preflight_choice == "skip":
            self.journal.record("guard", guard="preflight", outcome="skipped", reason="--skip-preflight")
            self.console.print("permission preflight skipped (--skip-preflight): IAM may refuse a step midway",
                               style="yellow", markup=False)
            return
        scope = replace(scope_of(self.config, self.env), account=self.identity.account)
        undo = checklist.scope == "undo"
        if undo:
            steps, scopes = _undone_steps(self.prepared, checklist)
            found = undo_needs(steps, scope, scopes=scopes)
        else:
            found = needs([checklist], Mode.APPLY, scope, values)
        try:
            passed = run_preflight(self.session.client("iam"), self.identity.arn, found, region=self.env.region,
                                   mode="undo" if undo else "apply")
        except GuardError as exc:
            self.journal.record("guard", guard="preflight", outcome="refused", message=str(exc))
            raise
        self.journal.record("guard", guard="preflight", outcome="ok", principal=passed.principal,
                            actions=passed.actions)
        self.console.print(f"permission preflight: IAM allows {passed.principal} all {passed.actions} actions of "
                           "this run", style="dim", markup=False, soft_wrap=True)

    def before_first_change(self, checklist: Checklist, values: Mapping[str, object]) -> None:
        from kensium_provision.guards import confirmation_banner, needs_typed_confirmation
        from kensium_provision.model import Risk

        destroys = any(step.risk is Risk.DESTROY for step in checklist.steps)
        if not needs_typed_confirmation(self.env, destroys=destroys):
            return
        from rich.text import Text

        for line in confirmation_banner(self.identity, self.env, destroys=destroys):
            self.console.print(Text(line, style="bold red"), soft_wrap=True)
        expected = str(values.get("org_id") or self.target(checklist, values).rsplit(":", 1)[-1])
        ok = self.operator.type_to_confirm(
            f"{self.env.name} is a protected environment (account {self.env.account_id})." if self.env.protected
            else f"This run destroys {self.target(checklist, values)} in {self.env.name}.", expected)
        self.journal.record("guard", guard="typed-confirmation", outcome="ok" if ok else "refused")
        if not ok:
            raise AbortedError(f"the typed confirmation did not match {expected!r}; nothing was changed")

    def before_act(self, step_id: str) -> None:
        """The lock is still this run's (renewed now) before each act, or the run stops there, journaled."""
        from kensium_provision.errors import LockError

        with self._fence:
            if self._lost is not None:
                raise self._lost
            if self.heartbeat is None:
                return
            try:
                self.heartbeat.check()
            except LockError as exc:
                self.journal.record("lock.lost", target=self.lock.target, lock_id=self.lock.lock_id, step=step_id,
                                    message=str(exc))
                self.lock, self._lost = None, exc  # not ours any more: nothing to release
                raise

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


def _undone_steps(prepared: Any, checklist: Checklist) -> tuple[list[tuple[str, str]], set[str]]:
    """An undo's steps as (undo step id, the undone step's type), in its order, and the undone runs' scopes
    (`shared` when one wrote a shared record, which the undo removes): what its preflight simulates."""
    from kensium_provision.engine.undo import items_of
    from kensium_provision.permissions.policy import undo_step_id

    steps, _ = items_of(prepared.logs)
    kinds = {undo_step_id(u.step_id): u.type for u in steps}
    shared = any(r.get("event") == "shared.recorded" for log in prepared.logs for r in log.records)
    return [(s.id, kinds[s.id]) for s in checklist.steps], {"shared"} if shared else set()


class _PurposeFirst:
    """The operator, with the purpose guard applied the moment the purpose is answered: a refused
    purpose exits 4 before any further question or live lookup, not after every input."""

    def __init__(self, inner: Operator, hooks: _Hooks) -> None:
        self._inner, self._hooks = inner, hooks
        self.interactive = inner.interactive

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def ask(self, spec: Any, **kwargs: Any) -> object:
        if spec.id == "purpose":
            kwargs = self._purposes(kwargs)
        value = self._inner.ask(spec, **kwargs)
        if spec.id == "purpose" and isinstance(value, str):
            self._hooks.check_purpose(value)
        return value

    def _purposes(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Offer only the purposes the environment hosts (a production account never offers qa), and in the
        sandbox suggest qa: Enter must not make a production install by accident."""
        env = self._hooks.env
        offered = [c for c in kwargs.get("choices", ()) if c in env.purposes] or list(kwargs.get("choices", ()))
        default = kwargs.get("default")
        if default not in offered:  # a suggestion for a person only: an answers file's run never guesses one
            default = "qa" if env.sandbox and "qa" in offered and self.interactive else None
        return {**kwargs, "choices": offered, "default": default}


# Where approval is required, the way on after a failure too: a new plan (its probes see what was made), approved.
AGAIN_WITH_APPROVAL = ("make a plan from here with `--dry-run --out PLAN`, have a colleague `kprov approve PLAN`, "
                       "then `kprov apply PLAN`")


def requires_approval(context: Context, env_name: str | None) -> bool:
    """Whether the run's environment requires an approved saved plan for an apply."""
    config, env = open_config(context, env_name=env_name)
    return env.name in config.approval_required


def execute(request: RunRequest, context: Context, console: Console) -> RunOutcome:
    """Load, guard, run and journal one checklist run."""
    from kensium_provision.checklist.answers import check_given, load_answers
    from kensium_provision.checklist.schema import load_checklist
    from kensium_provision.engine import run as engine
    from kensium_provision.naming.loader import load_rules

    config, env = open_config(context, env_name=request.env_name)
    names = load_rules()
    checklist = request.prepared.checklist if request.prepared is not None else \
        load_checklist(request.checklist, display=_display(request.checklist), rule_ids=names.ids)
    answers = load_answers(request.answers_path, checklist) if request.answers_path else None
    plan = request.saved_plan
    if plan is not None:
        answers = _plan_answers(checklist, plan, answers)
    check_given(checklist, names, answers, request.preset)  # every answer and argument, before any AWS call

    connection = connect(context, config, env, request.mode)
    session, identity = connection.session, connection.identity
    if plan is not None:
        _refuse_elsewhere(plan, connection)
    elif request.mode is Mode.APPLY and env.name in config.approval_required:
        # A resume too: what is left of an approved plan after a failure is a change nobody has reviewed.
        what = f"run {request.resume_run_id} is not resumed" if request.resume_run_id else "nothing was changed"
        raise GuardError(f"environment {env.name} requires approval: an apply runs only an approved saved plan; "
                         f"{what}", hint=AGAIN_WITH_APPROVAL)
    installed, record = checklist, None
    if request.from_record:
        request, record = _with_record_answers(request, session, config.clients.table)
        if request.mode is Mode.CHECK:  # the install's live choices as recorded: drift is a step's finding
            from kensium_provision.fleet.recorded import recorded_checklist

            checklist = recorded_checklist(checklist)
    if not (request.interactive and context.interactive) and plan is None:
        from kensium_provision.checklist.answers import refuse_missing

        refuse_missing(checklist, answers, request.preset)  # every missing answer at once, nothing attempted

    run_id = request.run_id or new_run_id()
    journal, journal_path = open_journal(connection, run_id, mode=request.mode, header={
        "checklist": checklist.id, "checklist_sha256": checklist.sha256, "mode": request.mode.value,
        "target": checklist.target, "command": request.command, "client": request.preset.get("org_id"),
        "resumes": request.resume_run_id or None, "steps": step_digests(checklist)})
    journal.record("guard", guard="identity", outcome="ok", caller=identity.arn, account=identity.account)
    for correction in request.corrections:
        journal.record("answer.corrected", **correction)
    if plan is not None:
        _journal_plan(journal, plan, connection, approval=env.name in config.approval_required)

    vault_box: list[Vault] = []

    def fetch(reference: str) -> object:
        return vault_box[0].fetch(reference)

    operator = open_operator(console, interactive=request.interactive and context.interactive,
                             assume_yes=request.assume_yes, answers=answers,
                             answers_source=str(request.answers_path or ""), fetch_secret=fetch)
    vault = open_vault(connection, operator)
    vault_box.append(vault)
    writer: Any = getattr(journal, "inner", journal)  # the JournalWriter, shipped or not
    writer.anchor_key = anchor_key(connection.config, vault)
    hooks = _Hooks(connection=connection, mode=request.mode, console=console, operator=operator,
                   locks=open_locks(config, connection.state, connection), run_id=run_id, journal=journal,
                   preflight=request.preflight, prepared=request.prepared)

    from kensium_provision.runtime import Runtime
    from kensium_provision.ui.render import make_reporter

    reporter = make_reporter(console, checklist, live=request.live, mode=request.mode)

    def sleep(seconds: float) -> None:  # time passing makes cached reads stale: a wait polls for AWS's own changes
        session.invalidate()
        time.sleep(seconds)

    runtime = Runtime(mode=request.mode, run_id=run_id, aws=session, operator=_PurposeFirst(operator, hooks),
                      vault=vault, names=names, sleep=sleep, env_name=env.name, purpose="", journal=journal,
                      reporter=reporter, hooks=hooks, assume_yes=request.assume_yes,
                      settings=run_settings(connection))
    outcome = "failed"
    try:
        values = engine.resolve_inputs(checklist, runtime, request.preset)
        runtime = _with_purpose(runtime, values)
        hooks.after_inputs(checklist, values)
        if plan is not None:  # re-probed against the saved plan, then applied (plans.saved)
            from kensium_provision.plans.saved import apply_saved

            report = apply_saved(_passes(request, checklist, values), runtime, plan)
        elif request.plan_out is not None:
            report = _save_plan(request, checklist, runtime, values, answers, connection)
        elif request.prepared is not None:
            report = request.prepared.run(runtime, values)
        elif request.mode is Mode.APPLY and not request.step_by_step:  # the plan, then one yes (engine.once)
            from kensium_provision.engine.once import plan_then_apply

            report = plan_then_apply(checklist, runtime, values, recorded=request.recorded)
        else:
            report = engine.run(checklist, runtime, values, recorded=request.recorded)
        if record is not None and checklist is not installed:  # `check client ORG`: as `check client --all` judges
            from kensium_provision.fleet.recorded import with_unoffered
            from kensium_provision.fleet.rotation import max_age_days, with_ages

            report = with_unoffered(report, installed, runtime, values, {})
            report = with_ages(report, record, session.client("secretsmanager"), session.client("iam"),
                               max_age_days=max_age_days(runtime.settings))
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
                      journal_path=str(journal_path))


def _plan_answers(checklist: Checklist, plan: Any, given: Answers | None) -> Answers | None:
    """apply PLAN: its checklist must be the one planned; its secrets come by reference, as an answers file's,
    and an answers file (an unattended apply) gives only what a person states at the apply: `confirm:` (work
    done by hand) and `confirm_target:` (a protected environment's typed target), never an answer."""
    from kensium_provision.checklist.answers import Answers

    if checklist.sha256 != plan.text("checklist_sha256"):
        raise InputError(f"the checklist {checklist.id} changed since plan {plan.plan_id[:12]} was made (sha256 "
                         f"{checklist.sha256[:12]}, the plan's {plan.text('checklist_sha256')[:12]}): nothing was "
                         "changed", hint="make a new plan with today's checklist and have it reviewed")
    secrets = {spec.id for spec in checklist.inputs if spec.type == "secret"}
    refs = {k: v for k, v in plan.answers.items() if k in secrets}
    if given is None:
        return Answers(values=refs, path="the saved plan") if refs else None
    extra = [k for k in given.values if k != "confirm_target"]
    if extra:
        loc = given.locs.get(extra[0])
        where = f"{loc.path}:{loc.line}:{loc.column}: " if loc else f"{given.path}: "
        raise InputError(f"{where}{extra[0]}: the saved plan holds the answers; with `apply PLAN` an answers file "
                         "gives only confirm: and confirm_target:", hint="remove the answers from the file, or make "
                                                                          "a new plan with them")
    return replace(given, values={**given.values, **refs})


def _refuse_elsewhere(plan: Any, connection: Connection) -> None:
    """A plan applies only where it was made: the same environment, account and region (exit 4)."""
    here = {"environment": connection.env.name, "account": connection.identity.account,
            "region": connection.env.region}
    wrong = [f"{k} {plan.text(k)!r} (here {v!r})" for k, v in here.items() if plan.text(k) != v]
    if wrong:
        raise GuardError(f"plan {plan.plan_id[:12]} was made for another place: " + ", ".join(wrong)
                         + "; nothing was changed", hint="apply it with the --env (and credentials) it was made with")


def _journal_plan(journal: RunJournal, plan: Any, connection: Connection, *, approval: bool) -> None:
    """The saved plan applied, and in an environment requiring approval its approver and this applier (exit 4
    refused: journaled, then raised)."""
    from kensium_provision.plans.approvals import approval_of, require_approval

    identity = connection.identity
    journal.record("plan.saved", plan=plan.plan_id, digest=plan.digest, author=plan.text("caller"))
    if not approval:
        return
    try:
        found = require_approval(approval_of(connection.session.client("dynamodb"), plan.plan_id),
                                 plan_id=plan.plan_id, digest=plan.digest, applier=identity.arn)
    except GuardError as exc:
        journal.record("guard", guard="approval", outcome="refused", applier=identity.arn, message=str(exc))
        raise
    journal.record("guard", guard="approval", outcome="ok", approver=found.approver, applier=identity.arn,
                   digest=found.digest, approved_at=found.approved_at)


def _passes(request: RunRequest, checklist: Checklist, values: Mapping[str, object]) -> Any:
    """What a saved plan is made of and applies (`plans.saved.Passes`): the checklist's run, or a prepared one's."""
    from kensium_provision.plans.saved import checklist_passes

    prepared = request.prepared
    if prepared is None:
        return checklist_passes(checklist, values)

    def passes(runtime: Any, *, reviewed: bool = False) -> Any:
        return prepared.run(runtime, values, reviewed=reviewed)

    return passes


def _save_plan(request: RunRequest, checklist: Checklist, runtime: Any, values: Mapping[str, object],
               answers: Answers | None, connection: Connection) -> Any:
    """--dry-run --out PLAN: the plan pass with every probe's observation, written when every step probed."""
    from kensium_provision import __version__
    from kensium_provision.model import Status
    from kensium_provision.plans.saved import build, observe, write

    report, seen = observe(_passes(request, checklist, values), runtime)
    if request.plan_out is not None and not any(r.status is Status.FAILED for r in report.results):
        where = {"environment": connection.env.name, "account": connection.identity.account,
                 "region": connection.env.region, "caller": connection.identity.arn}
        about = {"undoes": request.prepared.run_id} if request.prepared is not None else {}
        plan = build(checklist, values, answers.values if answers else {}, report, seen, where=where,
                     command=request.command, version=__version__, about=about)
        write(plan, request.plan_out)
        runtime.journal.record("plan.written", plan=plan.plan_id, digest=plan.digest, path=str(request.plan_out))
    return report


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


def _record_shared(session: AwsSession, checklist: Checklist, target: str, values: Mapping[str, object], run_id: str,
                   journal: RunJournal) -> None:
    """Keep a shared resource's answers in the account, so `check shared` needs no answers file."""
    from kensium_provision.records.shared import put_shared_record

    name = ".".join(target.split(":")[2:]) or checklist.id
    answers = {spec.id: values[spec.id] for spec in checklist.inputs if spec.id in values}
    path = put_shared_record(session.client("ssm"), checklist.id, name, answers, run_id)
    journal.record("shared.recorded", path=path)


def list_shared(session: AwsSession, checklist_id: str) -> list[Any]:
    """The shared records of one checklist in the environment's account (read-only)."""
    from kensium_provision.records.shared import list_shared_records

    return list_shared_records(session.client("ssm"), checklist_id)


def _with_record_answers(request: RunRequest, session: AwsSession, table: str) -> tuple[RunRequest, Any]:
    """`check client ORG`: the install's own answers, from the client record every operator can read."""
    from kensium_provision.records.clients import RETIRED, get_client

    record = get_client(session.client("dynamodb"), request.from_record, table)
    if record is not None and record.status in RETIRED:
        raise InputError(f"client {request.from_record!r} was {record.status} (run {record.run_id or '?'}, "
                         f"{record.updated or 'time unknown'}): there is no install to check; its record is kept",
                         hint=f"`kprov names show {request.from_record}` shows what the record holds")
    if record is None or not record.answers:
        raise InputError(f"no client record for {request.from_record!r} in this account and region",
                         hint="was it installed with kprov? `kprov check client --all` lists the recorded clients; "
                              "or pass --answers FILE")
    return replace(request, preset={**record.answers, **record.evidence, **request.preset}, interactive=False), record


def _with_purpose(runtime: Any, values: Mapping[str, object]) -> Any:
    purpose = values.get("purpose")
    return replace(runtime, purpose=purpose) if isinstance(purpose, str) else runtime


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
