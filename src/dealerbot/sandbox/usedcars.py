"""A third practice portal: the car maker's used-car trade-in platform (二手车置换平台).

It is deliberately *not* built like the OEM portal and the DMS: it stands for the small web apps
a dealership meets that nobody here wrote (a Django admin with django-tables2 lists), and is
what the "your own portal" example, its tests and benchmark run against. Its quirks:

* labels are not linked to their inputs (``<label>车架号</label><input name="vin">``: no ``for``
  or ``id``), as Django templates written by hand often are;
* lists are plain tables: column headers, no field attributes on the cells, 25 rows a page, a
  "下一页" link with ``?page=N``;
* the brand dropdown's option values are database ids (pick by visible text);
* 保存 asks a native ``confirm()`` (确认登记该车辆？) before the form is posted;
* an ended session is sent to a 404 page (页面不存在或登录已失效), not to the login page;
* the list has an 导出CSV download, and a notice in an ``<iframe>``; a car's status badge is
  rendered inside an open shadow root; 打印车辆信息 opens a new window;
* 快速登记 (``/quick/add/``) is a form its script sends (``fetch`` to ``/api/cars``) and answers
  with a toast (保存成功 / 保存失败 with the refusal's words), never loading a page;
* the admin-style list (``/admin/cars/``) omits its table when a search finds nothing (``0 辆车``)
  and its 下一页 link carries no class or id.

Test-only admin endpoints (``X-Admin-Token``): ``/__admin/cars`` (ground truth),
``/__admin/counters``, ``/__admin/reset``, ``PUT /__admin/behaviours`` (``session_idle_seconds``,
``save_delay_ms``, ``cdn_script``).

A public page needs no login: ``/public/prices/`` (收车指导价, a plain table), for a portal
without a login. With the behaviour ``cdn_script`` set to a URL (off by default), it loads that
script in its ``<head>`` as pages built on a CDN's libraries do: an office whose network cannot
reach the CDN waits on it.
"""

from __future__ import annotations

import csv
import html
import io
import random
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from .config import SandboxConfig
from .data import GIVEN_CHARS, SURNAMES, vin_check_digit, vin_is_valid
from .rounds import add_rounds
from .sales import add_sales

if TYPE_CHECKING:
    from starlette.middleware.base import RequestResponseEndpoint

DEMO_USERNAME = "zhihuan01"
DEMO_PASSWORD = "Used@2026!"
PAGE_SIZE = 25
CARS = 57  # the default (SandboxConfig.used_cars)
BRANDS = {1: "大众", 2: "丰田", 3: "本田", 4: "别克", 5: "比亚迪", 6: "吉利"}
MODELS = {1: ("朗逸", "帕萨特"), 2: ("卡罗拉", "凯美瑞"), 3: ("雅阁", "思域"), 4: ("君威", "英朗"), 5: ("秦PLUS", "汉"),
          6: ("星瑞", "博越")}
EXPIRED_PATH = "/404/"
STYLE = ("<style>body{font-family:sans-serif;margin:0}header{background:#0b5394;color:#fff;padding:8px 16px}"
         "main{padding:16px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
         ".form-row{margin:6px 0}.form-row label{display:inline-block;width:8em}.errorlist{color:#b00}"
         ".alert-success{background:#dfd;padding:8px}</style>")


@dataclass
class Car:
    id: int
    vin: str
    brand: str
    model: str
    reg_date: str
    mileage_km: int
    price: str
    owner_name: str
    owner_mobile: str
    status: str = "在售"
    license_file: str = ""  # the 行驶证 photo uploaded with it (file name)
    sale_price: str = ""  # the sale (sandbox/sales.py: 售出登记)
    buyer_name: str = ""
    buyer_mobile: str = ""
    sold_on: str = ""


def _vin(r: random.Random, serial: int) -> str:
    body = "LSV" + r.choice("ABCDEFGH") + f"{r.randrange(1000):03d}" + "A0P" + r.choice("HNZ") + f"{serial:06d}"
    return body[:8] + vin_check_digit(body) + body[9:]


