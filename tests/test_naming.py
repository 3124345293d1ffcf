"""The naming-convention engine: domain.md section 7 vectors, the rules file, and properties."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kensium_provision.checklist.catalog import naming_rules_path
from kensium_provision.errors import ChecklistError, InputError
from kensium_provision.naming import rules as naming
from kensium_provision.naming.loader import default_path, load_rules


@pytest.fixture(scope="module")
def rules() -> naming.RuleSet:
    return load_rules()


# --- domain.md section 7: accept / reject vectors ------------------------------------------------

XMSQA1 = {"org_id": "xmsqa1"}
ACME = {"org_id": "acme"}
HOST = {"host": "POS01"}

VECTORS = [
    # (vector, rule, value, context, accepted)
    (1, "org-id", "acme", {}, True),
    (2, "org-id", "xmsqa1", {}, True),
    (3, "org-id", "a", {}, True),
    (4, "org-id", "Acme", {}, False),
    (5, "org-id", "ACME", {}, False),
    (6, "org-id", "1acme", {}, False),
    (7, "org-id", "acme-pos", {}, False),
    (8, "org-id", "acme_pos", {}, False),
    (9, "org-id", "acme pos", {}, False),
    (10, "org-id", "", {}, False),
    (11, "org-id", "café", {}, False),
    (13, "org-id", "a" * 53, {}, False),
    (14, "mq-broker", "mq-POS-01", {}, True),
    (15, "mq-broker", "mq-POS-02", {}, True),
    (16, "mq-broker", "mq-POS-10", {}, True),
    (17, "mq-broker", "mq-pos-01", {}, False),
    (18, "mq-broker", "MQ-POS-01", {}, False),
    (19, "mq-broker", "mq-POS-1", {}, False),
    (20, "mq-broker", "mq_POS_01", {}, False),
    (21, "mq-broker", "mq-POS-01a", {}, False),
    (22, "mq-broker", "db-POS-01", {}, False),
    (23, "mq-broker", "mq-POS-01", {}, True),  # as a reference to a Shared broker; see test_vector_23
    (24, "rds-instance", "db-POS-01", {}, True),
    (25, "rds-instance", "db-POS-07", {}, True),
    (26, "rds-instance", "db-pos-01", {}, True),
    (27, "rds-instance", "db-POS-01-", {}, False),
    (28, "rds-instance", "db--POS-01", {}, False),
    (29, "rds-instance", "1db-POS-01", {}, False),
    (30, "rds-instance", "rds-POS-01", {}, False),
    (31, "ec2-host", "POS01", {}, True),
    (32, "ec2-host", "pos01", {}, False),
    (33, "ec2-host", "POS-01", {}, False),
    (34, "security-group-ops", "SG-POS-OPS", {}, True),
    (35, "security-group-ops", "sg-pos-ops", {}, False),
    (36, "security-group-ops", "SG-POS-OP", {}, False),
    (37, "tm-database", "POS_POS01", HOST, True),
    (38, "tm-database", "pos_pos01", HOST, True),
    (39, "tm-database", "POS_POS02", HOST, False),
    (40, "tm-database", "POS-POS01", HOST, False),
    (41, "tm-login", "pos_pos01_user", HOST, True),
    (42, "tm-login", "POS_POS01_user", HOST, True),
    (43, "tm-login", "pos_pos01", HOST, False),
    (44, "tm-login", "pos_pos01_usr", HOST, False),
    (45, "onsite-login", "POS_corp_user", {}, True),
    (46, "onsite-login", "POS_store1_user", {}, True),
    (47, "onsite-login", "POS_store1", {}, False),
    (48, "iam-user", "rms_xmsqa1", XMSQA1, True),
    (49, "iam-user", "rms-xmsqa1", XMSQA1, False),
    (50, "iam-user", "RMS_xmsqa1", XMSQA1, False),
    (51, "iam-user", "rms_xmsqa2", XMSQA1, False),
    (52, "s3-bucket", "fusion-rms-xmsqa1", XMSQA1, True),
    (53, "s3-bucket", "fusion-rms-XMSQA1", XMSQA1, False),
    (54, "s3-bucket", "fusion_rms_xmsqa1", XMSQA1, False),
    (55, "s3-bucket", "kensium-rms-xmsqa1", XMSQA1, False),  # see test_vector_55 for the override
    (56, "vhost-hub", "acme", ACME, True),
    (57, "vhost-corp", "acme_corp", ACME, True),
    (58, "vhost-store", "acme_store1", {**ACME, "site_id": "store1"}, True),
    (59, "vhost-corp", "acme-corp", ACME, False),
    (60, "tenant-cloud", "acme", ACME, True),
    (61, "tenant-cloud", "Acme", ACME, False),
    (67, "broker-admin-user", "admin", {}, True),
    (68, "broker-admin-user", "guest", {}, False),
]


def _vector_id(vector: tuple[int, str, str, dict[str, str], bool]) -> str:
    number, rule_id, value, context, accepted = vector
    shown = value if len(value) <= 20 else f"{value[:8]}...x{len(value)}"
    given_ = "".join(f",{k}={v}" for k, v in context.items())
    return f"#{number:02d} {rule_id} {shown!r}{given_} {'accept' if accepted else 'reject'}"


@pytest.mark.parametrize("vector", VECTORS, ids=[_vector_id(v) for v in VECTORS])
def test_domain_vector(rules: naming.RuleSet, vector: tuple[int, str, str, dict[str, str], bool]) -> None:
    _, rule_id, value, context, accepted = vector
    problems = rules.check(rule_id, value, context)
    if accepted:
        assert problems == []
    else:
        assert problems, f"{value!r} should break {rule_id}"
        assert all(p.startswith(f"{rule_id}: ") for p in problems)


def test_vector_12_org_id_unique_ignoring_case() -> None:
    assert naming.check_org_id_unique("acme", ["ACME"]) == [
        "org-id: 'acme' is already taken (as 'ACME'); org ids are unique ignoring case"
    ]
    assert naming.check_org_id_unique("acme", ["other", "acme"])
    assert naming.check_org_id_unique("acme", ["acme2", "acm"]) == []


def test_vector_13_message_says_which_template_limits_the_org_id(rules: naming.RuleSet) -> None:
    assert rules.check("org-id", "a" * 53) == [
        "org-id: is 53 characters long; at most 52 so that s3-bucket (fusion-rms-<org_id>) stays within 63 characters"
    ]
    assert rules.check("org-id", "a" * 52) == []


def test_vector_23_existing_broker_is_refused_for_create_but_fine_as_reference(rules: naming.RuleSet) -> None:
    existing = ["mq-POS-01", "mq-POS-02"]
    assert rules.check("mq-broker", "mq-POS-01") == []
    assert rules.check_unique("mq-broker", "mq-POS-01", existing) == [
        "mq-broker: 'mq-POS-01' already exists (as 'mq-POS-01')"
    ]
    assert rules.check_unique("mq-broker", "mq-POS-03", existing) == []


def test_vector_26_rds_identifier_as_returned_by_aws_is_the_same_instance(rules: naming.RuleSet) -> None:
    assert rules.same("rds-instance", "db-POS-01", "db-pos-01")
    assert not rules.same("rds-instance", "db-POS-01", "db-pos-02")
    assert rules.check_unique("rds-instance", "db-POS-01", ["db-pos-01"])
    assert not rules.same("mq-broker", "mq-POS-01", "mq-pos-01")


def test_vector_55_other_bucket_name_only_as_explicit_alternative(rules: naming.RuleSet) -> None:
    assert rules.check("s3-bucket", "kensium-rms-xmsqa1", XMSQA1)
    assert rules.check("s3-bucket-alternative", "kensium-rms-xmsqa1") == []
    assert rules.check("s3-bucket-alternative", "Kensium_RMS")


# --- the case conflicts, decided once each -------------------------------------------------------


def test_tm_names_render_in_the_example_form_and_match_any_case(rules: naming.RuleSet) -> None:
    assert rules.render("tm-database", HOST) == "POS_POS01"
    assert rules.render("tm-login", HOST) == "POS_POS01_user"
    assert rules.same("tm-database", "POS_POS01", "pos_pos01")
    assert rules.check("tm-database", "POS_pos01", HOST) == []


def test_billing_tag_key_has_one_canonical_spelling_and_both_are_verified(rules: naming.RuleSet) -> None:
    assert rules.render("org-tag-key", {}) == "OrgId"
    assert rules.variants("org-tag-key") == ("OrgId", "OrgID")
    assert rules.check("org-tag-key", "OrgID") == []
    assert rules.same("org-tag-key", "OrgID", "OrgId")
    assert rules.check("org-tag-key", "orgid")


def test_corporate_tenant_is_corp_and_an_existing_CORP_tenant_is_recognised(rules: naming.RuleSet) -> None:
    assert rules.render("tenant-corp", {}) == "corp"
    assert rules.check("tenant-corp", "CORP") == []
    assert rules.same("tenant-corp", "CORP", "corp")


# --- the shipped rules file ----------------------------------------------------------------------


def test_shipped_rules_self_test_clean(rules: naming.RuleSet) -> None:
    assert rules.self_test() == []


def test_shipped_rules_cover_every_convention_of_domain_md(rules: naming.RuleSet) -> None:
    covered = {rules.rule(rule_id).convention for rule_id in rules.ids}
    assert {f"N{i}" for i in range(1, 29)} <= covered


def test_shipped_rules_have_the_ids_the_engine_uses(rules: naming.RuleSet) -> None:
    wanted = {
        "org-id", "mq-broker", "rds-instance", "ec2-host", "security-group-ops", "tm-database", "tm-login",
        "client-database", "client-login", "onsite-login", "iam-user", "s3-bucket", "vhost-hub", "vhost-corp",
        "vhost-store", "tenant-cloud", "tenant-store", "tenant-corp", "tenant-manager-name", "super-user",
        "recipe-tenant", "vpc-cidr", "host-name", "org-tag-key", "broker-admin-user", "rabbitmq-user",
        "secret-name", "sg-rule-description", "vpc-entity-name",
    }
    assert wanted <= set(rules.ids)


def test_every_example_is_positioned_in_the_file(rules: naming.RuleSet) -> None:
    for rule_id in rules.ids:
        for example in rules.rule(rule_id).examples:
            assert example.loc is not None and example.loc.path == rules.path and example.loc.line > 1


def test_load_rules_defaults_to_the_catalog_file_and_caches() -> None:
    assert load_rules() is load_rules(naming_rules_path())


def test_org_id_max_length_is_derived_from_the_templates(tmp_path: Path) -> None:
    text = naming_rules_path().read_text().replace("'fusion-rms-{{ org_id }}'", "'fusion-rms-longer-{{ org_id }}'")
    path = tmp_path / "naming.yaml"
    path.write_text(text)
    changed = load_rules(path)
    assert load_rules().max_length("org-id") == 52
    assert changed.max_length("org-id") == 45
    assert "stays within 63" in changed.check("org-id", "a" * 46)[0]


def test_self_test_reports_a_wrong_example_at_its_position(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, """\
        schema: 1
        rules:
          - id: thing
            title: Thing
            description: d
            scope: shared
            case: exact
            pattern: '^[a-z]+$'
            form: lower-case letters
            examples:
              accept: [abc, Abc]
              reject:
                - xyz
        """)
    assert [str(i) for i in load_rules(Path("naming.yaml")).self_test()] == [
        "naming.yaml:11:21: rules[0] (id=thing) › examples: "
        "accept example 'Abc' is rejected: must be lower-case letters",
        "naming.yaml:13:11: rules[0] (id=thing) › examples: reject example 'xyz' is accepted",
    ]


# --- bad rules files: every issue at path:line:col -----------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "naming.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def _errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> list[str]:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, text)
    with pytest.raises(ChecklistError) as caught:
        load_rules(Path("naming.yaml"))
    return str(caught.value).splitlines()


RULE_HEAD = """\
schema: 1
rules:
  - id: thing
    title: Thing
    description: d
    scope: shared
    case: exact
