"""Deterministic data generator for the sandbox.

Everything is derived from ``random.Random(seed)``; the same seed and sizes always give the
same data. The generated records are plain dicts whose keys are the column names used by
:mod:`dealerbot.sandbox.state`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

STATUSES = ("已下单", "已配车", "在途", "已到店", "已交车", "已取消")
STATUS_WEIGHTS = (15, 15, 20, 15, 30, 5)
# The DMS's own contract statuses (they differ from the OEM's order statuses).
CONTRACT_STATUSES = ("待配车", "已配车", "运输中", "待交车", "已交车", "已取消")
# How a clerk would follow an OEM status in the DMS (sandbox-internal: bots use their dictionary).
OEM_TO_DMS_STATUS = {"已下单": "待配车", "已配车": "已配车", "在途": "运输中", "已到店": "待交车",
                     "已交车": "已交车", "已取消": "已取消"}
ID_TYPES = ("身份证", "护照", "港澳通行证")
COLORS = ("珍珠白", "曜石黑", "星空灰", "极光蓝", "赤焰红", "香槟金", "冰川银")

# OEM catalogue: (oem code, Chinese name, base price, DMS code). Sandbox-internal data:
# the real bots must not rely on it, they get the mapping from their own config.
OEM_MODELS = (
    ("GX3-15T-STD", "国星GX3 1.5T 舒适版", 89_800, "DMS-GX3S", "GX3"),
    ("GX3-15T-LUX", "国星GX3 1.5T 豪华版", 109_800, "DMS-GX3L", "GX3"),
    ("GX5-15T-STD", "国星GX5 1.5T 舒适版", 129_800, "DMS-GX5S", "GX5"),
    ("GX5-20T-LUX", "国星GX5 2.0T 豪华版", 159_800, "DMS-GX5L", "GX5"),
    ("GX7-20T-STD", "国星GX7 2.0T 精英版", 189_800, "DMS-GX7S", "GX7"),
    ("GX7-25T-LUX", "国星GX7 2.5T 旗舰版", 239_800, "DMS-GX7L", "GX7"),
    ("GX9-25T-LUX", "国星GX9 2.5T 豪华七座", 299_800, "DMS-GX9L", "GX9"),
    ("GX9-30T-FLG", "国星GX9 3.0T 旗舰七座", 369_800, "DMS-GX9F", "GX9"),
    ("EV6-LR-PRO", "国星EV6 长续航 Pro", 209_800, "DMS-EV6P", "EV6"),
    ("EV8-AWD-MAX", "国星EV8 四驱 Max", 429_800, "DMS-EV8M", "EV8"),
)
OEM_TO_DMS = {m[0]: m[3] for m in OEM_MODELS}
# A model the OEM launched days ago: some recent orders carry it, and the DMS has no code for it
# yet (so no dictionary can map it until the DMS adds one).
NEW_MODEL = ("EV9-AWD-LTD", "国星EV9 四驱 首发限量版", 459_800)
# DMS model list (code, name); the DMS also knows two models the OEM no longer sells.
DMS_MODELS = tuple((m[3], m[1].replace("国星", "国星 ")) for m in OEM_MODELS) + (
    ("DMS-GX5X", "国星 GX5 1.5T 老款"),
    ("DMS-GX7X", "国星 GX7 2.0T 老款"),
)
PRICE_MIN, PRICE_MAX = 89_800, 459_800

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁"
    "任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官", "慕容")
GIVEN_CHARS = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红建国文辉力鹏飞宇浩然子涵欣怡梓轩思雨"
    "一诺佳琪雅婷俊杰志强海燕晓东春梅立新永刚丹丹婧瑶博文嘉怡宏伟晨阳家豪雪梅亮琳凯鑫淑珍德明"
)
# (province, city, districts, landline area code, ID area prefixes)
CITIES = (
    ("浙江省", "杭州市", ("西湖区", "拱墅区", "滨江区", "余杭区", "萧山区"), "0571", ("330106", "330105", "330108")),
    ("浙江省", "宁波市", ("海曙区", "鄞州区", "江北区"), "0574", ("330203", "330212")),
    ("上海市", "上海市", ("浦东新区", "徐汇区", "闵行区", "静安区"), "021", ("310115", "310104", "310112")),
    ("江苏省", "南京市", ("鼓楼区", "玄武区", "江宁区"), "025", ("320106", "320102", "320115")),
    ("江苏省", "苏州市", ("姑苏区", "吴中区", "工业园区"), "0512", ("320508", "320506")),
    ("北京市", "北京市", ("朝阳区", "海淀区", "丰台区"), "010", ("110105", "110108", "110106")),
    ("广东省", "广州市", ("天河区", "越秀区", "番禺区"), "020", ("440106", "440104", "440113")),
    ("广东省", "深圳市", ("南山区", "福田区", "宝安区"), "0755", ("440305", "440304", "440306")),
    ("四川省", "成都市", ("武侯区", "锦江区", "高新区"), "028", ("510107", "510104")),
    ("湖北省", "武汉市", ("江汉区", "洪山区", "武昌区"), "027", ("420103", "420111", "420106")),
    ("安徽省", "合肥市", ("蜀山区", "包河区"), "0551", ("340104", "340111")),
    ("福建省", "厦门市", ("思明区", "湖里区"), "0592", ("350203", "350206")),
)
STREETS = ("文三路", "中山路", "解放路", "人民路", "建设路", "体育场路", "南京路", "学院路", "江南大道", "科技大道",
           "长江路", "黄河路", "延安路", "滨江路", "东方路")
MOBILE_PREFIXES = ("130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "155",
                   "156", "157", "158", "159", "166", "170", "176", "177", "178", "180", "181", "182", "183",
                   "185", "186", "187", "188", "189", "191", "198", "199")

VIN_TRANSLIT = {**{str(d): d for d in range(10)},
                **dict(zip("ABCDEFGH", range(1, 9))), **dict(zip("JKLMN", range(1, 6))), "P": 7, "R": 9,
                **dict(zip("STUVWXYZ", range(2, 10)))}
VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
VIN_CHARS = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
VIN_YEAR = {2024: "R", 2025: "S", 2026: "T", 2027: "V"}

# Formula-injection fixtures (see docs): OEM city texts and DMS addresses.
OEM_FORMULA_CITIES = ('=HYPERLINK("http://example.invalid","点击")', "=1+1*杭州市", "+86 杭州市")
DMS_FORMULA_ADDRESSES = ("@SUM(1,1) 杭州市西湖区文三路1号", "-2+3 杭州市滨江区江南大道8号")


def vin_check_digit(vin: str) -> str:
    """ISO 3779 check digit (position 9) of a 17-character VIN."""
    total = sum(VIN_TRANSLIT[c] * w for c, w in zip(vin.upper(), VIN_WEIGHTS))
    r = total % 11
    return "X" if r == 10 else str(r)


def vin_is_valid(vin: str) -> bool:
    vin = vin.upper()
    if len(vin) != 17 or any(c not in VIN_CHARS for c in vin):
        return False
    return vin[8] == vin_check_digit(vin)


def id_check_code(first17: str) -> str:
    """GB 11643 check code of an 18-digit resident ID number."""
    return ID_CHECK[sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS)) % 11]


def id_is_valid(idn: str) -> bool:
    idn = idn.upper()
    if len(idn) != 18 or not idn[:17].isdigit() or not (idn[17].isdigit() or idn[17] == "X"):
        return False
    return idn[17] == id_check_code(idn[:17])


def mobile_is_clean(mobile: str) -> bool:
    return len(mobile) == 11 and mobile.isascii() and mobile.isdigit() and mobile[0] == "1" and mobile[1] in "3456789"


def reference_datetime(seed: int) -> datetime:
    """The fixed "now" of the generated data.

    A seed that reads as a date YYYYMMDD (2000-2099) gives that day at 18:00:00; any other
    seed gives 2026-11-25 18:00:00 minus (seed mod 30) days.
    """
    s = str(seed)
    if len(s) == 8 and s.isdigit():
        try:
            d = date(int(s[:4]), int(s[4:6]), int(s[6:]))
            if 2000 <= d.year <= 2099:
                return datetime(d.year, d.month, d.day, 18, 0, 0)
        except ValueError:
            pass
    return datetime(2026, 11, 25, 18, 0, 0) - timedelta(days=seed % 30)


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S")


@dataclass
class Dataset:
    reference: datetime
    oem_customers: list[dict] = field(default_factory=list)
    oem_orders: list[dict] = field(default_factory=list)
    dms_customers: list[dict] = field(default_factory=list)
    dms_contracts: list[dict] = field(default_factory=list)
    # the delivery-report flow (sandbox/retail_data.py): OEM allocations and reports, DMS deliveries
    oem_allocations: list[dict] = field(default_factory=list)
    oem_reports: list[dict] = field(default_factory=list)
    dms_deliveries: list[dict] = field(default_factory=list)
    # the leads flow (sandbox/leads_data.py): OEM leads and logged follow-ups, DMS prospects and follow-ups
    oem_leads: list[dict] = field(default_factory=list)
    oem_followups: list[dict] = field(default_factory=list)
    dms_prospects: list[dict] = field(default_factory=list)
    dms_followups: list[dict] = field(default_factory=list)


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.vin_serial = 0

    # -- people ---------------------------------------------------------------------------
    def name(self) -> str:
        r = self.rng
        surname = r.choice(COMPOUND_SURNAMES) if r.random() < 0.02 else r.choice(SURNAMES)
        n = 1 if r.random() < 0.3 else 2
        return surname + "".join(r.choice(GIVEN_CHARS) for _ in range(n))

    def mobile(self) -> str:
        return self.rng.choice(MOBILE_PREFIXES) + "".join(self.rng.choice("0123456789") for _ in range(8))

    def malform(self, clean: str, city: tuple) -> str:
        """Turn a clean mobile into a messy one the way real data entry does."""
        r = self.rng
        kind = r.randrange(8)
        if kind == 0:
            return f"{clean[:3]} {clean[3:7]} {clean[7:]}"
        if kind == 1:
            return f"{clean[:3]}-{clean[3:7]}-{clean[7:]}"
        if kind == 2:
            return r.choice(("+86 ", "+86", "+86-")) + clean
        if kind == 3:
            return r.choice(("0086 ", "0086")) + clean
        if kind == 4:
            return clean.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
        if kind == 5:
            area = city[3]
            local = "".join(r.choice("0123456789") for _ in range(7 if len(area) == 4 else 8))
            local = str(r.randint(2, 8)) + local[1:]
            return f"{area}-{local[:4]} {local[4:]}"
        if kind == 6:
            i = r.randrange(3, 11)
            return clean[:i] + clean[i + 1:]
        return f" {clean} "  # stray blanks copied from a spreadsheet

    def id_number(self, city: tuple, wrong: bool) -> str:
        r = self.rng
        birth = date(1960, 1, 1) + timedelta(days=r.randrange(365 * 43))
        first17 = r.choice(city[4]) + birth.strftime("%Y%m%d") + f"{r.randrange(1000):03d}"
        check = id_check_code(first17)
        if wrong:
            check = r.choice([c for c in "0123456789X" if c != check])
        return first17 + check

    def address(self, city: tuple) -> str:
        r = self.rng
        prov, cname = city[0], city[1]
        head = cname if prov == cname else prov + cname
        return (f"{head}{r.choice(city[2])}{r.choice(STREETS)}{r.randint(1, 999)}号"
                f"{r.randint(1, 30)}幢{r.randint(1, 28)}{r.randint(1, 4):02d}室")

    # -- cars -------------------------------------------------------------------------------
    def vin(self, model_code: str, year: int, wrong: bool) -> str:
        r = self.rng
        self.vin_serial += 1
        wmi = "LGX" if not model_code.startswith("EV") else "LGE"
        family = model_code.split("-")[0]  # e.g. GX7
        vds = (family[:2] + family[2:] + "A1B")[:5].replace("I", "1").replace("O", "0").replace("Q", "9")
        year_ch = VIN_YEAR.get(year, "T")
        plant = r.choice("HNZ")
        serial = f"{self.vin_serial:06d}"
        body = wmi + vds + "0" + year_ch + plant + serial
        check = vin_check_digit(body)
        if wrong:
            check = r.choice([c for c in "0123456789X" if c != check])
        return body[:8] + check + body[9:]


def generate(seed: int, orders: int, customers: int | None = None) -> Dataset:
    """Generate the whole sandbox data set (OEM and DMS) from a seed."""
    g = _Gen(seed)
    r = g.rng
    ref = reference_datetime(seed)
    n_cust = customers if customers is not None else max(5, round(orders * 0.8))
    ds = Dataset(reference=ref)

    def when(max_days: float = 60.0) -> datetime:
        return ref - timedelta(seconds=r.randrange(int(max_days * 86400)))

    # ---- OEM customers -----------------------------------------------------------------
    n_dup = max(2, n_cust // 100) if n_cust >= 20 else 0
    n_base = n_cust - n_dup
    messy = set(r.sample(range(n_base), round(n_base * 0.12)))
    bad_ids = set(r.sample(range(n_base), max(1, round(n_base * 0.01))))
    formula_idx = r.sample(range(n_base), len(OEM_FORMULA_CITIES))
    for i in range(n_base):
        city = r.choice(CITIES)
        clean = g.mobile()
        mobile = g.malform(clean, city) if i in messy else clean
        x = r.random()
        if x < 0.02:
            id_type, idn = "护照", "E" + "".join(r.choice("0123456789") for _ in range(8))
        elif x < 0.03:
            id_type, idn = "港澳通行证", "C" + "".join(r.choice("0123456789") for _ in range(8))
        else:
            id_type, idn = "身份证", g.id_number(city, i in bad_ids)
        ds.oem_customers.append({
            "customer_no": f"CU{i + 1:07d}",
            "name": g.name(),
            "mobile": mobile,
            "clean_mobile": clean,
            "id_type": id_type,
            "id_number": idn,
            "city": city[1],
            "address": g.address(city),
            "consent": "已授权" if r.random() < 0.8 else "未授权",
            "updated_at": iso(when()),
            "_city": city,
        })
    for k, i in enumerate(formula_idx):
        ds.oem_customers[i]["city"] = OEM_FORMULA_CITIES[k]
    # duplicates: the same person entered again with a differently formatted mobile
    for j, src_i in enumerate(r.sample(range(n_base), n_dup)):
        src = ds.oem_customers[src_i]
        clean = src["clean_mobile"]
        fmt = (f"{clean[:3]} {clean[3:7]} {clean[7:]}", f"{clean[:3]}-{clean[3:7]}-{clean[7:]}",
               "+86 " + clean, clean)
        mobile = next(m for m in fmt if m != src["mobile"])
        dup = dict(src, customer_no=f"CU{n_base + j + 1:07d}", mobile=mobile, updated_at=iso(when()))
        ds.oem_customers.append(dup)

    # ---- OEM orders --------------------------------------------------------------------
    bad_vins = set(r.sample(range(orders), max(1, round(orders * 0.02))))
    for i in range(orders):
        cust = r.choice(ds.oem_customers)
        model = r.choice(OEM_MODELS)
        status = r.choices(STATUSES, STATUS_WEIGHTS)[0]
        updated = when()
        price = min(PRICE_MAX, max(PRICE_MIN, model[2] + r.choice((0, 0, 3000, 5000, 8000, 12000, 30000))))
        has_vin = status != "已下单" and (status != "已取消" or r.random() < 0.5)
        vin = g.vin(model[0], r.choice((2025, 2026, 2026)), i in bad_vins) if has_vin else ""
        ds.oem_orders.append({
            "order_no": f"XS{ref.year}{i + 1:06d}",
            "customer_no": cust["customer_no"],
            "customer_name": cust["name"],
            "mobile": cust["mobile"],
            "id_type": cust["id_type"],
            "id_number": cust["id_number"],
            "model_code": model[0],
            "color": r.choice(COLORS),
            "vin": vin,
            "price": float(price),
            "status": status,
            "planned_delivery_date": (updated.date() + timedelta(days=r.randint(7, 60))).isoformat(),
            "updated_at": iso(updated),
        })

    # ---- DMS ---------------------------------------------------------------------------
    contract_orders = sorted(r.sample([o for o in ds.oem_orders if o["status"] != "已取消"],
                                      min(round(orders * 0.4), sum(o["status"] != "已取消" for o in ds.oem_orders))),
                             key=lambda o: o["updated_at"])
    need = {o["customer_no"] for o in contract_orders}
    cust_by_no = {c["customer_no"]: c for c in ds.oem_customers}
    extra = [c["customer_no"] for c in ds.oem_customers if c["customer_no"] not in need and r.random() < 0.2]
    dms_sources = [cust_by_no[no] for no in sorted(need | set(extra))]
    # DMS-only customers (walk-ins who never got an OEM order)
    n_only = max(3, n_cust // 5)
    rows: list[tuple[str, dict]] = []
    for c in dms_sources:
        mobile = c["clean_mobile"] if r.random() < 0.85 else c["mobile"]
        rows.append((c["customer_no"], {"name": c["name"], "mobile": mobile, "id_number": c["id_number"],
                                        "address": c["address"]}))
    for _ in range(n_only):
        city = r.choice(CITIES)
        rows.append(("", {"name": g.name(), "mobile": g.mobile(), "id_number": g.id_number(city, False),
                          "address": g.address(city)}))
    r.shuffle(rows)
    oem_to_dms: dict[str, str] = {}
    for k, (oem_no, row) in enumerate(rows):
        created = ref - timedelta(seconds=r.randrange(400 * 86400))
        dms_no = f"KH{k + 1:06d}"
        if oem_no:
            oem_to_dms[oem_no] = dms_no
        ds.dms_customers.append({"customer_no": dms_no, **row, "created_at": iso(created)})
    for k, addr in enumerate(DMS_FORMULA_ADDRESSES):
        ds.dms_customers[(k * 7 + 3) % len(ds.dms_customers)]["address"] = addr
    dms_by_no = {c["customer_no"]: c for c in ds.dms_customers}
    for k, o in enumerate(contract_orders):
        cno = oem_to_dms[o["customer_no"]]
        price = o["price"] - r.choice((0, 0, 0, 2000, 5000))
        ds.dms_contracts.append({
            "contract_no": f"HT{ref.year}{ref.month:02d}{k + 1:04d}",
            "customer_no": cno,
            "customer_name": dms_by_no[cno]["name"],
            "model_code": OEM_TO_DMS[o["model_code"]],
            "color": o["color"],
            "vin": o["vin"],
            "price": float(price),
            "deposit": float(r.choice((5000, 10000, 10000, 20000))),
            "delivery_date": o["planned_delivery_date"],
            "oem_order_no": o["order_no"],
            "status": OEM_TO_DMS_STATUS[o["status"]],  # then lagged in _quirks
            "updated_at": o["updated_at"],
        })
    _quirks(ds, seed, ref)
    from .retail_data import generate_retail  # (it imports this module's check digits)

    retail = generate_retail(seed, ref, ds.oem_orders, ds.dms_contracts, ds.dms_customers)
    ds.oem_allocations, ds.oem_reports, ds.dms_deliveries = retail["allocations"], retail["reports"], retail["deliveries"]
    from .leads_data import generate_leads

    leads = generate_leads(seed, ref, ds.dms_customers)
    ds.oem_leads, ds.oem_followups = leads["leads"], leads["oem_followups"]
    ds.dms_prospects, ds.dms_followups = leads["prospects"], leads["dms_followups"]
    for c in ds.oem_customers:
        c.pop("_city", None)
        c.pop("clean_mobile", None)
    return ds


def _quirks(ds: Dataset, seed: int, ref: datetime) -> None:
    """What makes the DMS lag behind the OEM, drawn from a random stream of its own so that
    the rest of the data stays as it was for a seed.

    * About a third of the contracts show an earlier status than their order (the clerk has
      not caught up yet); a contract still before 已配车 has no VIN yet.
    * About 2% of the orders without a contract, among the last 10 days, are of the newly
      launched model (:data:`NEW_MODEL`), which the DMS does not know.
    """
    q = random.Random(seed * 7919 + 17)
    order_by_no = {o["order_no"]: o for o in ds.oem_orders}
    lifecycle = CONTRACT_STATUSES[:5]
    for c in ds.dms_contracts:
        o = order_by_no[c["oem_order_no"]]
        target = OEM_TO_DMS_STATUS[o["status"]]
        c["status"] = target
        if target in lifecycle and lifecycle.index(target) > 0 and q.random() < 0.33:
            c["status"] = lifecycle[q.randrange(lifecycle.index(target))]
            if c["status"] == "待配车":
                c["vin"] = ""
    with_contract = {c["oem_order_no"] for c in ds.dms_contracts}
    recent = [o for o in ds.oem_orders if o["order_no"] not in with_contract
              and o["updated_at"] >= iso(ref - timedelta(days=10)) and o["status"] != "已取消"]
    for o in q.sample(recent, min(len(recent), max(1, round(len(ds.oem_orders) * 0.02)))):
        o["model_code"] = NEW_MODEL[0]
        o["price"] = float(NEW_MODEL[2])
