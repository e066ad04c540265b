"""Issue 6 on a multi-GPU host: GRPO backends side by side, merge checks, 1 vs 2 GPUs -- run, then summarise.

``scripts/gpu_issue6.sh`` calls this (stdlib only, so the host's bare ``python3`` can run it)::

    python3 benchmarks/gpu_backends.py run --work /tmp/issue6 --out $OUT     # all jobs, then the summary
    python3 benchmarks/gpu_backends.py run --dry-run --gpus 2 --fail trl_4bit   # control flow only (no GPU)
    python3 benchmarks/gpu_backends.py summarize --work /tmp/issue6 --out $OUT  # redo results.json + table.md

Jobs (``plan``): prepare SmolLM2 + generate 512 train rows; GRPO with the same recipe, data, seed and steps
(``training/recipes/smollm2-grpo-bench.yaml``) on trl bf16 LoRA, trl + bitsandbytes 4-bit and Unsloth 4-bit
(``--unsloth-site`` first on PYTHONPATH); a checked bf16 merge of each adapter; ``evaluate`` of the Unsloth
adapter; ``accelerate launch`` DDP with 1 and 2 processes (same per-device batch: same steps, twice the
samples); ZeRO-2 on 2 GPUs when ``--ds-site`` holds DeepSpeed. A GPU pool runs what fits at once (4 GPUs:
everything in about two waves; 2 GPUs: the same jobs in more waves); a job waits for its inputs, a failed
job only skips the jobs that need it, and everything still running at ``--budget`` seconds is stopped.
Every job logs to ``WORK/logs/NAME.log``; ``WORK/jobs.json`` holds each exit code, GPUs, times and log tail.
The summary (what the jobs left -> results.json, table.md, logs.tar.gz) is ``gpu_backends_summary.py``.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the summary next door, also when loaded by path (tests)

from gpu_backends_summary import BACKENDS, DIST, summarize, write_outputs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECIPE = "training/recipes/smollm2-grpo-bench.yaml"
PER_DEVICE = 64  # the recipe's per_device_train_batch_size (8 prompts x 8 generations)
CPU_OVERRIDES = ["--bf16", "false", "--use_cpu", "true", "--per_device_train_batch_size", "8",
                 "--max_completion_length", "16", "--torch_threads", "1"]
VERSIONS = ["torch", "transformers", "peft", "accelerate", "trl", "datasets", "bitsandbytes", "unsloth",
            "unsloth_zoo", "deepspeed"]


@dataclass
class Job:
    name: str
    argv: list
    gpus: int = 0
    deps: tuple = ()
    site: str = ""          # extra site dir put before the base site on PYTHONPATH
    skip: str = ""          # a reason not to run it at all
    world: int = 1          # processes (for samples per step)
    per_device: int = PER_DEVICE


@dataclass
class Opts:
    work: Path
    site: str = "/tmp/site"
    unsloth_site: str = "/tmp/site-unsloth"
    ds_site: str = "/tmp/site-ds"
    steps: int = 8
    cpu: bool = False
    py: str = field(default_factory=lambda: sys.executable)
    model: str = ""  # a model folder to start from instead of the prepared base (e.g. a pipeline's SFT model)
    max_completion_length: int = 0  # 0: the recipe's (256); an SFT model's traces need ~1216 to reach a reward


def plan(o: Opts) -> list[Job]:
    """All jobs, in priority order (earlier ones get free GPUs first)."""
    w, py = o.work, o.py
    qs = [py, "-m", "qwen_scheduler"]
    smol, data = o.model or str(w / "smol"), str(w / "data")
    grpo = ["train", "grpo", "--config", RECIPE, "--model_name_or_path", smol, "--dataset", data,
            "--max_steps", str(o.steps), "--save_steps", str(o.steps)] + (CPU_OVERRIDES if o.cpu else []) + \
        (["--max_completion_length", str(o.max_completion_length), "--max_seq_length",
          str(max(1024, 640 + o.max_completion_length))] if o.max_completion_length else [])
    per_device = 8 if o.cpu else PER_DEVICE
    check = [py, "-c", "import pathlib, sys; sys.exit(not pathlib.Path(sys.argv[1], 'config.json').is_file())", smol]
    jobs = [Job("prep_model", check if o.model else
                qs + ["model", "prepare", "--output", smol] + (["--source", "tiny"] if o.cpu else [])),
            Job("prep_data", qs + ["generate", "--output", data, "--train-size", "512", "--test-size", "32",
                                   "--seed", "6", "--no-progress", "--overwrite"])]
    prep = ("prep_model", "prep_data")
    for name, extra in BACKENDS.items():
        unsloth = name.startswith("unsloth")
        skip = "" if not unsloth or Path(o.unsloth_site, "unsloth").is_dir() or o.cpu else \
            f"no Unsloth in {o.unsloth_site} (scripts/gpu_setup.sh unsloth-addon)"
        jobs.append(Job(name, qs + grpo + extra + ["--output_dir", str(w / "runs" / name)], 1, prep,
                        o.unsloth_site if unsloth else "", skip))
    for port, (name, (config, n)) in enumerate(DIST.items(), start=29511):
        skip = "" if name != "zero2" or Path(o.ds_site, "deepspeed").is_dir() else \
            f"no DeepSpeed in {o.ds_site} (scripts/gpu_setup.sh ds-addon)"
        launch = [py, "-m", "accelerate.commands.launch", "--config_file", f"training/accelerate/{config}",
                  "--num_processes", str(n), "--main_process_port", str(port), "-m", "qwen_scheduler"]
        jobs.append(Job(name, launch + grpo + ["--backend", "trl", "--output_dir", str(w / "runs" / name)],
                        n, prep, o.ds_site if name == "zero2" else "", skip, n))
    for name in BACKENDS:
        jobs.append(Job(f"merge_{name}", qs + ["train", "merge", "--adapter", str(w / "runs" / name), "--output",
                                              str(w / "merged" / name), "--base", smol, "--dataset", data,
                                              "--split", "test", "--dtype", "float32" if o.cpu else "bfloat16"],
                        1, (name,)))
    jobs.append(Job("eval_unsloth_4bit", qs + ["evaluate", "--dataset", data, "--split", "test", "--model",
                                              str(w / "runs" / "unsloth_4bit"), "--label", "unsloth_4bit",
                                              "--limit", "16", "--max-new-tokens", "256", "--batch-size", "16",
                                              "--backend", "transformers", "--output", str(w / "eval")],
                    1, ("unsloth_4bit",)))
    for j in jobs:
        j.per_device = per_device
    return jobs


def _env(o: Opts, job: Job, gpus: list) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               NCCL_NVLS_ENABLE="0", PYTHONUNBUFFERED="1", HF_HUB_DISABLE_PROGRESS_BARS="1", OMP_NUM_THREADS="4")
    path = [p for p in (job.site, o.site, os.environ.get("PYTHONPATH", "")) if p and not o.cpu] or \
        [os.environ.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = ":".join(p for p in path if p)
    if not o.cpu:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpus))
    return env


def _tail(path: Path, n: int = 25) -> list:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    lines = [ln.rstrip() for ln in re.split(r"[\r\n]+", text) if ln.strip()]
    return [ln[:400] for ln in lines[-n:]]


def _kill(proc) -> None:
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _save_state(work: Path, state: dict) -> None:
    tmp = work / "jobs.json.tmp"
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(work / "jobs.json")


def schedule(o: Opts, jobs: list, n_gpus: int, budget: float, dry: dict | None = None, poll: float = 0.3) -> dict:
    """Run ``jobs`` on a pool of ``n_gpus``; ``dry`` = {name: (seconds, exit code)} fakes each command."""
    logs = o.work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    state = {j.name: {"status": "pending", "gpus": [], "cmd": shlex.join(j.argv), "site": j.site} for j in jobs}
    free, running, pending = list(range(n_gpus)), {}, list(jobs)
    while pending or running:
        for name, (proc, job, fh) in list(running.items()):
            if proc.poll() is None:
                continue
            fh.close()
            rec = state[name]
            status = "ok" if proc.returncode == 0 else "timeout" if rec.get("status") == "timeout" else "failed"
            rec.update(rc=proc.returncode, end=round(time.time() - t0, 1), end_abs=time.time(), status=status)
            rec["seconds"] = round(rec["end"] - rec["start"], 1)
            rec["log_tail"] = _tail(logs / f"{name}.log")
            free += rec["gpus"]
            del running[name]
            print(f"[issue6] {rec['end']:6.1f}s {name}: {rec['status']} (rc {proc.returncode}, {rec['seconds']} s)",
                  flush=True)
        left = budget - (time.time() - t0)
        if left <= 0:
            for name, (proc, job, fh) in running.items():
                state[name]["status"] = "timeout"
                print(f"[issue6] {name}: budget of {budget:g} s spent, stopping it", flush=True)
                _kill(proc)
            for job in pending:
                state[job.name].update(status="skipped", reason="no time left in the budget")
            pending = []
            continue  # the stopped jobs are reaped on the next pass
        for job in list(pending):
            rec = state[job.name]
            bad = [d for d in job.deps if state[d]["status"] in ("failed", "skipped", "timeout")]
            reason = job.skip or (f"needs {', '.join(bad)}, which did not succeed" if bad else "") or \
                (f"needs {job.gpus} GPUs, {n_gpus} here" if job.gpus > n_gpus else "") or \
                ("no time left in the budget" if left < 20 else "")
            if reason:
                rec.update(status="skipped", reason=reason)
                pending.remove(job)
                print(f"[issue6] {job.name}: skipped ({reason})", flush=True)
                continue
            if any(state[d]["status"] != "ok" for d in job.deps) or job.gpus > len(free):
                continue
            gpus, free = sorted(free)[:job.gpus], sorted(free)[job.gpus:]
            argv = job.argv if dry is None else [sys.executable, "-c", "import sys, time; time.sleep(%r); "
                                                 "print('dry run'); sys.exit(%d)" % dry.get(job.name, (0.2, 0))]
            fh = open(logs / f"{job.name}.log", "w")
            fh.write(f"$ {shlex.join(job.argv)}\n# GPUs {gpus}, site {job.site or '-'}\n")
            fh.flush()
            proc = subprocess.Popen(argv, cwd=ROOT, env=_env(o, job, gpus), stdout=fh, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            rec.update(status="running", gpus=gpus, start=round(time.time() - t0, 1), start_abs=time.time())
            running[job.name] = (proc, job, fh)
            pending.remove(job)
            print(f"[issue6] {rec['start']:6.1f}s {job.name}: start on GPUs {gpus}", flush=True)
        _save_state(o.work, state)
        time.sleep(poll)
    _save_state(o.work, state)
    return state


class GpuSampler(threading.Thread):
    """``nvidia-smi`` every second -> ``WORK/logs/nvidia-smi.csv`` (epoch seconds, GPU index, MiB used)."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path, self.stop = path, threading.Event()

    def run(self):
        with open(self.path, "w") as fh:
            while not self.stop.is_set():
                try:
                    out = subprocess.run(["nvidia-smi", "--query-gpu=index,memory.used", "--format=csv,noheader,"
                                          "nounits"], capture_output=True, text=True, timeout=10).stdout
                except (OSError, subprocess.SubprocessError):
                    return
                for line in out.strip().splitlines():
                    fh.write(f"{time.time():.1f},{line.replace(' ', '')}\n")
                fh.flush()
                self.stop.wait(1.0)


