"""A live run's progress as the console says it: n of N, time left, Chinese labels."""

from __future__ import annotations


def test_time_left_and_progress_are_said_in_chinese():
    from dealerbot.console.run_page import progress_payload

    p = progress_payload({"pages": 3, "read": 60, "accepted": 58, "rejected": 2, "expected": 240}, elapsed=30.0)
    assert (p["done"], p["total"], p["percent"], p["left"]) == (60, 240, 25, "约 2 分钟")
    assert p["items"] == [["列表页", 3], ["读取", 60], ["接受", 58], ["拒绝", 2]]
    writing = progress_payload({"actions": 10, "expected": 10, "done": 4, "verified": 4, "unfinished": 1}, elapsed=5.0)
    assert (writing["done"], writing["total"], writing["left"]) == (5, 10, "不到 1 分钟")
    assert progress_payload({"read": 7}, None)["total"] is None
