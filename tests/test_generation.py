"""The generation layer (generation/): the engine names, ``--engine auto``, the in-process engines on the tiny model,
the static engine's refusals and fallback, and the vllm engine's worker process."""

import json
import sys
import textwrap

import pytest

from conftest import make_run
from generation import GenerationSettings, Job, choose_engine, make_engine
from generation.factory import ENGINES, VLLM_MIN_COMPLETIONS
from generation.vllm_engine import vllm_available
from qwen_scheduler.cli import main
from scheduler_solver.errors import UserError
from scheduler_solver.prompts import build_messages

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from evaluation.models import load_model_and_tokenizer

    return load_model_and_tokenizer(tiny_model_dir, device="cpu")


def _records(engine, chats, jobs, settings):
    out = []
    engine.generate(chats, jobs, settings, out.append)
    return {(r["index"], r["sample"]): r for r in out}


def test_names_and_aliases():
    from generation.factory import canonical_engine

    assert ENGINES == ("transformers", "transformers-cb", "static", "vllm")
    assert canonical_engine("transformers-static") == "static"
    with pytest.raises(UserError, match="unknown engine 'fast'"):
        canonical_engine("fast")
    with pytest.raises(ValueError, match="needs a loaded model"):
        make_engine("static", "some/model")


@pytest.mark.parametrize("adapter,sampled,completions,cuda,vllm,engine", [
    (False, False, 10**6, True, True, "static"),  # a full model, greedy: static with prompt lookup is faster
    (False, True, 6000, True, True, "vllm"),  # sampling: vLLM generates twice as fast, so it pays sooner
    (False, True, 5999, True, True, "static"),
    (True, False, 100, True, True, "vllm"),  # an adapter: it only has to beat model.generate
    (True, True, 99, True, True, "transformers"),
    (False, False, 50000, True, False, "static"),
    (False, True, 50000, False, True, "transformers"),
])
def test_auto_chooses_by_what_is_known(adapter, sampled, completions, cuda, vllm, engine):
    chosen, why = choose_engine(adapter, completions, cuda, vllm, sampled)
    assert chosen == engine and why
    if vllm and cuda and (adapter or sampled):  # the reason names the threshold that decided
        assert str(VLLM_MIN_COMPLETIONS["adapter" if adapter else "sampled"]) in why


def test_every_in_process_engine_makes_the_same_greedy_records(tiny, sample_rows):
    """transformers (left-padded batches), static (eager static-cache steps on CPU) and batch sizes 1 and 3 agree
    token for token in float32; the records carry what evaluation stores."""
    model, tok = tiny
    chats = [build_messages(r) for r in sample_rows]
    jobs = [Job(i, 0) for i in range(len(chats))]
    settings = GenerationSettings(max_new_tokens=24)
    ref = _records(make_engine("transformers", model, tok, batch_size=3, progress=False), chats, jobs, settings)
    assert sorted(ref) == [(0, 0), (1, 0), (2, 0)]
    assert all(0 < r["n_tokens"] <= 24 and isinstance(r["completion"], str) for r in ref.values())
    for name, batch in [("static", 3), ("static", 1), ("transformers", 1)]:
        got = _records(make_engine(name, model, tok, batch_size=batch, progress=False), chats, jobs, settings)
        assert {k: (r["completion"], r["n_tokens"], r["truncated"]) for k, r in got.items()} == \
            {k: (r["completion"], r["n_tokens"], r["truncated"]) for k, r in ref.items()}, (name, batch)


def test_generate_ids_cuts_at_the_first_eos(tiny):
    model, tok = tiny
    engine = make_engine("transformers", model, tok)
    prompt = tok("Events:", add_special_tokens=False)["input_ids"]
    free = engine.generate_ids([prompt], GenerationSettings(max_new_tokens=12), stop=[10**6])[0]
    assert len(free) == 12
    stop = free[4]
    cut = engine.generate_ids([prompt], GenerationSettings(max_new_tokens=12), stop=[stop])[0]
    assert cut == free[:free.index(stop) + 1]
    assert make_engine("static", model, tok).generate_ids([prompt], GenerationSettings(max_new_tokens=12),
                                                          stop=[stop])[0] == cut


def test_greedy_rows_among_sampled_ones_need_the_static_engine(tiny):
    model, tok = tiny
    prompt = tok("Events:", add_special_tokens=False)["input_ids"]
    sampled = GenerationSettings(max_new_tokens=4, temperature=1.0)
    with pytest.raises(UserError, match="static"):
        make_engine("transformers", model, tok).generate_ids([prompt, prompt], sampled, greedy=[True, False])
    rows = make_engine("static", model, tok).generate_ids([prompt, prompt], sampled, greedy=[True, False])
    assert len(rows) == 2