def versions(o: Opts) -> dict:
    code = ("import importlib.metadata as m, json\nr = {}\nfor n in %r:\n    try: r[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: pass\nprint(json.dumps(r))" % VERSIONS)
    out = {}
    for label, site in (("base", ""), ("unsloth", o.unsloth_site), ("deepspeed", o.ds_site)):
        env = _env(o, Job("v", [], site=site), [])
        try:
            out[label] = json.loads(subprocess.run([o.py, "-c", code], env=env, capture_output=True, text=True,
                                                   timeout=60).stdout)
        except (ValueError, OSError, subprocess.SubprocessError) as e:
            out[label] = {"error": str(e)}
    return out


def count_gpus() -> int:
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.splitlines())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["run", "summarize"])
    ap.add_argument("--work", default="/tmp/issue6", help="work folder (models, data, runs, logs)")
    ap.add_argument("--out", default=os.environ.get("OUT", "issue6-out"), help="results.json, table.md, logs.tar.gz")
    ap.add_argument("--site", default="/tmp/site")
    ap.add_argument("--unsloth-site", default="/tmp/site-unsloth")
    ap.add_argument("--ds-site", default="/tmp/site-ds")
    ap.add_argument("--gpus", type=int, default=None, help="GPUs to use (default: nvidia-smi -L)")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--model", default=None, help="start every run from this model folder (e.g. a GPU pipeline's SFT "
                                                   "model, so that the LoRA earns reward and the merge check means "
                                                   "something) instead of the prepared SmolLM2 base")
    ap.add_argument("--max-completion-length", type=int, default=0,
                    help="override the recipe's 256 (with --model SFT: ~1216, so that completions end and earn reward)")
    ap.add_argument("--only", default="", help="comma-separated job-name patterns to run (fnmatch, e.g. "
                                               "'trl_*,unsloth_4bit,merge_*'); the prep jobs always run")
    ap.add_argument("--budget", type=float, default=450, help="seconds; jobs still running then are stopped")
    ap.add_argument("--cpu", action="store_true", help="really run every job on the CPU with a tiny model (plumbing)")
    ap.add_argument("--dry-run", action="store_true", help="fake every command (0.2 s each): control flow only")
    ap.add_argument("--fail", default="", help="dry run: these jobs (comma-separated) exit 1")
    a = ap.parse_args(argv)
    o = Opts(Path(a.work).resolve(), a.site, a.unsloth_site, a.ds_site, a.steps, a.cpu,
             model=str(Path(a.model).resolve()) if a.model else "", max_completion_length=a.max_completion_length)
    jobs = plan(o)
    if a.only:
        pats = [p.strip() for p in a.only.split(",") if p.strip()]
        jobs = [j for j in jobs if j.name.startswith("prep_") or any(fnmatch.fnmatch(j.name, p) for p in pats)]
    out = Path(a.out)
    if a.command == "summarize":
        state = json.loads((o.work / "jobs.json").read_text())
        meta = json.loads((o.work / "meta.json").read_text())
    else:
        n = a.gpus if a.gpus is not None else (4 if a.cpu or a.dry_run else count_gpus())
        for sub in ("runs", "merged", "eval", "logs"):  # a rerun starts clean (the model and data are kept)
            shutil.rmtree(o.work / sub, ignore_errors=True)
        o.work.mkdir(parents=True, exist_ok=True)
        meta = {"work": str(o.work), "model": o.model, "gpus": n, "budget_s": a.budget, "steps": a.steps, "cpu": a.cpu,
                "max_completion_length": a.max_completion_length or None, "only": a.only or None,
                "dry_run": a.dry_run,
                "recipe": RECIPE, "per_device": jobs[-1].per_device, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "nvidia_smi_L": subprocess.run("nvidia-smi -L", shell=True, capture_output=True, text=True).stdout,
                "versions": {} if a.dry_run else versions(o)}
        (o.work / "meta.json").write_text(json.dumps(meta, indent=1))
        sampler = None
        if n and not (a.cpu or a.dry_run):
            (o.work / "logs").mkdir(parents=True, exist_ok=True)
            sampler = GpuSampler(o.work / "logs" / "nvidia-smi.csv")
            sampler.start()
        dry = {name: (0.2, 1) for name in a.fail.split(",") if name} if a.dry_run else None
        if dry is not None:
            dry.update({j.name: (0.2, 0) for j in jobs if j.name not in dry})
        state = schedule(o, jobs, n, a.budget, dry)
        if sampler:
            sampler.stop.set()
            sampler.join(5)
    results = summarize(o.work, jobs, state, meta)
    write_outputs(results, o.work, out)
    print(f"[issue6] wrote {out}/results.json, table.md, logs.tar.gz", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
