"""What runs' statuses and counts are called where operators read them (the CLI, the console,
the workbook's 概要 sheet). Imports nothing: the CLI's summary must not pull in the workbook.

A flagged record is 需核对 (a value to check), never 待复核: 待审核 is an action waiting for a
person's decision (rekey.ledger.STATE_TEXT), and the two words must not be confused."""

STATUS_TEXT = {"succeeded": "成功", "failed": "失败", "postponed": "已推迟", "running": "运行中", "interrupted": "已中断",
               "skipped": "已跳过", "needs_person": "等待人工登录", "portal_changed": "门户已改版",
               "all_rejected": "全部被拒绝"}
# The console's colour class of each status: ok (green), bad (red), warn (amber).
STATUS_CSS = {"succeeded": "ok", "failed": "bad", "interrupted": "bad", "portal_changed": "bad", "postponed": "warn",
              "running": "warn", "skipped": "warn", "needs_person": "warn", "all_rejected": "warn"}
# Statuses that ended a run without the failure of a portal or the machine: the run did what it
# could (an all-rejected run read and recorded every record, each with its reason).
FINISHED_OK = ("succeeded", "all_rejected")
COUNT_TEXT = {
    "pages": "列表页", "read": "读取", "accepted": "接受", "repaired": "已修正", "flagged": "需核对",
    "rejected": "拒绝", "stored": "已入库", "actions": "待写入操作", "verified": "已写入并核对", "found": "已在DMS中找到",
    "customers_created": "新建客户", "failed": "失败", "unfinished": "未完成（下次继续）", "rehearsed": "演练",
    "retries": "重试", "relogins": "重新登录", "expected": "列表总数", "recycles": "更换浏览器上下文",
    "done": "已处理",
}


def progress_of(counts: dict[str, int]) -> tuple[int, int | None]:
    """How far a run is, from its counts: ``(done, total)``; ``total`` None when the run does not
    know it. A writing bot (``actions`` counted) counts the actions it is through out of those
    it will write; a reading bot the records read out of the list's total (``expected``). A
    finished run is through all of it."""
    if "actions" in counts:
        done = counts.get("done", 0) + counts.get("unfinished", 0)
        total = counts.get("expected") or counts.get("actions")
    else:
        done, total = counts.get("read", 0), counts.get("expected")
    if counts.get("finished"):
        total = done
    if total is not None:
        done = min(done, total)
    return done, total
