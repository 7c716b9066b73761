#!/usr/bin/env python3
"""PyTorch reference for the training-step benchmarks of agents/nn.

Builds the three networks of docs/nn.md (seed §2.4-2.6) in PyTorch on the CPU
(or, with --device cuda, on the GPU in eager mode, TF32 off) in float32 with the same layers and losses as the Go code: LayerNorm,
dropout, the Q Huber loss on Q(s, a), the PPO clipped surrogate with the
log-space ratio bound, value loss and entropy bonus, the LSTM's asymmetric
squared error; global-norm gradient clipping where the Go defaults have it;
Adam. Each network trains on a fixed random minibatch of the Go benchmark's
size and the script prints one JSON object per network with the median
samples/s over --runs runs.

PyTorch is not a dependency of the build or the tests; bench/run.sh runs
this script when a Python with torch is available.
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def block(i, o, p):
    return nn.Sequential(nn.Linear(i, o), nn.LayerNorm(o, eps=1e-5), nn.ReLU(), nn.Dropout(p))


class QNet(nn.Module):
    """Strategic dual encoder: 10 → 128 → 64 and 4 → 32, head 96 → 64 → 32 → 3."""

    def __init__(self):
        super().__init__()
        self.strategic = nn.Sequential(block(10, 128, 0.1), block(128, 64, 0.1))
        self.app = block(4, 32, 0.1)
        self.head = nn.Sequential(block(96, 64, 0.1), block(64, 32, 0.1), nn.Linear(32, 3))

    def forward(self, x):
        return self.head(torch.cat([self.strategic(x[:, :10]), self.app(x[:, 10:])], dim=1))


class PPONet(nn.Module):
    """Tactical actor-critic: shared 11 → 128 → 128, actor → 128 → 64 → 24, critic → 64 → 1."""

    def __init__(self):
        super().__init__()
        self.shared = nn.Sequential(block(11, 128, 0.1), block(128, 128, 0.1))
        self.actor = nn.Sequential(nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 24))
        self.critic = nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, x, mask):
        h = self.shared(x)
        return F.log_softmax(self.actor(h) + mask, dim=1), self.critic(h).squeeze(1)


class LSTMNet(nn.Module):
    """Operational predictor: LSTM 5 → 128, dropout 0.2, LSTM 128 → 64, dropout 0.2, dense 64 → 32 → 3."""

    def __init__(self):
        super().__init__()
        self.l1 = nn.LSTM(5, 128, batch_first=True)
        self.l2 = nn.LSTM(128, 64, batch_first=True)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 3))

    def forward(self, x):
        h, _ = self.l1(x)
        h, _ = self.l2(self.drop(h))
        return self.head(self.drop(h[:, -1]))


def q_case(dev, batch=64):
    net = QNet().to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    x = torch.randn(batch, 14, device=dev)
    a = torch.randint(0, 3, (batch,), device=dev)
    target = torch.randn(batch, device=dev)

    def step():
        qa = net(x).gather(1, a[:, None]).squeeze(1)
        loss = F.huber_loss(qa, target, delta=1.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()

    return net, step, batch


def ppo_case(dev, batch=64):
    net = PPONet().to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=3e-4)
    x = torch.randn(batch, 11, device=dev)
    mask = torch.zeros(batch, 24, device=dev)
    a = torch.arange(batch, device=dev) % 24
    with torch.no_grad():
        net.eval()
        old = net(x, mask)[0].gather(1, a[:, None]).squeeze(1)
        net.train()
    adv, ret = torch.randn(batch, device=dev), torch.randn(batch, device=dev)
    lo, hi = math.log(0.01), math.log(100.0)

    def step():
        logp, v = net(x, mask)
        ratio = torch.exp(torch.clamp(logp.gather(1, a[:, None]).squeeze(1) - old, lo, hi))
        policy = -torch.min(ratio * adv, torch.clamp(ratio, 0.8, 1.2) * adv).mean()
        value = ((v - ret) ** 2).mean()
        entropy = -(logp.exp() * logp).sum(1).mean()
        loss = policy + 0.5 * value - 0.01 * entropy
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 0.5)
        opt.step()

    return net, step, batch


def lstm_case(dev, batch=128):
    net = LSTMNet().to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(batch, 12, 5, device=dev)
    y = torch.randn(batch, 3, device=dev)

    def step():
        e = net(x) - y
        loss = (torch.where(e < 0, 5.0, 1.0) * e * e).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return net, step, batch


CASES = {"Q": (q_case, 400), "PPO": (ppo_case, 400), "LSTM": (lstm_case, 40)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, required=True, help="torch.set_num_threads (GOMAXPROCS of the Go run)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies the steps per run")
    ap.add_argument("--nets", default="Q,PPO,LSTM")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda (eager mode, FP32 without TF32)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    def sync():
        if cuda:
            torch.cuda.synchronize()
    for name in args.nets.split(","):
        make, steps = CASES[name]
        steps = max(1, int(steps * args.scale))
        net, step, batch = make(dev)
        net.train()
        for _ in range(max(3, steps // 10)):
            step()
        sync()
        rates, cpu_rates = [], []
        for _ in range(args.runs):
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(steps):
                step()
            sync()
            rates.append(steps * batch / (time.perf_counter() - t0))
            cpu_rates.append(steps * batch / max(time.process_time() - c0, 1e-9))
        print(json.dumps({"net": name, "samples_per_s": statistics.median(rates), "runs": rates,
                          "samples_per_cpu_s": statistics.median(cpu_rates),
                          "batch": batch, "threads": args.threads, "torch": torch.__version__, "device": args.device,
                          "gpu": torch.cuda.get_device_name() if cuda else "", "cuda": torch.version.cuda if cuda else ""}), flush=True)


if __name__ == "__main__":
    main()
