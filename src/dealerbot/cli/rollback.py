"""``dealerbot rollback --run ID``: plan the reverse of a re-key run's writes (written only after review)."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from rich.markup import escape

from dealerbot.cli.common import ConfigOpt, app, dictionary_for, fail, make_console, masker_for, open_store, settings_from
from dealerbot.errors import DealerbotError


@app.command()
def rollback(
    run_id: Annotated[str, typer.Option("--run", help="要回滚的写入DMS的运行编号（见 dealerbot runs）")],
    by: Annotated[str | None, typer.Option("--by", help="记录在审计中的计划人（默认 [rekey] reviewer 或系统用户名）")] = None,
    config: ConfigOpt = None,
) -> None:
    """回滚一次写入DMS的运行：按审计记录计划反向操作（此处不写入DMS）。

    Plan the reverse of each DMS write run ID made, from the audit trail: an updated field back
    to its old value where the DMS still holds what the run wrote (otherwise a conflict for a
    person), a created contract listed for cancellation. The reverse actions wait in the review
    workbook for a person's approval; `dealerbot run dms-rekey` then writes them (read before
    typing, read back, audited). Exit 2, nothing changed, for an unknown run, a run that wrote
    nothing, or one already rolled back.
    """
    from dealerbot.rekey.rollback import rollback as plan_and_save

    settings = settings_from(config, store_needed=True)
    dictionary = dictionary_for(settings)
    try:
        policy = settings.rekey.policy()
    except DealerbotError as exc:
        raise fail(str(exc)) from None
    console = make_console()

    def waiting(who: str) -> None:
        console.print(f"正在等待 {escape(who)} 结束后再计划回滚…… (waiting for {escape(who)} to finish)")

    actor = by or settings.rekey.reviewer or getpass.getuser()
    with open_store(settings) as store:
        try:
            plan = plan_and_save(store, run_id, dictionary.cancelled_status, policy, actor, on_wait=waiting)
        except DealerbotError as exc:
            raise fail(str(exc)) from None
    console.print(f"[bold]回滚运行 {escape(run_id)}（{escape(plan.bot)}）的计划 (rollback plan)[/]")
    for line in plan.lines(masker_for(settings)):
        console.print(f"  {escape(line)}")
    if plan.actions:
        console.print(f"已加入审核：{len(plan.actions)} 条回滚操作等待审核同意（计划人：{escape(actor)}）。"
                      f"运行 dealerbot export 生成审核工作簿（或在控制台「审核」页），同意后 dealerbot run dms-rekey 写入DMS；"
                      f"此处没有写入DMS。")
    else:
        console.print("没有可以自动回滚的写入：冲突已记入审计记录（dealerbot audit），请人工处理。此处没有写入DMS。")
