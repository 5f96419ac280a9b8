"""``dealerbot init <portal>``: a new portal scaffolded in the project folder.

Writes what docs/own-portal.md describes, smaller: a ``[portals.<name>]`` section appended to
``dealerbot.toml`` (created when missing; what is there is kept byte for byte, comments and
all), ``selectors/<name>.yaml`` (the login screen and one list read by its column headers),
``portals/<name>.py`` (the list's record type), ``bots/<name>_list.py`` (a reading bot) and
``tests/test_<name>.py`` with the saved page it reads (``tests/pages/<name>_list.html``). The
templates are package data (``dealerbot/scaffold/*.tmpl``). The defaults fit the sandbox's
used-car trade-in platform (二手车置换平台), so ``init`` followed by ``--url`` pointing at it gives
a project that runs as written; another portal gets its own values through the options.

Nothing is written when any file to write exists already (unless ``force``) or an option is
malformed: :class:`ConfigError` names the file or the option.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass, field
from pathlib import Path

from dealerbot.errors import ConfigError

# The sandbox's used-car trade-in platform: the defaults (tests/integration/test_init_record.py
# runs the project `init` writes with them against it).
DEFAULT_URL = "http://127.0.0.1:8703"
DEFAULT_USERNAME = "zhihuan01"
DEFAULT_LOGIN_PATH = "/accounts/login/"
DEFAULT_LIST_PATH = "/cars/"
DEFAULT_EXPIRED_PATH = "/404"  # the platform sends an ended session (and a first visit) to a 404 page
DEFAULT_COLUMNS = ("vin=车架号,brand=品牌,model=车型,reg_date=上牌日期,mileage_km=表显里程,price=评估价,"
                   "owner_name=车主,owner_mobile=手机,status=状态")
DEFAULT_PERSONAL = "owner_name,owner_mobile"
PORTAL_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
PLAIN_YAML = re.compile(r"[^\s:#,\[\]{}&*!|>'\"%@`?-][^:#,\[\]{}]*")  # needs no quotes in YAML


@dataclass
class PortalSpec:
    """What ``init`` writes a portal for (the command's options)."""

    name: str
    url: str = DEFAULT_URL
    username: str = DEFAULT_USERNAME
    title: str = ""
    login_path: str = DEFAULT_LOGIN_PATH
    list_path: str = DEFAULT_LIST_PATH
    expired_path: str = DEFAULT_EXPIRED_PATH
    columns: str = DEFAULT_COLUMNS
    personal: str = DEFAULT_PERSONAL
    username_label: str = "用户名"
    password_label: str = "密码"
    submit_name: str = "登录"
    table_css: str = "table"
    next_css: str = ".pagination .next a"
    parsed_columns: list[tuple[str, str]] = field(default_factory=list)

    def check(self) -> None:
        """Validate the options and parse the columns.

        Raises:
            ConfigError: the option at fault named, with what it should look like.
        """
        if not PORTAL_NAME.fullmatch(self.name):
            raise ConfigError(f"门户名 '{self.name}' 无效：只能用小写字母、数字和下划线，以字母开头 "
                                f"(portal name: lower-case letters, digits, _)")
        if self.name in ("oem", "dms"):
            raise ConfigError(f"门户名 '{self.name}' 是 dealerbot 自带的门户，请换一个名字 (a shipped portal's name)")
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", self.url):
            raise ConfigError(f"--url '{self.url}' 不是网址，例如 http://127.0.0.1:8703 (not an http(s) URL)")
        for option, path in (("--login-path", self.login_path), ("--list-path", self.list_path),
                             ("--expired-path", self.expired_path or "/")):
            if not path.startswith("/") or any(c.isspace() for c in path):
                raise ConfigError(f"{option} '{path}' 应以 / 开头，例如 /cars/ (a path on the portal)")
        columns: list[tuple[str, str]] = []
        for part in re.split(r"[,，]", self.columns):
            if not part.strip():
                continue
            key, sep, header = part.partition("=")
            key, header = key.strip(), header.strip()
            if not sep or not FIELD_NAME.fullmatch(key) or not header:
                raise ConfigError(f"--columns 中的 '{part.strip()}' 应写成 字段=列标题，字段用小写字母、数字和下划线，"
                                    f"例如 vin=车架号 (field=header)")
            if key in dict(columns):
                raise ConfigError(f"--columns 中字段 '{key}' 重复 (a field named twice)")
            columns.append((key, header))
        if not columns:
            raise ConfigError("--columns 为空：至少一列，例如 vin=车架号 (no columns)")
        unknown = [p for p in _names(self.personal) if p not in dict(columns)]
        if unknown:
            raise ConfigError(f"--personal 中的 {', '.join(unknown)} 不在 --columns 中 (personal fields must be columns)")
        self.parsed_columns = columns
        self.title = self.title or self.name


def _names(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"[,，]", text) if p.strip()]


def _yaml(value: str) -> str:
    """A YAML scalar: plain when it can be, else double-quoted (JSON's strings are YAML's)."""
    return value if PLAIN_YAML.fullmatch(value) and value == value.strip() else json.dumps(value, ensure_ascii=False)


