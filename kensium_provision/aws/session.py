"""One boto3 Session per run, one retry/timeout policy, and cached clients carrying the counter and wall.

boto3 is imported when the first session is built, never at import time.
"""

from __future__ import annotations

import os
import threading
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from kensium_provision import __version__
from kensium_provision.aws.cache import ReadCache
from kensium_provision.aws.calls import CallCounter
from kensium_provision.aws.settle import Settling
from kensium_provision.aws.wall import install_wall
from kensium_provision.errors import InputError, KprovError
from kensium_provision.guards import Environment, Identity
from kensium_provision.model import Mode

__all__ = ["MAX_ATTEMPTS", "SANDBOX_CREDENTIALS", "AwsSession", "SandboxNotRunningError", "botocore_session"]

# Total attempts (not retries: botocore's `max_attempts` key means retries, an easy off-by-one).
MAX_ATTEMPTS = 4
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 60
# The sandbox never sees the operator's real credentials: a fixed fake pair, accepted by moto.
SANDBOX_CREDENTIALS = ("kprov-sandbox", "kprov-sandbox")


def botocore_session(profile: str | None = None) -> Any:
    """A new botocore session whose service models are parsed once per process: every session shares one
    loader. A run's clients and the IAM-action lookup of its preflight (`permissions.actions`) read the same
    models, and EC2's alone takes ~0.1 s to parse. A `profile` that is not configured raises ProfileNotFound
    here, as boto3.Session does."""
    import botocore.session

    made = botocore.session.get_session()
    if profile:
        made.set_config_variable("profile", profile)
    made.register_component("data_loader", _loader(str(made.get_config_variable("data_path") or "")))
    return made


_LOADER_LOCK = threading.Lock()


@cache
def _loader(data_path: str) -> Any:
    import botocore.loaders

    return botocore.loaders.create_loader(data_path or None)


def _boto3(*, profile_name: str | None = None, **options: Any) -> Any:
    """A boto3 Session over `botocore_session()`. boto3 adds its own data folder to the loader's search path
    for every session it makes: kept once, or the shared loader's path would grow with each run."""
    import boto3

    core = botocore_session(profile_name)
    made = boto3.Session(botocore_session=core, **options)
    loader = core.get_component("data_loader")
    with _LOADER_LOCK:
        loader.search_paths[:] = list(dict.fromkeys(loader.search_paths))
    return made


class SandboxNotRunningError(KprovError):
    """A sandbox environment has no endpoint: its clients would otherwise reach real AWS."""


