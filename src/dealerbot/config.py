"""Typed settings: ``dealerbot.toml`` < ``DEALERBOT_*`` environment variables < command line.

Passwords never live in the file. They come from ``DEALERBOT_<PORTAL>_PASSWORD`` or the OS
keyring (``dealerbot credentials set oem``); see :mod:`dealerbot.credentials`. A ``password``
key written in the file is refused with a message saying where to put it instead.

Nested keys map to environment variables with a double underscore, e.g. ``[oem] url`` is
``DEALERBOT_OEM__URL`` and ``[run] concurrency`` is ``DEALERBOT_RUN__CONCURRENCY``.

Portals are a named collection: ``[portals.<name>]`` (``DEALERBOT_PORTALS__<NAME>__URL``), read
through :meth:`Settings.portal` everywhere. The shipped two keep their short sections ``[oem]`` and
``[dms]`` (``[portals.oem]`` means the same).
"""

from __future__ import annotations

import json
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from dealerbot.errors import ConfigError
from dealerbot.project_folder import find_config

if TYPE_CHECKING:
    from dealerbot.rekey.ledger import Policy

STORE_ENV = "DEALERBOT_STORE_CODE"  # which store of a group this process works for
MAX_CONFIG_BYTES = 1_000_000  # a dealership's config is a few KB; refuse what is not one
DEFAULT_STORE = "main"  # the store code of a single dealership (and of data made before groups)
STORE_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


PORTAL_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
SHIPPED_PORTALS = ("oem", "dms")


HOST_PATTERN = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?)*|\[[0-9a-f:.]+\]")
PROXY_SCHEMES = ("http", "https", "socks4", "socks5")


def _host_patterns(value: list[str]) -> list[str]:
    """``allowed_hosts``, checked: each a host name (``portal.example.com``), an address
    (``10.1.2.3``), every host under a domain (``*.faw-vw.com``) or ``*`` (any host)."""
    out = []
    for raw in value:
        text = str(raw).strip().lower()
        if text != "*" and not HOST_PATTERN.fullmatch(text):
            raise ValueError(f"{raw!r} is not a host name or pattern: write e.g. portal.example.com, 10.1.2.3 or "
                             f"*.faw-vw.com (no scheme, port or path)")
        out.append(text)
    return out


class ProxySettings(_Section):
    """A proxy for the browser and for plain-HTTP reads: ``proxy = {server = "http://10.0.0.5:3128"}``.
    The password never lives in the file: ``DEALERBOT_BROWSER__PROXY__PASSWORD`` (a portal's own
    proxy: ``DEALERBOT_PORTALS__<NAME>__PROXY__PASSWORD``)."""

    server: str = Field(description="the proxy's address, e.g. http://10.0.0.5:3128 or socks5://10.0.0.5:1080")
    bypass: str = Field(default="", description="hosts reached without the proxy, comma-separated, e.g. "
                                                "\"*.internal, 10.1.2.3\"")
    username: str = ""
    password: str = Field(default="", description="from the environment only (see above); masked in every artifact")

    @field_validator("server")
    @classmethod
    def _server(cls, v: str) -> str:
        text = v.strip()
        parts = urlparse(text if "://" in text else f"http://{text}")
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme not in PROXY_SCHEMES or not parts.hostname or port == -1 or (parts.path not in ("", "/")):
            raise ValueError(f"{v!r} is not a proxy address: write e.g. http://10.0.0.5:3128 or socks5://10.0.0.5:1080 "
                             f"(schemes: {', '.join(PROXY_SCHEMES)})")
        if parts.username or parts.password:
            raise ValueError("give the proxy's user as proxy.username and its password in "
                             "DEALERBOT_BROWSER__PROXY__PASSWORD, not in the address")
        return text if "://" in text else f"http://{text}"

    @property
    def url(self) -> str:
        """The server with the user and password in it (for httpx); a secret: never log it."""
        if not self.username:
            return self.server
        from urllib.parse import quote

        scheme, _, rest = self.server.partition("://")
        return f"{scheme}://{quote(self.username, safe='')}:{quote(self.password, safe='')}@{rest}"

    def bypassed(self, host: str) -> bool:
        """Whether ``host`` is in :attr:`bypass` (``*.x`` / ``.x`` match the hosts under x)."""
        host = host.lower()
        for item in (p.strip().lower() for p in self.bypass.split(",")):
            if item and (host == item.lstrip("*.") if not item.startswith(("*.", ".")) else
                         host.endswith(item.lstrip("*"))):
                return True
        return False


