"""Prompt-lookup speculative decoding (generation/lookup_decode.py): greedy tokens exactly the static decoder's
(and so ``model.generate``'s), sampled tokens with exactly plain sampling's distribution."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from generation.lookup_decode import LookupDecoder  # noqa: E402
from generation.static_decode import StaticDecoder  # noqa: E402
from test_static_decode import PROMPTS, _hf_greedy, _model, _stopping_batch, fresh_dynamo  # noqa: E402, F401

# prompts that repeat themselves, so that drafts copied from them are often right
LOOPY = [[5, 6, 7, 8, 5, 6, 7, 8, 5, 6], [20, 21, 22, 20, 21], [9, 9, 9, 9], [30, 31, 40, 41, 30, 31, 40, 41, 30]]


STEPS = [(False, False), (True, False), (True, True)]  # (fused, compile): the step's forms (compiled: its choice too)
STEP_IDS = ["matmul-attention", "fused", "fused-compiled"]


@pytest.mark.parametrize("fused,compile", STEPS, ids=STEP_IDS)
@pytest.mark.parametrize("draft,ngram", [(1, 1), (4, 3), (6, 2)])
def test_greedy_equals_the_static_decoder_and_takes_fewer_steps(fused, compile, draft, ngram):
    model = _model("qwen2", seed=3)
    prompts = PROMPTS + LOOPY
    plain = StaticDecoder(model, fused=fused).generate(prompts, max_new_tokens=60, eos_ids=[1])
    dec = LookupDecoder(model, draft=draft, ngram=ngram, fused=fused, compile=compile, compile_choice=compile)
    ours = dec.generate(prompts, max_new_tokens=60, eos_ids=[1])
    assert dec.compiled == dec.compiled_choice == compile
    assert ours == plain == _hf_greedy(model, prompts, 60, [1])
    assert dec.steps < max(len(r) for r in ours) - 1  # drafts were kept: fewer steps than tokens after the first


def test_rows_stop_at_their_eos_and_at_max_new_tokens():
    model = _model("llama", seed=4)
    free = StaticDecoder(model).generate(PROMPTS + LOOPY, max_new_tokens=40, eos_ids=[1])
    r, k = next((r, k) for r, row in enumerate(free) for k in range(2, len(row)) if row[k] not in row[:k])
    eos = [free[r][k]]
    for max_new in (1, 2, 7, 40):
        want = StaticDecoder(model).generate(PROMPTS + LOOPY, max_new_tokens=max_new, eos_ids=eos)
        got = LookupDecoder(model, draft=5).generate(PROMPTS + LOOPY, max_new_tokens=max_new, eos_ids=eos)
        assert got == want, max_new
        assert all(len(row) <= max_new for row in got)
    assert got[r] == free[r][:k + 1]


def test_dropping_finished_rows_keeps_every_row_as_alone():
    """40 rows stopping at different steps: rows leave the batch (compactions recorded), the tokens do not change."""
    model, prompts, eos = _stopping_batch()
    dec = LookupDecoder(model, draft=3)
    ours = dec.generate(prompts, max_new_tokens=80, eos_ids=eos)
    assert dec.compactions
    assert ours == StaticDecoder(model, compact=False).generate(prompts, max_new_tokens=80, eos_ids=eos)


def _choose(decoder, logits, draft, temperature=1.0, min_p=None):
    decoder.temperature, decoder.min_p, decoder.greedy = temperature, min_p, None
    return decoder._choose_tokens(logits, draft)  # the decoder's own choice: compiled when it compiles


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
def test_a_sampled_token_has_the_target_distribution_whatever_the_draft(compile):
    """Speculative sampling with a one-token draft: the first token is the draft with probability p(draft), else a
    draw from p without it; together exactly p. Checked on 60,000 rows for a kept-often and a kept-rarely draft."""
    torch.manual_seed(0)
    dec = LookupDecoder(_model("qwen2"), draft=2, fused=compile, compile=compile, compile_choice=compile)
    assert dec.compiled_choice == compile
    p = torch.tensor([0.5, 0.25, 0.15, 0.07, 0.03])
    logits = p.log().expand(60000, 3, 5).clone()
    for first in (0, 4):
        draft = torch.tensor([first, 1]).expand(60000, 2).clone()
        tokens, count = _choose(dec, logits, draft)
        freq = torch.bincount(tokens[:, 0], minlength=5).float() / 60000
        assert (freq - p).abs().max() < 0.01, (first, freq)
        assert abs((count > 1).float().mean() - p[first]) < 0.01  # the draft token kept with probability p(draft)
        second = tokens[count > 1, 1]  # given the first was kept, the second has the distribution at slot 1
        freq2 = torch.bincount(second, minlength=5).float() / len(second)
        assert (freq2 - p).abs().max() < 4 * (0.25 / len(second)) ** 0.5, (first, freq2)  # 4 standard errors at most


def test_greedy_choice_keeps_the_agreeing_prefix_and_adds_the_models_token():
    dec = LookupDecoder(_model("qwen2"), draft=3)
    logits = torch.full((2, 4, 6), -5.0)
    for slot, best in enumerate([2, 3, 4, 5]):
        logits[:, slot, best] = 5.0
    draft = torch.tensor([[2, 3, 0], [1, 3, 4]])
    tokens, count = _choose(dec, logits, draft, temperature=0.0)
    assert count.tolist() == [3, 1]  # row 0: 2 and 3 agree, then the model's 4; row 1: the model's 2 at once
    assert tokens[0, :3].tolist() == [2, 3, 4] and tokens[1, 0].item() == 2


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
def test_min_p_filtered_draft_tokens_are_never_kept(compile):
    """Token 2 has probability 0.075 (kept ~375 times in 5,000 without min-p) but less than 0.1 x the top token's."""
    dec = LookupDecoder(_model("qwen2"), draft=1, fused=compile, compile=compile, compile_choice=compile)
    logits = torch.tensor([[[4.0, 0.0, 1.5], [0.0, 0.0, 0.0]]]).expand(5000, 2, 3).clone()
    tokens, count = _choose(dec, logits, torch.full((5000, 1), 2), min_p=None)
    assert 250 < int((count == 2).sum()) < 500
    tokens, count = _choose(dec, logits, torch.full((5000, 1), 2), min_p=0.1)
    assert (count == 1).all() and not (tokens[:, 0] == 2).any()


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
def test_sampled_generation_matches_plain_sampling_in_distribution(compile):
    """End to end on a tiny model: the first two generated tokens' frequencies over 3,000 samples of one prompt are
    those of plain (eager) sampling (each within 0.04), with the lookup step eager or compiled."""
    model = _model("qwen2", seed=5)
    prompts = [LOOPY[0]] * 3000
    torch.manual_seed(1)
    plain = StaticDecoder(model).generate(prompts, max_new_tokens=3, eos_ids=[1], temperature=1.5)
    torch.manual_seed(2)
    dec = LookupDecoder(model, draft=2, fused=compile, compile=compile, compile_choice=compile)
    ours = dec.generate(prompts, max_new_tokens=3, eos_ids=[1], temperature=1.5)
    for slot in (0, 1):
        a = torch.bincount(torch.tensor([r[slot] for r in plain if len(r) > slot]), minlength=97).float()
        b = torch.bincount(torch.tensor([r[slot] for r in ours if len(r) > slot]), minlength=97).float()
        assert (a / a.sum() - b / b.sum()).abs().max() < 0.04, slot


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="at least 1"):
        LookupDecoder(_model("qwen2"), draft=0)