def _seed_cars(seed: int, count: int = CARS) -> list[Car]:
    r = random.Random(seed * 7 + 3)
    cars = []
    for i in range(1, count + 1):
        b = r.choice(list(BRANDS))
        reg = date(2026, 11, 1) - timedelta(days=r.randrange(200, 3000))
        name = r.choice(SURNAMES) + "".join(r.choice(GIVEN_CHARS) for _ in range(r.choice((1, 2))))
        mobile = "1" + r.choice("3589") + "".join(r.choice("0123456789") for _ in range(9))
        cars.append(Car(i, _vin(r, 100000 + i), BRANDS[b], r.choice(MODELS[b]), reg.isoformat(), r.randrange(5, 180) * 1000,
                        f"{r.randrange(30, 260) * 1000}.00", name, mobile, r.choice(("在售", "在售", "在售", "已售"))))
    return cars


class _State:
    def __init__(self, cfg: SandboxConfig) -> None:
        self.cfg = cfg
        self.lock = threading.Lock()
        self.idle = cfg.session_idle_seconds
        self.save_delay_ms = 0
        self.cdn_script = ""  # a script URL the public page loads in its <head>; "": none
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.cars = _seed_cars(self.cfg.seed, self.cfg.used_cars)
            self.sessions: dict[str, float] = {}
            self.messages: dict[str, str] = {}
            self.counters = dict.fromkeys(("requests", "logins", "failed_logins", "submits", "created", "exports",
                                           "expired"), 0)

    def session(self, request: Request) -> str | None:
        sid = request.cookies.get("sessionid", "")
        seen = self.sessions.get(sid)
        if seen is None:
            return None
        if time.monotonic() - seen > self.idle:
            del self.sessions[sid]
            self.counters["expired"] += 1
            return None
        self.sessions[sid] = time.monotonic()
        return sid


def _page(title: str, body: str, status: int = 200, logged_in: bool = True) -> HTMLResponse:
    nav = ('<nav><a href="/cars/">车辆列表</a> | <a href="/cars/add/">登记置换车辆</a> | '
           '<a href="/accounts/logout/">退出</a></nav>') if logged_in else ""
    return HTMLResponse(
        f"<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'><title>{html.escape(title)} | 二手车置换平台</title>"
        f"{STYLE}</head><body><header><b>二手车置换平台</b> {nav}</header><main>{body}</main></body></html>",
        status_code=status,
    )


def _guide_price(brand: int, index: int) -> float:
    """The public guide price of a model (fixed: the public page is the same for everyone)."""
    return 60_000 + brand * 17_500 + index * 23_000


def _login_form(error: str = "", next_url: str = "/cars/") -> str:
    errors = f'<ul class="errorlist nonfield"><li>{html.escape(error)}</li></ul>' if error else ""
    return (f"<h1>登录</h1>{errors}<form method='post' action='/accounts/login/'>"
            f"<input type='hidden' name='next' value='{html.escape(next_url)}'>"
            "<div class='form-row'><label>用户名：</label><input type='text' name='username' autocomplete='off'></div>"
            "<div class='form-row'><label>密码：</label><input type='password' name='password'></div>"
            "<button type='submit'>登录</button></form>")


