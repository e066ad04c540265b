"""The summary half of ``gpu_backends.py`` (issue 6): what the jobs left in the work folder -> one table.

Stdlib only, no GPU and no torch (the host's bare ``python3`` runs it); it has no command line of its own,
the runner's ``summarize`` redoes it from a finished work folder::

    python3 benchmarks/gpu_backends.py summarize --work /tmp/issue6 --out $OUT

Reads, for each job of the runner's plan: its state (``WORK/jobs.json``: status, exit code, GPUs, times, log
tail), every logged metric (``WORK/runs/NAME/metrics.jsonl``, or the dicts that older trainers printed in
``WORK/logs/NAME.log``), the last
``WORK/runs/NAME/checkpoint-N/trainer_state.json``, the GPU memory samples (``WORK/logs/nvidia-smi.csv``), the
adapter (``adapter_model.safetensors``: largest |lora_B|, ``adapter_config.json``), the merge checks
(``WORK/merged/NAME/merge_check.json``) and the Unsloth adapter's ``evaluate`` (``WORK/eval/summary.json``).
``summarize`` turns them into step time (step 1 left out), generation tokens/s, peak memory, merge figures and
1 vs 2 GPU samples/s; ``write_outputs`` writes ``OUT/results.json`` (all of it), ``OUT/table.md`` (``table``:
the backends, the distributed runs, failed jobs, every command) and ``OUT/logs.tar.gz`` (logs, configs,
trainer states, merge checks).
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import statistics
import tarfile
from pathlib import Path

# the jobs summarised as backends / as distributed runs (the runner's plan builds its jobs from these too)
BACKENDS = {"trl_bf16": ["--backend", "trl"], "trl_4bit": ["--backend", "trl", "--load_in_4bit", "true"],
            "unsloth_4bit": ["--backend", "unsloth", "--load_in_4bit", "true"]}
DIST = {"ddp1": ("ddp.yaml", 1), "ddp2": ("ddp.yaml", 2), "zero2": ("zero2.yaml", 2)}
LOG_DICT = re.compile(r"\{'[^{}]*\}")
STEP_KEYS = ("loss", "step_time", "timing/generate_and_score_s")


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def parse_log(path: Path) -> list:
    """The metric dicts the trainer printed (``{'loss': '0.1', ...}``; values may be strings), as numbers."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    found = []
    for m in LOG_DICT.finditer(text):
        try:
            d = ast.literal_eval(m.group(0))
        except (ValueError, SyntaxError):
            continue
        if isinstance(d, dict) and (any(k in d for k in STEP_KEYS) or "train_runtime" in d):
            found.append({k: _num(v) for k, v in d.items()})
    return found


def logged_metrics(run_dir: Path, log: Path) -> list:
    """Every log of a run as it was logged: ``RUN/metrics.jsonl`` (``training/step_log.py``), else the dicts that
    an older run printed in its ``log``."""
    try:
        lines = (run_dir / "metrics.jsonl").read_text(errors="replace").splitlines()
    except OSError:
        return parse_log(log)
    found = []
    for line in lines:
        try:
            d = json.loads(line)
        except ValueError:  # a torn last line
            continue
        if isinstance(d, dict):
            found.append({k: _num(v) for k, v in d.items() if k != "step"})
    return found


