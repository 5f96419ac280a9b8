"""Bad input files refused before anything is planned or recorded, as an operator meets them:
the `dealerbot` command in a real subprocess, the real sandbox, the real SQLite store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dealerbot.config import load_settings
from dealerbot.data.dictionary import load_dictionary
from dealerbot.rekey.reconcile import reconcile
from dealerbot.running.runner import run_bot
from dealerbot.running.sync import READ_BOTS
from dealerbot.store import Store

from .conftest import OEM_PASSWORD, PASSWORDS

ROOT = Path(__file__).resolve().parents[2]


def dealerbot(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DEALERBOT_")}
    full_env.update(env, COLUMNS="200", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "dealerbot.cli", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=240)


def _config(home: Path, sandbox) -> None:
    (home / "dealerbot.toml").write_text(
        f'[oem]\nurl = "{sandbox.oem_url}"\n[dms]\nurl = "{sandbox.dms_url}"\n[run]\nbackoff_seconds = 0.05\n',
        encoding="utf-8",
    )


def _ledger(store) -> list[tuple]:
    return [(a.id, a.state, a.kind, a.natural_key, sorted(a.new_values.items())) for a in store.actions()]


async def test_a_dictionary_value_of_the_wrong_type_stops_reconcile_naming_file_and_line(
    settings, store, clean_sandbox, sandbox,
):
    _config(settings.home, sandbox)
    for bot in READ_BOTS:
        result = await run_bot(bot, settings, passwords=PASSWORDS)
        assert result.ok, (bot, result.error)
    reconcile(store, load_dictionary(settings.dictionary_path), settings.rekey.policy())
    before = _ledger(store)
    gx7 = [a for a in store.actions() if a.new_values.get("model_code") == "DMS-GX7L"]
    assert before and gx7  # orders of that model are planned with its code

    path = settings.dictionary_path
    text = path.read_text(encoding="utf-8")
    assert "  GX7-25T-LUX: DMS-GX7L\n" in text
    path.write_text(text.replace("  GX7-25T-LUX: DMS-GX7L\n", "  GX7-25T-LUX: [DMS-GX7L, x]\n"), encoding="utf-8")
    line = next(i for i, row in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if "GX7-25T-LUX:" in row)

    refused = dealerbot(["reconcile"], settings.home)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"dictionary.yaml:{line}:" in refused.stderr and "GX7-25T-LUX" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert _ledger(store) == before  # nothing planned, nothing superseded
    assert not [a for a in store.actions() if "['DMS-GX7L', 'x']" in str(a.new_values)]


def test_a_broken_selector_file_stops_a_run_before_it_is_recorded_or_notified(tmp_path, sandbox):
    from .test_scheduler import Receiver

    receiver = Receiver()
    try:
        _config(tmp_path, sandbox)
        with (tmp_path / "dealerbot.toml").open("a", encoding="utf-8") as f:
            f.write(f'[notify]\nurls = ["{receiver.url}"]\n')
        (tmp_path / "selectors").mkdir()
        text = (ROOT / "selectors" / "oem.yaml").read_text(encoding="utf-8")
        old = '  orders.table:\n    - css: "#orders-table"\n'
        assert old in text
        broken = tmp_path / "selectors" / "oem.yaml"
        broken.write_text(text.replace(old, '  orders.table:\n    - css: "#orders-table\n'), encoding="utf-8")  # quote not closed
        line = 1 + text[:text.index(old)].count("\n") + 1

        for _ in range(2):  # every attempt is refused the same way, none recorded
            refused = dealerbot(["run", "oem-orders"], tmp_path, DEALERBOT_OEM_PASSWORD=OEM_PASSWORD)
            assert refused.returncode == 2, refused.stdout + refused.stderr
            said = " ".join((refused.stdout + refused.stderr).split())
            assert f"oem.yaml:{line}: selector 'orders.table'" in said, said
            assert "Traceback" not in refused.stderr
        runs = dealerbot(["runs"], tmp_path)
        assert runs.returncode == 0 and "oem-orders" not in runs.stdout, runs.stdout
        with Store.open(load_settings(tmp_path / "dealerbot.toml").store_url) as store:
            assert store.runs(100) == []
        assert not any((tmp_path / "logs" / "runs").glob("*"))  # no run folder either
        assert receiver.messages == []  # a run's message is posted before the command returns
    finally:
        receiver.close()


def test_a_huge_config_file_exits_2_naming_it(tmp_path):
    cfg = tmp_path / "dealerbot.toml"
    with cfg.open("w", encoding="utf-8") as f:
        f.write("[run]\nconcurrency = 2\n")
        for _ in range(54):  # 54 MB, as it was accepted
            f.write("# " + "x" * 1_048_573 + "\n")
    result = dealerbot(["runs"], tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    said = " ".join(result.stderr.split())
    assert "dealerbot.toml" in said and "1,000,000" in said and "Traceback" not in said
    assert not (tmp_path / "var").exists()  # no store made either


async def test_a_customer_name_like_a_formula_or_markup_is_flagged_for_review_and_never_planned(
    settings, store, clean_sandbox,
):
    from openpyxl import load_workbook

    from dealerbot.data.records import OEM_ORDER
    from dealerbot.rekey.ledger import Policy
    from dealerbot.review.export import export_runs, latest_runs
    from dealerbot.review.sheets import UNRESOLVED_TITLE
    from dealerbot.running.registry import entity_of_bots

    # Creations written without approval: only the name check stands between the portal and the DMS.
    policy = Policy.of(["cancel_contract"], ["create_contract", "update_contract"])
    for bot in READ_BOTS:
        assert (await run_bot(bot, settings, passwords=PASSWORDS)).ok, bot
    dictionary = load_dictionary(settings.dictionary_path)
    reconcile(store, dictionary, policy)
    new = [a for a in store.actions(["approved"]) if a.kind == "create_contract" and a.customer.mode == "new"]
    assert len(new) >= 2
    names = {new[0].natural_key: '=HYPERLINK("http://x.cn","点")', new[1].natural_key: "<script>alert(1)</script>"}
    for order_no, name in names.items():
        clean_sandbox.oem.patch(f"/__admin/orders/{order_no}", json={"customer_name": name}).raise_for_status()
    assert (await run_bot("oem-orders", settings, passwords=PASSWORDS)).ok
    reconcile(store, dictionary, policy)

    for order_no, name in names.items():  # nothing of that order left to write: a person must look
        assert not [a for a in store.actions(["planned", "approved"], natural_key=order_no)], order_no

    path = settings.path("out") / "review.xlsx"
    export_runs(store, latest_runs(store), path, entity_of_bots())
    wb = load_workbook(path)
    ws = wb[OEM_ORDER.title]
    headers = [c.value for c in ws[1]]
    no_col, name_col = headers.index("订单号") + 1, headers.index("客户姓名") + 1
    rows = {ws.cell(r, no_col).value: r for r in range(2, ws.max_row + 1)}
    for order_no, name in names.items():
        row = rows[order_no]
        cell = ws.cell(row, name_col)
        assert cell.value == name and cell.data_type == "s"  # the text as read, never a live formula
        assert cell.fill.fgColor.rgb.endswith("FFEB9C")  # yellow
        assert ws.cell(row, len(headers) - 1).value == "需核对"
        assert "客户姓名" in ws.cell(row, len(headers)).value
    assert "像电子表格公式" in ws.cell(rows[new[0].natural_key], len(headers)).value
    assert "网页代码" in ws.cell(rows[new[1].natural_key], len(headers)).value
    reason_col = [c.value for c in wb[UNRESOLVED_TITLE][1]].index("原因")
    unresolved = {r[0]: r[reason_col] for r in wb[UNRESOLVED_TITLE].iter_rows(min_row=2, values_only=True)}
    for order_no in names:
        assert "不会录入DMS" in unresolved[order_no]  # listed for a person, with the reason
