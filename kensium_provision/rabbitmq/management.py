"""A small client of the RabbitMQ management HTTP API: virtual hosts, users and permissions.

Names are allow-listed and URL parts quoted with `safe=""`; no redirects; the password only in each request.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Protocol

from kensium_provision.errors import InputError, StepError

__all__ = [
    "NAME_PATTERN",
    "ManagementClient",
    "RabbitMQError",
    "Revealable",
    "check_name",
]

# Vhost and user names kprov manages: Kensium's `acme`, `acme_corp`, `acme_store1`, `acme_hub`. Lower-case
# ASCII, digits and `_` only, so no `/`, `%`, `.`, control character or upper case can reach a URL
# (real RabbitMQ happily creates `../users` or `a/b`: reliability-notes section 5).
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,62}")
# Who logs in: Amazon MQ's admin user rule (2-100 of [A-Za-z0-9-._]), loosened to 1 for local brokers.
_LOGIN_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,100}")
_TAG_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PREFIX_PATTERN = re.compile(r"(/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)*/?")  # a reverse proxy's path, no dot segments
_MAX_BODY = 32 * 1024 * 1024  # a broker's full permission list stays far below this
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class Revealable(Protocol):
    """A password kept masked until the moment it is needed (`secret.Secret`)."""

    def reveal(self) -> str: ...


class RabbitMQError(StepError):
    """A management API call failed: method, path, status and RabbitMQ's `reason`; never a password."""

    def __init__(self, *, method: str, path: str, status: int | None, reason: str, hint: str = "") -> None:
        self.method, self.path, self.status, self.reason = method, path, status, reason
        shown = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"RabbitMQ management API {method} {path} failed ({shown}): {reason}", hint=hint)


