"""Selectors by name, loaded from ``selectors/<portal>.yaml`` and validated at start-up.

A selector file looks like::

    portal: oem
    title: 厂家经销商门户
    evidence_mask: [login.password]     # names masked in failure screenshots
    endpoints:                           # URLs the portal's own pages call
      orders_api: /api/orders
    selectors:
      login.username:                    # a name page objects use
        - css: "#username"               # first choice
        - label: 用户名                   # fallback, tried when the first does not match
      login.submit:
        - role: button
          name: 登录
      detail.field:
        - css: "#order-detail dd[data-field='{field}']"   # {placeholders} filled by callers
    tables:                              # lists read by column header (HeaderTable)
      stock:
        endpoint: stock_page             # fetched through the logged-in session
        table: stock.table               # the <table> (a css choice)
        next: stock.next                 # optional: the "next page" link (its href is followed;
                                         # css, text or role: link with its name)
        empty: no_rows                   # optional: a page without the table has no rows (or a
                                         # selector name: only when that "0 results" line shows)
        columns: {vin: 车架号, model: 车型}   # field -> header text
    outcomes:                            # how a script-handled form answers (no page load),
      quick.save:                        # by the submit button's name (Form.submit reads them)
        success: [{selector: quick.ok}, {text: 保存成功}, {response: {url: /api/cars, status: 200}}]
        failure: [{selector: quick.error}]
    session_expired:                     # how an ended session shows, besides the login page
      paths: [/error/session]            # being sent to one of these pages
      text: 登录已失效                     # or an answer holding this text

Types: ``css``, ``role`` (+ ``name``), ``label``, ``text``, ``placeholder``, ``testid``;
``exact: true`` applies to the text-like ones; ``frame: "<css of an iframe>"`` looks inside that
iframe (one level). Open shadow roots need nothing: live
pages' ``css`` reaches into them.

* ``css`` is **standard CSS**, one dialect for both places it is used: live pages (Playwright) and
  pages fetched without a browser (lxml). Extensions only one of them knows (Playwright's
  ``:has-text()``, ``:visible``, ``>>``; lxml's ``:contains()``) are refused when the file is
  loaded: use a ``text``, ``role`` or ``label`` choice for text matching.
* ``label`` finds the input a ``<label>`` names (``for=``, nested, ``aria-label``), and also,
  for labels not linked to their input (common in portals), the input inside the label or the
  first input after it (same cell, next cell). A file with an unknown type, a missing key or a
bad value raises :class:`~dealerbot.errors.SelectorFileError` naming the file and line; asking
for a name that is not there raises :class:`~dealerbot.errors.UnknownSelector`.

When a fallback rather than the first choice matches, a warning is logged once per name: the
portal has probably drifted, and the YAML should be updated before the fallback breaks too.

This module holds the selector files (their schema and loader). The names are used on live
pages through :class:`~dealerbot.web.page_locators.Locators` and on fetched pages through
:class:`~dealerbot.web.html_reader.HtmlReader`.

This module is named ``locators`` on purpose: a module or package called ``selectors``
shadows the standard-library module asyncio imports.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import yaml

from dealerbot.errors import SelectorFileError, UnknownSelector

if TYPE_CHECKING:
    from loguru import Logger

TYPES = ("css", "role", "label", "text", "placeholder", "testid")
_OPTIONS = {"name", "exact", "frame"}


# Selector syntax only Playwright (or only lxml) understands: refused in ``css`` choices.
_NONSTANDARD_CSS = re.compile(
    r":(has-text|text|text-is|text-matches|visible|nth-match|left-of|right-of|above|below|near|contains)\b|>>|^(xpath|text|id)="
)
TOP_KEYS = {"portal", "title", "selectors", "endpoints", "evidence_mask", "screens", "optional", "tables", "session_expired",
            "outcomes"}
TABLE_KEYS = {"endpoint", "table", "next", "columns", "empty"}
NO_ROWS = "no_rows"  # tables: <name>: empty: no_rows: a page without the table has no rows
SCREEN_KEYS = {"names", "endpoint", "via", "before", "params", "logged_out"}


@dataclass(frozen=True)
class Candidate:
    """One way to find an element: a type, a value and options."""

    kind: str
    value: str
    name: str | None = None
    exact: bool = False
    line: int = 0
    frame: str | None = None  # css of the iframe holding the element

    def describe(self) -> str:
        """Human description, e.g. ``role=button name='登录'``."""
        extra = f" name={self.name!r}" if self.name else ""
        inside = f" in frame {self.frame!r}" if self.frame else ""
        return f"{self.kind}={self.value!r}{extra}{inside}"

    def fields(self) -> set[str]:
        """Placeholders like ``{field}`` used in the value or name."""
        names = set()
        for text in (self.value, self.name or ""):
            names |= {f for _, f, _, _ in string.Formatter().parse(text) if f}
        return names

    def format(self, params: dict[str, Any]) -> Candidate:
        """This candidate with ``{placeholders}`` filled."""
        if not params:
            return self
        return Candidate(
            self.kind,
            self.value.format(**params),
            self.name.format(**params) if self.name else None,
            self.exact,
            self.line,
            self.frame,
        )


@dataclass(frozen=True)
class SelectorSpec:
    """A named selector: ordered candidates, first choice first."""

    name: str
    candidates: tuple[Candidate, ...]
    line: int


@dataclass(frozen=True)
class Screen:
    """Where ``dealerbot selectors check`` finds a group of selectors (``names`` are prefixes)."""

    names: tuple[str, ...]
    endpoint: str | None = None
    via: str | None = None
    before: str | None = None
    params: tuple[tuple[str, str], ...] = ()
    logged_out: bool = False


@dataclass(frozen=True)
class TableSpec:
    """A list screen read by header text: which page, which table, which columns, how to page."""

    name: str
    endpoint: str
    table: str
    columns: tuple[tuple[str, str], ...]  # (field, header text)
    next: str | None = None
    line: int = 0
    # When the table is not on the page: None, the list screen changed (PageChanged); "no_rows":
    # no rows (a portal that omits an empty search's table); a selector name: no rows when that
    # element (the "0 条结果" line) is on the page, else the screen changed.
    empty: str | None = None


@dataclass(frozen=True)
class Signal:
    """One sign of a submit's outcome a script-handled form shows without loading a page:
    ``selector`` (an element by name appears: a toast), ``text`` (an element with this text
    appears) or ``response`` (the page's own request to ``url``, a path or an endpoint name,
    answered with one of ``status``; none given: below 400 for success, 400 and above for
    failure)."""

    kind: str  # "selector", "text" or "response"
    value: str
    status: tuple[int, ...] = ()

    def describe(self) -> str:
        extra = f" {'/'.join(map(str, self.status))}" if self.status else ""
        return f"{self.kind}={self.value!r}{extra}"


@dataclass(frozen=True)
class Outcome:
    """How a submit's outcome shows (``outcomes:`` in the selector file, by the submit button's
    name; or given to :meth:`Form.submit <dealerbot.web.forms.Form.submit>`)."""

    success: tuple[Signal, ...] = ()
    failure: tuple[Signal, ...] = ()


SIGNAL_KINDS = ("selector", "text", "response")


def parse_signal(raw: Any, selectors: Iterable[str] | None = None) -> Signal:
    """A signal from its YAML/Python form: ``{"selector": "quick.ok"}``, ``{"text": "保存成功"}``,
    ``{"response": {"url": "/api/cars", "status": 200}}`` (status: a number or a list).

    Raises:
        ValueError: anything else (says what is allowed); a selector name not in ``selectors``.
    """
    if isinstance(raw, Signal):
        return raw
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in SIGNAL_KINDS:
        raise ValueError(f"a signal is one of {{selector: NAME}}, {{text: TEXT}}, {{response: {{url: PATH, status: CODE}}}}; "
                         f"got {raw!r}")
    kind, value = next(iter(raw.items()))
    if kind == "response":
        if isinstance(value, str):
            value = {"url": value}
        if not isinstance(value, dict) or set(value) - {"url", "status"} or not isinstance(value.get("url"), str) \
                or not value["url"].strip():
            raise ValueError(f"a response signal is {{url: PATH or endpoint name, status: CODE or [CODES]}}; got {value!r}")
        status = value.get("status", ())
        codes = status if isinstance(status, list) else [status] if status != () else []
        if not all(isinstance(c, int) and not isinstance(c, bool) and 100 <= c <= 599 for c in codes):
            raise ValueError(f"a response signal's status is an HTTP status or a list of them; got {status!r}")
        return Signal("response", value["url"].strip(), tuple(codes))
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"a {kind} signal needs a non-empty text; got {value!r}")
    if kind == "selector" and selectors is not None and value not in selectors:
        raise ValueError(f"selector signal names unknown selector '{value}'")
    return Signal(kind, value.strip())


@dataclass
class SelectorFile:
    """A loaded, validated ``selectors/<portal>.yaml``."""

    path: Path
    portal: str
    title: str
    selectors: dict[str, SelectorSpec]
    endpoints: dict[str, str] = field(default_factory=dict)
    evidence_mask: tuple[str, ...] = ()
    screens: tuple[Screen, ...] = ()
    optional: frozenset[str] = frozenset()
    tables: dict[str, TableSpec] = field(default_factory=dict)
    expired_paths: tuple[str, ...] = ()  # pages the portal sends an ended session to (besides login)
    expired_text: str = ""  # text of an answer to an ended session
    outcomes: dict[str, Outcome] = field(default_factory=dict)  # submit button name -> its outcome signals

    def table(self, name: str) -> TableSpec:
        """The table declared as ``name`` under ``tables:``.

        Raises:
            UnknownSelector: no such table.
        """
        try:
            return self.tables[name]
        except KeyError:
            raise UnknownSelector(f"{self.path}: no table named '{name}' under tables: "
                                  f"(declared: {', '.join(self.tables) or 'none'})") from None

    def spec(self, name: str) -> SelectorSpec:
        """The spec for ``name``.

        Raises:
            UnknownSelector: the file has no such name (message lists close names).
        """
        try:
            return self.selectors[name]
        except KeyError:
            prefix = name.split(".")[0]
            close = sorted(n for n in self.selectors if n.startswith(prefix))
            hint = f"; names under '{prefix}.': {', '.join(close)}" if close else ""
            raise UnknownSelector(f"{self.path}: no selector named '{name}'{hint}") from None

    def endpoint(self, name: str, /, **params: Any) -> str:
        """A portal URL path by name, with ``{placeholders}`` filled.

        Raises:
            UnknownSelector: no such endpoint in the file.
        """
        try:
            template = self.endpoints[name]
        except KeyError:
            raise UnknownSelector(f"{self.path}: no endpoint named '{name}'") from None
        # A value read from a portal is one path segment, whatever it holds ("../logout").
        return template.format(**{k: quote(str(v), safe="") for k, v in params.items()})

    def require(self, names: list[str] | tuple[str, ...]) -> None:
        """Check at start-up that every name a page object uses exists.

        Raises:
            UnknownSelector: naming every missing name at once (one missing name: the message
                also lists the close names the file has).
        """
        missing = list(dict.fromkeys(n for n in names if n not in self.selectors and n not in self.endpoints))
        if len(missing) == 1:
            self.spec(missing[0])
        if missing:
            raise UnknownSelector(f"{self.path}: no selector or endpoint named {', '.join(repr(n) for n in missing)} "
                                  f"({len(missing)} names missing)")


def _err(path: Path, node: yaml.Node | None, msg: str) -> SelectorFileError:
    line = node.start_mark.line + 1 if node is not None else 0
    return SelectorFileError(f"{path}:{line}: {msg}")


def _scalar(path: Path, node: yaml.Node, what: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or node.value == "":
        raise _err(path, node, f"{what} must be a non-empty text")
    return str(node.value)


def _candidate(path: Path, sel: str, node: yaml.Node) -> Candidate:
    if not isinstance(node, yaml.MappingNode):
        raise _err(path, node, f"selector '{sel}': each choice must be a mapping like {{css: '#id'}}")
    kinds: list[tuple[str, str]] = []
    opts: dict[str, Any] = {}
    for key_node, val_node in node.value:
        key = _scalar(path, key_node, "key")
        if key in TYPES:
            kinds.append((key, _scalar(path, val_node, f"selector '{sel}' {key}")))
        elif key in _OPTIONS:
            if key == "exact":
                if not isinstance(val_node, yaml.ScalarNode) or val_node.value not in ("true", "false"):
                    raise _err(path, val_node, f"selector '{sel}': exact must be true or false")
                opts[key] = val_node.value == "true"
            else:
                opts[key] = _scalar(path, val_node, f"selector '{sel}' {key}")
        else:
            raise _err(
                path, key_node,
                f"selector '{sel}': unknown key '{key}' (types: {', '.join(TYPES)}; options: name, exact)",
            )
    if len(kinds) != 1:
        raise _err(
            path, node,
            f"selector '{sel}': each choice needs exactly one type of {', '.join(TYPES)}, got "
            f"{[k for k, _ in kinds] or 'none'}",
        )
    kind, value = kinds[0]
    if "name" in opts and kind != "role":
        raise _err(path, node, f"selector '{sel}': 'name' only goes with 'role'")
    for css in ([value] if kind == "css" else []) + ([opts["frame"]] if "frame" in opts else []):
        problem = _css_problem(css)
        if problem:
            raise _err(path, node, f"selector '{sel}': css {css!r} {problem}")
    return Candidate(kind, value, opts.get("name"), bool(opts.get("exact", False)), node.start_mark.line + 1,
                     opts.get("frame"))


def _css_problem(css: str) -> str:
    """Why ``css`` is not standard CSS both Playwright and lxml read the same way ("" if it is)."""
    if _NONSTANDARD_CSS.search(css):
        return ("uses syntax only one engine knows (e.g. :has-text, :visible, >>, :contains); css: must be "
                "standard CSS, read the same on live and fetched pages: match text with a text:, role: or label: choice")
    from cssselect import SelectorError
    from lxml.cssselect import CSSSelector

    try:
        CSSSelector(string.Formatter().vformat(css, (), _AnyField()))
    except (SelectorError, ValueError) as exc:
        return f"is not valid CSS ({exc})"
    return ""


class _AnyField(dict[str, str]):
    """Fills every ``{placeholder}`` with a value valid where words and numbers both go
    (``tr:nth-child({row})``, ``[data-field='{field}']``) when checking a selector's syntax."""

    def __missing__(self, key: str) -> str:
        return "1"


