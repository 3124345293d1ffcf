"""Flow step types: stop until another checklist has run, refuse contradictory answers, pick one answer.

- `flow.stop`: a precondition needs another checklist first (hosting type "Shared (New)": a new shared
  RDS instance). It stops the run cleanly (exit 1, journaled, resumable) with the exact command to run
  and how to continue; its probe is the precondition, so the same step passes once it holds.
- `flow.require`: a rule across answers the input language cannot express (Express edition only for a
  small Client Hosted client); refuses the run with exit 3 before anything is attempted.
- `flow.select`: one value out of several inputs, chosen by another answer (the RDS instance comes
  from a different question for Shared, Shared (New) and Dedicated), so later steps name one value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from kensium_provision.errors import AwsError, InputError, StepError
from kensium_provision.steps.base import CheckContext, Difference, Param, Probe, StepContext
from kensium_provision.steps.generic import COMPARISONS, READ_OPERATION, compare, search

__all__ = ["FlowRequire", "FlowSelect", "FlowStop", "PreconditionStop"]

# Error codes meaning "it is not there (yet)": for a precondition that is simply "not yet", not a failure.
_NOT_FOUND = re.compile(r"NotFound|NoSuch|DoesNotExist|InvalidResourceId|404")


class PreconditionStop(StepError):
    """A clean stop: another checklist must run first. Exit 1; `kprov resume` continues the run."""


def _look(ctx: StepContext, check: Mapping[str, Any]) -> tuple[object, str | None]:
    """The precondition's value and what is wrong with it (None: it holds). Not found = not there yet."""
    from kensium_provision.steps.generic import call_read

    service, operation = str(check.get("service", "")), str(check.get("operation", ""))
    if not service or not READ_OPERATION.match(operation) or "query" not in check:
        raise InputError("flow.stop `check` needs service, a read-only operation, query and one comparison "
                         f"({', '.join(COMPARISONS)}), as aws.assert")
    try:
        response = call_read(ctx, service, operation, check.get("params") or {})
    except AwsError as exc:  # call_read translates every SDK failure; the read-only wall is not one
        if not _NOT_FOUND.search(exc.code):
            raise
        return None, f"{check['query']} found nothing ({exc.code})"
    value = search(str(check["query"]), response)
    problem = compare(check, value)
    return value, None if problem is None else f"{check['query']} {problem}"


