"""The engine: plan and check only probe, apply acts and verifies, outputs flow, `when` skips."""

from __future__ import annotations

import pytest

from kensium_provision.checklist.schema import load_checklist_text
from kensium_provision.engine.run import resolve_inputs, run
from kensium_provision.errors import AbortedError, ExitCode, InputError
from kensium_provision.model import Mode, Status
from kensium_provision.runtime import NullJournal
from kensium_provision.steps import registry
from tests.fakes import RecordingStep, ScriptedOperator, make_runtime

TEXT = """
schema: 1
id: fake
title: Fake
scope: shared
inputs:
  - {id: name, type: string, prompt: "Name?", rule: any-rule}
  - {id: hosting, type: choice, prompt: "Hosting?", choices: [Shared, Dedicated]}
steps:
  - id: first
    title: First
    type: fake.set
    risk: create
    params: {key: a, value: "{{ name }}"}
    outputs: {first_value: value}
  - id: second
    title: Second
    type: fake.set
    risk: modify
    params: {key: b, value: "from-{{ first_value }}"}
  - id: dedicated-only
    title: Dedicated only
    type: fake.set
    risk: create
    when: {name: hosting, equals: Dedicated}
    params: {key: c, value: x}
"""


@pytest.fixture
def world() -> dict[str, object]:
    return {}


def _setup(world: dict[str, object]) -> tuple[object, RecordingStep, dict[str, object]]:
    step = RecordingStep(world)
    types = {**registry(), step.name: step}
    checklist = load_checklist_text(TEXT, "fake.yaml", types=types)
    return checklist, step, types


@pytest.mark.parametrize("mode", [Mode.PLAN, Mode.CHECK])
def test_plan_and_check_never_act(world: dict[str, object], mode: Mode) -> None:
    checklist, step, types = _setup(world)
    runtime = make_runtime(mode)
    report = run(checklist, runtime, {"name": "acme", "hosting": "Shared"}, types=types)
    assert [c for c, _ in step.calls if c == "act"] == []
    assert world == {}
    if mode is Mode.PLAN:
        assert [r.status for r in report.results] == [Status.CHANGE, Status.DEPENDS, Status.SKIPPED]
        assert report.results[1].reason == "needs first_value"
        assert report.exit_code is ExitCode.OK
    else:
        assert report.exit_code is ExitCode.FAILED
        assert report.findings[0].step_id == "first"


def test_apply_acts_verifies_and_feeds_outputs(world: dict[str, object]) -> None:
    checklist, step, types = _setup(world)
    report = run(checklist, make_runtime(Mode.APPLY), {"name": "acme", "hosting": "Shared"}, types=types)
    assert world == {"a": "acme", "b": "from-acme"}
    assert [r.status for r in report.results] == [Status.CHANGED, Status.CHANGED, Status.SKIPPED]
    assert report.results[2].reason == "only when hosting is 'Dedicated'"
    assert ("act", "dedicated-only") not in step.calls


def test_second_apply_changes_nothing_and_plan_shows_done(world: dict[str, object]) -> None:
    checklist, step, types = _setup(world)
    run(checklist, make_runtime(Mode.APPLY), {"name": "acme", "hosting": "Shared"}, types=types)
    step.calls.clear()
    again = run(checklist, make_runtime(Mode.APPLY), {"name": "acme", "hosting": "Shared"}, types=types)
    assert [c for c, _ in step.calls if c == "act"] == []
    assert [r.status for r in again.results][:2] == [Status.DONE, Status.DONE]
    plan = run(checklist, make_runtime(Mode.PLAN), {"name": "acme", "hosting": "Shared"}, types=types)
    assert [r.status for r in plan.results][:2] == [Status.DONE, Status.DONE]


def test_check_reports_drift_naming_step_and_difference(world: dict[str, object]) -> None:
    checklist, _, types = _setup(world)
    run(checklist, make_runtime(Mode.APPLY), {"name": "acme", "hosting": "Shared"}, types=types)
    world["b"] = "tampered"
    report = run(checklist, make_runtime(Mode.CHECK), {"name": "acme", "hosting": "Shared"}, types=types)
    assert report.exit_code is ExitCode.FAILED
    [finding] = report.findings
    assert finding.step_id == "second"
    assert finding.message == "Second: value: is 'tampered', should be 'from-acme'"


