"""Identity stitching: every event, from any of the four systems, to ONE account id.

Rules, strongest first (the order they are applied within an event):

1. **Explicit links.** A source asserted ``a ↔ b`` (``LifecycleEvent.links``): they are
   one account, merging two existing accounts if need be.
2. **Co-occurrence.** Ids listed together in ``identifiers`` are the same object's.
   A person or deal id already in another *account-anchored* account does not drag
   that account along (a Segment user in two workspaces must not merge them); it
   does pull in an account known only by person ids (an anonymous visitor).
3. **Email-domain fallback** (``IdentityConfig.email_domain_fallback``). ``domain:``
   ids join nothing else; free-mail domains are ignored everywhere. The fallback
   never joins two accounts that both have a CRM account id.
4. **First sight.** Anything still unknown starts its own account.

Account ids are ``acct:<anchor>``. The anchor is the best-ranked identifier
(``anchor_preference`` order, then other account-level ids, deals, people,
anonymous ids, domains) and never changes for a given id: an account without a CRM
account id is *provisional*, and when a better-ranked id joins it, a new account is
made for that id and the provisional one merges into it. When two accounts merge,
the better anchor survives (tie: the older account, by event time).

State lives in two caller-owned mappings, read and written by key only (Faust
tables plug in; every mutated value is re-assigned so the changelog sees it):

``links[identifier] -> account_id``
    Always the live account: a merge rewrites the absorbed members' entries, so
    the hot path (every id known, all in one account) is one lookup per id.
``accounts[account_id] -> dict``
    Live: ``account_id, anchor, provisional, created_at, created_by, members``
    (identifier → ``[rule, via, event_id, at(, reason)]``), ``links`` (explicit
    assertions, first ``LINKS_KEPT``), ``absorbed`` (last ``ABSORBED_KEPT`` merges),
    ``merged_into: None``. Absorbed: a small tombstone with ``merged_into``, so an old
    account id still resolves through a chain of merges.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any, Protocol

from pipeline.core.journey import IdentityConfig
from schemas.events import IdentityLink
from schemas.identity import (
    AbsorbedAccount,
    AccountMerged,
    Explanation,
    IdentityDecision,
    IdentityRule,
    LinkEvidence,
    Membership,
    describe_rule,
)

ACCOUNT_PREFIX = "acct:"
DOMAIN_PREFIX = "domain:"
LINKS_KEPT = 100       # explicit-link evidence per account; membership evidence is never dropped
ABSORBED_KEPT = 50     # merge history per account
MAX_CHAIN = 64         # tombstone hops before we call the state corrupt
DOMAINS_CACHED = 100_000   # domain identifiers whose usable form is remembered (see UsableIdentifiers)


_EXPLICIT = IdentityRule.EXPLICIT_LINK
_CO = IdentityRule.CO_OCCURRENCE
_DOMAIN = IdentityRule.EMAIL_DOMAIN
_FIRST = IdentityRule.FIRST_SIGHT
_RULE_WORDS = {_EXPLICIT: "explicit link", _CO: "same object", _DOMAIN: "email-domain fallback", _FIRST: "first sight"}


class LinkView(Protocol):
    """A link a source asserted (``schemas.events.IdentityLink``, or the merge's own tuple)."""

    @property
    def a(self) -> str: ...
    @property
    def b(self) -> str: ...
    @property
    def reason(self) -> str: ...


class ResolvableEvent(Protocol):
    """What resolution reads of an event, and the account id it writes back: a ``LifecycleEvent``,
    or the worker's merge-side view of one (``pipeline.ingest.MergeEvent``)."""

    account_id: str | None

    @property
    def event_id(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def identifiers(self) -> Sequence[str]: ...
    @property
    def links(self) -> Sequence[LinkView]: ...


class Tier(IntEnum):
    """What kind of object an identifier names; lower is a better anchor."""

    ACCOUNT = 0
    DEAL = 1
    PERSON = 2
    ANONYMOUS = 3
    DOMAIN = 4


def namespace(identifier: str) -> str:
    return identifier.partition(":")[0]


class Namespaces:
    """What each identifier namespace names, from the configuration (the vendors declare theirs;
    the core knows none): a tier per namespace, and which account namespaces are CRM accounts.
    A namespace not configured names an account."""

    def __init__(self, config: IdentityConfig) -> None:
        names = {"crm_account": Tier.ACCOUNT, "account": Tier.ACCOUNT, "deal": Tier.DEAL, "person": Tier.PERSON,
                 "anonymous": Tier.ANONYMOUS}
        self._tiers = {ns: names[kind] for ns, kind in config.namespaces.items()}
        self._crm = frozenset(ns for ns, kind in config.namespaces.items() if kind == "crm_account")

    def tier(self, identifier: str) -> Tier:
        ns = namespace(identifier)
        return Tier.DOMAIN if ns == "domain" else self._tiers.get(ns, Tier.ACCOUNT)

    def is_crm_account(self, identifier: str) -> bool:
        return namespace(identifier) in self._crm


def normalize_domain(identifier: str) -> str:
    """``domain:WWW.Acme.com.`` and ``domain:acme.com`` are the same company."""
    value = identifier[len(DOMAIN_PREFIX):].strip().lower().rstrip(".")
    return DOMAIN_PREFIX + value.removeprefix("www.")


def _link_key(a: str, b: str) -> str:
    return f"{a}\x1f{b}" if a <= b else f"{b}\x1f{a}"


class UnresolvableEvent(ValueError):
    """The event has no identifier identity resolution may use (e.g. only a free-mail domain)."""


@dataclass(slots=True)
class Resolution:
    """The account an event belongs to, and the new identity facts it brought."""

    account_id: str
    merges: list[AccountMerged] = field(default_factory=list)
    decisions: list[IdentityDecision] = field(default_factory=list)
    new_account: bool = False


class _Step:
    """One event's work: account values loaded once, written back once at the end."""

    __slots__ = ("event", "at", "work", "dirty", "created", "redirect", "new_links", "decided", "merged")

    def __init__(self, event: ResolvableEvent) -> None:
        self.event = event
        self.at = event.occurred_at.isoformat(timespec="microseconds")
        self.work: dict[str, dict[str, Any] | None] = {}
        self.dirty: dict[str, None] = {}          # ordered set: write-back order is deterministic
        self.created: set[str] = set()
        self.redirect: dict[str, str] = {}        # accounts absorbed during this event
        self.new_links: dict[str, str] = {}
        self.decided: list[tuple[str, str, IdentityRule, str | None, str | None]] = []
        self.merged: list[tuple[str, str, IdentityRule, str, IdentityLink]] = []

    def follow(self, account_id: str) -> str:
        while account_id in self.redirect:
            account_id = self.redirect[account_id]
        return account_id

    def touch(self, account_id: str) -> None:
        self.dirty[account_id] = None


class UsableIdentifiers:
    """The identifiers resolution may use, as it uses them: a function of the configuration
    alone (no state), so the parse stage can tell which events resolution will refuse."""

    def __init__(self, config: IdentityConfig) -> None:
        self._fallback = config.email_domain_fallback
        self._free = frozenset(d.strip().lower() for d in config.free_email_domains)
        self._domains: dict[str, str | None] = {}

    def __call__(self, identifier: str) -> str | None:
        """The identifier as resolution uses it; None for domains the fallback may not use."""
        if not identifier.startswith(DOMAIN_PREFIX):
            return identifier
        if not self._fallback:
            return None
        try:
            return self._domains[identifier]   # most events carry a domain: normalise each once
        except KeyError:
            pass
        ident: str | None = normalize_domain(identifier)
        if ident == DOMAIN_PREFIX or ident[len(DOMAIN_PREFIX):] in self._free:
            ident = None
        if len(self._domains) >= DOMAINS_CACHED:
            self._domains.clear()
        self._domains[identifier] = ident
        return ident

    def resolvable(self, identifiers: Iterable[str]) -> bool:
        """False exactly when ``IdentityResolver.resolve`` raises ``UnresolvableEvent``."""
        return any(self(i) is not None for i in identifiers)


class IdentityResolver:
    """Maps each event to one account id over caller-provided key-value state."""

    def __init__(
        self,
        config: IdentityConfig,
        links: MutableMapping[str, str],
        accounts: MutableMapping[str, dict[str, Any]],
    ) -> None:
        self.config = config
        self.links = links
        self.accounts = accounts
        self._usable = UsableIdentifiers(config)
        self._preference = {ns: i for i, ns in enumerate(config.anchor_preference)}
        self._ns = Namespaces(config)
        self._ranks: dict[str, int] = {}

    # ---- public API ---------------------------------------------------------------
    def resolve(self, event: ResolvableEvent) -> Resolution:
        """The event's account; merges and decisions only when the event taught us something."""
        known = self._known_account(event)
        if known is not None:
            return Resolution(known)
        return self._resolve(event)

    def account_of(self, identifier: str) -> str | None:
        """Read-only lookup: the live account of an identifier, if it was ever seen."""
        ident = self._usable(identifier) or identifier
        acct = self.links.get(ident)
        return None if acct is None else self.current_account(acct)

    def current_account(self, account_id: str) -> str:
        """Follow merges: where an (possibly absorbed) account id lives now."""
        for _ in range(MAX_CHAIN):
            rec = self.accounts.get(account_id)
            if rec is None or not rec.get("merged_into"):
                return account_id
            account_id = rec["merged_into"]
        raise RuntimeError(f"identity state: merge chain from {account_id!r} longer than {MAX_CHAIN}")

    def explain(self, identifier: str) -> Explanation | None:
        """Why ``identifier`` (any source id, or an account id) is where it is; None if never seen."""
        ident = self._usable(identifier) or identifier
        acct = self.links.get(ident)
        if acct is None:
            if identifier not in self.accounts:
                return None
            acct, ident = identifier, None
        rec = self.accounts.get(self.current_account(acct))
        if rec is None:
            return None
        members = [_membership(m, ev) for m, ev in rec["members"].items()]
        return Explanation(
            identifier=identifier,
            account_id=rec["account_id"],
            anchor=rec["anchor"],
            provisional=rec["provisional"],
            membership=next((m for m in members if m.identifier == ident), None),
            members=members,
            links=[LinkEvidence(a=a, b=b, reason=r, event_id=e, asserted_at=t) for a, b, r, e, t in rec["links"].values()],
            absorbed=[AbsorbedAccount(account_id=i, rule=ru, reason=r, event_id=e, merged_at=t)
                      for i, ru, r, e, t in rec["absorbed"]],
        )

    # ---- hot path -----------------------------------------------------------------
    def _known_account(self, event: ResolvableEvent) -> str | None:
        """The account if the event brings nothing new (every id known, one account), else None."""
        links = self.links
        account = None
        for raw in event.identifiers:
            ident = self._usable(raw)
            if ident is None:
                continue
            acct = links.get(ident)
            if acct is None or (account is not None and acct != account):
                return None
            account = acct
        if account is None or not event.links:
            return account
        evidence = None
        for link in event.links:
            a, b = self._usable(link.a), self._usable(link.b)
            if a is None or b is None or a == b:
                continue
            if links.get(a) != account or links.get(b) != account:
                return None
            if a.startswith(DOMAIN_PREFIX) or b.startswith(DOMAIN_PREFIX):
                continue
            if evidence is None:
                evidence = self.accounts[account]["links"]
            if _link_key(a, b) not in evidence and len(evidence) < LINKS_KEPT:
                return None
        return account

    def _rank(self, identifier: str) -> int:
        ns = namespace(identifier)
        rank = self._ranks.get(ns)
        if rank is None:
            pref = self._preference.get(ns)
            rank = pref if pref is not None else len(self._preference) + self._ns.tier(identifier)
            self._ranks[ns] = rank
        return rank

    # ---- the rules --------------------------------------------------------------
    def _resolve(self, event: ResolvableEvent) -> Resolution:
        step = _Step(event)
        ids = list(dict.fromkeys(u for u in map(self._usable, event.identifiers) if u is not None))
        if not ids:
            raise UnresolvableEvent(
                f"event {event.event_id}: no usable identifier in {event.identifiers} "
                f"(domains: fallback {'on' if self.config.email_domain_fallback else 'off'}, free-mail ignored)")
        # The event's own object: its first account-level id (connectors list them first,
        # but a deal or person listed first must not decide the account).
        primary = (next((i for i in ids if self._ns.tier(i) is Tier.ACCOUNT), None)
                   or next((i for i in ids if not i.startswith(DOMAIN_PREFIX)), ids[0]))

        domain_links: list[tuple[str, str, str]] = []
        for link in event.links:
            a, b = self._usable(link.a), self._usable(link.b)
            if a is None or b is None or a == b:
                continue
            if a.startswith(DOMAIN_PREFIX) or b.startswith(DOMAIN_PREFIX):
                domain_links.append((a, b, link.reason))
            else:
                self._join(step, a, b, _EXPLICIT, link.reason, link)
        domains = []
        for ident in ids:
            if ident == primary:
                continue
            if ident.startswith(DOMAIN_PREFIX):
                domains.append(ident)
            else:
                self._join(step, primary, ident, _CO)
        for ident in domains:
            self._join(step, primary, ident, _DOMAIN)
        for a, b, reason in domain_links:
            self._join(step, a, b, _DOMAIN, reason)
        if self._account_of(step, primary) is None:
            self._create(step, primary, _FIRST)

        account_id = self._account_of(step, primary)
        assert account_id is not None
        return self._commit(step, account_id)

    def _join(self, step: _Step, a: str, b: str, rule: IdentityRule,
              reason: str | None = None, link: LinkView | None = None) -> None:
        acct_a, acct_b = self._account_of(step, a), self._account_of(step, b)
        if acct_a is None and acct_b is None:
            first, second = (a, b) if self._rank(a) <= self._rank(b) else (b, a)
            rec = self._create(step, first, _FIRST)
            self._attach(step, second, rec["account_id"], rule, first, reason, link)
        elif acct_b is None:
            self._attach(step, b, acct_a, rule, a, reason, link)
        elif acct_a is None:
            self._attach(step, a, acct_b, rule, b, reason, link)
        elif acct_a != acct_b and self._may_merge(step, rule, a, b, acct_a, acct_b):
            self._merge(step, acct_a, acct_b, rule, _pair(a, b, rule, reason, link, step))
        if rule is _EXPLICIT:
            self._note_link(step, a, b, reason or "")

    def _may_merge(self, step: _Step, rule: IdentityRule, a: str, b: str, acct_a: str, acct_b: str) -> bool:
        if rule is _EXPLICIT:
            return True
        if rule is _CO:
            if self._ns.tier(a) is Tier.ACCOUNT and self._ns.tier(b) is Tier.ACCOUNT:
                return True
            # Account ids are acct:<anchor>, so the anchor's tier needs no state read.
            return (self._ns.tier(acct_a[len(ACCOUNT_PREFIX):]) is not Tier.ACCOUNT
                    or self._ns.tier(acct_b[len(ACCOUNT_PREFIX):]) is not Tier.ACCOUNT)
        return bool(self._load(step, acct_a)["provisional"] or self._load(step, acct_b)["provisional"])

    def _attach(self, step: _Step, ident: str, account_id: str, rule: IdentityRule,
                via: str, reason: str | None, link: LinkView | None) -> None:
        """Put a new identifier into an existing account (or promote the account around it)."""
        rec = self._load(step, account_id)
        if rule is _DOMAIN and self._ns.is_crm_account(ident) and not rec["provisional"]:
            return  # a second CRM company sharing a domain stays its own account (first sight later)
        if (rule is _CO and self._ns.tier(ident) is Tier.ACCOUNT and self._ns.tier(via) is not Tier.ACCOUNT
                and self._ns.tier(rec["anchor"]) is Tier.ACCOUNT):
            return  # a person or deal of another account does not carry this account into it
        if rec["provisional"] and self._rank(ident) < self._rank(rec["anchor"]):
            better = self._create(step, ident, rule, via, reason)
            if better is not rec:
                self._absorb(step, rec, better, rule, _pair(via, ident, rule, reason, link, step))
        else:
            self._add_member(step, rec, ident, rule, via, reason)

    # ---- state changes ------------------------------------------------------------
    def _account_of(self, step: _Step, ident: str) -> str | None:
        acct = step.new_links.get(ident) or self.links.get(ident)
        return None if acct is None else step.follow(acct)

    def _load(self, step: _Step, account_id: str) -> dict[str, Any]:
        """The live account value, loaded once per event (tombstones followed)."""
        for _ in range(MAX_CHAIN):
            account_id = step.follow(account_id)
            if account_id in step.work:
                rec = step.work[account_id]
            else:
                rec = step.work[account_id] = self.accounts.get(account_id)
            if rec is None:
                raise KeyError(f"identity state: account {account_id!r} is referenced but missing")
            if not rec.get("merged_into"):
                return rec
            account_id = rec["merged_into"]
        raise RuntimeError(f"identity state: merge chain from {account_id!r} longer than {MAX_CHAIN}")

    def _create(self, step: _Step, ident: str, rule: IdentityRule,
                via: str | None = None, reason: str | None = None) -> dict[str, Any]:
        account_id = ACCOUNT_PREFIX + ident
        if account_id in step.work or account_id in self.accounts:
            # Only after lost link entries: repair by rejoining the account this id anchors.
            rec = self._load(step, account_id)
            self._add_member(step, rec, ident, rule, via, reason)
            return rec
        rec: dict[str, Any] = {
            "account_id": account_id, "anchor": ident, "provisional": True,
            "created_at": step.at, "created_by": step.event.event_id,
            "members": {}, "links": {}, "absorbed": [], "merged_into": None,
        }
        step.work[account_id] = rec
        step.created.add(account_id)
        self._add_member(step, rec, ident, rule, via, reason)
        return rec

    def _add_member(self, step: _Step, rec: dict[str, Any], ident: str, rule: IdentityRule,
                    via: str | None, reason: str | None) -> None:
        evidence: list[Any] = [rule.value, via, step.event.event_id, step.at]
        if reason:
            evidence.append(reason)
        rec["members"][ident] = evidence
        if rec["provisional"] and self._ns.is_crm_account(ident):
            rec["provisional"] = False
        step.new_links[ident] = rec["account_id"]
        step.touch(rec["account_id"])
        step.decided.append((ident, rec["account_id"], rule, via, reason))

    def _note_link(self, step: _Step, a: str, b: str, reason: str) -> None:
        account_id = self._account_of(step, a)
        if account_id is None:
            return
        rec = self._load(step, account_id)
        evidence = rec["links"]
        key = _link_key(a, b)
        if key in evidence or len(evidence) >= LINKS_KEPT:
            return
        evidence[key] = [a, b, reason, step.event.event_id, step.at]
        step.touch(rec["account_id"])

    def _merge(self, step: _Step, acct_a: str, acct_b: str, rule: IdentityRule, link: IdentityLink) -> None:
        rec_a, rec_b = self._load(step, acct_a), self._load(step, acct_b)
        if rec_a is rec_b:
            return
        if self._seniority(rec_a) <= self._seniority(rec_b):
            self._absorb(step, rec_b, rec_a, rule, link)
        else:
            self._absorb(step, rec_a, rec_b, rule, link)

    def _seniority(self, rec: dict[str, Any]) -> tuple[int, str, str]:
        return self._rank(rec["anchor"]), rec["created_at"], rec["account_id"]

    def _absorb(self, step: _Step, loser: dict[str, Any], survivor: dict[str, Any],
                rule: IdentityRule, link: IdentityLink) -> None:
        lid, sid = loser["account_id"], survivor["account_id"]
        members = survivor["members"]
        for ident, evidence in loser["members"].items():
            members[ident] = evidence
            step.new_links[ident] = sid
        known = survivor["links"]
        for key, evidence in loser["links"].items():
            if len(known) >= LINKS_KEPT:
                break
            known.setdefault(key, evidence)
        reason = f"{_RULE_WORDS[rule]}: {link.a} <-> {link.b} ({link.reason})"
        absorbed = survivor["absorbed"]
        absorbed.extend(loser["absorbed"])
        fresh = lid in step.created
        if not fresh:
            absorbed.append([lid, rule.value, reason, step.event.event_id, step.at])
        del absorbed[:-ABSORBED_KEPT]
        survivor["provisional"] = survivor["provisional"] and loser["provisional"]
        step.touch(sid)
        step.redirect[lid] = sid
        if fresh:
            # Made and absorbed within this event: nobody has seen that id, keep no trace.
            step.work.pop(lid, None)
            step.dirty.pop(lid, None)
            step.created.discard(lid)
            return
        step.work[lid] = {"account_id": lid, "anchor": loser["anchor"], "merged_into": sid,
                          "merged_at": step.at, "merged_by": step.event.event_id}
        step.touch(lid)
        step.merged.append((lid, sid, rule, reason, link))

    def _commit(self, step: _Step, account_id: str) -> Resolution:
        event = step.event
        for ident, acct in step.new_links.items():
            self.links[ident] = step.follow(acct)
        for acct in step.dirty:
            self.accounts[acct] = step.work[acct]  # re-assign: Faust persists on __setitem__ only
        decisions = []
        for ident, acct, rule, via, reason in step.decided:
            decisions.append(IdentityDecision(
                identifier=ident, account_id=step.follow(acct), rule=rule, via=via,
                reason=describe_rule(rule, via, reason), event_id=event.event_id, decided_at=event.occurred_at))
        merges = [
            AccountMerged(from_account=lid, into_account=step.follow(sid), rule=rule, reason=reason, link=link,
                          event_id=event.event_id, decided_at=event.occurred_at)
            for lid, sid, rule, reason, link in step.merged
        ]
        return Resolution(account_id, merges, decisions, new_account=account_id in step.created)


def _pair(a: str, b: str, rule: IdentityRule, reason: str | None, link: LinkView | None, step: _Step) -> IdentityLink:
    """The link that joined two accounts: the source's own, or one stating the rule."""
    if link is not None:
        return link if isinstance(link, IdentityLink) else IdentityLink(a=link.a, b=link.b, reason=link.reason)
    if rule is _CO:
        why = f"listed together in event {step.event.event_id}"
    elif rule is _DOMAIN:
        why = reason or "shared email domain"
    else:
        why = reason or rule.value
    return IdentityLink(a=a, b=b, reason=why)


def _membership(ident: str, evidence: list[Any]) -> Membership:
    return Membership(identifier=ident, rule=evidence[0], via=evidence[1], event_id=evidence[2],
                      decided_at=evidence[3], reason=evidence[4] if len(evidence) > 4 else None)
