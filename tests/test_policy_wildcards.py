"""IAM's policy wildcards as the bucket check matches them (steps.s3.wildcard_match): `*` and `?`, nothing else.

fnmatch, which the check used, also reads `[...]` as a character class, which IAM does not: a policy's
resource with a literal bracket did not match itself. Everywhere else the two agree (a property test).
"""

from __future__ import annotations

import fnmatch

from hypothesis import given
from hypothesis import strategies as st

from kensium_provision.steps.s3 import wildcard_match

_TEXT = st.text(alphabet="ab*?/:-", max_size=10)


@given(pattern=_TEXT, value=st.text(alphabet="ab/:-*?", max_size=10))
def test_it_agrees_with_fnmatch_where_there_is_no_bracket(pattern: str, value: str) -> None:
    assert wildcard_match(pattern, value) is fnmatch.fnmatchcase(value, pattern)


def test_a_bracket_is_a_character_as_in_iam_not_a_class() -> None:
    resource = "arn:aws:s3:::fusion-rms-acme/[draft]*"
    assert wildcard_match(resource, "arn:aws:s3:::fusion-rms-acme/[draft]notes.txt")
    assert not wildcard_match(resource, "arn:aws:s3:::fusion-rms-acme/dnotes.txt")
    assert not fnmatch.fnmatchcase("arn:aws:s3:::fusion-rms-acme/[draft]notes.txt", resource)  # what it did


def test_runs_and_single_characters() -> None:
    assert wildcard_match("arn:aws:s3:::b/*", "arn:aws:s3:::b/")
    assert wildcard_match("arn:aws:s3:::b/*", "arn:aws:s3:::b/pub/a/b")
    assert wildcard_match("s3:Get*", "s3:GetObject")
    assert wildcard_match("s3:?etObject", "s3:GetObject")
    assert not wildcard_match("s3:?etObject", "s3:etObject")
    assert wildcard_match("a*b*c", "aXbYbZc")
    assert not wildcard_match("a*b*c", "aXbYbZ")
    assert wildcard_match("*", "")
    assert not wildcard_match("arn:aws:s3:::b", "arn:aws:s3:::b/x")
