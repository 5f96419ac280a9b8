"""The review round trip: planned DMS writes go out in the workbook's 待处理 sheet and come back
approved, skipped or edited (``dealerbot import-review``).

The 待处理 sheet has one row per action waiting for a person (planned, or failed last time):
the values that will be typed, a 审核 drop-down (同意 / 跳过 / 修改后同意), editable value
cells (green headers), and two hidden columns: the row key (the action's id) and the checksum of
what was exported. A hidden sheet ``_dealerbot`` marks the workbook as dealerbot's, from this
store. Importing checks all of it before anything is applied: a workbook that is not
dealerbot's, is damaged, or comes from another store is refused as a whole; a row whose data
changed since the export (checksum), whose edited values the DMS would refuse, or whose
decision is unclear is named with its row number; then nothing is applied unless the operator
asks to apply the valid rows only.

Every flow other than ``orders`` (:mod:`dealerbot.flows`) gets a 待处理 sheet of its own,
``待处理-<flow title>``: the same hidden row key and checksum, 审核 and 审核备注, a 流程 column,
and one editable column per value the flow types (headers from its source record type; the
column keys are kept in the marker sheet, so importing needs nothing else). Importing reads every
such sheet with 待处理; an edited value is checked by the flow's record type when the flow is
known (``flows``), and refused otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dealerbot.data import validate
from dealerbot.data.dictionary import CONTRACT_FIELDS, CUSTOMER_FIELDS, Dictionary, dms_kind
from dealerbot.data.mapping import CONTRACT_HEADERS, CUSTOMER_HEADERS, check_contract, check_customer, form_text, issues_text
from dealerbot.data.records import DMS_CUSTOMER, Entity
from dealerbot.errors import DataFileError
from dealerbot.rekey.ledger import (
    AWAITING_REVIEW,
    KIND_TEXT,
    NEW_CUSTOMER,
    OPEN_STATES,
    ORDERS_FLOW,
    REAPPROVAL,
    STATE_TEXT,
    Action,
    CustomerPlan,
)
from dealerbot.rekey.reconcile import customer_note
from dealerbot.review.untrusted import open_xlsx, xlsx_rows
from dealerbot.review.workbook import CellIssue, Column, Row, Sheet
from dealerbot.store import Store

if TYPE_CHECKING:
    from dealerbot.flows import Flow

# The contract fields a reviewer sees and may edit (the OEM order no is the row's own key).
REVIEWED_FIELDS = tuple(f for f in CONTRACT_FIELDS if f != "oem_order_no")
PENDING_TITLE = "待处理"
FLOW_PENDING_PREFIX = "待处理-"  # + a flow's title: the 待处理 sheet of a flow other than orders
FLOW_COLUMNS_MARKER = "columns:"  # + a flow's sheet title: the keys of its columns, in the marker sheet
UNRESOLVED_TITLE = "无法处理"
WRITTEN_TITLE = "写入结果"
MARKER_TITLE = "_dealerbot"
MARKER_FORMAT = "dealerbot-review"
MARKER_VERSION = "2"  # 2: 审核 and 厂家订单号 leftmost (frozen), the 提示 column
APPROVE, SKIP, APPROVE_EDITED = "同意", "跳过", "修改后同意"
DECISIONS = (APPROVE, SKIP, APPROVE_EDITED)
DECISION_PROMPT = (f"请选择：{APPROVE}（按本行写入DMS）/ {SKIP}（本次不写入）/ {APPROVE_EDITED}（先改绿色表头的列，"
                   f"再选此项）。留空 = 以后再审核")
# The 提示 column: a row that needs a person's judgement (the customer is not settled, a conflict,
# the last write failed, an approval voided by a change) and a routine one. Not 待审核 (every row
# of 待处理 is that: the 状态 column) nor 需核对 (a value to check: the 校验结果 column).
NEEDS_THOUGHT, ROUTINE = "需判断", "常规"

_FIELD_COLUMNS = (
    *(Column(f, CUSTOMER_HEADERS[f], width=w, editable=True) for f, w in
      (("name", 10), ("mobile", 13), ("id_number", 20), ("address", 18))),
    *(Column(f, CONTRACT_HEADERS[f], dms_kind(f), width=w, editable=True) for f, w in (
        ("model_code", 12), ("color", 8), ("vin", 20), ("price", 12), ("deposit", 10), ("delivery_date", 12),
        ("status", 9),
    )),
)
PENDING_COLUMNS = (
    Column("_key", "行键", "int", width=6, hidden=True),
    Column("_checksum", "校验和", width=8, hidden=True),
    Column("_decision", "审核", width=11, choices=DECISIONS, editable=True, prompt=DECISION_PROMPT),
    Column("_order_no", "厂家订单号", width=15),
    Column("_attention", "提示", width=8),
    Column("_review_note", "审核备注", width=12, editable=True),
    Column("_kind", "操作", width=9),
    Column("_state", "状态", width=9),
    Column("_contract_no", "合同号", width=14),
    Column("customer_no", "客户编号", width=11, editable=True),
    *_FIELD_COLUMNS,
    Column("_changes", "变更", width=24),
)
PENDING_HEADERS = tuple(c.header for c in PENDING_COLUMNS)
PENDING_FROZEN = 4  # the hidden row key and checksum, 审核 and 厂家订单号 stay in view
# Each marker version's 待处理 columns, by key: a workbook exported before an upgrade still imports.
_LAYOUTS = {
    "1": ("_key", "_checksum", "_decision", "_review_note", "_kind", "_state", "_order_no", "_contract_no", "customer_no",
          *(c.key for c in _FIELD_COLUMNS), "_changes"),
    MARKER_VERSION: tuple(c.key for c in PENDING_COLUMNS),
}


def _cell_value(field: str, text: str) -> Any:
    """Form text as a typed cell value (numbers and dates stay numbers and dates in Excel)."""
    if not text:
        return None
    kind = dms_kind(field) if field in CONTRACT_FIELDS else "text"
    if kind == "decimal":
        return Decimal(text)
    if kind == "date":
        return date.fromisoformat(text)
    return text


def _customer_cells(action: Action, dms_customers: dict[str, dict[str, Any]]) -> dict[str, str]:
    plan = action.customer
    if plan.mode == "existing":
        c = dms_customers.get(plan.customer_no) or {}
        return {"customer_no": plan.customer_no, **{f: form_text(c.get(f)) for f in CUSTOMER_FIELDS}}
    if plan.mode == "new":
        return {"customer_no": NEW_CUSTOMER, **plan.values}
    if plan.mode == "ambiguous":
        return {"customer_no": "", **plan.values}
    return {"customer_no": "", **dict.fromkeys(CUSTOMER_FIELDS, "")}


def exported_values(action: Action, dms_customers: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The value cells of an action's row, as form text (what import compares against)."""
    cells = _customer_cells(action, dms_customers) if action.kind == "create_contract" else \
        {"customer_no": action.old_values.get("customer_no", ""), **dict.fromkeys(CUSTOMER_FIELDS, "")}
    return {**cells, **{f: action.new_values.get(f, "") for f in REVIEWED_FIELDS}}


