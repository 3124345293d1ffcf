"""botocore and moto failures to `errors.AwsError` with a hint an operator can act on.

Never keeps text that may hold parameter values (`ParamValidationError` quotes them, passwords
included), and passes what it keeps of AWS's message through `secret.REDACTOR` (a service may echo a
value it refused, plain, base64- or URL-encoded). botocore is imported inside `translate`, so step
modules can import this cheaply.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from kensium_provision.errors import AwsError, KprovError
from kensium_provision.secret import REDACTOR

__all__ = ["iam_action", "is_throttling", "sdk_errors", "translate", "translating"]

_ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess",
                  "AuthorizationError", "403"}  # moto answers JSON services' denials as a bare 403
_BAD_CREDENTIALS = {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException",
                    "SignatureDoesNotMatch", "AuthFailure", "InvalidAccessKeyId", "InvalidToken"}
_THROTTLING = {"Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
               "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
               "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled",
               "SlowDown", "PriorRequestNotComplete", "EC2ThrottledException"}  # botocore standard mode's list
# IAM's service prefix where it differs from the boto3 client name.
_IAM_PREFIX = {"elbv2": "elasticloadbalancing", "elb": "elasticloadbalancing", "logs": "logs",
               "stepfunctions": "states", "acm-pca": "acm-pca"}
# S3 actions whose IAM names differ from the operation.
_S3_ACTIONS = {"ListBuckets": "ListAllMyBuckets", "HeadBucket": "ListBucket", "HeadObject": "GetObject",
               "ListObjectsV2": "ListBucket", "ListObjects": "ListBucket", "GetBucketPolicy": "GetBucketPolicy"}
_PARAM_NAME = re.compile(
    r"^(?:Missing required parameter in (?P<missing_in>[\w.\[\]]+): \"(?P<missing>\w+)\""
    r"|Unknown parameter in (?P<unknown_in>[\w.\[\]]+): \"(?P<unknown>[^\"]{1,128})\""
    r"|Invalid (?P<what>type|value|length) for (?:document )?parameter (?P<invalid>[\w.\[\]]+), value:)",
    re.MULTILINE,
)
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def iam_action(service: str, operation: str) -> str:
    """The IAM action an operation needs, e.g. `ec2:CreateVpc` (a best guess where AWS renames it)."""
    if service == "s3":
        return f"s3:{_S3_ACTIONS.get(operation, operation)}"
    return f"{_IAM_PREFIX.get(service, service)}:{operation}"


def is_throttling(code: str, status: int = 0) -> bool:
    return code in _THROTTLING or status == 429


def sdk_errors() -> tuple[type[Exception], ...]:
    """The exception types an AWS call can fail with: botocore's own (`ClientError`, `BotoCoreError`,
    the parser's `ResponseParserError`), and the bare `NotImplementedError` moto raises in-process for
    an operation it lacks. Catch these, never `Exception`: anything else is a bug and stays one."""
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError

    return ClientError, BotoCoreError, ResponseParserError, NotImplementedError


@contextmanager
def translating(service: str, operation: str, resource: str = "", *, sandbox: bool = False) -> Iterator[None]:
    """Run a block of AWS calls: SDK (and moto) failures (`sdk_errors`) become `AwsError` with a hint;
    kprov's own errors and anything else pass through untouched."""
    try:
        yield
    except KprovError:
        raise
    except sdk_errors() as exc:
        raise translate(exc, service=service, operation=operation, resource=resource, sandbox=sandbox) from None


def translate(exc: BaseException, *, service: str, operation: str, resource: str = "", profile: str = "",
              sandbox: bool = False) -> AwsError:
    """An `AwsError` for `exc` raised by `service`:`operation` (on `resource`); `profile` and
    `sandbox` only sharpen the hints."""
    if isinstance(exc, AwsError):
        return exc
    code, message, hint = _describe(exc, service=service, operation=operation, profile=profile, sandbox=sandbox)
    if resource:
        message = f"{resource}: {message}"
    # AWS's own text can echo what was sent (a validation error quoting MasterUserPassword, plain or
    # encoded): every registered secret of the run, in any of its forms, becomes the mask.
    message, hint = REDACTOR.redact(message), REDACTOR.redact(hint)
    error = AwsError(service=service, operation=operation, code=code, message=message, hint=hint)
    error.resource = resource  # type: ignore[attr-defined]
    return error


