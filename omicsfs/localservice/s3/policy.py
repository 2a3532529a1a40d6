"""A store's S3 access policy, evaluated in a small, documented subset of IAM's rules.

HealthOmics grants S3 reads only when the store's S3 access policy allows them (the caller's own
IAM policy is the second gate, which this service does not model): "S3 Access requires two
levels of configuration: explicit allow in the Store's S3 Access Policy and an IAM policy"
(https://docs.aws.amazon.com/omics/latest/dev/s3-sharing.html). A new store gets a default
policy that lets the owner account's root GetObject, GetObjectTagging and ListBucket on the
store's prefix; here a store without a stored policy is evaluated against that default.

What is evaluated (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):

- ``Effect`` Allow or Deny; an explicit Deny wins, then any Allow; otherwise the implicit deny.
- ``Principal``: ``"*"``, ``{"AWS": "*"}``, or the account as ``123456789012`` or
  ``arn:aws:iam::123456789012:root`` (a string or a list). The caller is always that account's
  root: the service does not check signatures, so it cannot tell users or roles apart.
- ``Action`` (string or list, case-insensitive, ``*`` and ``?`` wildcards): ``s3:GetObject``
  (also HeadObject), ``s3:GetObjectTagging``, ``s3:ListBucket`` (also HeadBucket), ``s3:*``.
- ``Resource`` (string or list, ``*`` and ``?`` wildcards): the access point ARN for
  ListBucket, ``<access point ARN>/object/<key>`` for object actions.
- ``Condition`` with ``String(Not)Equals``, ``String(Not)Like``, ``Arn(Not)Equals`` and
  ``Arn(Not)Like`` on ``s3:prefix`` (the listing's prefix), ``aws:PrincipalArn`` and
  ``s3:ExistingObjectTag/<key>``; every operator and key must hold, any listed value may match;
  an absent key fails a positive operator and satisfies a negated one.

What cannot be evaluated honestly fails closed. A condition with another operator or key counts
as holding in a Deny and as failing in an Allow; a statement that cannot be matched at all
(``NotAction``, ``NotResource``, ``NotPrincipal``, another principal type, a missing field)
grants nothing as an Allow and denies every request as a Deny. A policy that is not a JSON
object denies everything.
"""

from __future__ import annotations

import enum
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

log = logging.getLogger(__name__)

GET_OBJECT = "s3:GetObject"
GET_OBJECT_TAGGING = "s3:GetObjectTagging"
LIST_BUCKET = "s3:ListBucket"

_STRING_OPERATORS = {
    "stringequals": (False, False),
    "stringnotequals": (False, True),
    "stringlike": (True, False),
    "stringnotlike": (True, True),
    "arnequals": (False, False),
    "arnnotequals": (False, True),
    "arnlike": (True, False),
    "arnnotlike": (True, True),
}  # operator -> (wildcards, negated)
_SUPPORTED_KEYS = ("s3:prefix", "aws:principalarn")
_TAG_KEY_PREFIX = "s3:existingobjecttag/"
_KNOWN_STATEMENT_FIELDS = {"Sid", "Effect", "Principal", "Action", "Resource", "Condition"}


class Decision(enum.Enum):
    ALLOW = "allow"
    EXPLICIT_DENY = "explicit deny"
    IMPLICIT_DENY = "implicit deny"


@dataclass(frozen=True)
class AccessRequest:
    """One S3 call as the policy sees it."""

    action: str
    resource: str
    account: str
    context: Mapping[str, str] = field(default_factory=dict)  # condition keys, lower-case

    @property
    def principal_arn(self) -> str:
        return f"arn:aws:iam::{self.account}:root"


class _Unsupported(Exception):
    """A statement uses something outside the evaluated subset."""


def default_policy(access_point_arn: str, account: str, store_id: str) -> dict[str, Any]:
    """The policy HealthOmics creates with a store (s3-sharing.html's "default created policy")."""
    owner = {"AWS": f"arn:aws:iam::{account}:root"}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": owner,
                "Action": [GET_OBJECT, GET_OBJECT_TAGGING],
                "Resource": f"{access_point_arn}/object/{account}/sequenceStore/{store_id}/*",
            },
            {"Effect": "Allow", "Principal": owner, "Action": LIST_BUCKET, "Resource": access_point_arn},
        ],
    }


def parse_policy(text: str) -> dict[str, Any] | None:
    """The stored policy text as a document, or None when it is not a JSON object."""
    try:
        document = json.loads(text)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def evaluate(policy: Mapping[str, Any] | None, request: AccessRequest) -> Decision:
    """Explicit Deny, else Allow, else the implicit deny (None, an unusable policy, denies)."""
    if policy is None:
        return Decision.IMPLICIT_DENY
    statements = policy.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list):
        return Decision.IMPLICIT_DENY
    allowed = False
    for statement in statements:
        effect = statement.get("Effect") if isinstance(statement, dict) else None
        deny = effect != "Allow"
        try:
            if not isinstance(statement, dict) or effect not in ("Allow", "Deny"):
                raise _Unsupported(f"statement {statement!r}")
            if not _matches(statement, request):
                continue
        except _Unsupported as exc:
            log.warning("S3 access policy: cannot evaluate %s; it fails closed", exc)
            if deny:
                return Decision.EXPLICIT_DENY
            continue
        try:
            holds = _conditions_hold(statement.get("Condition", {}), request)
        except _Unsupported as exc:
            log.warning("S3 access policy: cannot evaluate %s; it fails closed", exc)
            holds = deny
        if holds and deny:
            return Decision.EXPLICIT_DENY
        allowed = allowed or holds
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY


def _matches(statement: Mapping[str, Any], request: AccessRequest) -> bool:
    """Whether principal, action and resource cover the request (conditions aside)."""
    unknown = set(statement) - _KNOWN_STATEMENT_FIELDS
    if unknown or not {"Principal", "Action", "Resource"} <= set(statement):
        raise _Unsupported(f"fields {sorted(unknown) or 'missing Principal/Action/Resource'}")
    actions, resources = _strings(statement["Action"]), _strings(statement["Resource"])
    return (
        _principal_matches(statement["Principal"], request)
        and any(_wildcard(p, ignore_case=True).fullmatch(request.action) for p in actions)
        and any(_wildcard(p).fullmatch(request.resource) for p in resources)
    )


def _principal_matches(principal: Any, request: AccessRequest) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict) or set(principal) != {"AWS"}:
        raise _Unsupported(f"principal {principal!r}")
    return any(value in ("*", request.account, request.principal_arn) for value in _strings(principal["AWS"]))


def _conditions_hold(conditions: Any, request: AccessRequest) -> bool:
    if not isinstance(conditions, dict):
        raise _Unsupported(f"condition {conditions!r}")
    for operator, tests in conditions.items():
        kind = _STRING_OPERATORS.get(str(operator).lower())
        if kind is None or not isinstance(tests, dict):
            raise _Unsupported(f"condition operator {operator!r}")
        wildcards, negated = kind
        for key, values in tests.items():
            name = str(key).lower()
            if name not in _SUPPORTED_KEYS and not name.startswith(_TAG_KEY_PREFIX):
                raise _Unsupported(f"condition key {key!r}")
            actual = request.context.get(name)
            if actual is None:
                matched = False
            else:
                matched = any(
                    (_wildcard(v).fullmatch(actual) is not None) if wildcards else v == actual
                    for v in _strings(values)
                )
            if matched == negated:
                return False
    return True


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise _Unsupported(f"value {value!r}")


@cache
def _wildcard(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    """IAM's ``*`` (any run of characters) and ``?`` (one character); everything else literal."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)