def _car_form(values: dict[str, str], errors: dict[str, str]) -> str:
    def row(label: str, name: str, kind: str = "text") -> str:
        err = f'<ul class="errorlist"><li>{html.escape(errors[name])}</li></ul>' if name in errors else ""
        return (f"<div class='form-row field-{name}'>{err}<label>{label}</label>"
                f"<input type='{kind}' name='{name}' value='{html.escape(values.get(name, ''))}'></div>")

    brand_options = "".join(
        f"<option value='{i}'{' selected' if values.get('brand') == str(i) else ''}>{b}</option>" for i, b in BRANDS.items()
    )
    top = f'<ul class="errorlist nonfield"><li>{html.escape(errors[""])}</li></ul>' if "" in errors else ""
    brand_err = f'<ul class="errorlist"><li>{html.escape(errors["brand"])}</li></ul>' if "brand" in errors else ""
    return (
        f"<h1>登记置换车辆</h1>{top}<form method='post' action='/cars/add/' id='car-form' enctype='multipart/form-data'>"
        + row("车架号：", "vin")
        + f"<div class='form-row field-brand'>{brand_err}<label>品牌：</label><select name='brand'>"
          f"<option value=''>---------</option>{brand_options}</select></div>"
        + row("车型：", "model") + row("上牌日期：", "reg_date", "date") + row("表显里程（公里）：", "mileage_km")
        + row("评估价（元）：", "price") + row("车主姓名：", "owner_name") + row("车主手机：", "owner_mobile")
        + "<div class='form-row'><label>行驶证照片（可选）：</label><input type='file' name='license_photo' accept='image/*'></div>"
        + "<button type='submit' onclick=\"return confirm('确认登记该车辆？')\">保存</button></form>"
    )


# 快速登记: a form its script sends (fetch to /api/cars, JSON) and answers with a toast that goes
# away after a few seconds; the page never navigates. The brand is typed, not picked.
QUICK_FORM = """
<h1>快速登记</h1>
<div id='quick'>
<div class='form-row'><label>车架号：</label><input name='vin'></div>
<div class='form-row'><label>品牌：</label><input name='brand'></div>
<div class='form-row'><label>车型：</label><input name='model'></div>
<div class='form-row'><label>上牌日期：</label><input name='reg_date' type='date'></div>
<div class='form-row'><label>表显里程（公里）：</label><input name='mileage_km'></div>
<div class='form-row'><label>评估价（元）：</label><input name='price'></div>
<div class='form-row'><label>车主姓名：</label><input name='owner_name'></div>
<div class='form-row'><label>车主手机：</label><input name='owner_mobile'></div>
<button type='button' id='quick-save'>保存</button>
</div>
<div id='toasts' style='position:fixed;top:8px;right:8px'></div>
<script>
document.getElementById('quick-save').addEventListener('click', async () => {
  const data = {};
  document.querySelectorAll('#quick input').forEach(el => { data[el.name] = el.value; });
  let ok = false, said = '';
  try {
    const r = await fetch('/api/cars', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                        body: JSON.stringify(data)});
    const body = await r.json().catch(() => ({}));
    ok = r.ok; said = ok ? body.message : (body.error || ('HTTP ' + r.status));
  } catch (e) { said = '网络错误'; }
  const t = document.createElement('div');
  t.className = ok ? 'toast toast-ok' : 'toast toast-error';
  t.textContent = (ok ? '保存成功：' : '保存失败：') + said;
  document.getElementById('toasts').appendChild(t);
  if (ok) document.querySelectorAll('#quick input').forEach(el => { el.value = ''; });
  setTimeout(() => t.remove(), 4000);
});
</script>
"""