"""


def test_bad_file_unknown_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _errors(tmp_path, monkeypatch, RULE_HEAD + """\
    patern: '^[a-z]+$'
    form: letters
    examples: {accept: [a]}
""") == [
        "naming.yaml:3:5: rules[0] (id=thing): a rule has exactly one of `pattern` or `template`",
        "naming.yaml:8:5: rules[0] (id=thing) › patern: unknown key 'patern' (did you mean 'pattern'?)",
    ]


def test_bad_file_bad_regex_and_unanchored_pattern(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _errors(tmp_path, monkeypatch, RULE_HEAD + """\
    pattern: '^[a-z+$'
    form: letters
    examples: {accept: [a]}
  - id: other
    title: Other
    description: d
    scope: shared
    case: exact
    pattern: '[a-z]+'
    form: letters
    examples: {accept: [a]}
""") == [
        "naming.yaml:8:14: rules[0] (id=thing) › pattern: bad regular expression: "
        "unterminated character set at position 1",
        "naming.yaml:16:14: rules[1] (id=other) › pattern: must be anchored: start with ^ and end with $",
    ]


def test_bad_file_duplicate_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _errors(tmp_path, monkeypatch, RULE_HEAD + """\
    template: THING
    examples: {accept: [THING]}
  - id: thing
    title: Thing again
    description: d
    scope: shared
    case: exact
    template: THING2
    examples: {accept: [THING2]}