def _css(value: str) -> str:
    """A CSS selector inside a double-quoted YAML scalar."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


def _template(name: str) -> string.Template:
    return string.Template((Path(__file__).resolve().parents[1] / "scaffold" / f"{name}.tmpl").read_text(encoding="utf-8"))


def _values(spec: PortalSpec) -> dict[str, str]:
    name, columns = spec.name, spec.parsed_columns
    personal = set(_names(spec.personal))
    key = columns[0][0]
    fields = "".join(
        f"        FieldDef({json.dumps(f)}, {json.dumps(h, ensure_ascii=False)}"
        + (", required=True" if f == key else "") + (", personal=True" if f in personal else "") + "),\n"
        for f, h in columns
    )
    sample = {f: f"{key.upper()}0001" if f == key else f"示例{i}" for i, (f, _) in enumerate(columns)}
    rows = "\n".join(
        "<tr>" + "".join(f"<td>{v if f != key else v[:-1] + str(n)}</td>" for f, v in sample.items()) + "</tr>"
        for n in (1, 2)
    )
    cells = ", ".join(f"{spec.table_css} td:nth-child({i})" for i, (f, _) in enumerate(columns, 1) if f in personal)
    return {
        "personal_mask": ", list.personal" if cells else "",
        "personal_cells": (
            "  list.personal:            # the personal columns' cells, masked in failure screenshots and saved pages\n"
            "                            # (their positions in the order --columns gave: check them against the page)\n"
            f"    - css: \"{_css(cells)}\"\n") if cells else "",
        "name": name,
        "NAME": name.upper(),
        "Class": "".join(p.capitalize() for p in name.split("_")),
        "title": _yaml(spec.title),
        "url": json.dumps(spec.url)[1:-1],
        "username": json.dumps(spec.username, ensure_ascii=False)[1:-1],
        "login_path": _yaml(spec.login_path),
        "list_path": _yaml(spec.list_path),
        "session_expired": (
            f"session_expired:           # an ended session is sent there, not to the login page\n  paths: [{_yaml(spec.expired_path)}]\n"
            if spec.expired_path else
            "# session_expired:         # how an ended session shows, besides being sent to the login page\n#   paths: [/404]\n"),
        "columns": ", ".join(f"{f}: {_yaml(h)}" for f, h in columns),
        "login_form_css": _css("form[action*='login']"),
        "username_label": _yaml(spec.username_label),
        "password_label": _yaml(spec.password_label),
        "submit_name": _yaml(spec.submit_name),
        "table_css": _css(spec.table_css),
        "next_css": _css(spec.next_css),
        "const": "LIST_ROW",
        "entity": f"{name[:27]}_row",
        "key": key,
        "fields": fields,
        "bot": f"{name.replace('_', '-')}-list",
        "first_row": json.dumps({f: v[:-1] + "1" if f == key else v for f, v in sample.items()}, ensure_ascii=False),
        "heads": "".join(f"<th>{h}</th>" for _, h in columns),
        "rows": rows,
    }


def scaffold(folder: Path, spec: PortalSpec, force: bool = False) -> list[tuple[Path, str]]:
    """Write the portal ``spec`` into the project folder ``folder``; returns each file touched
    with what was done to it (``新建``, ``覆盖``, ``追加``, ``保留``).

    Raises:
        ConfigError: an option is malformed, a file to write exists (without ``force``), or
            dealerbot.toml is not valid TOML or already has the portal (without ``force``);
            nothing is written then.
    """
    import tomllib

    spec.check()
    values = _values(spec)
    name = spec.name
    title_comment = spec.title.replace("\n", " ")
    files = {
        folder / "selectors" / f"{name}.yaml": _template("selectors.yaml").substitute(values),
        folder / "portals" / f"{name}.py": _template("portal.py").substitute(values, title=title_comment),
        folder / "bots" / f"{name}_list.py": _template("bot.py").substitute(
            values, title=json.dumps(spec.title, ensure_ascii=False)[1:-1]),
        folder / "tests" / f"test_{name}.py": _template("test.py").substitute(values, title=title_comment),
        folder / "tests" / "pages" / f"{name}_list.html": _template("page.html").substitute(
            values, title=_html(spec.title), heads="".join(f"<th>{_html(h)}</th>" for _, h in spec.parsed_columns)),
    }
    # Page objects state the title as a Python string: a title with quotes must not end it.
    files[folder / "portals" / f"{name}.py"] = files[folder / "portals" / f"{name}.py"].replace(
        f'title="{title_comment}"', f"title={json.dumps(spec.title, ensure_ascii=False)}")
    existing = [p for p in files if p.exists()]
    if existing and not force:
        raise ConfigError(f"{existing[0]} 已存在，未做任何改动；加 --force 覆盖 (exists: nothing written; --force overwrites)")
    config = folder / "dealerbot.toml"
    section = _template("config.toml").substitute(values, title=title_comment)
    old = ""
    keep_section = False
    if config.exists():
        old = config.read_text(encoding="utf-8")
        try:
            parsed = tomllib.loads(old)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config}: 不是有效的 TOML（{exc}），未做任何改动 (not valid TOML)") from None
        if name in parsed.get("portals", {}) or (name in ("oem", "dms") and name in parsed):
            if not force:
                raise ConfigError(f"{config} 已有 [portals.{name}]，未做任何改动；加 --force 保留它并写其余文件 "
                                    f"(the portal is configured already)")
            keep_section = True
    new_config = old if keep_section else old + ("\n" if old and not old.endswith("\n") else "") + (
        section if old else section.lstrip("\n"))
    tomllib.loads(new_config)  # what is appended parses with what was there
    done: list[tuple[Path, str]] = []
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        done.append((path, "覆盖" if path.exists() else "新建"))
        path.write_text(text, encoding="utf-8")
    for package in ("bots", "portals"):
        init = folder / package / "__init__.py"
        if not init.exists():
            init.write_text("", encoding="utf-8")
            done.append((init, "新建"))
    if keep_section:
        done.append((config, "保留"))
    else:
        config.write_text(new_config, encoding="utf-8")
        done.append((config, "追加" if old else "新建"))
    return done


def _html(text: str) -> str:
    import html

    return html.escape(text, quote=False)