# 无法处理: what to do about an order that cannot be written, in the order the sheet lists them.
REMEDY_CONFLICT = "人工核对：两边数据冲突，在DMS中核对处理"
REMEDY_DICTIONARY = "请管理员：在字典中补充代码"
REMEDY_OEM_CUSTOMERS = "请操作员：先读取厂家客户"
REMEDY_OEM_DATA = "请厂家更正数据（更正后自动重试）"
REMEDY_NONE = "无需处理：客户未授权，依法不录入"
REMEDIES = (REMEDY_CONFLICT, REMEDY_DICTIONARY, REMEDY_OEM_CUSTOMERS, REMEDY_OEM_DATA, REMEDY_NONE)


def remedy(reconcile_class: str, reason: str) -> str:
    """Who does what about an order reconciliation could not plan (``reconcile_class`` conflict or
    rejected), from its reason as :mod:`dealerbot.rekey.reconcile` and the data steps word it:
    nothing for a customer who did not consent (the law), the administrator for a code missing
    from dictionary.yaml (:func:`dealerbot.data.mapping.contract_values`), the operator when the
    OEM customers were not read, the OEM for data the checks refuse (a VIN's check digit, an ID
    number, a mobile the DMS cannot file...), a person for a conflict."""
    if reconcile_class == "conflict":
        return REMEDY_CONFLICT
    if "个人信息保护法" in reason:
        return REMEDY_NONE
    if "未映射的" in reason:
        return REMEDY_DICTIONARY
    if "先运行 oem-customers" in reason:
        return REMEDY_OEM_CUSTOMERS
    return REMEDY_OEM_DATA


