"""The worker's agents, one per module; ``pipeline.app`` wires them and states the topology."""
