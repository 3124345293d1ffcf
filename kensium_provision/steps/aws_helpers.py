"""What AWS step types share: a call through the step's context, create-at-most-once, tags, id and value checks.

The one home of these helpers for every step module (`steps/ec2/`, `steps/rds_network.py`, ...): the
calls themselves go through `aws.call` (one translation of failures to `AwsError`), with the hints
sharpened for the sandbox.

- `step_call(ctx, service, operation, *, resource="", missing=(), **params)`: `aws.call.call` on the
  run's client of `service` (walled in plan/check); None only for a `missing` error code.
- `creating(ctx, service, operation, *, find, make, token=None, resource="")`: describe-before-create
  with reconcile-after-a-lost-answer (`aws.idempotent.create_once`), failures translated.
- tags: `tags_of` (a `Tags` list as a dict), `tag_spec` (TagSpecifications), `name_filter` (by Name
  tag), `check_tags` (EC2's tag limits), `tag_differences`.
- checks before any call: `with_defaults`, `param_error`, `text_param`, `aws_id`, `aws_ids`, `zone_param`.
- the shape of a step: `one_named` (never guess between two of a name), `refuse_unfixable`, `wait_until`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar, overload

from kensium_provision.aws.call import call, translating
from kensium_provision.aws.idempotent import create_client, create_once
from kensium_provision.errors import InputError, StepError
from kensium_provision.steps.base import Difference, Param, StepContext

__all__ = [
    "aws_id",
    "aws_ids",
    "check_tags",
    "creating",
    "in_sandbox",
    "name_filter",
    "one_named",
    "param_error",
    "refuse_unfixable",
    "step_call",
    "tag_differences",
    "tag_spec",
    "tags_of",
    "text_param",
    "wait_until",
    "with_defaults",
    "zone_param",
]

T = TypeVar("T")

_ZONE = re.compile(r"^[a-z]{2}(?:-[a-z0-9]+)+[a-z]$")


# --- calls ------------------------------------------------------------------------------------------


def in_sandbox(ctx: StepContext) -> bool:
    """Whether the run targets the sandbox (moto): sharper hints, documentation addresses allowed."""
    env = getattr(ctx.runtime.aws, "env", None)
    return bool(env.sandbox) if env is not None else ctx.runtime.env_name == "sandbox"


@overload
def step_call(ctx: StepContext, service: str, operation: str, *, resource: str = "", missing: tuple[()] = (),
              **params: Any) -> dict[str, Any]: ...
@overload
def step_call(ctx: StepContext, service: str, operation: str, *, resource: str = "", missing: Collection[str],
              **params: Any) -> dict[str, Any] | None: ...
def step_call(ctx: StepContext, service: str, operation: str, *, resource: str = "", missing: Collection[str] = (),
              **params: Any) -> dict[str, Any] | None:
    """One call through the run's session (walled in plan/check), errors translated (`aws.call.call`)."""
    return call(ctx.client(service), operation, resource=resource, missing=missing, sandbox=in_sandbox(ctx),
                **params)


def creating(ctx: StepContext, service: str, operation: str, *, find: Callable[[], T | None],
             make: Callable[[Any], T], token: str | None = None, resource: str = "") -> T:
    """Create at most once: `find` first, `make(client)` if nothing is there, re-`find` after a lost answer.

    `make` calls the client directly (raw botocore errors, so `create_once` can tell a timeout from a
    refusal); without `token` the client sends once and never retries by itself.
    """
    client = create_client(ctx.runtime.aws, service, client_token=token)
    with translating(service, operation, resource, sandbox=in_sandbox(ctx)):
        # act runs right after the engine's probe found nothing (and the run holds the target's lock)
        created = create_once(probe=find, create=lambda: make(client), client_token=token, sleep=ctx.runtime.sleep,
                              probed=True, forget=ctx.forget_reads)
    if created.reconciled:
        ctx.progress(f"{resource or operation}: the answer was lost, but it was made once; carrying on")
    return created.resource


# --- tags -------------------------------------------------------------------------------------------


def tags_of(items: object) -> dict[str, str]:
    """An AWS `Tags` list (`[{"Key": ..., "Value": ...}]`) as a dict; {} for anything else."""
    return {t["Key"]: t["Value"] for t in items or ()} if isinstance(items, list) else {}


