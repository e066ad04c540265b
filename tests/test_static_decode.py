"""The static-cache decoder (generation/static_decode.py) against transformers' own ``model.generate``.

On CPU the decoder runs its decoding step eagerly in float32, so greedy completions must equal
``model.generate``'s token for token (left padding, GQA, biases, tied or untied heads, EOS stops).
The CUDA-graph path is the same step recorded; it is timed on a GPU (docs/benchmarks.md).
"""

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from generation.settings import generated_length  # noqa: E402
from generation.static_decode import BUCKET, StaticDecoder, unsupported_reason  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Every test compiles afresh: dynamo's caches, shared by every decoder in the process, neither fill up across
    tests (past its recompile limit a "compiled" function runs eagerly) nor spare a test its own compilation."""
    torch._dynamo.reset()


def _model(kind: str, seed: int = 0, tied: bool = False, **extra):
    torch.manual_seed(seed)
    common = dict(vocab_size=97, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=6,
                  num_key_value_heads=2, max_position_embeddings=2048, rms_norm_eps=1e-5)
    common.update(extra)
    if kind == "qwen2":
        model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**common, tie_word_embeddings=tied))
    else:
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**common, tie_word_embeddings=tied,
                                                                       rope_theta=100000.0))
    # sharper logits than a fresh init, so greedy choices are not near ties that float rounding could flip
    if not tied:
        with torch.no_grad():
            model.lm_head.weight.mul_(8.0)
    return model.eval()


def _hf_greedy(model, prompts, max_new, eos, pad=0):
    P = max(len(p) for p in prompts)
    ids = torch.tensor([[pad] * (P - len(p)) + list(p) for p in prompts])
    mask = torch.tensor([[0] * (P - len(p)) + [1] * len(p) for p in prompts])
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new, do_sample=False,
                         eos_token_id=eos, pad_token_id=pad)[:, P:].tolist()
    return [row[:generated_length(row, set(eos))[0]] for row in out]


PROMPTS = [[5, 17, 33, 2, 9, 41, 7], [12, 3], [60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70], [8, 8, 8, 8]]


@pytest.mark.parametrize("fused", [False, True], ids=["matmul-attention", "fused"])
@pytest.mark.parametrize("kind,tied", [("qwen2", False), ("llama", False), ("qwen2", True)])
def test_greedy_equals_transformers_generate(kind, tied, fused):
    model = _model(kind, tied=tied)
    eos = [1]
    ours = StaticDecoder(model, fused=fused).generate(PROMPTS, max_new_tokens=40, eos_ids=eos, temperature=0.0)
    assert ours == _hf_greedy(model, PROMPTS, 40, eos)
    if not tied:  # (a tied random model mostly repeats its last token)
        assert any(len(set(row)) > 3 for row in ours)


def test_stops_at_eos_and_keeps_it():
    model = _model("qwen2", seed=1)
    free = StaticDecoder(model).generate(PROMPTS, max_new_tokens=30, eos_ids=[1])
    # make a token that a row picks for the first time at step k >= 1 an EOS: that row must stop right there, the EOS kept
    r, k = next((r, k) for r, row in enumerate(free) for k in range(1, len(row)) if row[k] not in row[:k])
    eos = free[r][k]
    ours = StaticDecoder(model).generate(PROMPTS, max_new_tokens=30, eos_ids=[eos])
    assert ours[r] == free[r][:k + 1]
    assert ours == _hf_greedy(model, PROMPTS, 30, [eos])
    for row in ours:
        assert eos not in row[:-1]


def test_each_row_independent_of_its_batch():
    """Left padding must not leak: a prompt decodes the same alone and next to longer prompts."""
    model = _model("llama", seed=2)
    dec = StaticDecoder(model)
    batch = dec.generate(PROMPTS, max_new_tokens=25, eos_ids=[1])
    alone = [dec.generate([p], max_new_tokens=25, eos_ids=[1])[0] for p in PROMPTS]
    assert batch == alone


@pytest.mark.parametrize("fused", [False, True], ids=["matmul-attention", "fused"])
def test_crosses_attention_buckets(fused):
    """Decoding past one bucket of attention length (recorded steps switch length there)."""
    model = _model("qwen2", seed=3)
    n = BUCKET + 20 - len(PROMPTS[0])
    ours = StaticDecoder(model, fused=fused).generate([PROMPTS[0]], max_new_tokens=n, eos_ids=[96])
    ref = _hf_greedy(model, [PROMPTS[0]], n, [96])
    assert ours == ref
    assert len(ours[0]) > BUCKET - len(PROMPTS[0])  # really went past the first bucket


def test_the_fused_step_is_the_default_on_cuda_only():
    model = _model("qwen2", seed=6)
    dec = StaticDecoder(model)  # this machine's CPU: the plain step, uncompiled
    assert (dec.fused, dec.compiled, dec.cuda_graph) == (False, False, False)
    dec = StaticDecoder(model, fused=True)
    assert (dec.fused, dec.compiled) == (True, False)  # compiling is for CUDA unless asked


def test_compiled_fused_step_equals_transformers_generate():
    """The fused step's pointwise work compiled by torch.compile (inductor, as on a GPU) gives the same tokens,
    for prompts of several lengths in one batch and with the sequences' lengths crossing a bucket."""
    model = _model("qwen2", seed=6)
    from torch._dynamo.utils import counters

    dec = StaticDecoder(model, fused=True, compile=True)
    captured = counters["stats"]["calls_captured"]
    n = BUCKET + 8 - len(PROMPTS[2])
    assert dec.generate(PROMPTS, max_new_tokens=n, eos_ids=[96]) == _hf_greedy(model, PROMPTS, n, [96])
    assert counters["stats"]["calls_captured"] > captured  # dynamo traced the step's functions: it really compiled


