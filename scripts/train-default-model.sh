#!/usr/bin/env bash
# Retrains the shipped model from scratch (what `make checkpoints` runs) and installs it in
# Checkpoints/. Every stage resumes from its newest checkpoint, so the script can be stopped and
# run again. Runs live in $RUN (default runs/default, git-ignored).
#
# Time on a 2-core build machine: the VAE about 30 minutes (4,000 steps at ≈ 20 samples/s, measured
# on a 2-core AMD EPYC); the U-Net + text encoder many hours; the decoder fine-tune about 40 minutes
# (see Checkpoints/README.md for the figures of the shipped model). The shipped model reached its
# settings in phases (Checkpoints/README.md); this script uses the final settings from the first
# step, which as a whole has not been run to the end.
set -euo pipefail
cd "$(dirname "$0")/.."
LDM=.build/release/ldm
RUN=${RUN:-runs/default}
VAE_STEPS=${VAE_STEPS:-4000}
UNET_STEPS=${UNET_STEPS:-40000}
DECODER_STEPS=${DECODER_STEPS:-3000}
# Keep glibc from returning large freed blocks to the kernel after every step: fresh tensors would
# otherwise page-fault their memory in again each time (about 30,000 faults a second measured).
export MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_:-33554432}
export MALLOC_TRIM_THRESHOLD_=${MALLOC_TRIM_THRESHOLD_:-17179869184}
export MALLOC_TOP_PAD_=${MALLOC_TOP_PAD_:-268435456}

$LDM train vae --run "$RUN/vae" --resume --steps "$VAE_STEPS" --batch 8 --lr 1e-3 --checkpoint-every 250 \
    --export "$RUN/vae-model"
$LDM train unet --run "$RUN/unet" --resume --vae "$RUN/vae-model" --steps "$UNET_STEPS" --batch 32 \
    --layers 2 --lr 1e-3 --text-lr-scale 0.5 --qk-lr-scale 0.1 --caption-mix 1,4,1,1,5 --spread-relations 0.75 --high-noise-share 0.3 --zero-terminal-snr --loss-weighting min_snr_plus_one --checkpoint-every 500 \
    --export "$RUN/model" --export-f16
# Then the VAE's decoder alone, on the frozen encoder (the U-Net's latents do not change): sharper
# small shapes; it replaces the VAE the U-Net was trained with.
$LDM train vae --run "$RUN/vae-decoder" --resume --init-from "$RUN/vae-model" --decoder-only --steps "$DECODER_STEPS" \
    --batch 16 --lr 5e-4 --checkpoint-every 250 --export "$RUN/vae-decoder-model"
rm -rf "$RUN/model/vae" && cp -r "$RUN/vae-decoder-model" "$RUN/model/vae"
rm -rf Checkpoints.new && mkdir Checkpoints.new
cp -r "$RUN/model/." Checkpoints.new/
cp Checkpoints/README.md Checkpoints.new/ 2>/dev/null || true
[ -f Checkpoints/ldm_defaults.json ] && cp Checkpoints/ldm_defaults.json Checkpoints.new/
rm -rf Checkpoints.old && mv Checkpoints Checkpoints.old && mv Checkpoints.new Checkpoints && rm -rf Checkpoints.old
echo "installed the new model in Checkpoints/"
