"""``dealerbot dictionary check``: the data dictionary against the store's records."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from dealerbot.cli.common import ConfigOpt, dictionary_for, make_console, open_store, settings_from

dictionary_app = typer.Typer(help="数据字典：厂家代码 -> DMS代码 (the data dictionary).", no_args_is_help=True)


@dictionary_app.command("check")
def dictionary_check(config: ConfigOpt = None) -> None:
    """列出数据字典缺少的厂家代码及涉及的记录数。

    List every OEM code in the store that the data dictionary lacks, with how many records
    carry it. Exit 0 when nothing is missing, 2 when codes are missing or the file is broken."""
    from dealerbot.data.records import OEM_ORDER

    settings = settings_from(config, store_needed=True)
    dictionary = dictionary_for(settings)
    with open_store(settings) as store:
        seen = {table: store.value_counts(OEM_ORDER, field) for table, field in
                (("models", "model_code"), ("colors", "color"), ("statuses", "status"))}
    from dealerbot.data.dictionary import TABLE_TEXT

    table = Table(title=f"{dictionary.path} 缺少的代码 (codes the dictionary lacks)")
    for col in ("表", "OEM代码", "订单数"):
        table.add_column(col)
    missing = 0
    for name, counts in seen.items():
        for code, n in sorted(counts.items(), key=lambda pair: -pair[1]):
            if code and dictionary.lookup(name, code) is None:
                table.add_row(f"{name}（{TABLE_TEXT[name]}）", escape(code), str(n))
                missing += 1
    console = make_console()
    if not missing:
        console.print(f"字典完整：库中所有车型、颜色、状态都已映射 ({dictionary.path}: nothing missing)")
        return
    console.print(table)
    console.print(f"在 {escape(str(dictionary.path))} 中补上这些代码后重新运行 dealerbot reconcile。")
    raise typer.Exit(2)