def needs_thought(action: Action) -> bool:
    """Whether approving the action takes more than a look: its customer is not settled (客户编号
    empty), it is a conflict, its last write failed, or a person's approval was voided by a change."""
    return (action.kind == "create_contract" and action.customer.mode in ("ambiguous", "none")) or action.conflict \
        or action.state == "failed" or action.note.startswith(REAPPROVAL)


def _pending_rows(actions: list[Action], dms_customers: dict[str, dict[str, Any]]) -> Iterator[Row]:
    for a in actions:
        values = exported_values(a, dms_customers)
        cells: dict[str, CellIssue] = {}
        notes: list[CellIssue] = []
        remarks: list[str] = []
        hard = needs_thought(a)
        for f, (old, new) in a.changes.items():
            if a.kind != "create_contract" and f in CONTRACT_HEADERS:
                cells[f] = CellIssue("flag", f"{CONTRACT_HEADERS[f]} 原为「{old or '空'}」")
        if a.customer.mode == "ambiguous":
            cells["customer_no"] = CellIssue("flag", f"客户匹配不唯一：{'、'.join(a.customer.candidates)}")
        if a.state == "failed":
            notes.append(CellIssue("reject", f"上次写入失败：{a.failure_reason}"))
        if a.conflict:
            notes.append(CellIssue("reject", f"冲突：{a.note}"))
        elif a.note and a.needs_approval and not hard:
            remarks.append(a.note)  # e.g. which customer: information, not a value to check (a routine row)
        elif a.note:
            notes.append(CellIssue("flag" if a.needs_approval else "repaired", a.note))
        changes = "；".join(
            f"{CONTRACT_HEADERS.get(f, f)} {old or '空'}→{new or '空'}" for f, (old, new) in a.changes.items()
        ) if a.kind != "create_contract" else "新建"
        row = {
            "_key": a.id, "_checksum": a.stored_checksum, "_decision": None, "_review_note": None,
            "_kind": KIND_TEXT.get(a.kind, a.kind), "_state": STATE_TEXT[a.state], "_order_no": a.natural_key,
            "_contract_no": a.contract_no or None, "_changes": changes,
            "_attention": NEEDS_THOUGHT if hard else ROUTINE,
            **{k: _cell_value(k, v) for k, v in values.items()},
        }
        yield Row(row, cells, notes, attention=hard, notes=remarks)


def reapprovals(store: Store) -> list[Action]:
    """Actions waiting for a person that replaced one a person had approved (the plan changed
    under it): their note says so and why (:mod:`dealerbot.rekey.reconcile`)."""
    return [a for a in store.actions(AWAITING_REVIEW) if a.note.startswith(REAPPROVAL)]  # every flow's


