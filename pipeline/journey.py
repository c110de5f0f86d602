"""Reading a journey file: YAML → :class:`pipeline.core.journey.JourneyDefinition`.

``pipeline/journeys/default.yaml`` ships with the product. A broken file fails with a
message naming the file, the field and what is wrong, e.g.::

    journey.yaml: stages[2].owner: Field required

The models themselves live in the core (``pipeline.core.journey``); they are re-exported
here for callers that load a journey and name its types.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pipeline.core.journey import (DealStages, IdentityConfig, JourneyDefinition, NamespaceKind, SegmentRule,
                                   Segmentation, Stage, StageKind)

__all__ = ["DEFAULT_JOURNEY", "DealStages", "IdentityConfig", "JourneyDefinition", "JourneyError", "NamespaceKind",
           "SegmentRule", "Segmentation", "Stage", "StageKind", "load_journey", "parse_journey"]

DEFAULT_JOURNEY = "default.yaml"


class JourneyError(ValueError):
    """A journey file that cannot be used; the message names file, field and problem."""


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def parse_journey(data: Any, origin: str = "<journey>") -> JourneyDefinition:
    if not isinstance(data, dict):
        raise JourneyError(f"{origin}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return JourneyDefinition.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{origin}: {_format_loc(err['loc'])}: {msg}")
        raise JourneyError("\n".join(lines)) from None


def load_journey(path: str | Path | None = None) -> JourneyDefinition:
    """Load a journey file; ``None`` loads the default shipped with the package."""
    if path is None:
        text = resources.files("pipeline.journeys").joinpath(DEFAULT_JOURNEY).read_text()
        origin = DEFAULT_JOURNEY
    else:
        p = Path(path)
        origin = str(p)
        try:
            text = p.read_text()
        except OSError as exc:
            raise JourneyError(f"{origin}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise JourneyError(f"{origin}: not valid YAML: {exc}") from None
    return parse_journey(data, origin)