def test_a_step_that_fails_to_compile_runs_uncompiled(capsys):
    """A compiled function that raises (as a backend that cannot compile an op does) costs one stderr line: the
    same call finishes with the uncompiled step and gives the same tokens; a failing plain step is raised."""
    model = _model("llama", seed=7)

    def broken(*args):
        raise RuntimeError("backend compiler failed\nsecond line")

    dec = StaticDecoder(model, fused=True, compile=True)
    dec._after = broken
    assert dec.generate(PROMPTS, max_new_tokens=12, eos_ids=[1]) == _hf_greedy(model, PROMPTS, 12, [1])
    err = capsys.readouterr().err
    assert "compiling the fused step failed (backend compiler failed); running it uncompiled" in err
    assert not dec.compiled and dec._after.__name__ == "_attn_out"
    plain = StaticDecoder(model)
    plain._after = broken
    with pytest.raises(RuntimeError, match="backend compiler failed"):
        plain.generate(PROMPTS, max_new_tokens=4, eos_ids=[1])


def test_a_choice_that_fails_to_compile_is_made_uncompiled_and_the_step_stays_compiled(capsys):
    model = _model("llama", seed=7)

    def broken(*args):
        raise RuntimeError("backend compiler failed on a random op")

    dec = StaticDecoder(model, fused=True, compile=True, compile_choice=True)
    dec._choose_tokens = broken
    assert dec.generate(PROMPTS, max_new_tokens=12, eos_ids=[1]) == _hf_greedy(model, PROMPTS, 12, [1])
    err = capsys.readouterr().err
    assert ("the compiled step failed (backend compiler failed on a random op); trying it with the choice of tokens "
            "uncompiled") in err and "running it uncompiled" not in err
    assert dec.compiled and not dec.compiled_choice and dec._choose_tokens.__name__ == "_pick"
    assert StaticDecoder(model, fused=True, compile=False, compile_choice=True).compiled_choice is False


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("min_p", [None, 0.1])
def test_the_steps_choice_samples_softmax_at_the_temperature_above_min_p(compile, min_p):
    """The step's choice of tokens (eager, or compiled: ``compile_choice``) on 40,000 rows of bf16 logits: within 0.01 of
    softmax(logits / T), renormalised over the tokens min_p keeps; flagged greedy rows take the argmax."""
    dec = StaticDecoder(_model("qwen2"), fused=compile, compile=compile, compile_choice=compile)
    assert dec.compiled_choice == compile
    logits = torch.tensor([2.0, 1.5, 1.0, 0.2, -1.0, -3.0]).to(torch.bfloat16)
    p = torch.softmax(logits.float() / 0.8, -1)
    if min_p is not None:
        p = torch.where(p >= min_p * p.max(), p, 0.0)
        p = p / p.sum()
    n = 40000
    dec.temperature, dec.min_p = 0.8, min_p
    dec.greedy = torch.arange(n) % 4 == 0
    torch.manual_seed(0)
    tokens = dec._choose_tokens(logits.expand(n, 6).clone())
    assert (tokens[dec.greedy] == 0).all()
    freq = torch.bincount(tokens[~dec.greedy], minlength=6).float() / int((~dec.greedy).sum())
    assert (freq - p).abs().max() < 0.01, freq
    assert (freq[p == 0] == 0).all()


def test_sampling_matches_temperature_distribution():
    """Gumbel-max sampling: the first token's frequencies follow softmax(logits / T)."""
    model = _model("qwen2", seed=4)
    with torch.no_grad():
        model.lm_head.weight.div_(8.0)  # a flatter distribution: several likely first tokens
    prompt = [5, 6, 7]
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([prompt])).logits[0, -1] / 0.7, -1)
    torch.manual_seed(0)
    n = 4000
    firsts = [r[0] for r in StaticDecoder(model).generate([prompt] * n, max_new_tokens=1, eos_ids=[1],
                                                           temperature=0.7)]
    freq = torch.bincount(torch.tensor(firsts), minlength=probs.numel()).float() / n
    assert (freq - probs).abs().max() < 0.03
    assert len(set(firsts)) > 3


