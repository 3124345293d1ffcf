"""The embedded sandbox (design.md section 8): a moto server on loopback that kprov starts on demand.

One long-lived process per state dir (`python -m kensium_provision.sandbox.server serve`) keeps AWS state
across kprov commands until `reset` or `stop`; it also hosts the RabbitMQ management emulator.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kensium_provision.errors import KprovError

if TYPE_CHECKING:
    from kensium_provision.sandbox.rabbitmq import Emulator

__all__ = [
    "RABBITMQ_ADMIN_USER",
    "RABBITMQ_SECRET_NAME",
    "Hung",
    "SandboxError",
    "SandboxInfo",
    "ensure_running",
    "hung",
    "main",
    "reset",
    "sandbox_dir",
    "serve",
    "status",
    "stop",
]

SERVER_FILE = "server.json"
LOCK_FILE = "start.lock"
LOG_FILE = "server.log"
HEALTH_PATH = "/kprov-sandbox/health"
HEALTH_TIMEOUT = 3.0  # seconds; a server that answers nothing in this time is hung (its pid alive)
RABBITMQ_ADMIN_USER = "admin"  # as on Amazon MQ
# Where the emulator's admin password is handed over: Secrets Manager inside the sandbox itself, under
# the name the secretsmanager vault uses for entry `rabbitmq-emulator/admin` of environment `sandbox`.
RABBITMQ_SECRET_NAME = "kprov/sandbox/rabbitmq-emulator/admin"  # noqa: S105 - a name, not a password
_SANDBOX_KEYS = ("kprov-sandbox", "kprov-sandbox")  # moto accepts any credentials
_NEVER_INHERIT = ("MOTO_ENABLE_RECORDING", "MOTO_RECORDER_FILEPATH")  # the recorder writes request bodies
# The operator's AWS credentials: the sandbox needs none, and a long-lived child must not hold them.
_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
_log = logging.getLogger("kprov.sandbox")


class SandboxError(KprovError):
    """The sandbox could not be started, reached or stopped."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxInfo:
    """A running sandbox, as recorded in `<state dir>/sandbox/server.json`."""

    pid: int
    port: int
    endpoint: str  # the AWS endpoint URL for every client
    started: str  # UTC, ISO 8601
    instance: str  # random per server process: tells our server from whatever else holds the port later
    rabbitmq_url: str = ""  # the RabbitMQ management API emulator (empty only in a server.json of an old kprov)
    rabbitmq_secret: str = ""  # Secrets Manager name (in the sandbox) of the emulator's admin password
    region: str = "us-east-1"


@dataclass(frozen=True, slots=True)
class Hung:
    """A recorded server whose process still runs our serve command but fails its health check."""

    info: SandboxInfo
    why: str  # "is stopped (SIGSTOP or Ctrl-Z)" or "is stuck"

    def __str__(self) -> str:
        return (f"the sandbox server (pid {self.info.pid}, {self.info.endpoint}) is running but does not answer "
                f"its health check within {HEALTH_TIMEOUT:g} s: it {self.why}")

    @property
    def hint(self) -> str:
        return (f"`kill -CONT {self.info.pid}` resumes a stopped one with its state; `kprov sandbox stop` ends it "
                "(its AWS state is lost), and the next command starts a fresh one")


def sandbox_dir(state_dir: Path) -> Path:
    return state_dir / "sandbox"


# -- the client side: used by kprov commands ---------------------------------------------------------------


def status(state_dir: Path) -> SandboxInfo | None:
    """The running sandbox of `state_dir`, or None when none answers."""
    info = _read_info(state_dir)
    return info if info is not None and _healthy(info) else None