MAX_SELECTOR_FILE_BYTES = 1_000_000  # a portal's selectors are a few KB; refuse what is not


def load_selector_file(path: Path) -> SelectorFile:
    """Load and validate one selector file.

    Raises:
        SelectorFileError: unreadable, not YAML, or malformed (message names file and line).
    """
    from dealerbot.yamlfile import compose_yaml

    root = compose_yaml(path, MAX_SELECTOR_FILE_BYTES, SelectorFileError)
    if not isinstance(root, yaml.MappingNode):
        raise _err(path, root, "the file must be a mapping with 'portal' and 'selectors'")
    top: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key_node, val_node in root.value:
        key = _scalar(path, key_node, "key")
        if key not in TOP_KEYS:
            raise _err(path, key_node, f"unknown top-level key '{key}' (allowed: {', '.join(sorted(TOP_KEYS))})")
        if key in top:
            raise _err(path, key_node, f"'{key}' appears twice (first on line {top[key][0].start_mark.line + 1})")
        top[key] = (key_node, val_node)
    for required in ("portal", "selectors"):
        if required not in top:
            raise _err(path, root, f"missing top-level key '{required}'")
    portal = _scalar(path, top["portal"][1], "portal")
    title = _scalar(path, top["title"][1], "title") if "title" in top else portal

    sel_node = top["selectors"][1]
    if not isinstance(sel_node, yaml.MappingNode):
        raise _err(path, sel_node, "'selectors' must be a mapping of name -> list of choices")
    selectors: dict[str, SelectorSpec] = {}
    for key_node, val_node in sel_node.value:
        name = _scalar(path, key_node, "selector name")
        if name in selectors:
            raise _err(path, key_node, f"selector '{name}' is defined twice (first on line {selectors[name].line})")
        if isinstance(val_node, yaml.MappingNode):
            choices = [_candidate(path, name, val_node)]
        elif isinstance(val_node, yaml.SequenceNode) and val_node.value:
            choices = [_candidate(path, name, item) for item in val_node.value]
        else:
            raise _err(path, val_node, f"selector '{name}' needs a non-empty list of choices")
        placeholders = {frozenset(c.fields()) for c in choices}
        if len(placeholders) > 1:
            raise _err(path, val_node, f"selector '{name}': all choices must use the same {{placeholders}}")
        selectors[name] = SelectorSpec(name, tuple(choices), key_node.start_mark.line + 1)

    endpoints: dict[str, str] = {}
    if "endpoints" in top:
        ep_node = top["endpoints"][1]
        if not isinstance(ep_node, yaml.MappingNode):
            raise _err(path, ep_node, "'endpoints' must be a mapping of name -> URL path")
        for key_node, val_node in ep_node.value:
            name = _scalar(path, key_node, "endpoint name")
            if name in endpoints:
                raise _err(path, key_node, f"endpoint '{name}' is defined twice")
            endpoints[name] = _scalar(path, val_node, "endpoint")

    mask = _name_list(path, top.get("evidence_mask"), selectors, "evidence_mask")
    screens = _screens(path, top["screens"][1], selectors, endpoints) if "screens" in top else ()
    optional = _name_list(path, top.get("optional"), selectors, "optional")
    tables = _tables(path, top["tables"][1], selectors, endpoints) if "tables" in top else {}
    expired_paths, expired_text = _expiry(path, top["session_expired"][1]) if "session_expired" in top else ((), "")
    outcomes = _outcomes(path, top["outcomes"][1], selectors) if "outcomes" in top else {}
    return SelectorFile(path, portal, title, selectors, endpoints, tuple(mask), screens, frozenset(optional), tables,
                        expired_paths, expired_text, outcomes=outcomes)


