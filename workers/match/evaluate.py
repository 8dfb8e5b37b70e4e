"""Rules as one boolean tree each, evaluated over a `Scan`.

`any`/`all`/`none` lists and the `query` string compile to the same AST (`monitor.core.rulesyntax`):
`Or(any) AND And(all) AND NOT Or(none) AND query`. Every term's id comes from the shared
`Scanner`, so all literals of all rules sit in one automaton.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from monitor.config.models import RuleSettings
from monitor.core.rulesyntax import And, Near, Node, Not, Or, Term, parse_query, phrase_term, terms
from workers.match.scan import RANK, RawHit, Scan, Scanner

#: Per-node truth values recorded by `evaluate(..., trace=...)`, keyed by `id(node)`.
Trace = dict[int, bool]
#: The tree flattened for speed: literal terms of one OR/AND with the same fields become one
#: set test. (ANY, ids, ranks) | (ALL, ids, ranks) | (TERM, id, ranks) | (OR|AND, programs) |
#: (NOT, program) | (NEAR, node).
Program = tuple[Any, ...]
ANY, ALL, TERM, OR, AND, NOT, NEAR = range(7)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule ready to evaluate: its tree, each term's id and fields, the terms to report."""

    index: int
    name: str
    feeds: tuple[str, ...]
    events: frozenset[str]
    node: Node
    ids: dict[Term, int]
    ranks: dict[Term, frozenset[int]]
    #: (term id, label as written, field ranks) of every term not under a NOT, first label wins.
    positive: tuple[tuple[int, str, frozenset[int]], ...]
    has_regex: bool
    program: Program
    regex_ids: frozenset[int]
    #: term id -> (rank in `positive`, label, field ranks) for every positive literal term.
    positive_index: dict[int, tuple[int, str, frozenset[int]]]
    #: (ids, vetoes, field ranks) when the program is "any of ids and none of vetoes, all in the
    #: same fields" (what `any`/`none` lists compile to), else None: a set test, no tree walk.
    simple: tuple[frozenset[int], frozenset[int], frozenset[int]] | None


def rule_tree(rule: RuleSettings) -> Node:
    """The rule's lists and query as one tree."""
    parts: list[Node] = []
    if rule.any:
        parts.append(Or(tuple(phrase_term(p) for p in rule.any)))
    if rule.all:
        parts.append(And(tuple(phrase_term(p) for p in rule.all)))
    if rule.none:
        parts.append(Not(Or(tuple(phrase_term(p) for p in rule.none))))
    if rule.query:
        parts.append(parse_query(rule.query))
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def compile_rule(index: int, rule: RuleSettings, scanner: Scanner) -> CompiledRule:
    """Register the rule's terms with `scanner` and return the compiled rule."""
    node = rule_tree(rule)
    default = frozenset(RANK[f] for f in rule.fields)
    ids: dict[Term, int] = {}
    ranks: dict[Term, frozenset[int]] = {}
    positive: dict[int, tuple[str, frozenset[int]]] = {}
    for term, negated in terms(node):
        if term not in ids:
            ids[term] = scanner.add(term, case_sensitive=rule.case_sensitive,
                                    strip=rule.ignore_diacritics)
            ranks[term] = frozenset((RANK[term.field],)) if term.field else default
        if not negated:
            label = f"/{term.text}/" if term.kind == "regex" else term.text
            first_label, seen = positive.get(ids[term], (label, frozenset()))
            positive[ids[term]] = (first_label, seen | ranks[term])
    program = _program(node, ids, ranks)
    regex_ids = frozenset(i for t, i in ids.items() if t.kind == "regex")
    return CompiledRule(
        index=index, name=rule.name, feeds=tuple(rule.feeds), events=frozenset(rule.events),
        node=node, ids=ids, ranks=ranks,
        positive=tuple((tid, label, r) for tid, (label, r) in positive.items()),
        has_regex=any(t.kind == "regex" for t in ids),
        program=program,
        regex_ids=regex_ids,
        positive_index={tid: (order, label, r) for order, (tid, (label, r))
                        in enumerate(positive.items()) if tid not in regex_ids},
        simple=_simple(program))


def _simple(program: Program) -> tuple[frozenset[int], frozenset[int], frozenset[int]] | None:
    if program[0] == ANY:
        return program[1], frozenset(), program[2]
    if program[0] == AND and len(program[1]) == 2:
        first, second = program[1]
        if first[0] == ANY and second[0] == NOT and second[1][0] == ANY \
                and second[1][2] == first[2]:
            return first[1], second[1][1], first[2]
    return None