def check_name(kind: str, name: object) -> str:
    """`name` if it is an allowed vhost or user name; InputError (before any request) if not."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InputError(
            f"invalid RabbitMQ {kind} name {name!r}: use 1-63 lower-case letters, digits or _, starting with a letter"
        )
    return name


def _readable_vhost(name: object) -> str:
    """Reads and revocations may also name the default vhost `/`; creating or deleting it never."""
    return "/" if name == "/" else check_name("vhost", name)


def _check_text(kind: str, value: object, *, limit: int = 1024) -> str:
    if not isinstance(value, str) or len(value) > limit or _CONTROL.search(value):
        raise InputError(f"invalid RabbitMQ {kind}: a string of at most {limit} characters, no control characters")
    return value


def _tags(value: str | Iterable[str]) -> str:
    items = [t for t in (value.split(",") if isinstance(value, str) else value) if t]
    for tag in items:
        if not isinstance(tag, str) or not _TAG_PATTERN.fullmatch(tag):
            raise InputError(f"invalid RabbitMQ tag {tag!r}")
    return ",".join(items)


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would resend the Authorization header to wherever the Location points."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None  # urllib then raises HTTPError with the 3xx status


class ManagementClient:
    """The management API of one broker, as one user (the broker admin).

    `base_url` is the broker's console URL (Amazon MQ `ConsoleURL`, or the sandbox emulator's), http(s)
    with a host and no credentials, query or fragment. Every method makes exactly one request.
    `read_only` refuses PUT and DELETE before sending them (plan and check runs).
    """

    __slots__ = ("_opener", "_password", "_prefix", "base_url", "read_only", "timeout", "username")

    def __init__(
        self, base_url: str, username: str, password: Revealable | str, *, timeout: float = 10, read_only: bool = False
    ) -> None:
        parts = urllib.parse.urlsplit(base_url if isinstance(base_url, str) else "")
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            parts = urllib.parse.urlsplit("")
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.username is not None
            or parts.query
            or parts.fragment
            or not _PREFIX_PATTERN.fullmatch(parts.path)
            or _CONTROL.search(base_url)
        ):
            raise InputError("invalid RabbitMQ base URL: http(s)://host[:port][/path] expected, without credentials")
        if not isinstance(username, str) or not _LOGIN_PATTERN.fullmatch(username):
            raise InputError("invalid RabbitMQ login user name: 1-100 of letters, digits, '.', '_' or '-'")
        if not (password.reveal() if not isinstance(password, str) else password):
            raise InputError("empty RabbitMQ password")
        self.base_url = base_url.rstrip("/")
        self._prefix = parts.path.rstrip("/")
        self.username = username
        self._password = password
        self.timeout = timeout
        self.read_only = read_only
        handlers: list[urllib.request.BaseHandler] = [_RefuseRedirects()]
        if parts.hostname in _LOOPBACK:
            handlers.append(urllib.request.ProxyHandler({}))  # a local broker is never behind the env proxy
        self._opener = urllib.request.build_opener(*handlers)

    def __repr__(self) -> str:
        return f"ManagementClient({self.base_url!r}, user={self.username!r})"

    # -- broker ---------------------------------------------------------------------------------------

    def overview(self) -> dict[str, object]:
        return self._object("GET", "overview")

    def whoami(self) -> dict[str, object]:
        return self._object("GET", "whoami")

    # -- virtual hosts ------------------------------------------------------------------------------

    def list_vhosts(self) -> list[dict[str, object]]:
        return self._list("GET", "vhosts")

    def get_vhost(self, name: str) -> dict[str, object] | None:
        return self._maybe("GET", "vhosts", _readable_vhost(name))

    def put_vhost(self, name: str, *, description: str = "", tags: str | Iterable[str] = ()) -> bool:
        """Create or update; True if it was created (201), False if it existed (204)."""
        body = {"description": _check_text("vhost description", description, limit=255), "tags": _tags(tags)}
        return self._put(body, "vhosts", check_name("vhost", name))

    def delete_vhost(self, name: str) -> bool:
        """Delete with everything in it; False if there was no such vhost."""
        return self._delete("vhosts", check_name("vhost", name))

    # -- users ----------------------------------------------------------------------------------------

    def list_users(self) -> list[dict[str, object]]:
        return self._list("GET", "users")

    def get_user(self, name: str) -> dict[str, object] | None:
        return self._maybe("GET", "users", check_name("user", name))

    def put_user(self, name: str, password: Revealable | str, tags: str | Iterable[str] = "") -> bool:
        """Create, or update (password and tags); True if it was created."""
        check_name("user", name)
        plain = password if isinstance(password, str) else password.reveal()
        if not plain:
            raise InputError("empty RabbitMQ password")
        return self._put({"password": plain, "tags": _tags(tags)}, "users", name)

    def delete_user(self, name: str) -> bool:
        """Delete the user and its permissions; False if there was no such user."""
        return self._delete("users", check_name("user", name))

    # -- permissions ----------------------------------------------------------------------------------

    def list_permissions(self) -> list[dict[str, object]]:
        """Every permission on the broker, in one call (fleet checks)."""
        return self._list("GET", "permissions")

    def get_permissions(self, vhost: str, user: str) -> dict[str, object] | None:
        return self._maybe("GET", "permissions", _readable_vhost(vhost), check_name("user", user))

    def put_permissions(self, vhost: str, user: str, configure: str, write: str, read: str) -> bool:
        """Set the user's three permission regexes on the vhost; True if there were none before."""
        body = {
            "configure": _check_text("permission", configure, limit=255),
            "write": _check_text("permission", write, limit=255),
            "read": _check_text("permission", read, limit=255),
        }
        return self._put(body, "permissions", check_name("vhost", vhost), check_name("user", user))

    def delete_permissions(self, vhost: str, user: str) -> bool:
        """Revoke the user's permissions on the vhost (`/` allowed); False if it had none."""
        return self._delete("permissions", _readable_vhost(vhost), check_name("user", user))

    # -- transport ------------------------------------------------------------------------------------

    def _object(self, method: str, *parts: str) -> dict[str, object]:
        status, data = self._call(method, parts)
        if not isinstance(data, dict):
            raise self._error(method, parts, status, "the response is not a JSON object")
        return data

    def _list(self, method: str, *parts: str) -> list[dict[str, object]]:
        status, data = self._call(method, parts)
        if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
            raise self._error(method, parts, status, "the response is not a JSON list of objects")
        return data

    def _maybe(self, method: str, *parts: str) -> dict[str, object] | None:
        status, data = self._call(method, parts, missing_ok=True)
        if status == 404:
            return None
        if not isinstance(data, dict):
            raise self._error(method, parts, status, "the response is not a JSON object")
        return data

    def _put(self, body: Mapping[str, object], *parts: str) -> bool:
        status, _ = self._call("PUT", parts, body=body)
        return status == 201

    def _delete(self, *parts: str) -> bool:
        status, _ = self._call("DELETE", parts, missing_ok=True)
        return status != 404

    def _path(self, parts: tuple[str, ...]) -> str:
        """The URL path: fixed segments and checked names, each quoted on its own (a `/` becomes %2F)."""
        return f"{self._prefix}/api/" + "/".join(urllib.parse.quote(p, safe="") for p in parts)

    def _netloc(self) -> str:
        return urllib.parse.urlsplit(self.base_url).netloc

    def _error(self, method: str, parts: tuple[str, ...], status: int | None, reason: str) -> RabbitMQError:
        return RabbitMQError(method=method, path=self._path(parts), status=status, reason=reason, hint=_hint(status))

    def _call(
        self, method: str, parts: tuple[str, ...], *, body: Mapping[str, object] | None = None, missing_ok: bool = False
    ) -> tuple[int, object]:
        path = self._path(parts)
        if self.read_only and method != "GET":
            raise RabbitMQError(method=method, path=path, status=None, reason="refused: this run only reads",
                                hint="plan and check never change the broker; run apply to make changes")
        plain = self._password if isinstance(self._password, str) else self._password.reveal()
        token = base64.b64encode(f"{self.username}:{plain}".encode()).decode("ascii")
        headers = {"Authorization": f"Basic {token}", "Accept": "application/json", "User-Agent": "kprov"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        url = self.base_url + path.removeprefix(self._prefix)
        # S310: the scheme is http(s) by construction (checked in __init__), never file: or custom.
        request = urllib.request.Request(url, data, headers, method=method)  # noqa: S310
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read(_MAX_BODY)
        except urllib.error.HTTPError as exc:
            with exc:
                raw = exc.read(_MAX_BODY)
            if exc.code == 404 and missing_ok:
                return 404, None
            raise RabbitMQError(
                method=method, path=path, status=exc.code, reason=_reason(raw, exc.reason), hint=_hint(exc.code)
            ) from None
        except urllib.error.URLError as exc:
            cause = exc.reason
            if isinstance(cause, ssl.SSLError):
                reason = f"TLS with {self._netloc()} failed: {getattr(cause, 'reason', None) or cause}"
            else:
                reason = f"cannot reach {self._netloc()}: {getattr(cause, 'strerror', None) or cause}"
            raise RabbitMQError(method=method, path=path, status=None, reason=reason, hint=_hint(None)) from None
        except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
            reason = f"no answer from {self._netloc()}: {str(exc) or type(exc).__name__}"
            raise RabbitMQError(method=method, path=path, status=None, reason=reason, hint=_hint(None)) from None
        if not raw:
            return status, None
        try:
            return status, json.loads(raw)
        except ValueError:
            raise RabbitMQError(
                method=method, path=path, status=status, reason="the response is not JSON", hint=_hint(status)
            ) from None


def _reason(raw: bytes, fallback: object) -> str:
    """RabbitMQ's `reason` (or `error`) field, shortened and without control characters."""
    text = str(fallback or "")
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        text = str(data.get("reason") or data.get("error") or text)
    return _CONTROL.sub(" ", text)[:300]


def _hint(status: int | None) -> str:
    if status is None:
        return (
            "Is the broker reachable from here (URL, security group, public access)? In the sandbox, is the "
            "RabbitMQ emulator running?"
        )
    if status == 401:
        return "Check the broker's admin user name and password (the password manager entry of the broker)."
    if status == 403:
        return "The user lacks the `administrator` tag needed to manage vhosts, users and permissions."
    if 300 <= status < 400:
        return "Redirects are not followed: check the base URL's scheme, host and path."
    if status >= 500:
        return "The broker failed internally or is starting up; try again shortly."
    return ""