""") == ["naming.yaml:10:9: rules[1] (id=thing) › id: duplicate rule id 'thing' (first at line 3)"]


def test_bad_file_missing_fields_wrong_types_and_unknown_placeholder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _errors(tmp_path, monkeypatch, """\
schema: 1
rules:
  - id: Bad_Id
    template: x
  - id: thing
    title: Thing
    description: d
    scope: everywhere
    case: exact
    template: 'a-{{ nothing }}'
    limits: {max_length: sixty, charset: 'a-z'}
    examples: {accept: [a-x], reject: [no]}
  - id: other
    title: Other
    description: d
    scope: shared
    case: exact
    template: 'b-{{ undeclared }}'
    examples: {accept: [b-x]}
""") == [
        "naming.yaml:3:5: rules[0] (id=Bad_Id): missing required key 'case'",
        "naming.yaml:3:5: rules[0] (id=Bad_Id): missing required key 'description'",
        "naming.yaml:3:5: rules[0] (id=Bad_Id): missing required key 'examples'",
        "naming.yaml:3:5: rules[0] (id=Bad_Id): missing required key 'scope'",
        "naming.yaml:3:5: rules[0] (id=Bad_Id): missing required key 'title'",
        "naming.yaml:3:9: rules[0] (id=Bad_Id) › id: 'Bad_Id' does not match ^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$",
        "naming.yaml:8:12: rules[1] (id=thing) › scope: "
        "'everywhere' is not one of: client, site, shared, operator, kprov",
        "naming.yaml:10:15: rules[1] (id=thing) › template: unknown placeholder {{ nothing }}: "
        "no rule declares `placeholder: nothing`",
        "naming.yaml:11:26: rules[1] (id=thing) › limits › max_length: expected a whole number of at least 0, got a "
        "string (sixty)",
        "naming.yaml:11:42: rules[1] (id=thing) › limits › charset: bad character class: "
        "must be one character class such as [a-z0-9-]",
        "naming.yaml:12:40: rules[1] (id=thing) › examples › reject[0]: expected a string or a mapping, got no "
        "(YAML reads it as false); YAML reads an unquoted no as true or false: quote it: 'no'",
        "naming.yaml:18:15: rules[2] (id=other) › template: unknown placeholder {{ undeclared }}: "
        "no rule declares `placeholder: undeclared`",
    ]


def test_bad_file_yaml_level_issues_keep_their_positions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _errors(tmp_path, monkeypatch, RULE_HEAD + """\
    template: &a THING
    examples: {accept: [THING]}
    case: insensitive
