import json
import logging

from pipeline.logs import JsonFormatter, logging_config


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