def _outcomes(path: Path, node: yaml.Node, selectors: dict[str, SelectorSpec]) -> dict[str, Outcome]:
    """``outcomes:``: submit button name -> {success: [signals], failure: [signals]}."""
    if not isinstance(node, yaml.MappingNode):
        raise _err(path, node, "'outcomes' must be a mapping of submit button name -> {success: [...], failure: [...]}")
    out: dict[str, Outcome] = {}
    for key_node, item in node.value:
        name = _scalar(path, key_node, "submit button name")
        if name not in selectors:
            raise _err(path, key_node, f"outcomes: '{name}' is not a selector (name the submit button)")
        if name in out:
            raise _err(path, key_node, f"outcomes: '{name}' is defined twice")
        data = yaml.safe_load(yaml.serialize(item)) if isinstance(item, yaml.MappingNode) else None
        if not isinstance(data, dict) or set(data) - {"success", "failure"} or not data.get("success"):
            raise _err(path, item, f"outcomes: '{name}' must be a mapping with success: [signals] (and failure: [signals])")
        lists: dict[str, tuple[Signal, ...]] = {}
        for part in ("success", "failure"):
            raw = data.get(part) or []
            if not isinstance(raw, list):
                raise _err(path, item, f"outcomes: '{name}': {part} must be a list of signals")
            try:
                lists[part] = tuple(parse_signal(r, selectors) for r in raw)
            except ValueError as exc:
                raise _err(path, item, f"outcomes: '{name}': {part}: {exc}") from None
        out[name] = Outcome(lists["success"], lists["failure"])
    return out


