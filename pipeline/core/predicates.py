"""Entry criteria: small predicates over canonical events, written in the journey YAML.

A criterion names an event ``kind`` and optional ``where`` conditions on the
event's attributes::

    - kind: crm.deal_stage_changed
      where: {stage: closedwon}            # equals
    - kind: product.track
      where: {event: [Workspace Activated, First Report Shared]}   # one of
    - kind: billing.invoice_paid
      where: {billing_reason: subscription_cycle, amount: {gte: 1}}  # operators

Operators: eq, ne, in, not_in, gt, gte, lt, lte, exists. A dotted key
(``plan.interval``) reaches into nested attributes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.events import LifecycleEvent

_MISSING = object()
T = TypeVar("T")
Test = Callable[[dict[str, Any]], bool]   # a criterion's conditions over an event's attributes
OPERATORS = {"eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "exists"}


def lookup(attributes: dict[str, Any], dotted: str) -> Any:
    value: Any = attributes
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _norm(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if op == "exists":
        return (actual is not _MISSING and actual is not None) == bool(expected)
    if actual is _MISSING or actual is None:
        return op in ("ne", "not_in")
    if op == "eq":
        return _norm(actual) == _norm(expected)
    if op == "ne":
        return _norm(actual) != _norm(expected)
    if op == "in":
        return _norm(actual) in {_norm(e) for e in expected}
    if op == "not_in":
        return _norm(actual) not in {_norm(e) for e in expected}
    try:
        if op == "gt":
            return actual > expected
        if op == "gte":
            return actual >= expected
        if op == "lt":
            return actual < expected
        if op == "lte":
            return actual <= expected
    except TypeError:
        return False
    raise ValueError(f"unknown operator {op!r}")


class Criterion(BaseModel):
    """One entry criterion: an event kind plus conditions on its attributes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    where: dict[str, Any] = {}

    @field_validator("kind")
    @classmethod
    def _kind_has_source(cls, v: str) -> str:
        if "." not in v:
            raise ValueError(f"event kind {v!r} must be '<source>.<name>', e.g. 'crm.deal_won'")
        return v

    @field_validator("where")
    @classmethod
    def _known_operators(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key, cond in v.items():
            if isinstance(cond, dict):
                unknown = set(cond) - OPERATORS
                if unknown:
                    raise ValueError(
                        f"condition on {key!r} uses unknown operator(s) {sorted(unknown)}; "
                        f"allowed: {sorted(OPERATORS)}"
                    )
        return v

    def matches(self, event: LifecycleEvent) -> bool:
        return event.kind == self.kind and self.test(event.attributes)

    @cached_property
    def test(self) -> Test:
        """The ``where`` conditions compiled once (the kind is checked by the caller)."""
        return _compile(self.where)


def _compile(where: dict[str, Any]) -> Test:
    """``where`` as one function over attributes: same answers as reading it every time
    (``_compare``), with keys split and expected values normalised in advance."""
    checks = [(_reader(key), _condition(cond)) for key, cond in where.items()]
    if not checks:
        return _always
    if len(checks) == 1:
        (read, check), = checks
        return lambda attributes: check(read(attributes))
    return lambda attributes: all(check(read(attributes)) for read, check in checks)


def _always(attributes: dict[str, Any]) -> bool:
    return True


def _reader(key: str) -> Callable[[dict[str, Any]], Any]:
    if "." in key:
        return lambda attributes: lookup(attributes, key)
    return lambda attributes: attributes.get(key, _MISSING)


def _condition(cond: Any) -> Callable[[Any], bool]:
    if isinstance(cond, dict):
        tests = [_operator(op, expected) for op, expected in cond.items()]
        if len(tests) == 1:
            return tests[0]
        return lambda actual: all(t(actual) for t in tests)
    if isinstance(cond, list):
        return _operator("in", cond)
    return _operator("eq", cond)


def _operator(op: str, expected: Any) -> Callable[[Any], bool]:
    """One operator against a fixed expected value; the generic ``_compare`` where a shortcut
    could answer differently (an expected list that is not hashable)."""
    if op in ("eq", "ne"):
        want, equal = _norm(expected), op == "eq"
        return lambda actual: (op == "ne" if actual is _MISSING or actual is None
                               else (_norm(actual) == want) is equal)
    if op in ("in", "not_in"):
        try:
            members = frozenset(_norm(e) for e in expected)
        except TypeError:
            return lambda actual: _compare(op, actual, expected)
        inside = op == "in"
        return lambda actual: (op == "not_in" if actual is _MISSING or actual is None
                               else (_norm(actual) in members) is inside)
    return lambda actual: _compare(op, actual, expected)


def any_match(criteria: Sequence[Criterion], event: LifecycleEvent) -> bool:
    return any(c.matches(event) for c in criteria)


class AnyOf:
    """Criteria grouped by event kind: an event is tested only against those naming its kind."""

    __slots__ = ("_by_kind",)

    def __init__(self, criteria: Iterable[Criterion]) -> None:
        self._by_kind: dict[str, tuple[Test, ...]] = {}
        for c in criteria:
            self._by_kind[c.kind] = (*self._by_kind.get(c.kind, ()), c.test)

    def __bool__(self) -> bool:
        return bool(self._by_kind)

    def matches(self, event: LifecycleEvent) -> bool:
        tests = self._by_kind.get(event.kind)
        if tests is None:
            return False
        attributes = event.attributes
        return any(t(attributes) for t in tests)


class KindIndex(Generic[T]):
    """Values (stages, facts, rules) each with its criteria, indexed by event kind: which
    values an event matches, in the order given, testing only criteria of its kind."""

    __slots__ = ("_by_kind",)

    def __init__(self, entries: Iterable[tuple[T, Iterable[Criterion]]]) -> None:
        self._by_kind: dict[str, list[tuple[T, tuple[Test, ...]]]] = {}
        for value, criteria in entries:
            tests: dict[str, tuple[Test, ...]] = {}
            for c in criteria:
                tests[c.kind] = (*tests.get(c.kind, ()), c.test)
            for kind, of_kind in tests.items():
                self._by_kind.setdefault(kind, []).append((value, of_kind))

    def matching(self, event: LifecycleEvent) -> list[T]:
        entries = self._by_kind.get(event.kind)
        if not entries:
            return []
        attributes = event.attributes
        return [value for value, tests in entries if any(t(attributes) for t in tests)]


class FromTo(BaseModel):
    """A ``{from: a, to: b}`` pair in the journey YAML (stages, or teams)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: str = Field(alias="from")
    to: str