class FlowStop:
    """Stop the run until another checklist has made what this one needs; pass once it exists.

    The `check` is an aws.assert (service, read-only operation, params, query, one comparison); a
    "not found" answer counts as "not yet". While it does not hold, a plan shows where the run will
    stop, and apply stops there (exit 1, journaled) saying why, the exact `command` to run first, and
    how to go on: `kprov resume <run id>`, or the same install again (`also`: what else to run before
    that). Nothing after this step runs.

    Example: `reason: "the new shared RDS instance {{ rds_new_instance }} does not exist yet"`,
    `command: "kprov provision shared rds"`, `check: {service: rds, operation: DescribeDBInstances,
    params: {Filters: [{Name: db-instance-id, Values: ["{{ rds_new_instance | lower }}"]}]},
    query: "DBInstances[0].DBInstanceStatus", equals: available}`.
    """

    name: ClassVar[str] = "flow.stop"
    summary: ClassVar[str] = "Stop until another checklist has run (the exact command is shown); passes once it has."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="reason", doc="Why the run cannot go on yet."),
        Param(name="command", doc="The exact command to run first, e.g. kprov provision shared rds."),
        Param(name="check", kind="map", doc="The precondition: an aws.assert (service, operation, params, query, "
                                             "comparison)."),
        Param(name="also", required=False, default="",
              doc="What else to do after the command, before continuing (e.g. the next checklists to run)."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("value",)

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        value, problem = _look(ctx, params["check"])
        if problem is None:
            return Probe(done=True, note="the precondition holds", current={"value": value}, outputs={"value": value})
        return Probe(done=False, note=f"stops here: {params['reason']}; run `{params['command']}` first",
                     current={"value": value} if value is not None else {},
                     differences=(Difference(str(params["check"]["query"]), value, _expected(params["check"])),))

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        also = str(params.get("also") or "")
        go_on = f"continue this run with `kprov resume {ctx.runtime.run_id}` (or run the same install again)"
        raise PreconditionStop(f"{params['reason']}: run `{params['command']}` first",
                               hint=f"{also}; then {go_on}" if also else f"then {go_on}")

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        value, problem = _look(ctx, params["check"])
        return () if problem is None else (Difference(str(params["check"]["query"]), value,
                                                      _expected(params["check"])),)


def _expected(check: Mapping[str, Any]) -> object:
    op = next((k for k in COMPARISONS if k in check), "")
    return check.get(op) if op in ("equals", "contains", "count") else f"{op} {check.get(op)!r}"


_RULES = ("equals", "not_equals", "in", "not_in", "below")


class FlowRequire:
    """Refuse answers that break a rule across inputs; exit 3 before anything is attempted.

    The step's `when:` gives one side of the rule, its comparison the other: "Express only for a
    Client Hosted client" is `when: {name: db_engine, equals: sqlserver-ex}` with `value: "{{
    deployment_type }}"`, `equals: Client Hosted`. The probe raises, so a plan and a check refuse too;
    put these steps before any step that changes something.
    Comparisons: equals, not_equals, in, not_in, below (a number strictly below).
    """

    name: ClassVar[str] = "flow.require"
    summary: ClassVar[str] = "Refuse (exit 3) answers that break a rule across inputs."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="value", kind="any", doc="The answer to test (a bare placeholder keeps numbers numbers)."),
        Param(name="message", doc="What the rule is, said to the operator when refused."),
        Param(name="equals", kind="any", required=False),
        Param(name="not_equals", kind="any", required=False),
        Param(name="in", kind="list", required=False),
        Param(name="not_in", kind="list", required=False),
        Param(name="below", kind="int", required=False, doc="The value must be a number below this."),
    )
    outputs: ClassVar[tuple[str, ...]] = ()

    def _holds(self, params: Mapping[str, Any]) -> bool:
        ops = [k for k in _RULES if k in params]
        if len(ops) != 1:
            raise InputError(f"flow.require needs exactly one of {', '.join(_RULES)}")
        op, expected, value = ops[0], params[ops[0]], params["value"]
        if op == "below":
            return isinstance(value, int | float) and not isinstance(value, bool) and value < expected
        checks: dict[str, Callable[[], bool]] = {
            "equals": lambda: value == expected, "not_equals": lambda: value != expected,
            "in": lambda: value in expected, "not_in": lambda: value not in expected}
        return checks[op]()

    def check_params(self, params: Mapping[str, Any], ctx: CheckContext) -> list[str]:
        """The rule itself, once the value and its comparison are known: refused before the first change."""
        ops = [k for k in _RULES if k in params or k in ctx.pending]
        if not ctx.known(params, "value", "message", *ops) or len(ops) != 1 or self._holds(params):
            return []
        return [f"{params['message']} (got {params['value']})"]

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        if not self._holds(params):
            raise InputError(f"{params['message']} (got {params['value']!r})",
                             hint="answer again (an answers file: change the answer); nothing was changed")
        return Probe(done=True, note="the answers meet the rule")

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        raise InputError(str(params["message"]))  # never reached: the probe holds or raises

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        return () if self._holds(params) else (Difference("answer", params["value"], params["message"]),)


class FlowSelect:
    """One value out of several inputs, chosen by another answer; later steps use its `value` output.

    `cases` maps each possible `key` to the NAME of an input (no braces: an input that was not asked
    has no value to render). Example: `key: "{{ db_hosting }}"`, `cases: {Shared: rds_instance,
    "Shared (New)": rds_new_instance, Dedicated: rds_dedicated_instance}`, `outputs: {db_instance: value}`.
    """

    name: ClassVar[str] = "flow.select"
    summary: ClassVar[str] = "Pick the value of one of several inputs by another answer (output: value)."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="key", doc="The answer that decides, e.g. {{ db_hosting }}."),
        Param(name="cases", kind="map", doc="Each possible key -> the name of the input to use."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("value", "source")

    def _pick(self, ctx: StepContext, params: Mapping[str, Any]) -> tuple[object, str]:
        key, cases = params["key"], params["cases"]
        if not isinstance(cases, Mapping) or key not in cases:
            raise InputError(f"flow.select has no case for {key!r}; cases: {', '.join(map(str, cases or {}))}")
        source = str(cases[key])
        if source not in ctx.values:
            raise InputError(f"flow.select case {key!r} names {source!r}, which has no value (not asked?)")
        return ctx.values[source], source

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        value, source = self._pick(ctx, params)
        return Probe(done=True, note=f"{source} (for {params['key']})", outputs={"value": value, "source": source})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        value, source = self._pick(ctx, params)
        return {"value": value, "source": source}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        self._pick(ctx, params)
        return ()
