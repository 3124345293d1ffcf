"""Kensium's naming conventions, offline: `names check RULE VALUE` and `names show ORG_ID`."""

from __future__ import annotations

from kensium_provision.app.context import Context, UsageError
from kensium_provision.errors import ExitCode

__all__ = ["names_check", "names_show"]


def names_check(context: Context, *, rule: str, value: str) -> int:
    """Exit 0, or 3 with the broken rule and a valid example."""
    from rich.text import Text

    from kensium_provision.naming.loader import load_rules
    from kensium_provision.ui import json_output
    from kensium_provision.ui.render import safe

    rules = load_rules()
    if rule not in rules.ids:
        raise UsageError(f"no rule {rule!r}; rules: {', '.join(sorted(rules.ids))}", param_hint="RULE")
    problems = rules.check(rule, value, {})
    if context.json:
        json_output.emit(json_output.names_check(rule=rule, value=value, problems=problems,
                                                 example=rules.example(rule, {})))
    console = context.console()
    if problems:
        for p in problems:
            console.print(Text(f"✗ {safe(p)}", style="red"))
        console.print(Text(f"  for example: {rules.example(rule, {})}"))
        return int(ExitCode.INVALID)
    console.print(Text(f"✓ {safe(value)} meets {rule}", style="green"))
    return 0


def names_show(context: Context, *, org_id: str) -> int:
    """Every name derived for a client."""
    from rich.table import Table
    from rich.text import Text

    from kensium_provision.naming.loader import load_rules
    from kensium_provision.ui import json_output

    rules = load_rules()
    rules.require("org-id", org_id, {})  # an InputError: the broken rule and an example, exit 3
    names = rules.derived_names(org_id)
    if context.json:
        json_output.emit(json_output.names_show(org_id, names))
        return 0
    table = Table("rule", "name", "description", title=Text(f"Names for {org_id}"), title_justify="left")
    for rule_id, name in names.items():
        table.add_row(rule_id, Text(name), Text(rules.rule(rule_id).description.split(". ")[0].strip()))
    context.console().print(table)
    return 0
