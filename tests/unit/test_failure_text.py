"""Every failure an operator can meet has words and a suggested action."""

from __future__ import annotations

import inspect
from datetime import datetime

from dealerbot import errors
from dealerbot.failure_text import ADVICE, explain


def test_every_error_class_a_run_can_end_with_is_explained():
    classes = {name for name, obj in inspect.getmembers(errors, inspect.isclass)
               if issubclass(obj, errors.DealerbotError) and not issubclass(obj, errors.BusinessError)
               and obj is not errors.DealerbotError}
    assert classes - set(ADVICE) == set()


def test_a_refused_password_leads_to_setting_it_and_maintenance_names_its_end():
    assert explain("LoginRejected", "failed").fix == "password"
    assert explain("PageChanged", "failed").fix == "integrator"
    postponed = explain("PortalMaintenance", "postponed", datetime(2026, 12, 8, 4, 0))
    assert "04:00" in postponed.action and "自动" in postponed.action
    by_hand = explain("PortalMaintenance", "postponed", datetime(2026, 12, 8, 4, 0), scheduled=False)
    assert "04:00" in by_hand.action and "重新运行" in by_hand.action and by_hand.fix == "rerun"
    assert explain(None, "succeeded") is None
    assert explain("SomethingNewer", "failed").fix == "rerun"  # unknown class: general advice, never a crash


def test_every_reject_code_the_pipeline_and_writers_raise_has_its_own_words():
    """A reject is explained by its code: every code raised in data/, rekey/ and running/ has an
    entry of its own (a new code without one fails here), and a missing model code says who
    adds it where."""
    import re
    from pathlib import Path

    from dealerbot.failure_text import REJECT_ADVICE, explain_reject

    src = Path(errors.__file__).parent
    text = "\n".join(p.read_text(encoding="utf-8") for d in ("data", "rekey", "running") for p in (src / d).glob("*.py"))
    codes = set(re.findall(r'Issue\(\s*"[a-z_]*",\s*"([a-z_]+)",\s*"reject"', text))
    codes |= set(re.findall(r'RecordRejected\(\s*"([a-z_]+)"', text))
    codes |= set(re.findall(r'reject\([^)]*?"([a-z_]+)",\s*(?:f?")', text))
    assert {"required", "vin_length", "id_check_code", "no_oem_customer", "customer_undecided"} <= codes
    assert codes - set(REJECT_ADVICE) == set()
    missing_model = explain_reject("unmapped_models")
    assert missing_model.title == "字典缺少车型代码" and "dictionary.yaml" in missing_model.action
    assert explain_reject("unmapped_colors").title == "字典缺少代码"
    assert explain_reject("something_newer").action  # never a crash
