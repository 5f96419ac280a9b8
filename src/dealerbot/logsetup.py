"""Loguru sinks and the masking that every sink applies.

Three sinks, each masking passwords, tokens, mobiles and ID numbers:

* a readable console sink (added by the CLI, :func:`add_console_sink`);
* a per-run log file ``logs/runs/<run-id>/run.log``;
* a rotating, retained JSON log ``logs/dealerbot.jsonl`` (one object per line).

Every line carries ``run_id`` and ``bot`` (bound with ``logger.bind``). Nothing is configured at
import time; callers add sinks and remove them with the handles they get back.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote, quote_plus

from loguru import logger

from dealerbot.private_files import private_dir, private_file

if TYPE_CHECKING:
    from loguru import Logger, Record

_FW = "０-９"
_D = f"[0-9{_FW}]"
# A mobile, possibly with +86/0086 and separators, full-width digits included.
_MOBILE_STRICT = re.compile(
    rf"(?<![0-9{_FW}])(?:(?:\+|＋)?(?:86|８６)[\s-]?|00(?:86)[\s-]?)?"
    rf"([1１]{_D}{{2}})[\s.-]?({_D}{{4}})[\s.-]?({_D}{{4}})(?![0-9{_FW}])"
)
_ID = re.compile(r"(?<![0-9])(\d{6})(\d{8})(\d{3}[\dXx])(?![0-9])")
_SENSITIVE = (r"[\w.-]*(?:password|passwd|pwd|token|secret|session|sessid|csrf|xsrf|nonce|authorization|cookie"
              r"|verification)[\w.-]*")
_SENSITIVE_NAME = re.compile(rf"(?i){_SENSITIVE}")
# {"name": "oem_session", "value": "..."}: cookies, form fields and headers inside traces.
# ["META",{"name":"csrf-token","content":"..."}]: an element's attributes in a trace's DOM snapshot.
_NAME_VALUE = re.compile(
    rf'(?i)("name"\s*:\s*"{_SENSITIVE}"\s*,\s*"(?:value|content)"\s*:\s*")((?:[^"\\]|\\.)*)(")'
)
# <input name="csrf_token" value="..."> and <meta name="csrf-token" content="...">, the value
# after the name or before it, in double or single quotes (one tag: no ">" in between).
_HTML_ATTR = re.compile(
    rf"""(?i)(\bname=(["']){_SENSITIVE}\2[^>]*?\b(?:value|content)=(["']))((?:(?!\3)[^>])*)(\3)"""
)
_HTML_ATTR_BEFORE = re.compile(
    rf"""(?i)(\b(?:value|content)=(["']))((?:(?!\2)[^>])*)(\2[^>]*?\bname=(["']){_SENSITIVE}\5)"""
)
LEARNT_SECRET_MIN = 6  # a token shorter than this is no secret worth learning (and would mask words)


def is_secret_name(name: str) -> bool:
    """Whether a field, header, cookie or attribute called ``name`` holds a secret (a password, a
    CSRF token, a session cookie...): its value is masked wherever it is found."""
    return bool(_SENSITIVE_NAME.fullmatch(name.strip()))
_KV_SECRET = re.compile(
    r"(?i)((?:password|passwd|pwd|token|csrf_token|secret|authorization|x-admin-token|cookie)"
    r"[\"']?\s*[:=]\s*[\"']?)([^\s\"'&,;}]+)"
)


PENDING_LIMIT = 64  # personal values checked one by one before they join an automaton
LEVEL_RATIO = 4  # automata merge when the newer is at least a quarter of the older (LSM-like)


def mask_personal_value(value: str) -> str:
    """``王伟`` -> ``王*``, ``北京市朝阳区建国路8号`` -> ``北**********``: the first character
    stays (enough to tell records apart when reading evidence), the rest is starred."""
    return value[0] + "*" * max(1, len(value) - 1)


class Masker:
    """Masks secrets and personal data in text. Safe to apply twice.

    Known secrets (passwords, tokens) are added with :meth:`add_secret` and replaced by
    ``******``; mobiles become ``138****5678``; 18-digit ID numbers ``110105********002X``;
    ``password=...``/``token: ...`` pairs lose their value. Names and addresses have no shape a
    pattern could find: the values a run meets in its records' personal fields are added with
    :meth:`add_personal` and masked wherever they appear (:func:`mask_personal_value`).
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._personal: set[str] = set()
        self._pending: set[str] = set()  # the newest values, checked one by one
        # Aho-Corasick automata over the older values, largest first (each knows its words):
        # merged as they grow (as an LSM tree does), so adding n values costs O(n log n).
        self._levels: list[Any] = []
        self._later: list[Callable[[], Iterable[str | None]]] = []
        self._later_lock = threading.Lock()
        for secret in secrets:
            self.add_secret(secret)

    def add_secrets_later(self, source: Callable[[], Iterable[str | None]]) -> None:
        """Secrets looked up when the masker is first used, not before: a keyring lookup costs
        time and memory that a command printing nothing never needs."""
        self._later.append(source)

    def add_personal(self, *values: Any) -> None:
        """Remember personal values (names, addresses; at least two characters) to mask. A mobile
        or an ID number is not kept: the patterns mask it wherever it appears (a long run would
        otherwise hold every record's)."""
        for value in values:
            text = str(value).strip() if value is not None else ""
            if len(text) < 2 or "*" in text or text in self._personal:
                continue
            if _MOBILE_STRICT.fullmatch(text) or _ID.fullmatch(text):
                continue
            self._personal.add(text)
            self._pending.add(text)
        if len(self._pending) > PENDING_LIMIT:
            self._levels.append(self._automaton(self._pending))
            self._pending = set()
            while len(self._levels) > 1 and len(self._levels[-1]) * LEVEL_RATIO >= len(self._levels[-2]):
                newer, older = self._levels.pop(), self._levels.pop()
                self._levels.append(self._automaton([*older.keys(), *newer.keys()]))

    @staticmethod
    def _automaton(values: Iterable[str]) -> Any:
        import ahocorasick  # C extension: one pass over the text, however many values

        automaton = ahocorasick.Automaton()
        for value in values:
            automaton.add_word(value, len(value))
        automaton.make_automaton()
        return automaton

    def _mask_personal(self, text: str) -> str:
        if not self._personal:
            return text
        for automaton in tuple(self._levels):
            out, last = [], 0
            for end, length in automaton.iter_long(text):
                start = end - length + 1
                out += [text[last:start], mask_personal_value(text[start:end + 1])]
                last = end + 1
            if out:
                out.append(text[last:])
                text = "".join(out)
        for value in sorted(tuple(self._pending), key=len, reverse=True):  # the newest few
            if value in text:
                text = text.replace(value, mask_personal_value(value))
        return text

    def add_secret(self, secret: str | None) -> None:
        """Remember a secret value so it is masked wherever it appears, also as it looks
        JSON-escaped or URL-encoded (inside traces and logged URLs)."""
        if secret and len(secret) >= 3:
            self._secrets |= {
                secret,
                json.dumps(secret, ensure_ascii=False)[1:-1],
                json.dumps(secret)[1:-1],
                quote(secret, safe=""),
                quote_plus(secret, safe=""),
            }

    def learn_secrets(self, text: str) -> None:
        """Remember as secrets the values that ``text`` gives secret-named fields (a login form's
        hidden CSRF input, a ``<meta name="csrf-token">``, a ``{"name": "x-csrf-token", "value":
        ...}`` header), so that they are masked also where they appear without their name (a
        request's body, a URL, a script)."""
        if not text:
            return
        values = [m.group(2) for m in _NAME_VALUE.finditer(text)]
        values += [m.group(4) for m in _HTML_ATTR.finditer(text)]
        values += [m.group(3) for m in _HTML_ATTR_BEFORE.finditer(text)]
        for value in values:
            self.learn_secret(value)

    def learn_secret(self, value: str | None) -> None:
        """Remember ``value``, found in a secret-named field, as a secret: unless it is already
        masked or too short to be one."""
        if value and len(value) >= LEARNT_SECRET_MIN and "******" not in value and value not in self._secrets:
            self.add_secret(value)

    def __call__(self, text: str) -> str:
        """Return ``text`` with every secret, mobile and ID number masked."""
        if not text:
            return text
        if self._later:
            with self._later_lock:  # sinks may mask from other threads: look up once, before any masks
                while self._later:  # a source leaves the list once its secrets are in, not before
                    for secret in self._later[-1]():
                        self.add_secret(secret)
                    self._later.pop()
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, "******")
        text = _NAME_VALUE.sub(lambda m: m.group(1) + "******" + m.group(3), text)
        text = _HTML_ATTR.sub(lambda m: m.group(1) + "******" + m.group(5), text)
        text = _HTML_ATTR_BEFORE.sub(lambda m: m.group(1) + "******" + m.group(4), text)
        text = _KV_SECRET.sub(lambda m: m.group(1) + "******", text)
        text = _ID.sub(lambda m: m.group(1) + "********" + m.group(3)[-4:], text)
        text = _MOBILE_STRICT.sub(lambda m: m.group(1) + "****" + m.group(3), text)
        return self._mask_personal(text)

    def mask_obj(self, value: Any) -> Any:
        """Mask strings inside dicts/lists/tuples (for structured ``extra`` values)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {k: self.mask_obj(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.mask_obj(v) for v in value)
        return value


def _masking_filter(masker: Masker, run_id: str | None = None) -> Callable[[Record], bool]:
    def _filter(record: Record) -> bool:
        # A run binds its own masker (``masker`` in extra), which knows the names and addresses
        # it met: every sink uses it for that run's lines (moved out of extra: never serialized).
        # The record is a plain dict: the masker rides along under a private key for the next sink.
        raw = cast("dict[str, Any]", record)
        bound = record["extra"].pop("masker", None) or raw.get("_masker")
        if bound is not None:
            raw["_masker"] = bound
        if run_id is not None and record["extra"].get("run_id") != run_id:
            return False
        mask = bound or masker
        record["message"] = mask(record["message"])
        if record["extra"]:
            record["extra"].update(mask.mask_obj(dict(record["extra"])))
        if record["exception"] is not None:
            # Render the traceback here and mask the text: exception messages (SQL parameters,
            # chained causes, groups) can carry anything. Sinks then print no raw traceback.
            typ, value, tb = record["exception"]
            rendered = "".join(traceback.format_exception(typ, value, tb)).rstrip()
            record["message"] = f"{record['message']}\n{mask(rendered)}"
            record["exception"] = None
        return True

    return _filter


def _console_format(record: Record) -> str:
    bot = record["extra"].get("bot", "dealerbot")
    return (
        "<green>{time:HH:mm:ss}</green> <level>{level:<7}</level> "
        f"<cyan>{bot}</cyan> {{message}}\n{{exception}}"
    )


def _file_format(record: Record) -> str:
    extra = record["extra"]
    return (
        "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level:<7} | "
        f"{extra.get('run_id', '-')} | {extra.get('bot', '-')} | {{message}}\n{{exception}}"
    )


def add_console_sink(masker: Masker, level: str = "INFO") -> int:
    """Replace loguru's unmasked default stderr sink with a masked, readable one.

    Returns the handler id (pass it to ``logger.remove``).
    """
    try:
        logger.remove(0)
    except ValueError:
        pass
    def write(message: str) -> None:
        # Look sys.stderr up at each write, so that a rich progress display that redirects
        # stderr keeps log lines above its bar instead of tearing it.
        sys.stderr.write(message)

    return logger.add(
        write,
        level=level,
        format=_console_format,
        filter=_masking_filter(masker),
        colorize=sys.stderr.isatty(),
        backtrace=False,
        diagnose=False,  # never print variable values in tracebacks: they may hold secrets
    )


@contextmanager
def run_sinks(
    run_id: str, bot: str, logs_dir: Path, run_dir: Path, masker: Masker
) -> Iterator[Logger]:
    """Add the per-run file and the rotating JSON sinks for one run; remove them at exit.

    Yields a logger bound with ``run_id`` and ``bot``.
    """
    private_dir(logs_dir)
    private_dir(run_dir)
    ids = [
        logger.add(
            private_file(run_dir / "run.log"),
            level="DEBUG",
            format=_file_format,
            filter=_masking_filter(masker, run_id),
            encoding="utf-8",
            backtrace=False,
            diagnose=False,
        ),
        logger.add(
            private_file(logs_dir / "dealerbot.jsonl"),
            level="INFO",
            serialize=True,
            rotation="10 MB",
            retention=10,
            filter=_masking_filter(masker, run_id),
            encoding="utf-8",
            backtrace=False,
            diagnose=False,
        ),
    ]
    try:
        yield logger.bind(run_id=run_id, bot=bot, masker=masker)
    finally:
        for handler in ids:
            logger.remove(handler)