def tag_spec(resource_type: str, tags: Mapping[str, str]) -> list[dict[str, Any]]:
    """EC2 `TagSpecifications` tagging a new `resource_type` with `tags`."""
    return [{"ResourceType": resource_type, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]


def name_filter(name: str, **more: str) -> list[dict[str, Any]]:
    """EC2 `Filters` for the Name tag `name` (and `more`, `vpc_id=...` as `vpc-id`)."""
    filters = [{"Name": "tag:Name", "Values": [name]}]
    filters += [{"Name": key.replace("_", "-"), "Values": [value]} for key, value in more.items()]
    return filters


def check_tags(ctx: StepContext, tags: object) -> dict[str, str]:
    """EC2 tag limits (moto takes a 300-character value; AWS does not)."""
    if not isinstance(tags, dict):
        raise param_error(ctx, f"tags must be a mapping of keys to values, got {tags!r}")
    checked: dict[str, str] = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 128:
            raise param_error(ctx, f"tag key {key!r}: 1 to 128 characters")
        if key.lower().startswith("aws:"):
            raise param_error(ctx, f"tag key {key!r}: the aws: prefix is reserved for AWS")
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise param_error(ctx, f"tag {key}: the value must be text, got {value!r}")
        text = str(value)
        if len(text) > 256:
            raise param_error(ctx, f"tag {key}: the value has {len(text)} characters; AWS allows 256")
        if any(ord(c) < 32 for c in text):
            raise param_error(ctx, f"tag {key}: the value contains a control character")
        checked[key] = text
    return checked


def tag_differences(actual: Mapping[str, str], wanted: Mapping[str, str]) -> list[Difference]:
    return [Difference(f"tag {k}", actual.get(k), v) for k, v in wanted.items() if actual.get(k) != v]


# --- values checked before any call -----------------------------------------------------------------


def with_defaults(declared: Sequence[Param], params: Mapping[str, Any]) -> dict[str, Any]:
    """The rendered params with each optional parameter's declared default filled in."""
    values = {p.name: p.default for p in declared if not p.required}
    values.update({k: v for k, v in params.items() if v is not None})
    return values


def param_error(ctx: StepContext, message: str, hint: str = "") -> InputError:
    """A parameter AWS would refuse (or moto would wrongly take), found before any call."""
    return InputError(f"step {ctx.step_id}: {message}", hint=hint)


def text_param(ctx: StepContext, params: Mapping[str, Any], name: str, *, empty_ok: bool = False) -> str:
    value = params.get(name)
    if not isinstance(value, str) or (not value.strip() and not empty_ok):
        raise param_error(ctx, f"{name} must be text, got {value!r}")
    return value


def aws_id(ctx: StepContext, value: object, prefix: str, what: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(rf"{prefix}-(?:[0-9a-f]{{8}}|[0-9a-f]{{17}})", value):
        raise param_error(ctx, f"{what} {value!r} is not a {prefix}- id ({prefix}- and 8 or 17 hexadecimal digits)")
    return value


def aws_ids(ctx: StepContext, value: object, prefix: str, what: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise param_error(ctx, f"{what} must be a non-empty list of {prefix}- ids, got {value!r}")
    return [aws_id(ctx, v, prefix, what) for v in value]


def zone_param(ctx: StepContext, value: object) -> str:
    if not isinstance(value, str) or not _ZONE.fullmatch(value):
        raise param_error(ctx, f"{value!r} is not an availability zone name (like us-east-1a)")
    return value


# --- the shape of a step ----------------------------------------------------------------------------


def one_named(items: Sequence[dict[str, Any]], what: str, name: str, id_key: str) -> dict[str, Any] | None:
    """The one item found by `name`, None for none; two or more is an error (kprov never guesses)."""
    if len(items) > 1:
        ids = ", ".join(sorted(str(i.get(id_key)) for i in items))
        raise StepError(f"{len(items)} {what}s are tagged Name={name} ({ids}); kprov will not guess which one is meant",
                        hint="rename (re-tag) or delete the extra ones, then run again")
    return items[0] if items else None


def refuse_unfixable(ctx: StepContext, what: str, differences: Sequence[Difference], fixable: set[str]) -> None:
    """Stop before changing anything when a difference cannot be fixed in place."""
    fixed_by_hand = [d for d in differences if d.field not in fixable]
    if fixed_by_hand:
        raise StepError(
            f"{what}: {'; '.join(map(str, fixed_by_hand))}. AWS cannot change this on an existing resource, and "
            "kprov never replaces one by itself",
            hint="fix it in the AWS console (or delete the resource so the next run creates it), or correct the "
                 "checklist's answers if they are what is wrong")


def wait_until(ctx: StepContext, what: str, read: Callable[[], object], until: Sequence[object],
               budget: float = 300, interval: float = 5) -> None:
    """Poll `read` (asking AWS again each time) until it gives one of `until`, within `budget` seconds."""
    runtime = ctx.runtime
    start = runtime.monotonic()
    while (state := read()) not in until:
        ctx.forget_reads()  # the next read must ask AWS again
        left = budget - (runtime.monotonic() - start)
        if left <= 0:
            raise StepError(f"{what} is still {state!r} after {budget:.0f} s",
                            hint="it may still finish: run the same command again later to continue")
        ctx.progress(f"waiting for {what}: {state}, {left:.0f} s left")
        runtime.sleep(min(interval, left))
