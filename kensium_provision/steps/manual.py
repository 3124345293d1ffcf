"""The `manual` step type: do-nothing scripting for work kprov cannot do through an API.

It shows instructions, collects typed evidence (validated like any input, and journaled), and uses
a read-only probe where one exists, so automating the step later changes no checklist around it.

The rest of kprov knows it only through the optional capabilities of `steps.base`: it collects
evidence, it is confirmed by hand, it may lack a probe, and it gives instructions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from kensium_provision.errors import AbortedError, InputError
from kensium_provision.model import InputSpec
from kensium_provision.steps.base import Difference, Param, Probe, StepContext
from kensium_provision.steps.generic import AwsAssert
from kensium_provision.steps.kinds import TEXT_KINDS, coerce_answer

__all__ = ["Manual", "evidence_specs"]

EVIDENCE_KEYS = {"id", "prompt", "type", "rule", "choices", "help"}
EVIDENCE_TYPES = ("string", "choice", "bool", "int", *TEXT_KINDS)


def evidence_specs(params: Mapping[str, Any]) -> list[InputSpec]:
    """The evidence a manual step asks for, as input specs."""
    specs = []
    items = params.get("evidence") or ()
    if not isinstance(items, (list, tuple)):
        raise InputError(f"evidence is a list of items with id and prompt (and {', '.join(sorted(EVIDENCE_KEYS))})")
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or set(item) - EVIDENCE_KEYS:
            raise InputError(f"evidence items need id and prompt, and only {', '.join(sorted(EVIDENCE_KEYS))}")
        if not isinstance(item.get("choices") or (), (list, tuple)):
            raise InputError(f"evidence {item['id']}: choices is a list")
        if str(item.get("type", "string")) not in EVIDENCE_TYPES:
            raise InputError(f"evidence {item['id']}: type {item.get('type')} is not one of: "
                             f"{', '.join(EVIDENCE_TYPES)}")
        specs.append(InputSpec(id=item["id"], type=str(item.get("type", "string")), prompt=str(item.get("prompt", "")),
                               help=str(item.get("help", "")), rule=str(item.get("rule", "")),
                               choices=tuple(item.get("choices") or ()), evidence=True))
    return specs


class Manual:
    """A step an operator does by hand: instructions, typed evidence, and an optional probe.

    Example: `instructions: Install POS {{ pos_version }} on {{ host }}`, `evidence: [{id:
    installed_version, prompt: Installed POS version, type: string}]`, `probe: {service: ec2,
    operation: DescribeTags, ...}` (the aws.assert parameters).
    """

    name: ClassVar[str] = "manual"
    summary: ClassVar[str] = "Instructions for the operator, typed evidence, and an optional read-only probe."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="instructions", doc="What to do, step by step (templates allowed)."),
        Param(name="evidence", kind="list", required=False,
              doc="Typed answers the operator gives when done: [{id, prompt, type, rule, choices}]."),
        Param(name="probe", kind="map", required=False,
              doc="An aws.assert (service, operation, params, query, comparison) telling if it is done."),
        Param(name="confirm", required=False, doc="The question asked when done (default: 'Done?')."),
    )
    outputs: ClassVar[tuple[str, ...]] = ()  # the evidence ids
    confirmed_by_hand: ClassVar[bool] = True  # act asks "Done?" (or for evidence); --yes never answers it

    def evidence(self, params: Mapping[str, Any]) -> list[InputSpec]:
        return evidence_specs(params)

    def has_probe(self, params: Mapping[str, Any]) -> bool:
        return bool(params.get("probe"))

    def instructions(self, params: Mapping[str, Any]) -> str:
        return str(params.get("instructions", ""))

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        check = params.get("probe")
        if not check:
            return Probe(done=False, note="manual: the operator does this and confirms it",
                         desired={"instructions": params["instructions"]})
        found = AwsAssert().probe(ctx, check)
        known = {spec.id: ctx.values[spec.id] for spec in evidence_specs(params) if spec.id in ctx.values}
        return Probe(done=found.done, note=found.note, current=found.current, differences=found.differences,
                     desired={"instructions": params["instructions"]}, outputs=known if found.done else {})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        operator = ctx.runtime.operator
        operator.instruct(ctx.step_id, str(params["instructions"]))
        evidence: dict[str, object] = {}
        for spec in evidence_specs(params):
            evidence[spec.id] = operator.ask(spec, default=None, choices=spec.choices,
                                             validate=_validator(ctx, spec))
        if not evidence:
            question = str(params.get("confirm") or "Done?")
            if not operator.confirm(question, default=False, key=ctx.step_id):
                raise AbortedError(f"step {ctx.step_id} was not confirmed as done")
        return evidence

    def not_undoable(self, params: Mapping[str, Any]) -> str:
        """A person did it, so a person undoes it: what they did, in the instructions' first line."""
        first = next((line.strip() for line in str(params.get("instructions") or "").splitlines() if line.strip()), "")
        return "a person did this step, not kprov: undo it by hand" + (f" (it was: {first})" if first else "")

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        check = params.get("probe")
        return AwsAssert().verify(ctx, check) if check else ()


def _validator(ctx: StepContext, spec: InputSpec) -> Any:
    """Evidence is checked as any answer is (`steps.kinds.coerce_answer`): its type, choices and rule."""
    def validate(value: object) -> str | None:
        return coerce_answer(spec, value, names=ctx.runtime.names, context=ctx.values)[1]

    return validate
