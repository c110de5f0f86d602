"""lifecycle-pipeline: account lifecycle stages, handoffs and SLAs over Kafka."""

__version__ = "0.1.0"
