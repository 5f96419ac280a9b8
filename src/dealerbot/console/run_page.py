"""A run's page in the console, beyond the list pages of :mod:`dealerbot.console.runs`: what went
wrong in plain Chinese and what to do (:mod:`dealerbot.failure_text`), 重新运行, the live
progress bar (n of N, time left) with 停止, a dry run's rehearsed writes, and rejects under the
record type's Chinese field labels."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from dealerbot.errors import DealerbotError
from dealerbot.failure_text import Advice, explain, explain_reject
from dealerbot.status_text import COUNT_TEXT, progress_of

if TYPE_CHECKING:
    from dealerbot.console.app import Console
    from dealerbot.store.runs import RunRecord

RERUNNABLE = ("failed", "interrupted", "postponed", "needs_person", "portal_changed")
SCHEDULED = ("schedule", "catch-up", "postponed")  # triggers of the timetable: it runs a postponed job again
# Counts the live display leaves out: the bar shows them (totals), or they are internal.
NOT_LISTED = ("expected", "actions", "finished", "done")
# Counts of how the run went about it, not what it did: shown in the folded technical details.
TECHNICAL_COUNTS = ("retries", "relogins", "recycles", "pages")
# Options a run records about itself rather than the operator's choice: not carried into a rerun.
RUN_OWN_OPTIONS = ("since", "full")


@dataclass(frozen=True)
class Portal:
    """The portal a failure is about: its name in settings and what the operator calls it."""

    name: str
    title: str


def failure_portal(c: Console, run: RunRecord) -> Portal | None:
    """The portal the run's error names (its settings name or its screens' title), else the
    bot's own portal; None for a bot that is not known here or opens no portal."""
    from dealerbot.running.bot import bot_portals
    from dealerbot.running.registry import get_bot

    try:
        portals = bot_portals(get_bot(run.bot, home=c.settings.home))
    except DealerbotError:
        return None
    titled = [Portal(p, c.names.portal(p)) for p in portals]
    text = run.error or ""
    for portal in titled:
        if re.search(rf"(?<![\w-]){re.escape(portal.name)}(?![\w-])", text) or (portal.title and portal.title in text):
            return portal
    return titled[0] if titled else None


def progress_payload(counts: dict[str, int], elapsed: float | None) -> dict[str, Any]:
    """What the run page shows of a live run's ``counts`` (``elapsed``: seconds since it
    started, when known): ``done`` of ``total`` (None: not known), ``percent``, ``left`` (time
    left in words, where the total is known and something is done) and ``items`` (the other
    counts under their Chinese labels)."""
    done, total = progress_of(counts)
    left = ""
    if total and elapsed is not None and 0 < done < total:
        left = time_left((total - done) * elapsed / done)
    items = [[COUNT_TEXT.get(k, k), v] for k, v in counts.items() if v and k not in NOT_LISTED]
    return {"done": done, "total": total, "percent": round(100 * done / total) if total else None, "left": left,
            "items": items}


def time_left(seconds: float) -> str:
    """``seconds`` to go, as the operator reads it (约 3 分钟)."""
    if seconds < 60:
        return "不到 1 分钟"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"约 {minutes} 分钟"
    return f"约 {minutes // 60} 小时 {minutes % 60} 分钟"


def advice_for(c: Console, run: RunRecord) -> tuple[Advice | None, Portal | None]:
    """The run's failure explained (None: nothing to do), its title naming the portal it is
    about; and that portal."""
    advice = explain(run.error_class, run.status, run.resume_after, scheduled=run.trigger in SCHEDULED,
                     writes=writes(run))
    if advice is None:
        return None, None
    portal = failure_portal(c, run)
    if portal is not None and run.status in ("failed", "portal_changed", "needs_person") and advice.fix in ("password", "rerun", "integrator", "wait", "login"):
        advice = Advice(f"{portal.title}：{advice.title}", advice.action, advice.fix)
    return advice, portal


