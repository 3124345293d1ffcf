"""Answers files: the operator for unattended runs (`--answers FILE`, `--non-interactive`).

An answers file is YAML: input ids (and manual-step evidence ids) to values, plus `confirm:` for
manual steps without evidence. It is validated against the checklist before any AWS call, through the
schema reader every kprov YAML file goes through (`answers_schema`, made from the checklist); a
missing answer is an error naming the input, never a hang and never a silently guessed live
default. Secrets are never literals in a file: a secret answer is `vault:<reference>`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from kensium_provision.errors import ChecklistError, InputError, Issue
from kensium_provision.model import Checklist, InputSpec
from kensium_provision.runtime import Operator
from kensium_provision.steps import registry
from kensium_provision.steps.base import StepType, evidence_of
from kensium_provision.yamlio import Loc, load_file
from kensium_provision.yamlschema import Anything, Bool, Field, Int, Kind, Map, MapOf, Reader, Str

__all__ = ["Answers", "AnswersOperator", "answers_schema", "check_given", "load_answers", "refuse_missing"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Answers:
    """Validated answers: values by input id, manual confirmations, positions for messages."""

    values: Mapping[str, object] = field(default_factory=dict)
    confirm: Mapping[str, bool] = field(default_factory=dict)
    locs: Mapping[str, Loc] = field(default_factory=dict)
    path: str = ""


def _known_ids(checklist: Checklist, types: Mapping[str, StepType] | None = None) -> dict[str, InputSpec]:
    """The inputs, and the evidence of every step whose type collects some (`steps.base.CollectsEvidence`)."""
    types = registry() if types is None else types
    known = {spec.id: spec for spec in checklist.inputs}
    for step in checklist.steps:
        known.update({spec.id: spec for spec in evidence_of(types.get(step.type), step.params)})
    return known


_VAULT = Str(pattern=r"^vault:\S+$", expect="a vault reference (vault:<reference>), never the secret itself",
             conceal=True)
_ANSWER_KINDS: Mapping[str, Kind] = {"string": Str(), "choice": Str(), "bool": Bool(), "int": Int(), "secret": _VAULT}


def answers_schema(checklist: Checklist, types: Mapping[str, StepType] | None = None) -> Map:
    """What an answers file for this checklist may hold: each input and evidence id with its type,
    `confirm:` (step ids to true or false) and `confirm_target:` (a protected environment's typed
    confirmation). A secret answer is a vault reference, and no message ever shows what was written."""
    special = (
        Field("confirm", MapOf(Bool(), keys=Str(choices=tuple(s.id for s in checklist.steps))),
              doc="Work done by hand: {step id: true}; --yes never says so."),
        Field("confirm_target", Str(), doc="The org id or resource name a protected environment has typed."),
    )
    fields = tuple(Field(spec.id, _ANSWER_KINDS.get(spec.type, Anything()), doc=spec.prompt)
                   for spec in _known_ids(checklist, types).values() if spec.id not in ("confirm", "confirm_target"))
    return Map((*fields, *special), name="answers", noun="input", owner=f" for {checklist.id}")


def load_answers(path: Path, checklist: Checklist) -> Answers:
    """Read an answers file and check its keys and value types against the checklist (every issue at once)."""
    root = load_file(path)
    reader = Reader()
    answers = reader.record(root, answers_schema(checklist), "")
    reader.fail()
    if answers is None:  # pragma: no cover - a None record always comes with an issue
        raise ChecklistError([root.loc.issue("", "an answers file is a mapping of input ids to answers")])
    written = answers.get("confirm")
    confirm = {k: v for k, v in written.items() if isinstance(v, bool)} if isinstance(written, dict) else {}
    values = {k: v for k, v in answers.values.items() if k != "confirm"}
    locs = {k: answers.loc(k) for k in values if k != "confirm_target"}
    return Answers(values=values, confirm=confirm, locs=locs, path=str(path))


def _problems(spec: InputSpec, value: object, checklist: Checklist, types: Mapping[str, StepType], names: object,
              context: Mapping[str, object]) -> list[str]:
    """An answer's problems: its type and rules (choices known offline only), then the checks of every step
    that uses it (`checklist.checks`)."""
    from kensium_provision.checklist.checks import input_problems
    from kensium_provision.steps.base import CheckContext
    from kensium_provision.steps.kinds import coerce_answer

    if spec.type == "secret":
        return []  # a vault reference; the value is checked where it is fetched
    if spec.type == "choice" and not spec.choices:
        spec = replace(spec, type="string")  # live choices: asked of AWS at run time
    value, problem = coerce_answer(spec, value, names=names, context=context)
    if problem:
        return [f"{_shown(value)} {problem}"]
    if spec.evidence and spec.id not in {s.id for s in checklist.inputs}:
        return []  # a manual step's evidence: its step has run by the time it is given
    return [str(p) for p in input_problems(checklist, types, CheckContext(names), spec, value, context)]


def _shown(value: object) -> str:
    return f"\"{value}\"" if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)


def check_given(checklist: Checklist, names: object, answers: Answers | None = None,
                preset: Mapping[str, object] | None = None, types: Mapping[str, StepType] | None = None) -> None:
    """Every answer of an answers file and every argument (`install-client ORG`) against its type, its rules
    and the checks of the steps that use it, before any AWS call: all problems at once, an answer at its
    line in the file (ChecklistError), an argument by its name (InputError); exit 3 either way."""
    types = registry() if types is None else types
    known = _known_ids(checklist, types)
    preset = dict(preset or {})
    given = {**(answers.values if answers is not None else {}), **preset}
    context = {k: v for k, v in given.items() if k in known}
    wrong = [f"{key}: {p}" for key, value in preset.items() if key in known
             for p in _problems(known[key], value, checklist, types, names, context)]
    if wrong:
        raise InputError("; ".join(wrong), hint="nothing was attempted; correct the argument and run again")
    issues: list[Issue] = []
    for key, value in (answers.values if answers is not None else {}).items():
        spec, loc = known.get(key), answers.locs.get(key) if answers is not None else None
        if spec is not None and loc is not None and key not in preset:
            issues += [loc.issue(key, p) for p in _problems(spec, value, checklist, types, names, context)]
    if issues:
        raise ChecklistError(issues)


def _taken_without_asking(spec: InputSpec) -> bool:
    """A default written in the checklist (reviewed, and shown in the plan) answers an unattended run; one
    found live never does (it could change between the plan and the apply)."""
    return spec.default is not None and spec.default_from is None and spec.choices_from is None


def refuse_missing(checklist: Checklist, answers: Answers | None, preset: Mapping[str, object]) -> None:
    """Without a terminal: every input the run will need that neither the answers file, the arguments nor a
    written default gives, all at once and before any AWS call (exit 3), instead of one per attempt. An
    input under a `when` that the given answers do not decide is left to the run (it names it then)."""
    values: dict[str, object] = {**(answers.values if answers is not None else {}), **preset}
    missing = []
    for spec in checklist.inputs:
        if spec.when is not None and not spec.when.holds(values):
            continue
        if spec.id not in values:
            if _taken_without_asking(spec):
                values[spec.id] = spec.default
            else:
                missing.append(f"{spec.id} ({spec.prompt})")
    if missing:
        source = f" in {answers.path}" if answers is not None and answers.path else ""
        raise InputError(f"missing answer{'s' if len(missing) > 1 else ''}{source}: {'; '.join(missing)}",
                         hint="add them to the answers file (nothing was attempted), or run in a terminal")


class AnswersOperator:
    """Answers from a file. Without a terminal it never prompts; with one (`terminal`, the person at the
    keyboard) what the file lacks is asked there, a checklist default offered rather than taken silently,
    and every confirmation the file does not give (the plan's one yes, a protected environment's typed
    target, work done by hand) is asked there too: a file makes a run shorter, never one nobody confirms."""

    def __init__(self, answers: Answers, *, assume_yes: bool = False,
                 fetch_secret: Callable[[str], object] | None = None,
                 notes: Callable[[str, str], None] | None = None, terminal: Operator | None = None) -> None:
        self.answers = answers
        self.assume_yes = assume_yes
        self.fetch_secret = fetch_secret
        self.notes = notes or (lambda title, text: None)
        self.terminal = terminal
        self.interactive = terminal is not None

    def _where(self, key: str) -> str:
        loc = self.answers.locs.get(key)
        return f"{loc.path}:{loc.line}:{loc.column}: " if loc else ""

    def ask(self, spec: InputSpec, *, default: object, choices: Sequence[str],
            validate: Callable[[object], str | None]) -> object:
        if spec.id in self.answers.values:
            value = self.answers.values[spec.id]
            if spec.type == "secret":
                if self.fetch_secret is None:
                    raise InputError(f"{spec.id}: cannot read {value} without a password manager")
                value = self.fetch_secret(str(value)[len("vault:"):])
        elif self.terminal is not None:
            return self.terminal.ask(spec, default=default, choices=choices, validate=validate)
        elif default is not None and _taken_without_asking(spec):
            value = default  # a default written in the checklist, never one found live
        else:
            source = f" in {self.answers.path}" if self.answers.path else ""
            raise InputError(f"missing answer for {spec.id!r} ({spec.prompt}){source}",
                             hint=f"add `{spec.id}: ...` to the answers file, or run interactively")
        problem = validate(value)
        if problem:
            raise InputError(f"{self._where(spec.id)}{spec.id}: {value!r} {problem}")
        return value

    def confirm(self, message: str, *, default: bool = False, key: str = "") -> bool:
        if key:  # work done by hand: only the answers file can say so, never --yes
            if key in self.answers.confirm:
                return self.answers.confirm[key]
            if self.terminal is not None:
                return self.terminal.confirm(message, default=default, key=key)
            raise InputError(f"{message!r} ({key}) needs an answer: --yes never confirms work done by hand",
                             hint=f"add `confirm: {{{key}: true}}` to the answers file once it is done, or run in a "
                                  "terminal")
        if self.assume_yes:
            return True
        if self.terminal is not None:
            return self.terminal.confirm(message, default=default, key=key)
        raise InputError(f"cannot confirm {message!r} without a terminal",
                         hint="pass --yes for routine confirmations")

    def type_to_confirm(self, message: str, expected: str) -> bool:
        typed = self.answers.values.get("confirm_target")
        if typed is None and self.terminal is not None:
            return self.terminal.type_to_confirm(message, expected)
        if typed is None:
            # A missing answer, as any other (exit 3, nothing attempted), not the operator saying no (exit 5).
            raise InputError(f"{message} A typed confirmation is needed: the operator types "
                               f"{expected!r} (add `confirm_target: {expected}` to the answers file for an "
                               "unattended run)")
        return typed == expected

    def instruct(self, title: str, text: str) -> None:
        if self.terminal is not None:
            self.terminal.instruct(title, text)
        else:
            self.notes(title, text)

    def show_secret_once(self, label: str, secret: object) -> None:
        from kensium_provision.secret import Secret

        if self.terminal is not None and isinstance(secret, Secret):
            self.terminal.show_secret_once(label, secret)
            return
        raise InputError(f"the manual password manager needs a terminal to show {label} once",
                         hint="configure the secretsmanager or command backend for unattended runs")
