"""The checklist loader: the bad-input catalogue, exact messages, and random YAML."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kensium_provision import yamlio
from kensium_provision.checklist.schema import json_schema, load_checklist, load_checklist_text
from kensium_provision.errors import ChecklistError, ExitCode
from kensium_provision.yamlio import MAX_DEPTH, load
from tests.hostile import DEV_ZERO, deep_block, deep_flow, fifo, kprov

DATA = Path(__file__).parent / "data"
INVALID = sorted((DATA / "invalid").glob("*.yaml"))


@pytest.mark.parametrize("case", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_checklist_reports_exact_lines(case: Path) -> None:
    with pytest.raises(ChecklistError) as caught:
        load_checklist(case, display=f"tests/data/invalid/{case.name}")
    assert str(caught.value) + "\n" == case.with_suffix(".expected").read_text()
    assert caught.value.exit_code is ExitCode.INVALID


def test_catalogue_is_large_enough() -> None:
    assert len(INVALID) >= 25


def test_five_mistakes_reported_at_once_sorted() -> None:
    with pytest.raises(ChecklistError) as caught:
        load_checklist(DATA / "five-mistakes.yaml", display="five-mistakes.yaml")
    assert str(caught.value).splitlines() == [
        "five-mistakes.yaml:9:14: inputs[0] (id=engine_version) › default: "
        "expected a string, got a number (15.00); YAML reads an unquoted 15.00 as a number: quote it: '15.00'",
        "five-mistakes.yaml:17:5: steps[1] (id=look): duplicate step id 'look' (first at line 11)",
        "five-mistakes.yaml:19:11: steps[1] (id=look) › type: unknown step type 'aws.asert' "
        "(did you mean 'aws.assert'?)",
        "five-mistakes.yaml:25:28: steps[2] (id=tell) › params › instructions: "
        "unknown name 'subnet_id': not an input or a step output",
        "five-mistakes.yaml:26:5: steps[2] (id=tell) › verfy: unknown key 'verfy'; "
        "allowed: id, title, type, risk, params, when, outputs",
    ]


def test_valid_checklist_loads_into_frozen_records() -> None:
    checklist = load_checklist_text(
        "schema: 1\nid: tiny\ntitle: Tiny\nscope: client\n"
        "inputs:\n  - {id: org_id, type: string, prompt: 'Org?'}\n"
        "steps:\n  - id: tell\n    title: Tell\n    type: manual\n    risk: read\n"
        "    params: {instructions: 'Hello {{ org_id }}'}\n",
        "tiny.yaml",
    )
    assert [s.id for s in checklist.steps] == ["tell"]
    assert checklist.inputs[0].id == "org_id"
    with pytest.raises(AttributeError):
        checklist.id = "other"  # type: ignore[misc]


def test_json_schema_accepts_shipped_checklists_and_rejects_typos() -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    from kensium_provision.yamlio import load_file

    good = load_file(DATA / "valid-demo.yaml").plain()
    assert list(validator.iter_errors(good)) == []
    bad = json.loads(json.dumps(good))
    bad["steps"][0]["verfy"] = True
    assert any("verfy" in e.message for e in validator.iter_errors(bad))


_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8))
_yaml_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)), max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), _yaml_values.map(json.dumps)))
def test_random_yaml_only_ever_raises_the_loaders_error(text: str) -> None:
    with contextlib.suppress(ChecklistError):
        load_checklist_text(text, "fuzz.yaml")


# --- hostile files: refused at a position with exit 3, never a crash or a hang (issue 14, items 8 and 9) ----


@pytest.mark.parametrize(("text", "where"), [
    (deep_flow(480), "deep.yaml:1:65"),
    (deep_flow(2000, closed=False), "deep.yaml:1:65"),
    ("schema: 1\nsteps:\n" + "".join(f"{' ' * (i + 2)}- \n" for i in range(480)), "deep.yaml:66:66"),
    (deep_block(480), "deep.yaml:65:65"),
])
def test_deeply_nested_yaml_is_refused_at_its_position(text: str, where: str) -> None:
    with pytest.raises(ChecklistError) as caught:
        load_checklist_text(text, "deep.yaml")
    assert str(caught.value) == f"{where}: nested more than {MAX_DEPTH} levels deep"
    assert caught.value.exit_code is ExitCode.INVALID


def test_nesting_up_to_the_limit_still_loads() -> None:
    assert load(deep_flow(MAX_DEPTH), "ok.yaml").kind == "seq"


def test_validate_refuses_a_fifo_without_waiting_for_a_writer(tmp_path: Path) -> None:
    pipe = fifo(tmp_path, "pipe.yaml")
    done = kprov("validate", str(pipe))
    assert done.returncode == ExitCode.INVALID, done.stderr
    assert f"{pipe}:1:1: cannot read file: not a regular file (a FIFO)" in done.stderr


def test_validate_refuses_dev_zero_instead_of_reading_forever() -> None:
    done = kprov("validate", str(DEV_ZERO))
    assert done.returncode == ExitCode.INVALID, done.stderr
    assert "/dev/zero:1:1: cannot read file: not a regular file (a character device)" in done.stderr


def test_the_size_cap_holds_while_reading_not_only_by_stat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "growing.yaml"
    path.write_text("schema: 1\n")  # stat says 10 bytes; then the file keeps growing while it is read
    asked: list[int] = []

    def endless(fd: int, size: int) -> bytes:
        asked.append(size)
        return b"#" * min(size, 65536)

    monkeypatch.setattr(os, "read", endless)
    with pytest.raises(ChecklistError, match=r"^growing.yaml:1:1: file is larger than 256 KiB$"):
        load_checklist(path, display="growing.yaml")
    assert sum(min(n, 65536) for n in asked) == yamlio.MAX_BYTES + 1
