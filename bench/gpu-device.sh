#!/usr/bin/env bash
# Runs the CUDA backend's checks on a GPU machine that has CUDA 13 and
# PyTorch but no Go: the parity, determinism and forward tests, the
# training-step benchmark against PyTorch CUDA eager (bench/gpu.py) and the
# learner benchmarks on both backends (through learner.Handle with
# learner.test, through the transitions topic with pipeline.test). The test binaries come prebuilt in
# .gpu/ (make gpu-binaries, docs/nn.md "CUDA backend"); results go to
# $OUT (or ./gpu-out).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
for f in .gpu/*.xz; do [ -e "$f" ] && xz -dkf "$f"; done
chmod +x .gpu/*.test
libdirs=$(find /usr/local /opt /usr/lib -xdev \( -name 'libcublas.so.13' -o -name 'libcudart.so.13' -o -name 'libnvrtc.so.13' \) 2>/dev/null | xargs -r -n1 dirname | sort -u | tr '\n' ':')
export LD_LIBRARY_PATH="${libdirs}${LD_LIBRARY_PATH:-}"
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  nvcc --version 2>/dev/null | tail -2
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  nproc
} 2>&1 | tee "$OUT/machine.txt"
echo "== tests" | tee "$OUT/tests.txt"
(cd agents/nn && STRATA_REQUIRE_CUDA=1 timeout 240 ../../.gpu/nn.test -test.run "${TESTS:-TestCUDA}" -test.v -test.timeout 230s) >>"$OUT/tests.txt" 2>&1
grep -E "^(=== RUN|--- |PASS|FAIL|ok)|device:|max relative|panic" "$OUT/tests.txt" | head -80
if [ -n "${PROFILE:-}" ]; then
  echo "== CPU profile of the LSTM step on cuda" | tee "$OUT/profile.txt"
  (cd agents/nn && ../../.gpu/nn.test -test.run '^$' -test.bench "${PROFILE_BENCH:-LSTMTrainStep/backend=cuda\$}" -test.benchtime 3s -test.cpuprofile "$OUT/step.prof") 2>&1 | tee -a "$OUT/profile.txt"
fi
if [ -n "${NOGRAPHS:-}" ]; then
  echo "== training step on cuda without CUDA graphs (STRATA_CUDA_GRAPHS=0)" | tee "$OUT/nographs.txt"
  (cd agents/nn && STRATA_CUDA_GRAPHS=0 ../../.gpu/nn.test -test.run '^$' -test.bench 'TrainStep/backend=cuda$' -test.benchtime 2s) 2>&1 | grep Benchmark | tee -a "$OUT/nographs.txt"
fi
if [ -z "${SKIP_BENCH:-}" ]; then
  echo "== training step vs PyTorch" | tee "$OUT/bench.txt"
  timeout ${BENCH_TIMEOUT:-200} python3 bench/gpu.py --binary .gpu/nn.test --runs ${RUNS:-3} 2>&1 | tee -a "$OUT/bench.txt"
fi
if [ -z "${SKIP_LEARNER:-}" ] && [ -x .gpu/learner.test ]; then
  echo "== learner (learner.Handle)" | tee "$OUT/learner.txt"
  (cd agents/learner && timeout 120 ../../.gpu/learner.test -test.run '^$' -test.bench 'TacticalBackend' -test.benchtime 3x) 2>&1 | tee -a "$OUT/learner.txt"
fi
if [ -z "${SKIP_LEARNER:-}" ] && [ -x .gpu/pipeline.test ]; then
  echo "== learner role on the transitions topic (embedded Kafka and NATS)" | tee "$OUT/learner-topic.txt"
  (cd pipeline && timeout 180 ../.gpu/pipeline.test -test.run '^$' -test.bench 'LearnerRoleTopic' -test.benchtime 3x) 2>&1 | tee -a "$OUT/learner-topic.txt"
fi
