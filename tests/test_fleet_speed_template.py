"""template's parse cache (issue 16: a fleet check renders the same checklist templates for every client)."""

from __future__ import annotations

import pytest

from kensium_provision import template
from kensium_provision.template import TemplateError, placeholders, render, render_value


def test_a_template_is_parsed_once_however_often_it_is_rendered() -> None:
    text = "fusion-rms-{{ org_id | lower }}-{{ n:02 }}-speed-test"
    template._parsed.cache_clear()
    for n in range(1, 50):
        assert render(text, {"org_id": "ACME", "n": n}) == f"fusion-rms-acme-{n:02d}-speed-test"
    info = template._parsed.cache_info()
    assert (info.misses, info.hits) == (1, 48)


def test_cached_parses_render_as_before() -> None:
    values: dict[str, object] = {"a": 5, "flag": True, "names": ["x", "y"], "s": "Ab"}
    for _ in range(2):  # the second time from the cache
        assert render_value("{{ a }}", values) == 5  # a bare placeholder keeps its value's type
        assert render_value("{{ names }}", values) == ["x", "y"]
        assert render_value(" {{ s }}", values) == " Ab"  # not bare: text
        assert render_value("{{ s | upper }}", values) == "AB"
        assert render_value({"k": ["{{ s }}-{{ a:03 }}", 7]}, values) == {"k": ["Ab-005", 7]}
        assert render("no placeholder", values) == "no placeholder"
        assert [(p.name, p.width, p.filter, p.start) for p in placeholders("x{{ a:02 }}{{ s|lower }}")] == [
            ("a", 2, "", 1), ("s", 0, "lower", 11)]


@pytest.mark.parametrize("text", ["{{ a.b }}", "{{ a }} }}", "{{ a"])
def test_a_malformed_template_is_refused_every_time(text: str) -> None:
    for _ in range(2):  # a refusal is not cached as an answer
        with pytest.raises(TemplateError):
            render(text, {"a": 1})


def test_an_unknown_name_is_refused_from_the_cache_too() -> None:
    for _ in range(2):
        with pytest.raises(TemplateError, match="unknown name 'b'"):
            render_value("{{ b }}", {"a": 1})
        with pytest.raises(TemplateError, match="unknown name 'b'"):
            render("x-{{ b }}", {"a": 1})