def review_sheets(
    store: Store, max_rows: int = 50_000, console: bool = False, flows: Mapping[str, Flow] | None = None,
) -> tuple[list[Sheet], list[tuple[str, Any]]]:
    """The sheets a review workbook gains from the ledger, and lines for its 概要.

    待处理 (actions waiting for a person), 无法处理 (orders that cannot be written: rejected
    with the reason, or a conflict no write settles), 写入结果 (what the latest re-key run did),
    and the hidden marker sheet; a 待处理 sheet per other flow with actions waiting (``flows``
    gives their titles and headers). Nothing when no flow was ever planned (a store that only reads).
    With ``console``, the 概要 says to upload it in the console rather than the CLI command.
    """
    flow_sheets, flow_lines, markers = _flow_pending_sheets(store, flows or {}, max_rows)
    if not store.has_plan():
        if not flow_sheets:
            return [], []
        return [*flow_sheets, _marker_sheet(store, markers)], flow_lines
    pending = store.actions(AWAITING_REVIEW, flow=ORDERS_FLOW)[:max_rows]
    dms_customers = {c["customer_no"]: c for c in store.iter_records(DMS_CUSTOMER)}
    for c in store.created_customers():
        dms_customers.setdefault(c["customer_no"], c)
    sync = store.sync_state()
    open_keys = {a.natural_key for a in store.actions(OPEN_STATES, flow=ORDERS_FLOW)}
    unresolved = [r for r in sync.values() if r["reconcile_class"] in ("rejected", "conflict") and r["oem_order_no"] not in open_keys]
    last_run = next(iter(store.runs(limit=1, bot="dms-rekey")), None)
    written = store.actions(run_id=last_run.run_id) if last_run else []
    remedies = {r["oem_order_no"]: remedy(r["reconcile_class"], r["reason"]) for r in unresolved}
    unresolved.sort(key=lambda r: (REMEDIES.index(remedies[r["oem_order_no"]]), r["oem_order_no"]))
    sheets = [
        Sheet(PENDING_TITLE, PENDING_COLUMNS, _pending_rows(pending, dms_customers), frozen_columns=PENDING_FROZEN),
        Sheet(UNRESOLVED_TITLE, (
            Column("oem_order_no", "厂家订单号", width=15), Column("remedy", "处理方式", width=34),
            Column("reconcile_class", "分类", width=8), Column("contract_no", "合同号", width=14), Column("reason", "原因", width=70),
        ), (Row({"oem_order_no": r["oem_order_no"], "remedy": remedies[r["oem_order_no"]],
                 "reconcile_class": "冲突" if r["reconcile_class"] == "conflict" else "拒绝", "contract_no": r["contract_no"], "reason": r["reason"]},
                {"reason": CellIssue("reject" if r["reconcile_class"] == "rejected" else "flag", r["reason"])},
                attention=remedies[r["oem_order_no"]] != REMEDY_NONE)
            for r in unresolved), frozen_columns=1),
        Sheet(WRITTEN_TITLE, (
            Column("natural_key", "厂家订单号", width=15), Column("kind", "操作", width=9),
            Column("state", "结果", width=12), Column("contract_no", "合同号", width=14),
            Column("customer_no", "客户编号", width=11), Column("reason", "说明", width=60),
        ), (Row({"natural_key": a.natural_key, "kind": KIND_TEXT.get(a.kind, a.kind), "state": STATE_TEXT[a.state],
                 "contract_no": a.contract_no or None,
                 "customer_no": a.result_customer_no or a.customer.customer_no or None,
                 "reason": a.failure_reason},
                {"state": CellIssue("reject", a.failure_reason or "")} if a.state == "failed" else {})
            for a in written), frozen_columns=1),
        *flow_sheets,
        _marker_sheet(store, markers),
    ]
    summary: list[tuple[str, Any]] = [
        ("待审核操作", f"{len(pending)} 条（见“{PENDING_TITLE}”表：在“审核”列选择 同意 / 跳过 / 修改后同意，"
                    f"保存后{'在控制台“审核”页上传' if console else '运行 dealerbot import-review 文件名'}）"),
        ("其中需判断", f"{sum(1 for a in pending if needs_thought(a))} 条（“提示”列为“{NEEDS_THOUGHT}”、整行浅蓝色："
                    f"客户未确定、冲突、上次写入失败或原审核已作废，请先看“问题说明”）"),
        ("无法处理", f"{len(unresolved)} 条（见“{UNRESOLVED_TITLE}”表，按处理方式排列）"
                 + "".join(f"；{m} {n} 条" for m in REMEDIES if (n := sum(1 for v in remedies.values() if v == m)))),
    ]
    again = sum(1 for a in pending if a.note.startswith(REAPPROVAL))
    if again:
        summary.insert(1, ("原已审核、需重新审核", f"{again} 条：计划在审核后有变化，原审核已作废（原因见“{PENDING_TITLE}”表的“问题说明”）"))
    if last_run is not None:
        summary.append(("最近一次写入", f"{last_run.run_id}：{len(written)} 条（见“{WRITTEN_TITLE}”表）"))
    return sheets, summary + flow_lines


def _marker_sheet(store: Store, markers: list[tuple[str, str]]) -> Sheet:
    rows = [("format", MARKER_FORMAT), ("version", MARKER_VERSION), ("store_id", store.store_id()),
            ("exported_at", datetime.now().isoformat(timespec="seconds")), *markers]
    return Sheet(MARKER_TITLE, (Column("key", "key"), Column("value", "value")),
                 iter([Row({"key": k, "value": v}) for k, v in rows]), hidden=True)


ATTENTION_PREFIX = "需人工-"  # a flow's sheet of what waits for a person besides approvals (never imported)


