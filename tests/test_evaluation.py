"""``qwen-scheduler evaluate`` with the tiny random model on CPU: the transformers engine, LoRA checkpoints,
outputs, charts, resume and the settings guard."""

import json

import numpy as np
import pytest

from conftest import make_run
from generation.lookup_decode import EVAL_DRAFT
from qwen_scheduler.cli import main
from scheduler_solver.prompts import SYSTEM_PROMPT, build_messages, chat_prompt

EXTRA_ROW = {"events": [["Gym", "07:00", "08:00"], ["Call", "07:30", "07:45"], ["Breakfast", "08:00", "08:30"],
                        ["Commute", "08:15", "09:00"]],
             "priority_events": ["Call"], "optimal_score": 105,
             "prompt": "Events:\n- Gym (07:00 - 08:00)\n- Call (07:30 - 07:45)\n- Breakfast (08:00 - 08:30)\n"
                       "- Commute (08:15 - 09:00)\n\nPriorities:\n- Call"}


@pytest.fixture()
def dataset(sample_rows, tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in sample_rows + [EXTRA_ROW]))
    return str(path)


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def evaluate(*argv):
    return main(["evaluate", "--engine", "transformers", "--device", "cpu", *argv])


def assert_real_png(path, min_h=250, min_w=350):
    import matplotlib.image as mpimg

    img = mpimg.imread(str(path))
    assert img.shape[0] >= min_h and img.shape[1] >= min_w, img.shape
    rgb = img[..., :3].reshape(-1, 3)
    assert rgb.std() > 0.02  # not blank
    assert len(np.unique((rgb * 255).astype(np.uint8), axis=0)) > 10  # more than a few flat colours


def test_transformers_end_to_end(tiny_model_dir, dataset, tmp_path, capsys):
    out = tmp_path / "eval"
    assert evaluate("--dataset", dataset, "--model", "oracle", "--model", "greedy", "--model", tiny_model_dir,
                    "--label", "ceiling", "--label", "floor", "--label", "tiny", "--max-new-tokens", "16",
                    "--batch-size", "3", "--output", str(out)) == 0
    err = capsys.readouterr().err  # not a terminal: progress lines for the model, none for the baselines
    progress = [line for line in err.splitlines() if " completions (" in line]
    assert [line.split("  ")[0] for line in progress] == [f"tiny: {i}/4 completions ({i / 4:.0%})" for i in (1, 2, 3, 4)]
    assert progress[-1].endswith("done") and float(progress[-1].split("  ")[1].split()[0]) > 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["models"]) == ["ceiling", "floor", "tiny"]
    tiny = summary["models"]["tiny"]
    assert (tiny["n"], tiny["completions"], tiny["engine"], tiny["kind"]) == (4, 4, "transformers", "model")
    assert 0 < tiny["mean_tokens"] <= 16 and tiny["tokens_per_s"] > 0 and tiny["completions_per_s"] > 0
    assert tiny["valid"] + sum(tiny["failures"].values()) == 4
    assert summary["models"]["ceiling"]["mean_score"] == 100.0
    assert summary["models"]["floor"]["valid"] == 4

    records = lines(out / "tiny" / "completions.jsonl")
    assert sorted((r["index"], r["sample"]) for r in records) == [(i, 0) for i in range(4)]
    for r in records:
        assert 1 <= r["n_tokens"] <= 16 and r["seconds"] > 0
        assert SYSTEM_PROMPT[:40] not in r["completion"] and "<|im_" not in r["completion"]  # new tokens only
        assert (out / "tiny" / "completions" / f"{r['index']}.txt").read_text() == r["completion"]
    assert len(lines(out / "tiny" / "scores.jsonl")) == 4

    report = (out / "report.md").read_text()
    for needle in ("| ceiling |", "| floor |", "| tiny |", "mean tokens", "tokens/s", "overlap", "(valid.png)"):
        assert needle in report
    for name in ("valid.png", "mean_score.png", "failures.png", "histogram.png"):
        assert f"({name})" in report
        assert_real_png(out / name)
    assert not (out / "epochs.png").exists()  # no checkpoints evaluated