""") == [
        "naming.yaml:8:15: anchors and aliases are not allowed (write the value out)",
        "naming.yaml:10:5: duplicate key 'case' (first at line 7)",
    ]


def test_bad_file_schema_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _errors(tmp_path, monkeypatch, "schema: 2\nrules: []\n") == [
        "naming.yaml:1:9: schema: schema 2 is not supported (upgrade kprov)"
    ]


def test_yaml_1_1_spellings_are_refused_as_in_checklists_and_the_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _errors(tmp_path, monkeypatch, RULE_HEAD + """\
    template: 'T-{{ n:02 }}'
    numbered: yes
    number_field: n
    allow_slash: False
    limits: {max_length: 010, forbidden: [no]}
    examples: {accept: [T-01]}
""") == [
        "naming.yaml:9:15: rules[0] (id=thing) › numbered: expected true or false, got yes (YAML reads it as true); "
        "write true or false",
        "naming.yaml:11:18: rules[0] (id=thing) › allow_slash: expected true or false, got False (YAML reads it as "
        "false); write true or false",
        "naming.yaml:12:26: rules[0] (id=thing) › limits › max_length: expected a whole number of at least 0 in "
        "decimal digits, got 010 (YAML reads it as 8)",
        "naming.yaml:12:43: rules[0] (id=thing) › limits › forbidden[0]: expected a string, got no (YAML reads it "
        "as false); YAML reads an unquoted no as true or false: quote it: 'no'",
    ]


def test_the_default_rules_file_is_the_catalogs_without_importing_the_checklist_layer() -> None:
    assert default_path() == naming_rules_path()
    code = ("import sys; from kensium_provision.naming.loader import load_rules; load_rules(); "
            "print(sorted(m for m in sys.modules if m.startswith('kensium_provision.checklist')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "[]"


# --- require, render, example, same, next_free, derived names ------------------------------------


def test_require_message_names_rule_problem_and_valid_example(rules: naming.RuleSet) -> None:
    with pytest.raises(InputError) as caught:
        rules.require("rds-instance", "DB_POS_1")
    assert str(caught.value) == (
        "'DB_POS_1' breaks naming rule rds-instance (Shared RDS instance, db-POS-NN): must match db-POS-NN; "
        "for example db-POS-01"
    )
    assert caught.value.exit_code == 3
    assert rules.require("rds-instance", "db-POS-01") == "db-POS-01"


def test_require_example_is_made_from_the_context(rules: naming.RuleSet) -> None:
    with pytest.raises(InputError, match=r"must be rms_acme \(from org_id acme\); for example rms_acme$"):
        rules.require("iam-user", "rms_other", ACME)


def test_require_never_echoes_control_characters(rules: naming.RuleSet) -> None:
    with pytest.raises(InputError) as caught:
        rules.require("org-id", "acme\x1b[2J\u202e")
    message = str(caught.value)
    assert "\x1b" not in message and "\u202e" not in message
    assert r"'acme\x1b[2J\u202e'" in message
    assert "U+001B" in message and "U+202E (RIGHT-TO-LEFT OVERRIDE)" in message


def test_render_validates_inputs_and_result(rules: naming.RuleSet) -> None:
    assert rules.render("s3-bucket", {"org_id": "xmsqa1"}) == "fusion-rms-xmsqa1"
    assert rules.render("mq-broker", {"n": 3}) == "mq-POS-03"
    assert rules.render("vhost-store", {"org_id": "acme", "site_id": "store1"}) == "acme_store1"
    with pytest.raises(InputError, match="breaks naming rule org-id"):
        rules.render("iam-user", {"org_id": "Acme"})
    with pytest.raises(InputError, match="needs org_id"):
        rules.render("iam-user", {})
    with pytest.raises(InputError, match="is a pattern"):
        rules.render("org-id", {})
    with pytest.raises(InputError, match="whole numbers from 1"):
        rules.render("mq-broker", {"n": "0"})


def test_example_is_rendered_when_the_context_allows(rules: naming.RuleSet) -> None:
    assert rules.example("iam-user", {"org_id": "zz"}) == "rms_zz"
    assert rules.example("iam-user", {"org_id": "Not Valid"}) == "rms_xmsqa1"
    assert rules.example("iam-user") == "rms_xmsqa1"
    assert rules.example("mq-broker") == "mq-POS-01"


def test_unknown_rule_is_an_input_error_with_a_suggestion(rules: naming.RuleSet) -> None:
    with pytest.raises(InputError, match="unknown naming rule 'iam-usr'") as caught:
        rules.rule("iam-usr")
    assert caught.value.hint == "did you mean iam-user?"


@pytest.mark.parametrize(("rule_id", "existing", "expected"), [
    ("mq-broker", ["mq-POS-01", "mq-POS-02"], "mq-POS-03"),
    ("mq-broker", [], "mq-POS-01"),
    ("mq-broker", ["mq-POS-01", "mq-POS-03"], "mq-POS-04"),  # a gap is never reused
    ("mq-broker", ["mq-POS-99"], "mq-POS-100"),
    ("mq-broker", ["mq-POS-02", "mq-pos-07", "db-POS-09", "legacy-broker"], "mq-POS-03"),  # other shapes ignored
    ("mq-broker", ["mq-POS-5"], "mq-POS-06"),  # an unpadded name still holds its number
    ("rds-instance", ["db-pos-01", "DB-POS-02"], "db-POS-03"),  # RDS returns lower case
    ("ec2-host", ["POS01"], "POS02"),
], ids=lambda v: repr(v) if isinstance(v, list) else str(v))
def test_next_free(rules: naming.RuleSet, rule_id: str, existing: list[str], expected: str) -> None:
    assert rules.next_free(rule_id, existing) == expected


def test_absurd_numbers_are_refused_without_crashing(rules: naming.RuleSet) -> None:
    huge = "mq-POS-" + "9" * 5000  # int() refuses 4300+ digits
    assert rules.check("mq-broker", huge) == [
        "mq-broker: the number has more than 9 digits",
        "mq-broker: is 5007 characters long; the maximum is 50 (Amazon MQ broker names)",
    ]
    assert rules.next_free("mq-broker", [huge, "mq-POS-04"]) == "mq-POS-05"


def test_next_free_only_for_numbered_rules(rules: naming.RuleSet) -> None:
    with pytest.raises(InputError, match="not numbered"):
        rules.next_free("iam-user", [])


def test_derived_names_for_one_client(rules: naming.RuleSet) -> None:
    assert rules.derived_names("acme") == {
        "org-tag-key": "OrgId",
        "org-tag-value": "acme",
        "client-database": "POS_acme",
        "client-login": "POS_acme_user",
        "iam-user": "rms_acme",
        "s3-bucket": "fusion-rms-acme",
        "s3-public-folder": "pub/",
        "vhost-hub": "acme",
        "vhost-corp": "acme_corp",
        "rabbitmq-user": "rms_acme",
        "tenant-cloud": "acme",
        "recipe-tenant": "POS_Tenant",
    }
    more = rules.derived_names("acme", {"domain": "kensiumpos.com", "site_id": "store1"})
    assert more["host-name"] == "acme.kensiumpos.com"
    assert more["vhost-store"] == "acme_store1"
    with pytest.raises(InputError, match="breaks naming rule org-id"):
        rules.derived_names("Acme")


# --- names never acceptable anywhere (research/reliability-notes.md section 5) --------------------

UNSAFE = [
    ("path traversal", "../../etc/passwd"),
    ("absolute path", "/etc/passwd"),
    ("nested traversal", "sub/../../x"),
    ("backslash", "a\\b"),
    ("NUL byte", "a\x00b"),
    ("rich style markup", "acme[bold red]ADMIN[/bold red]"),
    ("rich hyperlink", "[link=https://evil.example]acme"),
    ("rich close tag", "acme[/]"),
    ("clear screen and title", "acme\x1b[2J\x1b]0;pwned\x1b\\"),
    ("bidi override", "acme\u202e"),
    ("zero width space", "ac\u200bme"),
    ("carriage return", "acme\r"),
    ("newline", "acme\nX"),
    ("line separator", "acme\u2028"),
    ("leading space", " acme"),
    ("trailing tab", "acme\t"),
    ("encoded traversal", "acme%2F.."),
    ("empty", ""),
]


@pytest.mark.parametrize(("why", "value"), UNSAFE, ids=[u[0] for u in UNSAFE])
def test_check_safe_text_rejects(why: str, value: str) -> None:
    assert naming.check_safe_text(value)


@pytest.mark.parametrize("value", ["acme", "Jane Doe", "db-POS-01", "POS_acme_user", "café"])
def test_check_safe_text_accepts(value: str) -> None:
    assert naming.check_safe_text(value) == []


def test_slash_is_allowed_only_where_a_rule_says_so(rules: naming.RuleSet) -> None:
    assert naming.check_safe_text("pub/", allow_slash=True) == []
    assert naming.check_safe_text("a/../b", allow_slash=True) == ["contains '..'"]
    assert rules.check("s3-public-folder", "pub/") == []
    assert rules.check("vpc-cidr", "10.0.0.0/16") == []
    assert rules.check("secret-name", "kprov/qa/acme/../x")


@pytest.mark.parametrize(("why", "value"), UNSAFE, ids=[u[0] for u in UNSAFE])
def test_no_rule_accepts_an_unsafe_value(rules: naming.RuleSet, why: str, value: str) -> None:
    for rule_id in rules.ids:
        assert rules.check(rule_id, value), f"{rule_id} accepted {value!r}"


# --- properties ----------------------------------------------------------------------------------

ORG_IDS = st.from_regex(r"[a-z][a-z0-9]{0,51}", fullmatch=True)
CONTEXT = {"domain": "kensiumpos.com", "site_id": "store1"}

# AWS's and the servers' own limits, written out here independently of naming.yaml.
_SQL = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,127}")
AWS_LIMITS: dict[str, Callable[[str], object]] = {
    "s3-bucket": lambda v: re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", v) and ".." not in v,
    "iam-user": lambda v: re.fullmatch(r"[\w+=,.@-]{1,64}", v, re.ASCII),
    "client-database": _SQL.fullmatch,
    "client-login": _SQL.fullmatch,
    "vhost-hub": lambda v: len(v) <= 255,
    "vhost-corp": lambda v: len(v) <= 255,
    "vhost-store": lambda v: len(v) <= 255,
    "rabbitmq-user": lambda v: re.fullmatch(r"[A-Za-z0-9._-]{2,100}", v) and v != "guest",
    "host-name": lambda v: len(v) <= 253 and all(re.fullmatch(r"[a-z0-9-]{1,63}", label) for label in v.split(".")),
    "org-tag-key": lambda v: len(v) <= 128,
    "org-tag-value": lambda v: len(v) <= 256,
}


@settings(max_examples=150, deadline=None)
@given(org_id=ORG_IDS)
def test_every_derived_name_meets_its_rule_and_the_service_limits(rules: naming.RuleSet, org_id: str) -> None:
    names = rules.derived_names(org_id, CONTEXT)
    assert set(AWS_LIMITS) <= set(names)
    for rule_id, name in names.items():
        assert rules.check(rule_id, name, {**CONTEXT, "org_id": org_id}) == []
        assert rules.check(rule_id, name) == []
        if rule_id in AWS_LIMITS:
            assert AWS_LIMITS[rule_id](name), f"{rule_id} {name!r} breaks the service's limits"


_UNSAFE_CHARACTERS = st.characters(categories=("Cc", "Cf"))


@settings(max_examples=150, deadline=None)
@given(base=st.sampled_from(["acme", "db-POS-01", "Jane Doe", "OrgId", "pub/", "POS_POS01", "SG-POS-OPS", ""]),
       position=st.integers(min_value=0, max_value=12), bad=_UNSAFE_CHARACTERS)
def test_no_value_with_a_control_or_format_character_is_ever_accepted(
        rules: naming.RuleSet, base: str, position: int, bad: str) -> None:
    value = base[:position] + bad + base[position:]
    assert unicodedata.category(bad) in ("Cc", "Cf")
    for rule_id in rules.ids:
        example = rules.rule(rule_id).examples[0]
        assert rules.check(rule_id, value), f"{rule_id} accepted {value!r}"
        assert rules.check(rule_id, value, example.context), f"{rule_id} accepted {value!r}"


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=20))
def test_check_never_raises_and_accepted_values_are_safe(rules: naming.RuleSet, text: str) -> None:
    for rule_id in rules.ids:
        if not rules.check(rule_id, text):
            assert naming.check_safe_text(text, allow_slash=rules.rule(rule_id).allow_slash) == []


@settings(max_examples=100, deadline=None)
@given(org_id=ORG_IDS, other=ORG_IDS)
def test_org_id_uniqueness_ignores_case(org_id: str, other: str) -> None:
    assert naming.check_org_id_unique(org_id, [org_id.upper()])
    assert bool(naming.check_org_id_unique(org_id, [other])) == (org_id == other)


def test_a_kept_judgement_is_one_of_the_same_value_and_the_same_context(rules: naming.RuleSet) -> None:
    # RuleSet keeps each (rule, value, its slots' context) judgement: a different context is judged anew.
    assert rules.check("s3-bucket", "fusion-rms-acme", {"org_id": "acme"}) == []
    assert rules.check("s3-bucket", "fusion-rms-acme", {"org_id": "globex"})  # the same value, another client
    assert rules.check("s3-bucket", "fusion-rms-acme", {"org_id": "acme", "host": "x"}) == []  # not a slot
    assert rules.check("s3-bucket", "fusion-rms-acme") == []  # shape only
    found = rules.check("s3-bucket", "fusion-rms-acme", {"org_id": "globex"})
    found.append("changed by the caller")
    assert "changed by the caller" not in rules.check("s3-bucket", "fusion-rms-acme", {"org_id": "globex"})
