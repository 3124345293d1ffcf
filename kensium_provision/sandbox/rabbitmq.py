"""An in-process emulation of the RabbitMQ management API endpoints kprov uses (sandbox and tests).

Answers follow real RabbitMQ 3.10 (one contract suite runs on both); loopback only; salted hashes only.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import signal
import sys
import threading
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol

__all__ = ["PASSWORD_ENV", "Emulator", "main", "start_emulator"]

PASSWORD_ENV = "KPROV_RABBITMQ_ADMIN_PASSWORD"  # noqa: S105 - how `main` gets the admin password (never argv)
_VERSION = "3.10.8"  # the RabbitMQ release whose answers this emulates
_NODE = "kprov-emulator@localhost"
_MAX_BODY = 1024 * 1024
_NOT_FOUND = {"error": "Object Not Found", "reason": "Not Found"}
_MANAGEMENT_TAGS = frozenset({"management", "policymaker", "monitoring", "administrator"})


class _Revealable(Protocol):
    def reveal(self) -> str: ...


def _hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's `rabbit_password_hashing_sha256`: base64(salt + sha256(salt + password))."""
    salt = salt if salt is not None else secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def _matches(password: str, stored: str) -> bool:
    try:
        raw = base64.b64decode(stored, validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) == 36 and hmac.compare_digest(_hash(password, raw[:4]), stored)


