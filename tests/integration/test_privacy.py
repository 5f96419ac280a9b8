"""Privacy: no artifact of a failing run (logs, page HTML, the portal's answers, traces) holds a
password, a cookie, a CSRF token or any customer's name, mobile, ID number or address; in every
screenshot, each place such a value was drawn is under the mask (pixels, see ``pixels.py``)."""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from dealerbot.running.runner import run_bot

from .conftest import DMS_PASSWORD, OEM_PASSWORD, PASSWORDS
from .pixels import personal_values, uncovered, watch_page_screenshots
from .test_failures import _all_text_under, _edit_selector

WRONG = "Wrong-Pass-77"


def _window_around_now() -> str:
    now = datetime.now()
    return f"{now - timedelta(minutes=5):%H:%M}-{now + timedelta(minutes=30):%H:%M}"


def _personal_truth(admin) -> dict[str, set[str]]:
    """Every personal value the sandbox holds (its admin ground truth)."""
    orders, oem_customers, dms_customers = admin.orders(), admin.rows("oem", "customers"), admin.customers()
    names = {o["customer_name"] for o in orders} | {c["name"] for c in oem_customers} | {c["name"] for c in dms_customers}
    mobiles = {re.sub(r"\D", "", r["mobile"]) for r in (*orders, *oem_customers, *dms_customers)}
    return {
        "names": {n.strip() for n in names if len(n.strip()) >= 2},
        "mobiles": {m for m in mobiles if len(m) == 11 and m.startswith("1")},
        "ids": {r["id_number"] for r in (*orders, *oem_customers, *dms_customers) if len(r.get("id_number") or "") == 18},
        "addresses": {c["address"] for c in dms_customers if c.get("address")},
    }