def test_left_padded_batches_match_unbatched_greedy(tiny_model_dir, dataset, tmp_path):
    """Batching with left padding must not change what a row generates."""
    import torch

    from evaluation.models import load_model_and_tokenizer

    out = tmp_path / "eval"
    assert evaluate("--dataset", dataset, "--model", tiny_model_dir, "--max-new-tokens", "12",
                    "--batch-size", "4", "--output", str(out)) == 0
    batched = {r["index"]: r for r in lines(out / "model" / "completions.jsonl")}
    model, tok = load_model_and_tokenizer(tiny_model_dir, device="cpu")
    rows = [json.loads(x) for x in open(dataset)]
    for i in (0, 3):
        enc = tok(chat_prompt(tok, build_messages(rows[i])), return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            ids = model.generate(**enc, max_new_tokens=12, do_sample=False)[0, enc["input_ids"].shape[1]:].tolist()
        eos = tok.eos_token_id
        ids = ids[:ids.index(eos) + 1] if eos in ids else ids
        assert batched[i]["n_tokens"] == len(ids)
        assert batched[i]["completion"] == tok.decode(ids, skip_special_tokens=True)


def test_lora_checkpoints_of_a_run(tiny_model_dir, dataset, tmp_path):
    run = tmp_path / "run"
    make_run(tiny_model_dir, run, [(10, 2.0), (4, 0.8)], final_epoch=2.0)
    out = tmp_path / "eval"
    assert evaluate("--dataset", dataset, "--limit", "2", "--checkpoints", str(run), "--model", "oracle",
                    "--max-new-tokens", "8", "--output", str(out)) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["models"]) == ["oracle", "checkpoint-4-epoch0.80", "checkpoint-10-epoch2.00", "final-epoch2.00"]
    ck = summary["models"]["checkpoint-4-epoch0.80"]
    assert (ck["epoch"], ck["step"], ck["kind"], ck["n"]) == (0.8, 4, "adapter", 2)
    assert ck["base"] == tiny_model_dir
    assert summary["models"]["final-epoch2.00"]["step"] == 10
    for label in ("checkpoint-4-epoch0.80", "checkpoint-10-epoch2.00", "final-epoch2.00"):
        assert len(lines(out / label / "completions.jsonl")) == 2
    assert "(epochs.png)" in (out / "report.md").read_text()
    assert_real_png(out / "epochs.png")


