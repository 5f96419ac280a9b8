"""Settings, credentials and masking: pure pieces of the engine."""

from __future__ import annotations

import pytest

from dealerbot.config import BrowserSettings, load_settings
from dealerbot.credentials import get_password
from dealerbot.errors import BrowserNotFound, ConfigError, CredentialsMissing
from dealerbot.logsetup import Masker
from dealerbot.web.browser import find_browser


def test_file_values_environment_wins_and_paths_are_relative_to_the_file(tmp_path, monkeypatch):
    cfg = tmp_path / "dealerbot.toml"
    cfg.write_text('[oem]\nurl = "http://127.0.0.1:9001"\n[run]\nconcurrency = 2\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEALERBOT_RUN__CONCURRENCY", "6")
    s = load_settings()
    assert s.oem.url == "http://127.0.0.1:9001" and s.oem.dealer_code == "D31001"
    assert s.run.concurrency == 6
    assert s.path("logs") == tmp_path / "logs"
    assert s.store_url == f"sqlite:///{tmp_path / 'var' / 'dealerbot.sqlite'}"



def test_the_environment_gives_lists_as_json_sections_as_objects_and_names_a_bad_variable(tmp_path, monkeypatch):
    """dealerbot reads its DEALERBOT_* variables itself (no pydantic-settings: 0.05 s of every
    command's start-up): lists and tables as JSON, other keys as text, any case, the shipped
    portals under either spelling; a variable that is not a setting is left alone."""
    (tmp_path / "dealerbot.toml").write_text('[browser]\nallowed_hosts = ["file.example.com"]\n[run]\nretries = 4\n'
                                             '[portals.usedcars]\nurl = "http://127.0.0.1:9903"\nusername = "zhihuan01"\n',
                                             encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEALERBOT_BROWSER__ALLOWED_HOSTS", '["portal.example.com", "*.cdn.example.com"]')
    monkeypatch.setenv("dealerbot_run__concurrency", "3")
    monkeypatch.setenv("DEALERBOT_PORTALS__OEM__DEALER_CODE", "D99999")
    monkeypatch.setenv("DEALERBOT_PORTALS__USEDCARS__URL", "http://127.0.0.1:9904")
    monkeypatch.setenv("DEALERBOT_BROWSER", "/usr/bin/chromium")  # the browser to use, not the section
    monkeypatch.setenv("DEALERBOT_NOTIFY", '{"urls": ["json://127.0.0.1:9/hook"]}')
    monkeypatch.setenv("DEALERBOT_OEM_PASSWORD", "not-a-setting")
    s = load_settings()
    assert s.browser.allowed_hosts == ["portal.example.com", "*.cdn.example.com"]
    assert (s.run.concurrency, s.run.retries) == (3, 4)  # the file's other keys kept
    assert s.oem.dealer_code == "D99999"
    assert (s.portal("usedcars").url, s.portal("usedcars").username) == ("http://127.0.0.1:9904", "zhihuan01")
    assert s.notify.urls == ["json://127.0.0.1:9/hook"]
    monkeypatch.setenv("DEALERBOT_BROWSER__ALLOWED_HOSTS", "portal.example.com")
    with pytest.raises(ConfigError, match=r"\$DEALERBOT_BROWSER__ALLOWED_HOSTS: .*JSON"):
        load_settings()

@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[run]\nconcurrency = 0\n", "run.concurrency"),
        ("[run]\nconcurency = 3\n", "run.concurency"),
        ("[browser]\nheadless = 'sometimes'\n", "browser.headless"),
        ("[oem]\npassword = 'x'\n", "[oem] password"),
        ("[dms]\nurl = \n", "not valid TOML"),
        ('[oem]\nurl = "127.0.0.1:8751"\n', "oem.url"),
    ],
)
def test_bad_files_are_refused_with_the_key(tmp_path, monkeypatch, text, words):
    cfg = tmp_path / "dealerbot.toml"
    cfg.write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert words in str(err.value) and str(cfg) in str(err.value)


def test_password_comes_from_the_environment_or_says_how(monkeypatch):
    monkeypatch.setenv("DEALERBOT_OEM_PASSWORD", "s3cret!")
    assert get_password("oem", "dealer_admin") == "s3cret!"
    monkeypatch.delenv("DEALERBOT_OEM_PASSWORD")
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    with pytest.raises(CredentialsMissing, match="DEALERBOT_OEM_PASSWORD.*credentials set oem"):
        get_password("oem", "dealer_admin")