def _flow_base_columns() -> tuple[Column, ...]:
    return (
        Column("_key", "行键", "int", width=6, hidden=True),
        Column("_checksum", "校验和", width=8, hidden=True),
        Column("_decision", "审核", width=11, choices=DECISIONS, editable=True, prompt=DECISION_PROMPT),
        Column("_order_no", "记录键", width=18),
        Column("_flow", "流程", width=10),
        Column("_review_note", "审核备注", width=12, editable=True),
        Column("_kind", "操作", width=9),
        Column("_state", "状态", width=9),
    )


def _flow_pending_sheets(
    store: Store, flows: Mapping[str, Flow], max_rows: int,
) -> tuple[list[Sheet], list[tuple[str, Any]], list[tuple[str, str]]]:
    """The 待处理 sheet of each flow other than orders with actions waiting for a person, the
    概要's lines for them, and the marker rows naming each sheet's columns."""
    waiting: dict[str, list[Action]] = {}
    for a in store.actions(AWAITING_REVIEW):
        if a.flow != ORDERS_FLOW:
            waiting.setdefault(a.flow, []).append(a)
    sheets: list[Sheet] = []
    lines: list[tuple[str, Any]] = []
    markers: list[tuple[str, str]] = []
    for name, actions in sorted(waiting.items()):
        flow = flows.get(name)
        title = f"{FLOW_PENDING_PREFIX}{flow.title if flow else name}"[:31]
        fields = list(dict.fromkeys(f for a in actions for f in a.new_values))
        headers = {f.name: f.header for f in flow.target.fields} if flow and flow.target else {}
        headers.update({f.name: f.header for f in flow.source.fields} if flow else {})  # the source's words first
        columns = (*_flow_base_columns(), *(Column(f, headers.get(f, f), width=14, editable=True) for f in fields),
                   Column("_changes", "变更", width=24))
        rows = _flow_rows(actions[:max_rows], name, flow, fields, headers)
        sheets.append(Sheet(title, columns, rows, frozen_columns=4))
        markers.append((f"{FLOW_COLUMNS_MARKER}{title}", ",".join(c.key for c in columns)))
        lines.append((f"待审核（{flow.title if flow else name}）", f"{len(actions)} 条（见“{title}”表）"))
    for flow in flows.values():
        listed = flow.attention(store) if flow.attention is not None else []
        if listed:
            title = f"{ATTENTION_PREFIX}{flow.title}"[:31]
            sheets.append(Sheet(title, (Column("key", "记录键", width=18), Column("why", "说明", width=80)),
                                (Row({"key": k, "why": why}, {"why": CellIssue("flag", why)}, attention=True) for k, why in listed),
                                frozen_columns=1))
            lines.append((f"需人工处理（{flow.title}）", f"{len(listed)} 条（见“{title}”表）"))
    return sheets, lines, markers


def _flow_rows(actions: list[Action], name: str, flow: Flow | None, fields: list[str], headers: dict[str, str]) -> Iterator[Row]:
    """The rows of one flow's 待处理 sheet (streamed: bound here, not to the caller's loop)."""
    for a in actions:
        yield Row({
            "_key": a.id, "_checksum": a.stored_checksum, "_decision": None, "_review_note": None, "_order_no": a.natural_key,
            "_flow": name, "_kind": flow.kind_text(a.kind) if flow else a.kind, "_state": STATE_TEXT[a.state],
            "_changes": "；".join(f"{headers.get(f, f)} {o or '空'}→{n or '空'}" for f, (o, n) in a.changes.items())
            if a.old_values else "新建",
            **{f: a.new_values.get(f) or None for f in fields},
        }, {}, [CellIssue("reject", f"上次写入失败：{a.failure_reason}")] if a.state == "failed" else
            ([CellIssue("flag", a.note)] if a.note else []), attention=a.state == "failed")


# -- import ---------------------------------------------------------------------------------------


@dataclass
class ReviewImport:
    """What an imported workbook holds: decisions ready for the store, and its problems."""

    decisions: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    undecided: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {"approve": 0, "approve_edited": 0, "skip": 0})


