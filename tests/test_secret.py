"""Secret masking on every output path, the redactor and its encodings, and generated passwords."""

from __future__ import annotations

import base64
import copy
import dataclasses
import io
import json
import logging
import pickle  # noqa: TID251 - the test proves a Secret refuses to be pickled
import re
import secrets
import subprocess
import sys
import traceback
from typing import NamedTuple
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kensium_provision.errors import InputError, StepError
from kensium_provision.secret import (
    MASK,
    POLICIES,
    REDACTOR,
    RedactingFilter,
    Redactor,
    Secret,
    check_password,
    generate_password,
    is_secret_key,
    json_default,
    masked,
    password_policy,
)


@pytest.fixture
def canary() -> str:
    return f"Canary-{secrets.token_hex(8)}-Pw"


# --- Secret: the mask on every path -------------------------------------------------------------------------


def test_str_repr_and_formatting_show_only_the_mask(canary: str) -> None:
    s = Secret(canary)
    shown = [str(s), repr(s), f"{s}", f"{s!s}", f"{s!r}", f"{s:>20}", f"{s:d}", f"{s:.3}", f"{s:x^30}",
             "%s" % s, "%r" % s, "%(pw)s" % {"pw": s},  # noqa: UP031 - %-formatting is one of the paths
             f"{s}", f"{s!r:>5}", str([s]), str({"pw": s})]
    for text in shown:
        assert canary not in text
        assert "•" in text
    assert str(s) == MASK and f"{s:>10}" == f"  {MASK}"
    assert s.reveal() == canary


def test_masked_masks_secrets_at_any_depth_and_keeps_everything_else(canary: str) -> None:
    s = Secret(canary)
    shown = masked({"pw": s, "n": 1, "nested": [{"token": s}, ("a", s)], "plain": "text", "none": None})
    assert shown == {"pw": MASK, "n": 1, "nested": [{"token": MASK}, ["a", MASK]], "plain": "text", "none": None}
    assert masked(s) == MASK and masked("x") == "x"


def test_the_engine_the_renderer_and_the_journal_mask_with_secret_s_mask_and_masker() -> None:
    from kensium_provision.engine import run
    from kensium_provision.ui import render

    assert vars(render)["MASK"] is MASK  # one constant, imported, never a copy
    assert run.shown_value is masked and render._masked is masked  # one masking function


def test_json_masks_with_the_hook_and_refuses_without_it(canary: str) -> None:
    s = Secret(canary)
    assert json.loads(json.dumps({"pw": s, "n": 1}, default=json_default)) == {"pw": MASK, "n": 1}
    with pytest.raises(TypeError) as err:
        json.dumps({"pw": s})
    assert canary not in str(err.value)
    with pytest.raises(TypeError):
        json.dumps({"other": object()}, default=json_default)


def _login(password: Secret) -> None:
    raise StepError(f"login rejected with {password}")


def _traceback_with_locals(secret: Secret) -> str:
    """A rich traceback with show_locals (never enabled in kprov) of frames holding only the Secret."""
    from rich.console import Console
    from rich.traceback import Traceback

    console = Console(file=io.StringIO(), width=100, color_system=None)
    try:
        _login(secret)
    except StepError as exc:
        console.print(Traceback.from_exception(type(exc), exc, exc.__traceback__, show_locals=True))
    text: str = console.file.getvalue()  # type: ignore[attr-defined]
    return text


def test_rich_console_pretty_and_tracebacks_with_locals_show_the_mask(canary: str) -> None:
    from rich.console import Console
    from rich.pretty import pretty_repr

    s = Secret(canary)
    console = Console(file=io.StringIO(), width=100, color_system=None)
    console.print(s)
    console.print({"MasterUserPassword": s, "list": [s]})
    console.print("password:", s)
    console.log(s)
    tb = _traceback_with_locals(s)
    assert "password = Secret(" in tb
    text = console.file.getvalue() + pretty_repr({"pw": s}) + tb  # type: ignore[attr-defined]
    assert canary not in text
    assert MASK in text