def test_passwords_in_the_environment_and_in_the_keyring_are_masked(tmp_path, monkeypatch):
    import keyring
    from keyring.backend import KeyringBackend

    from dealerbot.running.runner import make_masker

    class MemoryKeyring(KeyringBackend):
        priority = 1
        stored = {("dealerbot", "dms:sales01"): "Kr@dms-2026"}

        def get_password(self, service, username):
            return self.stored.get((service, username))

        def set_password(self, service, username, password):
            self.stored[(service, username)] = password

        def delete_password(self, service, username):
            self.stored.pop((service, username), None)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEALERBOT_OEM_PASSWORD", "Env@oem-2026")
    monkeypatch.delenv("DEALERBOT_DMS_PASSWORD", raising=False)
    previous = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    try:
        settings = load_settings()
        for masker in (make_masker(settings, None), make_masker(settings, None, ["oem", "dms"])):
            assert masker("oem Env@oem-2026 dms Kr@dms-2026") == "oem ****** dms ******"
        assert make_masker(settings, None, ["dms"])("Kr@dms-2026") == "******"
    finally:
        keyring.set_keyring(previous)


def test_browser_discovery_explains_what_it_tried(tmp_path, monkeypatch):
    monkeypatch.setenv("DEALERBOT_BROWSER", str(tmp_path / "no-such-chrome"))
    with pytest.raises(BrowserNotFound, match="no-such-chrome"):
        find_browser(BrowserSettings())
    monkeypatch.setenv("DEALERBOT_BROWSER", "msedge")
    assert find_browser(BrowserSettings()).channel == "msedge"
    monkeypatch.delenv("DEALERBOT_BROWSER")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrowserNotFound) as err:
        find_browser(BrowserSettings(), bundled=str(tmp_path / "ms-playwright" / "chrome"))
    assert "bundled Chromium: not installed" in str(err.value) and "apt-get install chromium" in str(err.value)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("mobile 13812345678 ok", "mobile 138****5678 ok"),
        ("mobile +86 138-1234-5678", "mobile 138****5678"),
        ("１３８１２３４５６７８", "１３８****５６７８"),
        ("id 11010519491231002X", "id 110105********002X"),
        ("pw Oem@2026! typed", "pw ****** typed"),
        ("csrf_token=abcdef123&x=1", "csrf_token=******&x=1"),
        ('{"password": "hunter22"}', '{"password": "******"}'),
        ("order XS2026000123 price 189800", "order XS2026000123 price 189800"),
    ],
)
def test_masker(text, masked):
    m = Masker(["Oem@2026!"])
    assert m(text) == masked
    assert m(m(text)) == masked  # idempotent


def test_program_overrides_win_over_the_environment(tmp_path, monkeypatch):
    # The demo points the bots at its own sandbox and store whatever the environment says.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEALERBOT_OEM__URL", "http://127.0.0.1:9999")
    monkeypatch.setenv("DEALERBOT_STORE__URL", "sqlite:////real/production.sqlite")
    s = load_settings(None, oem__url="http://127.0.0.1:1234", store__url="sqlite:///demo.sqlite")
    assert s.oem.url == "http://127.0.0.1:1234" and s.store.url == "sqlite:///demo.sqlite"
    assert s.oem.dealer_code == "D31001"
    with pytest.raises(ConfigError, match="run.concurrency"):
        load_settings(None, run__concurrency=0)


def test_a_password_in_the_wrong_place_is_never_echoed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEALERBOT_OEM__PASSWORD", "Hunter2-Secret")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "DEALERBOT_OEM__PASSWORD" in str(err.value) and "Hunter2-Secret" not in str(err.value)