class PortalSettings(_Section):
    """Where a portal lives and who logs in (the password is looked up separately)."""

    url: str
    dealer_code: str = ""
    username: str = ""
    login_fields: dict[str, str] = Field(
        default_factory=dict,
        description="other fields the login form asks for: selector name after 'login.' -> value, "
                    "e.g. {store = \"S01\"} types S01 into login.store",
    )
    reads: Literal["http", "browser"] = Field(
        default="http",
        description="how bots read the portal's endpoints and pages with the browser's login: 'http' sends them "
                    "directly with its cookies (faster); 'browser' through the browser, for a portal that answers "
                    "only a real browser",
    )
    canary: bool = Field(
        default=True,
        description="before a run writes into this portal (dry runs too), check that the writing bot's selectors "
                    "match the live screens; a miss ends the run 'portal_changed' with nothing written "
                    "(docs/rekey.md, 'The canary before writing'); false: no check",
    )
    login_steps: list[Literal["sms_code", "captcha", "new_password"]] = Field(
        default_factory=list,
        description="what the portal's login asks of a person after (or beside) the password: 'sms_code', "
                    "'captcha', 'new_password'. An unattended run then stops as needs_person before typing "
                    "anything, unless the saved login still works (see docs/own-portal.md, Logins that need a person)",
    )

    login: bool | None = Field(
        default=None,
        description="whether the portal has a login; unset: it has one when username, dealer_code or login_fields "
                    "are set (a public form or an intranet page: no password, no login.* selectors)",
    )
    browser_args: list[str] = Field(
        default_factory=list, description="extra Chromium arguments for runs that open this portal (after [browser] args)",
    )
    proxy: ProxySettings | None = Field(default=None, description="this portal's proxy, instead of [browser] proxy")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="hosts this portal's pages may load besides [browser] allowed_hosts and its own; see "
                    "docs/own-portal.md (Offline offices)",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlparse(v.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{v!r} is not a web address: write it in full, e.g. http://{v.strip() or '127.0.0.1:8701'}")
        return v.strip()

    @field_validator("allowed_hosts")
    @classmethod
    def _allowed_hosts(cls, value: list[str]) -> list[str]:
        return _host_patterns(value)

    @field_validator("browser_args")
    @classmethod
    def _browser_args(cls, value: list[str]) -> list[str]:
        return _chromium_args(value)

    @property
    def needs_login(self) -> bool:
        """Whether the portal has a login (and so a password): ``login`` when set, else whether a
        user name, dealer code or other login field is configured."""
        if self.login is not None:
            return self.login
        return bool(self.username or self.dealer_code or self.login_fields)


class OemSettings(PortalSettings):
    """The OEM portal (defaults: the sandbox's demo dealer)."""

    url: str = "http://127.0.0.1:8701"
    dealer_code: str = "D31001"
    username: str = "dealer_admin"


class DmsSettings(PortalSettings):
    """The DMS (defaults: the sandbox's demo user)."""

    url: str = "http://127.0.0.1:8702"
    username: str = "sales01"


def _chromium_args(value: list[str]) -> list[str]:
    for arg in value:
        if not isinstance(arg, str) or not arg.startswith("--") or len(arg) < 3 or "\n" in arg:
            raise ValueError(f"{arg!r} is not a Chromium argument: each starts with --, e.g. \"--lang=zh-CN\"")
    return list(value)


class BrowserSettings(_Section):
    """Which browser to drive. Empty values mean: discover one (see :mod:`dealerbot.web.browser`)."""

    args: list[str] = Field(default_factory=list, description="extra Chromium arguments, e.g. [\"--lang=zh-CN\"]")
    proxy: ProxySettings | None = Field(default=None, description="a proxy for every portal (see ProxySettings)")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="the only hosts pages may load (besides each portal's own host and its own allowed_hosts); "
                    "requests to any other host are aborted at once; empty: no restriction",
    )

    @field_validator("allowed_hosts")
    @classmethod
    def _allowed_hosts(cls, value: list[str]) -> list[str]:
        return _host_patterns(value)

    @field_validator("args")
    @classmethod
    def _args(cls, value: list[str]) -> list[str]:
        return _chromium_args(value)

    executable: str = ""
    channel: str = ""
    headless: bool = True
    slow_mo_ms: int = Field(default=0, ge=0)
    trace: bool | None = Field(
        default=None, description="keep a Playwright trace of failed runs; unset: each bot's own choice "
        "(reading bots trace, dms-rekey does not: tracing costs a form-heavy bot about a fifth of its speed)",
    )
    recycle_requests: int = Field(
        default=5000, ge=0,
        description="a reading bot goes on in a fresh browser context (same login, same screen) after this many "
        "requests to a portal, so that a long run's browser does not grow; 0 = never",
    )
    recycle_memory_mb: int = Field(
        default=0, ge=0,
        description="also when the bot and its browser together use more than this (PSS, MB); 0 = no limit",
    )


