"""Every error dealerbot raises on purpose, and what the runner does with it.

The tree::

    DealerbotError                      base of everything below
    ├── AlreadyRunning                  this bot runs for the same portal account elsewhere:
    │                                   this run does not start (a timetable records a skip);
    │                                   or a scheduler already runs for this folder
    ├── StopRequested                   a shutdown (SIGTERM, Ctrl-C of the scheduler) asked the
    │                                   run to stop at a safe point, between records: interrupted
    ├── NeedsPerson                     the portal's login wants what only a person has (an SMS
    │                                   code, a captcha, a new password) and nobody is there to
    │                                   answer: never guessed, never retried; ends "needs_person"
    ├── PortalChanged                   the canary before writing found selectors of the writing
    │                                   bot missing on the live screens: nothing written; ends
    │                                   "portal_changed" (for the integrator)
    ├── ConfigError                     bad configuration or setup: fail fast, never retry
    │   ├── SelectorFileError           a selectors/*.yaml file is malformed (names file and line)
    │   ├── DataFileError               a file staff edit (dictionary.yaml, a review workbook)
    │   │   │                           is malformed or not ours (names file and line or row)
    │   │   └── CalendarUnknown         a fire time in a year the holiday data does not know
    │   ├── UnknownSelector             a page object asked for a name the file does not have
    │   ├── UnknownBot                  no bot of that name (lists the ones that exist)
    │   ├── BrowserNotFound             no usable Chromium/Chrome/Edge (says what was tried)
    │   ├── CredentialsMissing          no password in the environment or the keyring
    │   ├── LoginRejected               the portal said the password is wrong / account locked;
    │   │                               never retried (the OEM portal locks after 5 wrong tries)
    │   └── RollbackRefused             a run that cannot be rolled back (unknown, not a writing
    │                                   run, nothing to reverse, already rolled back, still
    │                                   writing): nothing planned, exit 2
    ├── SystemFailure                   the portal, the network or the browser broke:
    │   │                               save evidence, retry with backoff, then fail the run
    │   ├── PortalUnavailable           HTTP 5xx, connection refused
    │   │   ├── PortalMaintenance       the portal's maintenance notice (503 系统维护中): the run
    │   │   │                           ends "postponed" until the announced window's end
    │   │   └── CircuitOpen             N system failures in a row (the circuit breaker):
    │   │                               the portal is down, the run stops without more retries
    │   ├── RateLimited                 HTTP 429 / the portal's rate-limit warning page
    │   ├── SessionExpired              the portal sent us back to its login page
    │   ├── PageChanged                 an element or field we rely on is not on the page
    │   ├── StepTimeout                 a step did not finish in time
    │   ├── UnknownOutcome              the DMS gave no clear answer to a submit and the record
    │   │                               is not there: tried again later, searching first
    │   └── BrowserCrashed              the browser ended under the run (killed, out of memory):
    │                                   not retried within the run, which fails at once
    └── BusinessError                   this record is bad: reject it with a reason, go on
        └── RecordRejected              carries a stable code, the field and a Chinese reason

Only :mod:`dealerbot.running.runner` decides a run's status from these. Pipeline steps raise
:class:`RecordRejected`; page objects and the browser layer raise :class:`SystemFailure`
subclasses; configuration and start-up raise :class:`ConfigError` subclasses.
"""

from __future__ import annotations


class DealerbotError(Exception):
    """Base class of every error dealerbot raises on purpose."""


class AlreadyRunning(DealerbotError):
    """Another process runs this bot for the same portal account (this run did not start), or
    the scheduler of this dealership's folder (this scheduler did not start)."""


class StopRequested(DealerbotError):
    """The scheduler is shutting down: the bot stopped between two records (nothing half-done)."""


class NeedsPerson(DealerbotError):
    """The portal's login asks for something only a person can give (``need``: ``sms_code``,
    ``captcha``, ``new_password``) and the run is unattended, or nobody answered in time. The
    run ends ``needs_person``; it is never guessed or retried by itself."""

    def __init__(self, message: str, portal: str = "", need: str = "") -> None:
        super().__init__(message)
        self.portal = portal
        self.need = need


class PortalChanged(DealerbotError):
    """The canary before writing: selectors the writing bot uses are not on the portal's live
    screens (``missing``: their names). Nothing was written; the run ends ``portal_changed``."""

    def __init__(self, message: str, portal: str = "", missing: list[str] | None = None, screen: str = "",
                 screen_title: str = "", news: bool = True) -> None:
        super().__init__(message)
        self.portal = portal
        self.missing = list(missing or [])
        self.screen = screen  # the screen (its endpoint name in the selector file) with the missing names
        self.screen_title = screen_title  # the page's own title, for the operator
        self.news = news  # False: the last canary of this portal found the very same miss


