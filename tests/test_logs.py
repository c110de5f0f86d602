import json
import logging
from collections.abc import Iterator
from typing import Any

import faust
import pytest

from pipeline.logs import JsonFormatter, logging_config, restore_root_level
from pipeline.runtime import make_worker


def test_json_lines_with_context_and_no_emails():
    record = logging.LogRecord("pipeline.app", logging.ERROR, __file__, 1,
                               "parser failed for jane.doe@acme.com on %s", ("evt_1",), None)
    record.account_id = "acct:hubspot.company:1"
    record.event_id = "stripe:evt_1"
    line = JsonFormatter().format(record)
    data = json.loads(line)
    assert data["level"] == "error" and data["logger"] == "pipeline.app"
    assert data["msg"] == "parser failed for <email> on evt_1"
    assert data["account_id"] == "acct:hubspot.company:1" and data["event_id"] == "stripe:evt_1"
    assert "@" not in line


def test_exceptions_are_redacted_too():
    try:
        raise ValueError("bad customer bob@example.org")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    data = json.loads(JsonFormatter().format(record))
    assert "bob@example.org" not in data["exc"] and "<email>" in data["exc"]


def test_config_is_accepted_by_dictconfig():
    import logging.config

    logging.config.dictConfig(logging_config("warn"))
    assert logging.getLogger().level == logging.WARNING


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, its level and handlers put back afterwards (Faust's set-up replaces them)."""
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_restore_root_level_takes_the_configured_name(root_logger: logging.Logger):
    root_logger.setLevel(logging.DEBUG)
    restore_root_level("warn")
    assert root_logger.level == logging.WARNING


def _app(name: str) -> faust.App:
    return faust.App(name, worker_redirect_stdouts=False)  # leave pytest's sys.stdout alone


def _faust_logging_setup(worker: Any) -> None:
    """What a Faust worker does to logging when it starts, without starting it."""
    worker._setup_logging()


def test_faust_worker_sets_the_root_logger_to_debug(root_logger: logging.Logger):
    """Why make_worker exists: if Faust stops doing this, the override can go."""
    from faust.worker import Worker

    _faust_logging_setup(Worker(_app("t-logs-plain"), loglevel="warn", quiet=True,
                                logging_config=logging_config("warn")))
    assert root_logger.level == logging.DEBUG


def test_pipeline_worker_keeps_the_configured_root_level(root_logger: logging.Logger):
    _faust_logging_setup(make_worker(_app("t-logs"), "warn"))
    assert root_logger.getEffectiveLevel() == logging.WARNING
    assert not logging.getLogger("aiokafka.consumer").isEnabledFor(logging.DEBUG)