def _expiry(path: Path, node: yaml.Node) -> tuple[tuple[str, ...], str]:
    if not isinstance(node, yaml.MappingNode):
        raise _err(path, node, "'session_expired' must be a mapping with paths: [...] and/or text: ...")
    data = yaml.safe_load(yaml.serialize(node))
    unknown = set(data) - {"paths", "text"}
    if unknown:
        raise _err(path, node, f"session_expired: unknown key(s) {sorted(unknown)} (allowed: paths, text)")
    paths = data.get("paths") or []
    if not isinstance(paths, list) or not all(isinstance(p, str) and p.startswith("/") for p in paths):
        raise _err(path, node, "session_expired: paths must be a list of URL paths starting with /")
    text = data.get("text") or ""
    if not isinstance(text, str):
        raise _err(path, node, "session_expired: text must be a text")
    if not paths and not text:
        raise _err(path, node, "session_expired: give paths, text or both")
    return tuple(p.rstrip("/") or "/" for p in paths), text.strip()


def _tables(path: Path, node: yaml.Node, selectors: dict[str, SelectorSpec], endpoints: dict[str, str]) -> dict[str, TableSpec]:
    if not isinstance(node, yaml.MappingNode):
        raise _err(path, node, "'tables' must be a mapping of name -> {endpoint, table, columns, next}")
    out: dict[str, TableSpec] = {}
    for key_node, item in node.value:
        name = _scalar(path, key_node, "table name")
        if name in out:
            raise _err(path, key_node, f"table '{name}' is defined twice")
        if not isinstance(item, yaml.MappingNode):
            raise _err(path, item, f"table '{name}' must be a mapping with endpoint, table and columns")
        data = yaml.safe_load(yaml.serialize(item))
        unknown = set(data) - TABLE_KEYS
        if unknown:
            raise _err(path, item, f"table '{name}': unknown key(s) {sorted(unknown)} (allowed: {', '.join(sorted(TABLE_KEYS))})")
        for required in ("endpoint", "table", "columns"):
            if not data.get(required):
                raise _err(path, item, f"table '{name}': missing '{required}'")
        if data["endpoint"] not in endpoints:
            raise _err(path, item, f"table '{name}': unknown endpoint '{data['endpoint']}' (add it under endpoints:)")
        empty = data.get("empty")
        if empty is not None and (not isinstance(empty, str) or (empty != NO_ROWS and empty not in selectors)):
            raise _err(path, item, f"table '{name}': empty must be '{NO_ROWS}' (a page without the table has no rows) "
                                   f"or the name of a selector shown when nothing is found, not {empty!r}")
        for key in ("table", "next", "empty"):
            ref = data.get(key)
            if ref is None or (key == "empty" and ref == NO_ROWS):
                continue
            if ref not in selectors:
                raise _err(path, item, f"table '{name}': {key} names unknown selector '{ref}'")
            if key == "table" and not any(c.kind == "css" for c in selectors[ref].candidates):
                raise _err(path, item, f"table '{name}': selector '{ref}' needs a css choice (the page is read as fetched HTML)")
            if key != "table" and not any(c.kind in ("css", "text") or (c.kind == "role" and c.value in ("link", "button"))
                                          for c in selectors[ref].candidates if not c.frame):
                raise _err(path, item, f"table '{name}': selector '{ref}' needs a css, text or role (link/button) choice "
                                       f"(the page is read as fetched HTML)")
        columns = data["columns"]
        if not isinstance(columns, dict) or not all(isinstance(k, str) and isinstance(v, str) and v.strip()
                                                    for k, v in columns.items()):
            raise _err(path, item, f"table '{name}': columns must map field names to header texts")
        out[name] = TableSpec(name, data["endpoint"], data["table"], tuple((k, v.strip()) for k, v in columns.items()),
                              data.get("next"), key_node.start_mark.line + 1, empty)
    return out