def trigger_text(c: Console, run: RunRecord, jobs: dict[str, str] | None = None) -> str:
    """How ``run`` was started, in words: the trigger (控制台, 定时...) and the job by what it
    runs (一键同步, a timetable job's name); never a job's key. ``jobs``: the timetable's jobs'
    names by key, when the caller has read them already (:func:`job_names`)."""
    from dealerbot.console.app import TRIGGERS
    from dealerbot.running.sync import CONSOLE_JOB, MANUAL_JOB

    words = TRIGGERS.get(run.trigger, "其他")
    if not run.job:
        return f"{words}启动"
    if run.job == CONSOLE_JOB:
        return f"{words} · 一键同步"
    if run.job == MANUAL_JOB:
        return f"{words} · 每日同步"
    known = job_names(c) if jobs is None else jobs
    return f"{words} · 定时任务「{known.get(run.job, c.names.bot(run.bot))}」"


def job_names(c: Console) -> dict[str, str]:
    """The timetable's jobs' operator names, by job key (none when the timetable is unreadable)."""
    from dealerbot.schedule.timetable import timetables_of

    try:
        return {job.name: c.names.job(job.name, job.run) for job in timetables_of(c.settings)}
    except DealerbotError:
        return {}


EVIDENCE_LABELS = {".png": "失败时的画面", ".html": "网页（给技术人员）", ".zip": "跟踪文件（给技术人员）"}


def evidence_label(name: str, same_kind: int = 1, index: int = 1) -> str:
    """An evidence file as the operator reads it (失败时的画面...), numbered when the run kept
    ``same_kind`` files of its kind."""
    label = EVIDENCE_LABELS.get(Path(name).suffix, "其他文件（给技术人员）")
    return f"{label} {index}" if same_kind > 1 else label


def labelled(names: list[str]) -> list[tuple[str, str]]:
    """``names`` each with its label (:func:`evidence_label`)."""
    kinds = Counter(Path(n).suffix for n in names)
    seen: Counter[str] = Counter()
    out = []
    for n in names:
        seen[Path(n).suffix] += 1
        out.append((n, evidence_label(n, kinds[Path(n).suffix], seen[Path(n).suffix])))
    return out


def written_of(c: Console, run: RunRecord) -> list[dict[str, Any]]:
    """The contracts a re-key run (not a dry run) wrote, from its audit rows: the OEM order,
    the contract number, what was written and whether it was read back equal (核对)."""
    from dealerbot.rekey.ledger import KIND_TEXT

    if run.options.get("dry_run") or "actions" not in run.counts:
        return []
    with c.store() as store:
        rows = [r for r in store.audit_rows(2000, run_id=run.run_id) if r["event"] in KIND_TEXT]
        states = {}
        for r in rows:
            action = store.action(r["action_id"]) if r.get("action_id") else None
            states[r["id"]] = action.state if action is not None else ""
    out = []
    for r in reversed(rows):  # oldest first: the order they were written
        out.append({
            "kind": KIND_TEXT.get(r["event"], r["event"]), "key": r["natural_key"], "contract_no": r["target"],
            "values": written_values(r["event"], r["old_values"] or {}, r["new_values"] or {}, c.masker),
            "verified": states[r["id"]] == "verified", "note": r.get("note") or "",
        })
    return out


def writes(run: RunRecord) -> bool:
    """Whether ``run``'s bot writes (a re-key bot: it counts actions) rather than only reads."""
    from dealerbot.running.sync import WRITE_BOTS

    return "actions" in run.counts or run.bot in WRITE_BOTS.values()


