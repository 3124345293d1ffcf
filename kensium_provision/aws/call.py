"""The one way kprov calls AWS: a call, a paginated read, an error code; every failure an `AwsError`.

API (use these; do not write another try/except around a boto3 call):

- `call(client, operation, /, *, resource="", missing=(), sandbox=False, **params) -> dict | None`
  One call of `client`. `operation` is the API name (`"DescribeVpcs"`) or the method name
  (`"describe_vpcs"`). An operation botocore can paginate is read to its last page and merged
  (`build_full_result`): a real account has more VPCs, instances or buckets than one page holds, so no
  read of kprov ever stops at the first. Returns the response without `ResponseMetadata`; returns None when AWS answers
  one of the `missing` error codes (`missing=("NoSuchEntity",)`); without `missing` it never returns
  None (the type says so). Any SDK failure (`aws.errors.sdk_errors`: botocore's `ClientError`,
  `BotoCoreError`, ...) is raised as `errors.AwsError` through `aws.errors.translate` (`resource`
  prefixes its message, `sandbox` sharpens its hints); kprov's own errors (the read-only wall) pass
  through untouched, and so does anything else (a bug stays a bug).
- `pages(client, operation, key, /, *, resource="", missing=(), sandbox=False, **params) -> Iterator`
  Every item under `key` of every page of a paginated read (botocore's paginator), failures as
  `call`; a `missing` code ends the iteration (no items).
- `error_code(exc) -> str`: the AWS error code of a botocore `ClientError` (or of an `AwsError`),
  "" for anything else. For code that must catch a raw botocore error itself (`create_once` in
  `aws.idempotent`); everything else should rather pass `missing=` or catch `AwsError` and read `.code`.
- `http_status(exc) -> int`: the HTTP status of a `ClientError`'s answer, 0 when there is none.
- `translating(service, operation, resource="", *, sandbox=False)` (re-exported from `aws.errors`):
  a `with` block whose SDK failures become `AwsError`, for calls that cannot go through `call`
  (a waiter, a `create_once`).

botocore is imported only when a call fails (or to name an operation), so importing this is cheap.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any, overload

from kensium_provision.aws.errors import sdk_errors, translate, translating
from kensium_provision.errors import AwsError, KprovError

__all__ = ["call", "error_code", "http_status", "operation_name", "pages", "service_name", "translating"]


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore `ClientError` or a kprov `AwsError`; "" for anything else."""
    if isinstance(exc, AwsError):
        return exc.code
    response = getattr(exc, "response", None)  # ClientError.response; no botocore import for a lookup
    if not isinstance(response, dict):
        return ""
    error = response.get("Error")
    return str(error.get("Code") or "") if isinstance(error, dict) else ""


def http_status(exc: BaseException) -> int:
    """The HTTP status of a botocore `ClientError`'s answer (0 when there is none)."""
    response = getattr(exc, "response", None)
    meta = response.get("ResponseMetadata") if isinstance(response, dict) else None
    return int(meta.get("HTTPStatusCode") or 0) if isinstance(meta, dict) else 0


def service_name(client: Any) -> str:
    """The boto3 service name of `client` ("ec2"), or "aws" for a fake without a service model."""
    meta = getattr(client, "meta", None)
    return str(getattr(getattr(meta, "service_model", None), "service_name", "") or "aws")


def operation_name(client: Any, operation: str) -> tuple[str, str]:
    """(API name, method name) of `operation`, given either: ("DescribeVpcs", "describe_vpcs")."""
    if operation[:1].isupper():
        from botocore import xform_name

        return operation, xform_name(operation)
    mapping = getattr(getattr(client, "meta", None), "method_to_api_mapping", None)
    api = mapping.get(operation) if isinstance(mapping, dict) else None
    return str(api or "".join(part[:1].upper() + part[1:] for part in operation.split("_"))), operation


@overload
def call(client: Any, operation: str, /, *, resource: str = "", missing: tuple[()] = (), sandbox: bool = False,
         **params: Any) -> dict[str, Any]: ...
@overload
def call(client: Any, operation: str, /, *, resource: str = "", missing: Collection[str], sandbox: bool = False,
         **params: Any) -> dict[str, Any] | None: ...
def call(client: Any, operation: str, /, *, resource: str = "", missing: Collection[str] = (), sandbox: bool = False,
         **params: Any) -> dict[str, Any] | None:
    """One AWS call; None for a `missing` error code; any other SDK failure as `AwsError` (see the module)."""
    api, method = operation_name(client, operation)
    try:
        if _paginates(client, method):
            response = dict(client.get_paginator(method).paginate(**params).build_full_result())
        else:
            response = dict(getattr(client, method)(**params))
    except KprovError:
        raise
    except sdk_errors() as exc:
        if missing and error_code(exc) in missing:
            return None
        raise translate(exc, service=service_name(client), operation=api, resource=resource,
                        sandbox=sandbox) from None
    response.pop("ResponseMetadata", None)
    return response


def _paginates(client: Any, method: str) -> bool:
    can = getattr(client, "can_paginate", None)  # test fakes without a service model have none
    return bool(callable(can) and can(method))


def pages(client: Any, operation: str, key: str, /, *, resource: str = "", missing: Collection[str] = (),
          sandbox: bool = False, **params: Any) -> Iterator[Any]:
    """Every item under `key` of every page of a paginated read; failures as `call` (see the module)."""
    api, method = operation_name(client, operation)
    try:
        for page in client.get_paginator(method).paginate(**params):
            yield from page.get(key) or ()
    except KprovError:
        raise
    except sdk_errors() as exc:
        if missing and error_code(exc) in missing:
            return
        raise translate(exc, service=service_name(client), operation=api, resource=resource,
                        sandbox=sandbox) from None
