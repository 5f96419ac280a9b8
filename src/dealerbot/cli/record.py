"""``dealerbot record <portal> --screen NAME``: the elements clicked through on a screen become
named entries of the portal's selector file.

How: the portal is opened logged in (its page objects' login, as a run does) in the browser
dealerbot finds (a system Chromium works: Playwright's ``codegen`` command cannot launch one by
path), Playwright's recorder, the engine behind ``codegen``, is started on the browser context
with codegen's ``python-async`` target, and the screen's address is opened. A person clicks
through the screen and presses Enter in the terminal (or closes the window); a script may do
the clicking instead (``--script``: the CI test does). The recorded code is kept in memory only
(it holds what was typed, passwords too) and parsed with :mod:`ast` (:func:`parse_recorded`):
every locator an action used (``get_by_role(name=)``, ``get_by_label``, ``get_by_placeholder``,
``get_by_text``, ``get_by_test_id``, ``locator(css)``, chained) is resolved again on a fresh
load of the screen and gets its choices in the order role + name, label, then CSS (the ``id``
or the ``name`` attribute), each kept only if it finds that element and no other on the live
page (:func:`choices_for`). Names are ``<screen>.<slug>``, the slug from the element's ``name``
or ``id`` attribute, else ``field_N`` (rename them at will).

The entries are merged into ``selectors/<portal>.yaml`` as text (:func:`merge_entries`): inserted
after the last entry of ``selectors:`` (and a ``screens:`` entry and an endpoint for the screen
when it has none), so every comment and the order of what was there stay exactly as they were;
an existing name is never replaced (the new one gets ``_2``, said in the output). The merged
file is loaded by the selector-file loader before it is written: a file that would not load is
not written.
"""

from __future__ import annotations

import ast
import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dealerbot.errors import ConfigError

if TYPE_CHECKING:
    from playwright.async_api import Locator, Page

    from dealerbot.config import Settings

ACTIONS = {"click", "dblclick", "fill", "press", "check", "uncheck", "select_option", "set_input_files", "hover",
           "press_sequentially", "type", "set_checked"}
CHAIN_CALLS = {"get_by_role", "get_by_label", "get_by_placeholder", "get_by_text", "get_by_test_id", "get_by_title",
               "get_by_alt_text", "locator", "nth", "filter", "frame_locator"}
CHAIN_PROPERTIES = {"first", "last", "content_frame"}
SCREEN_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
MARK = "__dealerbotRecorded"


@dataclass(frozen=True)
class Recorded:
    """One locator an action of the recorded script used: its calls from ``page`` on."""

    chain: tuple[tuple[str, tuple[Any, ...], tuple[tuple[str, Any], ...]], ...]
    action: str
    line: int

    def describe(self) -> str:
        """The chain as codegen wrote it, without the action's values, e.g. ``get_by_role('button', name='登录')``."""
        parts = []
        for method, args, kwargs in self.chain:
            if method in CHAIN_PROPERTIES:
                parts.append(method)
                continue
            inner = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs]
            parts.append(f"{method}({', '.join(inner)})")
        return ".".join(parts)


