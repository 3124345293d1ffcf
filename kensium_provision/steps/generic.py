"""Generic AWS step types any checklist can use without new code: `aws.assert` and `aws.wait`.

Both make one read-only call (Describe/List/Get/Head), pick a value with JMESPath and compare it.
`aws.wait` polls until the comparison holds, with failure states and a wall-clock budget; it never
uses botocore's waiters (their RDS default is 30 minutes, and Amazon MQ has none).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from functools import cache, lru_cache
from typing import Any, ClassVar

from kensium_provision.errors import StepError
from kensium_provision.steps.base import Difference, Param, Probe, StepContext, field_words, words_of

__all__ = ["COMPARISONS", "AwsAssert", "AwsWait", "call_read", "compare"]

READ_OPERATION = re.compile(r"^(Describe|List|Get|Head)[A-Za-z0-9]+$")
COMPARISONS = ("equals", "not_equals", "contains", "exists", "matches", "count")

_CALL_PARAMS = (
    Param(name="service", doc="AWS service, e.g. ec2."),
    Param(name="operation", doc="A read-only operation, e.g. DescribeVpcs.",
          check=lambda v: None if isinstance(v, str) and READ_OPERATION.match(v) else
          "must be a read-only operation: Describe..., List..., Get... or Head... (for example DescribeVpcs)"),
    Param(name="params", kind="map", required=False, doc="Call parameters; templates allowed."),
    Param(name="query", doc="JMESPath into the response, e.g. Vpcs[0].CidrBlock."),
)
_COMPARE_PARAMS = (
    Param(name="equals", kind="any", required=False, doc="The value must equal this."),
    Param(name="not_equals", kind="any", required=False),
    Param(name="contains", kind="any", required=False, doc="The list (or text) must contain this."),
    Param(name="exists", kind="bool", required=False, doc="true: the query finds something; false: nothing."),
    Param(name="matches", required=False, doc="A regular expression the text must match."),
    Param(name="count", kind="int", required=False, doc="The list must have this many items."),
)


def call_read(ctx: StepContext, service: str, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """One read-only call (all pages merged when the operation paginates)."""
    if not READ_OPERATION.match(operation):
        raise StepError(f"{service}:{operation} is not a read-only operation (Describe/List/Get/Head)")
    from kensium_provision.steps.facts import facts

    held = facts(ctx).read(ctx, service, operation, params)
    if held is not None:  # the run's facts source holds this read (the fleet check's snapshot)
        return held
    from kensium_provision.aws.call import call, operation_name, translating
    from kensium_provision.steps.aws_helpers import in_sandbox

    client = ctx.client(service)
    _, method = operation_name(client, operation)
    resource, sandbox = f"step {ctx.step_id}", in_sandbox(ctx)
    if client.can_paginate(method):
        with translating(service, operation, resource, sandbox=sandbox):
            response = dict(client.get_paginator(method).paginate(**params).build_full_result())
        response.pop("ResponseMetadata", None)
        return response
    answer: dict[str, Any] = call(client, operation, resource=resource, sandbox=sandbox, **params)
    return answer


def search(query: str, data: object) -> object:
    """`jmespath.search`, with each query parsed once and one interpreter for every search."""
    return _interpreter().visit(_parsed(query), data)


# jmespath.search makes a Parser and looks the query up in its cache, then builds a TreeInterpreter for every
# search, as `ParsedResult.search` does: most of a search's time for the short queries of the checklists
# (17 µs a search, 7 with both kept; a fleet check searches a million times). The interpreter holds no
# state of a search (only its method lookups), so one serves every thread.
@lru_cache(maxsize=2048)
def _parsed(query: str) -> Any:
    import jmespath

    return jmespath.compile(query).parsed


@cache
def _interpreter() -> Any:  # made on first use: jmespath is imported only then
    from jmespath.visitor import TreeInterpreter

    return TreeInterpreter()


def compare(params: Mapping[str, Any], actual: object) -> str | None:
    """None when `actual` satisfies the step's comparison, else a sentence saying what differs."""
    ops = [k for k in COMPARISONS if k in params]
    if len(ops) != 1:
        raise StepError(f"give exactly one of {', '.join(COMPARISONS)}")
    op, expected = ops[0], params[ops[0]]
    checks: dict[str, Callable[[], bool]] = {
        "equals": lambda: actual == expected,
        "not_equals": lambda: actual != expected,
        "contains": lambda: isinstance(actual, (list, str)) and expected in actual,
        "exists": lambda: (actual not in (None, [], "", {})) is bool(expected),
        "matches": lambda: isinstance(actual, str) and re.search(str(expected), actual) is not None,
        "count": lambda: isinstance(actual, list) and len(actual) == expected,
    }
    if checks[op]():
        return None
    words = {"equals": "should equal", "not_equals": "should not equal", "contains": "should contain",
             "exists": "should exist" if expected else "should not exist", "matches": "should match",
             "count": "should have this many items:"}
    shown = "" if op == "exists" else f" {words_of(expected)}"
    return f"is {words_of(actual)}, {words[op]}{shown}"