def _describe(exc: BaseException, *, service: str, operation: str, profile: str,
              sandbox: bool) -> tuple[str, str, str]:
    from botocore import exceptions as bx
    from botocore.parsers import ResponseParserError

    login = f"aws sso login --profile {profile}" if profile else "aws sso login --profile <your profile>"
    if isinstance(exc, bx.ClientError):
        return _client_error(exc, service=service, operation=operation, login=login, sandbox=sandbox)
    if isinstance(exc, bx.ParamValidationError):
        return "ParamValidation", _param_names(str(exc.kwargs.get("report", ""))), (
            "kprov built an invalid request: this is a kprov bug (the parameter values are not shown).")
    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return "NoCredentials", "no AWS credentials were found", (
            f"Log in first: `{login}` (or set AWS_PROFILE); kprov uses boto3's own credential chain.")
    if isinstance(exc, bx.ProfileNotFound):
        return "ProfileNotFound", f"the AWS profile {exc.kwargs.get('profile', '')!r} is not configured", (
            f"Create it (`aws configure sso --profile {exc.kwargs.get('profile', '')}`) or fix the environment's "
            "`profile:` in the kprov config.")
    if isinstance(exc, (bx.TokenRetrievalError, bx.SSOTokenLoadError, bx.UnauthorizedSSOTokenError)):
        return "ExpiredCredentials", "the SSO session has expired or is missing", f"Log in again: `{login}`."
    if isinstance(exc, bx.EndpointConnectionError):
        url = str(exc.kwargs.get("endpoint_url", ""))
        if sandbox or urlsplit(url).hostname in _LOOPBACK:
            return "EndpointConnectionError", f"cannot connect to {url}", (
                "The sandbox is not running (or stopped): `kprov sandbox status`, then `kprov sandbox start`.")
        return "EndpointConnectionError", f"cannot connect to {url}", (
            "Check the network, proxy settings and the environment's region; AWS was not reached.")
    if isinstance(exc, (bx.ReadTimeoutError, bx.ConnectTimeoutError, bx.ConnectionClosedError)):
        return type(exc).__name__, f"no answer from {exc.kwargs.get('endpoint_url', 'AWS')} (retried)", (
            "The request may still have taken effect. Run the same command again: kprov looks before it "
            "creates, so nothing is made twice.")
    if isinstance(exc, ResponseParserError):
        where = "the sandbox (moto) probably does not implement it" if sandbox else "the endpoint answered garbage"
        return "UnreadableResponse", f"the response could not be read; {where}", (
            "In the sandbox, do this step by hand or skip it; elsewhere, check AWS_ENDPOINT_URL and proxies.")
    if isinstance(exc, NotImplementedError):
        # moto raises a bare NotImplementedError for query-protocol calls it lacks (in-process).
        return "NotImplemented", f"the sandbox (moto) does not implement {service}:{operation}", (
            "This works only against real AWS; in the sandbox, do this step by hand.")
    if isinstance(exc, bx.WaiterError):
        return "WaiterError", f"gave up waiting: {exc.kwargs.get('reason', 'no reason given')}", ""
    if isinstance(exc, bx.BotoCoreError):
        return type(exc).__name__, type(exc).__name__, ""
    # Anything else: keep only the type; an arbitrary message may hold a value.
    return type(exc).__name__, f"unexpected {type(exc).__name__}", ""


def _client_error(exc: Any, *, service: str, operation: str, login: str, sandbox: bool) -> tuple[str, str, str]:
    response = exc.response or {}
    error = response.get("Error") or {}
    meta = response.get("ResponseMetadata") or {}
    code = str(error.get("Code") or meta.get("HTTPStatusCode") or "Unknown")
    status = int(meta.get("HTTPStatusCode") or 0)
    message = str(error.get("Message") or "").strip()
    if "<html" in message.lower() or len(message) > 500:
        message = message[:120] + "…" if "<html" not in message.lower() else "(an HTML page)"
    retries = int(meta.get("RetryAttempts") or 0)
    message = message or code
    if code in _ACCESS_DENIED:
        hint = (f"Your IAM identity lacks {iam_action(service, operation)} (on this resource). Ask an AWS "
                "administrator to allow it, or use the environment's intended profile.")
        if "encoded authorization failure message" in message.lower():
            message = "you are not authorized to perform this operation (encoded details withheld)"
            hint += " `aws sts decode-authorization-message` shows the full reason."
        return code, message, hint
    if code in _BAD_CREDENTIALS:
        return code, message, f"The AWS credentials are invalid or expired. Log in again: `{login}`."
    if is_throttling(code, status):
        return code, message, (f"AWS throttled the call; kprov retried it {retries} times. Wait a minute and "
                               "run again (completed steps are not redone).")
    if status >= 500:
        return code, message, (f"AWS had a server error (retried {retries} times). Run again later; kprov "
                               "re-checks before creating, so nothing is made twice.")
    if code == "404" and status == 404 and sandbox:
        return "NotImplemented", f"the sandbox (moto) does not implement {service}:{operation}", (
            "This works only against real AWS; in the sandbox, do this step by hand.")
    if code == "DryRunOperation":
        return code, "the request would have succeeded (DryRun)", ""
    return code, message, ""


def _param_names(report: str) -> str:
    """`invalid parameters: X (missing), Y (wrong type)`: names only, never values."""
    found: list[str] = []
    for match in _PARAM_NAME.finditer(report):
        if match["missing"]:
            found.append(f"{match['missing']} (missing)")
        elif match["unknown"]:
            # An unknown key is a name the caller chose, not a value; keep it only if it looks like one.
            name = match["unknown"]
            found.append(f"{name} (unknown)" if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,63}", name) else
                         "a parameter (unknown)")
        elif match["invalid"]:
            what = {"type": "wrong type", "value": "out of range", "length": "too short"}[match["what"]]
            found.append(f"{match['invalid'].removeprefix('input.')} ({what})")
    unique = list(dict.fromkeys(found))[:10]
    return "invalid parameters: " + ", ".join(unique) if unique else "invalid parameters"