def read_review(path: Path, store: Store, dictionary: Dictionary | None, flows: Mapping[str, Flow] | None = None) -> ReviewImport:
    """Read a reviewed workbook and check every row against the store and the DMS's rules.

    Raises:
        DataFileError: the file is not a readable workbook (another format, damaged, too large
            once unpacked, XML entities: see :func:`dealerbot.review.untrusted.check_xlsx`), not
            dealerbot's, from another store, or its 待处理 sheet's layout was changed (nothing can
            be read from it).
    """
    wb = open_xlsx(path)
    try:
        flow_titles = [t for t in wb.sheetnames if t.startswith(FLOW_PENDING_PREFIX)]
        if MARKER_TITLE not in wb.sheetnames or (PENDING_TITLE not in wb.sheetnames and not flow_titles):
            raise DataFileError(f"{path}: 这不是 dealerbot 导出的审核工作簿（缺少“{PENDING_TITLE}”表或标记）"
                                f" (not a dealerbot review workbook)")
        marker = {str(r[0]): str(r[1]) for r in xlsx_rows(path, wb[MARKER_TITLE], min_row=2) if r and r[0]}
        if marker.get("format") != MARKER_FORMAT or marker.get("version") not in _LAYOUTS:
            raise DataFileError(f"{path}: 这不是 dealerbot 导出的审核工作簿（标记不符） (not a dealerbot review workbook)")
        if marker.get("store_id") != store.store_id():
            raise DataFileError(f"{path}: 这个工作簿来自另一个 dealerbot 数据库，不能导入到这里"
                                f" (exported from another store)")
        result = ReviewImport()
        for title in flow_titles:
            _read_flow_sheet(path, wb[title], title, marker, store, flows or {}, result)
        if PENDING_TITLE not in wb.sheetnames:
            return result
        assert dictionary is not None, "the orders flow's 待处理 needs the dictionary"
        rows = xlsx_rows(path, wb[PENDING_TITLE])
        header = tuple(next(rows, ()) or ())
        layout = _LAYOUTS[marker["version"]]
        headers = {c.key: c.header for c in PENDING_COLUMNS}
        expected = (*(headers[k] for k in layout), "校验结果", "问题说明")
        for i, want in enumerate(expected):
            got = header[i] if i < len(header) else None
            if got != want:
                from openpyxl.utils import get_column_letter

                raise DataFileError(f"{path}: “{PENDING_TITLE}”表的表头被改动：{get_column_letter(i + 1)} 列应为“{want}”，"
                                    f"实为“{got or '空'}” (the sheet's layout changed)")
        dms_customers = {c["customer_no"]: c for c in store.iter_records(DMS_CUSTOMER)}
        for c in store.created_customers():
            dms_customers.setdefault(c["customer_no"], c)
        for row_number, raw in enumerate(rows, start=2):
            cells = dict(zip(layout, raw, strict=False))
            if all(v in (None, "") for v in cells.values()):
                continue
            _read_row(path, row_number, cells, store, dictionary, dms_customers, result)
        return result
    finally:
        wb.close()


