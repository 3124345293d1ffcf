"""Eventual consistency of the EC2 API, in one place: a just-created resource is retried until AWS knows it.

AWS: "the results of an API command you run that creates or modifies a resource might not be
immediately available to all subsequent commands you run": right after CreateSubnet,
CreateSecurityGroup, RunInstances... a call naming the new id may answer `InvalidGroup.NotFound`,
`InvalidInstanceID.NotFound` and friends, or a describe may come back empty, for a while; AWS asks
callers to retry with an exponential backoff. botocore retries neither.
https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html

`Settling` holds the ids this run's creates returned (from their responses, never guessed), and three
botocore hooks on every EC2 client of the run's session: `after-call` records the new ids,
`provide-client-params` notes which of them a request names, and `needs-retry` (ahead of botocore's
own) answers a not-found error, or an empty describe of that very resource, with a backoff delay
while the id is younger than the budget. An error about an id this run did not just create is never
retried: it is a real answer. A retried create is safe: a NotFound means AWS refused it before doing
anything.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from kensium_provision.errors import AwsError

__all__ = ["NEW_KEY_CODES", "NOT_FOUND_CODES", "Settling", "until_key_accepted"]

_T = TypeVar("_T")

# The codes AWS documents for a resource not yet known everywhere (the page above, and the EC2 error
# codes reference: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html).
NOT_FOUND_CODES = frozenset({
    "InvalidGroup.NotFound", "InvalidInstanceID.NotFound", "InvalidSubnetID.NotFound", "InvalidVpcID.NotFound",
    "InvalidAllocationID.NotFound", "InvalidRouteTableID.NotFound", "InvalidInternetGatewayID.NotFound",
    "InvalidAssociationID.NotFound", "InvalidKeyPair.NotFound",
})
# Where each create's answer holds the id it made (one path of keys; a list means every item).
_CREATED: Mapping[str, tuple[str, ...]] = {
    "CreateVpc": ("Vpc", "VpcId"), "CreateSubnet": ("Subnet", "SubnetId"), "CreateSecurityGroup": ("GroupId",),
    "RunInstances": ("Instances", "InstanceId"), "AllocateAddress": ("AllocationId",),
    "CreateRouteTable": ("RouteTable", "RouteTableId"),
    "CreateInternetGateway": ("InternetGateway", "InternetGatewayId"),
}
# The describe that lists one kind of resource, and the key of its list: empty while AWS settles.
_DESCRIBES: Mapping[str, tuple[str, str]] = {
    "DescribeVpcs": ("vpc-", "Vpcs"), "DescribeSubnets": ("subnet-", "Subnets"),
    "DescribeSecurityGroups": ("sg-", "SecurityGroups"), "DescribeInstances": ("i-", "Reservations"),
    "DescribeAddresses": ("eipalloc-", "Addresses"), "DescribeRouteTables": ("rtb-", "RouteTables"),
    "DescribeInternetGateways": ("igw-", "InternetGateways"),
}
_ID = re.compile(r"^(?:vpc|subnet|sg|i|eipalloc|rtb|igw)-[0-9a-f]{8,17}$")
_CONTEXT_KEY = "kprov_settling"


def _walk(value: Any, path: tuple[str, ...]) -> Iterator[str]:
    if not path:
        if isinstance(value, str):
            yield value
        return
    if isinstance(value, list):
        for item in value:
            yield from _walk(item, path)
    elif isinstance(value, dict):
        yield from _walk(value.get(path[0]), path[1:])


def _named(params: Any) -> Iterator[str]:
    """Every resource id a request's parameters name, at any depth (GroupId, Filters' Values...)."""
    if isinstance(params, str):
        if _ID.match(params):
            yield params
    elif isinstance(params, dict):
        for value in params.values():
            yield from _named(value)
    elif isinstance(params, list):
        for value in params:
            yield from _named(value)


class Settling:
    """The ids this run created, and the retry of calls that name them while AWS settles (thread-safe).

    `budget`: seconds after a create during which its id is retried; `base`: the first delay (doubled
    each attempt, full jitter, at most `cap`). The first delay is short (25 to 50 ms): a new id is usually
    known within a round trip or two, and each refused call of a fresh VPC job waited 0.1 to 0.2 s before
    (bench/latency: 11 such waits, a quarter of the job); the doubling still reaches `cap` by the eighth try.
    """

    def __init__(self, *, budget: float = 120.0, base: float = 0.05, cap: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.budget, self.base, self.cap = budget, base, cap
        self._clock = clock
        self._lock = threading.Lock()
        self._born: dict[str, float] = {}
        self.retried = 0  # calls answered with a delay: what the tests and the bench look at

    def created(self, resource_id: str) -> None:
        with self._lock:
            self._born.setdefault(resource_id, self._clock())

    def settling(self, ids: Iterator[str] | list[str]) -> list[str]:
        """The ids among `ids` created by this run less than `budget` seconds ago."""
        now = self._clock()
        with self._lock:
            return [i for i in ids if i in self._born and now - self._born[i] < self.budget]

    def register(self, client: Any) -> None:
        if client.meta.service_model.service_name != "ec2":
            return  # the documented eventual consistency is EC2's; other services answer their own way
        events = client.meta.events

        def mark(*, model: Any, params: Any, context: Any, **_: Any) -> None:
            # The caller's own parameters, before serialization: which just-created ids does it name?
            named = self.settling(list(_named(params)))
            if named:
                context[_CONTEXT_KEY] = (model.name, named)

        def after_call(*, model: Any, parsed: Any, http_response: Any, **_: Any) -> None:
            path = _CREATED.get(model.name)
            if path and getattr(http_response, "status_code", 500) < 300:
                for resource_id in _walk(parsed, path):
                    self.created(resource_id)

        def needs_retry(*, response: Any, attempts: int, request_dict: Any, **_: Any) -> float | None:
            context = (request_dict or {}).get("context") or {}
            marked = context.get(_CONTEXT_KEY)
            if not marked or response is None:
                return None
            operation, named = marked
            if not self.settling(named):
                return None
            http, parsed = response
            code = str(((parsed or {}).get("Error") or {}).get("Code") or "")
            if code in NOT_FOUND_CODES:
                return self._delay(attempts)
            listed = _DESCRIBES.get(operation)
            if getattr(http, "status_code", 500) < 300 and listed and not (parsed or {}).get(listed[1]) and any(
                    i.startswith(listed[0]) for i in named):
                return self._delay(attempts)  # a describe of the new resource itself that lists nothing yet
            return None

        events.register("provide-client-params.ec2", mark, unique_id="kprov-settle-mark")
        events.register("after-call.ec2", after_call, unique_id="kprov-settle-created")
        events.register_first("needs-retry.ec2", needs_retry, unique_id="kprov-settle-retry")

    def _delay(self, attempts: int) -> float:
        with self._lock:
            self.retried += 1
        return random.uniform(self.base / 2, min(self.cap, self.base * 2 ** max(attempts - 1, 0)))  # noqa: S311


# IAM's eventual consistency: a just-created access key may be refused for a while, with the codes of a
# bad key (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html
# #troubleshoot_general_eventual-consistency). AuthFailure is EC2's spelling of the same refusal.
NEW_KEY_CODES = frozenset({"InvalidClientTokenId", "SignatureDoesNotMatch", "AuthFailure", "AccessDenied"})


def until_key_accepted(attempt: Callable[[], _T], *, budget: float, clock: Callable[[], float],
                       sleep: Callable[[float], None], on_retry: Callable[[AwsError], None] | None = None,
                       first: float = 1.0, cap: float = 10.0) -> _T:
    """`attempt()` (a call signed with a new access key), retried while IAM refuses the key as not yet known.

    Only NEW_KEY_CODES are retried, with a doubling delay (`first`, at most `cap`) until `budget` seconds
    have passed; then, or on any other error, the AwsError is raised: the key really does not work.
    """
    start, delay = clock(), first
    while True:
        try:
            return attempt()
        except AwsError as exc:
            if exc.code not in NEW_KEY_CODES or clock() - start >= budget:
                raise
            if on_retry is not None:
                on_retry(exc)
            sleep(delay)
            delay = min(delay * 2, cap)