def parse_recorded(code: str) -> list[Recorded]:
    """The locators of the actions in a script Playwright's recorder wrote (any target in Python),
    in order, each once.

    Raises:
        ConfigError: the code is not Python.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise ConfigError(f"录制的脚本无法解析 (the recorded script is not Python): {exc}") from None
    found: list[Recorded] = []
    seen: set[tuple[Any, ...]] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ACTIONS):
            continue
        chain = _chain(node.func.value)
        if not chain or chain in seen:
            continue
        seen.add(chain)
        found.append(Recorded(chain, node.func.attr, node.lineno))
    found.sort(key=lambda r: r.line)
    return found


def recorded_locators(snippets: list[str]) -> list[Recorded]:
    """The locators of the recorder's code snippets (one per action), in order, each once; a
    snippet that does not parse on its own is skipped."""
    import textwrap

    found: list[Recorded] = []
    for number, snippet in enumerate(snippets):
        wrapped = "async def run(page):\n" + textwrap.indent(textwrap.dedent(snippet), "    ") + "\n    pass\n"
        try:
            parsed = parse_recorded(wrapped)
        except ConfigError:
            continue
        for rec in parsed:
            if all(rec.chain != f.chain for f in found):
                found.append(Recorded(rec.chain, rec.action, number))
    return found


def _chain(node: ast.expr) -> tuple[tuple[str, tuple[Any, ...], tuple[tuple[str, Any], ...]], ...] | None:
    """``page.get_by_role("button", name="x").first`` -> its calls; None when it does not start at
    a page (``page``, ``page1``...) or holds something other than literals (a regex)."""
    steps: list[tuple[str, tuple[Any, ...], tuple[tuple[str, Any], ...]]] = []
    while True:
        if isinstance(node, ast.Name):
            return tuple(reversed(steps)) if node.id.startswith("page") and steps else None
        if isinstance(node, ast.Attribute) and node.attr in CHAIN_PROPERTIES:
            steps.append((node.attr, (), ()))
            node = node.value
            continue
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CHAIN_CALLS:
            try:
                args = tuple(ast.literal_eval(a) for a in node.args)
                kwargs = tuple((k.arg or "", ast.literal_eval(k.value)) for k in node.keywords)
            except ValueError:
                return None
            steps.append((node.func.attr, args, kwargs))
            node = node.func.value
            continue
        return None


def apply_chain(page: Page, recorded: Recorded) -> Locator:
    """The recorded locator on ``page``."""
    target: Any = page
    for method, args, kwargs in recorded.chain:
        attr = getattr(target, method)
        target = attr if method in CHAIN_PROPERTIES else attr(*args, **dict(kwargs))
    return target


# -- choices for one element ---------------------------------------------------------------------
_DESCRIBE = """e => {
  const tag = e.tagName.toLowerCase();
  const type = (e.getAttribute('type') || '').toLowerCase();
  const clean = t => (t || '').replace(/\\s+/g, ' ').trim().replace(/[：:*\\s]+$/, '');
  let label = '';
  if (e.labels && e.labels.length) label = e.labels[0].innerText;
  else if (e.closest('label')) label = e.closest('label').innerText;
  else {
    const labels = [...document.querySelectorAll('label:not([for])')]
      .filter(l => l.compareDocumentPosition(e) & Node.DOCUMENT_POSITION_FOLLOWING);
    if (labels.length) label = labels[labels.length - 1].innerText;
  }
  label = clean(e.getAttribute('aria-label') || label);
  let role = '';
  if (tag === 'a' && e.hasAttribute('href')) role = 'link';
  else if (tag === 'button' || ['submit', 'button', 'reset'].includes(type)) role = 'button';
  else if (tag === 'select') role = 'combobox';
  else if (tag === 'textarea' || (tag === 'input' && ['', 'text', 'email', 'tel', 'search', 'url', 'number'].includes(type))) role = 'textbox';
  else if (type === 'checkbox' || type === 'radio') role = type;
  const text = clean(role === 'button' || role === 'link' ? (e.innerText || e.value) : '');
  return {tag, type, id: e.id || '', name: e.getAttribute('name') || '', role, accessible: text || label, label,
          placeholder: e.getAttribute('placeholder') || ''};
}"""


@dataclass
class Entry:
    """A selector entry to add: its name and its choices (YAML mappings), first choice first."""

    name: str
    choices: list[dict[str, str]]
    note: str = ""  # a comment written above it
    recorded: str = ""


def _css_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


async def choices_for(page: Page, recorded: Recorded) -> tuple[list[dict[str, str]], dict[str, str]] | None:
    """The choices that find the recorded element on ``page``, in the order role + name, label,
    the recorded kind (placeholder, text, test id), then CSS (``#id``, ``tag[name='...']``, the
    recorded CSS); each kept only when it finds that element and no other. Returns them with
    what was learnt of the element (``name``, ``id``), or None when the recorded locator finds
    nothing on the page."""
    from dealerbot.web.locators import Candidate
    from dealerbot.web.page_locators import build_locator

    target = apply_chain(page, recorded)
    try:
        if await target.count() == 0:
            await target.first.wait_for(state="attached", timeout=2000)
    except Exception:  # noqa: BLE001 - not on this page
        return None
    element = target.first
    info: dict[str, str] = await element.evaluate(_DESCRIBE)
    first_method, first_args, first_kwargs = recorded.chain[0]
    kwargs = dict(first_kwargs)
    wanted: list[dict[str, str]] = []
    single = len(recorded.chain) == 1
    if single and first_method == "get_by_role" and kwargs.get("name"):
        wanted.append({"role": str(first_args[0]), "name": str(kwargs["name"])})
    if info["role"] and info["accessible"]:
        wanted.append({"role": info["role"], "name": info["accessible"]})
    if single and first_method == "get_by_label":
        wanted.append({"label": str(first_args[0])})
    if info["label"]:
        wanted.append({"label": info["label"]})
    recorded_kinds = {"get_by_placeholder": "placeholder", "get_by_text": "text", "get_by_test_id": "testid"}
    if single and first_method in recorded_kinds:
        wanted.append({recorded_kinds[first_method]: str(first_args[0])})
    if info["placeholder"]:
        wanted.append({"placeholder": info["placeholder"]})
    if info["id"] and re.fullmatch(r"[A-Za-z][\w-]*", info["id"]):
        wanted.append({"css": f"#{info['id']}"})
    if info["name"]:
        wanted.append({"css": f"{info['tag']}[name={_css_string(info['name'])}]"})
    if single and first_method == "locator" and _plain_css(str(first_args[0])) and not any("css" in c for c in wanted):
        wanted.append({"css": str(first_args[0])})
    await element.evaluate(f"e => {{ e.{MARK} = true; }}")
    kept: list[dict[str, str]] = []
    try:
        for choice in wanted:
            if choice in kept:
                continue
            kind = next(k for k in choice if k != "name")
            locator = build_locator(page, Candidate(kind, choice[kind], choice.get("name")))
            try:
                if await locator.count() == 1 and await locator.evaluate(f"e => !!e.{MARK}"):
                    kept.append(choice)
            except Exception:  # noqa: BLE001 - a choice Playwright cannot parse is not kept
                continue
    finally:
        await element.evaluate(f"e => {{ delete e.{MARK}; }}")
    return kept, info


def _plain_css(css: str) -> bool:
    """CSS the selector files accept: the loader's own rule (no Playwright-only engines or
    pseudo-classes), and none of Playwright's internal selectors."""
    from dealerbot.web.locators import _NONSTANDARD_CSS

    return not (_NONSTANDARD_CSS.search(css) or "internal:" in css or css.startswith(("//", "xpath")))


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_")
    return slug if re.match(r"[a-z]", slug) else ""