def trainer_history(run_dir: Path) -> list:
    """``log_history`` of the last ``checkpoint-N/trainer_state.json`` ([] when there is none)."""
    ckpts = sorted((p for p in run_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                   key=lambda p: int(p.name.split("-")[-1]))
    for ck in reversed(ckpts):
        try:
            return json.loads((ck / "trainer_state.json").read_text()).get("log_history", [])
        except (OSError, ValueError):
            continue
    return []


def _mean(rows, key):
    vals = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
    return round(statistics.fmean(vals), 4) if vals else None


def run_figures(log_entries: list, history: list, world: int, per_device: int) -> dict:
    """Step time, generation tokens/s, memory and throughput of one GRPO run.

    Per-step rows come from ``trainer_state.json`` when a checkpoint was written, else from the logged
    metrics (``logged_metrics``: a run stopped early); ``train_runtime`` & co. from the final log. Step 1 (CUDA
    warm-up, compilation) is left out of the means: ``*_excl_first``."""
    steps = [h for h in history if any(k in h for k in STEP_KEYS) and "train_runtime" not in h]
    source = "trainer_state.json"
    if not steps:
        source = "logged metrics"
        steps = [dict(e, step=i + 1) for i, e in enumerate(x for x in log_entries if "train_runtime" not in x)]
    final = next((e for e in reversed(log_entries + history) if "train_runtime" in e), {})
    later = [s for s in steps if s.get("step", 1) >= 2] or steps
    time_key = "step_time" if any("step_time" in s for s in steps) else "timing/micro_step_s"
    tps = [world * per_device * s["completions/mean_length"] / s["timing/generate_and_score_s"] for s in later
           if isinstance(s.get("completions/mean_length"), float) and (s.get("timing/generate_and_score_s") or 0) > 0]
    peaks = [s["memory/peak_gib"] for s in steps if isinstance(s.get("memory/peak_gib"), float)]
    return {"steps_logged": len(steps), "source": source, "completions_per_step": world * per_device,
            "step_time_s_excl_first": _mean(later, time_key), "step_time_s_first": steps[0].get(time_key) if steps
            else None, "generate_and_score_s_excl_first": _mean(later, "timing/generate_and_score_s"),
            "gen_tokens_per_s_excl_first": round(statistics.fmean(tps), 1) if tps else None,
            "completion_tokens_mean": _mean(steps, "completions/mean_length"),
            "clipped_ratio_mean": _mean(steps, "completions/clipped_ratio"),
            "peak_gib_torch": max(peaks) if peaks else None, "reward_last": steps[-1].get("reward") if steps else None,
            **{k: final.get(k) for k in ("train_runtime", "train_steps_per_second", "train_samples_per_second")}}


def smi_peaks(csv: Path, rec: dict) -> dict:
    """Max MiB that nvidia-smi saw on each of the job's GPUs while it ran ({} without samples)."""
    peaks = {}
    try:
        lines = csv.read_text().splitlines()
    except OSError:
        return peaks
    lo, hi = rec.get("start_abs", 0), rec.get("end_abs", float("inf"))
    for line in lines:
        try:
            t, idx, mib = line.split(",")
            t, idx, mib = float(t), int(idx), float(mib)
        except ValueError:
            continue
        if lo <= t <= hi and idx in rec.get("gpus", []):
            peaks[idx] = max(peaks.get(idx, 0.0), mib)
    return peaks


def lora_b_absmax(path: Path):
    """Largest |value| over the ``lora_B`` tensors of a safetensors adapter (read with the stdlib): 0.0 means the
    adapter is still the identity (B starts at zero), so a merge check of it would prove nothing."""
    import array
    import struct

    try:
        with open(path, "rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            header, base = json.loads(fh.read(n)), 8 + n
            best = 0.0
            for name, t in header.items():
                if "lora_B" not in name or t.get("dtype") not in ("F32", "BF16", "F16"):
                    continue
                lo, hi = t["data_offsets"]
                fh.seek(base + lo)
                raw = fh.read(hi - lo)
                if t["dtype"] == "F16":
                    vals = struct.unpack(f"<{len(raw) // 2}e", raw)
                elif t["dtype"] == "BF16":
                    half = array.array("H", raw)
                    vals = array.array("f", array.array("I", (h << 16 for h in half)).tobytes())
                else:
                    vals = array.array("f", raw)
                best = max(best, max((abs(v) for v in vals), default=0.0))
            return best
    except (OSError, ValueError, KeyError, struct.error):
        return None


def artefacts(run_dir: Path) -> list:
    """The run's files (top level and checkpoints); per-rank RNG states (``rng_state_0.pth``...) count as one."""
    if not run_dir.is_dir():
        return []
    names = {str(p.relative_to(run_dir)) for p in [*run_dir.glob("*"), *run_dir.glob("checkpoint-*/*")]
             if p.name != "warnings.log"}
    return sorted({re.sub(r"rng_state(_\d+)?\.pth$", "rng_state*.pth", n) for n in names})


def _read_json(*paths):
    for p in paths:
        try:
            return json.loads(Path(p).read_text())
        except (OSError, ValueError):
            continue
    return None


def summarize(work: Path, jobs: list, state: dict, meta: dict) -> dict:
    res = {"meta": meta, "jobs": {}, "backends": {}, "distributed": {}}
    for job in jobs:
        rec = state.get(job.name, {})
        res["jobs"][job.name] = {k: rec.get(k) for k in ("status", "rc", "gpus", "start", "seconds", "reason",
                                                          "site", "cmd", "log_tail")}
        res["jobs"][job.name].update(status=rec.get("status", "not run"), cmd=rec.get("cmd") or shlex.join(job.argv))
    for job in jobs:
        if job.name not in BACKENDS and job.name not in DIST:
            continue
        rec, run_dir = state.get(job.name, {}), work / "runs" / job.name
        fig = run_figures(logged_metrics(run_dir, work / "logs" / f"{job.name}.log"), trainer_history(run_dir),
                          job.world, job.per_device)
        peaks = smi_peaks(work / "logs" / "nvidia-smi.csv", rec)
        fig.update(status=rec.get("status"), rc=rec.get("rc"), gpus=len(rec.get("gpus") or []) or job.gpus,
                   peak_gib_nvidia_smi=round(max(peaks.values()) / 1024, 2) if peaks else None,
                   artefacts=artefacts(run_dir))
        if job.name in BACKENDS:
            m = f"merge_{job.name}"
            fig["merge"] = _read_json(work / "merged" / job.name / "merge_check.json",
                                      work / "merged" / f"{job.name}.merge_check.json")
            fig["merge_status"] = state.get(m, {}).get("status")
            fig["lora_b_absmax"] = lora_b_absmax(run_dir / "adapter_model.safetensors")
            fig["adapter_config"] = {k: v for k, v in (_read_json(run_dir / "adapter_config.json") or {}).items()
                                     if k in ("base_model_name_or_path", "r", "lora_alpha", "target_modules")}
            res["backends"][job.name] = fig
        else:
            res["distributed"][job.name] = fig
    ev = _read_json(work / "eval" / "summary.json") or {}
    res["evaluate_unsloth_adapter"] = {"status": state.get("eval_unsloth_4bit", {}).get("status"),
                                       **{k: v for k, v in ev.get("models", {}).get("unsloth_4bit", {}).items()
                                          if k in ("n", "valid", "mean_score", "tokens_per_s", "mean_tokens", "kind",
                                                   "base", "backend")}}
    d1, d2 = res["distributed"].get("ddp1", {}), res["distributed"].get("ddp2", {})
    if d1.get("train_samples_per_second") and d2.get("train_samples_per_second"):
        res["ddp_2_vs_1"] = {f"{k}_ratio": round(d2[f"train_{k}"] / d1[f"train_{k}"], 3)
                             for k in ("samples_per_second", "steps_per_second")
                             if d1.get(f"train_{k}") and d2.get(f"train_{k}")}
    if d1.get("artefacts") or d2.get("artefacts"):
        a1, a2 = set(d1.get("artefacts", [])), set(d2.get("artefacts", []))
        res.setdefault("ddp_2_vs_1", {}).update(same_artefacts=a1 == a2, only_1gpu=sorted(a1 - a2),
                                                only_2gpu=sorted(a2 - a1))
    return res


def _f(v, fmt="{:.3g}"):
    if v is None or isinstance(v, bool):
        return {None: "-", True: "yes", False: "NO"}[v]
    return fmt.format(v) if isinstance(v, (int, float)) else str(v)


def _short(cmd: str, meta: dict) -> str:
    cmd = cmd.replace(str(meta.get("work", "")), "W")
    return re.sub(r"^\S*python[0-9.]*\b", "python3", cmd)


def table(res: dict) -> str:
    m = res["meta"]
    base = f"`{m['model']}`" if m.get("model") else "SmolLM2-135M-Instruct"
    lines = [f"GRPO on {base}, `{m['recipe']}`: LoRA r=16 on all linear layers, {m['steps']} steps x "
             f"{m['per_device']} completions per GPU ({m['per_device'] // 8} prompt(s) x 8), up to 256 tokens, "
             "temperature 1.0; "
             f"{m['gpus']} GPU(s); {m['started']}. Means leave out step 1 (warm-up). Generation tokens/s = completions "
             "x mean completion length / generate-and-score seconds per step. Where adapter max abs B = 0 the LoRA "
             "never moved (no reward signal) and its merge check proves nothing.", "",
             "| backend | status | s/step | step 1 s | generate s/step | gen tokens/s | mean completion tokens | "
             "peak GiB (torch) | peak GiB (nvidia-smi) | merge: max / mean abs logit diff | argmax agree | "
             "greedy agree | merge ok | adapter max abs B |", "|" + "---|" * 14]
    for name, b in res["backends"].items():
        mg = b.get("merge") or {}
        lines.append(f"| {name} | {b['status']} | {_f(b['step_time_s_excl_first'])} | {_f(b['step_time_s_first'])} | "
                     f"{_f(b['generate_and_score_s_excl_first'])} | "
                     f"{_f(b['gen_tokens_per_s_excl_first'], '{:,.0f}')} | "
                     f"{_f(b['completion_tokens_mean'], '{:.1f}')} | {_f(b['peak_gib_torch'])} | "
                     f"{_f(b['peak_gib_nvidia_smi'])} | {_f(mg.get('max_abs_logit_diff'))} / "
                     f"{_f(mg.get('mean_abs_logit_diff'))} | {_f(mg.get('argmax_agreement'), '{:.1%}')} | "
                     f"{_f(mg.get('greedy_token_agreement'), '{:.1%}')} | {_f(mg.get('ok', b.get('merge_status')))} | "
                     f"{_f(b.get('lora_b_absmax'))} |")
    lines += ["", "| run | GPUs | status | train_runtime s | steps/s | samples/s | s/step (excl. 1) | gen tokens/s | "
              "peak GiB (torch, rank 0) | artefacts |", "|" + "---|" * 10]
    for name, d in res["distributed"].items():
        lines.append(f"| {name} | {d['gpus']} | {d['status']} | {_f(d['train_runtime'])} | "
                     f"{_f(d['train_steps_per_second'])} | {_f(d['train_samples_per_second'])} | "
                     f"{_f(d['step_time_s_excl_first'])} | {_f(d['gen_tokens_per_s_excl_first'], '{:,.0f}')} | "
                     f"{_f(d['peak_gib_torch'])} | {len(d['artefacts'])} files |")
    cmp_ = res.get("ddp_2_vs_1", {})
    if cmp_:
        lines += ["", f"2 vs 1 GPU: samples/s x{_f(cmp_.get('samples_per_second_ratio'))}, steps/s "
                      f"x{_f(cmp_.get('steps_per_second_ratio'))}; same artefacts: {cmp_.get('same_artefacts')}"
                      + (f" (only 1 GPU: {cmp_['only_1gpu']}; only 2 GPUs: {cmp_['only_2gpu']})"
                         if not cmp_.get("same_artefacts") else "")]
    ev = res.get("evaluate_unsloth_adapter", {})
    lines += ["", f"`evaluate` of the Unsloth adapter: {ev.get('status')}; " + ", ".join(
        f"{k} {v}" for k, v in ev.items() if k != "status")]
    bad = {n: j for n, j in res["jobs"].items() if j["status"] != "ok"}
    if bad:
        lines += ["", "Jobs that did not succeed:"] + [
            f"- {n}: {j['status']}" + (f" (rc {j['rc']})" if j.get("rc") is not None else "")
            + f": {j.get('reason') or (j.get('log_tail') or ['-'])[-1]}"
            for n, j in bad.items()]
    lines += ["", "Commands (W = the work folder):", ""] + [
        f"- {n}: `{_short(j['cmd'], m)}`" for n, j in res["jobs"].items()]
    return "\n".join(lines) + "\n"


def write_outputs(res: dict, work: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=1, default=str))
    (out / "table.md").write_text(table(res))
    keep = ["jobs.json", "meta.json", "logs/*", "runs/*/run_config.yaml", "runs/*/adapter_config.json",
            "runs/*/checkpoint-*/trainer_state.json", "runs/*/completion_samples.txt", "runs/*/warnings.log",
            "merged/*/merge_check.json", "merged/*.merge_check.json", "eval/summary.json", "eval/report.md"]
    with tarfile.open(out / "logs.tar.gz", "w:gz") as tar:
        for pattern in keep:
            for p in sorted(work.glob(pattern)):
                if p.is_file():
                    tar.add(p, arcname=str(p.relative_to(work)))
