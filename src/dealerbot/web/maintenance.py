"""A portal's maintenance notice: recognised in a 503 page, with the end of the announced window."""

from __future__ import annotations

import contextlib
import json
import re

_WINDOW = re.compile(r"(\d{1,2}:\d{2})\s*(?:-|–|—|~|～|至|到)\s*(\d{1,2}:\d{2})")
_SENTENCE_END = "。！!？?\n"


# What a maintenance notice says (a footer's "网站维护：某公司" or a hotline does not).
_NOTICE_WORDS = ("维护中", "系统维护", "正在维护", "停机维护", "升级维护", "维护时间", "maintenance")
MAX_NOTICE_BYTES = 64_000  # a 503 page with a big inline bundle is not read further


def _sentences_with(text: str, words: tuple[str, ...]) -> list[str]:
    """The sentences of ``text`` that hold one of ``words`` (plain searches: linear time)."""
    low = text.lower()
    found = []
    for word in words:
        start = 0
        while (at := low.find(word, start)) >= 0:
            left = max((text.rfind(c, 0, at) for c in _SENTENCE_END), default=-1) + 1
            ends = [e for c in _SENTENCE_END if (e := text.find(c, at)) >= 0]
            right = min(ends) if ends else len(text)
            found.append(" ".join(text[left:right].split()))
            start = right
    return found


def maintenance_notice(body: str) -> tuple[str, str | None] | None:
    """The portal's maintenance notice in a 503 answer (HTML or JSON), and the announced end of
    its window ("HH:MM") when the notice itself names one; None when the answer is not a
    maintenance notice. Reads at most the first :data:`MAX_NOTICE_BYTES` characters."""
    body = body[:MAX_NOTICE_BYTES]
    text = body
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        data = json.loads(body)
        text = " ".join(str(v) for v in data.values()) if isinstance(data, dict) else str(data)
    if text is body and "<" in body:
        with contextlib.suppress(Exception):  # not HTML after all: search the raw text
            from lxml import html as lxml_html

            root = lxml_html.fromstring(body)
            for junk in root.xpath("//script | //style"):
                junk.drop_tree()
            text = "\n".join(root.itertext())  # one line per element
    sentences = [t for t in _sentences_with(text, _NOTICE_WORDS) if t]
    if not sentences:
        return None
    # The sentence that names the window, else the longest (a page title says less).
    notice = max(sentences, key=lambda t: (_WINDOW.search(t) is not None, len(t)))[:200]
    window = _WINDOW.search(notice)  # only the notice's own window: not some opening hours elsewhere
    return notice, (window.group(2).zfill(5) if window else None)


