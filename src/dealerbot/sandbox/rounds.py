"""A moving form on the used-car platform (``/rounds/``): a speed drill like the RPA Challenge,
for the benchmark of form filling (``bench/moving_form.py``) and its test.

* 10 rounds of the same form, one record each from :data:`RECORDS` (a fixed list of 10);
* 7 labelled fields (Chinese labels, :data:`FIELDS`) whose order, positions and inputs change
  every round: new random ``name``/``id`` attributes, and each label tied to its input a way
  drawn at random (``for=``, the input nested in the label, ``aria-label``), so that only the
  label text finds a field;
* a 提交 button that slides in every round (a CSS transition of 200 ms: moving, not yet still);
* the page's own timer: started when the first round is shown, stopped at the 10th submit,
  shown on the page (``#elapsed``: 用时 N 毫秒) and sent with every round's values to the
  platform, which keeps them for the admin API.

No login: the drill is a page of its own. Admin (``X-Admin-Token``): ``GET /__admin/rounds``
(``records`` expected, ``runs`` done: ``elapsed_ms`` and ``rounds``, the values submitted per
round by field key) and ``POST /__admin/rounds/reset``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse

FIELDS = (("name", "客户姓名"), ("mobile", "手机号码"), ("vin", "车架号"), ("model", "意向车型"),
          ("color", "车身颜色"), ("price", "成交价格"), ("city", "所在城市"))
RECORDS = (
    {"name": "王建国", "mobile": "13800138001", "vin": "LSVAB2180PH100001", "model": "朗逸", "color": "白色",
     "price": "128000", "city": "上海"},
    {"name": "李秀英", "mobile": "13900139002", "vin": "LSVCD3281PH100002", "model": "帕萨特", "color": "黑色",
     "price": "215000", "city": "苏州"},
    {"name": "张伟", "mobile": "15800158003", "vin": "LSVEF4382PH100003", "model": "卡罗拉", "color": "银色",
     "price": "119800", "city": "杭州"},
    {"name": "刘芳", "mobile": "18600186004", "vin": "LSVGH5483PH100004", "model": "凯美瑞", "color": "红色",
     "price": "199900", "city": "南京"},
    {"name": "陈静", "mobile": "13500135005", "vin": "LSVAB6584PH100005", "model": "雅阁", "color": "蓝色",
     "price": "179800", "city": "无锡"},
    {"name": "杨磊", "mobile": "13700137006", "vin": "LSVCD7685PH100006", "model": "思域", "color": "灰色",
     "price": "139900", "city": "宁波"},
    {"name": "赵敏", "mobile": "18900189007", "vin": "LSVEF8786PH100007", "model": "君威", "color": "白色",
     "price": "168000", "city": "合肥"},
    {"name": "黄晓明", "mobile": "15000150008", "vin": "LSVGH9887PH100008", "model": "秦PLUS", "color": "绿色",
     "price": "109800", "city": "常州"},
    {"name": "周丽", "mobile": "13300133009", "vin": "LSVAB1988PH100009", "model": "汉", "color": "黑色",
     "price": "209800", "city": "嘉兴"},
    {"name": "吴强", "mobile": "17700177010", "vin": "LSVCD2089PH100010", "model": "星瑞", "color": "银色",
     "price": "135800", "city": "绍兴"},
)
MAX_RUNS = 50  # runs kept for the admin API (oldest dropped)

_PAGE = """<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'><title>移动表单练习 | 二手车置换平台</title>
<style>
body{font-family:sans-serif;margin:16px}
#grid{display:grid;grid-template-columns:repeat(2,18em);gap:8px 24px;margin:12px 0}
#grid label{display:block}
#grid .cell span{display:inline-block;width:6em}
#submit{width:8em;height:2.4em;transition:transform 200ms ease-out}
#submit.enter{transform:translateX(40px)}
#done{color:#060}
</style></head><body>
<h1>移动表单练习</h1><p>共 10 轮：每轮按标签填写 7 项后点击「提交」。字段位置每轮变化。</p>
<p id='round'></p><form id='drill' onsubmit='return false'><div id='grid'></div>
<button type='button' id='submit'>提交</button></form><p id='elapsed'></p><p id='done' hidden>成绩已提交</p>
<script>
const FIELDS = __FIELDS__;
const RECORDS = __RECORDS__;
const rounds = [];
let round = 0, started = 0, current = {};
const rid = () => 'f' + Math.random().toString(36).slice(2, 10);
function shuffle(a) { for (let i = a.length - 1; i > 0; i--) { const j = Math.floor(Math.random() * (i + 1)); [a[i], a[j]] = [a[j], a[i]]; } return a; }
function show() {
  const grid = document.getElementById('grid');
  grid.innerHTML = '';
  current = {};
  for (const [key, text] of shuffle(FIELDS.slice())) {
    const cell = document.createElement('div');
    cell.className = 'cell';
    cell.style.marginTop = Math.floor(Math.random() * 24) + 'px';
    const input = document.createElement('input');
    input.name = rid();
    const way = ['for', 'nested', 'aria'][Math.floor(Math.random() * 3)];
    if (way === 'aria') {
      input.setAttribute('aria-label', text);
      const span = document.createElement('span'); span.textContent = '\\u00a0';
      cell.append(span, input);
    } else if (way === 'nested') {
      const label = document.createElement('label');
      const span = document.createElement('span'); span.textContent = text;
      label.append(span, input);
      cell.append(label);
    } else {
      input.id = rid();
      const label = document.createElement('label'); label.htmlFor = input.id; label.textContent = text;
      cell.append(label, input);
    }
    current[key] = input;
    grid.append(cell);
  }
  document.getElementById('round').textContent = '第 ' + (round + 1) + ' 轮 / 共 10 轮';
  const button = document.getElementById('submit');
  button.classList.add('enter');
  button.getBoundingClientRect();
  requestAnimationFrame(() => button.classList.remove('enter'));
}
document.getElementById('submit').addEventListener('click', () => {
  if (round >= 10) return;
  const values = {};
  for (const [key] of FIELDS) values[key] = current[key].value;
  rounds.push(values);
  round += 1;
  if (round < 10) { show(); return; }
  const elapsed = Math.round(performance.now() - started);
  document.getElementById('elapsed').textContent = '用时 ' + elapsed + ' 毫秒';
  fetch('/rounds/result', {method: 'POST', headers: {'Content-Type': 'application/json'},
                           body: JSON.stringify({elapsed_ms: elapsed, rounds})})
    .then(r => { if (r.ok) document.getElementById('done').hidden = false; });
});
show();
started = performance.now();
</script></body></html>"""


def add_rounds(app: FastAPI, admin: Callable[[Request], None]) -> None:
    """Serve the moving form on ``app`` (``/rounds/``), with its admin endpoints (``admin``
    raises unless the request has the admin token)."""
    runs: list[dict[str, Any]] = []
    lock = threading.Lock()
    page = (_PAGE.replace("__FIELDS__", json.dumps([list(f) for f in FIELDS], ensure_ascii=False))
            .replace("__RECORDS__", json.dumps(RECORDS, ensure_ascii=False)))

    @app.get("/rounds/", response_class=HTMLResponse)
    async def rounds_page() -> HTMLResponse:
        return HTMLResponse(page)

    @app.post("/rounds/result")
    async def rounds_result(request: Request) -> JSONResponse:
        data = await request.json()
        if not isinstance(data, dict) or not isinstance(data.get("rounds"), list):
            raise HTTPException(422, "rounds: a list of the values submitted in each round")
        with lock:
            runs.append({"elapsed_ms": data.get("elapsed_ms"), "rounds": data["rounds"]})
            del runs[:-MAX_RUNS]
        return JSONResponse({"ok": True})

    @app.get("/__admin/rounds")
    async def admin_rounds(request: Request) -> JSONResponse:
        admin(request)
        with lock:
            return JSONResponse({"records": list(RECORDS), "fields": dict(FIELDS), "runs": list(runs)})

    @app.post("/__admin/rounds/reset")
    async def admin_rounds_reset(request: Request) -> JSONResponse:
        admin(request)
        with lock:
            runs.clear()
        return JSONResponse({"ok": True})
