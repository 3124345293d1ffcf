"""The injected world of a run: one frozen object the CLI builds and the engine and steps use.

Tests build their own Runtime with fakes (a scripted operator, a memory journal, moto clients)
instead of patching module internals. The Protocols below are the edges of the core.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from kensium_provision.model import Checklist, InputSpec, Mode, StepResult

if TYPE_CHECKING:
    from kensium_provision.secret import Secret

__all__ = [
    "ClientFactory",
    "Journal",
    "NoHooks",
    "NullJournal",
    "NullReporter",
    "Operator",
    "Reporter",
    "RunHooks",
    "Runtime",
    "Vault",
]


class ClientFactory(Protocol):
    """Hands out boto3 clients of one session (see `aws.session`)."""

    def client(self, service: str) -> Any: ...


class Operator(Protocol):
    """Who answers: a person at a terminal (`console`) or an answers file (`answers`)."""

    interactive: bool

    def ask(
        self,
        spec: InputSpec,
        *,
        default: object,
        choices: Sequence[str],
        validate: Callable[[object], str | None],
    ) -> object:
        """The value of one input; `validate` returns a problem or None."""
        ...

    def confirm(self, message: str, *, default: bool = False, key: str = "") -> bool:
        """A yes/no question. Without `key` it is routine, and `--yes` answers it. With a `key` (a
        manual step's id, a password-manager entry) it is a person's statement about work done by
        hand: `--yes` never answers it; an answers file must (`confirm: {key: true}`)."""
        ...

    def type_to_confirm(self, message: str, expected: str) -> bool:
        """Have the operator type `expected` (protected environments); never skipped by --yes."""
        ...

    def instruct(self, title: str, text: str) -> None:
        """Show instructions of a manual step."""
        ...

    def show_secret_once(self, label: str, secret: Secret) -> None:
        """Show a credential once so it can be put into the password manager; never logged."""
        ...


class Vault(Protocol):
    """The password manager: stores generated credentials and hands back references.

    Backends may also have two optional capabilities, looked up as attributes (as step types' are):
    `update(name, secret) -> reference` for rotation (the new value stored before the old one stops
    working), and `canonical(reference) -> reference`, the one form references compare in
    (`vault.backends.canonical_reference`). A vault without them cannot rotate, and compares as text.
    """

    def store(self, name: str, secret: Secret, *, description: str, tags: Mapping[str, str]) -> str:
        """Store (idempotently) and return a reference that the journal may record."""
        ...

    def fetch(self, reference: str) -> Secret: ...

    def find(self, name: str) -> str | None:
        """The reference of an already stored secret with that name, if any."""
        ...


class Journal(Protocol):
    """The write-ahead journal of a run (see `journal`)."""

    def record(self, event: str, **fields: object) -> None: ...


class Reporter(Protocol):
    """What the operator sees while a run goes on (see `render`)."""

    def step_started(self, step_id: str, title: str) -> None: ...

    def step_finished(self, result: StepResult) -> None: ...

    def progress(self, step_id: str, message: str) -> None: ...


class RunHooks(Protocol):
    """Decisions the CLI plugs into a run: guards, locks and the protected-environment confirmation."""

    def after_inputs(self, checklist: Checklist, values: Mapping[str, object]) -> None:
        """Every mode, once the inputs are known and before any probe (purpose guard, banner, lock)."""
        ...

    def before_first_change(self, checklist: Checklist, values: Mapping[str, object]) -> None:
        """Apply mode, before the first act (typed confirmation in a protected environment)."""
        ...

    def before_act(self, step_id: str) -> None:
        """Apply mode, before every act: raise (a KprovError) if this run may no longer change (its lock lost)."""
        ...


class NoHooks:
    """No guards: tests of the engine alone."""

    def after_inputs(self, checklist: Checklist, values: Mapping[str, object]) -> None:
        return None

    def before_first_change(self, checklist: Checklist, values: Mapping[str, object]) -> None:
        return None

    def before_act(self, step_id: str) -> None:
        return None


class NullJournal:
    """A journal that keeps records in memory (tests, `validate`)."""

    def __init__(self) -> None:
        self.records: list[dict[str, object]] = []

    def record(self, event: str, **fields: object) -> None:
        self.records.append({"event": event, **fields})


class NullReporter:
    """Shows nothing."""

    def step_started(self, step_id: str, title: str) -> None:
        return None

    def step_finished(self, result: StepResult) -> None:
        return None

    def progress(self, step_id: str, message: str) -> None:
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Runtime:
    """Everything a run touches, injected."""

    mode: Mode
    run_id: str
    aws: ClientFactory
    operator: Operator
    vault: Vault
    names: Any  # naming.RuleSet
    env_name: str = "sandbox"
    purpose: str = ""
    journal: Journal = field(default_factory=NullJournal)
    reporter: Reporter = field(default_factory=NullReporter)
    hooks: RunHooks = field(default_factory=NoHooks)
    assume_yes: bool = False
    settings: Mapping[str, object] = field(default_factory=dict)  # e.g. rabbitmq, sql, route53 config
    lookups: dict[str, object] = field(default_factory=dict)  # live lookups asked once per run
    facts: Any = None  # where step types read their facts (steps.facts.Facts); None: live reads
    sleep: Callable[[float], None] = field(default=__import__("time").sleep)
    monotonic: Callable[[], float] = field(default=__import__("time").monotonic)

    def idempotency_token(self, step_id: str, purpose: str) -> str:
        """Deterministic per (run, step, purpose): a resumed run sends the same token again."""
        digest = hashlib.sha256(f"{self.run_id}/{step_id}/{purpose}".encode()).hexdigest()
        return f"kprov-{digest[:32]}"
