"""Masking a Playwright trace before it is kept as evidence: the personal values its DOM snapshots
show are learnt, then every value, input and secret in its JSON and resources is masked."""

from __future__ import annotations

import contextlib
import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dealerbot.logsetup import Masker, is_secret_name


def _snapshot_element(node: list[Any]) -> Any:
    """An lxml element from a trace's DOM snapshot node ``["TAG", {attrs}, child...]`` (text
    children are strings; ``[[n, m]]`` references to earlier snapshots are left out)."""
    from lxml import etree

    tag = node[0] if isinstance(node[0], str) and node[0].replace("-", "").isalnum() else "x-node"
    el = etree.Element(tag.lower())
    rest = node[1:]
    if rest and isinstance(rest[0], dict):
        for k, v in rest[0].items():
            with contextlib.suppress(ValueError, TypeError):
                el.set(k, str(v))
        rest = rest[1:]
    last = None
    for child in rest:
        if isinstance(child, str):
            if last is None:
                el.text = (el.text or "") + child
            else:
                last.tail = (last.tail or "") + child
        elif isinstance(child, list) and child and isinstance(child[0], str):
            last = _snapshot_element(child)
            el.append(last)
    return el


def learn_personal_from_trace(path: Path, css: Sequence[str], masker: Masker) -> None:
    """Teach ``masker`` every personal value the trace's DOM snapshots show: the texts of the
    cells the portal's ``evidence_mask`` selectors (``css``) match, on every screen the run
    passed through (a landing page's list, a pop-up), not only the one it failed on."""
    if not css:
        return
    from lxml.cssselect import CSSSelector

    selectors = []
    for c in css:
        with contextlib.suppress(Exception):  # a selector lxml cannot read: the page-level masks remain
            selectors.append(CSSSelector(c))
    with zipfile.ZipFile(path) as z:
        members = [n for n in z.namelist() if n.endswith(".trace")]
        for name in members:
            for line in z.read(name).decode("utf-8", "replace").splitlines():
                if '"frame-snapshot"' not in line:
                    continue
                with contextlib.suppress(ValueError, KeyError, TypeError, RecursionError):
                    html = json.loads(line)["snapshot"]["html"]
                    if not (isinstance(html, list) and html and isinstance(html[0], str)):
                        continue
                    root = _snapshot_element(html)
                    for sel in selectors:
                        masker.add_personal(*(
                            "".join(el.itertext()).strip() for el in sel(root) if len(el) == 0
                        ))


# In a trace: the keys of a field's or element's value next to its "name" (cookies, headers,
# form parameters; a DOM snapshot's attributes, where Playwright adds an input's current value).
_TRACE_VALUE_KEYS = ("value", "content", "__playwright_value_")
_IMAGES = (".png", ".jpeg", ".jpg", ".webp")


def _holds_secret(obj: dict[str, Any]) -> bool:
    """A dict whose value keys hold a secret: a secret-named field, header or cookie
    (``{"name": "csrf_token", "value": ...}``) or a password input's attributes."""
    name, kind = obj.get("name"), obj.get("type")
    return (isinstance(name, str) and is_secret_name(name)) or (isinstance(kind, str) and kind.lower() == "password")


def _learn_trace_secrets(value: Any, masker: Masker) -> None:
    """Teach ``masker`` the secrets inside a trace's JSON value: every secret-named field's value
    and every token an HTML string inside gives (a recorded ``page.content()``)."""
    if isinstance(value, str):
        masker.learn_secrets(value)
    elif isinstance(value, dict):
        if _holds_secret(value):
            for key in _TRACE_VALUE_KEYS:
                if isinstance(value.get(key), str):
                    masker.learn_secret(value[key])
        for key, item in value.items():
            if isinstance(item, str) and is_secret_name(key):
                masker.learn_secret(item)
            else:
                _learn_trace_secrets(item, masker)
    elif isinstance(value, list):
        for item in value:
            _learn_trace_secrets(item, masker)


def _mask_trace_json(value: Any, masker: Masker) -> Any:
    """A trace's JSON value with every string inside masked (decoded first, so that an HTML page
    inside a string is masked as HTML), and every secret field's value replaced outright."""
    if isinstance(value, str):
        return masker(value)
    if isinstance(value, dict):
        secret = _holds_secret(value)
        out = {}
        for key, item in value.items():
            if isinstance(item, str) and item and ((secret and key in _TRACE_VALUE_KEYS) or is_secret_name(key)):
                out[masker(key)] = "******"
            else:
                out[masker(key)] = _mask_trace_json(item, masker)
        return out
    if isinstance(value, list):
        return [_mask_trace_json(item, masker) for item in value]
    return value


def _json_docs(text: str) -> list[Any] | None:
    """``text`` as JSON: one document, or one document a line (``trace.trace``,
    ``trace.network``); None when it is not JSON."""
    if text.lstrip()[:1] not in ("{", "["):
        return None
    with contextlib.suppress(ValueError, RecursionError):
        return [json.loads(text)]
    docs = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            docs.append(json.loads(line))
        except (ValueError, RecursionError):
            return None
    return docs


def mask_trace(path: Path, masker: Masker) -> None:
    """Rewrite a trace zip with every text member masked (mobiles, ID numbers, names, secrets).

    JSON members (the actions and DOM snapshots in ``trace.trace``, ``trace.network``, JSON
    bodies in ``resources/``) are masked string by string, decoded: a page's HTML recorded as a
    call's result is a JSON string whose quotes are escaped, which text patterns would miss. First
    every secret the trace shows in a secret-named field (a CSRF token in a hidden input or a meta
    tag, a session cookie) is learnt, so that it is masked also where it appears unnamed."""
    tmp = path.with_suffix(".masking")
    with zipfile.ZipFile(path) as src:
        texts: set[str] = set()  # the members that are text (parsed again below: one at a time in memory)
        for info in src.infolist():
            if info.filename.endswith(_IMAGES):
                continue
            try:
                text = src.read(info).decode("utf-8")
            except UnicodeDecodeError:
                continue  # fonts and the like: no text
            texts.add(info.filename)
            docs = _json_docs(text)
            if docs is None:
                masker.learn_secrets(text)
            else:
                _learn_trace_secrets(docs, masker)
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                data = src.read(info)
                if info.filename in texts:
                    text = data.decode("utf-8")
                    docs = _json_docs(text)
                    if docs is None:
                        text = masker(text)
                    else:
                        text = "\n".join(json.dumps(_mask_trace_json(d, masker), ensure_ascii=False,
                                                     separators=(",", ":")) for d in docs) + "\n"
                    data = text.encode("utf-8")
                dst.writestr(info, data)
    os.replace(tmp, path)