def test_weights_refresh_after_an_update():
    """A trainer changes the weights between calls: the next call must decode with the new ones."""
    model = _model("qwen2", seed=5)
    dec = StaticDecoder(model)
    before = dec.generate(PROMPTS, max_new_tokens=12, eos_ids=[1])
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    after = dec.generate(PROMPTS, max_new_tokens=12, eos_ids=[1])
    assert after == _hf_greedy(model, PROMPTS, 12, [1])
    assert after != before


def test_refuses_what_it_cannot_reproduce():
    assert unsupported_reason(_model("qwen2")) is None
    assert "MLP biases" in unsupported_reason(_model("llama", mlp_bias=True))
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50))
    assert "model_type 'gpt2'" in unsupported_reason(gpt2)
    with pytest.raises(ValueError, match="cannot run"):
        StaticDecoder(gpt2)
    with pytest.raises(ValueError, match="EOS"):
        StaticDecoder(_model("qwen2")).generate(PROMPTS, max_new_tokens=4, eos_ids=[])


def test_min_p_one_is_greedy():
    """min_p = 1 keeps only the most likely token: sampling at any temperature then decodes greedily."""
    model = _model("qwen2", seed=5)
    dec = StaticDecoder(model)
    greedy = dec.generate(PROMPTS, max_new_tokens=30, eos_ids=[1], temperature=0.0)
    torch.manual_seed(0)
    assert dec.generate(PROMPTS, max_new_tokens=30, eos_ids=[1], temperature=1.5, min_p=1.0) == greedy
    torch.manual_seed(0)
    assert dec.generate(PROMPTS, max_new_tokens=30, eos_ids=[1], temperature=1.5) != greedy  # it does sample


def test_min_p_samples_only_plausible_tokens():
    """With min_p every sampled token is at least min_p x as likely as the top token (at the temperature), and
    more than one token still comes up; without it, tokens below that floor are drawn too."""
    model = _model("qwen2", seed=4)  # first token: 7 of 97 tokens above the floor, holding 38% of the mass
    prompt, T, min_p, n = [5, 6, 7], 1.0, 0.3, 2000
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([prompt])).logits[0, -1] / T, -1)
    allowed = probs >= min_p * probs.max()
    assert 1 < int(allowed.sum()) < probs.numel()

    def firsts(**kw):
        torch.manual_seed(0)
        return torch.tensor([r[0] for r in StaticDecoder(model).generate([prompt] * n, 1, [1], temperature=T, **kw)])

    capped, free = firsts(min_p=min_p), firsts()
    assert allowed[capped].all() and len(set(capped.tolist())) > 1
    assert not allowed[free].all()
    # among the kept tokens the odds are the model's own: renormalised probabilities
    freq = torch.bincount(capped, minlength=probs.numel()).float() / n
    assert (freq - torch.where(allowed, probs, 0) / probs[allowed].sum()).abs().max() < 0.04


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5])
def test_min_p_out_of_range_is_refused(bad):
    with pytest.raises(ValueError, match="min_p"):
        StaticDecoder(_model("qwen2")).generate(PROMPTS, 4, [1], temperature=1.0, min_p=bad)


def test_greedy_rows_decode_greedily_among_sampled_ones():
    """``greedy`` flags (GRPO's greedy anchor): flagged rows equal a greedy decode, the others are exactly what the
    same sampling run gives them without flags (every row still draws its noise), and a wrong count is refused."""
    model = _model("qwen2", seed=5)
    dec = StaticDecoder(model)
    greedy = dec.generate(PROMPTS, max_new_tokens=30, eos_ids=[1], temperature=0.0)
    torch.manual_seed(0)
    mixed = dec.generate(PROMPTS, max_new_tokens=30, eos_ids=[1], temperature=1.5, greedy=[True, False, True, False])
    torch.manual_seed(0)
    sampled = dec.generate(PROMPTS, max_new_tokens=30, eos_ids=[1], temperature=1.5)
    assert mixed[0] == greedy[0] and mixed[2] == greedy[2]
    assert mixed[1] == sampled[1] and mixed[3] == sampled[3]
    assert sampled[0] != greedy[0] or sampled[2] != greedy[2]  # without the flag those rows do sample
    with pytest.raises(ValueError, match="2 flags for 4 prompts"):
        dec.generate(PROMPTS, max_new_tokens=4, eos_ids=[1], temperature=1.0, greedy=[True, False])