def test_resume_generates_only_missing_rows(tiny_model_dir, dataset, tmp_path):
    out = tmp_path / "eval"
    args = ["--dataset", dataset, "--model", tiny_model_dir, "--label", "tiny", "--max-new-tokens", "10",
            "--batch-size", "1", "--output", str(out)]
    assert evaluate(*args) == 0
    path = out / "tiny" / "completions.jsonl"
    first = path.read_text().splitlines(keepends=True)
    assert len(first) == 4
    (out / "summary.json").unlink()
    path.write_text(first[0] + first[1] + first[2][: len(first[2]) // 2])  # killed mid-line
    assert evaluate(*args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["models"]["tiny"]["generated_now"] == 2
    again = path.read_text().splitlines(keepends=True)
    assert again[:2] == first[:2] and len(again) == 4
    assert sorted(json.loads(x)["index"] for x in again) == [0, 1, 2, 3]
    old = {json.loads(x)["index"]: json.loads(x)["completion"] for x in first}
    assert all(old[json.loads(x)["index"]] == json.loads(x)["completion"] for x in again)  # greedy: same text
    assert evaluate(*args) == 0  # nothing left to do
    assert json.loads((out / "summary.json").read_text())["models"]["tiny"]["generated_now"] == 0


def test_other_settings_are_refused_unless_overwrite(tiny_model_dir, dataset, tmp_path, capsys):
    out = str(tmp_path / "eval")
    base = ["--dataset", dataset, "--limit", "1", "--model", tiny_model_dir, "--output", out]
    assert evaluate(*base, "--max-new-tokens", "4") == 0
    capsys.readouterr()
    assert evaluate(*base, "--max-new-tokens", "6") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "max_new_tokens" in err[0] and "--overwrite" in err[0]
    assert evaluate(*base, "--max-new-tokens", "6", "--overwrite") == 0
    settings = json.loads((tmp_path / "eval" / "model" / "settings.json").read_text())
    assert settings["generation"]["max_new_tokens"] == 6


def test_sampling_k_completions_per_row(tiny_model_dir, dataset, tmp_path):
    out = tmp_path / "eval"
    assert evaluate("--dataset", dataset, "--limit", "2", "--model", tiny_model_dir, "--label", "t",
                    "--samples", "3", "--temperature", "1.0", "--top-p", "0.95", "--seed", "7",
                    "--max-new-tokens", "6", "--output", str(out)) == 0
    records = lines(out / "t" / "completions.jsonl")
    assert sorted((r["index"], r["sample"]) for r in records) == [(i, s) for i in range(2) for s in range(3)]
    assert len({r["completion"] for r in records if r["index"] == 0}) > 1  # samples differ
    entry = json.loads((out / "summary.json").read_text())["models"]["t"]
    assert (entry["n"], entry["samples"], entry["completions"]) == (2, 3, 6)
    assert "pass@k" in (out / "report.md").read_text()



def _assert_same_completions(a_dir, b_dir):
    """Rows 0-3 of two evaluation folders' ``model`` runs decode the same text, token count and truncation."""
    a = {r["index"]: r for r in lines(a_dir / "model" / "completions.jsonl")}
    b = {r["index"]: r for r in lines(b_dir / "model" / "completions.jsonl")}
    assert sorted(a) == sorted(b) == [0, 1, 2, 3]
    for i in a:
        assert (b[i]["completion"], b[i]["n_tokens"], b[i]["truncated"]) == \
            (a[i]["completion"], a[i]["n_tokens"], a[i]["truncated"])

def test_continuous_batching_matches_padded_greedy(tiny_model_dir, dataset, tmp_path):
    """``--engine transformers-cb`` (paged KV cache, no padding) must decode what left-padded batches decode."""
    padded, cb = tmp_path / "padded", tmp_path / "cb"
    assert evaluate("--dataset", dataset, "--model", tiny_model_dir, "--max-new-tokens", "12",
                    "--batch-size", "4", "--output", str(padded)) == 0
    assert main(["evaluate", "--engine", "transformers-cb", "--device", "cpu", "--dataset", dataset,
                 "--model", tiny_model_dir, "--max-new-tokens", "12", "--output", str(cb)]) == 0
    _assert_same_completions(padded, cb)
    summary = json.loads((cb / "summary.json").read_text())
    assert summary["models"]["model"]["engine"] == "transformers-cb"


def test_draft_tokens_decode_what_the_static_engine_decodes(tiny_model_dir, dataset, tmp_path, capsys):
    """``--draft-tokens`` (prompt-lookup speculation in the static engine; EVAL_DRAFT by default, 0 turns it off):
    greedy, the same completions, the count recorded in the label's settings; with another engine, one line and
    exit 2."""
    plain, draft, default = tmp_path / "plain", tmp_path / "draft", tmp_path / "default"
    common = ["evaluate", "--engine", "static", "--device", "cpu", "--dataset", dataset, "--model", tiny_model_dir,
              "--max-new-tokens", "40", "--batch-size", "3"]
    assert main([*common, "--output", str(plain), "--draft-tokens", "0"]) == 0
    out = capsys.readouterr()
    assert "prompt-lookup" not in out.out + out.err
    for folder, count in ((draft, 3), (default, None)):
        assert main([*common, "--output", str(folder), *(["--draft-tokens", str(count)] if count else [])]) == 0
        out = capsys.readouterr()
        assert f"{count or EVAL_DRAFT} prompt-lookup draft tokens per step" in out.out + out.err
        assert json.loads(next(folder.glob("*/settings.json")).read_text())["draft_tokens"] == (count or EVAL_DRAFT)
        _assert_same_completions(plain, folder)
    assert main(["evaluate", "--engine", "transformers", "--dataset", dataset, "--model", tiny_model_dir,
                 "--draft-tokens", "3", "--output", str(tmp_path / "no")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--draft-tokens 3 needs --engine static" in err[0]


def test_static_engine_matches_padded_greedy(tiny_model_dir, dataset, tmp_path, capsys):
    """``--engine static`` (static KV cache; CUDA graphs on a GPU) decodes what model.generate
    decodes; a LoRA adapter, which it cannot run, falls back to model.generate with a line on stderr."""
    padded, static = tmp_path / "padded", tmp_path / "static"
    assert evaluate("--dataset", dataset, "--model", tiny_model_dir, "--max-new-tokens", "40",
                    "--batch-size", "4", "--output", str(padded)) == 0
    assert main(["evaluate", "--engine", "static", "--device", "cpu", "--dataset", dataset,
                 "--model", tiny_model_dir, "--max-new-tokens", "40", "--batch-size", "3", "--output", str(static)]) == 0
    assert "cannot run" not in capsys.readouterr().err
    _assert_same_completions(padded, static)
    assert json.loads((static / "summary.json").read_text())["models"]["model"]["engine"] == "static"
    run = tmp_path / "run"
    make_run(tiny_model_dir, run, [(2, 1)])
    assert main(["evaluate", "--engine", "static", "--device", "cpu", "--dataset", dataset,
                 "--model", str(run / "checkpoint-2"), "--max-new-tokens", "8", "--output", str(tmp_path / "lora")]) == 0
    assert "static: cannot run a PEFT/LoRA-wrapped model" in capsys.readouterr().err