class AwsSession:
    """The run's AWS access: satisfies `runtime.ClientFactory`.

    Profile and region come from the environment and credentials from boto3's own chain; an
    environment's `endpoint_url` (the sandbox's) goes to every client, otherwise boto3's own
    configuration (`AWS_ENDPOINT_URL` included) decides. Clients are cached and thread-safe.
    """

    def __init__(self, env: Environment, *, mode: Mode, endpoint_url: str = "", in_process: bool = False,
                 counter: CallCounter | None = None, session: Any = None, read_cache: bool = True) -> None:
        self.env = env
        self.mode = mode
        self.endpoint_url = endpoint_url or env.endpoint_url
        self.counter = counter if counter is not None else CallCounter()
        # A sandbox environment needs an endpoint, unless its caller serves it in this very process
        # (`in_process`: moto's mock_aws in tests); otherwise its clients would go to real AWS.
        if env.sandbox and not self.endpoint_url and not in_process and not os.environ.get("AWS_ENDPOINT_URL"):
            raise SandboxNotRunningError(
                f"{env.describe()} has no endpoint: the sandbox is not running",
                hint="Start it with `kprov sandbox start` (kprov normally starts it on demand).")
        self._session = session
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, int, int], Any] = {}
        self._identity: Identity | None = None
        self.cache = ReadCache() if read_cache else None
        self.settling = Settling()  # the ids this run created, retried while EC2 settles (aws.settle)

    def _boto3_session(self) -> Any:
        if self._session is None:
            if self.env.sandbox:
                key, secret = SANDBOX_CREDENTIALS
                self._session = _boto3(aws_access_key_id=key, aws_secret_access_key=secret,
                                       region_name=self.env.region)
            else:
                from botocore.exceptions import ProfileNotFound

                try:
                    self._session = _boto3(profile_name=self.env.profile or None, region_name=self.env.region)
                except ProfileNotFound:  # the config names what is not there: exit 3, nothing attempted
                    raise InputError(
                        f"the AWS profile {self.env.profile!r} of {self.env.describe()} is not configured",
                        hint=f"Create it (`aws configure sso --profile {self.env.profile}`) or fix `profile:` in "
                             "the kprov config.") from None
        return self._session

    def config(self, *, attempts: int = MAX_ATTEMPTS) -> Any:
        """The one client configuration of a run (`attempts` total tries, retries included)."""
        from botocore.config import Config

        extra: dict[str, Any] = {}
        if self.endpoint_url:
            extra["s3"] = {"addressing_style": "path"}  # a local endpoint has no bucket subdomains
            if urlsplit(self.endpoint_url).hostname in ("127.0.0.1", "localhost", "::1"):
                extra["proxies"] = {}  # never send sandbox traffic to an HTTP_PROXY from the environment
        return Config(
            region_name=self.env.region,
            retries={"mode": "standard", "total_max_attempts": attempts},
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            user_agent_extra=f"kprov/{__version__}",
            **extra,
        )

    def client(self, service: str, *, attempts: int = MAX_ATTEMPTS, connections: int = 0) -> Any:
        """A cached client of `service`, counted and, in plan/check, walled.

        `attempts=1` gives a client on which botocore never re-sends: for creates without an
        idempotency token, where a blind retry after a lost response makes a duplicate
        (see `aws.idempotent`). `connections` above botocore's 10 gives a client whose connection pool
        holds that many, for as many threads sharing it (with fewer, each call beyond the tenth opens and
        discards a connection, a TLS handshake on AWS, and botocore logs a warning for it).
        """
        connections = connections if connections > 10 else 0
        key = (service, attempts, connections)
        with self._lock:  # boto3 Sessions are not thread-safe; clients are
            client = self._clients.get(key)
            if client is None:
                config = self.config(attempts=attempts)
                if connections:
                    from botocore.config import Config

                    config = config.merge(Config(max_pool_connections=connections))
                kwargs: dict[str, Any] = {"config": config}
                if self.endpoint_url:
                    kwargs["endpoint_url"] = self.endpoint_url
                client = self._boto3_session().client(service, **kwargs)
                if service == "s3control" and _own_endpoint(self.endpoint_url):
                    client.meta.events.register("before-sign.s3-control", _without_account_host)
                self.counter.register(client)
                self.settling.register(client)
                install_wall(client, self.mode)
                if self.cache is not None:
                    self.cache.register(client)
                self._clients[key] = client
            return client

    def invalidate(self) -> None:
        """Forget cached reads (see `aws.cache`): the engine calls it when a step acts, the run when it sleeps."""
        if self.cache is not None:
            self.cache.invalidate()

    def identity(self) -> Identity:
        """Who the credentials belong to (`sts.get_caller_identity`, asked once per run)."""
        if self._identity is None:
            response = self.client("sts").get_caller_identity()
            self._identity = Identity.from_response(response)
        return self._identity


def _own_endpoint(endpoint_url: str) -> bool:
    return bool(endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3CONTROL"))


def _without_account_host(request: Any, **_: Any) -> None:
    """s3control's endpoint rules put the account id in front of the host (123456789012.s3-control...); an
    endpoint of one's own (the sandbox's 127.0.0.1) has no such names, so the prefix goes, before signing."""
    parts = urlsplit(request.url)
    host, _, rest = parts.netloc.partition(".")
    if host.isdigit() and len(host) == 12 and rest:
        request.url = parts._replace(netloc=rest).geturl()