def _read_row(
    path: Path, row_number: int, cells: dict[str, Any], store: Store, dictionary: Dictionary,
    dms_customers: dict[str, dict[str, Any]], result: ReviewImport,
) -> None:
    order = str(cells.get("_order_no") or "?")
    where = f"{PENDING_TITLE}表第 {row_number} 行（订单 {order}）"
    decision = str(cells.get("_decision") or "").strip()
    if not decision:
        result.undecided += 1
        return
    if decision not in DECISIONS:
        result.problems.append(f"{where}：审核应为 {' / '.join(DECISIONS)}，实为「{decision}」")
        return
    try:
        key = int(cells["_key"])
    except (KeyError, TypeError, ValueError):
        result.problems.append(f"{where}：隐藏的行键缺失或被修改，无法对应到操作")
        return
    action = store.action(key)
    if action is None or action.natural_key != cells.get("_order_no"):
        result.problems.append(f"{where}：行键 {key} 不对应这个订单（行键被修改？）")
        return
    if action.stored_checksum != str(cells.get("_checksum") or "") or action.state not in AWAITING_REVIEW:
        result.problems.append(f"{where}：导出后数据已变化或已处理（{STATE_TEXT[action.state]}），请重新导出后再审核")
        return
    decision_entry: dict[str, Any] = {"id": action.id, "checksum": action.stored_checksum,
                                      "note": str(cells.get("_review_note") or "").strip() or None}
    if decision == SKIP:
        result.decisions.append({**decision_entry, "decision": "skip"})
        result.counts["skip"] += 1
        return
    exported = exported_values(action, dms_customers)
    try:
        now = {k: _cell_text(k, cells.get(k)) for k in exported}
    except ValueError as exc:
        result.problems.append(f"{where}：{exc}")
        return
    edited = {k for k in exported if now[k] != exported[k]}
    creating = action.kind == "create_contract"
    if creating and now["customer_no"] not in ("", NEW_CUSTOMER) and edited & set(CUSTOMER_FIELDS):
        result.problems.append(f"{where}：现有客户 {now['customer_no']} 的资料不在这里修改（DMS中的客户档案不会被改写）；"
                               f"请恢复原值，或在“客户编号”填“新建”以新建客户")
        return
    if decision == APPROVE and edited:
        names = "、".join(_header(k) for k in sorted(edited))
        result.problems.append(f"{where}：改动了 {names}，但审核选的是“同意”；请改选“修改后同意”，或恢复原值")
        return
    if creating and not now["customer_no"]:
        result.problems.append(f"{where}：客户未确定，请在“客户编号”列填写客户编号（如 "
                               f"{'、'.join(action.customer.candidates) or 'KH000001'}）或“新建”，并选择“修改后同意”")
        return
    if not edited:
        result.decisions.append({**decision_entry, "decision": "approve"})
        result.counts["approve"] += 1
        return
    problems = _check_edit(action, now, edited, dictionary, dms_customers)
    if problems:
        result.problems.append(f"{where}：{problems}")
        return
    new_values = {**action.new_values, **{f: now[f] for f in REVIEWED_FIELDS}}
    customer = action.customer
    if creating:
        if now["customer_no"] == NEW_CUSTOMER:
            customer = CustomerPlan("new", values={f: now[f] for f in CUSTOMER_FIELDS})
        else:
            customer = CustomerPlan("existing", now["customer_no"])
    result.decisions.append({**decision_entry, "decision": "approve", "new_values": new_values, "customer": customer,
                             "plan_note": customer_note(customer) if creating else action.note})
    result.counts["approve_edited"] += 1


def _read_flow_sheet(
    path: Path, sheet: Any, title: str, marker: dict[str, str], store: Store, flows: Mapping[str, Flow],
    result: ReviewImport,
) -> None:
    """The decisions of one flow's 待处理 sheet (see the module docstring), into ``result``.

    Raises:
        DataFileError: the sheet's columns are not those exported (the marker names them).
    """
    from dealerbot.data.pipeline import pipeline_for
    from dealerbot.data.records import Item
    from dealerbot.errors import RecordRejected

    keys = [k for k in marker.get(f"{FLOW_COLUMNS_MARKER}{title}", "").split(",") if k]
    if not keys:
        raise DataFileError(f"{path}: “{title}”表不是导出时的样子（标记中没有它的列） (unknown sheet layout)")
    rows = xlsx_rows(path, sheet)
    header = tuple(next(rows, ()) or ())
    if len(header) < len(keys) or header[keys.index("_decision")] != "审核" or header[keys.index("_order_no")] != "记录键":
        raise DataFileError(f"{path}: “{title}”表的表头被改动 (the sheet's layout changed)")
    value_keys = [k for k in keys if not k.startswith("_")]
    for row_number, raw in enumerate(rows, start=2):
        cells = dict(zip(keys, raw, strict=False))
        if all(v in (None, "") for v in cells.values()):
            continue
        key_text = str(cells.get("_order_no") or "?")
        where = f"{title}表第 {row_number} 行（{key_text}）"
        decision = str(cells.get("_decision") or "").strip()
        if not decision:
            result.undecided += 1
            continue
        if decision not in DECISIONS:
            result.problems.append(f"{where}：审核应为 {' / '.join(DECISIONS)}，实为「{decision}」")
            continue
        try:
            action = store.action(int(cells["_key"]))
        except (KeyError, TypeError, ValueError):
            result.problems.append(f"{where}：隐藏的行键缺失或被修改，无法对应到操作")
            continue
        if action is None or action.natural_key != cells.get("_order_no") or action.flow != cells.get("_flow"):
            result.problems.append(f"{where}：行键不对应这条记录（行键被修改？）")
            continue
        if action.stored_checksum != str(cells.get("_checksum") or "") or action.state not in AWAITING_REVIEW:
            result.problems.append(f"{where}：导出后数据已变化或已处理（{STATE_TEXT[action.state]}），请重新导出后再审核")
            continue
        entry: dict[str, Any] = {"id": action.id, "checksum": action.stored_checksum,
                                 "note": str(cells.get("_review_note") or "").strip() or None}
        if decision == SKIP:
            result.decisions.append({**entry, "decision": "skip"})
            result.counts["skip"] += 1
            continue
        now = {k: form_text(cells.get(k)) for k in value_keys if k in action.new_values}
        edited = {k for k, v in now.items() if v != action.new_values.get(k, "")}
        if decision == APPROVE and edited:
            result.problems.append(f"{where}：改动了 {'、'.join(sorted(edited))}，但审核选的是“同意”；请改选“修改后同意”，或恢复原值")
            continue
        if not edited:
            result.decisions.append({**entry, "decision": "approve"})
            result.counts["approve"] += 1
            continue
        flow = flows.get(action.flow)
        if flow is None:
            result.problems.append(f"{where}：流程 {action.flow} 未找到，无法校验修改后的值；请恢复原值")
            continue
        new_values = {**action.new_values, **now}
        checked, record = _typed_part(flow, action.natural_key, new_values)
        try:
            pipeline_for(checked).process(Item(checked, record))
        except RecordRejected as rej:
            result.problems.append(f"{where}：{rej.reason}")
            continue
        result.decisions.append({**entry, "decision": "approve", "new_values": new_values, "customer": action.customer,
                                 "plan_note": action.note})
        result.counts["approve_edited"] += 1


