"""dealerbot's public API: everything a bot or a portal's page objects may use.

The shipped bots (``bots/``) and page objects (``portals/``) import from here only (a test
checks), so a dealership's own portal has exactly the tools the shipped ones have::

    from dealerbot.api import Bot, BotContext, Entity, FieldDef, Form, PortalApp

Bots
    :class:`Bot` (``name``, ``portal``, ``entity`` or ``entities``, ``also_uses``, ``options``,
    ``run(ctx)``), :class:`TableBot` (a list declared in YAML, no code), :class:`ListBot`,
    :class:`BotContext` (``ctx.portal(name)``, ``ctx.emit(entity, row)``, ``ctx.write_once``,
    ``ctx.rejecting``, ``ctx.reject``, ``ctx.note``, ``ctx.check_stop``, ``ctx.input_rows()``,
    ``ctx.download_dir()``), :func:`fan_out`, :func:`scrape_pages`.
Re-keying into a DMS
    :func:`run_rekey` (a re-key bot's whole run, given how to open its writers: :class:`DmsWriter`),
    :func:`start_rekey`, :func:`write_actions`, :func:`pending_actions`, :class:`Rekeyer`,
    :class:`Submitted`.
Flows
    :class:`Flow` (declare one at module level in a ``bots/`` module: read bots, source record
    type, pure ``plan``, writer bot, action kinds, default approvals), :func:`run_ledger_writer`
    (a flow's writer bot's whole run through the ledger, given how to open its
    :class:`LedgerTarget` s: search first, one submit, read back, resume after a kill),
    :func:`start_ledger_writer`, :class:`LedgerWriter`; ``OPEN_STATES`` (the ledger states of an
    action not yet done: what a flow's ``waiting`` lists).
Records
    :class:`Entity`, :class:`FieldDef`: declare a record type; it gets the default pipeline
    (required key matching ``key_pattern``, named in words by ``key_rule``; types; rejects with
    reasons), a place in the store, a workbook sheet and the masking of its ``personal`` fields.
Page objects
    :class:`PortalApp` (logging in), :class:`PortalSession` (the logged-in page, ``goto``,
    ``fetch_html``, ``fetch_json``, ``step``, ``loc``), :class:`Form` / :class:`SubmitOutcome`
    (fill, choose, submit exactly once; a script-handled form's outcome from its ``success`` /
    ``failure`` signals, or the selector file's ``outcomes:``), :class:`LoginForm`,
    :class:`PagedTable`, :func:`read_table`, :class:`HeaderTable` (columns by header text; a
    ``find`` for ``write_once`` returns the record type's field names), :func:`read_saved_table`
    (a declared table read from a saved page: a project's own tests).
Retrying
    :func:`with_retries` (a step that may fail for a while: backoff, what is retried, its words),
    :func:`with_retries_sync` (the same for a blocking step, such as a desktop client's typing).
Errors
    the tree of :mod:`dealerbot.errors`: raise :class:`RecordRejected` for a bad record,
    :class:`PageChanged` / :class:`PortalUnavailable` when the portal breaks.
"""

from __future__ import annotations

from dealerbot.data.mapping import dms_values
from dealerbot.data.records import (
    DMS_CONTRACT,
    DMS_CUSTOMER,
    DMS_DELIVERY,
    DMS_FOLLOWUP,
    DMS_PROSPECT,
    OEM_CUSTOMER,
    OEM_FOLLOWUP,
    OEM_LEAD,
    OEM_ORDER,
    OEM_REPORT,
    Entity,
    FieldDef,
)
from dealerbot.desktop.driver import DesktopDriver
from dealerbot.errors import (
    ConfigError,
    DealerbotError,
    LoginRejected,
    NeedsPerson,
    PageChanged,
    PortalUnavailable,
    RecordRejected,
    SessionExpired,
    StepTimeout,
    SystemFailure,
)
from dealerbot.failpoints import Failpoints
from dealerbot.flows import Flow
from dealerbot.flows.writer import LedgerTarget, LedgerWriter, run_ledger_writer, start_ledger_writer
from dealerbot.pages.common import (
    LOGIN_SELECTORS,
    LOGIN_STEP_SELECTORS,
    HeaderTable,
    LoginForm,
    PagedTable,
    PortalApp,
    paged_table_selectors,
    read_table,
)
from dealerbot.pages.saved import read_saved_table
from dealerbot.rekey.ledger import OPEN_STATES, Action, PlannedAction
from dealerbot.rekey.writer import DmsWriter, Rekeyer, Submitted, pending_actions, run_rekey, start_rekey, write_actions
from dealerbot.retries import with_retries, with_retries_sync
from dealerbot.running.bot import Bot, ListBot, TableBot, scrape_pages
from dealerbot.running.context import BotContext
from dealerbot.running.fan_out import fan_out
from dealerbot.web.forms import Form, SubmitOutcome
from dealerbot.web.playwright_errors import PlaywrightError, PlaywrightTimeout
from dealerbot.web.portal import PortalSession

__all__ = [
    "DMS_CONTRACT",
    "DMS_CUSTOMER",
    "DMS_DELIVERY",
    "DMS_FOLLOWUP",
    "DMS_PROSPECT",
    "LOGIN_SELECTORS",
    "LOGIN_STEP_SELECTORS",
    "OEM_CUSTOMER",
    "OEM_FOLLOWUP",
    "OEM_LEAD",
    "OEM_ORDER",
    "OEM_REPORT",
    "Action",
    "Bot",
    "BotContext",
    "ConfigError",
    "DealerbotError",
    "DesktopDriver",
    "DmsWriter",
    "Entity",
    "Failpoints",
    "FieldDef",
    "Flow",
    "Form",
    "HeaderTable",
    "LedgerTarget",
    "LedgerWriter",
    "ListBot",
    "LoginForm",
    "LoginRejected",
    "NeedsPerson",
    "PageChanged",
    "PagedTable",
    "OPEN_STATES",
    "PlannedAction",
    "PlaywrightError",
    "PlaywrightTimeout",
    "PortalApp",
    "PortalSession",
    "PortalUnavailable",
    "RecordRejected",
    "Rekeyer",
    "SessionExpired",
    "StepTimeout",
    "Submitted",
    "SubmitOutcome",
    "SystemFailure",
    "TableBot",
    "dms_values",
    "fan_out",
    "paged_table_selectors",
    "pending_actions",
    "read_saved_table",
    "read_table",
    "run_ledger_writer",
    "run_rekey",
    "scrape_pages",
    "start_ledger_writer",
    "start_rekey",
    "with_retries",
    "with_retries_sync",
    "write_actions",
]
