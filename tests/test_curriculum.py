"""The GRPO curriculum (training/curriculum.py): the order by rising event count, its mix of earlier rows, the
settings it refuses, and TRL's own sampler walking the ordered rows as they are (shuffle_dataset off)."""

import random
from types import SimpleNamespace

import pytest

from scheduler_solver.errors import UserError
from training.curriculum import check_curriculum, curriculum_order, step_span


def _counts(seed: int = 0, n: int = 200) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(4, 16) for _ in range(n)]


def test_without_mix_the_order_is_every_row_once_in_rising_event_count():
    counts = _counts()
    order, stretches = curriculum_order(counts, seed=3)
    assert sorted(order) == list(range(len(counts)))
    seen = [counts[i] for i in order]
    assert seen == sorted(seen)
    assert [s["events"] for s in stretches] == sorted(set(counts))
    assert [s["rows"] for s in stretches] == [counts.count(n) for n in sorted(set(counts))]
    assert all(s["replays"] == 0 for s in stretches)


def test_the_shuffle_within_a_count_is_seeded():
    counts = _counts()
    assert curriculum_order(counts, seed=3) == curriculum_order(counts, seed=3)
    assert curriculum_order(counts, seed=3)[0] != curriculum_order(counts, seed=4)[0]


@pytest.mark.parametrize("mix", [0.2, 0.5])
def test_mix_gives_a_share_of_each_later_stretch_to_earlier_rows_and_keeps_the_length(mix):
    counts = _counts(n=1300)
    order, stretches = curriculum_order(counts, seed=0, mix=mix)
    assert len(order) == len(counts)
    start = 0
    for k, s in enumerate(stretches):
        part = order[start:start + s["rows"]]
        earlier = [i for i in part if counts[i] < s["events"]]
        assert all(counts[i] <= s["events"] for i in part)
        assert len(earlier) == s["replays"] == (0 if k == 0 else round(mix * s["rows"]))
        assert set(earlier) <= set(order[:start])  # drawn again from the stretches before it
        assert len(set(part)) == len(part)
        start += s["rows"]
    late = order[len(order) // 2:]
    assert min(counts[i] for i in late) == 4  # the smallest problems stay in the run's second half


@pytest.mark.parametrize("script, argv, message", [
    ({"curriculum": False, "curriculum_mix": 0.2}, [], "curriculum_mix needs curriculum: true"),
    ({"curriculum": True, "curriculum_mix": 1.0}, [], "curriculum_mix must be in [0, 1)"),
    ({"curriculum": True, "curriculum_mix": 0.0}, ["--shuffle_dataset", "true"], "shuffle_dataset: true would undo"),
])
def test_settings_the_order_cannot_keep_are_refused(script, argv, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace(")", r"\)")):
        check_curriculum(SimpleNamespace(**script), SimpleNamespace(shuffle_dataset=True), argv)


def test_curriculum_turns_trls_shuffling_off_and_trls_sampler_keeps_the_order():
    """TRL 1.16's RepeatSampler with shuffle off yields the dataset's rows in order, each prompt num_generations
    times, a generation round at a time: the curriculum's order is the order of the prompts trained on."""
    from trl.trainer.utils import RepeatSampler

    args = SimpleNamespace(shuffle_dataset=True)
    check_curriculum(SimpleNamespace(curriculum=True, curriculum_mix=0.2), args, [])
    assert args.shuffle_dataset is False
    counts = _counts(n=48)
    order, _ = curriculum_order(counts, seed=0)
    ordered = [counts[i] for i in order]
    indices = list(RepeatSampler(ordered, mini_repeat_count=4, batch_size=6, repeat_count=2,
                                 shuffle=args.shuffle_dataset))
    assert len(indices) == 48 * 4 * 2
    walked = list(dict.fromkeys(indices))  # each row at its first use
    assert walked == list(range(48)) and [ordered[i] for i in walked] == sorted(counts)


def test_step_span_matches_the_rounds():
    args = SimpleNamespace(generation_batch_size=384, num_generations=8, steps_per_generation=48, num_iterations=1,
                           gradient_accumulation_steps=48)
    assert step_span(0, 47, args) == (1, 1) and step_span(48, 143, args) == (2, 3)