async def entries_from(page: Page, screen: str, recorded: list[Recorded]) -> list[Entry]:
    """An entry for each recorded locator, resolved on ``page`` (the screen freshly loaded)."""
    entries: list[Entry] = []
    seen_choices: list[list[dict[str, str]]] = []
    numbered = 0
    for rec in recorded:
        resolved = await choices_for(page, rec)
        if resolved is None or not resolved[0]:
            numbered += 1
            entries.append(Entry(f"{screen}.field_{numbered}", [], recorded=rec.describe(),
                                 note=f"recorded as {rec.describe()}: not found on the screen's page when it was "
                                      f"loaded again, or no choice finds it alone; fill in its choices"))
            continue
        choices, info = resolved
        if choices in seen_choices:
            continue  # the same element, clicked then typed into
        seen_choices.append(choices)
        slug = _slug(info["name"]) or _slug(info["id"])
        if not slug:
            numbered += 1
            slug = f"{info['role'] or 'field'}_{numbered}"
        entries.append(Entry(f"{screen}.{slug}", choices, recorded=rec.describe()))
    return entries


# -- merging into the selector file, as text -----------------------------------------------------
def _yaml_scalar(value: str) -> str:
    import json

    return value if re.fullmatch(r"[^\s:#,\[\]{}&*!|>'\"%@`?-][^:#,\[\]{}]*", value) and value == value.strip() \
        else json.dumps(value, ensure_ascii=False)


def _last_line(node: Any) -> int:
    """The 0-based line of the last scalar under ``node``."""
    import yaml

    if isinstance(node, yaml.ScalarNode):
        return int(node.end_mark.line)
    children = [c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode) else list(node.value)
    return max((_last_line(c) for c in children), default=int(node.start_mark.line))