def _program(node: Node, ids: dict[Term, int], ranks: dict[Term, frozenset[int]]) -> Program:
    if isinstance(node, Term):
        if node.kind == "regex":
            return (TERM, ids[node], ranks[node])
        return (ANY, frozenset((ids[node],)), ranks[node])
    if isinstance(node, Not):
        return (NOT, _program(node.item, ids, ranks))
    if isinstance(node, Near):
        return (NEAR, node)
    groups: dict[frozenset[int], set[int]] = {}
    others: list[Program] = []
    for item in node.items:
        if isinstance(item, Term) and item.kind == "phrase":
            groups.setdefault(ranks[item], set()).add(ids[item])
        else:
            others.append(_program(item, ids, ranks))
    kind = ANY if isinstance(node, Or) else ALL
    parts = [(kind, frozenset(group), r) for r, group in groups.items()] + others
    if len(parts) == 1:
        return parts[0]
    return (OR if isinstance(node, Or) else AND, tuple(parts))


def run(rule: CompiledRule, program: Program, scan: Scan) -> bool:
    """The value of a rule's program on `scan` (what `evaluate` computes, faster)."""
    kind = program[0]
    if kind == ANY:
        return not program[1].isdisjoint(scan.present_set(program[2]))
    if kind == ALL:
        return bool(program[1] <= scan.present_set(program[2]))
    if kind == OR:  # explicit loops: measurably faster than any()/all() on generators
        for part in program[1]:  # noqa: SIM110
            if run(rule, part, scan):
                return True
        return False
    if kind == AND:
        for part in program[1]:  # noqa: SIM110
            if not run(rule, part, scan):
                return False
        return True
    if kind == NOT:
        return not run(rule, program[1], scan)
    if kind == TERM:
        return scan.present(program[1], program[2])
    return near(rule, program[1], scan) is not None


def evaluate(rule: CompiledRule, node: Node, scan: Scan, trace: Trace | None = None) -> bool:
    """The value of `node` (a subtree of `rule.node`) on `scan`; records values in `trace`."""
    if isinstance(node, Term):
        value = scan.present(rule.ids[node], rule.ranks[node])
    elif isinstance(node, Or):
        value = False
        for item in node.items:
            if evaluate(rule, item, scan, trace):
                value = True
                if trace is None:
                    break
    elif isinstance(node, And):
        value = True
        for item in node.items:
            if not evaluate(rule, item, scan, trace):
                value = False
                if trace is None:
                    break
    elif isinstance(node, Not):
        value = not evaluate(rule, node.item, scan, trace)
    else:
        value = near(rule, node, scan, trace) is not None
    if trace is not None:
        trace[id(node)] = value
    return value


def _side(rule: CompiledRule, side: tuple[Term, ...], scan: Scan,
          trace: Trace | None) -> list[RawHit]:
    out: list[RawHit] = []
    for term in side:
        hits = scan.hits(rule.ids[term], rule.ranks[term])
        if trace is not None:
            trace[id(term)] = bool(hits)
        out += hits
    return out


def near(rule: CompiledRule, node: Near, scan: Scan,
         trace: Trace | None = None) -> tuple[RawHit, RawHit] | None:
    """The first pair of hits (left, right) in one field with at most `distance` words between."""
    left = _side(rule, node.left, scan, trace)
    right = _side(rule, node.right, scan, trace) if left else []
    for a in left:
        a_first, a_last = scan.word_span(a)
        for b in right:
            if a[0] != b[0]:
                continue
            b_first, b_last = scan.word_span(b)
            gap = b_first - a_last - 1 if a[2] <= b[1] else a_first - b_last - 1
            if gap <= node.distance:
                return a, b
    return None


def rule_hits(rule: CompiledRule, scan: Scan) -> list[tuple[str, RawHit]]:
    """(label, hit) for every occurrence of the rule's positive terms, by field and offset
    (equal hits in the order of `rule.positive`)."""
    found = scan.found
    if not rule.regex_ids and len(found) < len(rule.positive):  # from the (few) found terms
        index = rule.positive_index
        ordered: list[tuple[RawHit, int, str]] = []
        for term_id, hits in found.items():
            entry = index.get(term_id)
            if entry is not None:
                order, label, ranks = entry
                for hit in hits:
                    if hit[0] in ranks:
                        ordered.append((hit, order, label))
        if len(ordered) == 1:
            return [(ordered[0][2], ordered[0][0])]
        ordered.sort()
        return [(label, hit) for hit, _, label in ordered]
    out: list[tuple[str, RawHit]] = []
    for term_id, label, ranks in rule.positive:
        if term_id in found or term_id in rule.regex_ids:
            out += [(label, hit) for hit in scan.hits(term_id, ranks)]
    if len(out) > 1:
        out.sort(key=lambda item: item[1])
    return out