def counts_shown(run: RunRecord) -> dict[str, tuple[str, int]]:
    """The finished run's counts under the labels the run page shows: a finished re-key's
    actions are 本次计划写入; an incremental read says it read only what changed; the
    internal ones (retries, relogins...) are left to the technical details."""
    out: dict[str, tuple[str, int]] = {}
    for k, v in run.counts.items():
        if not v or k == "finished" or (k == "expected" and "actions" in run.counts) or k in TECHNICAL_COUNTS:
            continue
        label = COUNT_TEXT.get(k, k)
        if k == "actions":
            label = "本次计划写入"
        elif k == "read" and run.options.get("since"):
            label = "读取（自上次以来有变化的）"
        out[k] = (label, v)
    return out


def written_values(kind: str, old: dict[str, Any], new: dict[str, Any], mask: Any) -> dict[str, str]:
    """An audit row's written fields as the dry run's table words them: by the contract's
    Chinese headers; an update as ``old → new``; masked."""
    from dealerbot.data.mapping import CONTRACT_HEADERS

    if kind == "create_contract":
        return {CONTRACT_HEADERS.get(f, f): mask(str(v)) for f, v in new.items() if v}
    return {CONTRACT_HEADERS.get(f, f): mask(f"{old.get(f) or '（空）'} → {v}") for f, v in new.items()}