def test_exception_messages_and_tracebacks_show_the_mask(canary: str) -> None:
    s = Secret(canary)
    errors = (StepError(f"login for {s} failed"), ValueError(s), RuntimeError("bad: %s" % s),  # noqa: UP031
              KeyError(s))
    for exc in errors:
        try:
            raise exc
        except (StepError, ValueError, RuntimeError, KeyError) as caught:
            text = str(caught) + repr(caught) + "".join(traceback.format_exception(caught))
        assert canary not in text


def test_pickle_is_refused_and_copies_are_the_same_object(canary: str) -> None:
    s = Secret(canary)
    for target in (s, {"pw": s}, [s]):
        with pytest.raises(TypeError) as err:
            pickle.dumps(target)
        assert canary not in str(err.value)
    assert copy.copy(s) is s
    assert copy.deepcopy({"pw": s})["pw"] is s


def test_secret_is_immutable_and_never_expanded_by_dataclasses(canary: str) -> None:
    s = Secret(canary)
    with pytest.raises(AttributeError):
        s._value = "x"
    with pytest.raises(AttributeError):
        del s._value
    with pytest.raises(TypeError):
        vars(s)

    @dataclasses.dataclass
    class Holder:
        password: Secret

    assert dataclasses.asdict(Holder(s))["password"] is s
    assert canary not in repr(Holder(s))


def test_equality_is_between_secrets_only_and_hash_says_nothing(canary: str) -> None:
    s = Secret(canary)
    assert s == Secret(canary)
    assert s != Secret(canary + "x")
    assert s != canary  # a plain str never equals: compare with reveal() on purpose
    assert hash(s) == hash(Secret("completely-different")) == hash(MASK)
    assert len({s, Secret(canary), Secret(canary + "x")}) == 2


def test_construction_errors_do_not_quote_the_value() -> None:
    with pytest.raises(TypeError) as err:
        Secret(98765432101)  # type: ignore[arg-type]
    assert "98765432101" not in str(err.value)
    assert Secret(Secret("wrapped-value")).reveal() == "wrapped-value"


def test_derived_values_are_secrets_and_registered(canary: str) -> None:
    s = Secret(canary + "/:@")
    user = Secret("rabbit-user-pw-77")
    url = s.derive(lambda pw: f"amqps://admin:{quote(pw, safe='')}@b-1.mq.us-east-1.amazonaws.com:5671")
    both = s.derive(lambda a, b: f"Server=db;Password={a};Other={b}", user)
    assert isinstance(url, Secret) and isinstance(both, Secret)
    assert str(url) == MASK and canary not in repr(both)
    assert url.reveal().startswith("amqps://admin:Canary-")
    assert REDACTOR.redact(f"connecting to {url.reveal()} now") == f"connecting to {MASK} now"
    assert "rabbit-user-pw-77" not in REDACTOR.redact(both.reveal())


# --- Redactor --------------------------------------------------------------------------------------------


def test_redactor_replaces_values_and_common_encodings() -> None:
    r = Redactor()
    value = 'Pw"with\\odd/chars+&<>é=42'
    Secret(value, redactor=r)
    samples = {
        "plain": f"got {value} back",
        "json": json.dumps({"SecretString": value}),
        "json-ascii": json.dumps({"SecretString": value}, ensure_ascii=True),
        "url": f"https://x/?p={quote(value, safe='')}",
        "url-plus": f"p={quote_plus(value)}",
        "repr": repr({"p": value}),
        "base64": base64.b64encode(value.encode()).decode(),
        "base64url": base64.urlsafe_b64encode(value.encode()).decode(),
    }
    for offset in range(3):  # inside a bigger base64 blob: `Basic base64(user:pw)` at every alignment
        blob = base64.b64encode(b"u" * offset + b"admin:" + value.encode() + b";tail").decode()
        samples[f"basic-auth-{offset}"] = f"Authorization: Basic {blob}"
    for name, text in samples.items():
        assert r.leaks(text), name
        redacted = r.redact(text)
        assert not r.leaks(redacted), name
        assert MASK in redacted, name
        assert value not in redacted


def test_redactor_masks_longest_first_and_ignores_short_values() -> None:
    r = Redactor()
    r.register("Password-123")
    r.register("Server=db;Password=Password-123")
    assert r.redact("cs=Server=db;Password=Password-123;") == f"cs={MASK};"
    r.register("abc")  # too short to mask without wrecking every log line
    assert r.redact("abc abc") == "abc abc"