def ensure_running(state_dir: Path, *, region: str = "us-east-1", timeout: float = 30.0) -> SandboxInfo:
    """Reuse the running sandbox, else start one; safe when several kprov processes start at once."""
    info = status(state_dir)
    if info is not None:
        return info
    folder = sandbox_dir(state_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    deadline = time.monotonic() + timeout
    with _locked(folder / LOCK_FILE, deadline):
        info = status(state_dir)  # another process may have started it while we waited
        if info is not None:
            return info
        _refuse_hung(state_dir)  # never a second server for one state dir, and never an empty one in its place
        with contextlib.suppress(FileNotFoundError):
            (folder / SERVER_FILE).unlink()  # stale: its server no longer runs
        pid = _spawn(state_dir, region)
        return _wait_ready(state_dir, pid, deadline)


def stop(state_dir: Path, *, timeout: float = 10.0) -> bool:
    """Stop the sandbox (its state is lost); False when none was running."""
    folder = sandbox_dir(state_dir)
    if not folder.is_dir():
        return False
    deadline = time.monotonic() + timeout
    with _locked(folder / LOCK_FILE, deadline):
        info = _read_info(state_dir)
        if info is None:
            return False
        running = _healthy(info) or _is_our_server(info.pid, state_dir)
        if running:
            _terminate(info.pid, deadline)
        with contextlib.suppress(FileNotFoundError):
            (folder / SERVER_FILE).unlink()
        return running


def reset(state_dir: Path) -> SandboxInfo:
    """Empty the sandbox (every AWS resource and RabbitMQ object); it keeps running."""
    info = status(state_dir)
    if info is None:
        _refuse_hung(state_dir)
        raise SandboxError("the sandbox is not running", hint="Start it with `kprov sandbox start`.")
    request = urllib.request.Request(f"{info.endpoint}/moto-api/reset", method="POST", data=b"")  # noqa: S310
    try:
        with _opener().open(request, timeout=30) as response:
            response.read()
    except (OSError, urllib.error.URLError) as exc:
        raise SandboxError(f"the sandbox did not reset: {exc}") from None
    return info


def _read_info(state_dir: Path) -> SandboxInfo | None:
    try:
        data = json.loads((sandbox_dir(state_dir) / SERVER_FILE).read_text(encoding="utf-8"))
        return SandboxInfo(**data)
    except (OSError, ValueError, TypeError):
        return None


def _opener() -> urllib.request.OpenerDirector:
    # Loopback only: an HTTP_PROXY in the environment must not receive sandbox traffic.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _healthy(info: SandboxInfo) -> bool:
    try:
        with _opener().open(f"{info.endpoint}{HEALTH_PATH}", timeout=HEALTH_TIMEOUT) as response:
            answer = json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return False
    return bool(answer.get("instance") == info.instance and answer.get("pid") == info.pid)


@contextlib.contextmanager
def _locked(path: Path, deadline: float) -> Iterator[None]:
    import fcntl  # POSIX only, like the sandbox's process handling

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SandboxError(f"another kprov process holds {path} (starting or stopping the sandbox)",
                                       hint="Wait for it, then run `kprov sandbox status`.") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _spawn(state_dir: Path, region: str) -> int:
    folder = sandbox_dir(state_dir)
    env = {k: v for k, v in os.environ.items() if k not in _NEVER_INHERIT and k not in _CREDENTIALS}
    argv = [sys.executable, "-m", "kensium_provision.sandbox.server", "serve", "--state-dir", str(state_dir.resolve()),
            "--region", region, "--detach"]
    with (folder / LOG_FILE).open("ab") as log:
        (folder / LOG_FILE).chmod(0o600)
        # `serve --detach` forks, prints the server's pid and returns at once; the server lives on
        # in its own session (Ctrl-C in this terminal does not reach it).
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, cwd=folder,
                              env=env, timeout=30, check=False)
    if done.returncode != 0 or not done.stdout.strip().isdigit():
        raise SandboxError(f"the sandbox did not start: {_log_tail(folder)}")
    return int(done.stdout.strip())


def _wait_ready(state_dir: Path, pid: int, deadline: float) -> SandboxInfo:
    while time.monotonic() < deadline:
        info = _read_info(state_dir)
        if info is not None and info.pid == pid and _healthy(info):
            return info
        if not _alive(pid):
            raise SandboxError(f"the sandbox server exited while starting: {_log_tail(sandbox_dir(state_dir))}")
        time.sleep(0.05)
    raise SandboxError(f"the sandbox did not answer in time: {_log_tail(sandbox_dir(state_dir))}")


def hung(state_dir: Path) -> Hung | None:
    """The sandbox of `state_dir` when its server process is alive but does not answer (stopped by SIGSTOP or
    Ctrl-Z, or stuck); None when no server of ours runs. Only after `status` found none: it does not wait
    for a health check again (a stopped server makes each one take HEALTH_TIMEOUT)."""
    info = _read_info(state_dir)
    if info is None or not _alive(info.pid) or not _is_our_server(info.pid, state_dir):
        return None
    return Hung(info, "is stopped (SIGSTOP or Ctrl-Z)" if _process_state(info.pid) == "T" else "is stuck")


