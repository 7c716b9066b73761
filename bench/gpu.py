#!/usr/bin/env python3
"""Training samples/s of strata's CUDA backend against PyTorch CUDA eager.

Runs, --runs times in alternation (so both see the same machine state), the
Go training-step benchmarks of agents/nn on the CUDA backend
(BenchmarkQTrainStep, BenchmarkPPOTrainStep, BenchmarkLSTMTrainStep: the
same networks, minibatches and losses as bench/torch_nets.py) and
bench/torch_nets.py --device cuda, then prints the medians and, as its last
lines, the ratio strata ÷ PyTorch per network. The CPU backend runs once
beside them for scale. Both sides do the whole step the way their users
would: forward, loss, backward, global-norm clip, Adam (strata's Adam runs on
the host, PyTorch's on the GPU).

The test binary is built with `go test -tags strata_cuda -c ./agents/nn`
(make check-cuda does it), or given with --binary where Go is not installed
(docs/nn.md, "CUDA backend").

    python3 bench/gpu.py [--binary nn.test] [--runs 5]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from compare import NETS  # noqa: E402  (the CPU comparison's parsing of the Go benchmarks)
from compare import go_bench as compare_go_bench  # noqa: E402


def go_bench(binary, backend, benchtime, threads):
    return compare_go_bench(binary, threads, backend, benchtime)[0]


def torch_bench(py, threads, scale):
    out = subprocess.run([py, os.path.join(ROOT, "bench", "torch_nets.py"), "--device", "cuda", "--threads", str(threads),
                          "--runs", "1", "--scale", str(scale)], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"torch_nets.py failed:\n{out.stdout}\n{out.stderr}")
    res, info = {}, {}
    for line in out.stdout.splitlines():
        d = json.loads(line)
        res[d["net"]] = d["samples_per_s"]
        info = d
    return res, info


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", help="agents/nn test binary built with -tags strata_cuda (default: build one)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--benchtime", default="2s", help="go test -benchtime per run")
    ap.add_argument("--torch-scale", type=float, default=5, help="scales torch_nets.py's steps per run")
    ap.add_argument("--python", default=sys.executable, help="a Python with torch and CUDA")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        binary = args.binary
        if not binary:
            binary = os.path.join(tmp, "nn.test")
            subprocess.run(["go", "test", "-tags", "strata_cuda", "-c", "-o", binary, "./agents/nn/"], cwd=ROOT, check=True)
        binary = os.path.abspath(binary)
        strata = {n: [] for n in NETS}
        torch = {n: [] for n in NETS}
        info = {}
        for i in range(args.runs):
            res = go_bench(binary, "cuda", args.benchtime, args.threads)
            for n in NETS:
                strata[n].append(res[n])
            res, info = torch_bench(args.python, args.threads, args.torch_scale)
            for n in NETS:
                torch[n].append(res[n])
            print(f"run {i + 1}/{args.runs}: strata cuda " + ", ".join(f"{n} {strata[n][-1]:,.0f}" for n in NETS)
                  + "; PyTorch cuda " + ", ".join(f"{n} {torch[n][-1]:,.0f}" for n in NETS), flush=True)
        cpu = go_bench(binary, "cpu", "1s", args.threads)
    print(f"\n{info.get('gpu', '?')}, PyTorch {info.get('torch', '?')} (CUDA {info.get('cuda', '?')}), "
          f"GOMAXPROCS {args.threads}, median of {args.runs} runs")
    print("training samples/s (wall clock, whole step)")
    print(f"{'network':8} {'strata cpu':>12} {'strata cuda':>12} {'PyTorch cuda':>13}")
    med = {n: statistics.median(strata[n]) for n in NETS}
    tmed = {n: statistics.median(torch[n]) for n in NETS}
    for n in NETS:
        print(f"{n:8} {cpu.get(n, 0):12,.0f} {med[n]:12,.0f} {tmed[n]:13,.0f}")
    print()
    for n in NETS:
        print(f"{n} training samples/s strata cuda / PyTorch cuda eager = {med[n] / tmed[n]:.2f}")


if __name__ == "__main__":
    main()
