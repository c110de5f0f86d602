"""Export the contract as JSON Schema files (``lifecycle schemas export DIR``)."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.accounts import AccountMessage
from schemas.topics import PUBLIC


def export_json_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    models = {spec.model for spec in PUBLIC} | {AccountMessage}
    written = []
    for model in sorted(models, key=lambda m: m.__name__):
        path = directory / f"{model.__name__}.schema.json"
        schema = model.model_json_schema()
        schema["$id"] = f"lifecycle-pipeline/{model.__name__}"
        schema["x-topics"] = [spec.name for spec in PUBLIC if spec.model is model]
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
