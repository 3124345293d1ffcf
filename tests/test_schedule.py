"""engine.schedule: which steps may run at once, and the engine running them so (issue 16, latency).

The step types here are small in-process ones over a dict (nothing external to fake): what is under test
is the engine's proof of independence and its order of output, journal and questions.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pytest

from kensium_provision.checklist.schema import load_checklist_text
from kensium_provision.engine.run import run
from kensium_provision.engine.schedule import Node, conflicts, startable, wildcard
from kensium_provision.errors import ExitCode
from kensium_provision.model import Mode, Status, StepResult
from kensium_provision.runtime import NullJournal
from kensium_provision.steps.base import Difference, Param, Probe, StepContext, StepType
from tests.fakes import ScriptedOperator, make_runtime


def words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def node(id: str, needs: str = "", gives: str = "", touches: str | None = "") -> Node:
    return Node(id, words(needs), words(gives), None if touches is None else words(touches))


def test_a_step_waits_for_the_step_whose_output_it_needs() -> None:
    nodes = [node("vpc", gives="vpc_id", touches="vpc"), node("subnet", needs="vpc_id", touches="subnet-a")]
    assert startable(nodes, finished=(), started=()) == ["vpc"]
    assert startable(nodes, finished={"vpc"}, started={"vpc"}) == ["subnet"]


def test_independent_steps_start_together_and_two_that_change_one_thing_in_turn() -> None:
    nodes = [node("a", touches="subnet-a"), node("b", touches="subnet-b"), node("rule-1", touches="sg-1-rules"),
             node("rule-2", touches="sg-1-rules"), node("c", touches="subnet-c")]
    assert startable(nodes, finished=(), started=()) == ["a", "b", "rule-1", "c"]
    assert startable(nodes, finished=(), started={"a", "b", "rule-1", "c"}) == []
    assert startable(nodes, finished={"rule-1"}, started={"a", "b", "rule-1", "c"}) == ["rule-2"]


def test_a_step_that_cannot_say_what_it_touches_runs_alone() -> None:
    nodes = [node("a", touches="x"), node("manual", touches=None), node("b", touches="y")]
    assert startable(nodes, finished=(), started=()) == ["a"]  # neither the barrier nor what follows it
    assert startable(nodes, finished={"a"}, started={"a"}) == ["manual"]
    assert startable(nodes, finished={"a", "manual"}, started={"a", "manual"}) == ["b"]
    assert conflicts(node("x", touches="p"), node("y", touches=None))
    assert not conflicts(node("x", gives="n", touches="p"), node("y", needs="m", touches="q"))


def test_a_touch_that_names_a_value_not_known_yet_conflicts_with_anything_of_its_kind() -> None:
    table = Node("routes", frozenset({"subnet"}), frozenset(), frozenset({f"subnet-association:{wildcard('subnet')}"}))
    assert not conflicts(table, node("group", touches="security-group:vpc-1:SG-POS-OPS"))
    assert conflicts(table, node("other-table", touches="subnet-association:subnet-0a1b"))  # may be that subnet
    named = Node("t", frozenset({"vpc"}), frozenset(), frozenset({f"route-table:{wildcard('vpc')}:POS-public"}))
    assert conflicts(named, node("u", touches="route-table:vpc-1:POS-private"))  # unknown: taken as the same
    assert conflicts(table, Node("v", frozenset(), frozenset(), frozenset({f"subnet-{wildcard('x')}"})))


class Meeting:
    """A step type whose act, for the steps of `meet`, waits (up to 10 s) until all of them are in it at once:
    they can only pass when the engine runs them concurrently. Names what it touches by its `key`."""

    name: ClassVar[str] = "test.meet"
    summary: ClassVar[str] = "Set a key, meeting the other acts."
    params: ClassVar[tuple[Param, ...]] = (Param(name="key"), Param(name="value", kind="any"))
    outputs: ClassVar[tuple[str, ...]] = ("value",)

    def __init__(self, world: dict[str, object], meet: frozenset[str] = frozenset({"one", "two", "three"}),
                 fail: str = "") -> None:
        self.world, self.meet, self.fail = world, meet, fail
        self.barrier = threading.Barrier(max(len(meet), 1), timeout=10)
        self.threads: dict[str, str] = {}
        self.events: list[str] = []

    def touches(self, params: Mapping[str, Any]) -> frozenset[str]:
        return frozenset({str(params["key"])})

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        done = self.world.get(params["key"]) == params["value"]
        return Probe(done=done, outputs={"value": params["value"]} if done else {})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        self.threads[ctx.step_id] = threading.current_thread().name
        self.events.append(f"in {ctx.step_id}")
        if ctx.step_id in self.meet:
            self.barrier.wait()
        if ctx.step_id == self.fail:
            from kensium_provision.errors import StepError

            raise StepError(f"{ctx.step_id} broke")
        self.world[params["key"]] = params["value"]
        self.events.append(f"out {ctx.step_id}")
        return {"value": params["value"]}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        return ()


CHECKLIST = """\
schema: 1
id: meet
title: Meet
scope: shared
steps:
  - {id: first, title: First, type: test.meet, risk: create, params: {key: first, value: v0}, outputs: {v0: value}}
  - {id: one, title: One, type: test.meet, risk: create, params: {key: one, value: "{{ v0 }}-1"}, outputs: {v1: value}}
  - {id: two, title: Two, type: test.meet, risk: create, params: {key: two, value: "{{ v0 }}-2"}, outputs: {v2: value}}
  - {id: three, title: Three, type: test.meet, risk: create, params: {key: three, value: x}}
  - {id: after, title: After, type: test.meet, risk: create, params: {key: alone, value: "{{ v1 }}+{{ v2 }}"}}
