"""Fakes for engine tests: a recording step type, scripted operator, memory vault, simple names."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from kensium_provision.model import InputSpec, Mode
from kensium_provision.runtime import NullJournal, Runtime
from kensium_provision.steps.base import Difference, Param, Probe, StepContext


class FakeNames:
    """Every name is fine unless it starts with BAD."""

    def check(self, rule: str, value: str, context: Mapping[str, str] | None = None) -> list[str]:
        return [f"{value!r} breaks naming rule {rule}"] if value.startswith("BAD") else []

    def require(self, rule: str, value: str, context: Mapping[str, str] | None = None) -> str:
        from kensium_provision.errors import InputError

        if value.startswith("BAD"):
            raise InputError(f"{value!r} breaks naming rule {rule}")
        return value

    def example(self, rule: str, context: Mapping[str, str] | None = None) -> str:
        return "good-name"


class MemoryVault:
    def __init__(self) -> None:
        self.items: dict[str, Any] = {}

    def store(self, name: str, secret: Any, *, description: str, tags: Mapping[str, str]) -> str:
        self.items[name] = secret
        return f"memory:{name}"

    def fetch(self, reference: str) -> Any:
        return self.items[reference.removeprefix("memory:")]

    def find(self, name: str) -> str | None:
        return f"memory:{name}" if name in self.items else None


class ScriptedOperator:
    interactive = False

    def __init__(self, answers: Mapping[str, object] | None = None, confirm: bool = True) -> None:
        self.answers = dict(answers or {})
        self.confirm_answer = confirm
        self.asked: list[str] = []
        self.confirmed: list[str] = []

    def ask(self, spec: InputSpec, *, default: object, choices: Sequence[str],
            validate: Callable[[object], str | None]) -> object:
        self.asked.append(spec.id)
        return self.answers.get(spec.id, default)

    def confirm(self, message: str, *, default: bool = False, key: str = "") -> bool:
        self.confirmed.append(message)
        return self.confirm_answer

    def type_to_confirm(self, message: str, expected: str) -> bool:
        return self.answers.get("confirm_target") == expected

    def instruct(self, title: str, text: str) -> None:
        return None

    def show_secret_once(self, label: str, secret: Any) -> None:
        return None


class RecordingStep:
    """A step type over a dict 'world': done when world[key] == value. Records every call."""

    name: ClassVar[str] = "fake.set"
    summary: ClassVar[str] = "Set a key in a fake world."
    params: ClassVar[tuple[Param, ...]] = (Param(name="key"), Param(name="value", kind="any"))
    outputs: ClassVar[tuple[str, ...]] = ("key", "value")

    def __init__(self, world: dict[str, object]) -> None:
        self.world = world
        self.calls: list[tuple[str, str]] = []

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        self.calls.append(("probe", ctx.step_id))
        current = self.world.get(params["key"])
        done = current == params["value"]
        return Probe(done=done, current={"value": current} if current is not None else {},
                     desired={"value": params["value"]},
                     differences=() if done or current is None else (Difference("value", current, params["value"]),),
                     outputs={"key": params["key"], "value": current} if done else {})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        self.calls.append(("act", ctx.step_id))
        self.world[params["key"]] = params["value"]
        return {"key": params["key"], "value": params["value"]}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        self.calls.append(("verify", ctx.step_id))
        current = self.world.get(params["key"])
        return () if current == params["value"] else (Difference("value", current, params["value"]),)


class NoAws:
    def client(self, service: str) -> Any:
        raise AssertionError(f"no AWS in this test (asked for {service})")


def make_runtime(mode: Mode, operator: Any = None, **kwargs: Any) -> Runtime:
    return Runtime(mode=mode, run_id="run-test", aws=NoAws(), operator=operator or ScriptedOperator(),
                   vault=MemoryVault(), names=FakeNames(), journal=kwargs.pop("journal", NullJournal()),
                   assume_yes=kwargs.pop("assume_yes", True), **kwargs)