class AwsAssert:
    """Check a fact with one read-only call: `query` into the response, compared to a value.

    Example: `service: ec2, operation: DescribeVpcAttribute, params: {VpcId: '{{ vpc_id }}',
    Attribute: enableDnsSupport}, query: EnableDnsSupport.Value, equals: true`.
    """

    name: ClassVar[str] = "aws.assert"
    summary: ClassVar[str] = "Verify a fact with one read-only AWS call, a JMESPath query and a comparison."
    params: ClassVar[tuple[Param, ...]] = (*_CALL_PARAMS, *_COMPARE_PARAMS)
    outputs: ClassVar[tuple[str, ...]] = ()  # any JMESPath into {"value": ..., "response": ...}

    def _look(self, ctx: StepContext, params: Mapping[str, Any]) -> tuple[object, dict[str, Any], str | None]:
        response = call_read(ctx, params["service"], params["operation"], params.get("params") or {})
        value = search(params["query"], response)
        return value, response, compare(params, value)

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        value, response, problem = self._look(ctx, params)
        outputs = {"value": value, "response": response}
        if problem is None:
            return Probe(done=True, note="holds", current={"value": value}, outputs=outputs)
        return Probe(done=False, note=f"{field_words(params['query'])} {problem}", current={"value": value},
                     outputs=outputs,
                     differences=(Difference(params["query"], value, _expected(params)),))

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        raise StepError(f"{params['service']}:{params['operation']}: {probe.note}")

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        value, _, problem = self._look(ctx, params)
        return () if problem is None else (Difference(params["query"], value, _expected(params)),)


def _expected(params: Mapping[str, Any]) -> object:
    op = next(k for k in COMPARISONS if k in params)
    if op == "exists":
        return "present" if params[op] else "absent"
    return params[op] if op in ("equals", "contains", "count") else f"{op.replace('_', ' ')} {params[op]}"


class AwsWait:
    """Poll a read-only call until `query` gives one of `until`; stop on `failure` or at the `budget`.

    Example: `service: rds, operation: DescribeDBInstances, params: {DBInstanceIdentifier: db-pos-01},
    query: DBInstances[0].DBInstanceStatus, until: [available], failure: [failed,
    incompatible-parameters], budget: 3600, interval: 30`.
    """

    name: ClassVar[str] = "aws.wait"
    summary: ClassVar[str] = "Wait until a read-only AWS call reports a state, with failure states and a time budget."
    params: ClassVar[tuple[Param, ...]] = (
        *_CALL_PARAMS,
        Param(name="until", kind="list", doc="States that mean done."),
        Param(name="failure", kind="list", required=False, doc="States that mean it will never be done."),
        Param(name="budget", kind="int", required=False, default=1800, doc="Seconds to wait at most."),
        Param(name="interval", kind="int", required=False, default=15, doc="Seconds between polls."),
    )
    outputs: ClassVar[tuple[str, ...]] = ()

    def _state(self, ctx: StepContext, params: Mapping[str, Any]) -> tuple[object, dict[str, Any]]:
        response = call_read(ctx, params["service"], params["operation"], params.get("params") or {})
        return search(params["query"], response), response

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        state, response = self._state(ctx, params)
        done = state in params["until"]
        return Probe(done=done, note=f"{params['query']} is {state!r}", current={"state": state},
                     desired={"state": params["until"]}, outputs={"value": state, "response": response})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        budget = float(params.get("budget") or 1800)
        interval = float(params.get("interval") or 15)
        runtime = ctx.runtime
        start = runtime.monotonic()
        while True:
            ctx.forget_reads()
            state, response = self._state(ctx, params)
            if state in params["until"]:
                return {"value": state, "response": response}
            if state in (params.get("failure") or ()):
                raise StepError(f"{params['query']} is {state!r}, a failure state; it will not become "
                                f"{' or '.join(map(repr, params['until']))}")
            left = budget - (runtime.monotonic() - start)
            if left <= 0:
                raise StepError(f"gave up after {budget:.0f} s: {params['query']} is still {state!r}",
                                hint="it may still finish: run the same command again later to continue")
            ctx.progress(f"waiting for {' or '.join(map(str, params['until']))}: now {state}, {left:.0f} s left")
            runtime.sleep(min(interval, max(left, 0.1)))

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        state, _ = self._state(ctx, params)
        return () if state in params["until"] else (Difference(params["query"], state, params["until"]),)