class RunSettings(_Section):
    """How bots run."""

    concurrency: int = Field(default=4, ge=1, le=16)
    timeout_seconds: float = Field(default=30.0, gt=0)
    retries: int = Field(default=3, ge=0, le=10, description="a failed read or step is tried this many more times")
    backoff_seconds: float = Field(default=1.0, ge=0)
    requeue_rounds: int = Field(
        default=2, ge=0, le=10,
        description="a record whose read (or DMS write) still failed is tried again at the end of the run, this many rounds",
    )
    max_consecutive_failures: int = Field(
        default=10, ge=2, le=1000,
        description="circuit breaker: the run stops after this many system failures in a row (the portal is down)",
    )
    page_limit: int = Field(default=0, ge=0, description="0 = no limit on list pages read")

    @model_validator(mode="after")
    def _breaker_above_retries(self) -> RunSettings:
        if self.max_consecutive_failures <= self.retries + 1:
            raise ValueError(
                f"max_consecutive_failures ({self.max_consecutive_failures}) must be larger than retries + 1 "
                f"({self.retries + 1}): else one unlucky record opens the circuit breaker before it can be read again"
            )
        return self
    requests_per_minute: int = Field(default=0, ge=0, description="0 = no client-side throttle")
    rate_limit_pause_seconds: float = Field(default=60.0, ge=0, description="all reads wait this long after a 429")


class RekeySettings(_Section):
    """Writing into the DMS: what needs a person's approval, what may be written at all."""

    approval_required: list[str] = Field(
        default_factory=lambda: ["create_contract", "cancel_contract"],
        description="action kinds that wait for approval in the review workbook; the rest go straight through",
    )
    enabled: list[str] = Field(
        default_factory=lambda: ["create_contract", "update_contract"],
        description="action kinds the bot may write; add cancel_contract to let approved cancellations through",
    )
    auto_update_fields: list[str] = Field(
        default_factory=lambda: ["status", "vin"],
        description="an update changing only these fields needs no approval; others wait for a person",
    )
    concurrency: int = Field(default=3, ge=1, le=8, description="DMS forms filled at once (pages of one login)")
    client: Literal["web", "desktop"] = Field(
        default="web", description="how this dealership's DMS is written: its web UI (dms-rekey) or its desktop "
                                   "client (dms-desktop-rekey, through keyboard and screen)",
    )
    dictionary: str = Field(default="dictionary.yaml", description="the data dictionary, relative to the project folder")
    reviewer: str = Field(default="", description="name recorded for approvals (default: the OS user)")

    def policy(self) -> Policy:
        """The :class:`dealerbot.rekey.ledger.Policy` these settings describe.

        Raises:
            ConfigError: an unknown action kind.
        """
        from dealerbot.data.dictionary import CONTRACT_FIELDS
        from dealerbot.rekey.ledger import Policy

        unknown = sorted(set(self.auto_update_fields) - set(CONTRACT_FIELDS))
        if unknown:
            raise ConfigError(f"[rekey] auto_update_fields: unknown field(s) {unknown}; the DMS contract has "
                              f"{', '.join(CONTRACT_FIELDS)}")
        return Policy.of(self.approval_required, self.enabled, self.auto_update_fields)


class FlowSettings(_Section):
    """One flow's own settings: ``[flows.<name>]``."""

    approval_required: list[str] | None = Field(
        default=None, description="this flow's action kinds that wait for a person's approval (default: the flow's "
                                  "own; for orders: [rekey] approval_required)",
    )
    kinds: list[str] | None = Field(
        default=None, description="the action kinds this flow may write (default: the flow's own; for orders: "
                                  "[rekey] enabled)",
    )


class FlowsSettings(BaseModel):
    """Which flows run (``[flows] enabled``) and each flow's approvals (``[flows.<name>]``)."""

    model_config = ConfigDict(extra="allow")

    enabled: list[str] = Field(
        default_factory=lambda: ["orders"],
        description="the flows `dealerbot sync` runs, by name (`dealerbot flows` lists them); default: orders",
    )

    @model_validator(mode="after")
    def _flow_sections(self) -> FlowsSettings:
        for name, value in list((self.__pydantic_extra__ or {}).items()):
            if not PORTAL_NAME.fullmatch(name.replace("-", "_")):
                raise ValueError(f"[flows.{name}]: not a flow name (lower-case letters, digits, '-' or '_')")
            if isinstance(value, FlowSettings):
                continue
            if not isinstance(value, dict):
                raise ValueError(f"[flows] {name} = {value!r}: a flow's settings are a table, [flows.{name}]")
            try:
                (self.__pydantic_extra__ or {})[name] = FlowSettings.model_validate(value)
            except ValidationError as exc:
                bad = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
                raise ValueError(f"[flows.{name}] {bad}") from None
        seen = set()
        for name in self.enabled:
            if name in seen:
                raise ValueError(f"[flows] enabled names {name!r} twice")
            seen.add(name)
        return self

    def of(self, name: str) -> FlowSettings:
        """``[flows.<name>]`` (empty when not written)."""
        value = (self.__pydantic_extra__ or {}).get(name)
        return value if isinstance(value, FlowSettings) else FlowSettings()

    def sections(self) -> dict[str, FlowSettings]:
        """Every ``[flows.<name>]`` written, by name."""
        return {k: v for k, v in (self.__pydantic_extra__ or {}).items() if isinstance(v, FlowSettings)}