def _typed_part(flow: Flow, key: str, values: dict[str, str]) -> tuple[Entity, dict[str, Any]]:
    """What an edited row is checked as: the flow's source record type when the action types all
    of its required fields, else only the fields it types (and the key): a follow-up logged into
    another portal types a few of the DMS record's fields, never its own numbers."""
    source = flow.source
    needed = {source.key, *(f.name for f in source.fields if f.required)}
    if needed <= set(values):
        return source, {f: values.get(f) for f in source.field_names}
    part = dataclasses.replace(source, fields=tuple(f for f in source.fields if f.name in values or f.name == source.key),
                               change_field=None)
    return part, {**{f: values.get(f) for f in part.field_names}, source.key: key}


def _cell_text(key: str, value: Any) -> str:
    """A reviewed cell as form text; a mobile or ID number written as people do is normalised
    the way scraped ones are (``138 1234 5678`` → ``13812345678``).

    Raises:
        ValueError: a money or date cell that cannot be read.
    """
    text = form_text(value, dms_kind(key) if key in CONTRACT_FIELDS else "text")
    if key == "mobile" and text:
        checked = validate.normalize_mobile(text)
        return checked.value if checked.issue is None or checked.issue.severity == "repaired" else text
    if key == "id_number":
        return validate.to_halfwidth(text).strip().upper()
    if key == "vin":
        return validate.to_halfwidth(text).replace(" ", "").upper()
    return text


def _header(key: str) -> str:
    return CONTRACT_HEADERS.get(key) or CUSTOMER_HEADERS.get(key) or key


def _check_edit(action: Action, now: dict[str, str], edited: set[str], dictionary: Dictionary,
                dms_customers: dict[str, dict[str, Any]]) -> str:
    """What is wrong with a row's edited values ('' when nothing)."""
    if action.kind != "create_contract" and edited & {"customer_no", *CUSTOMER_FIELDS}:
        return "更新合同时不能修改客户"
    issues = check_contract({**action.new_values, **{f: now[f] for f in REVIEWED_FIELDS}}, dictionary)
    if action.kind == "create_contract":
        no = now["customer_no"]
        if no == NEW_CUSTOMER:
            issues += check_customer({f: now[f] for f in CUSTOMER_FIELDS})
        elif not no:
            return "请在“客户编号”列填写DMS客户编号，或填“新建”"
        elif no not in dms_customers:
            return f"客户编号 {no} 不在DMS客户中（先运行 dms-customers，或填“新建”）"
    return issues_text(issues)


def apply_review(store: Store, review: ReviewImport, actor: str) -> None:
    """Apply the decisions in one transaction.

    Raises:
        DataFileError: the data changed while the workbook was being read (nothing applied).
    """
    stale = store.review(review.decisions, actor)
    if stale:
        raise DataFileError(f"操作 {', '.join(map(str, stale))} 在导入过程中被修改，未导入任何内容；请重新导出")