def test_the_round_benchmark_times_and_scores_each_variant(tiny_model_dir, tmp_path, capsys):
    """benchmarks/lookup_round.py on CPU: a line per variant; greedy, both make the same tokens and scores."""
    import re

    from conftest import load_script
    from qwen_scheduler.cli import main

    assert main(["generate", "--output", str(tmp_path / "d"), "--train-size", "0", "--test-size", "3", "--seed",
                 "2"]) == 0
    capsys.readouterr()
    bench = load_script("benchmarks/lookup_round.py")
    assert bench.main(["--model", tiny_model_dir, "--dataset", str(tmp_path / "d"), "--device", "cpu", "--prompts",
                       "2", "--samples", "2", "--max-new", "24", "--temperature", "0", "--variants", "0", "3",
                       "3+choice"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("draft=")]
    assert [ln.split(":")[0] for ln in lines] == ["draft=0", "draft=3", "draft=3+choice"]
    figures = [re.search(r"(\d+) tokens, .* valid (\d+)/4, mean ([\d.]+)", ln).groups() for ln in lines]
    assert figures[0] == figures[1] == figures[2] and int(figures[0][0]) > 0
    with pytest.raises(SystemExit) as bad:
        bench.main(["--model", tiny_model_dir, "--dataset", str(tmp_path / "d"), "--variants", "2x"])
    assert bad.value.code == 2 and "a variant is DRAFT or DRAFT+choice" in capsys.readouterr().err
    assert bench.main(["--model", tiny_model_dir, "--dataset", str(tmp_path / "nowhere"), "--device", "cpu"]) == 2


@pytest.mark.parametrize("draft,ngram", [(2, 1), (4, 3)])
def test_the_offline_count_is_the_decoders_own_step_count(draft, ngram):
    """experiments/analysis/lookup_acceptance.py models the decoder: on one greedy row it counts the same steps."""
    from conftest import load_script

    count = load_script("experiments/analysis/lookup_acceptance.py").lookup_steps
    model = _model("qwen2", seed=3)
    for prompt in LOOPY + PROMPTS[:1]:
        dec = LookupDecoder(model, draft=draft, ngram=ngram)
        out = dec.generate([prompt], max_new_tokens=50, eos_ids=[1])[0]
        assert dec.steps == count(prompt + out[:1], out[1:], draft, ngram, pad=0), prompt


def test_the_pass_profile_times_each_variants_choice_and_refuses_unknown_variants(capsys):
    """benchmarks/profile_static_decode.py --choice-only on CPU: a line per variant with its positions per step;
    ``+choice`` variants really compile the choice (dynamo captures a frame); an unknown variant is exit 2."""
    from conftest import load_script
    from torch._dynamo.utils import counters

    bench = load_script("benchmarks/profile_static_decode.py")
    captured = counters["stats"]["calls_captured"]
    assert bench.main(["--device", "cpu", "--batch", "4", "--choice-only",
                       "--variants", "fused,lookup2,lookup2+choice"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "ms per choice" in ln]
    assert [ln.split()[0] for ln in lines] == ["fused", "lookup2", "lookup2+choice"]
    assert [ln.split(" x ")[1].split()[0] for ln in lines] == ["1", "3", "3"]
    assert counters["stats"]["calls_captured"] > captured
    assert bench.main(["--device", "cpu", "--variants", "plain+choice"]) == 2
    assert "unknown variant(s) plain+choice" in capsys.readouterr().err


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
def test_greedy_rows_among_sampled_ones_decode_as_the_greedy_decoder(compile):
    """GRPO's greedy anchor with drafting: flagged rows are exactly the plain greedy decode, the others sample."""
    model = _model("qwen2", seed=5)
    prompts = PROMPTS + LOOPY
    flags = [i % 2 == 0 for i in range(len(prompts))]
    greedy = StaticDecoder(model).generate(prompts, max_new_tokens=30, eos_ids=[1])
    torch.manual_seed(0)
    dec = LookupDecoder(model, draft=3, fused=compile, compile=compile, compile_choice=compile)
    mixed = dec.generate(prompts, max_new_tokens=30, eos_ids=[1], temperature=1.5, greedy=flags)
    assert [m for m, f in zip(mixed, flags) if f] == [g for g, f in zip(greedy, flags) if f]
    assert any(m != g for m, g, f in zip(mixed, greedy, flags) if not f)