class StoreSettings(_Section):
    """The run store. SQLite by default; any SQLAlchemy URL (PostgreSQL for groups)."""

    url: str = ""
    retry_first_seconds: float = Field(
        default=5.0, gt=0,
        description="a store the scheduler cannot open is tried again after this long, then twice as long each time",
    )


class PathSettings(_Section):
    """Folders, relative to the project folder (the config file's folder, else the cwd)."""

    logs: str = "logs"
    state: str = "state"
    out: str = "out"
    var: str = "var"
    schedules: str = "schedules"


class StoreEntry(BaseModel):
    """One store of a dealership group: ``[stores.<code>]``. Its portal sections
    (``[stores.S01.dms]``...) change the group's portal settings for this store only."""

    model_config = ConfigDict(extra="allow")

    name: str = ""
    queue: str = Field(default="", description="the worker queue of this store's jobs (default: store.<code>)")
    dictionary: str = Field(
        default="", description="a dictionary file whose entries override the group's for this store",
    )

    @model_validator(mode="after")
    def _portal_sections(self) -> StoreEntry:
        for key, value in (self.model_extra or {}).items():
            if not PORTAL_NAME.fullmatch(key) or not isinstance(value, dict):
                raise ValueError(f"{key!r}: a store has name, queue, dictionary and portal sections "
                                 f"such as [stores.<code>.dms] (url, username...)")
        return self

    @property
    def portal_overrides(self) -> dict[str, dict[str, Any]]:
        """Portal name -> the keys this store sets differently from the group."""
        return dict(self.model_extra or {})


class GroupSettings(_Section):
    """A dealership group: many stores, one PostgreSQL store, workers on many machines."""

    name: str = ""
    shared_queue: str = Field(default="shared", description="queue of jobs that only use portals reachable from anywhere")
    store_portals: list[str] = Field(
        default_factory=lambda: ["dms"],
        description="portals reachable only from the store's own network: a job using one goes to the store's queue",
    )
    stalled_seconds: float = Field(
        default=60.0, ge=2, description="a job whose worker sent no heartbeat for this long is given to another worker "
        "(longer than the longest pause of a worker: a large reconciliation holds it for seconds)",
    )
    heartbeat_seconds: float = Field(default=10.0, gt=0, description="how often a worker says it is alive")


NOTIFY_EVENTS = ("all_rejected", "calendar", "failed", "needs_person", "portal_changed", "postponed", "rejects", "review",
                 "skipped", "succeeded")


class NotifySettings(_Section):
    """Messages to people after runs, through apprise (e-mail, WeCom/企业微信, DingTalk...)."""

    urls: list[str] = Field(
        default_factory=list,
        description="apprise URLs, e.g. mailtos://user:pass@example.com, wecombot://KEY, dingtalk://TOKEN",
    )
    on: list[str] = Field(
        default_factory=lambda: ["all_rejected", "calendar", "failed", "needs_person", "portal_changed", "postponed", "rejects",
                                 "review", "skipped"],
        description=f"which outcomes send a message: {', '.join(NOTIFY_EVENTS)}",
    )
    integrator_urls: list[str] = Field(
        default_factory=list,
        description="apprise URLs of whoever maintains the selector files (the integrator): told a 'portal_changed' "
                    "run's screen and missing selector names (the operator's message says it in plain Chinese)",
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @field_validator("on")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(NOTIFY_EVENTS))
        if unknown:
            raise ValueError(f"unknown event(s) {', '.join(unknown)}; choose from {', '.join(NOTIFY_EVENTS)}")
        return value


class ConsoleSettings(_Section):
    """The operator console (``dealerbot console`` / ``serve``): who is believed, how long a login lasts."""

    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses of reverse proxies in front of the console whose X-Forwarded-For is believed; "
                    "none (the default): the connecting address is the client, forwarding headers are ignored",
    )
    idle_minutes: float = Field(default=30.0, gt=0, le=24 * 60, description="a session unused this long ends")
    session_hours: float = Field(default=12.0, gt=0, le=7 * 24, description="a session ends this long after its login")
    public_url: str = Field(
        default="",
        description="the console's address as people reach it from their own PC or phone, e.g. "
                    "http://192.168.1.20:8750 (messages link to its pages); none (the default): messages carry no link",
    )

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str) -> str:
        text = v.strip()
        if not text:
            return ""
        parts = urlparse(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{v!r} is not a web address: write it in full, e.g. http://192.168.1.20:8750")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("give only the address (scheme, host, port, path), without ?query, #fragment "
                             "or user:password@, e.g. http://192.168.1.20:8750")
        return text.rstrip("/")


