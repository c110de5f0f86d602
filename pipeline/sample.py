"""A seeded generator of realistic accounts over months, as the four vendors' native payloads.

Each account lives a *story* (converts to adoption, stalls at MQL, loses the
deal, churns and comes back, signs up self-serve …) told the way the systems
would see it: HubSpot or Salesforce changes, Stripe events, Segment calls and
Zendesk tickets, with the identity clues real stacks leave (CRM ids in Stripe
metadata and Segment traits, Zendesk ``external_id``, or only an email domain).
Everything is drawn from ``random.Random`` streams seeded per account, so the
same config gives the same bytes, and adding accounts does not change the
earlier ones. ``plans`` returns the ground truth the pipeline should reach;
a handful of planted malformed records exercise dead-lettering.

    python -m pipeline.sample --accounts 40 --seed 7 --out sample.jsonl
"""

from __future__ import annotations

import argparse
import math
import random
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from connectors.registry import parser_for
from schemas.events import RawRecord

UTC = timezone.utc

# ---- vocabulary ----------------------------------------------------------------------------
_FIRST = ("Northwind", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Acme", "Hooli", "Vandelay", "Soylent",
          "Cyberdyne", "Tyrell", "Wonka", "Pied Piper", "Massive", "Aperture", "Black Mesa", "Blue Sun", "Oscorp",
          "Monarch", "Gekko", "Dunder", "Prestige", "Sterling", "Bluth", "Nakatomi", "Rekall", "Virtucon", "Zorg",
          "Krusty", "Ollivander", "Duff", "Gringotts", "Spacely", "Cogswell", "Wernham", "Lacuna", "Yoyodyne")
_SUFFIX = ("Analytics", "Logistics", "Health", "Robotics", "Labs", "Systems", "Foods", "Energy", "Media", "Capital",
           "Works", "Studio", "Freight", "Bio", "Retail", "Security")
_TLDS = (".com", ".io", ".co", ".ai", ".com", ".com")
_PEOPLE_FIRST = ("Dana", "Priya", "Sam", "Alex", "Jordan", "Mei", "Omar", "Lena", "Tomas", "Aisha", "Noah", "Ines",
                 "Kenji", "Sara", "Marco", "Zoe", "Ravi", "Chloe", "Diego", "Hana")
_PEOPLE_LAST = ("Reyes", "Natarajan", "Okafor", "Kowalski", "Lindqvist", "Chen", "Haddad", "Moreau", "Silva",
                "Novak", "Tanaka", "Fischer", "Byrne", "Costa", "Ivanova", "Mensah")
_HS_OWNERS_SALES = ("588231", "601100", "640220")
_HS_OWNERS_CS = ("612004", "700310")
_SF_OWNERS_SALES = ("005Dn000003hT9aIAE", "005Dn000003hT9bIAE")
_SF_OWNERS_CS = ("005Dn000003hCsmIAE", "005Dn000003hCsnIAE")
_HS_OPEN_STAGES = ("appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "decisionmakerboughtin",
                   "contractsent")
_SF_OPEN_STAGES = ("Prospecting", "Qualification", "Needs Analysis", "Proposal/Price Quote", "Negotiation/Review")
_NOISE_TRACKS: tuple[tuple[str, dict[str, tuple[Any, ...]]], ...] = (
    ("Report Created", {"report_type": ("funnel", "retention", "cohort", "table")}),
    ("Dashboard Viewed", {"dashboard": ("overview", "revenue", "usage")}),
    ("Invite Sent", {"role": ("member", "admin", "viewer")}),
    ("Integration Connected", {"integration": ("slack", "salesforce", "snowflake", "bigquery")}),
    ("Export Downloaded", {"format": ("csv", "xlsx", "pdf")}),
    ("Alert Configured", {"channel": ("email", "slack")}),
    ("Comment Added", {"surface": ("report", "dashboard")}),
)
_NOISE_PAGES = ("Dashboard", "Reports", "Settings", "Billing", "Integrations", "Docs")
_TICKET_SUBJECTS = ("SSO login loops back to the sign-in page", "Export to CSV times out", "How do I add a seat?",
                    "Invoice shows the wrong VAT number", "Slack integration stopped posting",
                    "Dashboard numbers differ from our warehouse", "Can we get an audit log?",
                    "API rate limit questions", "Reset 2FA for a user")
_PROMISES = ("48 hours", "5 business days", "2 weeks", "30 days")
_SEAT_PRICE = {"enterprise": 150_000, "mid_market": 60_000, "self_serve": 4_900}  # minor units per seat & interval
_SEATS = {"enterprise": (20, 80), "mid_market": (5, 25), "self_serve": (1, 5)}

# Story → weight. ~30% convert to adoption or beyond, ~20% stall, ~15% churn.
_STORIES: tuple[tuple[str, int], ...] = (
    ("advocate", 7), ("renewal", 8), ("adoption", 15), ("onboarding", 6), ("won", 3),
    ("stall_mql", 10), ("stall_sql", 10), ("lost", 10),
    ("churn", 10), ("reengage", 6), ("self_serve", 10),
)
_RANK = {"MQL": 1, "SQL": 2, "closed-won": 3, "re-engaged": 3, "onboarding": 4, "adoption": 5, "renewal": 6,
         "advocate": 7}
_CHURNABLE = {"closed-won", "onboarding", "adoption", "renewal", "advocate", "re-engaged"}


@dataclass(frozen=True)
class SampleConfig:
    accounts: int = 40
    seed: int = 7
    start: datetime = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    months: int = 9
    product_events_per_week: int = 6  # noise volume per active account

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=round(self.months * 30.44))


@dataclass
class AccountPlan:
    """The ground truth of one generated account: who it is and which stages its story visits."""

    index: int
    account_key: str          # the CRM company/account id (namespaced); the Stripe customer for self-serve
    name: str
    domain: str
    segment: str
    crm: str | None           # hubspot | salesforce | None (self-serve)
    story: str
    linkage: str              # explicit: CRM ids in other systems; domain: only the email/web domain links it
    kickoff: str              # on_time | late | never | n/a
    path: list[str] = field(default_factory=list)
    identifiers: list[str] = field(default_factory=list)  # ids it was given; a stalled lead never uses Stripe's

    @property
    def final_stage(self) -> str | None:
        return self.path[-1] if self.path else None


# ---- time helpers ---------------------------------------------------------------------------
def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _s(t: datetime) -> int:
    return int(t.timestamp())


def _iso(t: datetime, millis: bool = True) -> str:
    text = t.astimezone(UTC).isoformat(timespec="milliseconds" if millis else "seconds")
    return text.replace("+00:00", "Z")


def _sf_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _add_bdays(t: datetime, days: float) -> datetime:
    """``days`` business days later (fractions stay on the last day): Saturdays and Sundays do not count."""
    whole, frac = int(days), days - int(days)
    while whole > 0:
        t += timedelta(days=1)
        if t.weekday() < 5:
            whole -= 1
    return t + timedelta(days=frac)


def _add_months(t: datetime, n: int) -> datetime:
    month = t.month - 1 + n
    year, month = t.year + month // 12, month % 12 + 1
    days = [31, 29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28, 31, 30, 31, 30, 31, 31, 30, 31,
            30, 31][month - 1]
    return t.replace(year=year, month=month, day=min(t.day, days))


