"""lifecycle-pipeline: account lifecycle stages, handoffs and SLAs over Kafka."""

__version__ = "0.1.0"

import os

# Settings.compiled, read here: the finder must be in place before any module it concerns is imported.
if os.environ.get("LIFECYCLE_COMPILED", "1").lower() not in ("0", "false", "no", "off"):
    from pipeline.compiled import enable as _enable

    _enable()
