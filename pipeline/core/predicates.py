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

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.events import LifecycleEvent

_MISSING = object()
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
        if event.kind != self.kind:
            return False
        for key, cond in self.where.items():
            actual = lookup(event.attributes, key)
            if isinstance(cond, dict):
                if not all(_compare(op, actual, exp) for op, exp in cond.items()):
                    return False
            elif isinstance(cond, list):
                if not _compare("in", actual, cond):
                    return False
            elif not _compare("eq", actual, cond):
                return False
        return True


def any_match(criteria: list[Criterion] | tuple[Criterion, ...], event: LifecycleEvent) -> bool:
    return any(c.matches(event) for c in criteria)


class FromTo(BaseModel):
    """A ``{from: a, to: b}`` pair in the journey YAML (stages, or teams)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: str = Field(alias="from")
    to: str
