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
import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from loguru import logger

from dealerbot.files import private_dir, private_file

_FW = "０-９"
_D = f"[0-9{_FW}]"
# A mobile, possibly with +86/0086 and separators, full-width digits included.
_MOBILE_STRICT = re.compile(
    rf"(?<![0-9{_FW}])(?:(?:\+|＋)?(?:86|８６)[\s-]?|00(?:86)[\s-]?)?"
    rf"([1１]{_D}{{2}})[\s.-]?({_D}{{4}})[\s.-]?({_D}{{4}})(?![0-9{_FW}])"
)
_ID = re.compile(r"(?<![0-9])(\d{6})(\d{8})(\d{3}[\dXx])(?![0-9])")
_SENSITIVE = r"[\w.-]*(?:password|passwd|pwd|token|secret|session|sessid|csrf|xsrf|authorization|cookie)[\w.-]*"
# {"name": "oem_session", "value": "..."}: cookies, form fields and headers inside traces.
# ["META",{"name":"csrf-token","content":"..."}]: an element's attributes in a trace's DOM snapshot.
_NAME_VALUE = re.compile(
    rf'(?i)("name"\s*:\s*"{_SENSITIVE}"\s*,\s*"(?:value|content)"\s*:\s*")((?:[^"\\]|\\.)*)(")'
)
# <input name="csrf_token" value="..."> and <meta name="csrf-token" content="...">
_HTML_ATTR = re.compile(rf'(?i)(name="{_SENSITIVE}"[^>]*?\b(?:value|content)=")([^"]*)(")')
_KV_SECRET = re.compile(
    r"(?i)((?:password|passwd|pwd|token|csrf_token|secret|authorization|x-admin-token|cookie)"
    r"[\"']?\s*[:=]\s*[\"']?)([^\s\"'&,;}]+)"
)


class Masker:
    """Masks secrets and personal data in text. Safe to apply twice.

    Known secrets (passwords, tokens) are added with :meth:`add_secret` and replaced by
    ``******``; mobiles become ``138****5678``; 18-digit ID numbers ``110105********002X``;
    ``password=...``/``token: ...`` pairs lose their value.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add_secret(secret)

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

    def __call__(self, text: str) -> str:
        """Return ``text`` with every secret, mobile and ID number masked."""
        if not text:
            return text
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, "******")
        text = _NAME_VALUE.sub(lambda m: m.group(1) + "******" + m.group(3), text)
        text = _HTML_ATTR.sub(lambda m: m.group(1) + "******" + m.group(3), text)
        text = _KV_SECRET.sub(lambda m: m.group(1) + "******", text)
        text = _ID.sub(lambda m: m.group(1) + "********" + m.group(3)[-4:], text)
        text = _MOBILE_STRICT.sub(lambda m: m.group(1) + "****" + m.group(3), text)
        return text

    def mask_obj(self, value: Any) -> Any:
        """Mask strings inside dicts/lists/tuples (for structured ``extra`` values)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {k: self.mask_obj(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.mask_obj(v) for v in value)
        return value


def _masking_filter(masker: Masker, run_id: str | None = None):  # type: ignore[no-untyped-def]
    def _filter(record: dict[str, Any]) -> bool:
        if run_id is not None and record["extra"].get("run_id") != run_id:
            return False
        record["message"] = masker(record["message"])
        if record["extra"]:
            record["extra"].update(masker.mask_obj(dict(record["extra"])))
        if record["exception"] is not None:
            # Render the traceback here and mask the text: exception messages (SQL parameters,
            # chained causes, groups) can carry anything. Sinks then print no raw traceback.
            typ, value, tb = record["exception"]
            rendered = "".join(traceback.format_exception(typ, value, tb)).rstrip()
            record["message"] = f"{record['message']}\n{masker(rendered)}"
            record["exception"] = None
        return True

    return _filter


def _console_format(record: dict[str, Any]) -> str:
    bot = record["extra"].get("bot", "dealerbot")
    return (
        "<green>{time:HH:mm:ss}</green> <level>{level:<7}</level> "
        f"<cyan>{bot}</cyan> {{message}}\n{{exception}}"
    )


def _file_format(record: dict[str, Any]) -> str:
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
) -> Iterator[Any]:
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
        yield logger.bind(run_id=run_id, bot=bot)
    finally:
        for handler in ids:
            logger.remove(handler)