def reject_rows(c: Console, rejects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rejects as the run page lists them: the record type's title, the field's Chinese label,
    the reason (masked) and what to do about it."""
    from dealerbot.running.registry import discover, entities

    try:
        known = entities(discover(home=c.settings.home))
    except DealerbotError:  # a bots/ module that fails to import: the built-in types still have labels
        known = entities()
    rows = []
    for j in rejects:
        entity = known.get(j["entity"])
        advice = explain_reject(j["code"])
        rows.append({
            "record_key": j["record_key"], "entity": entity.title if entity else j["entity"],
            "field": (entity.header(j["field"]) if entity else j["field"]) if j["field"] else "",
            "reason": c.masker(j["reason"]), "problem": advice.title, "action": advice.action,
        })
    return rows


def rehearsal_of(c: Console, run: RunRecord) -> list[dict[str, Any]]:
    """A dry run's rehearsed writes (masked when written; masked again on the way out)."""
    from dealerbot.rekey.writer import read_rehearsal

    if not run.options.get("dry_run"):
        return []
    entries = read_rehearsal(c.settings.path("logs") / "runs" / run.run_id)
    for e in entries:
        e["values"] = {k: c.masker(str(v)) for k, v in (e.get("values") or {}).items()}
        if isinstance(e.get("customer"), dict):
            e["customer"] = {k: c.masker(str(v)) for k, v in e["customer"].items()}
    return entries


def page_values(c: Console, run: RunRecord, rejects: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything ``run.html`` shows of ``run`` beyond the run record itself."""
    advice, portal = advice_for(c, run)
    counts = c.live.get(run.run_id, run.counts)
    elapsed = None
    if run.run_id in c.started:
        import asyncio

        elapsed = asyncio.get_running_loop().time() - c.started[run.run_id]
    technical = {COUNT_TEXT.get(k, k): v for k, v in run.counts.items() if v and k in TECHNICAL_COUNTS}
    written = written_of(c, run)
    return {
        "advice": advice, "portal": portal, "rerun": run.status in RERUNNABLE,
        # a postponed or interrupted run is no failure: a neutral note, not the red box
        "advice_css": "advice" if run.status in ("failed", "portal_changed") else "advice calm",
        "can_stop": run.run_id in c.stops, "stopping": run.run_id in c.stops and c.stops[run.run_id].is_set(),
        "rejects": reject_rows(c, rejects), "rehearsal": rehearsal_of(c, run), "written": written,
        "rollback": rollback_of(c, run, bool(written)),
        "dry_run": bool(run.options.get("dry_run")), "progress": progress_payload(counts, elapsed),
        "shown_counts": counts_shown(run), "technical_counts": technical,
        "bot_title": c.names.bot(run.bot), "trigger_text": trigger_text(c, run),
        "go_live": bool(run.options.get("dry_run")) and run.status == "succeeded" and bool(run.counts.get("actions")),
        "question": c.login_help.waiting(run.run_id),  # the login's code/captcha/new password it waits on
    }


def rollback_of(c: Console, run: RunRecord, wrote: bool) -> dict[str, Any] | None:
    """回滚此次写入 on the page of a run that wrote into the DMS (:mod:`dealerbot.console.rollback`)."""
    from dealerbot.console.rollback import rollback_state

    with c.store() as store:
        return rollback_state(store, run, wrote)


def register(app: FastAPI, c: Console) -> None:
    """Add 停止 and 重新运行 of a run to ``app``."""

    @app.post("/runs/{run_id}/stop")
    async def stop(request: Request, run_id: str, csrf: str = Form("")) -> Response:
        c.check_csrf(request, csrf)
        if not c.stop_run(run_id):
            raise HTTPException(409, "这次运行不在本控制台中运行（或已结束），无法从这里停止")
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

    async def start_again(request: Request, run_id: str, csrf: str, live: bool) -> Response:
        """重新运行 (the same bot with the same options) or, ``live``, 正式写入 (a dry run's bot
        and options, for real); then the new run's page."""
        c.check_csrf(request, csrf)
        with c.store() as store:
            run = store.run(run_id)
        if run is None:
            raise HTTPException(404, "没有这次运行")
        if live and not run.options.get("dry_run"):
            raise HTTPException(409, "这次运行不是演练")
        options = {k: v for k, v in run.options.items() if k not in RUN_OWN_OPTIONS and v}
        dry_run = bool(options.pop("dry_run", False)) and not live
        try:
            new_id = await c.start(run.bot, dry_run, options, full=bool(run.options.get("full")))
        except DealerbotError as exc:
            return c.page(request, "run.html", 409, run=run, error=f"{'无法正式写入' if live else '无法重新运行'}：{exc}",
                          live=False, shots=[], files=[], **page_values(c, run, []))
        return RedirectResponse(f"/runs/{new_id}", status_code=303)

    @app.post("/runs/{run_id}/answer")
    async def answer(request: Request, run_id: str, csrf: str = Form(""), answer: str = Form(""),
                     key: str = Form("")) -> Response:
        """The box on a live run's page: what a person typed for the portal's login (an SMS code,
        a captcha, a new password) goes to the run waiting on it (in this process), never to a
        log or a page."""
        c.check_csrf(request, csrf)
        waiting = c.login_help.waiting(run_id)
        if waiting is None or (key and key != waiting.key):
            raise HTTPException(409, "这次运行没有在等待输入（可能已超时或已结束），请刷新页面")
        if not answer.strip():
            raise HTTPException(400, "请输入内容后再提交")
        c.login_help.answer(run_id, answer)
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

    @app.get("/runs/{run_id}/login-image")
    async def login_image(run_id: str) -> Response:
        """The captcha the run's login waits on, as the portal showed it (from memory; never saved)."""
        waiting = c.login_help.waiting(run_id)
        if waiting is None or not waiting.image:
            raise HTTPException(404, "没有等待输入的图形验证码")
        return Response(waiting.image, media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.post("/runs/{run_id}/rerun")
    async def rerun(request: Request, run_id: str, csrf: str = Form("")) -> Response:
        return await start_again(request, run_id, csrf, live=False)

    @app.post("/runs/{run_id}/go-live")
    async def go_live(request: Request, run_id: str, csrf: str = Form("")) -> Response:
        """正式写入: the same bot as the dry run ``run_id``, with its options, for real."""
        return await start_again(request, run_id, csrf, live=True)


def evidence_names(run: RunRecord) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The run's screenshots and its other evidence files, by name, each with its label
    (:func:`evidence_label`)."""
    return (labelled([Path(p).name for p in run.evidence if p.endswith(".png")]),
            labelled([Path(p).name for p in run.evidence if not p.endswith(".png")]))