def merge_entries(path: Path, screen: str, screen_path: str, entries: list[Entry]) -> tuple[str, list[str]]:
    """The selector file ``path`` with ``entries`` added after the last entry of ``selectors:``,
    and, when no screen of ``screens:`` names ``screen``, an endpoint ``<screen>_page`` (or the
    endpoint already at ``screen_path``) and a screen entry; plus what was done, line by line.
    Every other line stays as it was.

    Raises:
        ConfigError: the file is not a selector file this can add to, or the result would not
            load (the loader's message).
    """
    import yaml

    from dealerbot.web.locators import load_selector_file

    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: 不是有效的 YAML (not YAML): {exc}") from None
    top = {k.value: (k, v) for k, v in root.value} if isinstance(root, yaml.MappingNode) else {}
    if "selectors" not in top or not isinstance(top["selectors"][1], yaml.MappingNode) or not top["selectors"][1].value:
        raise ConfigError(f"{path}: 没有 selectors: 段，无法添加 (no selectors mapping to add to)")
    sel_node = top["selectors"][1]
    existing = {k.value: _choices_of(v) for k, v in sel_node.value}
    key_indent = " " * sel_node.value[0][0].start_mark.column
    first_value = sel_node.value[0][1]
    dash_indent = " " * (first_value.start_mark.column if isinstance(first_value, yaml.SequenceNode) else len(key_indent) + 2)
    said: list[str] = []
    block: list[str] = []
    for entry in entries:
        same = next((n for n, c in existing.items() if entry.choices and c == entry.choices), None)
        if same is not None:
            said.append(f"{same} 已有相同的选择，跳过 (already there: skipped)")
            continue
        name = entry.name
        n = 2
        while name in existing:
            name = f"{entry.name}_{n}"
            n += 1
        if name != entry.name:
            said.append(f"{entry.name} 已存在（选择不同），新条目命名为 {name}，请核对 (name taken: added as {name})")
        existing[name] = entry.choices
        if entry.note:
            block.append(f"{key_indent}# {entry.note}\n")
        if not entry.choices:
            block.append(f"{key_indent}# {name}:\n{key_indent}#   - css: \"...\"\n")
            said.append(f"{name}：未能在页面上重新找到 {entry.recorded}，已作为注释写入，请补全 (not found again: written as a comment)")
            continue
        head = f"{key_indent}{name}:"
        block.append(f"{head.ljust(27)} # recorded: {entry.recorded}\n" if entry.recorded else f"{head}\n")
        for choice in entry.choices:
            kind = next(k for k in choice if k != "name")
            value = choice[kind]
            shown = f"\"{_css_json(value)}\"" if kind == "css" else _yaml_scalar(value)
            block.append(f"{dash_indent}- {kind}: {shown}\n")
            if "name" in choice:
                block.append(f"{dash_indent}  name: {_yaml_scalar(choice['name'])}\n")
        said.append(f"{name}：{'、'.join(_describe_choice(c) for c in entry.choices)}")
    inserts: list[tuple[int, list[str]]] = [(_last_line(sel_node) + 1, block)]
    screens = top.get("screens", (None, None))[1]
    named = {item_name.value for item in (screens.value if isinstance(screens, yaml.SequenceNode) else [])
             if isinstance(item, yaml.MappingNode)
             for k, v in item.value if k.value == "names" and isinstance(v, yaml.SequenceNode)
             for item_name in v.value}
    if screen not in named:
        endpoints = top.get("endpoints", (None, None))[1]
        known = {v.value: k.value for k, v in endpoints.value} if isinstance(endpoints, yaml.MappingNode) else {}
        keys = set(known.values())
        endpoint = screen_path if screen_path in keys else known.get(screen_path)
        if endpoint is None:
            if not isinstance(endpoints, yaml.MappingNode) or not endpoints.value:
                raise ConfigError(f"{path}: 没有 endpoints: 段，无法为屏幕 {screen} 添加地址 (no endpoints mapping)")
            endpoint = f"{screen}_page"
            ind = " " * endpoints.value[0][0].start_mark.column
            inserts.append((_last_line(endpoints) + 1, [f"{ind}{endpoint}: {_yaml_scalar(screen_path)}\n"]))
            said.append(f"endpoints: {endpoint} = {screen_path}")
        entry_line = f"{{names: [{screen}], endpoint: {endpoint}}}"
        if isinstance(screens, yaml.SequenceNode) and screens.value:
            ind = " " * screens.start_mark.column
            inserts.append((_last_line(screens) + 1, [f"{ind}- {entry_line}\n"]))
        else:
            inserts.append((len(lines), [f"screens:\n  - {entry_line}\n"]))
        said.append(f"screens: {entry_line}")
    for at, new in sorted(inserts, key=lambda i: i[0], reverse=True):
        lines[at:at] = new
    merged = "".join(lines)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / path.name
        probe.write_text(merged, encoding="utf-8")
        try:
            load_selector_file(probe)
        except ConfigError as exc:
            raise ConfigError(f"合并后的选择器文件无法加载，未写入 (the merged file would not load; nothing written): {exc}") from None
    return merged, said


def _choices_of(node: Any) -> list[dict[str, str]]:
    """An existing entry's choices as mappings of strings (to recognise one recorded again)."""
    import yaml

    if not isinstance(node, yaml.SequenceNode):
        return []
    return [{k.value: str(v.value) for k, v in item.value if isinstance(v, yaml.ScalarNode)}
            for item in node.value if isinstance(item, yaml.MappingNode)]


def _css_json(value: str) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)[1:-1]


def _describe_choice(choice: dict[str, str]) -> str:
    kind = next(k for k in choice if k != "name")
    return f"{kind}={choice[kind]}" + (f" name={choice['name']}" if "name" in choice else "")


