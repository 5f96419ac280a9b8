"""Failures: evidence, fallbacks, wrong passwords, and that logs never hold secrets or mobiles."""

from __future__ import annotations

import re
import time
import zipfile
from pathlib import Path

from dealerbot.running.runner import run_bot
from dealerbot.store import Store

from .conftest import OEM_PASSWORD, PASSWORDS


def _edit_selector(settings, portal: str, old: str, new: str) -> None:
    path = settings.home / "selectors" / f"{portal}.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


async def test_broken_selector_fails_the_run_with_screenshot_html_and_trace(settings, clean_sandbox):
    # Every choice of the orders table is broken: the portal "changed".
    _edit_selector(settings, "oem", '  orders.table:\n    - css: "#orders-table"', '  orders.table:\n    - css: "#orders-grid-v2"')
    result = await run_bot("oem-orders", settings, passwords=PASSWORDS)
    assert result.status == "failed"
    assert "orders.table" in result.error
    names = {p.name for p in result.evidence}
    assert any(n.endswith("-screenshot.png") for n in names)
    assert any(n.endswith("-page.html") for n in names)
    trace = next(p for p in result.evidence if p.name.endswith("-trace.zip"))
    assert all(p.is_file() and p.parent == result.run_dir for p in result.evidence)
    with zipfile.ZipFile(trace) as z:  # a real Playwright trace: viewable with `playwright show-trace`
        assert any(n.endswith(".trace") for n in z.namelist())
    html = next(p for p in result.evidence if p.name.endswith("-page.html")).read_text(encoding="utf-8")
    assert "orders-table" in html  # the page as it was when the step failed
    with Store.open(settings.store_url) as store:
        run = store.run(result.run_id)
    assert run.status == "failed" and run.evidence_dir == str(result.run_dir)
    assert sorted(run.evidence) == sorted(str(p) for p in result.evidence)
    log = (result.run_dir / "run.log").read_text(encoding="utf-8")
    assert "evidence saved" in log and "trace.zip" in log


async def test_fallback_selector_warns_that_the_portal_drifted(settings, clean_sandbox):
    _edit_selector(settings, "oem", '  login.username:\n    - css: "#username"', '  login.username:\n    - css: "#user-name-v2"')
    result = await run_bot("oem-customers", settings, passwords=PASSWORDS)
    assert result.ok, result.error
    log = (result.run_dir / "run.log").read_text(encoding="utf-8")
    assert re.search(r"WARNING .*selector 'login.username'.*fallback #2 label='用户名'", log), log[-2000:]


async def test_wrong_password_fails_fast_with_one_attempt(settings, clean_sandbox):
    before = clean_sandbox.counters()["failed_logins"]
    started = time.monotonic()
    result = await run_bot("oem-orders", settings, passwords={"oem": "Wrong-Pass-1"})
    assert result.status == "failed" and result.error_kind == "config"
    assert "refused the login" in result.error and "用户名或密码错误" in result.error
    assert clean_sandbox.counters()["failed_logins"] == before + 1  # tried exactly once
    assert time.monotonic() - started < 20
    assert not (settings.path("state") / "oem-dealer_admin.json").exists()


async def test_a_refused_password_is_never_typed_again_until_it_changes(settings, store, clean_sandbox):
    """A daily schedule must not lock the account: the portal locks after 5 wrong passwords."""
    first = await run_bot("oem-orders", settings, passwords={"oem": "Wrong-Pass-1"})
    assert first.error_kind == "config"
    refused = clean_sandbox.counters()["failed_logins"]
    for _ in range(5):
        again = await run_bot("oem-orders", settings, passwords={"oem": "Wrong-Pass-1"})
        assert again.error_kind == "config" and "不再尝试" in again.error and "credentials set oem" in again.error
        assert not again.evidence  # no browser was started for it
    assert clean_sandbox.counters()["failed_logins"] == refused  # nothing typed: the account is not locked
    # The store keeps what kind of failure it was, for the console and the messages to explain it.
    assert store.run(again.run_id).error_class == "LoginRejected"
    # A changed password is tried (and works), and the mark is gone.
    fixed = await run_bot("oem-orders", settings, passwords=PASSWORDS)
    assert fixed.ok, fixed.error
    assert store.login_refusal("oem|" + settings.oem.url.rstrip("/") + "|D31001|dealer_admin") is None