def fold_shipped_portals(data: Any, where: str = "settings") -> Any:
    """Settings data with ``portals.oem`` / ``portals.dms`` moved into ``oem`` / ``dms``.

    Raises:
        ValueError: one source gives one key both ways, with two values.
    """
    if not isinstance(data, dict) or not isinstance(data.get("portals"), dict):
        return data
    data = dict(data)
    portals = dict(data["portals"])
    for name in SHIPPED_PORTALS:
        if name not in portals:
            continue
        extra, short = portals.pop(name), data.get(name) or {}
        if isinstance(extra, dict) and isinstance(short, dict):
            clash = sorted(k for k in extra.keys() & short.keys() if extra[k] != short[k])
            if clash:
                raise ValueError(f"{where}: portals.{name}.{clash[0]} and {name}.{clash[0]} differ: write it once")
            data[name] = {**short, **extra}
        else:
            data[name] = extra
    data["portals"] = portals
    return data


ENV_PREFIX = "DEALERBOT_"
ENV_NESTED = "__"


def environment_values(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings given by ``DEALERBOT_<SECTION>__<KEY>`` variables, as nested dicts (names are
    case-insensitive; ``DEALERBOT_PORTALS__OEM__URL`` is ``DEALERBOT_OEM__URL``).

    A key whose setting is a list, a table or a section takes JSON
    (``DEALERBOT_BROWSER__ALLOWED_HOSTS='["portal.example.com"]'``), others take the text as it is
    (checked by the settings models like the file's values). A whole section may be given as a JSON
    object (``DEALERBOT_RUN='{"retries": 0}'``); a plain ``DEALERBOT_<SECTION>`` that is not one
    (``DEALERBOT_BROWSER=/usr/bin/chromium``) is some other setting, not the section. Variables
    that name no setting (``DEALERBOT_OEM_PASSWORD``, ``DEALERBOT_CONFIG``) are not settings.

    Raises:
        ConfigError: a value that must be JSON is not (names the variable).
    """
    out: dict[str, Any] = {}
    for name, raw in sorted(environ.items()):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX):].lower().split(ENV_NESTED)
        if path[0] not in Settings.model_fields or not all(path):
            continue
        if len(path) == 1:
            if not raw.lstrip().startswith("{"):
                continue
            value: Any = _env_json(name, raw)
        else:
            complex_, text_too = _is_complex(_annotation_at(path))
            value = raw
            if complex_:
                try:
                    value = json.loads(raw)
                except ValueError:
                    if not text_too:
                        value = _env_json(name, raw)
        node = out
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        last = node.get(path[-1])
        node[path[-1]] = _deep_merge(last, value) if isinstance(last, dict) and isinstance(value, dict) else value
    return fold_shipped_portals(out, "environment")


def _env_json(name: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"${name}: 不是有效的 JSON (not valid JSON: {exc}); 例如 '[\"a\", \"b\"]' 或 '{{\"key\": 1}}'") from None


def _annotation_at(path: list[str]) -> Any:
    """The type of the setting at ``path`` (a dict's keys are any name), or None when unknown."""
    annotation: Any = Settings
    for key in path:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(key)
            if field is None:
                return None
            annotation = field.annotation
        elif typing.get_origin(annotation) is dict:
            args = typing.get_args(annotation)
            annotation = args[1] if len(args) == 2 else None
        else:
            return None
    return annotation


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X``; other annotations as they are."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _is_complex(annotation: Any) -> tuple[bool, bool]:
    """(whether a value of this type is given as JSON, whether plain text is allowed too)."""
    members = (typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType)
               else (annotation,))
    complex_ = text = False
    for member in members:
        if member is type(None):
            continue
        origin = typing.get_origin(member) or member
        if origin in (list, tuple, set, frozenset, dict) or (isinstance(origin, type) and issubclass(origin, BaseModel)):
            complex_ = True
        else:
            text = True
    return complex_, text


def _deep_merge(base: Any, over: Any) -> Any:
    """``over`` on ``base``: tables merged key by key, anything else replaced."""
    if not (isinstance(base, dict) and isinstance(over, dict)):
        return over
    merged = dict(base)
    for key, value in over.items():
        merged[key] = _deep_merge(merged.get(key), value)
    return merged


class Settings(BaseModel):
    """All of dealerbot's settings.

    Build with :func:`load_settings`, which reads the file, refuses literal passwords and
    turns validation errors into :class:`ConfigError` naming the key.
    """

    model_config = ConfigDict(extra="forbid")

    oem: OemSettings = OemSettings()
    dms: DmsSettings = DmsSettings()
    browser: BrowserSettings = BrowserSettings()
    run: RunSettings = RunSettings()
    rekey: RekeySettings = RekeySettings()
    flows: FlowsSettings = FlowsSettings()
    store: StoreSettings = StoreSettings()
    paths: PathSettings = PathSettings()
    notify: NotifySettings = NotifySettings()
    console: ConsoleSettings = ConsoleSettings()
    portals: dict[str, PortalSettings] = Field(
        default_factory=dict, description="further portals by name; [portals.oem] / [portals.dms] are [oem] / [dms]",
    )
    group: GroupSettings = GroupSettings()
    stores: dict[str, StoreEntry] = Field(default_factory=dict, description="a dealership group's stores by code")
    sandbox: dict[str, Any] = Field(default_factory=dict)
    _home: Path = PrivateAttr(default_factory=Path.cwd)
    _source: Path | None = PrivateAttr(default=None)
    _store_code: str = PrivateAttr(default=DEFAULT_STORE)
    _group: Settings | None = PrivateAttr(default=None)  # the group's own settings, before a store's

    @property
    def store_code(self) -> str:
        """The store this process works for (``main`` for a single dealership)."""
        return self._store_code

    @property
    def own_store(self) -> str:
        """The group's store these settings are for, whose own passwords come first; "" for a
        single dealership or the group as a whole."""
        return self._store_code if self._store_code in self.stores else ""

    @property
    def is_group(self) -> bool:
        """Whether stores are configured (``[stores.*]``)."""
        return bool(self.stores)

    def store_queue(self, code: str) -> str:
        """The worker queue of store ``code``'s jobs."""
        entry = self.stores.get(code)
        return (entry.queue if entry and entry.queue else "") or f"store.{code}"

    def for_store(self, code: str) -> Settings:
        """These settings as store ``code`` sees them: its portal sections over the group's, its
        own folders for browser state, logs and workbooks, and its store code for the run store.

        Raises:
            ConfigError: no such store is configured, or its portal settings are invalid.
        """
        if code == DEFAULT_STORE and not self.stores:
            return self
        entry = self.stores.get(code)
        if entry is None:
            raise ConfigError(f"没有门店 '{code}'：请在 {self.source or 'dealerbot.toml'} 中加入 [stores.{code}] "
                              f"(no store '{code}'; configured: {', '.join(self.stores) or 'none'})")
        group = self._group or self  # another store's settings: start from the group's, not from its
        copy = group
        for portal, changes in entry.portal_overrides.items():
            try:
                copy = copy.with_portal(portal, **changes)
            except ConfigError as exc:  # name the section the mistake is in
                detail = str(exc).split(": ", 1)[-1] if str(exc).startswith("portal ") else str(exc)
                raise ConfigError(f"{group.source or 'settings'}: [stores.{code}.{portal}] {detail}") from None
        copy = copy.model_copy()
        copy.home, copy.source = group.home, group.source
        copy._store_code = code
        copy._group = group
        return copy

    @field_validator("stores")
    @classmethod
    def _store_codes(cls, value: dict[str, StoreEntry]) -> dict[str, StoreEntry]:
        for code in value:
            if not STORE_CODE.fullmatch(code):
                raise ValueError(f"store code {code!r}: use 1-32 letters, digits, _ or - (e.g. S01)")
        return value

    @property
    def source(self) -> Path | None:
        """The config file read, or None (built-in defaults and the environment only)."""
        return self._source

    @source.setter
    def source(self, value: Path | None) -> None:
        self._source = value

    @property
    def home(self) -> Path:
        """The project folder: the config file's folder, else the working folder."""
        return self._home

    @home.setter
    def home(self, value: Path) -> None:
        self._home = value

    @model_validator(mode="before")
    @classmethod
    def _shipped_portals_in_collection(cls, data: Any) -> Any:
        """``[portals.oem]`` is ``[oem]`` (each source is folded on its own first, so that the
        environment wins over the file whichever spelling each uses)."""
        return fold_shipped_portals(data)

    @field_validator("portals")
    @classmethod
    def _portal_names(cls, value: dict[str, PortalSettings]) -> dict[str, PortalSettings]:
        for name in value:
            if not PORTAL_NAME.fullmatch(name):
                raise ValueError(
                    f"portal name {name!r}: use lower-case letters, digits and _ (it names the selector file "
                    f"selectors/<name>.yaml and the password variable DEALERBOT_<NAME>_PASSWORD)"
                )
        return value

    # -- portals -----------------------------------------------------------------------------
    @property
    def portal_names(self) -> list[str]:
        """Every configured portal: the shipped two, then ``[portals.*]`` in file order."""
        return [*SHIPPED_PORTALS, *self.portals]

    def portal(self, name: str) -> PortalSettings:
        """The settings of portal ``name``.

        Raises:
            ConfigError: no such portal is configured (the message lists those that are).
        """
        if name in SHIPPED_PORTALS:
            return getattr(self, name)
        try:
            return self.portals[name]
        except KeyError:
            where = self.source or "dealerbot.toml"
            raise ConfigError(
                f"没有配置门户 '{name}'：请在 {where} 中加入 [portals.{name}] 并写明 url "
                f"(no portal '{name}' is configured; configured: {', '.join(self.portal_names)})"
            ) from None

    def with_portal(self, name: str, **changes: Any) -> Settings:
        """A copy with portal ``name``'s settings changed (validated).

        Raises:
            ConfigError: no such portal, or an invalid value.
        """
        current = self.portal(name)
        try:
            changed = type(current).model_validate({**current.model_dump(), **changes})
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc, f"portal {name}")) from None
        update: dict[str, Any] = {name: changed} if name in SHIPPED_PORTALS else {"portals": {**self.portals, name: changed}}
        copy = self.model_copy(update=update)
        copy.home, copy.source = self.home, self.source
        return copy

    # -- browser options of a portal -----------------------------------------------------
    def portal_proxy(self, name: str) -> ProxySettings | None:
        """The proxy portal ``name`` is reached through: its own ``proxy``, else ``[browser] proxy``
        (None: direct). A host in the proxy's ``bypass`` is reached directly.

        Raises:
            ConfigError: no such portal.
        """
        return self.portal(name).proxy or self.browser.proxy

    def allowed_hosts(self, name: str) -> list[str]:
        """The host patterns portal ``name``'s pages may load; [] means any host. The rule:
        ``[browser] allowed_hosts`` plus the portal's own ``allowed_hosts`` plus the portal's own
        host; both lists empty, or either holding ``*``: no restriction.

        Raises:
            ConfigError: no such portal.
        """
        portal = self.portal(name)
        hosts = [*self.browser.allowed_hosts, *portal.allowed_hosts]
        if not hosts or "*" in hosts:
            return []
        own = (urlparse(portal.url).hostname or "").lower()
        return list(dict.fromkeys([own, *hosts]))

    def launch_settings(self, portals: list[str] | tuple[str, ...]) -> BrowserSettings:
        """``[browser]`` for a run opening ``portals``: its ``args`` followed by each portal's
        ``browser_args`` (one browser serves every portal of a run)."""
        extra = [a for n in portals if n in self.portal_names for a in self.portal(n).browser_args]
        if not extra:
            return self.browser
        return self.browser.model_copy(update={"args": list(dict.fromkeys([*self.browser.args, *extra]))})

    # -- derived paths ---------------------------------------------------------------------
    def path(self, name: str) -> Path:
        """Absolute folder for ``logs``, ``state``, ``out`` or ``var`` (for a group's store, the
        store's own subfolder of ``logs``, ``state`` and ``out``)."""
        p = Path(getattr(self.paths, name))
        p = p if p.is_absolute() else self.home / p
        if self.stores and name in ("logs", "state", "out"):
            p = p / self.store_code
        return p

    @property
    def dictionary_path(self) -> Path:
        """The data dictionary file (``[rekey] dictionary``, relative to the project folder)."""
        p = Path(self.rekey.dictionary)
        return p if p.is_absolute() else self.home / p

    @property
    def dictionary_overlay(self) -> Path | None:
        """This store's own dictionary entries (``[stores.<code>] dictionary``), or None."""
        entry = self.stores.get(self.store_code)
        if entry is None or not entry.dictionary:
            return None
        p = Path(entry.dictionary)
        return p if p.is_absolute() else self.home / p

    @property
    def store_url(self) -> str:
        """The SQLAlchemy URL of the run store (default: ``var/dealerbot.sqlite``)."""
        if self.store.url:
            return self.store.url
        return f"sqlite:///{self.path('var') / 'dealerbot.sqlite'}"