def _refuse_hung(state_dir: Path) -> None:
    """A hung server (`hung`) is reported, never replaced by an empty one (its AWS state would seem lost)."""
    found = hung(state_dir)
    if found is not None:
        raise SandboxError(str(found), hint=found.hint)


def _process_state(pid: int) -> str:
    """The state letter of /proc/PID/stat (R running, S sleeping, T stopped, Z zombie), or "" when unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return ""
    return next(iter(stat.rpartition(")")[2].split()), "")


def _log_tail(folder: Path) -> str:
    try:
        lines = (folder / LOG_FILE).read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        lines = []
    return lines[-1] if lines else f"no details (see {folder / LOG_FILE})"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # The detached server's parent is init (or a subreaper), which may reap it late: a zombie is dead.
    return _process_state(pid) != "Z"


def _is_our_server(pid: int, state_dir: Path) -> bool:
    # A server that no longer answers: kill it only if the pid still runs *our* serve command.
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"kensium_provision.sandbox.server" in cmdline and str(state_dir.resolve()).encode() in cmdline


def _terminate(pid: int, deadline: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGCONT)  # a stopped (hung) server handles its SIGTERM only once it runs again
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# -- the server side: `python -m kensium_provision.sandbox.server serve` --------------------------------------------


class _Server:
    """What runs inside the sandbox process: moto, the RabbitMQ emulator, and the WSGI guard around moto."""

    def __init__(self, state_dir: Path, region: str) -> None:
        self.state_dir = state_dir
        self.region = region
        self.instance = secrets.token_hex(16)
        self.pid = os.getpid()
        self.port = 0
        self.endpoint = ""
        self.emulator: Emulator | None = None
        self.emulator_port = 0
        # Generated per server run, never written to disk: handed over through the sandbox's own
        # Secrets Manager (RABBITMQ_SECRET_NAME), where the secretsmanager vault finds it.
        self._rabbitmq_password = secrets.token_urlsafe(24)

    def guard(self, app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        """Wrap moto's WSGI app: our health answer, no recorder, loopback Host only, reseed after reset."""
        allowed_hosts = {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}

        def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if environ.get("HTTP_HOST", "") not in allowed_hosts:
                # A web page cannot reach the sandbox through DNS rebinding: its Host header is foreign.
                return _reply(start_response, "403 Forbidden", {"error": "the kprov sandbox answers on loopback only"})
            if path == HEALTH_PATH:
                return _reply(start_response, "200 OK", {"instance": self.instance, "pid": self.pid})
            if path.startswith("/moto-api/recorder/"):
                return _reply(start_response, "403 Forbidden",
                              {"error": "the kprov sandbox never records requests: they hold passwords"})
            if path == "/moto-api/reset" and environ.get("REQUEST_METHOD") == "POST":
                body = list(app(environ, start_response))
                self.restart_rabbitmq()
                self.seed()
                return body
            return app(environ, start_response)

        return guarded

    def start_rabbitmq(self) -> None:
        # Part of the package, never optional: an install without it is broken and must say so at start.
        from kensium_provision.sandbox.rabbitmq import start_emulator

        self.emulator = start_emulator("127.0.0.1", self.emulator_port, admin_user=RABBITMQ_ADMIN_USER,
                                       admin_password=self._rabbitmq_password)
        self.emulator_port = int(self.emulator.port)

    def restart_rabbitmq(self) -> None:
        # The emulator has no reset: a fresh one on the same port (address reuse is allowed) is one.
        if self.emulator is not None:
            self.emulator.stop()
            self.start_rabbitmq()

    def seed(self) -> None:
        """Put the emulator's admin password into the sandbox's Secrets Manager (again after a reset)."""
        if self.emulator is None:
            return
        import boto3
        from botocore.config import Config

        client = boto3.client("secretsmanager", endpoint_url=self.endpoint, region_name=self.region,
                              aws_access_key_id=_SANDBOX_KEYS[0], aws_secret_access_key=_SANDBOX_KEYS[1],
                              config=Config(proxies={}, retries={"mode": "standard", "total_max_attempts": 2}))
        with contextlib.suppress(client.exceptions.ResourceExistsException):
            client.create_secret(
                Name=RABBITMQ_SECRET_NAME, SecretString=self._rabbitmq_password,
                Description=f"Admin password of the sandbox's RabbitMQ emulator (user {RABBITMQ_ADMIN_USER})",
                Tags=[{"Key": "kprov:managed", "Value": "true"}, {"Key": "kprov:env", "Value": "sandbox"}],
            )

    def info(self) -> SandboxInfo:
        return SandboxInfo(
            pid=self.pid, port=self.port, endpoint=self.endpoint, instance=self.instance, region=self.region,
            started=datetime.now(UTC).isoformat(timespec="seconds"),
            rabbitmq_url=self.emulator.base_url if self.emulator is not None else "",
            rabbitmq_secret=RABBITMQ_SECRET_NAME if self.emulator is not None else "",
        )


