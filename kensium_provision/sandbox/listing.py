"""moto's listings as AWS answers them: Secrets Manager's paged before it is serialised, and the tagging API's
GetResources by ARN in one answer, refused with the parameters AWS refuses beside it.

- `secretsmanager:ListSecrets`: moto serialises every matching secret (`FakeSecret.to_dict`) for each page
  and then keeps one page of them: 151 pages at 5,000 clients serialised 15,000 secrets each, 0.3 to 0.7 s of
  the sandbox's CPU a page, where AWS answers a page in its round trip. Here the matching secrets are paged
  first and only the page is serialised; the pages, their order and their tokens are moto's own.
- `tag:GetResources` with `ResourceARNList`: AWS's model of the API (botocore's copy of it) says the list
  holds 1 to 100 ARNs and that neither ResourceTypeFilters, TagFilters nor any pagination parameter may go
  with it (InvalidParameterException), so its answer is one page. moto pages it at 50 resources or 100 tags
  and hands out a token, which a paginator then sends back with the list: a request AWS refuses. And it
  walks every resource of every service for each call; here only the services that own a listed ARN.
- `dynamodb:Scan`: moto's answer (its pages, filters, counts and capacity) goes out through its generic,
  model-driven serialiser, which looks every member of every attribute value up in the service model: 0.8 s
  of the sandbox's CPU for a 1 MB page of client records, 5 s for the 5,000 clients' records, the fleet
  check's first read, which everything else waits for. DynamoDB's wire form of an item is the item itself
  (`{"S": ...}` maps), so the answer is written as JSON directly; one that JSON cannot hold as it is (binary
  values, which the serialiser base64-encodes) still goes through moto's serialiser.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["ARN_LIST_EXCLUDES", "install"]

# What GetResources refuses beside ResourceARNList (botocore's resourcegroupstaggingapi model, GetResources).
ARN_LIST_EXCLUDES = ("ResourceTypeFilters", "TagFilters", "ResourcesPerPage", "TagsPerPage", "PaginationToken")
_ARN_LIST_MAX = 100


def install() -> None:
    """Replace moto's ListSecrets backend and its GetResources and Scan responses (idempotent)."""
    from moto.resourcegroupstaggingapi.responses import ResourceGroupsTaggingAPIResponse
    from moto.secretsmanager.models import SecretsManagerBackend

    SecretsManagerBackend.list_secrets = _list_secrets  # type: ignore[method-assign]
    if not hasattr(ResourceGroupsTaggingAPIResponse, "_kprov_get_resources"):
        ResourceGroupsTaggingAPIResponse._kprov_get_resources = (  # type: ignore[attr-defined]
            ResourceGroupsTaggingAPIResponse.get_resources)
    ResourceGroupsTaggingAPIResponse.get_resources = _get_resources  # type: ignore[method-assign]
    from moto.dynamodb.responses import DynamoHandler

    if not hasattr(DynamoHandler, "_kprov_scan"):
        DynamoHandler._kprov_scan = DynamoHandler.scan  # type: ignore[attr-defined]
    DynamoHandler.scan = _scan  # type: ignore[method-assign]


def _list_secrets(self: Any, filters: list[dict[str, Any]], max_results: int | None = None,
                  next_token: str | None = None, include_planned_deletion: bool = False,
                  ) -> tuple[list[dict[str, Any]], str | None]:
    from moto.secretsmanager.models import MAX_RESULTS_DEFAULT, _matches

    matching = [secret for secret in self.secrets.values()
                if (include_planned_deletion or not getattr(secret, "deleted_date", None))
                and _matches(secret, filters)]
    page, token = self._get_secret_values_page_and_next_token(matching, max_results or MAX_RESULTS_DEFAULT, next_token)
    return [secret.to_dict() for secret in page], token


def _get_resources(self: Any) -> Any:
    from moto.core.responses import ActionResult
    from moto.resourcegroupstaggingapi.exceptions import ResourceGroupsTaggingAPIError

    arns = self._get_param("ResourceARNList", [])
    if not arns:
        return self._kprov_get_resources()
    beside = [name for name in ARN_LIST_EXCLUDES if self._get_param(name) not in (None, [], "")]
    if beside or len(arns) > _ARN_LIST_MAX:
        problem = f"ResourceARNList cannot be used with {', '.join(beside)}" if beside else \
            f"ResourceARNList holds at most {_ARN_LIST_MAX} ARNs"
        raise ResourceGroupsTaggingAPIError("InvalidParameterException", problem)
    return ActionResult({"ResourceTagMappingList": [
        {"ResourceARN": r.arn, "Tags": [{"Key": k, "Value": v} for k, v in r.tags.items()]}
        for r in _tagged(self.backend.account_id, self.backend.region_name, arns)]})


def _tagged(account: str, region: str, arns: list[str]) -> list[Any]:
    """moto's tagged resources with these ARNs, as its GetResources finds them (tagged ones, or those that ask
    to be listed untagged), from the backends that own one of them only: moto's own walk built every
    resource of every service (its IAM users, secrets, buckets) for each call and compared each ARN with
    the list, 2.3 s of the sandbox's CPU a call at 5,000 clients."""
    from moto.core.resource_tagging import iter_taggable_backends

    wanted = set(arns)
    owners = [b for b in iter_taggable_backends(account, region) if any(b.owns_arn(arn) for arn in wanted)]
    return [r for backend in owners for r in backend.iter_tagged_resources()
            if r.arn in wanted and (r.tags or r.extra.get("include_untagged"))]


# What moto's serialiser sends with a DynamoDB answer (the JSON 1.0 protocol's content type).
_JSON_1_0 = {"Content-Type": "application/x-amz-json-1.0"}


def _scan(self: Any) -> Any:
    from moto.core.responses import ActionResult

    answer = self._kprov_scan()  # moto's own Scan, as a result not yet serialised
    if not isinstance(answer, ActionResult):
        return answer
    try:
        return json.dumps(answer.result), dict(_JSON_1_0)
    except TypeError:  # binary values (bytes), which moto's serialiser base64-encodes
        return answer
