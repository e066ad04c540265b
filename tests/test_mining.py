"""Hard-prompt mining (training/mining.py): which rows it keeps, and its record in the output folder.

The end-to-end run (GRPO on mined rows with the tiny model) is in tests/test_grpo.py.
"""

import json

import pytest

from scheduler_solver.errors import UserError
from scheduler_solver.prompts import render_answer
from training.mining import MINING_FILE, describe, load_mined, save_mined, select_rows

ROW = {"events": [["Yoga", "09:00", "10:00"], ["Standup", "09:30", "11:00"], ["Lunch", "11:00", "12:00"]],
       "priority_events": []}
BEST = render_answer([ROW["events"][1], ROW["events"][2]], "pick")  # 150 min: the optimum
SHORT = render_answer([ROW["events"][0], ROW["events"][2]], "pick")  # valid, 120 min
OVERLAP = render_answer([ROW["events"][0], ROW["events"][1]], "pick")
MISNAMED = BEST.replace("Standup", "Stand-up")


@pytest.mark.parametrize("completion,hard,category", [
    (BEST, False, "valid"),
    (SHORT, True, "valid"),  # valid but below the optimum: still something to learn
    (OVERLAP, True, "overlap"),
    (MISNAMED, True, "event_not_in_input"),
    ("<think>no schedule</think>", True, "format_error"),
])
def test_a_row_is_hard_unless_every_sample_is_optimal(completion, hard, category):
    chosen, stats = select_rows([ROW, ROW], {(0, 0): BEST, (0, 1): BEST, (1, 0): BEST, (1, 1): completion},
                                samples=2, keep=2)
    assert stats["hard"] == int(hard)
    assert chosen == ([1, 0] if hard else [0, 1])  # hard rows first, then the rest in order
    assert stats["categories"][category] >= 1


def test_keep_cuts_the_list_and_a_missing_sample_is_an_error():
    texts = {(i, 0): (BEST if i % 2 else SHORT) for i in range(6)}
    chosen, stats = select_rows([ROW] * 6, texts, samples=1, keep=4)
    assert chosen == [0, 2, 4, 1] and stats["hard"] == 3 and stats["kept"] == 4
    with pytest.raises(ValueError, match="row 5 sample 0"):
        select_rows([ROW] * 6, {k: v for k, v in texts.items() if k != (5, 0)}, samples=1, keep=4)


def test_the_record_round_trips_and_refuses_another_candidate_pool(tmp_path):
    stats = {"candidates": 10, "samples": 1, "hard": 2, "kept": 3, "categories": {"valid": 9, "overlap": 1}}
    assert load_mined(str(tmp_path), 10) is None
    save_mined(str(tmp_path), [4, 7, 0], stats)
    assert load_mined(str(tmp_path), 10) == ([4, 7, 0], stats)
    with pytest.raises(UserError, match="mined from 10 candidates, this run has 12"):
        load_mined(str(tmp_path), 12)
    (tmp_path / MINING_FILE).write_text(json.dumps({"rows": "x"}))
    with pytest.raises(UserError, match="not a mining record"):
        load_mined(str(tmp_path), 10)
    assert describe(stats).startswith("10 candidates x 1 samples: 2 with a sample below the optimum; kept 3 rows")


def test_zero_candidates_turn_mining_off_like_null():
    from training.grpo import GRPOScriptArguments
    from training.mining import check_mining

    for value in (0, None):
        script = GRPOScriptArguments(mine_candidates=value, limit=None, mine_samples=0)  # no other mining check runs
        check_mining(script)
        assert script.mine_candidates is None
    with pytest.raises(UserError, match="mine_candidates must be >= 0"):
        check_mining(GRPOScriptArguments(mine_candidates=-4, limit=2))
