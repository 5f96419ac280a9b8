"""The canary before writing, its pure parts: which screens it opens for a bot's names, and
which miss is news for the integrator (the live check: tests/integration/test_rekey.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from dealerbot.web.canary import CanaryOutcome, canary_screens, last_canary, record_canary
from dealerbot.web.locators import load_portal_selectors

ROOT = Path(__file__).resolve().parents[2]


def test_the_re_key_checks_the_two_forms_it_types_into_and_nothing_else() -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from portals.dms import WRITE_SELECTORS
    finally:
        sys.path.remove(str(ROOT))
    screens, unchecked = canary_screens(load_portal_selectors("dms", ROOT / "selectors"), WRITE_SELECTORS)
    opened = {screen.endpoint: names for screen, names in screens}
    assert list(opened) == ["contract_new", "customer_new"]  # no list screen, not the login
    assert {"contract_form.form", "contract_form.customer_no", "customer_dialog.search"} <= opened["contract_new"]
    assert "customer_dialog.pick" not in opened["contract_new"]  # optional: not checked
    assert opened["customer_new"] == {n for n in WRITE_SELECTORS if n.startswith("customer_form.")}
    assert unchecked == []  # form.field_error is optional; endpoint names are not selectors


def test_the_same_miss_twice_is_news_once(tmp_path: Path) -> None:
    miss = CanaryOutcome("dms", ["contract_new"], 20, ["contract_form.form"], "contract_new", "新建合同")
    assert record_canary(tmp_path, miss, "run-1", "dms-rekey") is True
    assert record_canary(tmp_path, miss, "run-2", "dms-rekey") is False
    other = CanaryOutcome("dms", ["contract_new"], 20, ["contract_form.save"], "contract_new", "新建合同")
    assert record_canary(tmp_path, other, "run-3", "dms-rekey") is True
    assert record_canary(tmp_path, CanaryOutcome("dms", ["contract_new"], 20), "run-4", "dms-rekey") is False  # a pass
    assert record_canary(tmp_path, miss, "run-5", "dms-rekey") is True  # after a pass: news again
    kept = last_canary(tmp_path, "dms")
    assert kept is not None and kept["run_id"] == "run-5" and kept["missing"] == ["contract_form.form"]
