"""Every run status has its words, colour, advice, message and exit code."""

from __future__ import annotations

from dealerbot.cli.progress import EXIT_ALL_REJECTED, EXIT_NEEDS_PERSON, EXIT_POSTPONED, exit_code_for
from dealerbot.config import NOTIFY_EVENTS
from dealerbot.failure_text import explain
from dealerbot.running.notify import TITLES, run_messages
from dealerbot.running.runner import RunResult, every_record_rejected
from dealerbot.status_text import STATUS_CSS, STATUS_TEXT
from dealerbot.store import RUN_STATUSES


def test_each_status_has_words_and_a_colour() -> None:
    assert set(RUN_STATUSES) <= set(STATUS_TEXT)
    assert set(RUN_STATUSES) <= set(STATUS_CSS)


def test_a_reading_run_that_rejected_every_record_is_not_a_plain_success() -> None:
    assert every_record_rejected({"read": 10, "rejected": 10})
    assert not every_record_rejected({"read": 10, "rejected": 9, "accepted": 1, "stored": 1})
    assert not every_record_rejected({"read": 0, "rejected": 0})  # nothing to read: a success
    assert not every_record_rejected({"read": 3, "rejected": 3, "actions": 3})  # a writer's counts differ


def _result(status: str, error_kind: str | None = None) -> RunResult:
    return RunResult("r1", "oem-orders", status, {"read": 2, "rejected": 2}, error="x", error_kind=error_kind)


def test_exit_codes_tell_the_statuses_apart() -> None:
    assert exit_code_for([_result("succeeded")]) == 0
    assert exit_code_for([_result("all_rejected")]) == EXIT_ALL_REJECTED == 65
    assert exit_code_for([_result("needs_person", "person")]) == EXIT_NEEDS_PERSON == 76
    assert exit_code_for([_result("postponed")]) == EXIT_POSTPONED
    assert exit_code_for([_result("portal_changed", "portal_changed")]) == 1
    assert exit_code_for([_result("needs_person"), _result("failed", "system")]) == 1
    assert exit_code_for([_result("needs_person"), _result("failed", "config")]) == 2
    assert _result("all_rejected").ok and not _result("needs_person").ok


def test_new_statuses_are_explained_and_sent() -> None:
    for status in ("needs_person", "portal_changed", "all_rejected"):
        advice = explain(None, status)
        assert advice is not None and advice.title and advice.action
        assert status in NOTIFY_EVENTS and status in TITLES
        (message,) = run_messages(_result(status), "", None)
        assert message.event == status and TITLES[status] in message.title
    assert explain("NeedsPerson", "needs_person").fix == "login"
    assert explain("PortalChanged", "portal_changed").fix == "integrator"
