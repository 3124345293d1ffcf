"""The engine: plan and check only probe, apply acts and verifies, outputs flow, `when` skips."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pytest

from kensium_provision.checklist.schema import load_checklist_text
from kensium_provision.engine.run import resolve_inputs, run
from kensium_provision.errors import AbortedError, ChecklistError, ExitCode, InputError
from kensium_provision.model import Checklist, InputSpec, Mode, Status
from kensium_provision.runtime import NullJournal
from kensium_provision.steps import registry
from kensium_provision.steps.base import Difference, Param, Probe, StepContext, StepType
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


def _setup(world: dict[str, object]) -> tuple[Checklist, RecordingStep, dict[str, StepType]]:
    step = RecordingStep(world)
    types: dict[str, StepType] = {**registry(), step.name: step}
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
    assert report.results[2].reason == "only when hosting is Dedicated"  # words, not a Python repr (issue 15)
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
    assert finding.message == "Second: value: tampered, should be from-acme"


def test_declined_confirmation_aborts_before_act(world: dict[str, object]) -> None:
    checklist, _, types = _setup(world)
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
        name: ClassVar[str] = "ec2.denied"
        summary: ClassVar[str] = "raises AccessDenied"
        params: ClassVar[tuple[Param, ...]] = ()
        outputs: ClassVar[tuple[str, ...]] = ()

        def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
            raise ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "You are not authorized"}},
                              "DescribeVpcs")

        def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
            raise AssertionError("a plan never acts")

        def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
            raise AssertionError("the probe failed first")

    types: dict[str, StepType] = {**registry(), "ec2.denied": Denied()}
    checklist = load_checklist_text(
        "schema: 1\nid: d\ntitle: D\nscope: shared\nsteps:\n"
        "  - {id: look, title: Look, type: ec2.denied, risk: read}\n", "d.yaml", types=types)
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


# --- optional capabilities: the engine never names a step type -----------------------------------------------


class HandWork:
    """A step a person does, with every optional capability of `steps.base`, under a name kprov has never heard of."""

    name: ClassVar[str] = "fake.handwork"
    summary: ClassVar[str] = "Work done by hand."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="instructions"), Param(name="evidence", kind="list", required=False),
        Param(name="checked", kind="bool", required=False))
    outputs: ClassVar[tuple[str, ...]] = ()
    confirmed_by_hand: ClassVar[bool] = True

    def __init__(self) -> None:
        self.acts: list[str] = []

    def evidence(self, params: Mapping[str, Any]) -> list[InputSpec]:
        if not isinstance(params.get("evidence", []), list):
            raise InputError("evidence is a list of names")
        return [InputSpec(id=str(e), type="string", prompt=f"{e}?", evidence=True) for e in params.get("evidence", [])]

    def has_probe(self, params: Mapping[str, Any]) -> bool:
        return bool(params.get("checked"))

    def instructions(self, params: Mapping[str, Any]) -> str:
        return str(params["instructions"])

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        return Probe(done=False, note="done by hand")

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        self.acts.append(ctx.step_id)
        return {spec.id: ctx.runtime.operator.ask(spec, default=None, choices=(), validate=lambda value: None)
                for spec in self.evidence(params)}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        return ()


HANDWORK = """
schema: 1
id: handwork
title: Handwork
scope: shared
inputs:
  - {id: name, type: string, prompt: "Name?"}
steps:
  - id: install-by-hand
    title: Install by hand
    type: fake.handwork
    risk: create
    params: {instructions: "Install {{ name }}\\nThen reboot.", evidence: [installed_version]}
  - id: keep-version
    title: Keep the version
    type: fake.set
    risk: create
    params: {key: version, value: "{{ installed_version }}"}
