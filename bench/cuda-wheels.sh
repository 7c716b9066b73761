#!/usr/bin/env bash
# Puts the CUDA 13.0 headers and libraries that the CUDA backend builds
# against (runtime, cuBLAS, NVRTC, with the crt and CCCL headers they
# include) into DIR from NVIDIA's wheels on PyPI, for a machine without the
# CUDA toolkit: then `make check-cuda CUDA_HOME=DIR/nvidia/cu13` compiles
# the kernels there, and `make gpu-binaries CUDA_HOME=…` builds the test
# binaries a GPU machine runs. No GPU is needed for either. 13.0 is the
# version the GPU machine's driver (580) and PyTorch (cu130) have.
set -euo pipefail
dir=${1:?usage: bench/cuda-wheels.sh DIR}
mkdir -p "$dir/wheels"
for p in nvidia-cuda-runtime nvidia-cublas nvidia-cuda-nvrtc nvidia-cuda-crt nvidia-cuda-cccl; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux_2_12_x86_64 \
    --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 -d "$dir/wheels" "$p==13.0.*"
done
for w in "$dir"/wheels/*.whl; do unzip -q -o "$w" -d "$dir"; done
lib="$dir/nvidia/cu13/lib"
for l in cudart cublas cublasLt nvrtc; do ln -sf "lib$l.so.13" "$lib/lib$l.so"; done
echo "CUDA_HOME=$dir/nvidia/cu13"