def test_declined_confirmation_aborts_before_act(world: dict[str, object]) -> None:
    checklist, step, types = _setup(world)
    runtime = make_runtime(Mode.APPLY, operator=ScriptedOperator(confirm=False), assume_yes=False)
    with pytest.raises(AbortedError):
        run(checklist, runtime, {"name": "acme", "hosting": "Shared"}, types=types)
    assert world == {}


def test_journal_records_intent_before_result(world: dict[str, object]) -> None:
    checklist, _, types = _setup(world)
    journal = NullJournal()
    run(checklist, make_runtime(Mode.APPLY, journal=journal), {"name": "acme", "hosting": "Shared"}, types=types)
    events = [(r["event"], r.get("step")) for r in journal.records]
    assert events.index(("step.intent", "first")) < events.index(("step.result", "first"))


def test_inputs_validated_against_rule(world: dict[str, object]) -> None:
    checklist, _, _ = _setup(world)
    runtime = make_runtime(Mode.PLAN, operator=ScriptedOperator({"name": "BAD", "hosting": "Shared"}))
    with pytest.raises(InputError, match="name: 'BAD' breaks naming rule any-rule"):
        resolve_inputs(checklist, runtime)


def test_inputs_reject_control_characters(world: dict[str, object]) -> None:
    checklist, _, _ = _setup(world)
    runtime = make_runtime(Mode.PLAN, operator=ScriptedOperator({"name": "ac\x1b[2Jme", "hosting": "Shared"}))
    with pytest.raises(InputError, match="control or format character"):
        resolve_inputs(checklist, runtime)


def test_choice_outside_choices_is_refused(world: dict[str, object]) -> None:
    checklist, _, _ = _setup(world)
    runtime = make_runtime(Mode.PLAN, operator=ScriptedOperator({"name": "acme", "hosting": "Cloud"}))
    with pytest.raises(InputError, match="must be one of: Shared, Dedicated"):
        resolve_inputs(checklist, runtime)


def test_aws_sdk_error_in_a_step_is_a_failed_step_not_a_crash(world: dict[str, object]) -> None:
    from botocore.exceptions import ClientError

    class Denied:
        name = "ec2.denied"
        summary = "raises AccessDenied"
        params = ()
        outputs = ()

        def probe(self, ctx: object, params: object) -> object:
            raise ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "You are not authorized"}},
                              "DescribeVpcs")

    types = {**registry(), "ec2.denied": Denied()}
    checklist = load_checklist_text(
        "schema: 1\nid: d\ntitle: D\nscope: shared\nsteps:\n  - {id: look, title: Look, type: ec2.denied, risk: read}\n",
        "d.yaml", types=types)
    report = run(checklist, make_runtime(Mode.PLAN), {}, types=types)
    [result] = report.results
    assert result.status is Status.FAILED
    assert "ec2:DescribeVpcs" in result.reason and "UnauthorizedOperation" in result.reason


def test_prompts_show_the_answers_given_so_far(world: dict[str, object]) -> None:
    checklist = load_checklist_text(
        "schema: 1\nid: p\ntitle: P\nscope: client\ninputs:\n"
        "  - {id: org_id, type: string, prompt: 'Org?'}\n"
        "  - {id: signoff, type: string, prompt: 'Who signed off {{ org_id }}?', help: 'host {{ org_id }}.<domain>'}\n"
        "steps:\n  - {id: tell, title: Tell, type: manual, risk: read, params: {instructions: hi}}\n", "p.yaml")
    seen: list[tuple[str, str]] = []

    class Recording(ScriptedOperator):
        def ask(self, spec, **kwargs):  # type: ignore[no-untyped-def]
            seen.append((spec.prompt, spec.help))
            return super().ask(spec, **kwargs)

    resolve_inputs(checklist, make_runtime(Mode.PLAN, operator=Recording({"org_id": "acme", "signoff": "Jane"})))
    assert seen[1] == ("Who signed off acme?", "host acme.<domain>")