def create_usedcars_app(cfg: SandboxConfig, admin_token: str) -> FastAPI:
    """The trade-in platform as an ASGI app (own state, seeded from ``cfg.seed``)."""
    st = _State(cfg)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.usedcars = st

    @app.middleware("http")
    async def count(request: Request, call_next: RequestResponseEndpoint) -> Response:
        if not request.url.path.startswith("/__admin"):
            st.counters["requests"] += 1
        return await call_next(request)

    def guard(request: Request) -> str | RedirectResponse:
        sid = st.session(request)
        if sid is None:  # the quirk: an ended session lands on a 404 page, not the login page
            return RedirectResponse(f"{EXPIRED_PATH}?from={quote(request.url.path)}", status_code=302)
        return sid

    def admin(request: Request) -> None:
        if not secrets.compare_digest(request.headers.get("X-Admin-Token", ""), admin_token):
            raise HTTPException(403, "admin token required")

    add_rounds(app, admin)  # /rounds/: the moving form of bench/moving_form.py (sandbox/rounds.py)

    @app.get("/", response_model=None)
    async def root() -> RedirectResponse:
        return RedirectResponse("/cars/", status_code=302)

    @app.get("/404/", response_class=HTMLResponse)
    async def not_found() -> HTMLResponse:
        return _page("页面不存在", "<h1>页面不存在或登录已失效</h1><p><a href='/accounts/login/'>重新登录</a></p>", 404, False)

    @app.get("/accounts/login/", response_class=HTMLResponse)
    async def login_page(next: str = "/cars/") -> HTMLResponse:
        return _page("登录", _login_form(next_url=next), logged_in=False)

    @app.post("/accounts/login/", response_model=None)
    async def login(username: str = Form(""), password: str = Form(""), next: str = Form("/cars/")) -> Response:
        if username != DEMO_USERNAME or password != DEMO_PASSWORD:
            st.counters["failed_logins"] += 1
            return _page("登录", _login_form("请输入正确的用户名和密码。", next), logged_in=False)
        st.counters["logins"] += 1
        sid = secrets.token_urlsafe(24)
        st.sessions[sid] = time.monotonic()
        target = next if next.startswith("/") and not next.startswith("//") else "/cars/"
        resp = RedirectResponse(target, status_code=302)
        resp.set_cookie("sessionid", sid, httponly=True, samesite="lax")
        return resp

    @app.get("/accounts/logout/", response_model=None)
    async def logout(request: Request) -> Response:
        st.sessions.pop(request.cookies.get("sessionid", ""), None)
        return RedirectResponse("/accounts/login/", status_code=302)

    @app.get("/notice/", response_class=HTMLResponse)
    async def notice() -> HTMLResponse:
        return HTMLResponse("<!doctype html><meta charset='utf-8'><p>今日收车指导：<b id='guide-index'>0.93</b></p>")

    @app.get("/cars/", response_model=None)
    async def cars(request: Request, page: int = 1, q: str = "") -> Response:
        sid = guard(request)
        if isinstance(sid, Response):
            return sid
        rows = [c for c in st.cars if not q or q.upper() in c.vin]
        pages = max(1, -(-len(rows) // PAGE_SIZE))
        if not 1 <= page <= pages:
            return _page("页面不存在", "<h1>无效页码</h1>", 404)
        shown = rows[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
        body = "".join(
            f"<tr><td><a href='/cars/{c.id}/'>{c.vin}</a></td><td>{html.escape(c.brand)}</td><td>{html.escape(c.model)}</td>"
            f"<td>{c.reg_date}</td><td>{c.mileage_km:,}</td><td>{float(c.price):,.2f}</td>"
            f"<td>{html.escape(c.owner_name)}</td><td>{c.owner_mobile}</td><td>{c.status}</td></tr>" for c in shown
        ) or "<tr><td colspan='9'>没有数据</td></tr>"
        heads = ("车架号", "品牌", "车型", "上牌日期", "表显里程", "评估价", "车主", "手机", "状态")
        thead = "".join(f"<th class='orderable'><a href='?sort={i}'>{h}</a></th>" for i, h in enumerate(heads))
        pager = ""
        if page < pages:
            extra = f"&{urlencode({'q': q})}" if q else ""
            pager = f"<ul class='pagination'><li class='next'><a href='?page={page + 1}{extra}'>下一页 »</a></li></ul>"
        flash = st.messages.pop(sid, "")
        toast = f"<div class='messages'><div class='alert alert-success'>{html.escape(flash)}</div></div>" if flash else ""
        return _page("车辆列表", (
            f"{toast}<h1>置换车辆</h1><iframe src='/notice/' title='公告' style='height:40px;border:0'></iframe>"
            f"<form method='get'><input name='q' value='{html.escape(q)}' placeholder='车架号'><button>查询</button></form>"
            f"<p><a href='/cars/export.csv' class='export'>导出CSV</a></p>"
            f"<table class='table table-striped'><thead><tr>{thead}</tr></thead><tbody>{body}</tbody></table>{pager}"
        ))

    @app.get("/cars/export.csv", response_model=None)
    async def export(request: Request) -> Response:
        sid = guard(request)
        if isinstance(sid, Response):
            return sid
        st.counters["exports"] += 1
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(("车架号", "品牌", "车型", "上牌日期", "表显里程", "评估价", "状态"))
        for c in st.cars:
            w.writerow((c.vin, c.brand, c.model, c.reg_date, c.mileage_km, c.price, c.status))
        return Response(out.getvalue().encode("utf-8-sig"), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": "attachment; filename=cars.csv"})

    @app.get("/cars/add/", response_model=None)
    async def add_page(request: Request) -> Response:
        sid = guard(request)
        return sid if isinstance(sid, Response) else _page("登记置换车辆", _car_form({}, {}))

    @app.post("/cars/add/", response_model=None)
    async def add(request: Request) -> Response:
        sid = guard(request)
        if isinstance(sid, Response):
            return sid
        st.counters["submits"] += 1
        posted = await request.form()
        photo = posted.get("license_photo")
        license_file = getattr(photo, "filename", "") or ""
        form = {k: str(v).strip() for k, v in posted.items() if k != "license_photo"}
        errors: dict[str, str] = {}
        vin = form.get("vin", "").upper()
        if not vin_is_valid(vin):
            errors["vin"] = "车架号无效（校验位不符）。"
        elif any(c.vin == vin for c in st.cars):
            errors["vin"] = "该车架号已登记。"
        brand = BRANDS.get(int(form["brand"])) if form.get("brand", "").isdigit() else None
        if brand is None:
            errors["brand"] = "请选择品牌。"
        for key, label in (("model", "车型"), ("reg_date", "上牌日期"), ("owner_name", "车主姓名")):
            if not form.get(key):
                errors[key] = f"{label}为必填项。"
        mobile = form.get("owner_mobile", "")
        if not (len(mobile) == 11 and mobile.isdigit() and mobile.startswith("1")):
            errors["owner_mobile"] = "请输入11位手机号。"
        try:
            mileage = int(form.get("mileage_km", "").replace(",", ""))
            price = f"{float(form.get('price', '').replace(',', '')):.2f}"
        except ValueError:
            errors[""] = "里程和评估价须为数字。"
        if errors:
            return _page("登记置换车辆", _car_form(form, errors))
        if st.save_delay_ms:
            import asyncio

            await asyncio.sleep(st.save_delay_ms / 1000)
        with st.lock:
            car = Car(max((c.id for c in st.cars), default=0) + 1, vin, brand or "", form["model"], form["reg_date"],
                      mileage, price, form["owner_name"], mobile, license_file=license_file)
            st.cars.append(car)
            st.counters["created"] += 1
        st.messages[sid] = f"车辆 {vin} 已登记。"
        return RedirectResponse(f"/cars/{car.id}/", status_code=302)

    def car_page(request: Request, car_id: int) -> tuple[str, Car] | Response:
        """The session and the car, or the answer instead (the 404 page of an ended session, or
        of a car that is not there)."""
        sid = guard(request)
        if isinstance(sid, Response):
            return sid
        car = next((c for c in st.cars if c.id == car_id), None)
        return (sid, car) if car is not None else _page("页面不存在", "<h1>页面不存在</h1>", 404)

    add_sales(app, st, car_page, _page)  # /cars/{id}/sell/: the sale form (sandbox/sales.py)

    @app.get("/cars/{car_id}/", response_model=None)
    async def detail(request: Request, car_id: int) -> Response:
        found = car_page(request, car_id)
        if isinstance(found, Response):
            return found
        sid, car = found
        flash = st.messages.pop(sid, "")
        toast = f"<div class='messages'><div class='alert alert-success'>{html.escape(flash)}</div></div>" if flash else ""
        rows = "".join(f"<dt>{label}</dt><dd>{html.escape(str(getattr(car, key)))}</dd>" for label, key in (
            ("车架号", "vin"), ("品牌", "brand"), ("车型", "model"), ("上牌日期", "reg_date"), ("表显里程", "mileage_km"),
            ("评估价", "price"), ("车主", "owner_name"), ("手机", "owner_mobile")))
        badge = ("<car-status></car-status><script>customElements.define('car-status', class extends HTMLElement {"
                 "connectedCallback(){const r=this.attachShadow({mode:'open'});"
                 f"r.innerHTML='<span class=\"status-badge\">{car.status}</span>';}}}});</script>")
        printing = f"<p><a href='/cars/{car.id}/print/' target='_blank' id='print-link'>打印车辆信息</a></p>"
        return _page(f"车辆 {car.vin}", f"{toast}<h1>车辆详情</h1><dl class='car'>{rows}</dl>{badge}{printing}")

    @app.get("/cars/{car_id}/print/", response_model=None)
    async def print_page(request: Request, car_id: int) -> Response:
        found = car_page(request, car_id)
        if isinstance(found, Response):
            return found
        _, car = found
        return HTMLResponse(f"<!doctype html><meta charset='utf-8'><title>打印</title><h1 class='print-vin'>{car.vin}</h1>"
                            f"<p>{html.escape(car.brand)} {html.escape(car.model)}</p>")

    # -- a script-handled form and an admin-style list (h-api): /quick/add/, /api/cars, /admin/cars/
    @app.get("/quick/add/", response_model=None)
    async def quick_page(request: Request) -> Response:
        sid = guard(request)
        return sid if isinstance(sid, Response) else _page("快速登记", QUICK_FORM)

    @app.post("/api/cars", response_model=None)
    async def quick_save(request: Request) -> Response:
        if st.session(request) is None:
            return JSONResponse({"error": "登录已失效，请重新登录"}, status_code=401)
        st.counters["submits"] += 1
        try:
            posted = await request.json()
        except ValueError:
            posted = None
        if not isinstance(posted, dict):
            return JSONResponse({"error": "请求格式不正确"}, status_code=400)
        form = {k: str(posted.get(k, "")).strip() for k in
                ("vin", "brand", "model", "reg_date", "mileage_km", "price", "owner_name", "owner_mobile")}
        vin = form["vin"].upper()
        mobile = form["owner_mobile"]
        error = ""
        if not vin_is_valid(vin):
            error = "车架号无效（校验位不符）"
        elif any(c.vin == vin for c in st.cars):
            error = "该车架号已登记"
        elif form["brand"] not in BRANDS.values():
            error = f"品牌「{form['brand']}」不在本平台可置换品牌之列"
        elif not all(form[k] for k in ("model", "reg_date", "owner_name")):
            error = "车型、上牌日期和车主姓名为必填项"
        elif not (len(mobile) == 11 and mobile.isdigit() and mobile.startswith("1")):
            error = "请输入11位手机号"
        try:
            mileage = int(form["mileage_km"].replace(",", "") or "0")
            price = f"{float(form['price'].replace(',', '') or '0'):.2f}"
        except ValueError:
            error = error or "里程和评估价须为数字"
        if error:
            return JSONResponse({"error": error}, status_code=400)
        if st.save_delay_ms:
            import asyncio

            await asyncio.sleep(st.save_delay_ms / 1000)
        with st.lock:
            car = Car(max((c.id for c in st.cars), default=0) + 1, vin, form["brand"], form["model"], form["reg_date"],
                      mileage, price, form["owner_name"], mobile)
            st.cars.append(car)
            st.counters["created"] += 1
        return JSONResponse({"id": car.id, "message": f"车辆 {vin} 已登记"})

    @app.get("/admin/cars/", response_model=None)
    async def admin_list(request: Request, p: int = 1, q: str = "") -> Response:
        """Django admin's change list: an empty search shows no table at all ("0 辆车"), and the
        pager's links carry no class or id (found by their words only)."""
        sid = guard(request)
        if isinstance(sid, Response):
            return sid
        rows = [c for c in st.cars if not q or q.upper() in c.vin]
        search = (f"<form id='changelist-search' method='get'><input name='q' value='{html.escape(q)}'>"
                  "<input type='submit' value='搜索'></form>")
        if not rows:
            return _page("选择车辆", f"<h1>选择要修改的车辆</h1>{search}<p>0 辆车</p>")
        pages = -(-len(rows) // PAGE_SIZE)
        shown = rows[(p - 1) * PAGE_SIZE: p * PAGE_SIZE]
        body = "".join(f"<tr><th><a href='/cars/{c.id}/'>{c.vin}</a></th><td>{html.escape(c.brand)}</td>"
                       f"<td>{html.escape(c.model)}</td><td>{html.escape(c.owner_name)}</td></tr>" for c in shown)
        extra = f"&{urlencode({'q': q})}" if q else ""
        pager = f"第 {p}/{pages} 页，共 {len(rows)} 辆车"
        if p < pages:
            pager += f" <a href='?p={p + 1}{extra}'>下一页</a>"
        return _page("选择车辆", (
            f"<h1>选择要修改的车辆</h1>{search}<div id='changelist'><table id='result_list'><thead><tr>"
            "<th>车架号</th><th>品牌</th><th>车型</th><th>车主</th></tr></thead>"
            f"<tbody>{body}</tbody></table><p>{pager}</p></div>"))

    @app.get("/public/prices/", response_class=HTMLResponse)
    async def public_prices() -> HTMLResponse:
        # public: no session needed (a portal without a login reads it)
        rows = "".join(f"<tr><td>GP{b}{i:02d}</td><td>{html.escape(BRANDS[b])}</td><td>{html.escape(m)}</td>"
                       f"<td>{_guide_price(b, i):,.2f}</td></tr>"
                       for b, models in MODELS.items() for i, m in enumerate(models))
        script = f"<script src='{html.escape(st.cdn_script)}'></script>" if st.cdn_script else ""
        return HTMLResponse(
            f"<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'><title>收车指导价 | 二手车置换平台</title>"
            f"{STYLE}{script}</head><body><header><b>二手车置换平台</b></header><main><h1>收车指导价（公开）</h1>"
            f"<table class='table prices'><thead><tr><th>编号</th><th>品牌</th><th>车型</th><th>指导价</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></main></body></html>")

    @app.get("/__admin/cars")
    async def admin_cars(request: Request) -> JSONResponse:
        admin(request)
        return JSONResponse({"cars": [asdict(c) for c in st.cars]})

    @app.get("/__admin/counters")
    async def admin_counters(request: Request) -> JSONResponse:
        admin(request)
        return JSONResponse(st.counters)

    @app.post("/__admin/reset")
    async def admin_reset(request: Request) -> JSONResponse:
        admin(request)
        st.reset()
        st.idle, st.save_delay_ms = cfg.session_idle_seconds, 0
        st.cdn_script = ""
        return JSONResponse({"ok": True})

    @app.put("/__admin/behaviours")
    async def admin_behaviours(request: Request) -> JSONResponse:
        admin(request)
        data = await request.json()
        unknown = set(data) - {"session_idle_seconds", "save_delay_ms", "cdn_script"}
        if unknown:
            raise HTTPException(422, f"unknown behaviour(s): {sorted(unknown)}")
        st.idle = float(data.get("session_idle_seconds", st.idle))
        st.save_delay_ms = int(data.get("save_delay_ms", st.save_delay_ms))
        st.cdn_script = str(data.get("cdn_script", st.cdn_script))
        return JSONResponse({"session_idle_seconds": st.idle, "save_delay_ms": st.save_delay_ms,
                             "cdn_script": st.cdn_script})

    return app
