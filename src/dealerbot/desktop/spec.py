"""A desktop client's screens, declared in YAML like a web portal's selectors::

    portal: dms_desktop
    kind: desktop
    title: DMS客户端
    windows:                         # name -> title (a regular expression, searched)
      main: "^DMS客户端 - 销售合同$"
      contract_new: "^新建合同$"
    nuisances:                       # windows that may pop up on their own, and the keys closing them
      - {title: "^提示$", close: [enter]}
    forms:                           # the fields in tab order, from the field focused when it opens
      contract: {fields: [customer_no, model_code, color], save: [alt+s]}
    hotkeys:                         # name -> keys pressed in turn ("ctrl+n": together)
      new_contract: [ctrl+n]
      clear_field: [end, shift+home, backspace]
    anchors:                         # buttons without a hotkey: a small PNG next to this file
      search_button: {image: dms_desktop/search.png, confidence: 0.9}
    masks:                           # screen regions holding personal data, relative to a window
      customer_new: [[90, 10, 240, 130]]

Loading validates everything and names the file and line of a mistake.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dealerbot.errors import SelectorFileError, UnknownSelector

TOP_KEYS = {"portal", "kind", "title", "windows", "nuisances", "forms", "hotkeys", "anchors", "masks"}
KEY_NAME = re.compile(r"[a-z0-9]+(\+[a-z0-9]+)*")


@dataclass(frozen=True)
class FormSpec:
    fields: tuple[str, ...]
    save: tuple[str, ...] = ()


@dataclass(frozen=True)
class Anchor:
    image: Path
    confidence: float = 0.9


@dataclass
class DesktopSpec:
    """A loaded, validated desktop screen file."""

    path: Path
    portal: str
    title: str
    windows: dict[str, str]
    nuisances: tuple[tuple[str, tuple[str, ...]], ...] = ()
    forms: dict[str, FormSpec] = field(default_factory=dict)
    hotkeys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    anchors: dict[str, Anchor] = field(default_factory=dict)
    masks: dict[str, tuple[tuple[int, int, int, int], ...]] = field(default_factory=dict)

    def window(self, name: str) -> str:
        """The title pattern of window ``name``.

        Raises:
            UnknownSelector: no such window in the file.
        """
        try:
            return self.windows[name]
        except KeyError:
            raise UnknownSelector(f"{self.path}: no window named '{name}' (windows: {', '.join(self.windows)})") from None

    def keys(self, name: str) -> tuple[str, ...]:
        """The keys of hotkey ``name``.

        Raises:
            UnknownSelector: no such hotkey.
        """
        try:
            return self.hotkeys[name]
        except KeyError:
            raise UnknownSelector(f"{self.path}: no hotkey named '{name}' (hotkeys: {', '.join(self.hotkeys)})") from None

    def form(self, name: str) -> FormSpec:
        """The form ``name``.

        Raises:
            UnknownSelector: no such form.
        """
        try:
            return self.forms[name]
        except KeyError:
            raise UnknownSelector(f"{self.path}: no form named '{name}'") from None


def _line(node: yaml.Node | None) -> int:
    return node.start_mark.line + 1 if node is not None else 0


def _keys(path: Path, node: yaml.Node, where: str) -> tuple[str, ...]:
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise SelectorFileError(f"{path}:{_line(node)}: {where} must be a non-empty list of keys, e.g. [ctrl+n]")
    keys = []
    for item in node.value:
        if not isinstance(item, yaml.ScalarNode) or not KEY_NAME.fullmatch(str(item.value).lower()):
            raise SelectorFileError(f"{path}:{_line(item)}: {where}: {getattr(item, 'value', item)!r} is not a key "
                                    f"name like enter, tab, ctrl+n or alt+s")
        keys.append(str(item.value).lower())
    return tuple(keys)


def _mapping(path: Path, node: yaml.Node, what: str) -> list[tuple[yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise SelectorFileError(f"{path}:{_line(node)}: '{what}' must be a mapping")
    return list(node.value)


def load_desktop_spec(path: Path) -> DesktopSpec:
    """Load and validate a desktop screen file.

    Raises:
        SelectorFileError: unreadable, not YAML, or malformed (the message names file and line).
    """
    from dealerbot.yamlfile import compose_yaml

    root = compose_yaml(path, 1_000_000, SelectorFileError)
    if not isinstance(root, yaml.MappingNode):
        raise SelectorFileError(f"{path}:{_line(root)}: the file must be a mapping with portal, kind: desktop and windows")
    top: dict[str, yaml.Node] = {}
    for key_node, value in root.value:
        key = str(key_node.value)
        if key not in TOP_KEYS:
            raise SelectorFileError(f"{path}:{_line(key_node)}: unknown top-level key '{key}' (allowed: {', '.join(sorted(TOP_KEYS))})")
        top[key] = value
    for required in ("portal", "kind", "windows"):
        if required not in top:
            raise SelectorFileError(f"{path}:{_line(root)}: missing top-level key '{required}'")
    if getattr(top["kind"], "value", None) != "desktop":
        raise SelectorFileError(f"{path}:{_line(top['kind'])}: kind must be 'desktop'")
    windows = {}
    for k, v in _mapping(path, top["windows"], "windows"):
        try:
            re.compile(str(v.value))
        except (re.error, AttributeError) as exc:
            raise SelectorFileError(f"{path}:{_line(v)}: window '{k.value}': not a valid title pattern ({exc})") from None
        windows[str(k.value)] = str(v.value)
    nuisances = []
    if "nuisances" in top:
        if not isinstance(top["nuisances"], yaml.SequenceNode):
            raise SelectorFileError(f"{path}:{_line(top['nuisances'])}: 'nuisances' must be a list of {{title, close}}")
        for item in top["nuisances"].value:
            parts = dict((str(k.value), v) for k, v in _mapping(path, item, "nuisance"))
            if set(parts) != {"title", "close"}:
                raise SelectorFileError(f"{path}:{_line(item)}: a nuisance needs exactly title and close")
            nuisances.append((str(parts["title"].value), _keys(path, parts["close"], "close")))
    forms = {}
    for k, v in _mapping(path, top.get("forms", yaml.MappingNode("tag:yaml.org,2002:map", [])), "forms"):
        parts = dict((str(a.value), b) for a, b in _mapping(path, v, f"form {k.value}"))
        unknown = set(parts) - {"fields", "save"}
        if unknown or "fields" not in parts or not isinstance(parts["fields"], yaml.SequenceNode):
            raise SelectorFileError(f"{path}:{_line(v)}: form '{k.value}' needs fields: [...] (and save: [keys])")
        forms[str(k.value)] = FormSpec(tuple(str(f.value) for f in parts["fields"].value),
                                       _keys(path, parts["save"], f"form {k.value} save") if "save" in parts else ())
    hotkeys = {str(k.value): _keys(path, v, f"hotkey {k.value}")
               for k, v in _mapping(path, top.get("hotkeys", yaml.MappingNode("tag:yaml.org,2002:map", [])), "hotkeys")}
    anchors = {}
    for k, v in _mapping(path, top.get("anchors", yaml.MappingNode("tag:yaml.org,2002:map", [])), "anchors"):
        parts = dict((str(a.value), b) for a, b in _mapping(path, v, f"anchor {k.value}"))
        image = path.parent / str(getattr(parts.get("image"), "value", ""))
        if not image.is_file() or image.suffix.lower() != ".png":
            raise SelectorFileError(f"{path}:{_line(v)}: anchor '{k.value}': image {image} is not a PNG file")
        try:
            confidence = float(getattr(parts.get("confidence"), "value", 0.9))
        except ValueError:
            confidence = -1.0
        if not 0.5 <= confidence <= 1.0:
            raise SelectorFileError(f"{path}:{_line(v)}: anchor '{k.value}': confidence must be between 0.5 and 1")
        anchors[str(k.value)] = Anchor(image, confidence)
    masks = {}
    for k, v in _mapping(path, top.get("masks", yaml.MappingNode("tag:yaml.org,2002:map", [])), "masks"):
        if str(k.value) not in windows:
            raise SelectorFileError(f"{path}:{_line(k)}: masks: no window named '{k.value}'")
        regions = yaml.safe_load(yaml.serialize(v))
        if not isinstance(regions, list) or not all(isinstance(r, list) and len(r) == 4 and all(isinstance(n, int) for n in r)
                                                    for r in regions):
            raise SelectorFileError(f"{path}:{_line(v)}: masks of '{k.value}' must be a list of [x, y, width, height]")
        masks[str(k.value)] = tuple(tuple(r) for r in regions)
    portal = str(top["portal"].value)
    title = str(getattr(top.get("title"), "value", portal))
    return DesktopSpec(path, portal, title, windows, tuple(nuisances), forms, hotkeys, anchors, masks)
