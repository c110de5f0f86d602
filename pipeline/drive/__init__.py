"""Commands that drive the pipeline from outside, apart from the worker: the demo, ``run``,
``up``, ``broker``, the benchmark, the consistency verifier, and the runner they share
(worker processes, feeding raw records, waiting for a group to catch up)."""
