"""The S3 access policy evaluator on its own (pure logic; the HTTP behaviour is in test_s3_access)."""

from __future__ import annotations

from typing import Any

import pytest

from omicsfs.localservice.s3.policy import AccessRequest, Decision, default_policy, evaluate

ACCOUNT = "123456789012"
AP = f"arn:aws:s3:us-west-2:{ACCOUNT}:accesspoint/{ACCOUNT}-1234567890"
PREFIX = f"{ACCOUNT}/sequenceStore/1234567890/"
OBJECT = f"{AP}/object/{PREFIX}readSet/1111111111/a.bam"


def get(resource: str = OBJECT, **context: str) -> AccessRequest:
    return AccessRequest(
        "s3:GetObject", resource, ACCOUNT, {"aws:principalarn": f"arn:aws:iam::{ACCOUNT}:root", **context}
    )


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(**fields: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*", **fields}


def deny(**fields: Any) -> dict[str, Any]:
    return {**allow(**fields), "Effect": "Deny", **fields}


def test_the_default_policy_lets_the_owner_read_and_list_its_store_only() -> None:
    default = default_policy(AP, ACCOUNT, "1234567890")
    assert evaluate(default, get()) is Decision.ALLOW
    assert evaluate(default, AccessRequest("s3:GetObjectTagging", OBJECT, ACCOUNT)) is Decision.ALLOW
    assert evaluate(default, AccessRequest("s3:ListBucket", AP, ACCOUNT)) is Decision.ALLOW
    assert evaluate(default, get(f"{AP}/object/{ACCOUNT}/sequenceStore/999/x")) is Decision.IMPLICIT_DENY
    assert evaluate(default, AccessRequest("s3:PutObject", OBJECT, ACCOUNT)) is Decision.IMPLICIT_DENY
    assert evaluate(default, AccessRequest("s3:GetObject", OBJECT, "999999999999")) is Decision.IMPLICIT_DENY


@pytest.mark.parametrize(
    ("principal", "decision"),
    [
        ("*", Decision.ALLOW),
        ({"AWS": "*"}, Decision.ALLOW),
        ({"AWS": ACCOUNT}, Decision.ALLOW),
        ({"AWS": [f"arn:aws:iam::{ACCOUNT}:root", "999999999999"]}, Decision.ALLOW),
        ({"AWS": "999999999999"}, Decision.IMPLICIT_DENY),
        ({"AWS": f"arn:aws:iam::{ACCOUNT}:role/reader"}, Decision.IMPLICIT_DENY),  # the caller is the root
        ({"Service": "omics.amazonaws.com"}, Decision.IMPLICIT_DENY),  # cannot be matched: grants nothing
    ],
)
def test_principals(principal: Any, decision: Decision) -> None:
    assert evaluate(policy(allow(Principal=principal)), get()) is decision


def test_actions_match_case_insensitively_with_wildcards_and_resources_exactly() -> None:
    assert evaluate(policy(allow(Action="S3:get*")), get()) is Decision.ALLOW
    assert evaluate(policy(allow(Action=["s3:ListBucket", "s3:GetObjec?"])), get()) is Decision.ALLOW
    assert evaluate(policy(allow(Action="s3:GetObjectTagging")), get()) is Decision.IMPLICIT_DENY
    assert evaluate(policy(allow(Resource=f"{AP}/object/{PREFIX}*")), get()) is Decision.ALLOW
    assert evaluate(policy(allow(Resource=f"{AP}/object/{PREFIX.upper()}*")), get()) is Decision.IMPLICIT_DENY
    assert (
        evaluate(policy(allow(Resource=f"{AP}/object/*/readSet/111111111?/a.bam")), get()) is Decision.ALLOW
    )


def test_an_explicit_deny_wins_over_any_allow() -> None:
    document = policy(allow(), deny(Resource=f"{AP}/object/{PREFIX}readSet/1111111111/*"), allow())
    assert evaluate(document, get()) is Decision.EXPLICIT_DENY
    assert evaluate(document, get(f"{AP}/object/{PREFIX}readSet/2222222222/b.bam")) is Decision.ALLOW
    assert evaluate({"Statement": allow()}, get()) is Decision.ALLOW  # a lone statement object


def test_conditions_on_tags_prefix_and_principal() -> None:
    tag = {"StringEquals": {"s3:ExistingObjectTag/omics:sampleId": ["A", "C"]}}
    assert evaluate(policy(allow(Condition=tag)), get(**{"s3:existingobjecttag/omics:sampleid": "A"})) is (
        Decision.ALLOW
    )
    assert evaluate(policy(allow(Condition=tag)), get(**{"s3:existingobjecttag/omics:sampleid": "B"})) is (
        Decision.IMPLICIT_DENY
    )
    assert evaluate(policy(allow(Condition=tag)), get()) is Decision.IMPLICIT_DENY  # absent key
    negated = {"StringNotLike": {"s3:prefix": "secret/*"}}
    assert evaluate(policy(allow(Condition=negated)), get()) is Decision.ALLOW  # absent: negation holds
    listing = AccessRequest("s3:ListBucket", AP, ACCOUNT, {"s3:prefix": "secret/x"})
    assert evaluate(policy(allow(Condition=negated)), listing) is Decision.IMPLICIT_DENY
    by_arn = {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:root"}}
    assert evaluate(policy(allow(Condition=by_arn)), get()) is Decision.ALLOW
    both = {**tag, "ArnEquals": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:root"}}
    assert evaluate(policy(allow(Condition=both)), get(**{"s3:existingobjecttag/omics:sampleid": "C"})) is (
        Decision.ALLOW
    )


def test_what_cannot_be_evaluated_fails_closed() -> None:
    unknown = {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}
    assert evaluate(policy(allow(Condition=unknown)), get()) is Decision.IMPLICIT_DENY
    assert evaluate(policy(allow(), deny(Condition=unknown)), get()) is Decision.EXPLICIT_DENY
    # A Deny whose action does not cover the request does not apply, whatever its condition.
    assert evaluate(policy(allow(), deny(Action="s3:ListBucket", Condition=unknown)), get()) is Decision.ALLOW
    not_action = {"Effect": "Deny", "Principal": "*", "NotAction": "s3:ListBucket", "Resource": "*"}
    assert evaluate(policy(allow(), not_action), get()) is Decision.EXPLICIT_DENY
    assert evaluate(policy({**not_action, "Effect": "Allow"}), get()) is Decision.IMPLICIT_DENY
    assert evaluate(policy({"Effect": "Maybe", "Principal": "*", "Action": "*", "Resource": "*"}), get()) is (
        Decision.EXPLICIT_DENY
    )
    assert evaluate(None, get()) is Decision.IMPLICIT_DENY
    assert evaluate({"Statement": "everything"}, get()) is Decision.IMPLICIT_DENY
