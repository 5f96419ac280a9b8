"""A practice desktop (client/server) DMS client: Tkinter, on the sandbox DMS's own data and rules.

It talks to the sandbox DMS server over HTTP as a C/S client talks to its server (its login, its
forms, its lists), so the DMS's admin ground truth covers what is typed here too, and its
validation (VIN check digit, mobile, ID number, duplicates) answers here as a 保存失败 message
box. Started by ``dealerbot sandbox --desktop`` (needs a display; tests run it under Xvfb)::

    python -m dealerbot.sandbox.desktop --dms-url http://127.0.0.1:8702 [--slow-save-ms 1500]
        [--prompt-rate 0.2] [--focus-steal-rate 0.2] [--seed 1]

Screens (window titles are the contract the desktop driver's YAML is written against):

* ``DMS客户端 - 登录``: 用户名, 密码 (Tab between them), Enter logs in; a refusal is a message box.
* ``DMS客户端 - 销售合同``: two tabs, 销售合同 (Ctrl+1) and 客户 (Ctrl+2), each a 查询 box (Ctrl+F
  focuses it, Enter searches) and a result list; Ctrl+C copies the selected rows (every row
  shown when none is selected), one a line, as tab-separated ``field=value`` pairs; 文件 → 导出CSV (Ctrl+E) writes the
  list shown to ``--export-dir``; Ctrl+N a new contract, Ctrl+U a new customer, Ctrl+O opens the
  selected contract.
* ``新建合同`` / ``编辑合同 HT…``: fields in tab order 客户编号, 车型 (a combobox of the DMS's model
  codes), 颜色, VIN, 车价, 定金, 交车日期 (YYYY-MM-DD), 厂家订单号, 合同状态; Alt+S (保存) asks
  ``确认`` (确认保存？, Enter = 是); saved: the form closes and the status bar says
  ``合同 HT… 已保存``; refused: a ``保存失败`` message box with the server's reasons, the form stays.
* ``新增客户``: 姓名, 手机, 证件号码, 地址; Alt+S saves (no confirmation): ``客户 KH… 已保存``.

Nuisances, like a real client's: ``--slow-save-ms`` (the save answers late, the window frozen),
``--prompt-rate`` (an unexpected ``提示`` modal when a form opens), ``--focus-steal-rate`` (a
``系统消息`` window pops up over the form and takes the focus).
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import time
import tkinter as tk
from functools import partial
from pathlib import Path
from tkinter import messagebox, ttk  # messagebox: login and search failures only
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
from lxml import html as lxml_html

from .data import CONTRACT_STATUSES, DMS_MODELS

TITLE = "DMS客户端"
CONTRACT_FIELDS = (("customer_no", "客户编号"), ("model_code", "车型"), ("color", "颜色"), ("vin", "VIN"),
                   ("price", "车价"), ("deposit", "定金"), ("delivery_date", "交车日期"),
                   ("oem_order_no", "厂家订单号"), ("status", "合同状态"))
CUSTOMER_FIELDS = (("name", "姓名"), ("mobile", "手机"), ("id_number", "证件号码"), ("address", "地址"))
CONTRACT_COLUMNS = ("contract_no", "customer_no", "customer_name", "model_code", "color", "vin", "price", "deposit",
                    "delivery_date", "oem_order_no", "status")
CUSTOMER_COLUMNS = ("customer_no", "name", "mobile", "id_number", "address")
FONT = ("WenQuanYi Micro Hei", 11)


class Server:
    """The DMS server, as the client reaches it (its session cookie, its CSRF tokens)."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url.rstrip("/"), timeout=60, follow_redirects=False)

    def _csrf(self, path: str) -> str:
        page = self.http.get(path)
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        if page.status_code != 200 or not found:
            raise RuntimeError("服务器无响应或会话已失效")
        return found.group(1)

    def login(self, username: str, password: str) -> str | None:
        """None when logged in, else the server's reason."""
        r = self.http.post("/login", data={"username": username, "password": password, "csrf_token": self._csrf("/login")})
        if r.status_code == 303:
            self.http.cookies.update(r.cookies)
            return None
        err = lxml_html.fromstring(r.text).xpath("//*[@id='login-error']")
        return err[0].text_content().strip() if err else f"HTTP {r.status_code}"

    def rows(self, path: str, q: str) -> list[dict[str, str]]:
        r = self.http.get(path, params={"q": q})
        if r.status_code != 200:
            raise RuntimeError("会话已失效，请重新登录" if r.status_code in (302, 303) else f"HTTP {r.status_code}")
        root = lxml_html.fromstring(r.text)
        out = []
        for tr in root.xpath("//tr[@data-contract-no or @data-customer-no]"):
            out.append({td.get("data-field"): td.text_content().strip() for td in tr.xpath("./td[@data-field]")})
        return out

    def save(self, path: str, values: dict[str, str]) -> tuple[str | None, dict[str, str]]:
        """(the new record's number, {}) when saved, else (None, {field: reason})."""
        token = self._csrf(path)
        r = self.http.post(path, data={**values, "csrf_token": token})
        if r.status_code == 303:
            return parse_qs(urlparse(r.headers["location"]).query).get("q", [""])[0], {}
        root = lxml_html.fromstring(r.text)
        errors = {e.get("data-for") or "": e.text_content().strip() for e in root.xpath("//*[contains(@class,'field-error')]")}
        return None, errors or {"": f"HTTP {r.status_code}"}

    def contract(self, contract_no: str) -> dict[str, str]:
        r = self.http.get(f"/contracts/{contract_no}/edit")
        root = lxml_html.fromstring(r.text)
        out = {}
        for name, _ in CONTRACT_FIELDS:
            el = root.xpath(f"//*[@name='{name}']")
            if el:
                out[name] = el[0].value if el[0].tag != "select" else (el[0].value or "")
        return out


