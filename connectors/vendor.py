"""What one vendor is to the connectors and the pipeline: the descriptor each vendor module exports.

A vendor module (``connectors/<source kind>/<vendor>.py``) holds everything about
its vendor: parsing, webhook signature scheme, the REST endpoints polled and read
for enrichment, the identifier namespaces it mints and the test-mode rule. This
descriptor is how it hands them over; ``connectors.registry`` lists every vendor
in one explicit tuple.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from connectors.base import SourceParser
from connectors.cursors import CursorStrategy, PollRequest
from connectors.signing import HmacScheme
from schemas.events import LifecycleEvent, SourceKind

# What kind of object an identifier namespace names (the identity core ranks anchors by it).
IdentityTier = Literal["account", "deal", "person", "anonymous"]


class Enrichment(Protocol):
    """How a notification that carries ids, not meaning, becomes the full object."""

    def request(self, payload: dict[str, Any]) -> PollRequest | None:
        """The REST read that returns the object behind ``payload``; None when the payload is complete."""

    def complete(self, payload: dict[str, Any], body: Any) -> list[dict[str, Any]]:
        """The payload(s) to parse in place of the notification, from the read's JSON ``body``."""


def never_test_mode(event: LifecycleEvent) -> bool:
    return False


@dataclass(frozen=True)
class Vendor:
    name: str
    source: SourceKind
    parser: SourceParser
    signature: HmacScheme               # its secret, API token and API root: pipeline.settings (*_FIELDS)
    poll: Callable[[Mapping[str, Any], int], list[CursorStrategy]]   # (options, page size) → streams
    namespaces: Mapping[str, IdentityTier]
    enrichment: Enrichment | None = None
    test_mode: Callable[[LifecycleEvent], bool] = never_test_mode