"""


class Seen:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def step_started(self, step_id: str, title: str) -> None:
        self.lines.append(f"start {step_id}")

    def step_finished(self, result: StepResult) -> None:
        self.lines.append(f"end {result.step_id}")

    def progress(self, step_id: str, message: str) -> None:
        return None


def _run(meet: Meeting, **kwargs: Any) -> tuple[Any, Seen, NullJournal]:
    seen, journal = Seen(), NullJournal()
    runtime = make_runtime(Mode.APPLY, reporter=seen, journal=journal, **kwargs)
    types: dict[str, StepType] = {"test.meet": meet}
    return run(load_checklist_text(CHECKLIST, types=types), runtime, {}, types=types), seen, journal


def test_apply_runs_independent_steps_at_once_and_reports_them_in_checklist_order() -> None:
    world: dict[str, object] = {}
    meet = Meeting(world)  # one, two and three only pass their act together

    report, seen, journal = _run(meet)

    assert report.exit_code == ExitCode.OK, report.results
    assert [r.status for r in report.results] == [Status.CHANGED] * 5
    assert world["alone"] == "v0-1+v0-2"  # the step after waited for both outputs it names
    assert meet.threads["first"] == threading.current_thread().name  # the first change: its hook, here
    assert meet.events.index("in after") > max(meet.events.index("out one"), meet.events.index("out two"))
    assert len({meet.threads[s] for s in ("one", "two", "three")}) == 3
    ids = ["first", "one", "two", "three", "after"]
    assert seen.lines == [line for s in ids for line in (f"start {s}", f"end {s}")]
    assert [r["step"] for r in journal.records if r["event"] == "step.result"] == ids


def test_a_step_waiting_for_a_name_does_not_hold_back_later_steps_of_another_kind() -> None:
    """`waiting` touches a key made of v1, which `one` gives: until then a wildcard stands in, and `other`
    (another key) starts with `one`: the two meet in their acts. (Before: `waiting` could not say what it
    touches, so `other` waited behind it, and the meeting timed out.)"""
    kept = CHECKLIST.split("  - {id: two")[0]  # first, one
    text = kept + """\
  - {id: waiting, title: Waiting, type: test.meet, risk: create, params: {key: "slot-{{ v1 }}", value: w}}
  - {id: other, title: Other, type: test.meet, risk: create, params: {key: other, value: x}}
"""
    world: dict[str, object] = {}
    meet = Meeting(world, meet=frozenset({"one", "other"}))
    types: dict[str, StepType] = {"test.meet": meet}
    report = run(load_checklist_text(text, types=types), make_runtime(Mode.APPLY, reporter=Seen()), {}, types=types)
    assert report.exit_code == ExitCode.OK, report.results
    assert world == {"first": "v0", "one": "v0-1", "slot-v0-1": "w", "other": "x"}
    assert meet.events.index("in waiting") > meet.events.index("out one")


def test_steps_that_change_the_same_thing_run_in_turn() -> None:
    world: dict[str, object] = {}
    meet = Meeting(world, meet=frozenset({"one", "two"}))
    text = CHECKLIST.replace("key: three", "key: two")  # three changes what two changes: it waits for two
    runtime = make_runtime(Mode.APPLY, reporter=Seen())

    types: dict[str, StepType] = {"test.meet": meet}
    report = run(load_checklist_text(text, types=types), runtime, {}, types=types)

    assert report.exit_code == ExitCode.OK, report.results
    assert meet.events.index("in three") > meet.events.index("out two")


def test_a_failure_starts_nothing_more_and_waits_for_the_steps_in_flight() -> None:
    world: dict[str, object] = {}
    meet = Meeting(world, fail="two")

    report, _, journal = _run(meet)

    assert report.exit_code == ExitCode.FAILED
    statuses = {r.step_id: r.status for r in report.results}
    assert statuses == {"first": Status.CHANGED, "one": Status.CHANGED, "two": Status.FAILED,
                        "three": Status.CHANGED, "after": Status.PENDING}
    assert "alone" not in world and world["three"] == "x"  # in flight: finished; the next: never started
    assert [r["step"] for r in journal.records if r["event"] == "step.result"] == ["first", "one", "two", "three"]


def test_without_yes_every_question_is_asked_on_the_run_s_thread_in_order() -> None:
    world: dict[str, object] = {}
    meet = Meeting(world, meet=frozenset())
    operator = ScriptedOperator()
    asked_on: list[str] = []
    confirm = operator.confirm

    def on_thread(message: str, *, default: bool = False, key: str = "") -> bool:
        asked_on.append(threading.current_thread().name)
        return confirm(message, default=default, key=key)

    operator.confirm = on_thread  # type: ignore[method-assign]
    report, _, _ = _run(meet, operator=operator, assume_yes=False)

    assert report.exit_code == ExitCode.OK
    assert operator.confirmed == [f"Create: {t}?" for t in ("First", "One", "Two", "Three", "After")]
    assert set(asked_on) == {threading.current_thread().name}
    assert set(meet.threads.values()) == {threading.current_thread().name}  # each step alone, when it may ask


@pytest.mark.parametrize("mode", [Mode.PLAN, Mode.CHECK])
def test_plan_and_check_keep_one_step_at_a_time(mode: Mode) -> None:
    meet = Meeting({})
    runtime = make_runtime(mode, reporter=Seen())
    types: dict[str, StepType] = {"test.meet": meet}
    report = run(load_checklist_text(CHECKLIST, types=types), runtime, {}, types=types)
    assert meet.threads == {}  # nothing acted
    assert len(report.results) == 5
