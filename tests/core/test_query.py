"""monitor.core.rulesyntax: the rule query grammar, its AST, and syntax errors with columns."""

from __future__ import annotations

import pytest

from monitor.config.loader import parse_config
from monitor.core.errors import ConfigError, LivewatchError
from monitor.core.rulesyntax import And, Near, Not, Or, QuerySyntaxError, Term, parse_query


def t(text: str, column: int, *, field: str | None = None, prefix: bool = False,
      kind: str = "phrase") -> Term:
    return Term(text, kind, prefix, field, column)  # type: ignore[arg-type]


@pytest.mark.parametrize(("query", "expected"), [
    ("ceasefire", t("ceasefire", 1)),
    ('"coalition of the willing"', t("coalition of the willing", 1)),
    ("a b", And((t("a", 1), t("b", 3)))),
    ("a AND b", And((t("a", 1), t("b", 7)))),
    ("a OR b c", Or((t("a", 1), And((t("b", 6), t("c", 8)))))),
    ("(a OR b) c", And((Or((t("a", 2), t("b", 7))), t("c", 10)))),
    ("a -b", And((t("a", 1), Not(t("b", 4))))),
    ("a NOT b", And((t("a", 1), Not(t("b", 7))))),
    ("a NEAR/5 b", Near((t("a", 1),), (t("b", 10),), 5)),
    ("(a OR b) NEAR/2 c", Near((t("a", 2), t("b", 7)), (t("c", 17),), 2)),
    ("title:a", t("a", 7, field="title")),
    ("author:(a OR text:b)", Or((t("a", 9, field="author"), t("b", 19, field="text")))),
    ('title:"red lines"', t("red lines", 7, field="title")),
    ("willing*", t("willing*", 1, prefix=True)),
    ('"coalition of the will"*', t("coalition of the will*", 1, prefix=True)),
    ("/zelensk(y|i)y?/", t("zelensk(y|i)y?", 1, kind="regex")),
    ("cease-fire", t("cease-fire", 1)),
    ("10:30", t("10:30", 1)),
    ("ANDROID and or not", And((t("ANDROID", 1), t("and", 9), t("or", 13), t("not", 16)))),
    ("NEARBY", t("NEARBY", 1)),
], ids=lambda v: v if isinstance(v, str) else "")
def test_parse(query: str, expected: object) -> None:
    assert parse_query(query) == expected


@pytest.mark.parametrize(("query", "column", "reason"), [
    ("", 1, "empty query"),
    ("a AND", 6, "ends where a term was expected"),
    ("(a OR b", 8, "missing ')'"),
    ("a)", 2, "unexpected ')'"),
    ('"abc', 1, "unclosed quote"),
    ('a "abc', 3, "unclosed quote"),
    ("/abc", 1, "unclosed /regex/"),
    ("x /a(/", 3, "invalid regex"),
    ("a OR OR b", 6, "unexpected 'OR'"),
    ("wil*ing", 1, "only at the end"),
    ('a "<b></b>"', 3, "empty once normalised"),
    ("NOT a", 1, "contains none of its terms"),
    ("a OR -b", 1, "contains none of its terms"),
    ("a NEAR/2 (b AND c)", 3, "NEAR needs a term"),
    ("a NEAR/2 b NEAR/2 c", 12, "NEAR joins two operands"),
    ("title:", 7, "ends where a term was expected"),
])
def test_syntax_errors_name_the_column(query: str, column: int, reason: str) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(query)
    assert info.value.column == column
    assert reason in info.value.reason
    query_line, caret = info.value.caret().split("\n")
    assert query_line == query and caret == " " * (column - 1) + "^"


def test_syntax_errors_are_livewatch_errors_and_value_errors() -> None:
    with pytest.raises(LivewatchError) as info:
        parse_query("a AND")
    assert isinstance(info.value, QuerySyntaxError) and isinstance(info.value, ValueError)


def test_config_error_names_rule_path_and_column() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("""
feeds: [{name: f, url: "https://example.org/feed"}]
channels: [{name: desk, type: webhook, url: "https://hooks.example.org/x"}]
rules:
  - {name: ok, any: [x], channels: [desk]}
  - {name: broken, query: 'ceasefire AND (troops OR', channels: [desk]}
""")
    (problem,) = info.value.problems
    assert problem.location == "rules[1].query"
    assert "rule 'broken'" in problem.reason and "column 25" in problem.reason
    assert problem.reason.splitlines()[-1].strip() == "^"


def test_query_alone_makes_a_rule() -> None:
    config = parse_config("""
feeds: [{name: f, url: "https://example.org/feed"}]
channels: [{name: desk, type: webhook, url: "https://hooks.example.org/x"}]
rules:
  - {name: q, query: 'title:ceasefire', channels: [desk], fields: [text, title],
     case_sensitive: true, ignore_diacritics: true, group_across_feeds: 10m}
""")
    rule = config.rules[0]
    assert rule.fields == ["title", "text"] and rule.group_across_feeds == 600.0


@pytest.mark.parametrize(("body", "where"), [
    ("{name: r, channels: [desk]}", "rules[0]"),
    ("{name: r, any: ['wil*ing'], channels: [desk]}", "rules[0].any[0]"),
    ("{name: r, any: [x], fields: [body], channels: [desk]}", "rules[0].fields[0]"),
])
def test_rule_option_errors(body: str, where: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(f"""
feeds: [{{name: f, url: "https://example.org/feed"}}]
channels: [{{name: desk, type: webhook, url: "https://hooks.example.org/x"}}]
rules: [{body}]
""")
    assert [p.location for p in info.value.problems] == [where]


def test_readme_rule_reference_example_loads() -> None:
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Rule reference", 1)[1].split("\n## ", 1)[0]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = parse_config(block + """
feeds: [{name: f, url: "https://example.org/feed"}]
channels: [{name: desk, type: webhook, url: "https://hooks.example.org/x"}]
""")
    assert len(config.rules) == 5