class Client:
    """The client's windows."""

    def __init__(self, root: tk.Tk, server: Server, args: argparse.Namespace) -> None:
        self.root, self.server, self.args = root, server, args
        self.rng = random.Random(args.seed)
        self.export_dir = Path(args.export_dir)
        root.title(f"{TITLE} - 登录")
        root.option_add("*Font", FONT)
        self._login_screen()

    # -- login ---------------------------------------------------------------------------------
    def _login_screen(self) -> None:
        self.login_frame = frame = ttk.Frame(self.root, padding=20)
        frame.pack()
        ttk.Label(frame, text="用户名").grid(row=0, column=0, sticky="w")
        self.user = ttk.Entry(frame, width=24)
        self.user.grid(row=0, column=1, pady=4)
        ttk.Label(frame, text="密码").grid(row=1, column=0, sticky="w")
        self.password = ttk.Entry(frame, width=24, show="*")
        self.password.grid(row=1, column=1, pady=4)
        ttk.Button(frame, text="登录", command=self._login).grid(row=2, column=1, sticky="e")
        self.root.bind("<Return>", lambda _e: self._login())
        self.user.focus_set()

    def _login(self) -> None:
        try:
            reason = self.server.login(self.user.get().strip(), self.password.get())
        except (httpx.HTTPError, RuntimeError) as exc:
            reason = str(exc)
        self.password.delete(0, "end")
        if reason:
            messagebox.showerror("登录失败", reason, parent=self.root)
            return
        self.root.unbind("<Return>")
        self.login_frame.destroy()
        self._main_screen()

    # -- the main window -------------------------------------------------------------------------
    def _main_screen(self) -> None:
        root = self.root
        root.title(f"{TITLE} - 销售合同")
        root.geometry("1100x520+20+20")
        bar = tk.Menu(root)
        file_menu = tk.Menu(bar, tearoff=False)
        file_menu.add_command(label="导出CSV", accelerator="Ctrl+E", command=self._export)
        file_menu.add_command(label="退出", command=root.destroy)
        bar.add_cascade(label="文件", menu=file_menu)
        contract_menu = tk.Menu(bar, tearoff=False)
        contract_menu.add_command(label="新建合同", accelerator="Ctrl+N", command=lambda: self._contract_form(None))
        contract_menu.add_command(label="新增客户", accelerator="Ctrl+U", command=self._customer_form)
        bar.add_cascade(label="业务", menu=contract_menu)
        root.config(menu=bar)
        self.tabs = ttk.Notebook(root)
        self.tabs.pack(fill="both", expand=True)
        self.lists: dict[str, tuple[ttk.Entry, ttk.Treeview, tuple[str, ...], str]] = {}
        for key, label, columns, path in (("contracts", "销售合同", CONTRACT_COLUMNS, "/contracts"),
                                          ("customers", "客户", CUSTOMER_COLUMNS, "/customers")):
            tab = ttk.Frame(self.tabs, padding=6)
            self.tabs.add(tab, text=label)
            top = ttk.Frame(tab)
            top.pack(fill="x")
            ttk.Label(top, text="查询").pack(side="left")
            query = ttk.Entry(top, width=40)
            query.pack(side="left", padx=4)
            search = partial(self._search, key)
            query.bind("<Return>", search)
            ttk.Button(top, text="查询", command=search).pack(side="left")
            tree = ttk.Treeview(tab, columns=columns, show="headings", height=16)
            for c in columns:
                tree.heading(c, text=c)
                tree.column(c, width=90)
            tree.pack(fill="both", expand=True)
            self.lists[key] = (query, tree, columns, path)
        self.status = tk.StringVar(value="就绪")
        ttk.Label(root, textvariable=self.status, relief="sunken", anchor="w").pack(fill="x", side="bottom")
        root.bind_all("<Control-Key-1>", lambda _e: self.tabs.select(0))
        root.bind_all("<Control-Key-2>", lambda _e: self.tabs.select(1))
        root.bind_all("<Control-f>", lambda _e: self._current()[0].focus_set())
        root.bind_all("<Control-c>", lambda _e: self._copy())
        root.bind_all("<Control-e>", lambda _e: self._export())
        root.bind_all("<Control-n>", lambda _e: self._contract_form(None))
        root.bind_all("<Control-u>", lambda _e: self._customer_form())
        root.bind_all("<Control-o>", lambda _e: self._open_selected())
        self._current()[0].focus_set()

    def _current(self) -> tuple[ttk.Entry, ttk.Treeview, tuple[str, ...], str]:
        return self.lists["contracts" if self.tabs.index("current") == 0 else "customers"]

    def _search(self, key: str, _event: object = None) -> None:
        query, tree, columns, path = self.lists[key]
        try:
            rows = self.server.rows(path, query.get().strip())
        except (httpx.HTTPError, RuntimeError) as exc:
            messagebox.showerror("查询失败", str(exc), parent=self.root)
            return
        tree.delete(*tree.get_children())
        for r in rows:
            tree.insert("", "end", values=[r.get(c, "") for c in columns])
        self.status.set(f"共 {len(rows)} 条")

    def _copy(self) -> None:
        focus = self.root.focus_get()
        if isinstance(focus, (tk.Entry, ttk.Entry, ttk.Combobox)) and focus.selection_present():
            return  # Ctrl+C in a text field with a selection copies the selection, as usual
        if focus is None or focus.winfo_toplevel() is not self.root:
            return  # not in the main window
        _, tree, columns, _ = self._current()
        items = tree.selection() or tree.get_children()
        text = "\n".join("\t".join(f"{c}={v}" for c, v in zip(columns, tree.item(i, "values"))) for i in items)
        self.root.clipboard_clear()
        self.root.clipboard_append(text)
        self.status.set("已复制" if text else "没有可复制的行")

    def _export(self) -> None:
        _, tree, columns, _ = self._current()
        self.export_dir.mkdir(parents=True, exist_ok=True)
        path = self.export_dir / f"export-{time.strftime('%Y%m%d-%H%M%S')}.csv"
        with path.open("w", newline="", encoding="utf-8-sig") as fh:
            w = csv.writer(fh)
            w.writerow(columns)
            w.writerows(tree.item(i, "values") for i in tree.get_children())
        self.status.set(f"已导出 {path.name}")

    def _open_selected(self) -> None:
        _, tree, _, _ = self.lists["contracts"]
        items = tree.selection() or tree.get_children()[:1]
        if items:
            self._contract_form(str(tree.item(items[0], "values")[0]))

    # -- forms ------------------------------------------------------------------------------------
    def _nuisances(self, form: tk.Toplevel) -> None:
        """Now and then, as real clients do: a 提示 modal, or a 系统消息 window taking the focus."""
        if self.rng.random() < self.args.prompt_rate:
            def prompt() -> None:
                if form.winfo_exists():
                    self._box(form, "提示", "今日有新的系统公告，请在下班前查阅。")
            form.after(150, prompt)
        if self.rng.random() < self.args.focus_steal_rate:
            def steal() -> None:
                if not form.winfo_exists():
                    return
                pop = tk.Toplevel(self.root)
                pop.title("系统消息")
                pop.geometry("320x120+700+300")
                ttk.Label(pop, text="后台同步完成。", padding=20).pack()
                ttk.Button(pop, text="关闭", command=pop.destroy).pack()
                pop.bind("<Escape>", lambda _e: pop.destroy())
                pop.focus_force()
                pop.after(4000, lambda: pop.destroy() if pop.winfo_exists() else None)
            form.after(300, steal)

    def _form(self, title: str, fields: tuple[tuple[str, str], ...], values: dict[str, str]) -> tuple[tk.Toplevel, dict[str, Any]]:
        form = tk.Toplevel(self.root)
        form.title(title)
        form.geometry("460x420+200+80")
        form.transient(self.root)
        body = ttk.Frame(form, padding=12)
        body.pack(fill="both", expand=True)
        widgets: dict[str, Any] = {}
        for row, (name, label) in enumerate(fields):
            ttk.Label(body, text=label).grid(row=row, column=0, sticky="w", pady=3)
            if name == "model_code":
                w: Any = ttk.Combobox(body, values=[c for c, _ in DMS_MODELS], width=26)
            elif name == "status":
                w = ttk.Combobox(body, values=list(CONTRACT_STATUSES), width=26)
            else:
                w = ttk.Entry(body, width=28)
            w.insert(0, values.get(name, ""))
            w.grid(row=row, column=1, pady=3)
            widgets[name] = w
        buttons = ttk.Frame(body)
        buttons.grid(row=len(fields), column=1, sticky="e", pady=8)
        form.bind("<Escape>", lambda _e: form.destroy())
        return form, {"widgets": widgets, "buttons": buttons}

    def _contract_form(self, contract_no: str | None) -> None:
        values = self.server.contract(contract_no) if contract_no else {"status": CONTRACT_STATUSES[0]}
        path = f"/contracts/{contract_no}/edit" if contract_no else "/contracts/new"
        self._editor(f"编辑合同 {contract_no}" if contract_no else "新建合同", CONTRACT_FIELDS, values, path, "合同",
                     confirm=True)

    def _customer_form(self) -> None:
        self._editor("新增客户", CUSTOMER_FIELDS, {}, "/customers/new", "客户", confirm=False)

    def _editor(self, title: str, fields: tuple[tuple[str, str], ...], values: dict[str, str], path: str, what: str,
                confirm: bool) -> None:
        """A form window: 保存 (Alt+S; ``confirm``: after 确认保存？) posts it to the server; saved:
        the window closes and the status bar names the new record; refused: 保存失败 with the
        server's reasons, the window stays."""
        form, parts = self._form(title, fields, values)
        widgets = parts["widgets"]

        def save() -> None:
            if confirm and not messagebox.askyesno("确认", "确认保存？", parent=form):
                return
            entered = {k: w.get().strip() for k, w in widgets.items()}
            self._slow()
            try:
                number, errors = self.server.save(path, entered)
            except (httpx.HTTPError, RuntimeError) as exc:
                number, errors = None, {"": str(exc)}
            if number is None:
                labels = dict(fields)
                self._error(form, "\n".join(f"{labels.get(k, '表单')}：{v}" for k, v in errors.items()))
                return
            form.destroy()
            self.status.set(f"{what} {number} 已保存")

        ttk.Button(parts["buttons"], text="保存(S)", underline=3, command=save).pack(side="left", padx=4)
        ttk.Button(parts["buttons"], text="取消", command=form.destroy).pack(side="left")
        form.bind("<Alt-s>", lambda _e: save())
        widgets[fields[0][0]].focus_set()
        self._nuisances(form)

    def _error(self, form: tk.Toplevel, text: str) -> None:
        """保存失败: a modal message box; like Windows' own, Ctrl+C copies its text."""
        self._box(form, "保存失败", text)

    def _box(self, parent: tk.Toplevel, title: str, text: str) -> None:
        """A modal message box: Enter or Escape closes it, Ctrl+C copies its title and text."""
        box = tk.Toplevel(parent)
        box.title(title)
        box.geometry("420x160+260+180")
        box.transient(parent)
        ttk.Label(box, text=text, padding=14, wraplength=380).pack()
        ok = ttk.Button(box, text="确定", command=box.destroy)
        ok.pack()

        def copy(_e: Any = None) -> None:
            box.clipboard_clear()
            box.clipboard_append(f"{title}\n{text}")

        for target in (box, ok):
            target.bind("<Control-c>", copy)
            target.bind("<Return>", lambda _e: box.destroy())
            target.bind("<Escape>", lambda _e: box.destroy())
        box.grab_set()
        ok.focus_force()

    def _slow(self) -> None:
        if self.args.slow_save_ms:
            self.root.update()
            time.sleep(self.args.slow_save_ms / 1000)  # the window freezes, as a real client's does


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="the sandbox's desktop DMS client")
    ap.add_argument("--dms-url", required=True)
    ap.add_argument("--slow-save-ms", type=int, default=0)
    ap.add_argument("--prompt-rate", type=float, default=0.0)
    ap.add_argument("--focus-steal-rate", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--export-dir", default="out/desktop-exports")
    args = ap.parse_args(argv)
    root = tk.Tk()
    Client(root, Server(args.dms_url), args)
    root.mainloop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
