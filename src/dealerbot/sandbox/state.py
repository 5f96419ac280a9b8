"""SQLite-backed data of the sandbox, shared by the OEM portal and the DMS.

One connection guarded by a lock (the apps may call in from worker threads); WAL journal.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .data import Dataset, generate, iso

OEM_ORDER_COLS = ("order_no", "customer_no", "customer_name", "mobile", "id_type", "id_number", "model_code",
                  "color", "vin", "price", "status", "planned_delivery_date", "updated_at")
OEM_CUSTOMER_COLS = ("customer_no", "name", "mobile", "id_type", "id_number", "city", "address", "consent",
                     "updated_at")
DMS_CUSTOMER_COLS = ("customer_no", "name", "mobile", "id_number", "address", "created_at")
DMS_CONTRACT_COLS = ("contract_no", "customer_no", "customer_name", "model_code", "color", "vin", "price",
                     "deposit", "delivery_date", "oem_order_no", "status", "updated_at")
OEM_ALLOCATION_COLS = ("vin", "dealer_code", "dealer_name", "order_no", "model_code", "allocated_on")
OEM_REPORT_COLS = ("report_no", "vin", "dealer_code", "order_no", "model_code", "delivery_date", "invoice_no",
                   "invoice_amount", "consent", "buyer_id_number", "buyer_mobile", "reported_on", "deadline", "late",
                   "seed_case")
DMS_DELIVERY_COLS = ("delivery_no", "contract_no", "vin", "delivery_date", "invoice_no", "invoice_amount", "plate_no",
                     "consent", "updated_at", "seed_case")
OEM_LEAD_COLS = ("lead_no", "name", "mobile", "model_code", "source", "assigned_on", "followup_deadline", "consent",
                 "seed_case")
OEM_FOLLOWUP_COLS = ("followup_no", "lead_no", "followed_on", "result", "next_step", "note", "logged_on", "late")
DMS_PROSPECT_COLS = ("prospect_no", "name", "mobile", "model_code", "source", "oem_lead_no", "sales_rep", "created_at")
DMS_FOLLOWUP_COLS = ("followup_no", "prospect_no", "followed_on", "result", "next_step", "note", "staff", "created_at")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS oem_customers (
  customer_no TEXT PRIMARY KEY, name TEXT NOT NULL, mobile TEXT NOT NULL, id_type TEXT NOT NULL,
  id_number TEXT NOT NULL, city TEXT NOT NULL, address TEXT NOT NULL, consent TEXT NOT NULL,
  updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS oem_orders (
  order_no TEXT PRIMARY KEY, customer_no TEXT NOT NULL, customer_name TEXT NOT NULL, mobile TEXT NOT NULL,
  id_type TEXT NOT NULL, id_number TEXT NOT NULL, model_code TEXT NOT NULL, color TEXT NOT NULL,
  vin TEXT NOT NULL, price REAL NOT NULL, status TEXT NOT NULL, planned_delivery_date TEXT NOT NULL,
  updated_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ix_oem_orders_updated ON oem_orders(updated_at, order_no);
CREATE INDEX IF NOT EXISTS ix_oem_orders_status ON oem_orders(status, updated_at);
CREATE TABLE IF NOT EXISTS dms_customers (
  customer_no TEXT PRIMARY KEY, name TEXT NOT NULL, mobile TEXT NOT NULL, id_number TEXT NOT NULL,
  address TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dms_contracts (
  contract_no TEXT PRIMARY KEY, customer_no TEXT NOT NULL, customer_name TEXT NOT NULL,
  model_code TEXT NOT NULL, color TEXT NOT NULL, vin TEXT NOT NULL, price REAL NOT NULL,
  deposit REAL NOT NULL, delivery_date TEXT NOT NULL, oem_order_no TEXT NOT NULL, status TEXT NOT NULL,
  updated_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ix_dms_contracts_vin ON dms_contracts(vin);
CREATE INDEX IF NOT EXISTS ix_dms_contracts_oem ON dms_contracts(oem_order_no);
CREATE TABLE IF NOT EXISTS oem_allocations (
  vin TEXT PRIMARY KEY, dealer_code TEXT NOT NULL, dealer_name TEXT NOT NULL, order_no TEXT NOT NULL,
  model_code TEXT NOT NULL, allocated_on TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS oem_reports (
  report_no TEXT PRIMARY KEY, vin TEXT NOT NULL, dealer_code TEXT NOT NULL, order_no TEXT NOT NULL,
  model_code TEXT NOT NULL, delivery_date TEXT NOT NULL, invoice_no TEXT NOT NULL, invoice_amount REAL NOT NULL,
  consent TEXT NOT NULL, buyer_id_number TEXT NOT NULL, buyer_mobile TEXT NOT NULL, reported_on TEXT NOT NULL,
  deadline TEXT NOT NULL, late INTEGER NOT NULL, seed_case TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ix_oem_reports_vin ON oem_reports(vin);
CREATE TABLE IF NOT EXISTS dms_deliveries (
  delivery_no TEXT PRIMARY KEY, contract_no TEXT NOT NULL UNIQUE, vin TEXT NOT NULL, delivery_date TEXT NOT NULL,
  invoice_no TEXT NOT NULL, invoice_amount REAL NOT NULL, plate_no TEXT NOT NULL, consent TEXT NOT NULL,
  updated_at TEXT NOT NULL, seed_case TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS oem_leads (
  lead_no TEXT PRIMARY KEY, name TEXT NOT NULL, mobile TEXT NOT NULL, model_code TEXT NOT NULL, source TEXT NOT NULL,
  assigned_on TEXT NOT NULL, followup_deadline TEXT NOT NULL, consent TEXT NOT NULL, seed_case TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS oem_followups (
  followup_no TEXT PRIMARY KEY, lead_no TEXT NOT NULL, followed_on TEXT NOT NULL, result TEXT NOT NULL,
  next_step TEXT NOT NULL, note TEXT NOT NULL, logged_on TEXT NOT NULL, late INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dms_prospects (
  prospect_no TEXT PRIMARY KEY, name TEXT NOT NULL, mobile TEXT NOT NULL, model_code TEXT NOT NULL, source TEXT NOT NULL,
  oem_lead_no TEXT NOT NULL, sales_rep TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dms_followups (
  followup_no TEXT PRIMARY KEY, prospect_no TEXT NOT NULL, followed_on TEXT NOT NULL, result TEXT NOT NULL,
  next_step TEXT NOT NULL, note TEXT NOT NULL, staff TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class SandboxState:
    """The sandbox data in one SQLite file. Thread-safe; every method takes the lock."""

    def __init__(self, seed: int, orders: int, customers: int | None = None,
                 db_path: str | os.PathLike | None = None) -> None:
        self.seed, self.n_orders, self.n_customers = seed, orders, customers
        self._tmpdir: tempfile.TemporaryDirectory | None = None
        if db_path is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="dealerbot-sandbox-")
            db_path = Path(self._tmpdir.name) / "sandbox.sqlite"
        self.db_path = Path(db_path)
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.executescript(_SCHEMA)
        self._dataset: Dataset | None = None
        self.reset_oem()
        self.reset_dms()

    # ---- lifecycle -----------------------------------------------------------------------
    @property
    def dataset(self) -> Dataset:
        if self._dataset is None:
            self._dataset = generate(self.seed, self.n_orders, self.n_customers)
        return self._dataset

    @property
    def reference(self) -> datetime:
        return self.dataset.reference

    def close(self) -> None:
        with self.lock:
            try:
                self.conn.close()
            finally:
                if self._tmpdir is not None:
                    self._tmpdir.cleanup()
                    self._tmpdir = None

    def _reload(self, table: str, cols: tuple[str, ...], rows: list[dict]) -> None:
        with self.lock:
            c = self.conn
            c.execute("BEGIN")
            try:
                c.execute(f"DELETE FROM {table}")
                c.executemany(f"INSERT INTO {table} ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                              [tuple(r[k] for k in cols) for r in rows])
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

    def reset_oem(self) -> None:
        ds = self.dataset
        self._reload("oem_customers", OEM_CUSTOMER_COLS, ds.oem_customers)
        self._reload("oem_orders", OEM_ORDER_COLS, ds.oem_orders)
        self._reload("oem_allocations", OEM_ALLOCATION_COLS, ds.oem_allocations)
        self._reload("oem_reports", OEM_REPORT_COLS, ds.oem_reports)
        self._reload("oem_leads", OEM_LEAD_COLS, ds.oem_leads)
        self._reload("oem_followups", OEM_FOLLOWUP_COLS, ds.oem_followups)

    def reset_dms(self) -> None:
        ds = self.dataset
        self._reload("dms_customers", DMS_CUSTOMER_COLS, ds.dms_customers)
        self._reload("dms_contracts", DMS_CONTRACT_COLS, ds.dms_contracts)
        self._reload("dms_deliveries", DMS_DELIVERY_COLS, ds.dms_deliveries)
        self._reload("dms_prospects", DMS_PROSPECT_COLS, ds.dms_prospects)
        self._reload("dms_followups", DMS_FOLLOWUP_COLS, ds.dms_followups)
        self.burned_contract_no = ""  # the highest number a lost save answered with (never given again)

    # ---- helpers -------------------------------------------------------------------------
    def query(self, sql: str, args: tuple | list = ()) -> list[dict]:
        with self.lock:
            return [dict(r) for r in self.conn.execute(sql, args).fetchall()]

    def one(self, sql: str, args: tuple | list = ()) -> dict | None:
        with self.lock:
            r = self.conn.execute(sql, args).fetchone()
            return dict(r) if r is not None else None

    def scalar(self, sql: str, args: tuple | list = ()) -> Any:
        with self.lock:
            r = self.conn.execute(sql, args).fetchone()
            return r[0] if r is not None else None

    def execute(self, sql: str, args: tuple | list = ()) -> int:
        with self.lock:
            return self.conn.execute(sql, args).rowcount

    def next_timestamp(self, table: str, column: str = "updated_at") -> str:
        """A timestamp for a change: now, but strictly after every stored value."""
        with self.lock:
            latest = self.scalar(f"SELECT MAX({column}) FROM {table}")
            now = datetime.now().replace(microsecond=0)
            if latest:
                bump = datetime.fromisoformat(latest) + timedelta(seconds=1)
                now = max(now, bump)
            return iso(now)

    # ---- OEM orders ----------------------------------------------------------------------
    @staticmethod
    def _order_where(date_from: str | None, date_to: str | None, status: str | None,
                     updated_since: str | None) -> tuple[str, list]:
        where, args = [], []
        if date_from:
            where.append("updated_at >= ?")
            args.append(date_from + "T00:00:00")
        if date_to:
            nxt = (datetime.fromisoformat(date_to) + timedelta(days=1)).strftime("%Y-%m-%d")
            where.append("updated_at < ?")
            args.append(nxt + "T00:00:00")
        if status:
            where.append("status = ?")
            args.append(status)
        if updated_since:
            where.append("updated_at > ?")
            args.append(updated_since)
        return (" WHERE " + " AND ".join(where)) if where else "", args

    def count_orders(self, date_from=None, date_to=None, status=None, updated_since=None) -> int:
        w, a = self._order_where(date_from, date_to, status, updated_since)
        return int(self.scalar(f"SELECT COUNT(*) FROM oem_orders{w}", a))

    def list_orders(self, date_from=None, date_to=None, status=None, updated_since=None, direction="desc",
                    limit: int | None = None, offset: int = 0) -> list[dict]:
        w, a = self._order_where(date_from, date_to, status, updated_since)
        d = "ASC" if direction == "asc" else "DESC"
        sql = f"SELECT * FROM oem_orders{w} ORDER BY updated_at {d}, order_no {d}"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            a = a + [limit, offset]
        return self.query(sql, a)

    def get_order(self, order_no: str) -> dict | None:
        return self.one("SELECT * FROM oem_orders WHERE order_no = ?", (order_no,))

    def all_orders(self) -> list[dict]:
        return self.query("SELECT * FROM oem_orders ORDER BY order_no")

    def insert_order(self, row: dict) -> None:
        cols = OEM_ORDER_COLS
        self.execute(f"INSERT INTO oem_orders ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                     tuple(row[k] for k in cols))

    def update_order(self, order_no: str, changes: dict) -> None:
        sets = ", ".join(f"{k} = ?" for k in changes)
        self.execute(f"UPDATE oem_orders SET {sets} WHERE order_no = ?", (*changes.values(), order_no))

    def next_order_no(self) -> str:
        with self.lock:
            year = self.reference.year
            rows = self.query("SELECT order_no FROM oem_orders WHERE order_no LIKE ?", (f"XS{year}%",))
            seq = max((int(r["order_no"][6:]) for r in rows if r["order_no"][6:].isdigit()), default=0)
            return f"XS{year}{seq + 1:06d}"

    # ---- OEM customers -------------------------------------------------------------------
    def _search_customers(self, table: str, order: str, q: str, limit: int, offset: int) -> tuple[int, list[dict]]:
        where, args = "", []
        if q:
            like = f"%{q}%"
            where = " WHERE customer_no LIKE ? OR name LIKE ? OR mobile LIKE ? OR id_number LIKE ?"
            args = [like] * 4
        with self.lock:
            total = int(self.scalar(f"SELECT COUNT(*) FROM {table}{where}", args))
            rows = self.query(f"SELECT * FROM {table}{where} ORDER BY {order} LIMIT ? OFFSET ?", args + [limit, offset])
        return total, rows

    def search_oem_customers(self, q: str, limit: int, offset: int) -> tuple[int, list[dict]]:
        return self._search_customers("oem_customers", "customer_no", q, limit, offset)

    def all_oem_customers(self) -> list[dict]:
        return self.query("SELECT * FROM oem_customers ORDER BY customer_no")

    # ---- DMS -----------------------------------------------------------------------------
    def search_dms_customers(self, q: str, limit: int, offset: int) -> tuple[int, list[dict]]:
        return self._search_customers("dms_customers", "customer_no DESC", q, limit, offset)

    def get_dms_customer(self, customer_no: str) -> dict | None:
        return self.one("SELECT * FROM dms_customers WHERE customer_no = ?", (customer_no,))

    def insert_dms_customer(self, row: dict) -> str:
        with self.lock:
            seq = self.scalar("SELECT MAX(CAST(SUBSTR(customer_no, 3) AS INTEGER)) FROM dms_customers") or 0
            no = f"KH{seq + 1:06d}"
            row = dict(row, customer_no=no, created_at=self.next_timestamp("dms_customers", "created_at"))
            cols = DMS_CUSTOMER_COLS
            self.execute(f"INSERT INTO dms_customers ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                         tuple(row[k] for k in cols))
            return no

    def search_contracts(self, q: str, limit: int, offset: int) -> tuple[int, list[dict]]:
        where, args = "", []
        if q:
            where = " WHERE contract_no = ? OR oem_order_no = ? OR vin = ? OR contract_no LIKE ? OR oem_order_no LIKE ? OR vin LIKE ?"
            qq = q.strip().upper()
            args = [qq, qq, qq, f"%{qq}%", f"%{qq}%", f"%{qq}%"]
        with self.lock:
            total = int(self.scalar(f"SELECT COUNT(*) FROM dms_contracts{where}", args))
            rows = self.query(f"SELECT * FROM dms_contracts{where} ORDER BY contract_no DESC LIMIT ? OFFSET ?",
                              args + [limit, offset])
        return total, rows

    def get_contract(self, contract_no: str) -> dict | None:
        return self.one("SELECT * FROM dms_contracts WHERE contract_no = ?", (contract_no,))

    def contract_with(self, column: str, value: str, exclude: str | None) -> str | None:
        assert column in ("vin", "oem_order_no")
        return self.scalar(f"SELECT contract_no FROM dms_contracts WHERE {column} = ? AND contract_no != ? "
                           "ORDER BY contract_no LIMIT 1", (value, exclude or ""))

    def next_contract_no(self) -> str:
        """The number the next new contract gets (past any a lost save answered with)."""
        with self.lock:
            ref = self.reference
            prefix = f"HT{ref.year}{ref.month:02d}"
            seq = self.scalar("SELECT MAX(CAST(SUBSTR(contract_no, 9) AS INTEGER)) FROM dms_contracts "
                              "WHERE contract_no LIKE ?", (prefix + "%",)) or 0
            if self.burned_contract_no.startswith(prefix):
                seq = max(seq, int(self.burned_contract_no[len(prefix):]))
            return f"{prefix}{seq + 1:04d}"

    def burn_contract_no(self) -> str:
        """A number for a save that stores nothing (``lost_save``): used up, as a real sequence is."""
        with self.lock:
            self.burned_contract_no = self.next_contract_no()
            return self.burned_contract_no

    def save_contract(self, contract_no: str | None, row: dict) -> str:
        with self.lock:
            ts = self.next_timestamp("dms_contracts")
            if contract_no is None:
                contract_no = self.next_contract_no()
                full = dict(row, contract_no=contract_no, updated_at=ts)
                cols = DMS_CONTRACT_COLS
                self.execute(f"INSERT INTO dms_contracts ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                             tuple(full[k] for k in cols))
            else:
                changes = dict(row, updated_at=ts)
                sets = ", ".join(f"{k} = ?" for k in changes)
                self.execute(f"UPDATE dms_contracts SET {sets} WHERE contract_no = ?",
                             (*changes.values(), contract_no))
            return contract_no

    def all_dms_customers(self) -> list[dict]:
        return self.query("SELECT * FROM dms_customers ORDER BY customer_no")

    def all_contracts(self) -> list[dict]:
        return self.query("SELECT * FROM dms_contracts ORDER BY contract_no")

    # ---- the delivery-report flow: DMS deliveries (交车), OEM allocations and reports (交车上报) ----
    _DELIVERY_VIEW = (
        "SELECT d.delivery_no, d.contract_no, c.customer_no, COALESCE(k.name, '') AS buyer_name, "
        "COALESCE(k.id_number, '') AS buyer_id_number, COALESCE(k.mobile, '') AS buyer_mobile, "
        "COALESCE(c.model_code, '') AS model_code, d.vin, d.delivery_date, d.invoice_no, d.invoice_amount, d.plate_no, "
        "d.consent, d.updated_at, d.seed_case FROM dms_deliveries d LEFT JOIN dms_contracts c ON c.contract_no = d.contract_no "
        "LEFT JOIN dms_customers k ON k.customer_no = c.customer_no")

    def search_deliveries(self, q: str, limit: int, offset: int) -> tuple[int, list[dict]]:
        """交车记录 as the DMS lists them (the buyer from the contract's customer), newest first;
        ``q`` matches the delivery no, contract no, VIN or invoice no."""
        where, args = "", []
        if q:
            like = f"%{q.strip().upper()}%"
            where = " WHERE d.delivery_no LIKE ? OR d.contract_no LIKE ? OR d.vin LIKE ? OR d.invoice_no LIKE ?"
            args = [like] * 4
        with self.lock:
            total = int(self.scalar(f"SELECT COUNT(*) FROM dms_deliveries d{where}", args))
            rows = self.query(f"{self._DELIVERY_VIEW}{where} ORDER BY d.delivery_date DESC, d.delivery_no DESC "
                              "LIMIT ? OFFSET ?", args + [limit, offset])
        return total, rows

    def all_deliveries(self) -> list[dict]:
        return self.query(f"{self._DELIVERY_VIEW} ORDER BY d.delivery_no")

    def delivery_of_contract(self, contract_no: str) -> dict | None:
        return self.one("SELECT * FROM dms_deliveries WHERE contract_no = ?", (contract_no,))

    def insert_delivery(self, row: dict) -> str:
        """Record a delivery (numbered ``JC<yyyymm of the reference><4 digits>``); its delivery no."""
        with self.lock:
            ref = self.reference
            prefix = f"JC{ref.year}{ref.month:02d}"
            seq = self.scalar("SELECT MAX(CAST(SUBSTR(delivery_no, 9) AS INTEGER)) FROM dms_deliveries "
                              "WHERE delivery_no LIKE ?", (prefix + "%",)) or 0
            no = f"{prefix}{seq + 1:04d}"
            full = {"seed_case": "", **row, "delivery_no": no, "updated_at": self.next_timestamp("dms_deliveries")}
            cols = DMS_DELIVERY_COLS
            self.execute(f"INSERT INTO dms_deliveries ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                         tuple(full[k] for k in cols))
            return no

    def get_allocation(self, vin: str) -> dict | None:
        return self.one("SELECT * FROM oem_allocations WHERE vin = ?", (vin,))

    def all_allocations(self) -> list[dict]:
        return self.query("SELECT * FROM oem_allocations ORDER BY vin")

    def insert_allocation(self, row: dict) -> None:
        cols = OEM_ALLOCATION_COLS
        self.execute(f"INSERT OR REPLACE INTO oem_allocations ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                     tuple(row[k] for k in cols))

    def search_reports(self, dealer_code: str, q: str, limit: int, offset: int) -> tuple[int, list[dict]]:
        """上报记录 of one dealer, newest first; ``q`` matches the report no, VIN or invoice no."""
        where, args = " WHERE dealer_code = ?", [dealer_code]
        if q:
            like = f"%{q.strip().upper()}%"
            where += " AND (report_no LIKE ? OR vin LIKE ? OR invoice_no LIKE ?)"
            args += [like] * 3
        with self.lock:
            total = int(self.scalar(f"SELECT COUNT(*) FROM oem_reports{where}", args))
            rows = self.query(f"SELECT * FROM oem_reports{where} ORDER BY reported_on DESC, report_no DESC "
                              "LIMIT ? OFFSET ?", args + [limit, offset])
        return total, rows

    def report_of(self, column: str, value: str) -> dict | None:
        assert column in ("vin", "invoice_no")
        return self.one(f"SELECT * FROM oem_reports WHERE {column} = ? ORDER BY report_no LIMIT 1", (value,))

    def all_reports(self) -> list[dict]:
        return self.query("SELECT * FROM oem_reports ORDER BY report_no")

    def insert_report(self, row: dict) -> str:
        """Record a report (numbered ``SB<yyyymm of the reference><4 digits>``); its report no."""
        with self.lock:
            ref = self.reference
            prefix = f"SB{ref.year}{ref.month:02d}"
            seq = self.scalar("SELECT MAX(CAST(SUBSTR(report_no, 9) AS INTEGER)) FROM oem_reports "
                              "WHERE report_no LIKE ?", (prefix + "%",)) or 0
            no = f"{prefix}{seq + 1:04d}"
            full = {"seed_case": "", **row, "report_no": no}
            cols = OEM_REPORT_COLS
            self.execute(f"INSERT INTO oem_reports ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                         tuple(full[k] for k in cols))
            return no

    # ---- the leads flow: OEM leads (线索) and follow-ups (回访登记), DMS prospects (潜客) ----------
    def _numbered(self, table: str, column: str, code: str) -> str:
        """The next ``<code><yyyymm of the reference><4 digits>`` of ``table``."""
        ref = self.reference
        prefix = f"{code}{ref.year}{ref.month:02d}"
        seq = self.scalar(f"SELECT MAX(CAST(SUBSTR({column}, 9) AS INTEGER)) FROM {table} WHERE {column} LIKE ?",
                          (prefix + "%",)) or 0
        return f"{prefix}{seq + 1:04d}"

    def _insert(self, table: str, cols: tuple[str, ...], row: dict) -> None:
        self.execute(f"INSERT INTO {table} ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                     tuple(row[k] for k in cols))

    _LEAD_VIEW = ("SELECT l.*, (SELECT COUNT(*) FROM oem_followups f WHERE f.lead_no = l.lead_no) AS followups "
                  "FROM oem_leads l")

    def search_leads(self, q: str, limit: int, offset: int) -> tuple[int, list[dict]]:
        """线索, newest assigned first; ``q`` matches lead no, name or mobile."""
        where, args = "", []
        if q:
            where, args = " WHERE l.lead_no LIKE ? OR l.name LIKE ? OR l.mobile LIKE ?", [f"%{q.strip()}%"] * 3
        with self.lock:
            total = int(self.scalar(f"SELECT COUNT(*) FROM oem_leads l{where}", args))
            rows = self.query(f"{self._LEAD_VIEW}{where} ORDER BY l.assigned_on DESC, l.lead_no DESC LIMIT ? OFFSET ?",
                              args + [limit, offset])
        return total, rows

    def get_lead(self, lead_no: str) -> dict | None:
        return self.one(f"{self._LEAD_VIEW} WHERE l.lead_no = ?", (lead_no,))

    def all_leads(self) -> list[dict]:
        return self.query(f"{self._LEAD_VIEW} ORDER BY l.lead_no")

    def insert_lead(self, row: dict) -> str:
        with self.lock:
            no = self._numbered("oem_leads", "lead_no", "XL")
            self._insert("oem_leads", OEM_LEAD_COLS, {**row, "lead_no": no})
            return no

    def followups_of(self, lead_no: str) -> list[dict]:
        return self.query("SELECT * FROM oem_followups WHERE lead_no = ? ORDER BY followed_on, followup_no", (lead_no,))

    def all_oem_followups(self) -> list[dict]:
        return self.query("SELECT * FROM oem_followups ORDER BY followup_no")

    def insert_oem_followup(self, row: dict) -> str:
        with self.lock:
            no = self._numbered("oem_followups", "followup_no", "HF")
            self._insert("oem_followups", OEM_FOLLOWUP_COLS, {**row, "followup_no": no})
            return no

    def search_prospects(self, q: str, limit: int, offset: int) -> tuple[int, list[dict]]:
        """潜客, newest first; ``q`` matches prospect no, name, mobile or OEM lead no."""
        where, args = "", []
        if q:
            where = " WHERE prospect_no LIKE ? OR name LIKE ? OR mobile LIKE ? OR oem_lead_no LIKE ?"
            args = [f"%{q.strip()}%"] * 4
        with self.lock:
            total = int(self.scalar(f"SELECT COUNT(*) FROM dms_prospects{where}", args))
            rows = self.query(f"SELECT * FROM dms_prospects{where} ORDER BY prospect_no DESC LIMIT ? OFFSET ?",
                              args + [limit, offset])
        return total, rows

    def all_prospects(self) -> list[dict]:
        return self.query("SELECT * FROM dms_prospects ORDER BY prospect_no")

    def prospect_with(self, column: str, value: str) -> dict | None:
        assert column in ("oem_lead_no", "mobile", "prospect_no")
        return self.one(f"SELECT * FROM dms_prospects WHERE {column} = ? ORDER BY prospect_no LIMIT 1", (value,))

    def insert_prospect(self, row: dict) -> str:
        with self.lock:
            no = self._numbered("dms_prospects", "prospect_no", "QK")
            self._insert("dms_prospects", DMS_PROSPECT_COLS,
                         {**row, "prospect_no": no, "created_at": self.next_timestamp("dms_prospects", "created_at")})
            return no

    _DMS_FOLLOWUP_VIEW = ("SELECT f.followup_no, f.prospect_no, COALESCE(p.oem_lead_no, '') AS oem_lead_no, "
                          "COALESCE(p.name, '') AS name, COALESCE(p.mobile, '') AS mobile, f.followed_on, f.result, "
                          "f.next_step, f.note, f.staff, f.created_at FROM dms_followups f "
                          "LEFT JOIN dms_prospects p ON p.prospect_no = f.prospect_no")

    def search_dms_followups(self, q: str, limit: int, offset: int) -> tuple[int, list[dict]]:
        """跟进记录, newest first; ``q`` matches follow-up no, prospect no or OEM lead no."""
        where, args = "", []
        if q:
            where = " WHERE f.followup_no LIKE ? OR f.prospect_no LIKE ? OR p.oem_lead_no LIKE ?"
            args = [f"%{q.strip()}%"] * 3
        with self.lock:
            total = int(self.scalar("SELECT COUNT(*) FROM dms_followups f LEFT JOIN dms_prospects p "
                                    f"ON p.prospect_no = f.prospect_no{where}", args))
            rows = self.query(f"{self._DMS_FOLLOWUP_VIEW}{where} ORDER BY f.followup_no DESC LIMIT ? OFFSET ?",
                              args + [limit, offset])
        return total, rows

    def all_dms_followups(self) -> list[dict]:
        return self.query(f"{self._DMS_FOLLOWUP_VIEW} ORDER BY f.followup_no")

    def insert_dms_followup(self, row: dict) -> str:
        with self.lock:
            no = self._numbered("dms_followups", "followup_no", "GJ")
            self._insert("dms_followups", DMS_FOLLOWUP_COLS,
                         {**row, "followup_no": no, "created_at": self.next_timestamp("dms_followups", "created_at")})
            return no