def _refuse_passwords(data: dict[str, Any], path: Path) -> None:
    sections = [(s, v) for s, v in data.items() if s not in ("portals", "stores")]
    if isinstance(data.get("portals"), dict):
        sections += [(f"portals.{name}", v) for name, v in data["portals"].items()]
    for code, store in (data.get("stores") or {}).items() if isinstance(data.get("stores"), dict) else ():
        if isinstance(store, dict):  # a store's portal sections: [stores.S01.dms]
            sections += [(f"stores.{code}.{name}", v) for name, v in store.items() if isinstance(v, dict)]
    for section, values in sections:
        if isinstance(values, dict):
            portal = section.removeprefix("portals.")
            env, command = f"DEALERBOT_{portal.upper()}_PASSWORD", f"dealerbot credentials set {portal}"
            if section.startswith("stores."):
                _, code, portal = section.split(".", 2)
                env = f"DEALERBOT_{code.upper().replace('-', '_')}_{portal.upper()}_PASSWORD"
                command = f"dealerbot --store {code} credentials set {portal}"
            proxy = values.get("proxy")
            if isinstance(proxy, dict) and any(w in k.lower() for k in proxy for w in ("password", "passwd", "pwd")):
                var = "DEALERBOT_BROWSER__PROXY__PASSWORD" if section == "browser" else (
                    f"DEALERBOT_PORTALS__{portal.upper()}__PROXY__PASSWORD" if section.startswith("portals.")
                    else f"DEALERBOT_{section.upper().replace('.', '__')}__PROXY__PASSWORD")
                raise ConfigError(f"{path}: [{section}] proxy.password holds a password; passwords are never read "
                                  f"from the config file. Remove it and set {var}.")
            fields = values.get("login_fields")
            keys = [*values, *(f"login_fields.{k}" for k in fields)] if isinstance(fields, dict) else list(values)
            for key in keys:
                if any(w in key.lower() for w in ("password", "passwd", "pwd", "secret", "token")):
                    raise ConfigError(
                        f"{path}: [{section}] {key} holds a password; passwords are never read "
                        f"from the config file. Remove it and set {env} "
                        f"or run `{command}` (stores it in the OS keyring)."
                    )
        elif "password" in section.lower():
            raise ConfigError(
                f"{path}: {section} holds a password; passwords are never read from the config "
                f"file. Use an environment variable or `dealerbot credentials set`."
            )


