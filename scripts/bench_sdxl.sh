#!/bin/bash
# Run by hand from the repository root (needs the reference virtualenv at /work/venv, or set P=):
#   scripts/bench_sdxl.sh > runs/bench/sdxl-bench.log
# The SDXL and few-step benchmarks, ours and PyTorch's in one sitting (README, Speed); a background
# `ldm train` is paused meanwhile.
cd "$(dirname "$0")/.."
TRAIN=$(pgrep -f "ldm train" | head -1)
[ -n "$TRAIN" ] && kill -STOP $TRAIN
L=.build/release/ldm; P=${P:-/work/venv/bin/python}; mkdir -p runs/bench
echo "== $(date)"; grep -o -w 'avx512_bf16\|avx512f\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' '; echo
$L bench unet --architecture sd15 --latent 64 --batch 2 --calls 1 --json runs/bench/ours-sd15-unet64.json 2>&1 | tail -1
$P scripts/bench_pytorch.py --only unet64 --repeats 1 2>&1 | grep -v Warn
$L bench unet --architecture sdxl-turbo --latent 64 --batch 1 --calls 1 --json runs/bench/ours-sdxl-unet64.json 2>&1 | tail -1
$P scripts/bench_pytorch.py --only sdxl64 --repeats 1 2>&1 | grep -v Warn
$L bench image --architecture sd21-turbo --steps 1 --guidance 0 --vae taesd --size 512 --json runs/bench/ours-sd21turbo.json 2>&1 | tail -1
$P scripts/bench_pytorch.py --only sd21turbo 2>&1 | grep -v Warn
$L bench image --architecture sdxl-turbo --steps 1 --guidance 0 --vae taesd --size 512 --json runs/bench/ours-sdxlturbo.json 2>&1 | tail -1
$P scripts/bench_pytorch.py --only sdxlturbo 2>&1 | grep -v Warn
$L bench image --architecture sd21-turbo --steps 1 --guidance 0 --size 512 --json runs/bench/ours-sd21turbo-vae.json 2>&1 | tail -1
$L bench unet --architecture sdxl --latent 128 --batch 2 --calls 1 --json runs/bench/ours-sdxl-unet128.json 2>&1 | tail -1
$P scripts/bench_pytorch.py --only sdxl128 --repeats 1 2>&1 | grep -v Warn
echo "== done $(date)"
[ -n "$TRAIN" ] && kill -CONT $TRAIN
