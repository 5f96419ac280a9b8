"""Flows: each kind of re-keying dealerbot does, declared as one thing.

A flow names everything its daily run needs::

    read bots (fill the store) -> plan (source records -> ledger actions, pure mapping)
      -> writer bot (approved actions, exactly once, read back) -> plan again

* ``name`` (``orders``) and ``title`` (厂家订单录入DMS), the operator's word for it;
* ``read_bots``: the bots whose records it plans from (run once per sync, whichever flows need them);
* ``source``: the record type whose records become actions, keyed by ``natural_key``;
* ``plan``: the mapping, a pure function ``plan(record, target, dictionary)`` giving the
  :class:`~dealerbot.rekey.ledger.PlannedAction` that brings the target in line, None when it
  already is, or raising :class:`~dealerbot.errors.RecordRejected` with the reason (codes go
  through the data dictionary); ``target`` is the record of the ``target`` record type (what the
  written portal holds, as last read) with the same key (or the same ``match`` field), or None; a flow whose target is not
  keyed like its source (a DMS prospect found by its OEM lead no) gives ``targets(store)``: what
  ``plan`` gets as ``target`` for each source key (read from the store once per planning);
* ``attention``: what waits for a person besides approvals (a lead past its deadline with no
  follow-up), as ``(key, words)`` from the store: listed in the review workbook (a 需人工 sheet
  per flow) and in the message after each sync;
* ``writer_bot``: the bot that writes its approved actions (through :func:`dealerbot.flows.writer.run_ledger_writer`,
  or the DMS re-key's :func:`~dealerbot.rekey.writer.run_rekey`);
* ``kinds``: its action kinds with their Chinese words; ``approval_required`` the kinds that wait
  for a person by default (``[flows.<name>] approval_required`` changes it), ``enabled_kinds``
  the kinds it may write at all.

Every flow's actions live in the one ledger (``actions.flow``) and move along the one state
machine of :mod:`dealerbot.rekey.ledger`: review, audit, resume after a kill, never a blind
retry. The shipped OEM-order -> DMS-contract re-key is the flow ``orders``
(:data:`dealerbot.flows.orders.ORDERS`), planned by :mod:`dealerbot.rekey.reconcile` as before.
A dealership declares its own flows as module-level :class:`Flow` objects in its ``bots/``
modules (found by :func:`dealerbot.flows.registry.discover_flows`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dealerbot.data.records import Entity
from dealerbot.errors import ConfigError
from dealerbot.rekey.ledger import ORDERS_FLOW, PlannedAction, Policy

if TYPE_CHECKING:
    from dealerbot.data.dictionary import Dictionary
    from dealerbot.store import Store

FlowPlan = Callable[[dict[str, Any], "dict[str, Any] | None", "Dictionary | None"], "PlannedAction | None"]
FLOW_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-"


@dataclass(frozen=True)
class Flow:
    """One declared flow (see the module docstring).

    Raises (on construction):
        ConfigError: a bad name, no kinds, or policy kinds that are not the flow's.
    """

    name: str
    title: str
    read_bots: tuple[str, ...]
    source: Entity
    writer_bot: str
    kinds: Mapping[str, str]  # action kind -> its Chinese words (新建合同...)
    approval_required: frozenset[str] = frozenset()
    enabled_kinds: frozenset[str] | None = None  # None: every kind
    target: Entity | None = None  # what the written portal holds, keyed like ``source`` (read by a read bot)
    # A field both record types have that pairs a source record with the target's (the VIN of a
    # delivery and of its report); "": the target is keyed like the source.
    match: str = ""
    plan: FlowPlan | None = None  # None only for the shipped orders flow (planned by dealerbot.rekey.reconcile)
    # source key -> what ``plan`` gets as ``target``, when the target is not keyed like the source
    targets: Callable[[Store], Mapping[str, dict[str, Any]]] | None = field(default=None, compare=False)
    description: str = ""
    # what waits for a person besides approvals: (record key, the words why), after each sync
    attention: Callable[[Store], list[tuple[str, str]]] | None = field(default=None, compare=False)
    # What waits for this flow, in lines for the message after a sync (the store after planning);
    # None: the counts say it all.
    waiting: Callable[[Any], list[str]] | None = field(default=None, compare=False)
    # The orders flow's own policy hook (its [rekey] section); None: built from the above.
    settings_policy: Callable[[Any], Policy] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.name or any(c not in FLOW_NAME_CHARS for c in self.name) or len(self.name) > 32:
            raise ConfigError(f"flow name {self.name!r}: use lower-case letters, digits, '-' or '_' (at most 32)")
        if not self.kinds:
            raise ConfigError(f"flow '{self.name}' declares no action kinds")
        for what, kinds in (("approval_required", self.approval_required), ("enabled_kinds", self.enabled_kinds or ())):
            unknown = sorted(set(kinds) - set(self.kinds))
            if unknown:
                raise ConfigError(f"flow '{self.name}': {what} names kinds it does not have: {unknown}")
        if self.plan is None and self.name != ORDERS_FLOW:
            raise ConfigError(f"flow '{self.name}' declares no plan (its mapping from {self.source.name} to actions)")

    def kind_text(self, kind: str) -> str:
        """The Chinese words of an action kind of this flow (the kind itself when unknown)."""
        return self.kinds.get(kind, kind)

    def default_policy(self) -> Policy:
        """The approval policy the flow declares (before a dealership's settings)."""
        return Policy.of(self.approval_required, self.enabled_kinds if self.enabled_kinds is not None else self.kinds,
                         (), kinds=tuple(self.kinds), where=f"flow {self.name}")

    def action(self, kind: str, natural_key: str, new_values: dict[str, str], old_values: dict[str, str] | None = None,
               target_key: str = "", note: str = "", conflict: bool = False) -> PlannedAction:
        """A planned action of this flow (for its ``plan``): ``target_key`` is the written
        record's own number when it exists (a contract no), ``new_values`` the text to type.

        Raises:
            ConfigError: ``kind`` is not one of the flow's.
        """
        if kind not in self.kinds:
            raise ConfigError(f"flow '{self.name}' has no action kind '{kind}' (its kinds: {', '.join(self.kinds)})")
        return PlannedAction(kind, natural_key, dict(new_values), dict(old_values or {}), contract_no=target_key,  # type: ignore[arg-type]
                             conflict=conflict, note=note, flow=self.name)


__all__ = ["ORDERS_FLOW", "Flow", "FlowPlan"]