# ---- one account's story ---------------------------------------------------------------------
class _Account:
    """Tells one account's story as vendor payloads, and keeps its plan in step."""

    def __init__(self, config: SampleConfig, index: int):
        self.config = config
        self.i = index
        self.rng = random.Random(f"lifecycle-sample:{config.seed}:{index}")
        self.end = config.end
        self.out: list[tuple[datetime, str, dict[str, Any], float]] = []  # time, vendor, payload, delivery delay
        self.milestones: list[tuple[datetime, str]] = []
        self.counter = 0
        self.cancelled_at: datetime | None = None
        self.silent_from: datetime | None = None

        rng = self.rng
        story = _story(config.seed, index)
        # Distinct names for the first len(_FIRST) × len(_SUFFIX) accounts (5·38+1 is coprime with 16).
        first, suffix = (index + config.seed) % len(_FIRST), (index * 5 + index // len(_FIRST) + config.seed)
        name = f"{_FIRST[first]} {_SUFFIX[suffix % len(_SUFFIX)]}"
        if index >= len(_FIRST) * len(_SUFFIX):
            name += f" {index // (len(_FIRST) * len(_SUFFIX)) + 1}"
        self.name = name
        self.domain = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") + rng.choice(_TLDS)
        self.self_serve = story == "self_serve"
        self.crm = None if self.self_serve else ("hubspot" if rng.random() < 0.7 else "salesforce")
        self.segment = "self_serve" if self.self_serve else rng.choices(
            ["enterprise", "mid_market", "self_serve"], [3, 5, 1])[0]
        self.linkage = "domain" if rng.random() < 0.12 else "explicit"
        self.story = story

        # Ids, unique per account index.
        self.hs_company = str(18_270_000_000 + index * 7_919)
        self.sf_account = self._sf_id("001", 1)
        self.customer = f"cus_{self._token(14)}"
        self.workspace = f"ws_{self._token(10).lower()}"
        self.zd_org = 360_000 + index
        self.people = [self._person(k) for k in range(rng.randint(2, 4))]
        self.crm_key = (f"hubspot.company:{self.hs_company}" if self.crm == "hubspot"
                        else f"salesforce.account:{self.sf_account}" if self.crm == "salesforce" else None)
        self.plan = AccountPlan(
            index=index, account_key=self.crm_key or f"stripe.customer:{self.customer}", name=name,
            domain=self.domain, segment=self.segment, crm=self.crm, story=story, linkage=self.linkage,
            kickoff="n/a")
        self.tickets = 0

    # ---- ids ----
    def _token(self, n: int) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _sf_id(self, prefix: str, k: int) -> str:
        n = self.i * 100_000 + k
        digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
        body = ""
        while n:
            n, r = divmod(n, 62)
            body = digits[r] + body
        return f"{prefix}Dn{body.rjust(10, '0')}IAR"

    def _next(self) -> int:
        self.counter += 1
        return self.counter

    def _person(self, k: int) -> dict[str, Any]:
        first, last = self.rng.choice(_PEOPLE_FIRST), self.rng.choice(_PEOPLE_LAST)
        free_mail = self.self_serve and k > 0 and self.rng.random() < 0.2
        email = f"{first.lower()}.{last.lower()}{self.i}@gmail.com" if free_mail else \
            f"{first.lower()}.{last.lower()}@{self.domain}"
        return {"first": first, "last": last, "email": email, "user_id": f"usr_{self.i:04d}{k:02d}{self._token(4)}",
                "anon": self._uuid(), "hs_contact": str(90_000_000 + self.i * 100 + k),
                "sf_lead": self._sf_id("00Q", 10 + k), "sf_contact": self._sf_id("003", 10 + k),
                "zd_user": 9_100_000 + self.i * 10 + k}

    # ---- emitting ----
    def emit(self, t: datetime, vendor: str, payload: dict[str, Any], delay: float = 2.0) -> bool:
        """Record a payload at event time ``t`` if the window still covers it."""
        if t >= self.end:
            return False
        self.out.append((t, vendor, payload, delay))
        return True

    def reach(self, t: datetime, stage: str) -> None:
        """A stage-relevant event was emitted at ``t``; the plan's path is computed from these."""
        if t < self.end:
            self.milestones.append((t, stage))

    def workday(self, t: datetime, earliest_hour: int = 9) -> datetime:
        """``t``'s date (or the next weekday) at a random office-hours time, not before ``t``."""
        day = t
        while day.weekday() >= 5:
            day = (day + timedelta(days=1)).replace(hour=0, minute=0)
        at = day.replace(hour=self.rng.randint(earliest_hour, 17), minute=self.rng.randint(0, 59),
                         second=self.rng.randint(0, 59), microsecond=0)
        return at if at > t else t + timedelta(minutes=self.rng.randint(5, 90))

    # =====================================================================================
    def tell(self) -> None:
        rng, cfg = self.rng, self.config
        window = (self.end - cfg.start).days
        long_story = self.story in ("advocate", "renewal", "reengage", "churn")
        # Companies and visits come up to two weeks before the first milestone: keep them in the window.
        t0 = self.workday(cfg.start + timedelta(days=14 + rng.uniform(0, window * (0.2 if long_story else 0.5))))
        if self.self_serve:
            self._self_serve(t0)
        else:
            self._crm_story(t0)
        self._support()
        self.plan.path = _path(self.milestones)
        self.plan.identifiers = self._identifiers()

    def _identifiers(self) -> list[str]:
        ids = [self.plan.account_key, f"domain:{self.domain}", f"segment.group:{self.workspace}",
               f"stripe.customer:{self.customer}", f"zendesk.organization:{self.zd_org}"]
        return list(dict.fromkeys(ids))

    # ---- CRM-led stories --------------------------------------------------------------
    def _crm_story(self, t0: datetime) -> None:
        rng, story = self.rng, self.story
        crm = _HubSpot(self) if self.crm == "hubspot" else _Salesforce(self)
        t_created = t0 - timedelta(days=rng.uniform(1, 12))
        crm.company(t_created)
        crm.lead(t_created + timedelta(hours=rng.uniform(1, 20)))
        t_mql = max(t0, t_created + timedelta(days=1))
        crm.mql(t_mql)
        self.reach(t_mql, "MQL")
        follow = t_mql + timedelta(hours=rng.uniform(2, 20) if rng.random() < 0.75 else rng.uniform(26, 96))
        crm.activity(follow, "intro call", "call")
        if story == "stall_mql":
            return
        t_sql = self.workday(t_mql + timedelta(days=rng.uniform(3, 21)))
        via_deal_only = rng.random() < 0.4
        if not via_deal_only:
            crm.sql(t_sql)
            self.reach(t_sql, "SQL")
        if story == "stall_sql" and rng.random() < 0.5:
            return
        t_deal = t_sql + timedelta(hours=rng.uniform(1, 96)) if not via_deal_only else t_sql
        deal = crm.deal(t_deal, renewal=False)
        self.reach(t_deal, "SQL")
        cycle = {"enterprise": (30, 70), "mid_market": (14, 45), "self_serve": (7, 20)}[self.segment]
        t = t_deal
        for stage_index in range(rng.randint(1, 3)):
            t = self.workday(t + timedelta(days=rng.uniform(2, cycle[0] / 2)))
            crm.deal_stage(deal, t, stage_index + 1)
        if story == "stall_sql":
            return
        t_close = self.workday(max(t, t_deal + timedelta(days=rng.uniform(*cycle))))
        if story == "lost":
            crm.deal_close(deal, t_close, won=False)
            self.reach(t_close, "MQL")
            if rng.random() < 0.5:
                crm.mql(self.workday(t_close + timedelta(days=rng.uniform(20, 60))), again=True)
            return
        if not crm.deal_close(deal, t_close, won=True):
            return
        self.reach(t_close, "closed-won")
        self._after_won(crm, t_close)

    def _after_won(self, crm: _Crm, t_won: datetime) -> None:
        rng, story = self.rng, self.story
        # Welcome within the hour for most; late or missing for some.
        roll = rng.random()
        if roll < 0.85:
            crm.activity(t_won + timedelta(minutes=rng.uniform(5, 50)), "welcome", "email")
        elif roll < 0.95:
            crm.activity(t_won + timedelta(hours=rng.uniform(2, 30)), "welcome", "email")
        crm.owner_handoff(t_won + timedelta(hours=rng.uniform(2, 48)))
        billing = _Stripe(self)
        interval = "year" if rng.random() < (0.4 if story in ("churn", "reengage") else 0.8) else "month"
        t_sub = t_won + timedelta(hours=rng.uniform(1, 40))
        billing.customer(t_sub)
        billing.subscribe(t_sub + timedelta(minutes=1), interval)
        self.reach(t_sub + timedelta(minutes=1), "closed-won")

        product = _Segment(self)
        product.start(t_won + timedelta(hours=rng.uniform(2, 60)))

        roll = rng.random()
        kickoff = "on_time" if roll < 0.7 else "late" if roll < 0.9 else "never"
        self.plan.kickoff = kickoff
        if story == "won":
            kickoff = self.plan.kickoff = "never"
        if kickoff != "never":
            t_kick = self.workday(_add_bdays(t_won, rng.uniform(1, 4) if kickoff == "on_time" else rng.uniform(6, 10)))
            crm.activity(t_kick, "kickoff", "meeting")
            self.reach(t_kick, "onboarding")
            t_onb = t_kick
        elif story != "won":
            t_onb = t_won + timedelta(days=rng.uniform(8, 20))
            product.track(t_onb, "Onboarding Started", {"checklist": "default"})
            self.reach(t_onb, "onboarding")
        else:
            t_onb = t_won
        t_next = t_onb
        if story in ("adoption", "renewal", "advocate") or (story in ("churn", "reengage") and rng.random() < 0.6):
            t_next = t_onb + timedelta(days=rng.uniform(10, 45))
            product.track(t_next, rng.choice(["Workspace Activated", "First Value Reached"]), {"days_since_signup": 0})
            self.reach(t_next, "adoption")
        if story in ("renewal", "advocate") and (story == "renewal" or rng.random() < 0.5):
            t_renewal_talk = t_next + timedelta(days=rng.uniform(20, 40))
            crm.activity(t_renewal_talk, "renewal", "meeting")
            renewal = crm.deal(t_renewal_talk + timedelta(days=rng.uniform(1, 5)), renewal=True)
            t_next = self.workday(t_renewal_talk + timedelta(days=rng.uniform(10, 30)))
            if crm.deal_close(renewal, t_next, won=True):
                self.reach(t_next, "renewal")
        if story == "advocate":
            t_adv = t_next + timedelta(days=rng.uniform(10, 40))
            if rng.random() < 0.5:
                product.track(t_adv, rng.choice(["Referral Sent", "Review Submitted"]), {"channel": "in_app"})
            else:
                crm.activity(t_adv, rng.choice(["referral", "case_study", "review"]), "meeting")
            self.reach(t_adv, "advocate")
        if story in ("churn", "reengage"):
            t_churn = t_next + timedelta(days=rng.uniform(30, 80))
            self.silent_from = t_churn - timedelta(days=rng.uniform(20, 40))
            if billing.cancel(t_churn):
                self.reach(t_churn, "churned")
            if story == "reengage":
                t_back = t_churn + timedelta(days=rng.uniform(25, 60))
                self.cancelled_at = None
                product.resume(t_back)
                if billing.subscribe(t_back, "month"):
                    self.reach(t_back, "re-engaged")
                if rng.random() < 0.5:
                    t_act = t_back + timedelta(days=rng.uniform(5, 25))
                    product.track(t_act, "Workspace Activated", {"days_since_signup": 0, "returning": True})
                    self.reach(t_act, "adoption")
        if rng.random() < 0.5 and self.cancelled_at is None:
            crm.activity(t_next + timedelta(days=rng.uniform(60, 100)), "qbr", "meeting")
        product.noise()
        billing.cycles()

    # ---- self-serve -------------------------------------------------------------------
    def _self_serve(self, t0: datetime) -> None:
        rng = self.rng
        product = _Segment(self)
        billing = _Stripe(self)
        product.start(t0)
        t_sub = t0 + timedelta(hours=rng.uniform(2, 72))
        billing.customer(t_sub)
        billing.subscribe(t_sub + timedelta(minutes=1), "month")
        self.reach(t_sub + timedelta(minutes=1), "closed-won")
        t_onb = t_sub + timedelta(hours=rng.uniform(1, 48))
        product.track(t_onb, "Onboarding Started", {"checklist": "self_serve"})
        self.reach(t_onb, "onboarding")
        if rng.random() < 0.75:
            t_act = t_onb + timedelta(days=rng.uniform(1, 20))
            product.track(t_act, "Workspace Activated", {"days_since_signup": (t_act - t0).days})
            self.reach(t_act, "adoption")
            t_onb = t_act
        if rng.random() < 0.3:
            t_churn = t_onb + timedelta(days=rng.uniform(30, 90))
            self.silent_from = t_churn - timedelta(days=rng.uniform(14, 30))
            if billing.cancel(t_churn):
                self.reach(t_churn, "churned")
        product.noise()
        billing.cycles()

    # ---- support ----------------------------------------------------------------------
    def _support(self) -> None:
        if not self.out:
            return
        customer_since = self._customer_since()
        if customer_since is None:
            return
        zendesk = _Zendesk(self)
        t = customer_since + timedelta(days=self.rng.uniform(2, 20))
        stop = self.cancelled_at or self.end
        while t < stop:
            zendesk.ticket(t)
            t += timedelta(days=self.rng.expovariate(1 / 30))

    def _customer_since(self) -> datetime | None:
        won = [t for t, s in self.milestones if s == "closed-won"]
        return min(won) if won else None


class _Crm:
    """What the story asks of a CRM; HubSpot and Salesforce answer in their own shapes."""

    def __init__(self, account: _Account):
        self.a = account
        self.rng = account.rng

    def company(self, t: datetime) -> None: ...
    def lead(self, t: datetime) -> None: ...
    def mql(self, t: datetime, again: bool = False) -> None: ...
    def sql(self, t: datetime) -> None: ...
    def deal(self, t: datetime, renewal: bool) -> dict[str, Any]: ...
    def deal_stage(self, deal: dict[str, Any], t: datetime, step: int) -> None: ...
    def deal_close(self, deal: dict[str, Any], t: datetime, won: bool) -> bool: ...
    def activity(self, t: datetime, purpose: str, medium: str) -> None: ...
    def owner_handoff(self, t: datetime) -> None: ...

    def _title(self, purpose: str) -> str:
        name = self.a.name
        return {
            "intro call": f"Intro call with {name}",
            "welcome": f"Welcome to Example, {name}! Your next steps",
            "kickoff": self.rng.choice([f"Kickoff: {name} x Example", f"{name} kick-off call",
                                        f"{name} onboarding kickoff"]),
            "renewal": f"{name} renewal planning",
            "qbr": f"{name} quarterly business review",
            "referral": f"Referral intro from {name}",
            "case_study": f"Case study interview: {name}",
            "review": f"{name} G2 review request",
        }[purpose]


class _HubSpot(_Crm):
    PORTAL, APP = 44_120_987, 3_391_204
    SUBSCRIPTIONS = {"company.propertyChange": 2_481_937, "contact.propertyChange": 2_481_940,
                     "contact.creation": 2_481_945, "deal.propertyChange": 2_481_952,
                     "contact.associationChange": 2_481_961}

    def __init__(self, account: _Account):
        super().__init__(account)
        self.owner = self.rng.choice(_HS_OWNERS_SALES)
        self.contacts = account.people[: self.rng.randint(1, 2)]
        self.deals = 0

    def _webhook(self, t: datetime, subscription: str, **fields: Any) -> None:
        a = self.a
        payload = {"eventId": 1_800_000_000 + a.i * 100_000 + a._next(),
                   "subscriptionId": self.SUBSCRIPTIONS[subscription], "portalId": self.PORTAL, "appId": self.APP,
                   "occurredAt": _ms(t), "subscriptionType": subscription, "attemptNumber": 0, **fields}
        a.emit(t, "hubspot", payload, delay=self.rng.uniform(1, 30))

    def _object(self, t: datetime, obj_id: str, props: dict[str, Any], created: datetime,
                associations: dict[str, list[tuple[str, str]]] | None = None) -> dict[str, Any]:
        """A CRM v3 object as the poller fetches it at ``t``."""
        payload: dict[str, Any] = {"id": obj_id, "properties": {**props, "hs_object_id": obj_id},
                                   "createdAt": _iso(created), "updatedAt": _iso(t), "archived": False}
        if associations:
            payload["associations"] = {kind: {"results": [{"id": i, "type": typ} for i, typ in ids]}
                                       for kind, ids in associations.items()}
        return payload

    def company(self, t: datetime) -> None:
        a = self.a
        props = {"name": a.name, "domain": a.domain, "createdate": _iso(t), "hubspot_owner_id": self.owner,
                 "industry": self.rng.choice(["COMPUTER_SOFTWARE", "LOGISTICS_AND_SUPPLY_CHAIN", "HOSPITAL_HEALTH_CARE",
                                               "FINANCIAL_SERVICES", "RETAIL"])}
        a.emit(t, "hubspot", self._object(t, a.hs_company, props, t), delay=300)

    def lead(self, t: datetime) -> None:
        a = self.a
        for k, person in enumerate(self.contacts):
            created = t + timedelta(minutes=17 * k)
            self._webhook(created, "contact.creation", objectId=int(person["hs_contact"]), changeSource="FORM")
            props = {"email": person["email"], "firstname": person["first"], "lastname": person["last"],
                     "createdate": _iso(created), "lifecyclestage": "lead", "associatedcompanyid": a.hs_company}
            a.emit(created, "hubspot", self._object(created, person["hs_contact"], props, created,
                                                    {"companies": [(a.hs_company, "contact_to_company")]}),
                   delay=self.rng.uniform(120, 600))
            self._webhook(created + timedelta(hours=2), "contact.propertyChange", objectId=int(person["hs_contact"]),
                          changeSource="CRM_UI", propertyName="hs_lead_status", propertyValue="OPEN")

    def mql(self, t: datetime, again: bool = False) -> None:
        if again or self.rng.random() < 0.6:
            self._webhook(t, "company.propertyChange", objectId=int(self.a.hs_company),
                          changeSource="AUTOMATION_PLATFORM", propertyName="lifecyclestage",
                          propertyValue="marketingqualifiedlead")
        else:
            self._webhook(t, "contact.propertyChange", objectId=int(self.contacts[0]["hs_contact"]),
                          changeSource="AUTOMATION_PLATFORM", propertyName="lifecyclestage",
                          propertyValue="marketingqualifiedlead")

    def sql(self, t: datetime) -> None:
        self._webhook(t, "contact.propertyChange", objectId=int(self.contacts[0]["hs_contact"]),
                      changeSource="CRM_UI", propertyName="hs_lead_status", propertyValue="CONNECTED")
        self._webhook(t + timedelta(seconds=30), "company.propertyChange", objectId=int(self.a.hs_company),
                      changeSource="CRM_UI", propertyName="lifecyclestage", propertyValue="salesqualifiedlead")

    def deal(self, t: datetime, renewal: bool) -> dict[str, Any]:
        a = self.a
        self.deals += 1
        deal_id = str(30_210_000_000 + a.i * 100 + self.deals)
        seats = self.rng.randint(*_SEATS[a.segment])
        props: dict[str, Any] = {
            "dealname": f"{a.name} - {'Renewal' if renewal else 'New business'}",
            "dealstage": _HS_OPEN_STAGES[0], "pipeline": "default", "createdate": _iso(t),
            "amount": str(seats * _SEAT_PRICE[a.segment] // 100), "deal_currency_code": "USD",
            "deal_type": "renewal" if renewal else "newbusiness", "segment": a.segment,
            "hubspot_owner_id": self.owner, "hs_is_closed": "false", "hs_is_closed_won": "false",
        }
        if not renewal and self.rng.random() < 0.5:
            props["promised_time_to_value"] = self.rng.choice(_PROMISES)
        deal = {"id": deal_id, "props": props, "created": t,
                "assoc": {"companies": [(a.hs_company, "deal_to_company")],
                          "contacts": [(self.contacts[0]["hs_contact"], "deal_to_contact")]}}
        a.emit(t, "hubspot", self._object(t, deal_id, props, t, deal["assoc"]), delay=180)
        return deal

    def deal_stage(self, deal: dict[str, Any], t: datetime, step: int) -> None:
        stage = _HS_OPEN_STAGES[min(step, len(_HS_OPEN_STAGES) - 1)]
        deal["props"]["dealstage"] = stage
        self._webhook(t, "deal.propertyChange", objectId=int(deal["id"]), changeSource="CRM_UI",
                      propertyName="dealstage", propertyValue=stage)

    def deal_close(self, deal: dict[str, Any], t: datetime, won: bool) -> bool:
        props = dict(deal["props"], dealstage="closedwon" if won else "closedlost", closedate=_iso(t),
                     hs_is_closed="true", hs_is_closed_won="true" if won else "false")
        if not won:
            props["closed_lost_reason"] = self.rng.choice(["Chose a competitor", "No budget", "No decision",
                                                           "Timing"])
        polled = t + timedelta(minutes=self.rng.uniform(1, 10))
        return self.a.emit(t, "hubspot", self._object(polled, deal["id"], props, deal["created"], deal["assoc"]),
                           delay=(polled - t).total_seconds())

    def activity(self, t: datetime, purpose: str, medium: str) -> None:
        a = self.a
        obj_id = str(61_000_000_000 + a.i * 100_000 + a._next())
        owner = self.owner if purpose == "intro call" else self.rng.choice(_HS_OWNERS_CS)
        assoc = {"companies": [(a.hs_company, f"{medium}_to_company")]}
        title = self._title(purpose)
        if medium == "email":
            props = {"hs_email_subject": title, "hs_email_direction": "EMAIL", "hs_timestamp": _iso(t),
                     "hubspot_owner_id": owner}
        elif medium == "call":
            props = {"hs_call_title": title, "hs_call_direction": "OUTBOUND", "hs_call_disposition": "connected",
                     "hs_timestamp": _iso(t), "hubspot_owner_id": owner}
        else:
            kind = {"kickoff": "Kickoff", "qbr": "QBR", "renewal": "Renewal", "case_study": "Case Study",
                    "referral": "Referral", "review": "Review"}.get(purpose)
            props = {"hs_meeting_title": title, "hs_meeting_start_time": _iso(t),
                     "hs_meeting_end_time": _iso(t + timedelta(hours=1)), "hs_meeting_outcome": "COMPLETED",
                     "hs_timestamp": _iso(t), "hubspot_owner_id": owner}
            if kind and self.rng.random() < 0.6:
                props["hs_activity_type"] = kind
        logged = t + timedelta(minutes=self.rng.uniform(5, 120))
        a.emit(t, "hubspot", self._object(logged, obj_id, props, logged, assoc), delay=(logged - t).total_seconds())

    def owner_handoff(self, t: datetime) -> None:
        self._webhook(t, "company.propertyChange", objectId=int(self.a.hs_company), changeSource="CRM_UI",
                      propertyName="hubspot_owner_id", propertyValue=self.rng.choice(_HS_OWNERS_CS))


class _Salesforce(_Crm):
    SCHEMA = {"Lead": "IeRuaY6cbI_HsV8Rv1Mc5g", "Account": "Fy3mU0r2a8cvvTg2mZ3D5A",
              "Contact": "q1b0gpC1iL2x9Uo5cW1kKQ", "Opportunity": "3gyG7dUdbJqGmVbC6VWjpQ"}

    def __init__(self, account: _Account):
        super().__init__(account)
        self.owner = self.rng.choice(_SF_OWNERS_SALES)
        self.lead_person = account.people[0]
        self.opps = 0

    def _cdc(self, t: datetime, entity: str, record_id: str, change: str, fields: dict[str, Any],
             changed: list[str] | None = None) -> bool:
        a = self.a
        n = a._next()
        header = {"entityName": entity, "recordIds": [record_id], "changeType": change,
                  "changeOrigin": "com/salesforce/api/soap/59.0;client=SfdcInternalAPI/",
                  "transactionKey": str(uuid.UUID(int=a.rng.getrandbits(128), version=4)), "sequenceNumber": 1,
                  "commitTimestamp": _ms(t), "commitNumber": 11_744_318_000_000 + a.i * 100_000 + n,
                  "commitUser": self.owner, "changedFields": changed or [], "diffFields": [], "nulledFields": []}
        payload = {"schema": self.SCHEMA[entity], "payload": {"ChangeEventHeader": header, **fields},
                   "event": {"replayId": 18_000_000 + a.i * 100_000 + n}}
        return a.emit(t, "salesforce", payload, delay=self.rng.uniform(1, 20))

    def company(self, t: datetime) -> None:
        a = self.a
        fields = {"Name": a.name, "Website": f"https://www.{a.domain}", "Industry": "Technology",
                  "Segment__c": {"enterprise": "Enterprise", "mid_market": "Mid-Market",
                                 "self_serve": "Self-Serve"}[a.segment],
                  "OwnerId": self.owner, "CreatedDate": _sf_time(t), "LastModifiedDate": _sf_time(t)}
        self._cdc(t, "Account", a.sf_account, "CREATE", fields)

    def lead(self, t: datetime) -> None:
        p = self.lead_person
        fields = {"Name": {"Salutation": None, "FirstName": p["first"], "LastName": p["last"]},
                  "Company": self.a.name, "Email": p["email"], "Status": "Open - Not Contacted",
                  "LeadSource": self.rng.choice(["Webinar", "Web", "Partner Referral", "Trade Show"]),
                  "OwnerId": self.owner, "IsConverted": False, "CreatedDate": _sf_time(t),
                  "LastModifiedDate": _sf_time(t)}
        self._cdc(t, "Lead", p["sf_lead"], "CREATE", fields)

    def _status(self, t: datetime, status: str) -> None:
        self._cdc(t, "Lead", self.lead_person["sf_lead"], "UPDATE",
                  {"Status": status, "LastModifiedDate": _sf_time(t)}, ["Status", "LastModifiedDate"])

    def mql(self, t: datetime, again: bool = False) -> None:
        self._status(t, self.rng.choice(["Marketing Qualified", "MQL"]))

    def sql(self, t: datetime) -> None:
        self._status(t, "Sales Qualified")

    def deal(self, t: datetime, renewal: bool) -> dict[str, Any]:
        a = self.a
        self.opps += 1
        opp_id = a._sf_id("006", 100 + self.opps)
        if not renewal and self.opps == 1:
            # Converting the lead into the existing account creates the contact and the opportunity.
            p = self.lead_person
            fields = {"Status": "Closed - Converted", "IsConverted": True, "ConvertedDate": t.date().isoformat(),
                      "ConvertedAccountId": a.sf_account, "ConvertedContactId": p["sf_contact"],
                      "ConvertedOpportunityId": opp_id, "LastModifiedDate": _sf_time(t)}
            self._cdc(t, "Lead", p["sf_lead"], "UPDATE", fields, [*fields])
            self._cdc(t, "Contact", p["sf_contact"], "CREATE", {
                "Name": {"Salutation": None, "FirstName": p["first"], "LastName": p["last"]},
                "Email": p["email"], "AccountId": a.sf_account, "OwnerId": self.owner, "CreatedDate": _sf_time(t)})
        seats = self.rng.randint(*_SEATS[a.segment])
        fields = {"AccountId": a.sf_account, "Name": f"{a.name} - {'Renewal' if renewal else 'New Customer'}",
                  "StageName": _SF_OPEN_STAGES[0], "Amount": float(seats * _SEAT_PRICE[a.segment] // 100),
                  "CurrencyIsoCode": "USD", "CloseDate": (t + timedelta(days=45)).date().isoformat(),
                  "Type": "Renewal" if renewal else "New Customer",
                  "Segment__c": {"enterprise": "Enterprise", "mid_market": "Mid-Market",
                                 "self_serve": "Self-Serve"}[a.segment],
                  "IsClosed": False, "IsWon": False, "Probability": 10, "OwnerId": self.owner,
                  "CreatedDate": _sf_time(t)}
        if not renewal and self.rng.random() < 0.5:
            fields["Promised_Time_To_Value__c"] = self.rng.choice(_PROMISES)
        if renewal:
            # Renewals are created by a CS ops job and read back by the poller: CDC updates
            # carry only changed fields, and the close must say it is a renewal.
            deal = {"id": opp_id, "fields": fields, "created": t}
            self._record(t, "Opportunity", opp_id, fields, t)
            return deal
        self._cdc(t + timedelta(seconds=1), "Opportunity", opp_id, "CREATE", fields)
        return {"id": opp_id}

    def _record(self, t: datetime, entity: str, record_id: str, fields: dict[str, Any], created: datetime) -> None:
        """An sObject record as a SOQL poll returns it, modified at ``t``."""
        record = {"attributes": {"type": entity, "url": f"/services/data/v59.0/sobjects/{entity}/{record_id}"},
                  "Id": record_id, **fields, "CreatedDate": _sf_time(created), "LastModifiedDate": _sf_time(t),
                  "SystemModstamp": _sf_time(t)}
        self.a.emit(t, "salesforce", record, delay=self.rng.uniform(60, 900))

    def deal_stage(self, deal: dict[str, Any], t: datetime, step: int) -> None:
        stage = _SF_OPEN_STAGES[min(step, len(_SF_OPEN_STAGES) - 1)]
        self._cdc(t, "Opportunity", deal["id"], "UPDATE",
                  {"StageName": stage, "Probability": 10 + 20 * step, "LastModifiedDate": _sf_time(t)},
                  ["StageName", "Probability", "LastModifiedDate"])

    def deal_close(self, deal: dict[str, Any], t: datetime, won: bool) -> bool:
        if "fields" in deal:
            if t >= self.a.end:
                return False
            self._record(t, "Opportunity", deal["id"], {**deal["fields"], "StageName": "Closed Won" if won else
                                                        "Closed Lost", "IsClosed": True, "IsWon": won,
                                                        "Probability": 100 if won else 0}, deal["created"])
            return True
        fields: dict[str, Any] = {"StageName": "Closed Won" if won else "Closed Lost", "IsClosed": True,
                                  "Probability": 100 if won else 0, "LastModifiedDate": _sf_time(t)}
        changed = ["StageName", "IsClosed", "Probability", "LastModifiedDate"]
        if won:
            fields["IsWon"] = True
            changed.insert(2, "IsWon")
        else:
            fields["Loss_Reason__c"] = self.rng.choice(["Price", "Competitor", "No Decision"])
            changed.append("Loss_Reason__c")
        return self._cdc(t, "Opportunity", deal["id"], "UPDATE", fields, changed)

    def activity(self, t: datetime, purpose: str, medium: str) -> None:
        a = self.a
        n = a._next()
        owner = self.owner if purpose == "intro call" else self.rng.choice(_SF_OWNERS_CS)
        subject = self._title(purpose)
        who = self.lead_person["sf_lead"] if purpose == "intro call" else self.lead_person["sf_contact"]
        common: dict[str, Any] = {"Subject": subject, "OwnerId": owner, "WhoId": who}
        if purpose != "intro call":
            common.update(AccountId=a.sf_account, WhatId=a.sf_account)
        if medium == "meeting":
            self._record(t, "Event", a._sf_id("00U", 1_000 + n), {
                "Type": "Meeting", "StartDateTime": _sf_time(t), "EndDateTime": _sf_time(t + timedelta(hours=1)),
                "ActivityDateTime": _sf_time(t), **common}, t)
        else:
            self._record(t, "Task", a._sf_id("00T", 1_000 + n), {
                "TaskSubtype": "Email" if medium == "email" else "Call", "Status": "Completed",
                "ActivityDate": t.date().isoformat(), "CompletedDateTime": _sf_time(t), **common}, t)

    def owner_handoff(self, t: datetime) -> None:
        self._cdc(t, "Account", self.a.sf_account, "UPDATE",
                  {"OwnerId": self.rng.choice(_SF_OWNERS_CS), "LastModifiedDate": _sf_time(t)},
                  ["OwnerId", "LastModifiedDate"])


class _Stripe:
    API = "2024-06-20"

    def __init__(self, account: _Account):
        self.a = account
        self.rng = account.rng
        self.subscription: dict[str, Any] | None = None
        self.subscriptions: list[dict[str, Any]] = []

    def _event(self, t: datetime, kind: str, obj: dict[str, Any], previous: dict[str, Any] | None = None) -> bool:
        data: dict[str, Any] = {"object": obj}
        if previous is not None:
            data["previous_attributes"] = previous
        payload = {"id": f"evt_1{self.a._token(23)}", "object": "event", "api_version": self.API, "created": _s(t),
                   "livemode": True, "pending_webhooks": 1,
                   "request": {"id": f"req_{self.a._token(14)}", "idempotency_key": None}, "type": kind, "data": data}
        return self.a.emit(t, "stripe", payload, delay=self.rng.uniform(1, 5))

    def customer(self, t: datetime) -> None:
        a = self.a
        metadata: dict[str, str] = {}
        if a.linkage == "explicit" and a.crm and self.rng.random() < 0.9:
            metadata = {"hubspot_company_id": a.hs_company} if a.crm == "hubspot" else {
                "salesforce_account_id": a.sf_account}
        obj = {"id": a.customer, "object": "customer", "address": None, "balance": 0, "created": _s(t),
               "currency": None, "delinquent": False, "description": a.name, "email": f"billing@{a.domain}",
               "invoice_prefix": a._token(8).upper(), "livemode": True, "metadata": metadata, "name": a.name,
               "preferred_locales": [], "tax_exempt": "none"}
        self._event(t, "customer.created", obj)

    def _sub_object(self, sub: dict[str, Any], start: datetime, end: datetime, status: str,
                    quantity: int) -> dict[str, Any]:
        price = sub["price"]
        return {"id": sub["id"], "object": "subscription", "billing_cycle_anchor": _s(sub["anchor"]),
                "cancel_at_period_end": False, "canceled_at": None,
                "cancellation_details": {"comment": None, "feedback": None, "reason": None},
                "collection_method": "charge_automatically", "created": _s(sub["anchor"]), "currency": "usd",
                "current_period_start": _s(start), "current_period_end": _s(end), "customer": self.a.customer,
                "items": {"object": "list", "data": [
                    {"id": sub["item"], "object": "subscription_item", "price": price, "quantity": quantity,
                     "subscription": sub["id"]}], "has_more": False, "total_count": 1},
                "livemode": True, "metadata": {}, "plan": {"id": price["id"], "object": "plan",
                                                           "amount": price["unit_amount"], "currency": "usd",
                                                           "interval": price["recurring"]["interval"]},
                "quantity": quantity, "start_date": _s(sub["anchor"]), "status": status}

    def _period_end(self, sub: dict[str, Any], start: datetime) -> datetime:
        return _add_months(start, 12 if sub["interval"] == "year" else 1)

    def subscribe(self, t: datetime, interval: str) -> bool:
        a = self.a
        seats = self.rng.randint(*_SEATS[a.segment])
        unit = _SEAT_PRICE[a.segment] if interval == "year" else max(_SEAT_PRICE[a.segment] // 10, 900)
        price_id = f"price_{a.segment}_{interval}ly"
        sub = {"id": f"sub_1{a._token(20)}", "item": f"si_{a._token(14)}", "anchor": t, "interval": interval,
               "seats": seats, "period_start": t,
               "price": {"id": price_id, "object": "price", "active": True, "currency": "usd",
                         "product": f"prod_{a.segment}", "type": "recurring", "unit_amount": unit,
                         "recurring": {"interval": interval, "interval_count": 1, "usage_type": "licensed"}}}
        end = self._period_end(sub, t)
        if not self._event(t, "customer.subscription.created", self._sub_object(sub, t, end, "active", seats)):
            return False
        self.subscription = sub
        self.subscriptions.append(sub)
        self._invoice(t + timedelta(minutes=2), sub, t, end, "subscription_create")
        return True

    def _invoice(self, t: datetime, sub: dict[str, Any], start: datetime, end: datetime, reason: str,
                 failed: bool = False) -> None:
        a = self.a
        amount = sub["price"]["unit_amount"] * sub["seats"]
        obj = {"id": f"in_1{a._token(20)}", "object": "invoice", "account_country": "US",
               "amount_due": amount, "amount_paid": 0 if failed else amount,
               "amount_remaining": amount if failed else 0, "attempt_count": 2 if failed else 1,
               "billing_reason": reason, "collection_method": "charge_automatically", "currency": "usd",
               "customer": a.customer, "customer_email": f"billing@{a.domain}", "customer_name": a.name,
               "lines": {"object": "list", "has_more": False, "data": [
                   {"id": f"il_{a._token(14)}", "object": "line_item", "amount": amount, "currency": "usd",
                    "period": {"start": _s(start), "end": _s(end)}, "price": sub["price"],
                    "plan": {"id": sub["price"]["id"], "object": "plan", "amount": sub["price"]["unit_amount"],
                             "interval": sub["interval"]},
                    "quantity": sub["seats"], "type": "subscription"}]},
               "livemode": True, "paid": not failed, "period_start": _s(start), "period_end": _s(start),
               "status": "open" if failed else "paid", "subscription": sub["id"]}
        self._event(t, "invoice.payment_failed" if failed else "invoice.paid", obj)

    def cycles(self) -> None:
        """Renewals of every billing period until cancellation or the window's end."""
        for sub in self.subscriptions:
            start = sub["anchor"]
            while True:
                nxt = self._period_end(sub, start)
                if nxt >= self.a.end or (sub.get("canceled") and nxt >= sub["canceled"]):
                    break
                end = self._period_end(sub, nxt)
                prev = {"current_period_start": _s(start), "current_period_end": _s(nxt),
                        "latest_invoice": f"in_1{self.a._token(20)}"}
                if self.rng.random() < 0.12 and sub["interval"] == "month":
                    before = sub["seats"]
                    sub["seats"] += self.rng.randint(1, 4)
                    prev = {"items": {"object": "list", "data": [
                        {"id": sub["item"], "object": "subscription_item", "price": sub["price"],
                         "quantity": before}]}, "quantity": before}
                self._event(nxt, "customer.subscription.updated",
                            self._sub_object(sub, nxt, end, "active", sub["seats"]), prev)
                if self.rng.random() < 0.08:
                    self._invoice(nxt + timedelta(minutes=5), sub, nxt, end, "subscription_cycle", failed=True)
                    self._invoice(nxt + timedelta(days=self.rng.uniform(1, 4)), sub, nxt, end, "subscription_cycle")
                else:
                    self._invoice(nxt + timedelta(minutes=5), sub, nxt, end, "subscription_cycle")
                if sub["interval"] == "year":
                    self.a.reach(nxt + timedelta(minutes=5), "renewal")
                start = nxt

    def cancel(self, t: datetime) -> bool:
        sub = self.subscription
        if sub is None:
            return False
        start = sub["anchor"]
        while self._period_end(sub, start) <= t:
            start = self._period_end(sub, start)
        obj = self._sub_object(sub, start, self._period_end(sub, start), "canceled", sub["seats"])
        obj.update(canceled_at=_s(t), ended_at=_s(t), cancellation_details={
            "comment": None, "feedback": self.rng.choice(["too_expensive", "unused", "switched_service", "other"]),
            "reason": "cancellation_requested"})
        if not self._event(t, "customer.subscription.deleted", obj):
            return False
        sub["canceled"] = t
        self.a.cancelled_at = t
        self.subscription = None
        return True


class _Segment:
    def __init__(self, account: _Account):
        self.a = account
        self.rng = account.rng
        self.active_from: datetime | None = None
        self.resumed: datetime | None = None
        self.members: list[dict[str, Any]] = []

    def _call(self, t: datetime, call: str, user: dict[str, Any] | None, server: bool = False,
              **fields: Any) -> None:
        a = self.a
        payload: dict[str, Any] = {"type": call}
        if server:
            payload["messageId"] = f"node-{a._uuid()}"
            payload["context"] = {"library": {"name": "analytics-node", "version": "2.1.2"}}
        else:
            payload["messageId"] = f"ajs-next-{_ms(t)}-{a._uuid()}"
            payload["anonymousId"] = user["anon"] if user else a._uuid()
            payload["context"] = {"library": {"name": "analytics.js", "version": "npm:next-1.70.0"},
                                  "locale": "en-US", "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4)"}
        if user:
            payload["userId"] = user["user_id"]
        payload["context"].update(fields.pop("context", {}))
        payload.update(fields)
        payload.update(timestamp=_iso(t), sentAt=_iso(t + timedelta(milliseconds=120)),
                       receivedAt=_iso(t + timedelta(milliseconds=900)), integrations={})
        a.emit(t, "segment", payload, delay=1.0)

    def _join(self, t: datetime, user: dict[str, Any]) -> None:
        a = self.a
        self._call(t, "identify", user, traits={"email": user["email"], "name": f"{user['first']} {user['last']}",
                                                "created_at": _iso(t, millis=False)})
        traits: dict[str, Any] = {"name": a.name, "website": f"https://{a.domain}", "plan": a.segment}
        if a.crm and a.linkage == "explicit" and self.rng.random() < 0.85:
            traits["crm_company_id"] = a.hs_company if a.crm == "hubspot" else a.sf_account
        self._call(t + timedelta(seconds=2), "group", user, server=True, groupId=a.workspace, traits=traits)
        self.members.append(user)

    def start(self, t: datetime) -> None:
        """Sign-up: marketing-site visits as an anonymous visitor, then the workspace and its admin."""
        a = self.a
        admin = a.people[0]
        for k in range(self.rng.randint(1, 3)):
            visit = t - timedelta(days=self.rng.uniform(0.5, 6), minutes=k)
            self._call(visit, "page", None, name=self.rng.choice(["Pricing", "Home", "Customers"]),
                       anonymousId=admin["anon"], properties={"path": "/pricing"})
        self._join(t, admin)
        for k, user in enumerate(a.people[1:], start=1):
            self._join(t + timedelta(days=self.rng.uniform(1, 14) * k), user)
        self.active_from = t

    def resume(self, t: datetime) -> None:
        self.resumed = t

    def track(self, t: datetime, event: str, properties: dict[str, Any]) -> None:
        user = self.rng.choice(self.members or self.a.people[:1])
        self._call(t, "track", user, event=event, properties=properties, context={"groupId": self.a.workspace})

    def noise(self) -> None:
        """Day-to-day usage: weekly bursts of tracks and page views, silent before a churn."""
        a, rng = self.a, self.rng
        if self.active_from is None:
            return

        def quiet(t: datetime) -> bool:
            return a.silent_from is not None and t >= a.silent_from and not (self.resumed and t >= self.resumed)

        rate = a.config.product_events_per_week
        week = self.active_from
        while week < a.end and rate > 0:
            for _ in range(_poisson(rng, rate)):
                t = (week + timedelta(days=rng.uniform(0, 7))).replace(hour=rng.randint(8, 19))
                if t < week or t >= a.end or quiet(t):
                    continue
                user = rng.choice(self.members or a.people[:1])
                context = {"groupId": a.workspace} if rng.random() < 0.8 else {}
                if rng.random() < 0.25:
                    self._call(t, "page", user, name=rng.choice(_NOISE_PAGES), properties={}, context=context)
                    continue
                event, props = rng.choice(_NOISE_TRACKS)
                self._call(t, "track", user, event=event,
                           properties={k: rng.choice(v) for k, v in props.items()}, context=context)
            week += timedelta(days=7)


class _Zendesk:
    def __init__(self, account: _Account):
        self.a = account
        self.rng = account.rng

    def _ticket(self, ticket_id: int, t_created: datetime, t: datetime, status: str, priority: str,
                subject: str, requester: dict[str, Any]) -> dict[str, Any]:
        a = self.a
        external = a.crm_key.split(":", 1)[1] if a.crm_key and a.linkage == "explicit" and a.i % 2 == 0 else ""
        return {"id": str(ticket_id), "url": f"https://example.zendesk.com/agent/tickets/{ticket_id}",
                "subject": subject, "status": status, "priority": priority, "via": "email",
                "created_at": _iso(t_created, millis=False), "updated_at": _iso(t, millis=False),
                "organization_id": str(a.zd_org),
                "organization": {"id": str(a.zd_org), "name": a.name, "external_id": external},
                "requester": {"id": str(requester["zd_user"]), "name": f"{requester['first']} {requester['last']}",
                              "email": requester["email"]}}

    def _audit(self, t: datetime, ticket_id: int, updater: int, children: list[dict[str, Any]]) -> None:
        a = self.a
        audit_id = 26_130_000_000 + a.i * 100_000 + a._next()
        for k, child in enumerate(children):
            child.setdefault("id", audit_id * 10 + k)
            child.setdefault("via", "Web form")
            child.setdefault("via_reference_id", None)
        a.emit(t, "zendesk", {"id": audit_id, "ticket_id": ticket_id, "timestamp": _s(t),
                              "created_at": _iso(t, millis=False), "updater_id": updater, "via": "Web form",
                              "event_type": "Audit", "child_events": children}, delay=self.rng.uniform(60, 600))

    def ticket(self, t: datetime) -> None:
        a, rng = self.a, self.rng
        a.tickets += 1
        ticket_id = 48_000 + a.i * 100 + a.tickets
        requester = a.people[0] if a.tickets == 1 else rng.choice(a.people)  # the first: the admin, on company email
        subject, priority = rng.choice(_TICKET_SUBJECTS), rng.choice(["low", "normal", "normal", "high", "urgent"])
        agent = 7_700_001 + rng.randint(0, 5)
        # The first ticket always comes through the trigger webhook (it names the organization
        # and requester email); later ones sometimes arrive through the incremental export.
        webhook = a.tickets == 1 or rng.random() < 0.6
        t_solved = t + timedelta(hours=rng.uniform(2, 72))
        if webhook:
            a.emit(t, "zendesk", {"event": "ticket.created", "ticket": self._ticket(
                ticket_id, t, t, "new", priority, subject, requester)}, delay=rng.uniform(1, 10))
            t_open = t + timedelta(minutes=rng.uniform(10, 240))
            a.emit(t_open, "zendesk", {"event": "ticket.updated", "ticket": self._ticket(
                ticket_id, t, t_open, "open", priority, subject, requester)}, delay=rng.uniform(1, 10))
            a.emit(t_solved, "zendesk", {"event": "ticket.solved", "ticket": self._ticket(
                ticket_id, t, t_solved, "solved", priority, subject, requester)}, delay=rng.uniform(1, 10))
        else:
            self._audit(t, ticket_id, requester["zd_user"], [
                {"event_type": "Comment", "comment_present": True, "comment_public": True},
                {"event_type": "Create", "subject": subject}, {"event_type": "Create", "status": "new"},
                {"event_type": "Create", "priority": priority},
                {"event_type": "Create", "requester_id": requester["zd_user"]},
                {"event_type": "Create", "organization_id": a.zd_org}])
            self._audit(t_solved, ticket_id, agent, [
                {"event_type": "Comment", "comment_present": True, "comment_public": True},
                {"event_type": "Change", "status": "solved", "previous_value": "open"}])
        if rng.random() < 0.3:
            t_rated = t_solved + timedelta(hours=rng.uniform(1, 48))
            score = "good" if rng.random() < 0.8 else "bad"
            comment = rng.choice(["Quick and helpful", "Thanks!", "Took too long", ""])
            if webhook:
                body = self._ticket(ticket_id, t, t_rated, "solved", priority, subject, requester)
                body["satisfaction_rating"] = {"score": score.capitalize(), "comment": comment}
                a.emit(t_rated, "zendesk", {"event": "ticket.satisfaction_rated", "ticket": body},
                       delay=rng.uniform(1, 10))
            else:
                self._audit(t_rated, ticket_id, requester["zd_user"], [
                    {"event_type": "SatisfactionRating", "score": score, "assignee_id": agent, "body": comment}])


def _story(seed: int, index: int) -> str:
    """Stories dealt from a shuffled deck with the weights' proportions, so even 40 accounts get the mix."""
    deck = [name for name, weight in _STORIES for _ in range(weight)]
    random.Random(f"lifecycle-sample:{seed}:deck:{index // len(deck)}").shuffle(deck)
    return deck[index % len(deck)]


def _poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _path(milestones: list[tuple[datetime, str]]) -> list[str]:
    """The stages the default journey's engine would enter, given stage-relevant events in time order."""
    path: list[str] = []
    for _, stage in sorted(milestones, key=lambda m: m[0]):
        current = path[-1] if path else None
        if current == "churned" and stage in ("closed-won", "renewal"):
            stage = "re-engaged"  # a new subscription or a won deal after churn is a win-back
        if stage == current:
            continue
        if stage == "churned":
            allowed = current in _CHURNABLE
        elif stage == "re-engaged":
            allowed = current == "churned"
        elif current == "SQL" and stage == "MQL":
            allowed = True  # a lost deal recycles the account to marketing
        else:
            allowed = current is None or (current != "churned" and _RANK[stage] > _RANK[current])
        if allowed:
            path.append(stage)
    return path


# ---- malformed records ---------------------------------------------------------------------
_MALFORMED_KINDS = ("stripe_no_id", "segment_bad_timestamp", "stripe_unsupported", "hubspot_unsupported",
                    "zendesk_no_ticket_id", "salesforce_delete")


# Planted kinds with no lifecycle meaning (a refund, a GDPR deletion, a CDC delete): counted as
# ignored, never dead-lettered.
_IRRELEVANT_KINDS = frozenset({"stripe_unsupported", "hubspot_unsupported", "salesforce_delete"})


def _planted(config: SampleConfig) -> list[str]:
    return [_MALFORMED_KINDS[k % len(_MALFORMED_KINDS)]
            for k in range(max(len(_MALFORMED_KINDS), round(config.accounts * 0.15)))]


def expected_dead_letters(config: SampleConfig) -> int:
    """How many planted malformed records ``generate`` includes (each must be dead-lettered)."""
    return sum(1 for kind in _planted(config) if kind not in _IRRELEVANT_KINDS)


def expected_ignored(config: SampleConfig) -> int:
    """How many planted irrelevant records ``generate`` includes (each must be ignored)."""
    return sum(1 for kind in _planted(config) if kind in _IRRELEVANT_KINDS)


def _malformed(config: SampleConfig) -> list[tuple[datetime, str, dict[str, Any], float]]:
    rng = random.Random(f"lifecycle-sample:{config.seed}:malformed")
    window = (config.end - config.start).total_seconds()
    out = []
    for k, kind in enumerate(_planted(config)):
        t = config.start + timedelta(seconds=rng.uniform(0.05, 0.95) * window)
        i = k % max(config.accounts, 1)
        payload: dict[str, Any]
        if kind == "stripe_no_id":
            vendor, payload = "stripe", {"object": "event", "api_version": _Stripe.API, "created": _s(t),
                                         "livemode": True, "type": "invoice.paid", "data": {"object": {
                                             "id": f"in_broken{k}", "object": "invoice", "amount_paid": 100,
                                             "billing_reason": "manual", "currency": "usd",
                                             "customer": f"cus_broken{i}"}}}
        elif kind == "segment_bad_timestamp":
            vendor, payload = "segment", {"type": "track", "messageId": f"py-broken-{k}", "userId": f"usr_{i:04d}00",
                                          "event": "Report Created", "properties": {},
                                          "timestamp": t.strftime("%m/%d/%Y %H:%M:%S")}
        elif kind == "stripe_unsupported":
            vendor, payload = "stripe", {"id": f"evt_3refund{k}", "object": "event", "api_version": _Stripe.API,
                                         "created": _s(t), "livemode": True, "type": "charge.refunded",
                                         "data": {"object": {"id": f"ch_3refund{k}", "object": "charge",
                                                             "amount_refunded": 4900, "customer": f"cus_refund{i}"}}}
        elif kind == "hubspot_unsupported":
            vendor, payload = "hubspot", {"eventId": 1_799_000_000 + k, "subscriptionId": 2_481_990,
                                          "portalId": _HubSpot.PORTAL, "appId": _HubSpot.APP, "occurredAt": _ms(t),
                                          "subscriptionType": "contact.privacyDeletion", "attemptNumber": 0,
                                          "objectId": 90_000_000 + i * 100, "changeSource": "GDPR"}
        elif kind == "zendesk_no_ticket_id":
            vendor, payload = "zendesk", {"event": "ticket.updated", "ticket": {
                "status": "open", "priority": "normal", "updated_at": _iso(t, millis=False),
                "requester": {"id": "", "email": ""}}}
        else:
            vendor, payload = "salesforce", {"schema": _Salesforce.SCHEMA["Opportunity"], "payload": {
                "ChangeEventHeader": {"entityName": "Opportunity", "recordIds": [f"006Dn{k:010d}DEL"],
                                      "changeType": "DELETE", "transactionKey": f"del-{k}", "sequenceNumber": 1,
                                      "commitTimestamp": _ms(t), "changedFields": []}},
                "event": {"replayId": 17_000_000 + k}}
        out.append((t, vendor, payload, 5.0))
    return out


# ---- public API ----------------------------------------------------------------------------
def _simulate(config: SampleConfig) -> list[_Account]:
    accounts = [_Account(config, i) for i in range(config.accounts)]
    for account in accounts:
        account.tell()
    return accounts


def plans(config: SampleConfig) -> list[AccountPlan]:
    """The ground truth: each account's identity and the stages its story visits."""
    return [a.plan for a in _simulate(config)]


def generate(config: SampleConfig) -> list[RawRecord]:
    """Every account's payloads plus the planted malformed ones, as raw records sorted by event time."""
    items = [item for a in _simulate(config) for item in a.out] + _malformed(config)
    records = []
    for t, vendor, payload, delay in items:
        parser = parser_for(vendor)
        records.append((t, RawRecord(source=parser.source, vendor=vendor, event_id=parser.event_id(payload),
                                     received_at=t + timedelta(seconds=round(delay, 3)), transport="sample",
                                     payload=payload)))
    records.sort(key=lambda tr: (tr[0], tr[1].vendor, tr[1].event_id))
    return [r for _, r in records]


def write_jsonl(records: Iterable[RawRecord], path: Path) -> int:
    """One RawRecord JSON per line; returns how many were written."""
    n = 0
    with Path(path).open("wb") as fh:
        for record in records:
            fh.write(record.to_json())
            fh.write(b"\n")
            n += 1
    return n


def read_jsonl(path: str | Path) -> Iterator[RawRecord]:
    with Path(path).open("rb") as fh:
        for line in fh:
            if line.strip():
                yield RawRecord.from_json(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.sample", description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=SampleConfig.accounts)
    parser.add_argument("--seed", type=int, default=SampleConfig.seed)
    parser.add_argument("--months", type=int, default=SampleConfig.months)
    parser.add_argument("--product-events-per-week", type=int, default=SampleConfig.product_events_per_week)
    parser.add_argument("--out", type=Path, required=True, help="JSONL file to write")
    args = parser.parse_args(argv)
    config = SampleConfig(accounts=args.accounts, seed=args.seed, months=args.months,
                          product_events_per_week=args.product_events_per_week)
    n = write_jsonl(generate(config), args.out)
    print(f"wrote {n} records for {config.accounts} accounts to {args.out} "
          f"({expected_dead_letters(config)} planted malformed, {expected_ignored(config)} planted irrelevant)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