def _name_list(
    path: Path, entry: tuple[yaml.Node, yaml.Node] | None, selectors: dict[str, SelectorSpec], key: str
) -> list[str]:
    """A top-level list of selector names (``evidence_mask``, ``optional``), each checked."""
    if entry is None:
        return []
    node = entry[1]
    if not isinstance(node, yaml.SequenceNode):
        raise _err(path, node, f"'{key}' must be a list of selector names")
    names = []
    for item in node.value:
        name = _scalar(path, item, f"{key} entry")
        if name not in selectors:
            raise _err(path, item, f"{key} names unknown selector '{name}'")
        names.append(name)
    return names


def _screens(path: Path, node: yaml.Node, selectors: dict[str, SelectorSpec], endpoints: dict[str, str]) -> tuple[Screen, ...]:
    if not isinstance(node, yaml.SequenceNode):
        raise _err(path, node, "'screens' must be a list of {names, endpoint | via, ...}")
    out = []
    for item in node.value:
        if not isinstance(item, yaml.MappingNode):
            raise _err(path, item, "each screen must be a mapping")
        data = yaml.safe_load(yaml.serialize(item))
        unknown = set(data) - SCREEN_KEYS
        if unknown:
            raise _err(path, item, f"screen: unknown key(s) {sorted(unknown)} (allowed: {', '.join(sorted(SCREEN_KEYS))})")
        names = data.get("names")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise _err(path, item, "screen: 'names' must be a non-empty list of selector name prefixes")
        for prefix in names:
            if not any(n.startswith(prefix + ".") for n in selectors):
                raise _err(path, item, f"screen: no selector name starts with '{prefix}.'")
        if bool(data.get("endpoint")) == bool(data.get("via")):
            raise _err(path, item, "screen: give exactly one of 'endpoint' or 'via'")
        if data.get("endpoint") and data["endpoint"] not in endpoints:
            raise _err(path, item, f"screen: unknown endpoint '{data['endpoint']}'")
        for key in ("via", "before"):
            if data.get(key) and data[key] not in selectors:
                raise _err(path, item, f"screen: {key} names unknown selector '{data[key]}'")
        params = data.get("params") or {}
        if not isinstance(params, dict):
            raise _err(path, item, "screen: 'params' must be a mapping")
        out.append(Screen(
            tuple(names), data.get("endpoint"), data.get("via"), data.get("before"),
            tuple((str(k), str(v)) for k, v in params.items()), bool(data.get("logged_out", False)),
        ))
    return tuple(out)