# -- the recording ---------------------------------------------------------------------------------
Driver = Callable[["Page"], Awaitable[None]]


def load_script(path: Path) -> Driver:
    """``async def drive(page)`` from a Python file: the clicks a person would make, scripted.

    Raises:
        ConfigError: the file is missing or defines no ``drive``.
    """
    import runpy

    if not path.is_file():
        raise ConfigError(f"{path}: 文件不存在 (no such file)")
    drive = runpy.run_path(str(path)).get("drive")
    if not callable(drive):
        raise ConfigError(f"{path}: 没有定义 async def drive(page) (defines no drive(page))")
    return drive


class _Sink:
    """The recorder's events: the code of each action, the last one replaced while it is typed."""

    def __init__(self) -> None:
        self.code: list[str] = []

    def action_added(self, page: Any, data: Any, code: str) -> None:
        self.code.append(code)

    def action_updated(self, page: Any, data: Any, code: str) -> None:
        if self.code:
            self.code[-1] = code

    def signal_added(self, page: Any, data: Any, code: str) -> None:
        pass


async def _wait_for_person(page: Page) -> None:
    """Until the person presses Enter in the terminal or closes the page. The terminal is read
    in a daemon thread: one still waiting for Enter never holds up the command's exit."""
    import threading

    loop = asyncio.get_running_loop()
    enter: asyncio.Future[None] = loop.create_future()

    def read() -> None:
        try:
            input()
        except EOFError:  # no terminal: wait for the window only
            return
        loop.call_soon_threadsafe(_settle, enter)

    threading.Thread(target=read, daemon=True).start()
    closed: asyncio.Future[Any] = asyncio.ensure_future(page.wait_for_event("close", timeout=0))
    await asyncio.wait([enter, closed], return_when=asyncio.FIRST_COMPLETED)
    closed.cancel()


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def record_screen(settings: Settings, portal: str, screen: str, screen_path: str, drive: Driver | None,
                        headed: bool = True, say: Callable[[str], None] = print) -> list[Entry]:
    """Open ``portal`` logged in, record the actions on ``screen_path`` (``drive``, or a person
    until Enter or the window closes), and return the entries for them, resolved on the screen
    loaded again.

    Raises:
        ConfigError: unknown portal, no browser, wrong password (as a run).
        ConfigError: this Playwright has no recorder to start.
        SystemFailure: the portal could not be reached.
    """
    from datetime import datetime

    from dealerbot.credentials import password_source
    from dealerbot.running.registry import portal_app
    from dealerbot.running.runner import make_masker
    from dealerbot.web.browser import Evidence, open_browser
    from dealerbot.web.locators import load_portal_selectors
    from dealerbot.web.portal import PortalSession

    portal_settings = settings.portal(portal)
    selectors = load_portal_selectors(portal, home=settings.home)
    app_cls = portal_app(portal, settings.home)
    lookup = password_source(None)
    folder = settings.path("logs") / "runs" / f"{datetime.now():%Y%m%d-%H%M%S}-record-{portal}"
    evidence = Evidence(folder, make_masker(settings, None))
    async with open_browser(settings.browser, headed=headed) as browser:
        assert browser is not None  # wanted: a browser, else BrowserNotFound
        async with browser.context(portal, evidence, state_file=None, trace=False) as pctx:
            page = await pctx.new_page()
            session = PortalSession(portal, portal_settings, pctx, page, selectors, settings.run)
            app = app_cls(session, lambda: lookup(portal, portal_settings.username))
            await app.open()
            impl = getattr(pctx.context, "_impl_obj", None)
            start, stop = getattr(impl, "_start_recording", None), getattr(impl, "_stop_recording", None)
            if start is None or stop is None:
                raise ConfigError("这个版本的 Playwright 没有录制器接口 (this Playwright has no recorder to start)")
            sink = _Sink()
            await start({"language": "python-async"}, sink)
            await page.goto(session.url(screen_path))
            if drive is not None:
                await drive(page)
            else:
                say(f"请在浏览器中操作屏幕 {screen}（{screen_path}），完成后在此按回车或关闭浏览器窗口。")
                say("注意：这是真实门户，录制时点击“保存/提交”会真的保存一条记录；填好表单后请不要点最后的按钮。")
                await _wait_for_person(page)
            await stop()
            recorded = recorded_locators(sink.code)
            fresh = await pctx.new_page()
            await fresh.goto(session.url(screen_path))
            await fresh.wait_for_load_state("load")
            return await entries_from(fresh, screen, recorded)