@dataclass(slots=True)
class _State:
    """The broker's objects; every access holds `lock` (the server answers on many threads)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    vhosts: dict[str, dict[str, object]] = field(default_factory=dict)
    users: dict[str, dict[str, object]] = field(default_factory=dict)
    permissions: dict[tuple[str, str], dict[str, object]] = field(default_factory=dict)
    path: Path | None = None  # where the state is kept between runs (the sandbox), if anywhere

    def save(self) -> None:
        if self.path is None:
            return
        data = {"vhosts": self.vhosts, "users": self.users, "permissions": list(self.permissions.values())}
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.chmod(0o600)
        os.replace(tmp, self.path)

    def load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        data = json.loads(self.path.read_text())
        self.vhosts = dict(data["vhosts"])
        self.users = dict(data["users"])
        self.permissions = {(str(p["vhost"]), str(p["user"])): p for p in data["permissions"]}


def _vhost(name: str, description: str, tags: list[str]) -> dict[str, object]:
    return {
        "name": name,
        "description": description,
        "tags": tags,
        "default_queue_type": "undefined",
        "metadata": {"description": description, "tags": tags},
        "tracing": False,
        "cluster_state": {_NODE: "running"},
    }


def _user(name: str, password_hash: str, tags: list[str]) -> dict[str, object]:
    return {
        "name": name,
        "password_hash": password_hash,
        "hashing_algorithm": "rabbit_password_hashing_sha256",
        "tags": tags,
        "limits": {},
    }


def _grant(vhost: str, user: str, configure: str, write: str, read: str) -> dict[str, object]:
    return {"user": user, "vhost": vhost, "configure": configure, "write": write, "read": read}


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: object = None  # JSON-able, or None for an empty body
    headers: tuple[tuple[str, str], ...] = ()


def _bad(reason: object) -> _Reply:
    return _Reply(400, {"error": "bad_request", "reason": reason})


def _created(created: bool) -> _Reply:
    return _Reply(201 if created else 204)


class _Api:
    """Routing and the semantics of each endpoint, independent of HTTP plumbing."""

    def __init__(self, state: _State) -> None:
        self.state = state
        # (segments after /api/) -> method -> (handler, needs administrator)
        self.routes: dict[str, dict[str, tuple[Callable[..., _Reply], bool]]] = {
            "overview": {"GET": (self.overview, False)},
            "whoami": {"GET": (self.whoami, False)},
            "vhosts": {"GET": (self.list_vhosts, False)},
            "vhosts/*": {
                "GET": (self.get_vhost, True),
                "PUT": (self.put_vhost, True),
                "DELETE": (self.delete_vhost, True),
            },
            "users": {"GET": (self.list_users, True)},
            "users/*": {"GET": (self.get_user, True), "PUT": (self.put_user, True), "DELETE": (self.delete_user, True)},
            "permissions": {"GET": (self.list_permissions, True)},
            "permissions/*/*": {
                "GET": (self.get_permissions, True),
                "PUT": (self.put_permissions, True),
                "DELETE": (self.delete_permissions, True),
            },
        }

    def handle(self, method: str, raw_path: str, authorization: str | None, body: bytes) -> _Reply:
        # Split before decoding, as Cowboy does: `a%2Fb` is one segment named `a/b`.
        segments = urllib.parse.urlsplit(raw_path).path.split("/")
        if len(segments) < 3 or segments[0] != "" or segments[1] != "api" or "" in segments[2:]:
            return _Reply(404, _NOT_FOUND)
        head, names = segments[2], [urllib.parse.unquote(s, errors="strict") for s in segments[3:]]
        methods = self.routes.get("/".join([head] + ["*"] * len(names)))
        if methods is None:
            return _Reply(404, _NOT_FOUND)
        if method not in methods:
            return _Reply(405, None, (("Allow", ", ".join(sorted(methods))),))
        handler, admin_only = methods[method]
        with self.state.lock:
            login = self.authenticate(authorization, admin_only=admin_only)
            if isinstance(login, _Reply):
                return login
            args: list[object] = [login, *names]
            if method == "PUT":
                try:
                    payload = json.loads(body) if body else {}
                except ValueError:
                    return _bad("not_json")
                if not isinstance(payload, dict):
                    return _bad("not_json")
                args.append(payload)
            reply = handler(*args)
            if method in ("PUT", "DELETE") and reply.status in (201, 204):
                self.state.save()
            return reply

    def authenticate(self, authorization: str | None, *, admin_only: bool) -> str | _Reply:
        """The login name, or the refusal RabbitMQ sends (called with the lock held)."""
        challenge = (("WWW-Authenticate", 'Basic realm="RabbitMQ Management"'),)
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "basic" or not token:
            return _Reply(401, None, challenge)
        try:
            name, _, password = base64.b64decode(token, validate=True).decode().partition(":")
        except (binascii.Error, ValueError):
            return _Reply(400)
        user = self.state.users.get(name)
        ok = user is not None and _matches(password, str(user["password_hash"]))
        tags = set(user["tags"]) if user is not None else set()  # type: ignore[call-overload]
        if not ok:
            return _Reply(401, {"error": "not_authorized", "reason": "Login failed"}, challenge)
        if not tags & _MANAGEMENT_TAGS:
            return _Reply(401, {"error": "not_authorised", "reason": "Not management user"}, challenge)
        if admin_only and "administrator" not in tags:
            return _Reply(401, {"error": "not_authorised", "reason": "Not administrator user"}, challenge)
        return name

    # -- endpoints (called with the lock held) -----------------------------------------------------------

    def overview(self, login: str) -> _Reply:
        totals = {"vhosts": len(self.state.vhosts), "users": len(self.state.users)}
        return _Reply(200, {
            "rabbitmq_version": _VERSION,
            "management_version": _VERSION,
            "product_name": "RabbitMQ (kprov emulator)",
            "product_version": _VERSION,
            "cluster_name": _NODE,
            "node": _NODE,
            "object_totals": totals,
        })

    def whoami(self, login: str) -> _Reply:
        return _Reply(200, {"name": login, "tags": self.state.users[login]["tags"]})

    def list_vhosts(self, login: str) -> _Reply:
        admin = "administrator" in self.state.users[login]["tags"]  # type: ignore[operator]
        visible = [v for name, v in sorted(self.state.vhosts.items())
                   if admin or (name, login) in self.state.permissions]
        return _Reply(200, visible)

    def get_vhost(self, login: str, name: str) -> _Reply:
        found = self.state.vhosts.get(name)
        return _Reply(200, found) if found is not None else _Reply(404, _NOT_FOUND)

    def put_vhost(self, login: str, name: str, body: dict[str, object]) -> _Reply:
        description, tags = body.get("description", ""), body.get("tags", "")
        if not isinstance(description, str) or not isinstance(tags, str):
            return _bad("description and tags must be strings")
        created = name not in self.state.vhosts
        self.state.vhosts[name] = _vhost(name, description, tags.split(",") if tags else [])
        if created:  # RabbitMQ grants the creating user full access to a new vhost
            self.state.permissions[(name, login)] = _grant(name, login, ".*", ".*", ".*")
        return _created(created)

    def delete_vhost(self, login: str, name: str) -> _Reply:
        if self.state.vhosts.pop(name, None) is None:
            return _Reply(404, _NOT_FOUND)
        for key in [k for k in self.state.permissions if k[0] == name]:
            del self.state.permissions[key]
        return _Reply(204)

    def list_users(self, login: str) -> _Reply:
        return _Reply(200, [u for _, u in sorted(self.state.users.items())])

    def get_user(self, login: str, name: str) -> _Reply:
        found = self.state.users.get(name)
        return _Reply(200, found) if found is not None else _Reply(404, _NOT_FOUND)

    def put_user(self, login: str, name: str, body: dict[str, object]) -> _Reply:
        tags, password = body.get("tags"), body.get("password")
        if tags is None:
            return _bad("tags_not_present")
        if not isinstance(tags, str) or (password is not None and not isinstance(password, str)):
            return _bad("password and tags must be strings")
        created = name not in self.state.users
        password_hash = _hash(password) if password else ""  # no password: the user cannot log in
        self.state.users[name] = _user(name, password_hash, [t.strip() for t in tags.split(",") if t.strip()])
        return _created(created)

    def delete_user(self, login: str, name: str) -> _Reply:
        if self.state.users.pop(name, None) is None:
            return _Reply(404, _NOT_FOUND)
        for key in [k for k in self.state.permissions if k[1] == name]:
            del self.state.permissions[key]
        return _Reply(204)

    def list_permissions(self, login: str) -> _Reply:
        return _Reply(200, [p for _, p in sorted(self.state.permissions.items())])

    def get_permissions(self, login: str, vhost: str, user: str) -> _Reply:
        found = self.state.permissions.get((vhost, user))
        return _Reply(200, found) if found is not None else _Reply(404, _NOT_FOUND)

    def put_permissions(self, login: str, vhost: str, user: str, body: dict[str, object]) -> _Reply:
        missing = [k for k in ("configure", "write", "read") if k not in body]
        if missing:
            return _bad("[" + ",".join(f"{{key_missing,{k}}}" for k in missing) + "]")
        configure, write, read = body["configure"], body["write"], body["read"]
        if not all(isinstance(v, str) for v in (configure, write, read)):
            return _bad("permissions must be strings")
        for pattern in (configure, write, read):
            try:
                re.compile(str(pattern))
            except re.error:
                return _bad("invalid_regexp")
        if vhost not in self.state.vhosts or user not in self.state.users:
            return _bad("vhost_or_user_not_found")
        created = (vhost, user) not in self.state.permissions
        self.state.permissions[(vhost, user)] = _grant(vhost, user, str(configure), str(write), str(read))
        return _created(created)

    def delete_permissions(self, login: str, vhost: str, user: str) -> _Reply:
        if self.state.permissions.pop((vhost, user), None) is None:
            return _Reply(404, _NOT_FOUND)
        return _Reply(204)


class _Handler(BaseHTTPRequestHandler):
    server_version = "kprov-rabbitmq-emulator"
    sys_version = ""
    api: _Api  # set on the subclass made per emulator

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self._send(_Reply(413))
            return
        body = self.rfile.read(length) if length > 0 else b""
        try:
            reply = self.api.handle(self.command, self.path, self.headers.get("Authorization"), body)
        except UnicodeDecodeError:
            reply = _Reply(400)
        self._send(reply)

    do_GET = do_PUT = do_DELETE = do_POST = do_PATCH = _serve

    def _send(self, reply: _Reply) -> None:
        data = b"" if reply.body is None else json.dumps(reply.body, separators=(",", ":")).encode()
        self.send_response(reply.status)
        if data:
            self.send_header("Content-Type", "application/json")
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        return None  # no access log: requests carry credentials in headers, and stderr belongs to the CLI


class Emulator:
    """A running emulator; `stop()` shuts it down and frees the port."""

    __slots__ = ("_server", "_thread", "base_url", "port")

    def __init__(self, server: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._server, self._thread = server, thread
        self.port = int(server.server_address[1])
        self.base_url = f"http://127.0.0.1:{self.port}"

    def __repr__(self) -> str:
        return f"Emulator({self.base_url!r})"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def start_emulator(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    admin_user: str,
    admin_password: _Revealable | str,
    state_path: Path | None = None,
) -> Emulator:
    """Start serving on a daemon thread; returns once the port is bound. Loopback addresses only.

    `admin_user` is an administrator with full access to the default vhost `/`, as on a fresh broker.
    With `state_path`, objects are loaded from and saved to that file (the sandbox keeps its broker).
    """
    address = "127.0.0.1" if host == "localhost" else host
    if ipaddress.ip_address(address).version != 4 or not ipaddress.ip_address(address).is_loopback:
        raise ValueError(f"the RabbitMQ emulator listens on IPv4 loopback only, not {host!r}")
    password = admin_password if isinstance(admin_password, str) else admin_password.reveal()
    if not admin_user or not password:
        raise ValueError("the emulator needs an admin user name and password")
    state = _State(path=state_path)
    state.load()
    state.vhosts.setdefault("/", _vhost("/", "Default virtual host", []))
    state.users[admin_user] = _user(admin_user, _hash(password), ["administrator"])
    state.permissions.setdefault(("/", admin_user), _grant("/", admin_user, ".*", ".*", ".*"))
    handler = type("_BoundHandler", (_Handler,), {"api": _Api(state)})
    server = ThreadingHTTPServer((address, port), handler)
    server.daemon_threads = True
    # A short poll interval: shutdown() waits for the loop to notice, 0.5 s by default.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="rabbitmq-emulator", daemon=True)
    thread.start()
    return Emulator(server, thread)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m kensium_provision.sandbox.rabbitmq --port N`: serve until SIGTERM or Ctrl-C.

    The admin password comes from $KPROV_RABBITMQ_ADMIN_PASSWORD, else the first line of stdin. The
    line `listening on <url>` on stdout says it is ready.
    """
    parser = argparse.ArgumentParser(prog="python -m kensium_provision.sandbox.rabbitmq", description=main.__doc__)
    parser.add_argument("--port", type=int, default=15672, help="0 picks a free port (default 15672)")
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address (default 127.0.0.1)")
    parser.add_argument("--admin-user", default="admin", help="the broker admin (default admin, as on Amazon MQ)")
    parser.add_argument("--state", type=Path, default=None, help="keep the broker's objects in this JSON file")
    args = parser.parse_args(argv)
    password = os.environ.get(PASSWORD_ENV) or sys.stdin.readline().rstrip("\r\n")
    if not password:
        parser.error(f"no admin password: set {PASSWORD_ENV} or write it on stdin")
    # Block the stop signals before any thread starts, so only sigwait below receives them.
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    try:
        emulator = start_emulator(
            args.host, args.port, admin_user=args.admin_user, admin_password=password, state_path=args.state
        )
    except (OSError, ValueError) as exc:
        parser.exit(1, f"rabbitmq emulator: {exc}\n")
    sys.stdout.write(f"listening on {emulator.base_url}\n")
    sys.stdout.flush()
    signal.sigwait(stop_signals)
    emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
