"""The writer contract (tests/writer_contract.py) against the real writers: the web DMS through
Chromium and the desktop client under Xvfb, on the sandbox, checked through its ground truth.

Only the (case, writer) pairs no other integration test proves run here (``RUN_REAL``); the
others name their test in ``PROVEN`` or say in ``NOT_REACHABLE`` why the sandbox cannot make
them (tests/unit/test_writer_contract.py checks that every pair is in one of the three)."""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from writer_contract import CASES, RUN_REAL, RUN_REAL_SLOW

from dealerbot.rekey.ledger import Action
from dealerbot.running.runner import run_bot
from dealerbot.sandbox.data import DMS_MODELS

from .conftest import PASSWORDS, Admin
from .test_desktop import client, desktop_settings, display  # noqa: F401 - fixtures of the desktop writer
from .test_rekey import _config, plan, read_both, rekey_process

DESKTOP_TOOLS = all(shutil.which(t) for t in ("Xvfb", "xdotool", "xclip"))


def _text(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.2f}" if isinstance(value, float) else str(value)


class SandboxHarness:
    """:class:`writer_contract.ContractDms` on the sandbox DMS through a real writer: ``web``
    (dms-rekey, Chromium) or ``desktop`` (dms-desktop-rekey, the client under Xvfb). Creations
    only (the status updates the policy approves by itself are not written)."""

    writes_updates = False
    deterministic = False

    def __init__(self, writer: str, settings, store, admin: Admin, sandbox, tmp_path) -> None:
        self.name = writer
        self.settings = desktop_settings(settings, creations_only=True) if writer == "desktop" else \
            settings.model_copy(update={"rekey": settings.rekey.model_copy(update={"enabled": ["create_contract"]})})
        self.store, self.admin, self.sandbox, self.tmp_path = store, admin, sandbox, tmp_path
        self.write_faults: dict[str, dict[str, list[str]]] = {}
        self.faulted: set[str] = set()

    async def approve(self, new: int = 0, existing: int = 0, shared: bool = False, updates: int = 0) -> list[Action]:
        assert updates == 0 and not shared, "the sandbox harness approves creations of one order per person"
        await read_both(self.settings)
        plan(self.settings, self.store)
        planned = [a for a in self.store.actions(["planned"]) if a.kind == "create_contract"]
        orders = {}
        for a in planned:
            if a.customer.mode == "new":
                orders.setdefault(a.customer.values["id_number"], []).append(a)
        # New people with one order and a long address (a cut one differs); existing customers.
        news = [acts[0] for acts in orders.values() if len(acts) == 1 and len(acts[0].customer.values["address"]) > 2]
        olds = [a for a in planned if a.customer.mode == "existing"]
        chosen = news[:new] + olds[:existing]
        assert len(chosen) == new + existing
        assert not self.store.review([{"id": a.id, "checksum": a.stored_checksum, "decision": "approve"}
                                      for a in chosen], "测试审核员")
        return [self.store.action(a.id) for a in chosen]  # type: ignore[misc]

    def fault(self, kind: str, action: Action) -> None:
        """The sandbox's write faults (docs/sandbox.md): what a DMS stores otherwise than typed."""
        if kind == "customer_store_otherwise":
            sandbox_kind, record = "truncate", action.customer.values["id_number"]
        elif kind == "lose_save":
            sandbox_kind, record = "lost_save", action.natural_key
        elif kind == "store_otherwise":
            v = action.new_values
            fits = [k for k, ok in (("dropdown_first", v["model_code"] != DMS_MODELS[0][0]),
                                    ("date_shift", bool(v["delivery_date"])),
                                    ("round_amount", float(v["price"]) % 1000 != 0)) if ok]
            assert fits, f"no write fault of the sandbox changes {action.natural_key}"
            sandbox_kind, record = fits[0], action.natural_key
        else:
            raise AssertionError(f"the sandbox cannot make {kind} (see NOT_REACHABLE)")
        assert sandbox_kind not in self.write_faults, "one record per write fault kind"
        self.write_faults[sandbox_kind] = {"records": [record]}
        self.faulted.add(record)
        self.admin.behave("dms", write_faults=self.write_faults)

    def seed_contract(self, action: Action) -> str:
        r = self.admin.dms.post("/__admin/contracts", json={"customer_no": action.customer.customer_no, **action.new_values})
        r.raise_for_status()
        return str(r.json()["contract_no"])

    def seed_customer(self, action: Action) -> str:
        r = self.admin.dms.post("/__admin/customers", json=action.customer.values)
        r.raise_for_status()
        return str(r.json()["customer_no"])

    async def rekey(self, kill_at: str | None = None) -> dict[str, int] | None:
        bot = "dms-rekey" if self.name == "web" else "dms-desktop-rekey"
        if kill_at is None:
            result = await run_bot(bot, self.settings, passwords=PASSWORDS)
            assert result.ok, result.error
            return dict(result.counts)
        _config(self.tmp_path, self.sandbox)
        cfg = self.tmp_path / "dealerbot.toml"
        client_line = 'client = "desktop"\n' if self.name == "desktop" else ""
        cfg.write_text(cfg.read_text(encoding="utf-8").replace(
            "[rekey]\n", f'[rekey]\n{client_line}enabled = ["create_contract"]\n'), encoding="utf-8")
        killed = rekey_process(self.tmp_path, kill_at, bot)
        assert killed.returncode == -9, killed.stdout + killed.stderr  # SIGKILL at the failpoint
        return None

    def contracts(self, order_no: str) -> list[dict[str, Any]]:
        return [{k: _text(v) for k, v in c.items()} for c in self.admin.contracts() if c["oem_order_no"] == order_no]

    def customers(self, id_number: str) -> list[dict[str, Any]]:
        return [{k: _text(v) for k, v in c.items()} for c in self.admin.customers() if c["id_number"] == id_number]

    def submits(self, record: str) -> int | None:
        """Every save of a faulted record is in the sandbox's write-fault ground truth; of the
        others the DMS keeps no count (their contracts, counted, show "exactly once")."""
        if record not in self.faulted:
            return None
        return sum(1 for f in self.admin.get("dms", "/__admin/write-faults") if f["record"] == record)  # type: ignore[union-attr]


@pytest.mark.parametrize(("case", "writer"), [
    pytest.param(case, writer, marks=[
        *([pytest.mark.slow] if (case, writer) in RUN_REAL_SLOW else []),
        *([] if writer == "web" or DESKTOP_TOOLS else [pytest.mark.skip(reason="desktop tests need Xvfb, xdotool and xclip")]),
    ]) for case, writer in RUN_REAL
])
async def test_the_writer_contract_holds_for_the_real_writers(case, writer, request, settings, store, clean_sandbox,
                                                               sandbox, tmp_path):
    if writer == "desktop":
        request.getfixturevalue("client")  # the client running on a private display
    await CASES[case](SandboxHarness(writer, settings, store, clean_sandbox, sandbox, tmp_path))

