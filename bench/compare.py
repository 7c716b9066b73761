#!/usr/bin/env python3
"""Training samples/s of strata's networks against PyTorch on this machine.

Runs, --runs times in alternation (so both see the same load), the Go
training-step benchmarks of agents/nn on the CPU backend
(BenchmarkPPOTrainStep, BenchmarkQTrainStep, BenchmarkLSTMTrainStep) and
bench/torch_nets.py, takes the median of each, runs the gorgonia backend
once for the before/after column, and prints as its last lines the ratio
strata ÷ PyTorch per network. GOMAXPROCS and torch.set_num_threads are both
--threads (default: the number of CPUs). Before those lines it prints the
best run of each network and samples per CPU-second, which the load of a
shared machine moves less than wall-clock medians.

Only the standard library is needed here; PyTorch is looked for in
$TORCH_PYTHON, then ~/.cache/strata-infra/torchenv/bin/python. Without it
the Go numbers are printed alone.

    python3 bench/compare.py [--runs 5] [--threads 2]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETS = ["PPO", "Q", "LSTM"]
BENCH = re.compile(r"^Benchmark(\w+)TrainStep/backend=(\w+)(?:-\d+)?\s+\d+\s+(\d+) ns/op")
METRIC = re.compile(r"([\d.]+) ([\w/-]+)")


def go_bench(binary, threads, backend, benchtime):
    env = dict(os.environ, GOMAXPROCS=str(threads))
    out = subprocess.run([binary, "-test.run", "^$", "-test.bench", f"TrainStep/backend={backend}$",
                          "-test.benchtime", benchtime], cwd=os.path.join(ROOT, "agents", "nn"),
                         env=env, capture_output=True, text=True, check=True).stdout
    res, cpu = {}, {}
    for line in out.splitlines():
        m = BENCH.match(line)
        if m:
            metrics = {unit: float(v) for v, unit in METRIC.findall(line[m.end():])}
            res[m.group(1)] = metrics["samples/s"]
            cpu[m.group(1)] = metrics.get("samples/cpu-s", 0)
    return res, cpu


def torch_python():
    for p in [os.environ.get("TORCH_PYTHON"), os.path.expanduser("~/.cache/strata-infra/torchenv/bin/python")]:
        if p and os.path.exists(p):
            ok = subprocess.run([p, "-c", "import torch"], capture_output=True).returncode == 0
            if ok:
                return p
    return None


def torch_bench(py, threads, scale):
    out = subprocess.run([py, os.path.join(ROOT, "bench", "torch_nets.py"), "--threads", str(threads),
                          "--runs", "1", "--scale", str(scale)], capture_output=True, text=True, check=True).stdout
    res, cpu, version = {}, {}, ""
    for line in out.splitlines():
        d = json.loads(line)
        res[d["net"]] = d["samples_per_s"]
        cpu[d["net"]] = d["samples_per_cpu_s"]
        version = d["torch"]
    return res, cpu, version


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--benchtime", default="1s", help="go test -benchtime per CPU-backend run")
    ap.add_argument("--torch-scale", type=float, default=0.5, help="scales torch_nets.py's steps per run")
    ap.add_argument("--no-gorgonia", action="store_true", help="skip the gorgonia before column")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        binary = os.path.join(tmp, "nn.test")
        subprocess.run(["go", "test", "-c", "-o", binary, "./agents/nn/"], cwd=ROOT, check=True)
        py = torch_python()
        if py is None:
            print("no Python with torch found: Go numbers only", file=sys.stderr)
        strata, strata_cpu = {n: [] for n in NETS}, {n: [] for n in NETS}
        torch, torch_cpu = {n: [] for n in NETS}, {n: [] for n in NETS}
        version = ""
        for i in range(args.runs):
            res, cpu = go_bench(binary, args.threads, "cpu", args.benchtime)
            for n in res:
                strata[n].append(res[n])
                strata_cpu[n].append(cpu[n])
            if py:
                res, cpu, version = torch_bench(py, args.threads, args.torch_scale)
                for n in res:
                    torch[n].append(res[n])
                    torch_cpu[n].append(cpu[n])
            print(f"run {i + 1}/{args.runs}: strata " + ", ".join(f"{n} {strata[n][-1]:,.0f}" for n in NETS)
                  + ("; PyTorch " + ", ".join(f"{n} {torch[n][-1]:,.0f}" for n in NETS) if py else ""), flush=True)
        before = {} if args.no_gorgonia else go_bench(binary, args.threads, "gorgonia", "10x")[0]
    print(f"\nthreads {args.threads} (GOMAXPROCS{', torch.set_num_threads' if py else ''}), median of {args.runs} runs, "
          f"load {os.getloadavg()[0]:.2f}{', torch ' + version if py else ''}")
    print("samples/s (wall clock); in brackets samples per CPU-second, all threads together")
    print(f"{'network':8} {'gorgonia':>10} {'strata cpu':>22} {'cpu/gorgonia':>13} {'PyTorch':>22}")
    med = {n: statistics.median(strata[n]) for n in NETS}
    cmed = {n: statistics.median(strata_cpu[n]) for n in NETS}
    tmed = {n: statistics.median(torch[n]) for n in NETS if torch[n]}
    tcmed = {n: statistics.median(torch_cpu[n]) for n in NETS if torch_cpu[n]}
    for n in NETS:
        g = before.get(n)
        print(f"{n:8} {g or 0:10,.0f} {med[n]:10,.0f} [{cmed[n]:9,.0f}] {(med[n] / g if g else 0):13.1f} "
              f"{tmed.get(n, 0):10,.0f} [{tcmed.get(n, 0):9,.0f}]")
    print()
    if tmed:
        # On a shared machine the best run of each is the closest to what
        # an idle machine gives (PyTorch's OpenMP threads suffer most when a
        # core is taken).
        for n in NETS:
            if n in tmed:
                print(f"{n} best of {args.runs} runs: strata {max(strata[n]):,.0f}, PyTorch {max(torch[n]):,.0f} samples/s, "
                      f"ratio {max(strata[n]) / max(torch[n]):.2f}")
        for n in NETS:
            if n in tcmed:
                print(f"{n} samples per CPU-second strata / PyTorch = {cmed[n] / tcmed[n]:.2f}")
    for n in NETS:
        if n in tmed:
            print(f"{n} training samples/s strata / PyTorch = {med[n] / tmed[n]:.2f}")
        else:
            print(f"{n} training samples/s strata = {med[n]:,.0f} (no PyTorch)")


if __name__ == "__main__":
    main()