def describe_validation_error(exc: ValidationError, source: str) -> str:
    """Turn a pydantic error into one line per bad key, e.g. ``run.concurrency: ...``."""
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        key = ".".join(loc) or "(root)"
        value = err.get("input")
        secret = any(w in key.lower() for w in ("password", "passwd", "secret", "token")) or (
            isinstance(value, str) and re.search(r"://[^/@\s]*:[^/@\s]*@", value) is not None)  # a URL's user:password@
        shown = "" if isinstance(value, dict) or secret else f" (got {value!r})"
        env = "DEALERBOT_" + "__".join(p.upper() for p in loc)
        where = f"${env}" if loc and env in os.environ else source
        lines.append(f"{where}: {key}: {err['msg']}{shown}")
    return "\n".join(lines)


def load_settings(config: Path | None = None, store: str | None = None, **overrides: Any) -> Settings:
    """Read ``dealerbot.toml`` (if any), the environment and ``overrides``, as store ``store``
    sees them (default: ``$DEALERBOT_STORE_CODE``, else the single dealership's).

    Raises:
        ConfigError: the file is missing (when named), unreadable, larger than
            ``MAX_CONFIG_BYTES``, is not valid TOML (names the line), holds a password, or a
            value is invalid (names the key).
    """
    path = find_config(config)
    data: dict[str, Any] = {}
    home = Path.cwd()
    if path is not None:
        try:
            with path.open("rb") as f:
                raw = f.read(MAX_CONFIG_BYTES + 1)  # never more: a huge file is refused, not read
        except OSError as exc:
            raise ConfigError(f"{path}: 无法读取配置文件 (cannot read the config file): {exc.strerror}") from None
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: 配置文件过大，最多 {MAX_CONFIG_BYTES:,} 字节；dealerbot.toml 通常只有几 KB "
                              f"(the config file is larger than {MAX_CONFIG_BYTES:,} bytes)")
        if raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # a BOM left by Windows Notepad is harmless
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise ConfigError(f"{path}:{line}: 文件不是 UTF-8 编码（可能是 GBK），请另存为 UTF-8 "
                              f"(the file is not UTF-8)") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        _refuse_passwords(data, path)
        try:
            data = fold_shipped_portals(data, str(path))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        home = path.resolve().parent
    data = _deep_merge(data, environment_values(os.environ))  # the environment wins over the file
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, str(path or "settings"))) from None
    settings = _apply_overrides(settings, overrides)
    settings.home = home
    settings.source = path
    for code in settings.stores:  # every store's sections are checked now, not when its job first runs
        settings.for_store(code)
    store = store or os.environ.get(STORE_ENV)
    if store:
        settings = settings.for_store(store)
    return settings


def _apply_overrides(settings: Settings, overrides: dict[str, Any]) -> Settings:
    """Values given by the program (command line, demo) win over the file and the environment.

    Raises:
        ConfigError: an override is invalid (names the key).
    """
    for dotted, value in overrides.items():
        if value is None:
            continue
        section, _, key = dotted.partition("__")
        current = getattr(settings, section)
        try:
            if key and isinstance(current, BaseModel):
                value = type(current).model_validate({**current.model_dump(), key: value})
            elif key:
                value = {**current, key: value}
            settings = settings.model_copy(update={section: value})
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc, f"--{section}.{key}" if key else f"--{section}")) from None
    return settings
