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
    assert "04:00" in postponed.action
    assert explain(None, "succeeded") is None
    assert explain("SomethingNewer", "failed").fix == "rerun"  # unknown class: general advice, never a crash
