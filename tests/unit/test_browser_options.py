"""[browser] / portal browser options (#23): validation naming the key, the proxy password only
from the environment and masked, the allowed-hosts rule and its URL pattern, portals without a
login, every missing selector named at once."""

from __future__ import annotations

import os

import pytest

from dealerbot.config import load_settings
from dealerbot.errors import ConfigError, UnknownSelector
from dealerbot.running.runner import make_masker
from dealerbot.web.browser import blocked_hosts_pattern
from dealerbot.web.locators import load_selector_file


def _settings(tmp_path, monkeypatch, text: str, **env: str):
    monkeypatch.chdir(tmp_path)
    for var in [v for v in os.environ if v.startswith("DEALERBOT_")]:
        monkeypatch.delenv(var)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    (tmp_path / "dealerbot.toml").write_text(text, encoding="utf-8")
    return load_settings()


@pytest.mark.parametrize(("text", "words"), [
    ('[browser]\nproxy = {server = "ftp://10.0.0.5:21"}\n', "browser.proxy.server"),
    ('[browser]\nproxy = {server = "http://10.0.0.5:notaport"}\n', "browser.proxy.server"),
    ('[browser]\nproxy = {server = "http://rpa:secret@10.0.0.5:3128"}\n', "proxy.username"),
    ('[browser]\nallowed_hosts = ["https://portal.example.com/"]\n', "browser.allowed_hosts"),
    ('[portals.x]\nurl = "http://x.example.com"\nallowed_hosts = ["*.*.com"]\n', "portals.x.allowed_hosts"),
    ('[browser]\nargs = ["lang=zh-CN"]\n', "browser.args"),
    ('[browser]\nproxy = {server = "http://10.0.0.5:3128", password = "secret"}\n', "DEALERBOT_BROWSER__PROXY__PASSWORD"),
    ('[portals.x]\nurl = "http://x.example.com"\nproxy = {server = "http://p:1", password = "secret"}\n',
     "DEALERBOT_PORTALS__X__PROXY__PASSWORD"),
])
def test_bad_browser_options_are_refused_naming_the_key(tmp_path, monkeypatch, text, words):
    with pytest.raises(ConfigError) as err:
        _settings(tmp_path, monkeypatch, text)
    assert words in str(err.value) and "secret" not in str(err.value)


def test_allowed_hosts_rule_proxy_from_the_environment_and_no_login(tmp_path, monkeypatch):
    s = _settings(tmp_path, monkeypatch, (
        '[browser]\nallowed_hosts = ["*.faw-vw.com"]\nproxy = {server = "10.0.0.5:3128", username = "rpa"}\n'
        'args = ["--lang=zh-CN"]\n'
        '[portals.prices]\nurl = "http://Prices.example.com:8080/x"\nallowed_hosts = ["cdn.example.cn"]\n'
        'browser_args = ["--disable-gpu"]\n'
        '[portals.open]\nurl = "http://open.example.com"\nallowed_hosts = ["*"]\n'
        '[portals.shop]\nurl = "http://shop.example.com"\nlogin = true\nproxy = {server = "socks5://10.0.0.6:1080"}\n'
    ), DEALERBOT_BROWSER__PROXY__PASSWORD="Pr0xy-pass")
    assert s.allowed_hosts("prices") == ["prices.example.com", "*.faw-vw.com", "cdn.example.cn"]
    assert s.allowed_hosts("open") == []  # "*": no restriction for that portal
    assert s.allowed_hosts("oem") == ["127.0.0.1", "*.faw-vw.com"]
    assert s.portal_proxy("prices").server == "http://10.0.0.5:3128" and s.portal_proxy("prices").password == "Pr0xy-pass"
    assert s.portal_proxy("shop").server == "socks5://10.0.0.6:1080"  # a portal's own replaces [browser]'s
    assert s.launch_settings(["prices"]).args == ["--lang=zh-CN", "--disable-gpu"]
    assert s.launch_settings(["oem"]).args == ["--lang=zh-CN"]
    # no username, dealer code or login fields: no login; login = true: a login (a password only)
    assert not s.portal("prices").needs_login and s.portal("shop").needs_login and s.portal("oem").needs_login
    masker = make_masker(s, None, ["prices"])
    assert "Pr0xy-pass" not in masker("proxy said Pr0xy-pass") and "Pr0xy-pass" not in masker(s.portal_proxy("prices").url)


def test_the_pattern_matches_only_other_hosts():
    blocked = blocked_hosts_pattern(["portal.example.com", "*.faw-vw.com", "10.1.2.3"])
    for url in ("http://portal.example.com/x", "https://portal.example.com:8443/a?b", "http://PORTAL.example.com",
                "https://a.faw-vw.com/x.js", "https://a.b.faw-vw.com/", "http://10.1.2.3:8080/", "data:text/plain,x"):
        assert not blocked.search(url), url
    for url in ("http://cdn.example.invalid/x.js", "https://portal.example.com.evil.cn/", "https://faw-vw.com/",
                "http://10.1.2.30/", "wss://push.example.net/", "https://xfaw-vw.com/"):
        assert blocked.search(url), url


def test_every_missing_selector_is_named_at_once(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("portal: x\nselectors:\n  login.form:\n    - css: 'form'\n", encoding="utf-8")
    f = load_selector_file(path)
    with pytest.raises(UnknownSelector) as err:
        f.require(["login.form", "login.password", "login.submit", "login.error"])
    assert all(f"'{n}'" in str(err.value) for n in ("login.password", "login.submit", "login.error"))
    assert str(path) in str(err.value) and "3 names missing" in str(err.value)
