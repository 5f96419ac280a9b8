"""The OEM portal's login steps that need a person (behaviours login_sms_code, login_captcha,
login_new_password; all off by default): what a phone, an eye and a first login would meet."""

from __future__ import annotations

import httpx

from .conftest import OEM_LOGIN, csrf_of


def _client(sandbox) -> httpx.Client:
    return httpx.Client(base_url=sandbox.oem_url, follow_redirects=False, timeout=10)


def _password(c: httpx.Client, **extra: str) -> httpx.Response:
    page = c.get("/login")
    return c.post("/login", data={**OEM_LOGIN, "csrf_token": csrf_of(page.text), **extra})


def _sms(c: httpx.Client, code: str) -> httpx.Response:
    page = c.get("/login-sms")
    return c.post("/login-sms", data={"sms_code": code, "csrf_token": csrf_of(page.text)})


def test_steps_are_off_by_default(oem_admin):
    b = oem_admin.get("/__admin/behaviours").json()
    assert (b["login_sms_code"], b["login_captcha"], b["login_new_password"]) == (False, False, False)


def test_sms_code_wrong_three_times_locks_the_account_and_expires_after_5_minutes(sandbox, oem_admin, reset):
    assert oem_admin.put("/__admin/behaviours", json={"login_sms_code": True}).status_code == 200
    with _client(sandbox) as c:
        r = _password(c)
        assert r.status_code == 303 and r.headers["location"].startswith("/login-sms")
        assert c.get("/orders").status_code == 303  # not logged in before the code
        sent = oem_admin.get("/__admin/sms").json()
        assert sent["sent"] == 1 and len(sent["code"]) == 6 and not sent["expired"]
        wrong = f"{(int(sent['code']) + 1) % 1_000_000:06d}"
        r = _sms(c, wrong)
        assert r.status_code == 200 and "还可尝试 2 次" in r.text
        r = _sms(c, wrong)
        assert "还可尝试 1 次" in r.text
        r = _sms(c, wrong)
        assert "账号已锁定" in r.text
        accounts = oem_admin.get("/__admin/accounts").json()
        assert accounts["D31001/dealer_admin"]["locked"] is True
        # locked: the right password is refused too, and the right code is no use
        assert "账号已锁定" in _password(c).text
    assert oem_admin.post("/__admin/unlock", json={"dealer_code": "D31001", "username": "dealer_admin"}).status_code == 200
    with _client(sandbox) as c:
        assert _password(c).status_code == 303
        code = oem_admin.get("/__admin/sms").json()["code"]
        assert oem_admin.post("/__admin/sms/age", json={"seconds": 301}).status_code == 200
        assert oem_admin.get("/__admin/sms").json()["expired"] is True
        r = _sms(c, code)
        assert "短信验证码已过期" in r.text and c.get("/orders").status_code == 303
    with _client(sandbox) as c:  # the right code in time logs in
        assert _password(c).status_code == 303
        r = _sms(c, oem_admin.get("/__admin/sms").json()["code"])
        assert r.status_code == 303 and r.headers["location"] == "/orders"
        assert c.get("/orders").status_code == 200


def test_captcha_and_forced_password_change(sandbox, oem_admin, reset):
    assert oem_admin.put("/__admin/behaviours", json={"login_captcha": True, "login_new_password": True}).status_code == 200
    with _client(sandbox) as c:
        page = c.get("/login")
        assert 'id="captcha-image"' in page.text
        image = c.get("/login/captcha.svg")
        answer = oem_admin.get("/__admin/captcha").json()["answer"]
        assert image.headers["content-type"].startswith("image/svg+xml") and answer not in image.text
        r = c.post("/login", data={**OEM_LOGIN, "csrf_token": csrf_of(page.text), "captcha": "0000" if answer != "0000" else "1111"})
        assert "图形验证码错误" in r.text
        assert oem_admin.get("/__admin/accounts").json()["D31001/dealer_admin"]["failed"] == 0  # the password was not tried
        answer = oem_admin.get("/__admin/captcha").json()["answer"]
        r = c.post("/login", data={**OEM_LOGIN, "csrf_token": csrf_of(r.text), "captcha": answer})
        assert r.status_code == 303 and r.headers["location"].startswith("/change-password")
        form = c.get("/change-password")
        token = csrf_of(form.text)
        r = c.post("/change-password", data={"new_password": "short", "confirm_password": "short", "csrf_token": token})
        assert "至少 8 位" in r.text
        r = c.post("/change-password", data={"new_password": "Neu@20261207", "confirm_password": "Neu@20261207",
                                             "csrf_token": token})
        assert r.status_code == 303 and c.get("/orders").status_code == 200
    assert oem_admin.get("/__admin/accounts").json()["D31001/dealer_admin"]["password_changed"] is True
    with _client(sandbox) as c:  # the old password is gone; the new one needs no change again
        page = c.get("/login")
        r = c.post("/login", data={**OEM_LOGIN, "csrf_token": csrf_of(page.text),
                                   "captcha": oem_admin.get("/__admin/captcha").json()["answer"]})
        assert "用户名或密码错误" in r.text
        r = c.post("/login", data={**OEM_LOGIN, "password": "Neu@20261207", "csrf_token": csrf_of(r.text),
                                   "captcha": oem_admin.get("/__admin/captcha").json()["answer"]})
        assert r.status_code == 303 and r.headers["location"] == "/orders"
