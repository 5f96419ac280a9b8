"""Configuration of the sandbox (practice OEM portal and DMS).

See docs/sandbox.md for the meaning of every key.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

_WINDOW_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")

# Keys that PUT /__admin/behaviours may change at runtime.
BEHAVIOUR_KEYS = (
    "maintenance_window",
    "rate_limit_per_minute",
    "rate_limit_window_seconds",
    "rate_limit_lock_minutes",
    "slow_rate",
    "slow_ms",
    "error_rate",
    "fault_seed",
    "save_delay_ms",
    "session_idle_seconds",
    "session_rotate_requests",
    "write_faults",
    "dms_form_changed",
    "login_sms_code",
    "login_captcha",
    "login_new_password",
)

# The login steps a real portal adds that need a person (each off by default; docs/sandbox.md):
# an SMS code after the password, an image captcha on the login form, a forced password change
# on an account's first login.
LOGIN_STEP_KEYS = ("login_sms_code", "login_captcha", "login_new_password")
SMS_CODE_SECONDS = 300  # an SMS code expires 5 minutes after it is sent
MAX_WRONG_SMS_CODES = 3  # the third wrong code locks the account

# What a real DMS does to a save now and then (``write_faults``): the form is accepted and the
# answer says saved, but what is stored differs from what was typed.
WRITE_FAULTS = {
    "truncate": "a new customer's address is cut to its first 2 characters (a narrow column)",
    "dropdown_first": "a contract's model (a dropdown) falls back to the first option",
    "round_amount": "a contract's price is rounded to the nearest 1,000",
    "date_shift": "a contract's delivery date is stored one day later",
    "lost_save": "a contract save answers 保存成功 with a contract number but stores nothing",
}


class SandboxPortInUse(Exception):
    """Raised when the sandbox cannot bind one of its ports."""

    def __init__(self, host: str, port: int, app: str = "") -> None:
        self.host = host
        self.port = port
        self.app = app
        what = f"{app} " if app else ""
        super().__init__(f"sandbox {what}port {host}:{port} is already in use (choose another port or 0)")


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_window(value: str) -> tuple[int, int]:
    """Parse "HH:MM-HH:MM" into (start_minute, end_minute) of the day."""
    m = _WINDOW_RE.match(value.strip())
    if not m:
        raise ValueError(f"maintenance_window must look like 'HH:MM-HH:MM' (24h local time), got {value!r}")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    return h1 * 60 + m1, h2 * 60 + m2


def in_window(window: str | None, minute_of_day: int) -> bool:
    """True if minute_of_day lies in the window; the window may wrap midnight.

    A window whose start equals its end ("00:00-00:00") covers the whole day.
    The end minute is exclusive.
    """
    if not window:
        return False
    start, end = parse_window(window)
    if start == end:
        return True
    if start < end:
        return start <= minute_of_day < end
    return minute_of_day >= start or minute_of_day < end


class WriteFault(BaseModel):
    """Which saves a write fault hits: a share of all (``rate``, drawn per record from
    ``fault_seed``, so the same records are hit whatever the order) and/or named ``records``
    (OEM order numbers for contract faults, ID numbers for ``truncate``)."""

    model_config = ConfigDict(extra="forbid")

    rate: float = 0.0
    records: list[str] = []

    @field_validator("rate")
    @classmethod
    def _rate(cls, v: float) -> float:
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"rate must be a fraction between 0 and 1, got {v}")
        return v


def parse_write_fault(text: str) -> tuple[str, WriteFault]:
    """``KIND=RATE`` or ``KIND=REC1,REC2`` (the sandbox command line's ``--write-fault``).

    Raises:
        ValueError: an unknown kind or a malformed value.
    """
    kind, sep, value = text.partition("=")
    kind, value = kind.strip(), value.strip()
    if not sep or kind not in WRITE_FAULTS or not value:
        raise ValueError(f"--write-fault 应写作 类型=比例 或 类型=记录1,记录2，类型为 {'、'.join(WRITE_FAULTS)}；收到 {text!r} "
                         f"(want KIND=RATE or KIND=RECORD,RECORD)")
    try:
        return kind, WriteFault(rate=float(value))
    except ValueError:
        return kind, WriteFault(records=[r.strip() for r in value.split(",") if r.strip()])


class SandboxConfig(BaseModel):
    """Every setting of the sandbox. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    host: str = "127.0.0.1"
    allow_remote: bool = False  # a host other than loopback exposes the portals and their admin API
    oem_port: int = 8701
    dms_port: int = 8702
    usedcars_port: int = 8703  # the used-car trade-in platform (二手车置换平台): "a portal nobody here wrote"
    seed: int = 20261125
    orders: int = 500
    used_cars: int = 57  # cars on the used-car trade-in platform
    customers: int | None = None
    db_path: Path | None = None
    session_idle_seconds: float = 900
    session_rotate_requests: int = 0  # renew a logged-in session's id every N requests (0: never)
    admin_token: str | None = None
    maintenance_window: str | None = None
    rate_limit_per_minute: int = 0
    rate_limit_window_seconds: float = 60  # the limit counts this long a window (tests: shorter)
    rate_limit_lock_minutes: float = 5
    slow_rate: float = 0.0
    slow_ms: int = 2000
    error_rate: float = 0.0
    fault_seed: int | None = None  # seeds the draws of error_rate/slow_rate (None: unseeded)
    save_delay_ms: int = 0
    write_faults: dict[str, WriteFault] = {}  # kind (WRITE_FAULTS) -> which saves it hits
    # A DMS release overnight: the contract form's ids change (#contract-form -> #sales-contract-form,
    # #customer_no -> #cust_no); what the form saves stays the same. The canary before writing
    # (dealerbot.web.canary) must stop a writing run on it.
    dms_form_changed: bool = False
    login_sms_code: bool = False  # OEM: an SMS code after the password (read: GET /__admin/sms)
    login_captcha: bool = False  # OEM: an image captcha on the login form (answer: GET /__admin/captcha)
    login_new_password: bool = False  # OEM: an account's first login must change its password

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("host must not be empty (use 127.0.0.1)")
        return v

    @field_validator("oem_port", "dms_port", "usedcars_port")
    @classmethod
    def _port(cls, v: int) -> int:
        if not 0 <= v <= 65535:
            raise ValueError(f"port must be between 0 and 65535 (0 = any free port), got {v}")
        return v

    @field_validator("orders")
    @classmethod
    def _orders(cls, v: int) -> int:
        if not 10 <= v <= 1_000_000:
            raise ValueError(f"orders must be between 10 and 1000000, got {v}")
        return v

    @field_validator("used_cars")
    @classmethod
    def _used_cars(cls, v: int) -> int:
        if not 1 <= v <= 100_000:
            raise ValueError(f"used_cars must be between 1 and 100000, got {v}")
        return v

    @field_validator("customers")
    @classmethod
    def _customers(cls, v: int | None) -> int | None:
        if v is not None and not 5 <= v <= 1_000_000:
            raise ValueError(f"customers must be between 5 and 1000000 (or unset), got {v}")
        return v

    @field_validator("session_idle_seconds")
    @classmethod
    def _idle(cls, v: float) -> float:
        if v <= 0:
            raise ValueError(f"session_idle_seconds must be > 0, got {v}")
        return v

    @field_validator("session_rotate_requests")
    @classmethod
    def _rotate(cls, v: int) -> int:
        if v < 0:
            raise ValueError(f"session_rotate_requests must be >= 0 (0 = never), got {v}")
        return v

    @field_validator("admin_token")
    @classmethod
    def _token(cls, v: str | None) -> str | None:
        if v is not None and len(v.strip()) < 8:
            raise ValueError("admin_token must have at least 8 characters (or be unset for a random one)")
        return v.strip() if v is not None else None

    @field_validator("maintenance_window")
    @classmethod
    def _window(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        parse_window(v)
        return v.strip()

    @field_validator("rate_limit_per_minute")
    @classmethod
    def _rate(cls, v: int) -> int:
        if v < 0:
            raise ValueError(f"rate_limit_per_minute must be >= 0 (0 = off), got {v}")
        return v

    @field_validator("rate_limit_window_seconds")
    @classmethod
    def _rate_window(cls, v: float) -> float:
        if not 0.5 <= v <= 3600:
            raise ValueError(f"rate_limit_window_seconds must be between 0.5 and 3600, got {v}")
        return v

    @field_validator("rate_limit_lock_minutes")
    @classmethod
    def _lock(cls, v: float) -> float:
        if v <= 0:
            raise ValueError(f"rate_limit_lock_minutes must be > 0, got {v}")
        return v

    @field_validator("slow_rate", "error_rate")
    @classmethod
    def _fraction(cls, v: float) -> float:
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"must be a fraction between 0 and 1, got {v}")
        return v

    @field_validator("slow_ms", "save_delay_ms")
    @classmethod
    def _millis(cls, v: int) -> int:
        if not 0 <= v <= 120_000:
            raise ValueError(f"must be between 0 and 120000 milliseconds, got {v}")
        return v

    @field_validator("write_faults")
    @classmethod
    def _write_faults(cls, v: dict[str, WriteFault]) -> dict[str, WriteFault]:
        unknown = sorted(set(v) - set(WRITE_FAULTS))
        if unknown:
            raise ValueError(f"unknown write fault(s) {', '.join(unknown)}; known: {', '.join(WRITE_FAULTS)}")
        return v

    @model_validator(mode="after")
    def _loopback_unless_allowed(self) -> SandboxConfig:
        if not self.allow_remote and not _is_loopback(self.host):
            raise ValueError(
                f"host {self.host!r} would let other machines reach the practice portals and their admin API; "
                f"use 127.0.0.1, or set allow_remote = true (dealerbot sandbox --allow-remote) on purpose"
            )
        return self

    @model_validator(mode="after")
    def _ports_differ(self) -> SandboxConfig:
        ports = [p for p in (self.oem_port, self.dms_port, self.usedcars_port) if p]
        if len(set(ports)) < len(ports):
            raise ValueError(f"oem_port, dms_port and usedcars_port must differ (got {self.oem_port}, {self.dms_port}, "
                             f"{self.usedcars_port})")
        return self

    @property
    def effective_customers(self) -> int:
        """Number of OEM customers to generate."""
        return self.customers if self.customers is not None else max(5, round(self.orders * 0.8))

    def behaviours(self) -> dict:
        """The runtime-changeable settings, as plain JSON values."""
        return {k: v for k, v in self.model_dump(mode="json").items() if k in BEHAVIOUR_KEYS}
