"""Flows by name, which are switched on, and each one's approval policy from the settings.

The shipped flow ``orders`` comes first; then every module-level :class:`~dealerbot.flows.Flow`
in the ``bots`` package (the project folder's ``bots/`` first, as for bots: :mod:`dealerbot.running.registry`).
Discovery imports those modules when asked, never at import time.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING

from dealerbot.errors import ConfigError
from dealerbot.flows import Flow
from dealerbot.rekey.ledger import ORDERS_FLOW, Policy

if TYPE_CHECKING:
    from dealerbot.config import Settings
    from dealerbot.store import Store


def discover_flows(home: Path | None = None) -> dict[str, Flow]:
    """Every declared flow by name: ``orders``, then those of the ``bots`` modules.

    Raises:
        ConfigError: a bots/ module fails to import, or two flows share a name.
    """
    from dealerbot.flows.orders import ORDERS
    from dealerbot.running.registry import BOTS_PACKAGE, PORTALS_PACKAGE, _modules, _package

    found: dict[str, Flow] = {ORDERS.name: ORDERS}
    _package(PORTALS_PACKAGE, home)  # bots import page objects: the project's first
    for module in _modules(BOTS_PACKAGE, home):
        for value in vars(module).values():
            if isinstance(value, Flow):
                other = found.setdefault(value.name, value)
                if other is not value:
                    raise ConfigError(f"two flows are named '{value.name}' (one in {module.__name__}): rename one")
    return found


def _where(settings: Settings) -> str:
    return str(settings.source or "dealerbot.toml")


def get_flow(name: str, settings: Settings, flows: dict[str, Flow] | None = None) -> Flow:
    """The flow named ``name``.

    Raises:
        ConfigError: no such flow (lists the ones there are).
    """
    flows = flows if flows is not None else discover_flows(settings.home)
    if name in flows:
        return flows[name]
    close = difflib.get_close_matches(name, list(flows), n=1)
    hint = f"是不是 '{close[0]}'？" if close else ""
    raise ConfigError(f"没有名为 '{name}' 的流程；{hint}现有 (no flow '{name}'; available: {', '.join(flows)})")


def enabled_flows(settings: Settings, only: str | None = None, flows: dict[str, Flow] | None = None) -> list[Flow]:
    """The flows a sync runs, in ``[flows] enabled`` order (``only``: that one, switched on or not).

    Raises:
        ConfigError: ``[flows] enabled`` names a flow that is not declared, or ``[flows.<name>]``
            one that is not (the message names the file and the key), or ``only`` is unknown.
    """
    flows = flows if flows is not None else discover_flows(settings.home)
    if only is not None:
        return [get_flow(only, settings, flows)]
    for name in [*settings.flows.enabled, *settings.flows.sections()]:
        if name not in flows:
            key = "[flows] enabled" if name in settings.flows.enabled else f"[flows.{name}]"
            close = difflib.get_close_matches(name, list(flows), n=1)
            hint = f"是不是 '{close[0]}'？" if close else ""
            raise ConfigError(f"{_where(settings)}: {key}: 没有名为 '{name}' 的流程；{hint}现有 "
                              f"(no flow '{name}'; declared: {', '.join(flows)})")
    return [flows[n] for n in settings.flows.enabled]


def flow_policy(flow: Flow, settings: Settings) -> Policy:
    """Which of ``flow``'s action kinds wait for a person and which it may write, from the
    settings: ``[flows.<name>] approval_required`` / ``kinds`` over the flow's own defaults; for
    ``orders``, over ``[rekey]``'s (an existing dealerbot.toml behaves as before).

    Raises:
        ConfigError: a kind the flow does not have (names the file, the key and the known kinds).
    """
    own = settings.flows.of(flow.name)
    where = f"{_where(settings)}: [flows.{flow.name}]"
    if flow.name == ORDERS_FLOW and flow.settings_policy is not None:
        base = flow.settings_policy(settings)
        if own.approval_required is None and own.kinds is None:
            return base
        approval = own.approval_required if own.approval_required is not None else base.approval_required
        kinds = own.kinds if own.kinds is not None else base.enabled
        return Policy.of(approval, kinds, base.auto_update_fields, kinds=tuple(flow.kinds), where=where)
    default = flow.default_policy()
    approval = own.approval_required if own.approval_required is not None else default.approval_required
    kinds = own.kinds if own.kinds is not None else default.enabled
    return Policy.of(approval, kinds, (), kinds=tuple(flow.kinds), where=where)


def check_flows(settings: Settings) -> list[str]:
    """Each flow switched on, in words for ``dealerbot doctor`` (one line each).

    Raises:
        ConfigError: as :func:`enabled_flows` and :func:`flow_policy`.
    """
    flows = discover_flows(settings.home)
    lines = []
    for flow in enabled_flows(settings, flows=flows):
        policy = flow_policy(flow, settings)
        approval = "、".join(flow.kind_text(k) for k in flow.kinds if k in policy.approval_required) or "无"
        writes = "、".join(flow.kind_text(k) for k in flow.kinds if k in policy.enabled) or "无"
        lines.append(f"{flow.name}（{flow.title}）：写入 {writes}；需审核 {approval}")
    for flow in flows.values():
        flow_policy(flow, settings)  # a [flows.<name>] of a flow switched off is checked too
    return lines


def flow_counts(store: Store, flows: dict[str, Flow]) -> list[dict[str, object]]:
    """Each flow's open actions, for the console and the messages: ``name``, ``title``,
    ``waiting`` (for a person: planned or failed), ``failed``, ``approved`` (to be written);
    every flow that has any, in declaration order (unknown ones, e.g. of a flow removed since,
    last, by name)."""
    from dealerbot.rekey.ledger import OPEN_STATES

    counts: dict[str, dict[str, object]] = {}
    for a in store.actions(OPEN_STATES):
        flow = flows.get(a.flow)
        row = counts.setdefault(a.flow, {"name": a.flow, "title": flow.title if flow else a.flow,
                                         "waiting": 0, "failed": 0, "approved": 0})
        key = "waiting" if a.state in ("planned", "failed") else "approved" if a.state == "approved" else ""
        if key:
            row[key] = int(str(row[key])) + 1
        if a.state == "failed":
            row["failed"] = int(str(row["failed"])) + 1
    order = list(flows)
    return sorted(counts.values(), key=lambda r: (order.index(str(r["name"])) if r["name"] in order else len(order), str(r["name"])))