def _reply(start_response: Callable[..., Any], status_line: str, body: dict[str, object]) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status_line, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def _write_atomically(path: Path, data: dict[str, object]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(data, file, indent=2)
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)


def serve(state_dir: Path, *, region: str = "us-east-1") -> int:
    """Run the sandbox until SIGTERM or SIGINT; `server.json` appears once it answers."""
    for name in _NEVER_INHERIT:
        os.environ.pop(name, None)  # moto enables its recorder for ANY non-empty value, even "false"
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # werkzeug logs every request otherwise
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    # Block the stop signals before any thread starts, so only sigwait below receives them.
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    folder = sandbox_dir(state_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    from moto.server import ThreadedMotoServer

    from kensium_provision.sandbox import lessons
    from kensium_provision.sandbox.strict import Strict

    lessons.teach()  # what moto lacks: the permission preflight's simulation, the RDS and Amazon MQ offerings
    server = _Server(state_dir, region)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # loopback only, never 0.0.0.0
    moto.start()
    try:
        server.port = moto.get_host_and_port()[1]
        server.endpoint = f"http://127.0.0.1:{server.port}"
        wsgi = moto._server  # the werkzeug server: its app is looked up per request
        if wsgi is None:  # moto.start() sets it; an assert would vanish under python -O
            raise SandboxError("moto's server did not start")
        # AWS's eventual consistency and RDS's backing-up, which moto lacks (sandbox.strict)
        wsgi.app = server.guard(Strict(wsgi.app))
        server.start_rabbitmq()
        server.seed()
        info = server.info()
        _write_atomically(folder / SERVER_FILE, asdict(info))
        _log.info("sandbox listening on %s", server.endpoint)
        signal.sigwait(stop_signals)
    finally:
        current = _read_info(state_dir)
        if current is not None and current.instance == server.instance:
            with contextlib.suppress(FileNotFoundError):
                (folder / SERVER_FILE).unlink()
    # No graceful shutdown of the two servers: their state is in memory only, and exiting frees the
    # ports at once (a graceful stop polls for about a second).
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m kensium_provision.sandbox.server serve|start|stop|status|reset --state-dir DIR`."""
    parser = argparse.ArgumentParser(prog="python -m kensium_provision.sandbox.server")
    parser.add_argument("command", choices=("serve", "start", "stop", "status", "reset"))
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--detach", action="store_true", help="serve: fork, print the server pid, return")
    args = parser.parse_args(argv)
    state_dir = args.state_dir.resolve()
    if args.command == "serve":
        if args.detach:
            child = os.fork()  # before any thread exists: forking a threaded process is unsafe
            if child:
                sys.stdout.write(f"{child}\n")
                return 0
            os.setsid()
            sys.stdout.flush()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)  # the starter reads our stdout until EOF: let it go
            os.close(devnull)
        code = serve(state_dir, region=args.region)
        sys.stderr.flush()
        # Exit now: interpreter shutdown would wait on request threads of kept-alive connections.
        os._exit(code)
    if args.command == "start":
        found: SandboxInfo | None = ensure_running(state_dir, region=args.region)
    elif args.command == "stop":
        return 0 if stop(state_dir) else 1
    elif args.command == "reset":
        found = reset(state_dir)
    else:
        found = status(state_dir)
    sys.stdout.write(json.dumps(asdict(found) if found else None) + "\n")
    return 0 if found else 1


if __name__ == "__main__":
    raise SystemExit(main())