def shipped_selectors_dir() -> Path:
    """The selector files that come with dealerbot (a source checkout's, or an installed wheel's).

    Raises:
        SelectorFileError: none can be found.
    """
    from dealerbot.resources import shipped_dir

    folder = shipped_dir() / "selectors"  # the checkout's selectors/, or the wheel's dealerbot/shipped/selectors/
    if not folder.is_dir():
        raise SelectorFileError(f"no selectors/ folder here and none shipped with dealerbot (looked in {folder})")
    return folder


def portal_selectors_path(portal: str, directory: Path | None = None, home: Path | None = None) -> Path:
    """Which file holds ``portal``'s selectors: ``<directory>/<portal>.yaml`` when a directory
    is given; else the project folder's (``home``, default the working folder)
    ``selectors/<portal>.yaml`` (a dealership's own portal, or its adjusted copy of a shipped
    one) when there is one, else dealerbot's own, file by file."""
    if directory is not None:
        return directory / f"{portal}.yaml"
    for folder in dict.fromkeys([home or Path.cwd(), Path.cwd()]):
        here = folder / "selectors" / f"{portal}.yaml"
        if here.is_file():
            return here
    return shipped_selectors_dir() / f"{portal}.yaml"


def load_portal_selectors(portal: str, directory: Path | None = None, home: Path | None = None) -> SelectorFile:
    """Load the selector file of ``portal`` (see :func:`portal_selectors_path`).

    Raises:
        SelectorFileError: missing or malformed file.
    """
    path = portal_selectors_path(portal, directory, home)
    if not path.is_file():
        raise SelectorFileError(f"{path}: selector file for portal '{portal}' not found")
    return load_selector_file(path)


def check_selector_files(portals: Iterable[str], directory: Path | None = None, home: Path | None = None) -> None:
    """Validate the selector file of each of ``portals`` that has one: called before a run is
    recorded, so that a broken file is said at once (with its line) instead of failing, and
    notifying, every run. A portal without a file is left to the run, which names it if it
    opens that portal.

    Raises:
        SelectorFileError: a file is unreadable, not YAML, or malformed (names file and line).
    """
    for portal in dict.fromkeys(portals):
        path = portal_selectors_path(portal, directory, home)
        if path.is_file():
            load_selector_file(path)


# --- resolving on a live page ----------------------------------------------------------------


def warn_drift(log: Logger, file: SelectorFile, name: str, first: Candidate, used: Candidate, index: int) -> None:
    """Log that a fallback matched where the first choice did not: the portal has drifted."""
    log.warning(
        "selector '{}' in {}: first choice {} did not match; fallback #{} {} did — "
        "the portal has drifted, update line {} of the file",
        name, file.path.name, first.describe(), index + 1, used.describe(), first.line,
    )