def _json_strings(value: object) -> Iterator[str]:
    """Every string inside a JSON value (keys too): the DOM snapshots' attribute values and
    texts, the recorded calls' results (a page's HTML), the network log's bodies and headers."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _json_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _json_strings(v)


def _trace_texts(path: Path) -> Iterator[tuple[str, str]]:
    """``(member, text)`` for every member of a trace zip, decoded: the member's text whole, then
    every string inside it where it is JSON (a whole document, or one object a line), one string
    a line."""
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            text = z.read(name).decode("utf-8", "replace")
            strings = []
            for doc in (text, *text.splitlines()):
                if doc[:1] in ("{", "["):
                    try:
                        strings += _json_strings(json.loads(doc))
                    except ValueError:
                        pass
            yield name, text + "\n" + "\n".join(strings)


def _where(settings, values: list[str]) -> list[str]:
    """Which text artifacts (files, or trace members) hold any of ``values`` (screenshots are
    checked by their pixels)."""
    found = []
    for p in settings.path("logs").rglob("*"):
        if p.is_file() and p.suffix == ".zip":
            with zipfile.ZipFile(p) as z:
                found += [f"{p.name}:{n}" for n in z.namelist()
                          if any(v in z.read(n).decode("utf-8", "replace") for v in values)]
        elif p.is_file() and p.suffix != ".png":
            if any(v in p.read_text(encoding="utf-8", errors="replace") for v in values):
                found.append(p.name)
    return found


@pytest.fixture
def csrf_tokens(sandbox, monkeypatch) -> set[str]:
    """Every CSRF token the sandbox hands out during the test (login forms' hidden inputs, the
    logged-in pages' ``<meta name="csrf-token">``), learnt from the sandbox itself."""
    tokens: set[str] = set()
    for app in (sandbox.oem_app, sandbox.dms_app):
        rt = app.state.rt
        issue = rt.new_session

        def recording(issue=issue):  # the sandbox's own, unchanged: only noted
            session = issue()
            tokens.add(session.csrf)
            return session

        monkeypatch.setattr(rt, "new_session", recording)
    return tokens


async def test_no_artifact_of_failing_runs_holds_secrets_or_personal_data(settings, clean_sandbox, csrf_tokens, monkeypatch):
    truth = _personal_truth(clean_sandbox)
    shots = watch_page_screenshots(monkeypatch, personal_values(clean_sandbox))
    settings.browser.trace = True  # every bot keeps a trace of its failure here

    # 1. A refused password.
    wrong = await run_bot("oem-customers", settings, passwords={"oem": WRONG, "dms": DMS_PASSWORD})
    assert wrong.error_kind == "config"
    # 2. A selector miss on lists full of customers (the pages are open in the browser).
    _edit_selector(settings, "dms", "  customers.cell:\n    - css: \"td[data-field='{field}']\"",
                   "  customers.cell:\n    - css: \"td[data-col='{field}']\"")
    miss = await run_bot("dms-customers", settings, passwords=PASSWORDS)
    assert miss.status == "failed" and "cell" in miss.error
    _edit_selector(settings, "oem", "  customers.cell:\n    - css: \"td[data-field='{field}']\"",
                   "  customers.cell:\n    - css: \"td[data-col='{field}']\"")
    miss_oem = await run_bot("oem-customers", settings, passwords=PASSWORDS)
    assert miss_oem.status == "failed"
    # 3. Server errors on every page of a list.
    clean_sandbox.dms.post("/__admin/fail-next", json={"path": "/contracts", "mode": "500", "count": 500}).raise_for_status()
    errors = await run_bot("dms-contracts", settings, passwords=PASSWORDS)
    assert errors.status == "failed"
    # 4. A session that keeps expiring while order details are read (the orders list is open).
    walk = sorted(clean_sandbox.orders(), key=lambda o: (o["updated_at"], o["order_no"]))
    clean_sandbox.oem.post("/__admin/fail-next", json={
        "path": f"/orders/{walk[60]['order_no']}", "mode": "expire", "count": 500}).raise_for_status()
    expiry = await run_bot("oem-orders", settings, passwords=PASSWORDS, full=True)
    assert expiry.status == "failed"
    # 5. The portal's maintenance notice.
    clean_sandbox.behave("dms", maintenance_window=_window_around_now())
    postponed = await run_bot("dms-contracts", settings, passwords=PASSWORDS)
    assert postponed.status == "postponed"

    runs = (wrong, miss, miss_oem, errors, expiry, postponed)
    assert all(r.evidence for r in runs)
    assert any(p.name.endswith("-trace.zip") for r in runs for p in r.evidence)
    text = _all_text_under(settings.path("logs"))
    assert "customer-row" in text and "order-row" in text  # the list pages are in the evidence

    for secret in (OEM_PASSWORD, DMS_PASSWORD, WRONG):
        assert secret not in text
    cookies = [c["value"] for state in settings.path("state").glob("*.json")  # saved logins (and their password notes)
               for c in json.loads(state.read_text(encoding="utf-8")).get("cookies", []) if len(c["value"]) >= 8]
    assert cookies and not [c for c in cookies if c in text]
    assert not re.search(r'name="csrf[-_]token"[^>]*(?:value|content)="(?!\*{6})', text)
    assert not re.search(r'"name":"csrf[-_]token","(?:content|value)":"(?!\*{6})', text)
    for kind, values in truth.items():
        leaked = sorted(v for v in values if v in text)
        assert not leaked, f"{kind}: {len(leaked)} unmasked, e.g. {leaked[:5]} in {_where(settings, leaked[:5])}"
    assert re.search(r"<td[^>]*>\*\*\*</td>", text)  # personal cells starred in the saved HTML

    # Every string inside every member of every trace (DOM snapshots, recorded calls' results
    # such as a page's HTML, network bodies, resources), decoded: no CSRF token the sandbox
    # handed out, no password or cookie, no personal value.
    traces = sorted(settings.path("logs").rglob("*trace.zip"))
    assert len(traces) >= 4 and len(csrf_tokens) >= 4
    forbidden = {
        "csrf token": set(csrf_tokens), "password": {OEM_PASSWORD, DMS_PASSWORD, WRONG}, "cookie": set(cookies),
        **truth,
    }
    members = 0
    for trace in traces:
        for member, text in _trace_texts(trace):
            members += 1
            for kind, values in forbidden.items():
                leaked = sorted(v for v in values if v in text)
                assert not leaked, f"{kind} unmasked in {trace.name}:{member}: {leaked[:3]}"
            # A token-like hidden field or meta tag keeps no value, however the HTML is quoted.
            assert not re.search(r'(?i)name=\\?["\']?(?:csrf|xsrf|_?token)[\w-]*\\?["\']?[^>]*?'
                                 r'(?:value|content)=\\?["\'](?!\*{6})[^"\'\\]{6,}', text), (trace.name, member)
    assert members

    # Screenshots are images: their text cannot be searched, their pixels are checked. Every PNG
    # was taken through Page.screenshot, the page measured right before (where each personal
    # value was drawn), and every such place is under the mask in the saved image.
    pngs = sorted(p.resolve() for p in settings.path("logs").rglob("*.png"))
    assert pngs
    for png in pngs:
        assert png in shots, f"{png.name}: not taken through Page.screenshot: its pixels were not checked"
        problems = uncovered(shots[png])
        assert not problems, "\n".join(problems)
    assert sum(len(shots[p].boxes) for p in pngs) >= 40  # personal values were on screen: under the mask