"""


def _handwork(world: dict[str, object]) -> tuple[Checklist, HandWork, dict[str, StepType]]:
    hand = HandWork()
    types: dict[str, StepType] = {**registry(), hand.name: hand, RecordingStep.name: RecordingStep(world)}
    return load_checklist_text(HANDWORK, "handwork.yaml", types=types), hand, types


def test_evidence_ids_are_names_later_steps_use_and_a_plan_waits_for(world: dict[str, object]) -> None:
    checklist, hand, types = _handwork(world)  # the loader took {{ installed_version }} as defined
    report = run(checklist, make_runtime(Mode.PLAN), {"name": "acme"}, types=types)
    assert [(r.status, r.reason) for r in report.results] == [
        (Status.CHANGE, "done by hand"), (Status.DEPENDS, "needs installed_version")]
    assert hand.acts == []


def test_apply_binds_evidence_and_asks_no_confirmation_of_its_own_for_work_by_hand(
        world: dict[str, object]) -> None:
    checklist, hand, types = _handwork(world)
    operator = ScriptedOperator({"installed_version": "3.10.2"})
    report = run(checklist, make_runtime(Mode.APPLY, operator=operator, assume_yes=False), {"name": "acme"},
                 types=types)
    assert [r.status for r in report.results] == [Status.CHANGED, Status.CHANGED]
    assert report.results[0].outputs == {"installed_version": "3.10.2"}
    assert world == {"version": "3.10.2"}
    assert hand.acts == ["install-by-hand"]
    assert operator.confirmed == ["Create: Keep the version?"]  # the engine asked only for the automated step


def test_check_skips_a_step_without_a_probe_and_what_needs_its_evidence(world: dict[str, object]) -> None:
    checklist, _, types = _handwork(world)
    report = run(checklist, make_runtime(Mode.CHECK), {"name": "acme"}, types=types)
    assert [(r.status, r.reason) for r in report.results] == [
        (Status.SKIPPED, "fake.handwork step without a probe: not checkable"),
        (Status.DEPENDS, "needs installed_version")]
    assert report.exit_code is ExitCode.OK


def test_check_reports_a_step_with_a_probe_that_is_not_done(world: dict[str, object]) -> None:
    _, _, types = _handwork(world)
    checked = HANDWORK.replace("evidence: [installed_version]}", "evidence: [installed_version], checked: true}")
    report = run(load_checklist_text(checked, "handwork.yaml", types=types), make_runtime(Mode.CHECK),
                 {"name": "acme"}, types=types)
    assert report.results[0].status is Status.FAILED
    assert [f.message for f in report.findings] == ["Install by hand: not done (done by hand)"]


def test_resume_keeps_the_journaled_evidence_of_a_step_without_a_probe(world: dict[str, object]) -> None:
    checklist, hand, types = _handwork(world)
    report = run(checklist, make_runtime(Mode.APPLY), {"name": "acme"}, types=types,
                 recorded={"install-by-hand": {"installed_version": "3.10.2"}})
    first = report.results[0]
    assert (first.status, first.reason) == (Status.DONE, "done earlier in this run (journaled evidence)")
    assert hand.acts == []
    assert world == {"version": "3.10.2"}


def test_answers_files_know_the_evidence_ids(world: dict[str, object]) -> None:
    from kensium_provision.checklist.answers import _known_ids

    checklist, _, types = _handwork(world)
    assert sorted(_known_ids(checklist, types)) == ["installed_version", "name"]
    assert sorted(_known_ids(checklist, registry())) == ["name"]  # without the type, no evidence


def test_the_loader_reports_a_malformed_evidence_list_at_its_step(world: dict[str, object]) -> None:
    _, _, types = _handwork(world)
    broken = HANDWORK.replace("evidence: [installed_version]", 'evidence: "{{ name }}"')
    with pytest.raises(ChecklistError) as caught:
        load_checklist_text(broken, "handwork.yaml", types=types)
    assert "handwork.yaml:9:5: steps[0] (id=install-by-hand) › params: evidence is a list of names" in str(caught.value)


def test_a_manual_step_has_every_capability() -> None:
    from kensium_provision.steps.base import confirmed_by_hand, evidence_of, has_probe, instructions_of

    manual = registry()["manual"]
    params = {"instructions": "Do it", "evidence": [{"id": "done_by", "prompt": "Who did it?"}]}
    assert [spec.id for spec in evidence_of(manual, params)] == ["done_by"]
    assert confirmed_by_hand(manual) and not has_probe(manual, params) and instructions_of(manual, params) == "Do it"
    assert has_probe(manual, {**params, "probe": {"service": "ec2"}})
    automated = registry()["aws.assert"]
    assert (evidence_of(automated, params), confirmed_by_hand(automated), has_probe(automated, {}),
            instructions_of(automated, params)) == ((), False, True, "")


@pytest.mark.parametrize(("op", "value", "says"), [
    ("equals", "Dedicated", "db_hosting is Dedicated"),
    ("not_equals", "Shared", "db_hosting is not Shared"),
    ("in", ["Dedicated", "Shared"], "db_hosting is one of Dedicated, Shared"),
    ("is", True, "db_hosting is true"),
    ("equals", "", "db_hosting is empty"),
])
def test_a_condition_is_described_in_words_without_python_reprs(op: str, value: object, says: str) -> None:
    from kensium_provision.model import Condition

    assert Condition(name="db_hosting", op=op, value=value).describe() == says


def test_a_clean_reapply_reports_0_changed_and_counts_work_by_hand_apart(world: dict[str, object]) -> None:
    """Issue 15: a re-apply of a done checklist said "1 changed" (each probeless manual step it asked again)."""
    import io

    from kensium_provision.ui import render

    checklist, _, types = _handwork(world)
    operator = ScriptedOperator({"installed_version": "3.10.2"})
    for _ in range(2):
        report = run(checklist, make_runtime(Mode.APPLY, operator=operator), {"name": "acme"}, types=types)
    made = render.make_console(io.StringIO())
    render.print_report(made, report)
    assert isinstance(made.file, io.StringIO)
    assert "Apply complete: 0 changed, 1 confirmed by hand, 1 already done, 0 skipped." in made.file.getvalue()
    assert [r.kprov_changed for r in report.results] == [False, False]