# --- configuration: fail fast -------------------------------------------------------------


class ConfigError(DealerbotError):
    """Configuration or setup is wrong. Retrying cannot help; the message says what to fix."""


class SelectorFileError(ConfigError):
    """A selector file is malformed. The message names the file and line."""


class DataFileError(ConfigError):
    """A file staff edit (the data dictionary, a review workbook) is malformed, damaged or not
    dealerbot's. The message names the file and the line, sheet row or key; nothing was applied."""


class CalendarUnknown(DataFileError):
    """A fire time lies in a year whose holidays the installed ``chinesecalendar`` does not know."""


class UnknownSelector(ConfigError):
    """A page object asked for a selector name the portal's file does not define."""


class UnknownBot(ConfigError):
    """No bot is registered under that name."""


class BrowserNotFound(ConfigError):
    """No usable browser was found. The message lists what was tried and how to fix it."""


class CredentialsMissing(ConfigError):
    """No password could be found for a portal."""


class LoginRejected(ConfigError):
    """The portal rejected the credentials (wrong password, locked account), or it did before
    and the password has not changed since (``remembered``: nothing was typed this time).

    Deliberately not a :class:`SystemFailure`: retrying a wrong password locks the account.
    """

    def __init__(self, message: str, remembered: bool = False) -> None:
        super().__init__(message)
        self.remembered = remembered


class RollbackRefused(ConfigError):
    """``dealerbot rollback --run ID`` (or the console's 回滚此次写入) cannot plan for that run:
    there is no such run, it did not write into the DMS, it wrote nothing, it was rolled back
    already, or an order it wrote is being written right now. The message says which, in
    Chinese; nothing was planned."""


# --- system: evidence, retry, then fail ---------------------------------------------------


class SystemFailure(DealerbotError):
    """The portal, the network or the browser failed. Retried with backoff, then fails the run."""

    retryable: bool = True


class PortalUnavailable(SystemFailure):
    """The portal answered 5xx, is in its maintenance window, or could not be reached."""


class PortalMaintenance(PortalUnavailable):
    """The portal shows its maintenance notice. Not retried within the run: the run ends
    ``postponed`` with the portal's message and, when it announced one, the window's end."""

    retryable = False

    def __init__(self, message: str, notice: str = "", until: str | None = None) -> None:
        super().__init__(message)
        self.notice = notice  # the portal's own words
        self.until = until  # "HH:MM", the announced end of the window, when known


class CircuitOpen(PortalUnavailable):
    """Too many system failures in a row (``[run] max_consecutive_failures``): the portal is
    down or broken, so the run stops instead of retrying every remaining read."""

    retryable = False


class RateLimited(SystemFailure):
    """The portal says we sent too many requests. Back off longer before trying again."""


class SessionExpired(SystemFailure):
    """The portal's session ended and it showed its login page again."""


class PageChanged(SystemFailure):
    """A screen does not look as the page object expects (element or field missing)."""

    retryable = False


class StepTimeout(SystemFailure):
    """A step took longer than its timeout."""


class UnknownOutcome(SystemFailure):
    """The DMS gave no clear answer to a submit and the record is not there (yet): the action
    stays where it is and is tried again later, searching first."""


class BrowserCrashed(SystemFailure):
    """The browser process ended while the run used it (killed, out of memory, crashed).

    Not retried within the run: every page and login died with it, so retrying a step or a
    read cannot succeed; the run fails as a system failure and the next run starts a new
    browser (writes are exactly-once, an incremental read starts where the last success ended).
    """

    retryable = False

    MESSAGE = ("浏览器意外退出（可能被结束或内存不足），本次运行停止；下次运行会重新启动浏览器 "
               "(the browser ended unexpectedly)")

    def __init__(self, message: str = MESSAGE) -> None:
        super().__init__(message)


# --- business: reject the record, go on -----------------------------------------------------


class BusinessError(DealerbotError):
    """A record is bad. It is rejected with a reason and the run goes on."""


class RecordRejected(BusinessError):
    """A pipeline step rejected a record.

    Attributes:
        code: stable machine-readable code, e.g. ``vin_check_digit``.
        field: the field at fault, or ``""`` for the record as a whole.
        reason: operator-facing reason in Simplified Chinese.
    """

    def __init__(self, code: str, reason: str, field: str = "") -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.field = field
        self.reason = reason
