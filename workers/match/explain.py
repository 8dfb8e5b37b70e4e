"""Why a rule matches a text or not, term by term; and the `livewatch test-rule` command.

    livewatch test-rule --config PATH RULE (--text T | --url U | --file F) [--title T]

Exit status as grep: 0 when the rule matches (any entry, for --url/--file feeds), 1 when it
does not, 2 on a usage or configuration error.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.core.models import Entry
from monitor.core.rulesyntax import And, Node, Not, Or, Term
from monitor.core.textnorm import match_form, normalize_phrase
from workers.match.evaluate import CompiledRule, Trace, evaluate, near
from workers.match.matcher import Hit, Matcher, snippet
from workers.match.scan import FIELD_NAMES, Scan

_MARK = ("[", "]")


@dataclass(frozen=True)
class Explanation:
    """A rule's verdict on one entry and the lines that explain it."""

    rule: str
    matched: bool
    lines: tuple[str, ...]

    def __str__(self) -> str:
        return "\n".join(self.lines)


def _field_text(scan: Scan, rank: int) -> str:
    return scan.texts[rank] if rank < len(scan.texts) else ""


def _show_hit(scan: Scan, hit: tuple[int, int, int]) -> str:
    rank, start, end = hit
    text = _field_text(scan, rank)
    shown, spans = snippet(text, [Hit("", FIELD_NAMES[rank], start, end)], 80)
    for a, b in reversed(spans):
        shown = f"{shown[:a]}{_MARK[0]}{shown[a:b]}{_MARK[1]}{shown[b:]}"
    return f"{FIELD_NAMES[rank]} {start}-{end}: {shown}"


def _near_miss(rule: CompiledRule, term: Term, scan: Scan) -> str:
    """Why an absent literal term is absent, when the text says something close."""
    if term.kind != "phrase":
        return ""
    body = normalize_phrase(term.text.removesuffix("*"))
    for rank in sorted(rule.ranks[term]):
        form = match_form(_field_text(scan, rank))[0]
        at = form.find(body)
        if at < 0:
            continue
        lo, hi = at, at + len(body)
        while lo > 0 and form[lo - 1].isalnum():
            lo -= 1
        while hi < len(form) and form[hi].isalnum():
            hi += 1
        if (lo, hi) != (at, at + len(body)):
            return f"  (only as part of longer words: {form[lo:hi]!r} in {FIELD_NAMES[rank]})"
        return f"  (present in {FIELD_NAMES[rank]} with other case or accents)"
    return ""


def _describe(rule: CompiledRule, node: Node, scan: Scan, trace: Trace, depth: int,
              out: list[str]) -> None:
    pad = "  " * depth
    mark = "✓" if trace.get(id(node)) else "✗"
    if isinstance(node, Term):
        hits = scan.hits(rule.ids[node], rule.ranks[node])
        fields = ",".join(FIELD_NAMES[r] for r in sorted(rule.ranks[node]))
        if not hits:
            out.append(f"{pad}{mark} {node}  not found in {fields}"
                       f"{_near_miss(rule, node, scan)}")
            return
        out.append(f"{pad}{mark} {node}  found {len(hits)}x")
        out += [f"{pad}    {_show_hit(scan, h)}" for h in hits[:3]]
    elif isinstance(node, Not):
        out.append(f"{pad}{mark} NOT (the term below must be absent)")
        _describe(rule, node.item, scan, trace, depth + 1, out)
    elif isinstance(node, And | Or):
        out.append(f"{pad}{mark} {'ALL' if isinstance(node, And) else 'ANY'} of:")
        for item in node.items:
            _describe(rule, item, scan, trace, depth + 1, out)
    else:
        pair = near(rule, node, scan)
        where = (f": {FIELD_NAMES[pair[0][0]]} {pair[0][1]}-{pair[0][2]} and "
                 f"{pair[1][1]}-{pair[1][2]}") if pair else ": no pair close enough in one field"
        out.append(f"{pad}{mark} NEAR/{node.distance}{where}")
        for term in (*node.left, *node.right):
            _describe(rule, term, scan, trace, depth + 1, out)


def explain(matcher: Matcher, rule_name: str, entry: Entry) -> Explanation:
    """Evaluate one rule on one entry and explain each node of its tree."""
    rule = matcher.rule(rule_name)
    scan = matcher.scan(entry.title, entry.text, entry.author)
    trace: Trace = {}
    matched = evaluate(rule, rule.node, scan, trace)
    head = f"rule {rule.name!r}: {'MATCH' if matched else 'no match'}"
    lines = [head]
    _describe(rule, rule.node, scan, trace, 1, lines)
    return Explanation(rule.name, matched, tuple(lines))
