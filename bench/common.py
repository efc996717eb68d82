"""What the benchmarks that build a customer base straight in the database share."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CORP = "wwbench000000001"
SETTINGS = {
    "WECOM_CORP_ID": CORP, "WECOM_CONTACT_SECRET": "bench-contact", "WECOM_AGENT_ID": "1000002",
    "WECOM_AGENT_SECRET": "bench-agent", "WECOM_TOKEN": "BenchToken",
    "WECOM_ENCODING_AES_KEY": "BenchEncodingAesKey0123456789abcdefghijklmn",
    "WECOM_API_BASE": "http://127.0.0.1:9", "TESTING": True, "SCRM_EMBEDDED_WORKER": False,
    "SECRET_KEY": "bench-secret",
}
TAG_GROUPS = {"客户等级": ["A类", "B类", "C类"], "行业": ["教育", "医疗", "制造", "零售", "金融", "互联网"],
              "来源渠道": ["展会", "官网", "转介绍", "广告", "线下活动"], "意向产品": ["标准版", "专业版", "旗舰版"]}


def row(benchmark: str, case: str, figure: str, value: float, unit: str, target: str = "",
        met: bool | None = None) -> dict[str, object]:
    """One line of `python -m bench`'s table: a figure of a benchmark, its target and whether it is met."""
    return {"benchmark": benchmark, "case": case, "figure": figure, "value": value, "unit": unit,
            "target": target, "met": met}


def emit_rows(rows: list[dict[str, object]]) -> None:
    """Print the rows for `python -m bench` (one machine-readable line; the bench's own output stays)."""
    import json

    print("BENCH-ROWS " + json.dumps(rows, ensure_ascii=False), flush=True)