def test_secrets_register_with_the_default_redactor(canary: str) -> None:
    Secret(canary)
    assert REDACTOR.redact(f"x{canary}y") == f"x{MASK}y"


@pytest.mark.parametrize(("key", "secret"), [
    ("MasterUserPassword", True), ("password", True), ("Passwd", True), ("SecretString", True),
    ("X-Amz-Security-Token", True), ("SessionToken", True), ("secret_access_key", True), ("Authorization", True),
    ("api-key", True), ("connection_string", True), ("credentials", True),
    ("SecretId", False), ("secret_name", False), ("SecretArn", False), ("password_policy", False),
    ("AccessKeyId", False), ("Name", False), ("MasterUsername", False), ("secret_ref", False), (3, False),
])
def test_secret_key_names(key: object, secret: bool) -> None:
    assert is_secret_key(key) is secret


def test_redact_obj_masks_nested_values_keys_and_secrets(canary: str) -> None:
    s = Secret(canary)
    params = {
        "Name": "kprov/qa/acme/sql-login",
        "SecretId": "arn:aws:secretsmanager:us-east-1:111111111111:secret:kprov/qa/acme/sql-login-AbC123",
        "MasterUserPassword": "operator-typed",
        "Users": [{"Username": "admin", "Password": canary}, ("note", f"pw is {canary}")],
        "Secret": s, "Count": 3, "Flag": None, "Token": None,
    }
    out = REDACTOR.redact_obj(params)
    assert out == {
        "Name": "kprov/qa/acme/sql-login", "SecretId": params["SecretId"], "MasterUserPassword": MASK,
        "Users": [{"Username": "admin", "Password": MASK}, ("note", f"pw is {MASK}")],
        "Secret": MASK, "Count": 3, "Flag": None, "Token": None,
    }
    assert canary not in json.dumps(out)


# --- logging ------------------------------------------------------------------------------------------------


@pytest.fixture
def redacted_log() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"kprov.test.{secrets.token_hex(4)}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger, stream


def test_logging_filter_redacts_messages_args_tracebacks_and_stacks(
    canary: str, redacted_log: tuple[logging.Logger, io.StringIO]
) -> None:
    logger, stream = redacted_log
    s = Secret(canary)
    logger.debug("params: %s", {"MasterUserPassword": canary})  # botocore's kind of leak: the raw value
    logger.info("value %s and %r", canary, s)
    logger.info(f"interpolated early {canary}")  # noqa: G004 - a caller's early interpolation is redacted too
    logger.info("%(pw)s", {"pw": canary})
    logger.info("bad args %s %s", canary)  # noqa: PLE1206 - a broken format still logs, redacted
    logger.info("stack", stack_info=True)
    try:
        raise ValueError(f"Invalid type for parameter MasterUserPassword, value: {canary}")
    except ValueError:
        logger.exception("call failed")
    text = stream.getvalue()
    assert canary not in text
    assert text.count(MASK) >= 7
    assert "Traceback" in text and "ValueError" in text


