"""Export the contract as JSON Schema files (``lifecycle schemas export DIR``)."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.cloudevents import TYPES
from schemas.events import LifecycleEvent
from schemas.parsed import ParsedBatch
from schemas.topics import DEFAULT, Topics


def export_json_schemas(directory: Path, topics: Topics = DEFAULT) -> list[Path]:
    """One schema file per record model; ``x-topics`` names the topics (in ``topics``' namespace) carrying it."""
    directory.mkdir(parents=True, exist_ok=True)
    models = {m for spec in topics.specs for m in spec.models} | {LifecycleEvent, ParsedBatch}  # events ride in batches
    written = []
    for model in sorted(models, key=lambda m: m.__name__):
        path = directory / f"{model.__name__}.schema.json"
        schema = model.model_json_schema()
        schema["$id"] = f"lifecycle-pipeline/{model.__name__}"
        schema["x-topics"] = [spec.name for spec in topics.specs if model in spec.models] or (
            [topics.parsed_pattern] if model is ParsedBatch else [])
        if types := sorted(t for t, m in TYPES.items() if m is model):  # CloudEvents ce_type values
            schema["x-cloudevents-types"] = types
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