def test_the_browser_variable_is_not_mistaken_for_the_browser_section(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEALERBOT_BROWSER", "/usr/bin/chromium")
    monkeypatch.setenv("DEALERBOT_BROWSER__HEADLESS", "false")
    s = load_settings()
    assert s.browser.headless is False and s.browser.executable == ""
    assert find_browser(s.browser).source == "$DEALERBOT_BROWSER" or not __import__("os").path.exists("/usr/bin/chromium")


def test_csrf_tokens_in_trace_snapshots_are_masked():
    from dealerbot.logsetup import Masker

    snapshot = '["META",{"name":"csrf-token","content":"vsaeMOZmdOgySBlpze5jg27K"}],["INPUT",{"type":"hidden","name":"csrf_token","value":"abcDEF123"}]'
    masked = Masker()(snapshot)
    assert "vsaeMOZmdOgySBlpze5jg27K" not in masked and "abcDEF123" not in masked
    assert '"csrf-token","content":"******"' in masked


def test_every_string_inside_every_trace_member_is_masked(tmp_path):
    import json
    import zipfile

    from dealerbot.web.trace_masking import mask_trace

    login_token, page_token, sid = "LoginTok-9f8e7d6c", "PageTok-1a2b3c4d", "SessId-5e6f7a8b"
    page = (f'<html><head><meta content="{page_token}" name="csrf-token"></head><body>'
            f'<input type="hidden" name="csrf_token" value="{login_token}">王伟 13812345678</body></html>')
    actions = [
        # page.content()'s result: the HTML as a JSON string, its quotes escaped.
        {"type": "after", "callId": "c@1", "result": {"value": page}},
        # A DOM snapshot: the value before the name, and the input's current value Playwright adds.
        {"type": "frame-snapshot", "snapshot": {"html": ["HTML", {}, ["INPUT", {
            "value": login_token, "type": "hidden", "name": "authenticity_token", "__playwright_value_": login_token}]]}},
        {"type": "after", "callId": "c@2", "result": {"cookies": [{"name": "dms_session", "value": sid}]}},
    ]
    network = {"type": "resource-snapshot", "snapshot": {"request": {
        "postData": {"text": f"t={login_token}&u={page_token}"}, "headers": [{"name": "Cookie", "value": f"dms_session={sid}"}]}}}
    trace = tmp_path / "t-trace.zip"
    with zipfile.ZipFile(trace, "w") as z:
        z.writestr("trace.trace", "\n".join(json.dumps(a, ensure_ascii=False) for a in actions) + "\n")
        z.writestr("trace.network", json.dumps(network) + "\n")
        z.writestr("resources/a.html", page.replace('"', "'"))
        z.writestr("resources/b.json", json.dumps({"items": [{"url": f"/x?s={sid}"}]}))
        z.writestr("resources/c.png", b"\x89PNG" + page_token.encode())
    masker = Masker()
    masker.add_personal("王伟")
    mask_trace(trace, masker)
    with zipfile.ZipFile(trace) as z:
        texts = {n: z.read(n).decode("utf-8", "replace") for n in z.namelist() if not n.endswith(".png")}
        for line in texts["trace.trace"].splitlines():
            json.loads(line)  # still a trace the viewer reads
        assert z.read("resources/c.png") == b"\x89PNG" + page_token.encode()  # images untouched
    for name, text in texts.items():
        for value in (login_token, page_token, sid, "王伟", "13812345678"):
            assert value not in text, (name, value)
    assert "王*" in texts["trace.trace"] and "138****5678" in texts["trace.trace"]
    assert "/x?s=" in texts["resources/b.json"]  # the rest stays readable
    # The tokens learnt are masked in the run's logs too.
    assert masker(f"posted {login_token}") == "posted ******"


def test_a_config_file_over_the_size_cap_is_refused_naming_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "dealerbot.toml"
    body = '[run]\nconcurrency = 3\n'
    cfg.write_text(body + "# " + "x" * (1_000_000 - len(body) - 3) + "\n", encoding="utf-8")  # exactly at the cap
    assert cfg.stat().st_size == 1_000_000 and load_settings().run.concurrency == 3
    with cfg.open("a", encoding="utf-8") as f:  # 54 MB was accepted: one byte over is not
        f.write("#")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert str(cfg) in str(err.value) and "1,000,000" in str(err.value) and "过大" in str(err.value)


def test_a_config_file_in_gbk_or_with_a_bom_and_a_url_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "dealerbot.toml"
    cfg.write_bytes("[dms]\nusername = \"销售01\"\n".encode("gbk"))
    with pytest.raises(ConfigError, match=r"dealerbot.toml:2: .*UTF-8"):
        load_settings()
    cfg.write_bytes(b"\xef\xbb\xbf" + b'[dms]\nusername = "sales02"\n')
    settings = load_settings()
    assert settings.dms.username == "sales02" and settings.source == cfg
    monkeypatch.setenv("DEALERBOT_OEM__URL", "127.0.0.1:8751")
    with pytest.raises(ConfigError, match=r"\$DEALERBOT_OEM__URL: oem.url: .*not a web address"):
        load_settings()


def test_names_and_addresses_met_in_records_are_masked_wherever_they_appear():
    from dealerbot.logsetup import PENDING_LIMIT, Masker  # noqa: F401

    m = Masker()
    m.add_personal("王伟", "北京市朝阳区建国路8号", None, "", "李")  # empty and one-character values are ignored
    text = "客户王伟（北京市朝阳区建国路8号）下单；李先生"
    masked = m(text)
    assert masked == "客户王*（北**********）下单；李先生"
    assert m(masked) == masked  # safe to apply twice
    many = [f"客户{i:05d}" for i in range(PENDING_LIMIT * 3)]  # past the one-by-one list: the automaton
    m.add_personal(*many)
    assert m(f"{many[0]} {many[-1]} 王伟") == "客****** 客****** 王*"
    m.add_personal("赵六")  # added after the automaton was built
    assert m("赵六 王伟") == "赵* 王*"


def test_a_long_run_masker_keeps_no_copy_of_what_its_patterns_mask():
    import tracemalloc

    from dealerbot.logsetup import Masker

    m = Masker()
    mobiles = [f"1{3 + i % 6}{i:09d}" for i in range(20_000)]
    ids = [f"110105{1950 + i % 50}0101{i % 1000:03d}X" for i in range(20_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for mobile, idn in zip(mobiles, ids, strict=True):
            m.add_personal(mobile, idn, f"+86 {mobile}")  # as a record's personal fields arrive
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 256_000, f"the masker holds {held} bytes for values its patterns mask anyway"
    # ...and masks them all the same, wherever they appear.
    text = f"客户 {mobiles[7]} 证件{ids[7]} 电话 +86 {mobiles[9]}"
    masked = m(text)
    assert mobiles[7] not in masked and ids[7] not in masked and mobiles[9] not in masked
    m.add_personal("王伟", *[f"客户{i:05d}" for i in range(500)])  # names are still learned
    assert m("王伟 客户00042") == "王* 客******"


def test_a_maintenance_notice_is_recognised_with_the_end_of_its_window():
    from datetime import datetime

    from dealerbot.running.runner import resume_time
    from dealerbot.web.maintenance import maintenance_notice

    html = "<html><title>系统维护中</title><p>系统维护中（维护时间 02:00-04:00），请稍后再试。</p></html>"
    assert maintenance_notice(html) == ("系统维护中（维护时间 02:00-04:00），请稍后再试", "04:00")
    assert maintenance_notice('{"error": "maintenance", "message": "系统维护中（维护时间 23:30至1:00）"}')[1] == "01:00"
    assert maintenance_notice("<p>系统繁忙，请稍后重试。</p>") is None  # a plain 503 is no maintenance
    assert maintenance_notice("Scheduled maintenance, back soon") == ("Scheduled maintenance, back soon", None)
    assert resume_time("04:00", datetime(2026, 11, 25, 3, 10)) == datetime(2026, 11, 25, 4, 0)
    assert resume_time("01:00", datetime(2026, 11, 25, 23, 40)) == datetime(2026, 11, 26, 1, 0)


def test_a_circuit_breaker_that_would_open_before_a_record_is_retried_is_refused():
    with pytest.raises(ConfigError, match="max_consecutive_failures"):
        load_settings(None, run__retries=9, run__max_consecutive_failures=10)


def test_the_console_log_masks_the_names_a_run_has_learned(capsys, tmp_path):
    """Before: run.log said 王** while the terminal (and a service's journal) said 王伟东."""
    from loguru import logger

    from dealerbot.logsetup import add_console_sink, run_sinks

    console = add_console_sink(Masker(), "INFO")  # the CLI's sink: it knows no run's names
    try:
        run_masker = Masker()
        with run_sinks("r1", "oem-orders", tmp_path / "logs", tmp_path / "logs" / "runs" / "r1", run_masker) as log:
            run_masker.add_personal("王伟东", "北京市朝阳区建国路8号")
            log.warning("customer 王伟东 at 北京市朝阳区建国路8号 rejected")
    finally:
        logger.remove(console)
    err = capsys.readouterr().err
    assert "rejected" in err and "王伟东" not in err and "建国路" not in err
    assert "王伟东" not in (tmp_path / "logs" / "runs" / "r1" / "run.log").read_text(encoding="utf-8")
    assert "masker" not in (tmp_path / "logs" / "dealerbot.jsonl").read_text(encoding="utf-8")


def test_a_maintenance_notice_is_found_only_in_what_a_notice_says_and_only_near_the_top():
    from dealerbot.web.maintenance import MAX_NOTICE_BYTES, maintenance_notice

    # A footer naming the site's maintainer, or opening hours, is no maintenance window.
    assert maintenance_notice("<p>服务暂不可用</p><footer>网站维护：某公司 客服时间 9:00-18:00</footer>") is None
    assert maintenance_notice("<p>系统维护中，请稍后再试。</p><p>客服时间 9:00-18:00</p>") == ("系统维护中，请稍后再试", None)
    # A huge answer (an app shell with an inline bundle) is read no further than its start.
    huge = "<html><script>" + "x=1;" * 300_000 + "</script><p>系统维护中（维护时间 02:00-04:00）</p></html>"
    assert len(huge) > MAX_NOTICE_BYTES and maintenance_notice(huge) is None
    assert maintenance_notice("a" * 2_000_000) is None


def test_a_store_sees_the_groups_settings_with_its_own_sections_over_them(tmp_path):
    from dealerbot.config import load_settings

    (tmp_path / "dealerbot.toml").write_text(
        '[oem]\nurl = "http://oem.example:8701"\ndealer_code = "G001"\n'
        '[stores.S01]\nname = "浦东店"\n[stores.S01.oem]\ndealer_code = "D31001"\nusername = "pd"\n'
        '[stores.S01.dms]\nurl = "http://10.1.1.20:8702"\n'
        '[stores.S02]\n[stores.S02.dms]\nurl = "http://10.1.2.20:8702"\n', encoding="utf-8")
    group = load_settings(tmp_path / "dealerbot.toml")
    s01 = group.for_store("S01")
    assert (s01.oem.url, s01.oem.dealer_code, s01.oem.username, s01.dms.url) == (
        "http://oem.example:8701", "D31001", "pd", "http://10.1.1.20:8702")
    # From S01's settings (a worker started for S01 running S02's job), S02 sees none of S01's.
    s02 = s01.for_store("S02")
    assert (s02.oem.dealer_code, s02.oem.username, s02.dms.url) == ("G001", "dealer_admin", "http://10.1.2.20:8702")
    assert s02.store_code == "S02" and s02.path("out") == tmp_path / "out" / "S02"
    assert group.store_queue("S01") == "store.S01"


def test_a_stores_own_password_comes_before_the_groups(monkeypatch):
    from dealerbot.credentials import env_name, get_password, password_source
    from dealerbot.errors import CredentialsMissing

    monkeypatch.setenv("DEALERBOT_DMS_PASSWORD", "group-wide")
    monkeypatch.setenv("DEALERBOT_S01_DMS_PASSWORD", "pudong-only")
    assert env_name("dms", "S-01") == "DEALERBOT_S_01_DMS_PASSWORD"
    assert get_password("dms", "sales01", "S01") == "pudong-only"
    assert get_password("dms", "sales01", "S02") == "group-wide"  # no password of its own: the group's
    assert password_source(None, "S01")("dms", "sales01") == "pudong-only"
    monkeypatch.delenv("DEALERBOT_DMS_PASSWORD")
    with pytest.raises(CredentialsMissing, match="DEALERBOT_S02_DMS_PASSWORD.*dealerbot --store S02 credentials set dms"):
        get_password("dms", "sales01", "S02")


def test_a_groups_database_password_is_masked_as_written_and_as_meant(monkeypatch):
    from dealerbot.config import load_settings
    from dealerbot.running.runner import make_masker

    monkeypatch.setenv("DEALERBOT_STORE__URL", "postgresql+psycopg://dealerbot:p%40ss%23w0rd@db.lan/dealerbot")
    masker = make_masker(load_settings(None), None)
    assert "p@ss#w0rd" not in masker("could not connect with p@ss#w0rd")


def test_the_console_address_messages_link_to_is_checked_and_named_when_wrong(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "dealerbot.toml"
    assert load_settings().console.public_url == ""  # none by default: messages carry no link
    cfg.write_text('[console]\npublic_url = "http://192.168.1.20:8750/"\n', encoding="utf-8")
    assert load_settings().console.public_url == "http://192.168.1.20:8750"
    for bad in ("192.168.1.20:8750", "ftp://dealer/", "http://admin:secret@192.168.1.20:8750", "http://x/?a=1"):
        cfg.write_text(f'[console]\npublic_url = "{bad}"\n', encoding="utf-8")
        with pytest.raises(ConfigError) as err:
            load_settings()
        assert "console.public_url" in str(err.value) and "dealerbot.toml" in str(err.value), str(err.value)
        assert "secret" not in str(err.value), str(err.value)  # a password in the address is not echoed