def test_filter_without_secrets_leaves_records_alone(redacted_log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = redacted_log
    logger.info("creating %s in %s", "db-POS-01", "us-east-1")
    assert stream.getvalue() == "INFO creating db-POS-01 in us-east-1\n"


# --- passwords --------------------------------------------------------------------------------------------

# The rules, written again from domain.md and the AWS docs, independently of the code under test.
class _Rule(NamedTuple):
    low: int
    high: int
    bad: str
    distinct: int
    classes: int


_INDEPENDENT = {
    "amazon-mq": _Rule(12, 250, bad=",:=", distinct=4, classes=0),
    "rds-sqlserver-master": _Rule(8, 128, bad='/@"', distinct=1, classes=0),
    "sql-login": _Rule(8, 128, bad="'\";[]{}", distinct=1, classes=4),
    "rabbitmq-user": _Rule(12, 128, bad=",:=@/?#%", distinct=4, classes=0),
    "windows-admin": _Rule(12, 127, bad="", distinct=1, classes=3),
    "tenant-admin": _Rule(12, 128, bad="<&", distinct=1, classes=4),
}


def independent_ok(policy: str, value: str) -> bool:
    rule = _INDEPENDENT[policy]
    if not re.fullmatch(r"[\x21-\x7e]*", value) or not rule.low <= len(value) <= rule.high:
        return False
    if any(ch in rule.bad for ch in value) or len(set(value)) < rule.distinct:
        return False
    classes = sum(bool(re.search(p, value)) for p in ("[A-Z]", "[a-z]", "[0-9]", "[^A-Za-z0-9]"))
    return classes >= rule.classes


def test_every_policy_is_covered_by_the_independent_rules() -> None:
    assert set(POLICIES) == set(_INDEPENDENT)
    assert all(p.length >= 24 for p in POLICIES.values())


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(_INDEPENDENT)), data=st.data())
def test_generated_passwords_meet_their_policy(name: str, data: st.DataObject) -> None:
    policy = POLICIES[name]
    length = data.draw(st.one_of(st.none(), st.integers(policy.min_length, policy.max_length)), label="length")
    secret = generate_password(name, length=length)
    value = secret.reveal()
    assert len(value) == (policy.length if length is None else length)
    assert independent_ok(name, value)
    assert all(re.search(p, value) for p in ("[A-Z]", "[a-z]", "[0-9]", "[^A-Za-z0-9]"))  # all four, always
    assert check_password(name, value) == []
    assert str(secret) == MASK


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(sorted(_INDEPENDENT)),
       value=st.one_of(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=260),
                       st.text(max_size=40)))
def test_check_password_agrees_with_the_independent_rules(name: str, value: str) -> None:
    problems = check_password(name, value)
    assert (problems == []) == independent_ok(name, value)
    # Never echoed: unless the value is a word of the rules' own text ("must"), which says nothing of it.
    wording = " ".join(check_password(name, "") + check_password(name, "\x01" * len(value)))
    if len(value) >= 4 and value not in wording:
        assert not any(value in problem for problem in problems)


@pytest.mark.parametrize("value", ["short", "aaaaaaaaaaaaaa", "Abc,def:ghi=jkl"])
def test_amazon_mq_rejects_the_domain_vectors(value: str) -> None:
    problems = check_password("amazon-mq", value)
    assert problems and all(value not in p for p in problems)


def test_check_password_accepts_a_secret_and_knows_the_user_name() -> None:
    assert check_password("sql-login", Secret("Abcdef-12345")) == []
    problems = check_password("sql-login", "xPOS_acme_user-1A", username="pos_acme_user")
    assert problems == ["must not contain the user name"]
    assert check_password(POLICIES["rds-sqlserver-master"], "with space 123") == [
        "may hold only printable ASCII characters, without spaces"]


def test_generated_passwords_differ_and_bad_requests_are_input_errors() -> None:
    values = {generate_password("amazon-mq").reveal() for _ in range(200)}
    assert len(values) == 200
    with pytest.raises(InputError, match=r"unknown password policy 'nope'.*amazon-mq"):
        generate_password("nope")
    with pytest.raises(InputError, match="12 to 250"):
        generate_password("amazon-mq", length=11)
    assert password_policy(POLICIES["sql-login"]) is POLICIES["sql-login"]


def test_the_secret_module_imports_only_the_standard_library() -> None:
    code = ("import sys; before = set(sys.modules); import kensium_provision.secret; "
            "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
            "print(sorted(new - set(sys.stdlib_module_names) - {'kensium_provision'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# The two tests below run in either order (the suite's order is random). Whichever runs second proves that
# the first one's registration did not outlive it (tests/conftest.py `_own_secrets`).
_ISOLATION_CANARY = "kept-to-one-test-" + secrets.token_hex(8)


@pytest.mark.parametrize("turn", ["first", "second"])
def test_a_value_a_test_registers_is_a_mask_in_that_test_only(turn: str) -> None:
    assert not REDACTOR.leaks(f"record {_ISOLATION_CANARY} ({turn})")
    REDACTOR.register(_ISOLATION_CANARY)
    assert REDACTOR.leaks(f"record {_ISOLATION_CANARY} ({turn})")