def _all_text_under(folder: Path) -> str:
    chunks = []
    for p in folder.rglob("*"):
        if not p.is_file() or p.suffix == ".png":
            continue
        if p.suffix == ".zip":
            with zipfile.ZipFile(p) as z:
                for n in z.namelist():
                    if not n.endswith((".png", ".jpeg", ".jpg", ".webp")):
                        chunks.append(z.read(n).decode("utf-8", "replace"))
        else:
            chunks.append(p.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(chunks)


async def test_password_and_mobiles_never_appear_unmasked_in_logs(settings, clean_sandbox):
    ok = await run_bot("oem-orders", settings, passwords=PASSWORDS)
    assert ok.ok, ok.error
    # A failing run too, so that evidence (HTML, trace) is written into logs/.
    _edit_selector(settings, "oem", '  customers.table:\n    - css: "#customers-table"', '  customers.table:\n    - css: "#customers-grid-v2"')
    (settings.path("state") / "oem-dealer_admin.json").unlink()  # log in again, typing the password
    failed = await run_bot("oem-customers", settings, passwords=PASSWORDS)
    assert failed.status == "failed" and failed.evidence
    text = _all_text_under(settings.path("logs"))
    assert "rejected" in text  # the logs do talk about the records
    assert OEM_PASSWORD not in text
    mobiles = {re.sub(r"\D", "", o["mobile"]) for o in clean_sandbox.orders()}
    mobiles = {m for m in mobiles if len(m) == 11 and m.startswith("1")}
    leaked = [m for m in mobiles if m in text]
    assert not leaked, leaked[:5]
    assert re.search(r"1\d\d\*\*\*\*\d{4}", text)  # masked ones are there
    # The session's CSRF token, as the trace's DOM snapshots hold it, is masked too.
    assert '"csrf-token","content":"******"' in text
    assert not re.search(r'"name":"csrf[-_]token","(?:content|value)":"(?!\*{6})', text)
    # Traces keep DOM snapshots only: screencast frames are images text masking cannot reach.
    for trace in settings.path("logs").rglob("*trace.zip"):
        with zipfile.ZipFile(trace) as z:
            assert not [n for n in z.namelist() if n.endswith((".jpeg", ".jpg", ".png", ".webp"))], trace


async def test_a_selector_name_missing_from_the_file_fails_at_once_naming_it(settings, clean_sandbox):
    _edit_selector(settings, "oem", "  orders.row:\n", "  orders.rows:\n")
    started = time.monotonic()
    result = await run_bot("oem-orders", settings, passwords=PASSWORDS)
    assert result.status == "failed" and result.error_kind == "config"
    assert "no selector named 'orders.row'" in result.error and "oem.yaml" in result.error
    assert time.monotonic() - started < 10  # no waiting for an element that cannot be found


async def test_a_failed_read_keeps_the_portals_answer_as_evidence(settings, clean_sandbox):
    clean_sandbox.behave("oem", error_rate=1.0)
    result = await run_bot("oem-customers", settings.model_copy(update={"run": settings.run.model_copy(update={"retries": 1})}), passwords=PASSWORDS)
    assert result.status == "failed" and result.error_kind == "system" and "500" in result.error
    assert result.counts["retries"] >= 1


async def test_a_login_form_that_changed_still_leaves_a_trace(settings, clean_sandbox):
    _edit_selector(settings, "oem", '  login.password:\n    - css: "#password"\n    - label: 密码',
                   '  login.password:\n    - css: "#password-v2"\n    - label: 口令')
    result = await run_bot("oem-customers", settings.model_copy(update={"run": settings.run.model_copy(update={"timeout_seconds": 3, "retries": 0})}), passwords=PASSWORDS)
    assert result.status == "failed" and "login.password" in result.error
    names = {p.name.split("-", 2)[-1] for p in result.evidence}
    assert {"screenshot.png", "page.html", "trace.zip"} <= names, names


async def test_a_session_that_ends_right_after_logging_in_is_not_a_refused_password(settings, store, clean_sandbox):
    """The portal took the password (it redirected), then its new session ended at once: seen in
    the soak run as 'refused the login ... 会话已过期' and a failed run."""
    clean_sandbox.oem.post("/__admin/fail-next", json={"path": "/orders", "mode": "expire"}).raise_for_status()
    result = await run_bot("oem-customers", settings, passwords=PASSWORDS)
    assert result.ok, result.error
    assert clean_sandbox.counters()["logins"] == 2  # logged in again, once
    assert store.login_refusal("oem|" + settings.oem.url.rstrip("/") + "|D31001|dealer_admin") is None


async def test_a_server_error_on_the_page_after_logging_in_again_is_one_re_login(settings, clean_sandbox):
    done = []

    def expire_midway(counts: dict[str, int]) -> None:
        if counts["read"] >= 40 and not done:
            clean_sandbox.oem.post("/__admin/fail-next", json={"path": "/orders", "mode": "500"}).raise_for_status()
            done.append(clean_sandbox.oem.post("/__admin/expire-sessions").json())

    result = await run_bot("oem-orders", settings, passwords=PASSWORDS, on_progress=expire_midway)
    assert done and result.ok, result.error
    assert result.counts["relogins"] == 1  # a 500 on the landing page is not another expiry
