"""Reading the YAML files staff edit (the data dictionary, later the timetables), safely and
with line numbers.

:func:`load_yaml` returns plain Python data plus a :class:`Lines` map from each value's path
(``("models", "GX7-25T-LUX")``) to its line, so that a validation error can name the line.
It refuses what makes YAML dangerous or ambiguous in a hand-edited file: anchors and aliases
(alias bombs), duplicate keys (the later one would silently win), files over a size cap, and
text that is not UTF-8.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dealerbot.errors import ConfigError, DataFileError

MAX_BYTES = 2_000_000

Path_ = tuple[str | int, ...]


@dataclass
class Lines:
    """Line numbers (1-based) of the values in a loaded YAML file, by path."""

    file: Path
    lines: dict[Path_, int] = field(default_factory=dict)
    # How a value that YAML read as something other than text (a number, true/false, a date)
    # was written, by path; and the same for such keys (by the path of their value).
    written: dict[Path_, str] = field(default_factory=dict)
    keys_written: dict[Path_, str] = field(default_factory=dict)

    def of(self, path: Path_) -> int:
        """The line of ``path``, or of its nearest parent that has one (0 when unknown)."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 0)

    def where(self, path: Path_) -> str:
        """``file:line`` of ``path``."""
        line = self.of(path)
        return f"{self.file}:{line}" if line else str(self.file)


def compose_yaml(path: Path, max_bytes: int = MAX_BYTES, error: type[ConfigError] = DataFileError) -> yaml.Node | None:
    """Read ``path`` and parse it into YAML nodes (which carry their lines), safely.

    Raises:
        ``error`` (DataFileError by default): the file is missing, unreadable, too large, not
            UTF-8, not valid YAML, or uses anchors/aliases (the message names file and line).
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise error(f"{path}: cannot read the file: {exc.strerror}") from None
    if size > max_bytes:
        raise error(f"{path}: {size:,} bytes is too large for this file (at most {max_bytes:,})")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot read the file: {exc.strerror}") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # a BOM left by Windows Notepad is harmless
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise error(f"{path}:{line}: the file is not UTF-8 (saved as GBK?); save it as UTF-8 and try again") from None
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                at = f":{event.start_mark.line + 1}" if event.start_mark else ""
                raise error(f"{path}{at}: anchors and aliases (& and *) are not allowed in this file")
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark else ""
        raise error(f"{path}{at}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None


def load_yaml(path: Path, max_bytes: int = MAX_BYTES) -> tuple[Any, Lines]:
    """Load ``path`` as YAML data with the line of every value.

    Raises:
        DataFileError: as :func:`compose_yaml`, a key repeats (names both lines), or a value
            YAML recognises by its form cannot be read (a date like 2027-13-01).
    """
    root = compose_yaml(path, max_bytes)
    lines = Lines(path)
    if root is None:
        return None, lines
    return _build(root, (), lines, yaml.SafeLoader("")), lines


def _build(node: yaml.Node, path: Path_, lines: Lines, loader: yaml.SafeLoader) -> Any:
    lines.lines.setdefault(path, node.start_mark.line + 1)  # a key's own line wins (set below)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise DataFileError(f"{lines.file}:{key_node.start_mark.line + 1}: a key must be plain text")
            key = loader.construct_object(key_node)
            if not isinstance(key, str):
                lines.keys_written[(*path, key if isinstance(key, int) else str(key))] = key_node.value
            key = key if isinstance(key, str | int) else str(key)
            if key in out:
                raise DataFileError(
                    f"{lines.file}:{key_node.start_mark.line + 1}: '{key}' appears twice "
                    f"(first on line {lines.lines[(*path, key)]})"
                )
            lines.lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _build(value_node, (*path, key), lines, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), lines, loader) for i, item in enumerate(node.value)]
    try:
        value = loader.construct_object(node)
    except ValueError as exc:  # a date YAML recognises by its form but is none: 2027-13-01
        raise DataFileError(f"{lines.file}:{node.start_mark.line + 1}: {node.value}: 不是有效的值 "
                            f"(YAML cannot read it: {exc})") from None
    if not isinstance(value, str):
        lines.written[path] = node.value
    return value


_KINDS = (
    (bool, "真假值", "true/false"), (int, "数字", "a number"), (float, "小数", "a decimal number"),
    (list, "列表", "a list"), (dict, "键值表", "a mapping"),
)


def _kind(value: Any) -> tuple[str, str]:
    """What ``value`` is, in Chinese and in English."""
    for typ, chinese, english in _KINDS:
        if isinstance(value, typ):
            return chinese, english
    return type(value).__name__, type(value).__name__  # a date, a timestamp, binary


def as_text(value: Any, path: Path_, lines: Lines, what: str) -> str:
    """The YAML value at ``path`` as text, when it is text: a string, or a value YAML reads as
    something else that reads back exactly as written (``101``). ``what`` names the entry in
    the message.

    Raises:
        DataFileError: (naming file and line) the value is a list or a mapping, or YAML reads it
            otherwise than written: true/false (``yes``, ``no``, ``on``), a number (``0123`` is
            83, ``1.50`` is 1.5): quote it.
    """
    if isinstance(value, str):
        return value
    written = lines.written.get(tuple(path))
    if not isinstance(value, list | dict) and value is not None and written == str(value):
        return written
    chinese, english = _kind(value)
    if isinstance(value, list | dict):
        raise DataFileError(f"{lines.where(path)}: {what}: 值必须是一个文本，不能是{chinese} "
                            f"(the value must be one text, not {english})")
    raise DataFileError(f"{lines.where(path)}: {what}: YAML 把 {written} 读作{chinese}而不是文本，请加引号写成 "
                        f"\"{written}\" (YAML reads {written} as {english}, not text: put it in quotes)")


def key_as_text(key: str | int, path: Path_, lines: Lines, what: str) -> str:
    """A mapping's key (whose value is at ``path``) as text, when it reads back as written.

    Raises:
        DataFileError: (naming file and line) YAML read the key otherwise than written: as
            true/false (``yes``, ``no``), a number written otherwise (``0123``): quote it.
    """
    written = lines.keys_written.get(tuple(path))
    if written is None or written == str(key):
        return str(key)
    raise DataFileError(f"{lines.where(path)}: {what}: YAML 把键 {written} 读作 {key} 而不是文本，请加引号写成 "
                        f"\"{written}\" (YAML reads the key {written} as {key}, not text: put it in quotes)")