def _stopping_batch():
    """A model, 40 prompts and EOS tokens such that 30 of the 40 rows stop by step 40 (the others run on)."""
    import random

    model = _model("qwen2", seed=6)
    rng = random.Random(0)
    prompts = [[rng.randrange(2, 97) for _ in range(rng.randint(2, 12))] for _ in range(40)]
    free = StaticDecoder(model, compact=False).generate(prompts, max_new_tokens=80, eos_ids=[1])
    eos: list[int] = []  # the tokens most written first
    for t in sorted(range(2, 97), key=lambda t: -sum(t in row[:40] for row in free)):
        if sum(any(e in row[:40] for e in eos) for row in free) >= 30:
            break
        eos.append(t)
    return model, prompts, eos


@pytest.mark.parametrize("fused", [False, True], ids=["matmul-attention", "fused"])
def test_finished_rows_are_dropped_and_every_row_still_decodes_as_alone(fused):
    """A batch of 40 whose rows stop at different steps: once at most a quarter (compact=0.25) or half (the default)
    still runs, the finished rows leave the batch; every row's tokens stay what model.generate gives, and what
    compact=False gives."""
    model, prompts, eos = _stopping_batch()
    dec = StaticDecoder(model, fused=fused, compact=0.25)
    ours = dec.generate(prompts, max_new_tokens=80, eos_ids=eos)
    assert dec.compactions and all(kept <= 10 for _, kept in dec.compactions)
    assert ours == StaticDecoder(model, fused=fused, compact=False).generate(prompts, max_new_tokens=80, eos_ids=eos)
    assert ours == _hf_greedy(model, prompts, 80, eos)
    assert max(len(r) for r in ours) > dec.compactions[0][0] > min(len(r) for r in ours)
    half = StaticDecoder(model, fused=fused)
    assert half.generate(prompts, max_new_tokens=80, eos_ids=eos) == ours
    assert half.compactions[0][0] <= dec.compactions[0][0] and half.compactions[0][1] > 10  # earlier, more rows kept


def test_the_compaction_benchmark_stops_each_row_at_its_drawn_length():
    """benchmarks/static_compaction.py times rounds whose rows stop at drawn lengths: each row must hold exactly its
    length of tokens (pads after), with and without compaction alike."""
    from conftest import load_script

    bench = load_script("benchmarks/static_compaction.py")
    model = _model("qwen2", seed=7)
    lengths = bench.round_lengths(40, (3, 8), 30, 0.1)
    prompts = [PROMPTS[i % 4] for i in range(40)]
    outs = []
    for compact in (False, True):
        dec = bench.StoppingDecoder(model, lengths, compact=compact)
        outs.append(dec.generate(prompts, max_new_tokens=30, eos_ids=[10**9], temperature=1.0))
        assert bool(dec.compactions) == compact
        for row, n in zip(outs[-1], lengths):
            assert len(row) == 30 and row[n:] == [0] * (30 - n)
    greedy = [bench.StoppingDecoder(model, lengths, compact=c).generate(prompts, 30, [10**9]) for c in (False, True)]
    assert greedy[0] == greedy[1]


@pytest.mark.parametrize("compact", [1.0, -0.1, 2])
def test_a_compact_share_outside_zero_to_one_is_refused(compact):
    with pytest.raises(ValueError, match="compact must be a share of the batch"):
        StaticDecoder(_model("qwen2", seed=1), compact=compact)


def test_rows_that_fit_share_the_free_memory_between_cache_and_logits():
    """A row of L positions takes L x (2 x layers x kv heads x head dim x bytes) of KV cache plus its logits; the
    rows that fit grow with the free memory, shrink with the length and the draft, and stay in [1, MAX_ROWS]."""
    from generation.lookup_decode import LookupDecoder
    from generation.static_decode import MAX_ROWS

    dec = StaticDecoder(_model("llama"))  # float32 on CPU: 4 bytes; 2 layers, 2 kv heads of 8 dims
    per_position = 2 * 2 * 2 * 8 * 4
    logits = 3 * 97 * 4
    row = 1000 * per_position + logits
    assert dec.rows_that_fit(1000, free_bytes=2 * 37 * row) == 37  # half of the free memory
    assert dec.rows_that_fit(1000, free_bytes=2 * 37 * row - 1) == 36
    assert dec.rows_that_fit(2000, free_bytes=2 * 37 * row) == 18
    lookup = LookupDecoder(_model("llama"), draft=4)  # five positions of logits and cache room per row
    assert lookup.rows_that_fit(1000, free_bytes=2 * 37 * row) < 37
    assert dec.rows_that_fit(1000, free_bytes=10) == 1
    assert dec.rows_that_fit(1000, free_bytes=10**15) == MAX_ROWS