def test_the_static_engine_refuses_or_falls_back_with_one_line(tiny, tiny_model_dir, tmp_path, capsys):
    """strict (GRPO rollouts): a LoRA-wrapped model or top-p is refused; otherwise it says why once and uses
    model.generate (the same tokens as the transformers engine)."""
    from peft import PeftModel

    model, tok = tiny
    with pytest.raises(UserError, match="top-p 0.9"):
        make_engine("static", model, tok, strict=True).generate_ids(
            [[1, 2, 3]], GenerationSettings(max_new_tokens=4, temperature=1.0, top_p=0.9))
    make_run(tiny_model_dir, tmp_path / "run", [(1, 1.0)])
    lora = PeftModel.from_pretrained(model, str(tmp_path / "run" / "checkpoint-1"))
    with pytest.raises(UserError, match="PEFT/LoRA"):
        make_engine("static", lora, tok, strict=True)
    engine = make_engine("static", lora, tok)
    assert "cannot run a PEFT/LoRA-wrapped model" in engine.describe()
    prompt = tok("Events:", add_special_tokens=False)["input_ids"]
    settings = GenerationSettings(max_new_tokens=6)
    capsys.readouterr()
    first = engine.generate_ids([prompt], settings)
    engine.generate_ids([prompt], settings)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("static: cannot run a PEFT/LoRA-wrapped model")
    assert first == make_engine("transformers", lora, tok).generate_ids([prompt], settings)
    lora.unload()


