"""The review workbook: what the store holds for some runs, as staff read it in Excel."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from dealerbot.data.pipeline import typed
from dealerbot.data.records import ENTITIES, Entity, Item
from dealerbot.errors import ConfigError
from dealerbot.review.workbook import CellIssue, Column, Row, Sheet, WorkbookStats, write_workbook
from dealerbot.status_text import COUNT_TEXT, STATUS_TEXT
from dealerbot.store import RunRecord, Store


def _issues(raw: str | None) -> tuple[dict[str, CellIssue], list[CellIssue]]:
    cells: dict[str, CellIssue] = {}
    row: list[CellIssue] = []
    for i in json.loads(raw or "[]"):
        issue = CellIssue(i["severity"], i["message"])
        if i.get("field"):
            # Two issues on one cell: keep the worse one on the cell, both in the reasons.
            if i["field"] in cells:
                row.append(issue)
            else:
                cells[i["field"]] = issue
        else:
            row.append(issue)
    return cells, row


def _rows(store: Store, entity: Entity, run_id: str, all_records: bool) -> Iterator[Row]:
    rejects: Iterable[dict[str, Any]]
    if all_records:
        rejects = list(store.iter_open_rejects(entity))  # few: records still waiting for a fix
        superseded = {r["record_key"] for r in rejects}
    else:
        rejects, superseded = store.iter_rejects(run_id, entity), set()
    for rec in store.iter_records(entity, None if all_records else run_id):
        if rec[entity.key] in superseded:
            continue  # rejected since it was stored: the reject below is the current state
        cells, row_issues = _issues(rec.get("issues"))
        yield Row({f: rec.get(f) for f in entity.field_names}, cells, row_issues)
    convert = typed(entity)
    for rej in rejects:
        raw = json.loads(rej["raw"])
        cells, row_issues = _issues(rej.get("issues"))
        if not cells and not row_issues:
            row_issues = [CellIssue("reject", rej["reason"])]
        # A rejected record is shown as scraped, with numbers and dates typed where they read.
        values = convert(Item(entity, {f: raw.get(f) for f in entity.field_names})).data
        yield Row(values, cells, row_issues)


def _scope(run: RunRecord, all_records: bool, console: bool = False) -> str:
    if all_records:
        return "库中全部记录，以及所有尚未更正的被拒记录"
    if run.status != "succeeded":
        how = "在控制台“今日”页下载“全部记录”工作簿" if console else "用 dealerbot export --all 导出"
        return f"本次运行未成功：仅含失败前读取的记录；完整数据请{how}"
    since = run.options.get("since")
    if since:
        return f"本次运行读取的记录：自 {since.replace('T', ' ')} 以来有变化的（增量）"
    return "本次运行读取的全部记录"


def latest_runs(store: Store) -> list[RunRecord]:
    """The newest finished run of each bot (what a daily review covers)."""
    seen: dict[str, RunRecord] = {}
    for run in store.runs(limit=500):
        if run.status != "running" and run.bot not in seen:
            seen[run.bot] = run
    return sorted(seen.values(), key=lambda r: r.started_at)


LEGEND = ("红色 = 已拒绝（未入库，原因见“问题说明”）；黄色 = 需核对（数值可疑，请看一眼）；绿色 = 已自动修正；无色 = 通过；"
          "浅蓝色整行 = 需判断（不只是看一眼就能同意的行）")


def export_runs(
    store: Store, runs: Sequence[RunRecord], path: Path, bot_records: dict[str, tuple[Entity, ...]],
    all_records: bool = False, review: bool = True, console: bool = False, titles: Mapping[str, str] | None = None,
    flows: Mapping[str, Any] | None = None,
) -> WorkbookStats:
    """Write the review workbook for ``runs`` to ``path`` (atomically).

    ``bot_records`` maps bot names to the record types they emit (the caller asks the bot
    registry: :func:`dealerbot.running.registry.entity_of_bots`).
    Each run gives a sheet per record type: the records it read (or, with ``all_records``, every
    record in the store) and the records it rejected. With ``review``, the re-key sheets follow
    (待处理 for approval, 无法处理, 写入结果; see :mod:`dealerbot.review.sheets`). With
    ``console`` (a workbook the console hands out) its notes name the console's way of doing
    things, not CLI commands, and no folder of the server. ``flows``: the declared flows by name
    (:func:`dealerbot.flows.registry.discover_flows`: each other flow's 待处理 sheet gets its
    title and headers). ``titles``: what operators call the
    bots (by name; 概要 names a bot by its title when it has one).

    Raises:
        ConfigError: nothing to export (no runs), or an unknown bot without an entity.
        ValueError: ``path`` does not end in .xlsx.
    """
    if not runs:
        raise ConfigError("no runs to export yet: run a bot first (`dealerbot run oem-orders`)")
    summary: list[tuple[str, Any]] = [("导出时间", datetime.now().replace(microsecond=0)), ("颜色说明", LEGEND)]
    sheets: list[Sheet] = []
    order = list(ENTITIES)

    def rank(run: RunRecord) -> tuple[int, datetime]:
        first = (bot_records.get(run.bot) or (None,))[0]
        return (order.index(first.name) if first is not None and first.name in order else len(order), run.started_at)

    runs = sorted(runs, key=rank)
    for run in runs:
        if run.bot not in bot_records:
            raise ConfigError(f"run {run.run_id}: bot '{run.bot}' is unknown, cannot export it")
        counts = "，".join(f"{COUNT_TEXT.get(k, k)} {v}" for k, v in run.counts.items() if v and k in COUNT_TEXT)
        summary += [
            ("机器人", (titles or {}).get(run.bot) or run.bot),
            ("运行编号", run.run_id),
            ("开始时间", run.started_at.replace(microsecond=0)),
            ("结束时间", run.ended_at.replace(microsecond=0) if run.ended_at else None),
            ("状态", STATUS_TEXT.get(run.status, run.status)),
            ("范围", _scope(run, all_records, console)),
            ("统计", counts or "无"),
        ]
        if run.error:
            summary.append(("错误", run.error))
        if run.evidence_dir:  # the console shows the evidence on the run's page: no server folder in its workbooks
            summary.append(("失败证据", "见控制台中这次运行的页面" if console else run.evidence_dir))
        # A bot that only writes has no record sheet: its actions are on 待处理 / 写入结果.
        for entity in bot_records[run.bot]:
            columns = [Column(f.name, f.header, f.kind, f.width) for f in entity.fields]
            shared = sum(1 for r in runs if entity in bot_records.get(r.bot, ())) > 1
            title = f"{entity.title}-{run.run_id[-4:]}" if shared else entity.title
            sheets.append(Sheet(title, columns, _rows(store, entity, run.run_id, all_records), frozen_columns=1))
    if review:
        from dealerbot.review.sheets import review_sheets

        extra, lines = review_sheets(store, console=console, flows=flows)
        sheets = extra[:1] + sheets + extra[1:]  # 待处理 first: what staff act on
        summary[2:2] = lines
    return write_workbook(path, summary, sheets)


def default_workbook_path(out_dir: Path, runs: Sequence[RunRecord], now: datetime | None = None) -> Path:
    """A new file named after the export, e.g. ``out/review-20261125-083015.xlsx``: never one
    that exists (staff may be filling it in)."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    path, n = out_dir / f"review-{stamp}.xlsx", 1
    while path.exists():
        n += 1
        path = out_dir / f"review-{stamp}-{n}.xlsx"
    return path


__all__ = ["ENTITIES", "default_workbook_path", "export_runs", "latest_runs"]
