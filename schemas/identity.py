"""Identity records: why an identifier belongs to an account, and accounts merging.

``IdentityDecision`` and ``AccountMerged`` are published on ``lifecycle.identity``
(tell them apart by ``type``); ``Explanation`` is what ``lifecycle identity show``
prints. Identity resolution only emits records for new facts, so the topic is an
audit trail of the stitching rather than a copy of the event stream.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal, Union

from pydantic import Field, TypeAdapter

from schemas.base import Record, UtcDatetime, stable_id
from schemas.events import IdentityLink


class IdentityRule(StrEnum):
    """Why an identifier sits in its account (a bounded set: used as a metric label)."""

    FIRST_SIGHT = "first_sight"        # never seen before: it starts its own account
    EXPLICIT_LINK = "explicit_link"    # a source asserted a↔b (IdentityLink)
    CO_OCCURRENCE = "co_occurrence"    # listed together in one event: ids of the same object
    EMAIL_DOMAIN = "email_domain"      # the email-domain fallback


def describe_rule(rule: str, via: str | None, reason: str | None) -> str:
    """One line a RevOps person can read: the rule, what it went through, and the source's reason."""
    if rule == IdentityRule.FIRST_SIGHT:
        return "first seen"
    if rule == IdentityRule.EXPLICIT_LINK:
        return f"explicit link with {via}: {reason}" if reason else f"explicit link with {via}"
    if rule == IdentityRule.CO_OCCURRENCE:
        return f"same object as {via} (listed together in one event)"
    if rule == IdentityRule.EMAIL_DOMAIN:
        base = f"email-domain fallback with {via}"
        return f"{base}: {reason}" if reason else base
    return f"{rule} {via or ''}".strip()


class IdentityDecision(Record):
    """An identifier was put in an account, and why. Emitted once per new fact."""

    type: Literal["identity_decision"] = "identity_decision"
    decision_id: str = ""
    identifier: str
    account_id: str
    rule: IdentityRule
    via: str | None = Field(default=None, description="The identifier it was joined through, if any")
    reason: str = Field(description="Human-readable why, including the source's own reason for explicit links")
    event_id: str = Field(description="The event that asserted the fact")
    decided_at: UtcDatetime = Field(description="Event time of that event")

    def model_post_init(self, __context: Any) -> None:
        if not self.decision_id:
            self.decision_id = stable_id(self.identifier, self.account_id, self.rule.value, self.event_id, prefix="idd-")


class AccountMerged(Record):
    """Two accounts turned out to be one customer: ``from_account`` is absorbed.

    The pipeline re-keys the absorbed account's history onto ``into_account``;
    ``merge_id`` derives from the pair (an account is absorbed at most once), so
    consumers de-duplicate on it across retries and replays.
    """

    type: Literal["account_merged"] = "account_merged"
    merge_id: str = ""
    from_account: str
    into_account: str
    rule: IdentityRule
    reason: str
    link: IdentityLink = Field(description="The pair of identifiers that joined the two accounts")
    event_id: str
    decided_at: UtcDatetime = Field(description="Event time of the event that joined them")

    def model_post_init(self, __context: Any) -> None:
        if not self.merge_id:
            self.merge_id = stable_id(self.from_account, self.into_account, prefix="merge-")


IdentityRecord = Annotated[Union[IdentityDecision, AccountMerged], Field(discriminator="type")]
"""Any value on ``lifecycle.identity``."""

_IDENTITY_RECORD: TypeAdapter[IdentityDecision | AccountMerged] = TypeAdapter(IdentityRecord)


def parse_identity_record(data: bytes | str) -> IdentityDecision | AccountMerged:
    """Decode one ``lifecycle.identity`` value into the right record type."""
    return _IDENTITY_RECORD.validate_json(data)


class Membership(Record):
    """How one identifier came to be in its account."""

    identifier: str
    rule: IdentityRule
    via: str | None = None
    reason: str | None = Field(default=None, description="The source's reason, for explicit links")
    event_id: str
    decided_at: UtcDatetime

    def describe(self) -> str:
        return describe_rule(self.rule, self.via, self.reason)


class LinkEvidence(Record):
    """An explicit link a source asserted between two identifiers of the account."""

    a: str
    b: str
    reason: str
    event_id: str
    asserted_at: UtcDatetime


class AbsorbedAccount(Record):
    """An account merged into this one (directly or further down a chain)."""

    account_id: str
    rule: IdentityRule
    reason: str
    event_id: str
    merged_at: UtcDatetime


class Explanation(Record):
    """Everything identity resolution knows about the account behind one identifier."""

    identifier: str = Field(description="What was asked about")
    account_id: str
    anchor: str = Field(description="The identifier the account id derives from")
    provisional: bool = Field(description="No CRM account id yet: the id may still change by a merge")
    membership: Membership | None = Field(default=None, description="How the asked identifier joined (None when asked by account id)")
    members: list[Membership]
    links: list[LinkEvidence] = Field(default_factory=list)
    absorbed: list[AbsorbedAccount] = Field(default_factory=list)

    def render(self) -> str:
        """Plain text for ``lifecycle identity show``."""
        status = "provisional (no CRM account yet)" if self.provisional else "anchored"
        lines = [f"{self.identifier} -> {self.account_id}", f"  anchor: {self.anchor}, {status}"]
        if self.membership is not None:
            m = self.membership
            lines.append(f"  because: {m.describe()} (event {m.event_id}, {m.decided_at.isoformat()})")
        width = max(len(m.identifier) for m in self.members) if self.members else 0
        lines.append(f"members ({len(self.members)}):")
        lines += [f"  {m.identifier:<{width}}  {m.describe()}  [event {m.event_id}, {m.decided_at.isoformat()}]"
                  for m in self.members]
        if self.links:
            lines.append(f"explicit links ({len(self.links)}):")
            lines += [f"  {ln.a} <-> {ln.b}: {ln.reason}  [event {ln.event_id}, {ln.asserted_at.isoformat()}]"
                      for ln in self.links]
        if self.absorbed:
            lines.append(f"merged accounts ({len(self.absorbed)}):")
            lines += [f"  {ab.account_id}: {ab.reason}  [event {ab.event_id}, {ab.merged_at.isoformat()}]"
                      for ab in self.absorbed]
        return "\n".join(lines)