def test_evaluate_auto_and_the_backend_alias(tiny_model_dir, sample_rows, tmp_path, capsys):
    """--engine auto says which engine and why (no CUDA here: transformers); --backend still runs, with a note; an
    --engine and --backend that disagree stop with one line."""
    if torch.cuda.is_available():
        pytest.skip("checks auto's choice on a machine without CUDA")
    ds = tmp_path / "rows.jsonl"
    ds.write_text("".join(json.dumps(r) + "\n" for r in sample_rows))
    common = ["evaluate", "--dataset", str(ds), "--model", tiny_model_dir, "--max-new-tokens", "6", "--device", "cpu"]
    assert main([*common, "--output", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "model: engine transformers (auto: no CUDA)" in err
    assert main([*common, "--backend", "transformers-static", "--output", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err
    assert "--backend is deprecated" in err and "engine transformers-static is now called static" in err
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["models"]["model"]["engine"] == "static"
    assert main([*common, "--engine", "static", "--backend", "transformers", "--output", str(tmp_path / "c")]) == 2
    assert "disagree" in capsys.readouterr().err.strip().splitlines()[-1]


# ---------------------------------------------------------------- vllm

#: vLLM needs CUDA, so these tests run the vllm engine's worker against a stand-in package that offers the part of
#: vLLM's offline API the engine calls, computed with transformers (greedy only) and logging every call. What they
#: test is the engine: one process per base model, one LoRA request per adapter, records streamed back and appended
#: (resume), the context length, errors. The real vLLM runs on a GPU host.
FAKE_VLLM = '''
import json, os
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

def _log(**entry):
    with open(os.environ["FAKE_VLLM_LOG"], "a") as f:
        f.write(json.dumps(entry) + "\\n")

class SamplingParams:
    def __init__(self, n=1, temperature=1.0, top_p=1.0, min_p=0.0, max_tokens=16, seed=None, stop_token_ids=None):
        self.n, self.temperature, self.max_tokens, self.stop = n, temperature, max_tokens, list(stop_token_ids or [])

class _Out:
    def __init__(self, token_ids, finish_reason):
        self.token_ids, self.finish_reason, self.text = token_ids, finish_reason, "unused"

class _Request:
    def __init__(self, outputs):
        self.outputs = outputs

class LLM:
    def __init__(self, model, **kwargs):
        _log(event="LLM", model=model, **kwargs)
        self.path, self.tok = model, AutoTokenizer.from_pretrained(model)

    def get_tokenizer(self):
        return self.tok

    def generate(self, prompts, params, lora_request=None, use_tqdm=True):
        lora = None if lora_request is None else [lora_request.lora_name, lora_request.lora_int_id]
        _log(event="generate", prompts=len(prompts), lora=lora)
        model = AutoModelForCausalLM.from_pretrained(self.path)
        if lora_request is not None:
            from peft import PeftModel
            model = PeftModel.from_pretrained(model, lora_request.lora_path)
        results = []
        for prompt, p in zip(prompts, params):
            assert p.temperature == 0.0
            ids = torch.tensor([prompt["prompt_token_ids"]])
            new = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=p.max_tokens,
                                 do_sample=False, eos_token_id=p.stop, pad_token_id=p.stop[0])[0, ids.shape[1]:]
            new = new.tolist()
            ends = [i for i, t in enumerate(new) if t in p.stop]
            new = new[:ends[0] + 1] if ends else new
            results.append(_Request([_Out(new, "stop" if ends else "length")] * p.n))
        return results
'''


@pytest.fixture()
def fake_vllm(tmp_path, monkeypatch):
    if vllm_available():
        pytest.skip("vLLM is installed: the vllm engine is tested on the real one")
    root = tmp_path / "fake_vllm"
    (root / "vllm" / "lora").mkdir(parents=True)
    (root / "vllm" / "__init__.py").write_text(textwrap.dedent(FAKE_VLLM))
    (root / "vllm" / "lora" / "__init__.py").write_text("")
    (root / "vllm" / "lora" / "request.py").write_text(
        "class LoRARequest:\n    def __init__(self, lora_name, lora_int_id, lora_path):\n"
        "        self.lora_name, self.lora_int_id, self.lora_path = lora_name, lora_int_id, lora_path\n")
    monkeypatch.syspath_prepend(str(root))  # the spawned worker inherits sys.path
    log = tmp_path / "vllm_calls.jsonl"
    monkeypatch.setenv("FAKE_VLLM_LOG", str(log))
    sys.modules.pop("vllm", None)
    yield lambda: [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
    sys.modules.pop("vllm", None)


def test_vllm_engine_serves_a_base_and_its_adapters_from_one_process(fake_vllm, tiny_model_dir, sample_rows,
                                                                     tmp_path, capsys):
    """evaluate --engine vllm: the model and two LoRA checkpoints of it share one worker (one LLM with LoRA on, ids
    1 and 2), give the transformers engine's greedy records, and a rerun over more rows generates only the new
    ones."""
    run = tmp_path / "run"
    make_run(tiny_model_dir, run, [(1, 0.5), (2, 1.0)])
    ds = tmp_path / "rows.jsonl"
    ds.write_text("".join(json.dumps(r) + "\n" for r in sample_rows))
    models = ["--model", tiny_model_dir, "--checkpoints", str(run)]
    common = ["evaluate", "--dataset", str(ds), *models, "--max-new-tokens", "10", "--device", "cpu"]
    first = ["--limit", "2", "--batch-size", "1"]
    assert main([*common, "--engine", "vllm", *first, "--output", str(tmp_path / "v")]) == 0
    calls = fake_vllm()
    llm = [c for c in calls if c["event"] == "LLM"]
    assert len(llm) == 1 and llm[0]["model"] == tiny_model_dir
    assert (llm[0]["enable_lora"], llm[0]["max_lora_rank"], llm[0]["max_loras"]) == (True, 8, 1)
    assert {tuple(c["lora"]) for c in calls if c["event"] == "generate" and c["lora"]} == \
        {("checkpoint-1", 1), ("checkpoint-2", 2)}
    assert "vllm checkpoint-1: 2/2 rows" in capsys.readouterr().err
    assert main([*common, "--engine", "vllm", "--output", str(tmp_path / "v")]) == 0  # resume: one more row each
    assert sum(c["prompts"] for c in fake_vllm()[len(calls):] if c["event"] == "generate") == 3
    assert main([*common, "--engine", "transformers", "--output", str(tmp_path / "t")]) == 0
    for label in ("model", "checkpoint-1-epoch0.50", "checkpoint-2-epoch1.00"):
        v = {(r["index"], r["sample"]): r for r in map(json.loads, (tmp_path / "v" / label / "completions.jsonl")
                                                       .read_text().splitlines())}
        t = {(r["index"], r["sample"]): r for r in map(json.loads, (tmp_path / "t" / label / "completions.jsonl")
                                                       .read_text().splitlines())}
        assert sorted(v) == sorted(t) == [(i, 0) for i in range(3)]
        assert all((v[k]["completion"], v[k]["n_tokens"], v[k]["truncated"]) ==
                   (t[k]["completion"], t[k]["n_tokens"], t[k]["truncated"]) for k in t), label
    summary = json.loads((tmp_path / "v" / "summary.json").read_text())
    assert {m["engine"] for m in summary["models"].values()} == {"vllm"}


def test_vllm_engine_sizes_the_context_and_reports_a_short_one(fake_vllm, tiny_model_dir, sample_rows):
    """max_model_len defaults to the longest prompt + max_new_tokens; a prompt that does not fit stops the worker
    with a one-line error (exit 2 from the CLI), and the engine's options are checked before it starts."""
    from evaluation.models import load_tokenizer
    from scheduler_solver.prompts import chat_prompt

    tok = load_tokenizer(tiny_model_dir)
    chats = [build_messages(r) for r in sample_rows]
    lengths = [len(tok(chat_prompt(tok, c), add_special_tokens=False)["input_ids"]) for c in chats]
    longest = max(lengths)
    with make_engine("vllm", tiny_model_dir, progress=False) as engine:
        assert "max_model_len longest prompt + max_new_tokens" in engine.describe()
        out = []
        engine.generate(chats, [Job(0, 0)], GenerationSettings(max_new_tokens=5), out.append)
        assert engine.config["max_model_len"] == longest + 5 and len(out) == 1
    assert fake_vllm()[0]["max_model_len"] == longest + 5
    with make_engine("vllm", tiny_model_dir, max_model_len=longest, progress=False) as engine:
        with pytest.raises(UserError, match="exceeds max_model_len"):
            engine.generate(chats, [Job(lengths.index(longest), 0)], GenerationSettings(max_new_tokens=5), out.append)
    with pytest.raises(UserError, match="gpu-memory-utilization"):
        make_engine("vllm", tiny_model_dir, gpu_memory_utilization=0)
