#!/usr/bin/env python3
"""Counts the FLOPs of one forward call with PyTorch's FlopCounterMode, as the reference for
Sources/LDMBench/FlopCounter.swift (pinned in Tests/LDMTrainingTests/FlopCounterTests.swift).

    /work/venv/ref/bin/python scripts/count_flops.py          # tiny configs (the pinned figures)
    /work/venv/ref/bin/python scripts/count_flops.py --sd     # also Stable Diffusion 1.x sizes

Every model is built on the meta device: no weights are allocated and nothing is computed, only
the operators' shapes are seen. This matters beyond speed: on the CPU, torch dispatches
scaled_dot_product_attention to `_scaled_dot_product_flash_attention_for_cpu`, for which
FlopCounterMode has no formula, so attention would count 0. On the meta device SDPA falls back to
its math form (two batched matrix products, counted as aten.bmm), which is what we count too.
The CPU figure (attention left out) is printed beside each tiny one for reference.

FlopCounterMode counts 2 FLOPs per multiply-add of mm/addmm/bmm/baddbmm/convolution (bias, norms,
activations, softmax, upsampling and elementwise work are not counted).
"""
import argparse
import platform
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

import diffusers
import transformers
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel


def count(fn, *args, **kwargs):
    """(total, {operator: flops}) of one call."""
    with FlopCounterMode(display=False) as fc:
        fn(*args, **kwargs)
    per_op = {str(k): v for k, v in fc.get_flop_counts()["Global"].items()}
    return fc.get_total_flops(), per_op


def unet_flops(device, res, batch=1, context=(7, 32), **config):
    with torch.device(device):
        torch.manual_seed(0)
        unet = UNet2DConditionModel(**config).eval()
        x = torch.zeros(batch, unet.config.in_channels, res, res)
        t = torch.full((batch,), 500.0)
        c = torch.zeros(batch, *context)
    with torch.no_grad():
        return count(unet, x, t, encoder_hidden_states=c)


def vae_flops(device, latent, **config):
    with torch.device(device):
        torch.manual_seed(0)
        vae = AutoencoderKL(**config).eval()
        f = 2 ** (len(vae.config.block_out_channels) - 1)
        z = torch.zeros(1, vae.config.latent_channels, latent, latent)
        x = torch.zeros(1, vae.config.in_channels, latent * f, latent * f)
    with torch.no_grad():
        return count(vae.decode, z), count(vae.encode, x)


def text_flops(device, tokens, **config):
    with torch.device(device):
        torch.manual_seed(0)
        model = CLIPTextModel(CLIPTextConfig(**config)).eval()
        ids = torch.zeros(1, tokens, dtype=torch.long)
    with torch.no_grad():
        return count(model, ids)


TINY_UNET = dict(block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=2, norm_num_groups=8,
                 cross_attention_dim=32, attention_head_dim=4, in_channels=4, out_channels=4, sample_size=16)
TINY_UNET_LINEAR = dict(TINY_UNET, use_linear_projection=True, transformer_layers_per_block=2)
TINY_VAE = dict(block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D",) * 2,
                up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, norm_num_groups=8, latent_channels=4)
TINY_TEXT = dict(vocab_size=100, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                 max_position_embeddings=77, bos_token_id=98, eos_token_id=99, pad_token_id=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sd", action="store_true", help="also count Stable Diffusion 1.x sizes (meta device)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, transformers {transformers.__version__}, "
          f"python {platform.python_version()}")

    def show(name, meta, cpu=None):
        total, per_op = meta
        ops = ", ".join(f"{k} {v}" for k, v in sorted(per_op.items()))
        extra = f"  (cpu, SDPA uncounted: {cpu[0]})" if cpu else ""
        print(f"{name}: {total}{extra}\n    {ops}")

    for name, cfg in [("tiny unet (32, 64), 16x16, context 7x32", TINY_UNET),
                      ("tiny unet, linear projection, 2 transformer layers", TINY_UNET_LINEAR)]:
        show(name, unet_flops("meta", 16, **cfg), unet_flops("cpu", 16, **cfg))
    (dec, enc), (dec_cpu, enc_cpu) = vae_flops("meta", 8, **TINY_VAE), vae_flops("cpu", 8, **TINY_VAE)
    show("tiny vae decode 8x8 -> 16x16", dec, dec_cpu)
    show("tiny vae encode 16x16", enc, enc_cpu)
    show("tiny clip text, 7 tokens", text_flops("meta", 7, **TINY_TEXT), text_flops("cpu", 7, **TINY_TEXT))

    if args.sd:
        sd = dict(cross_attention_dim=768)
        no_top = dict(sd, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                      up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"))
        ctx = (77, 768)
        show("sd1.x unet latent 32x32", unet_flops("meta", 32, context=ctx, **sd))
        show("sd1.x unet latent 64x64", unet_flops("meta", 64, context=ctx, **sd))
        show("sd1.x unet pixel 256x256", unet_flops("meta", 256, context=ctx, in_channels=3, out_channels=3, **sd))
        show("sd1.x unet no top attention, pixel 256x256",
             unet_flops("meta", 256, context=ctx, in_channels=3, out_channels=3, **no_top))
        show("sd1.x unet no top attention, latent 32x32", unet_flops("meta", 32, context=ctx, **no_top))
        sd_vae = dict(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                      up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2)
        dec, enc = vae_flops("meta", 32, **sd_vae)
        show("sd vae decode 32x32 -> 256x256", dec)
        show("sd vae encode 256x256", enc)
        show("sd1.x clip text (ViT-L/14), 77 tokens",
             text_flops("meta", 77, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12))
    return 0


if __name__ == "__main__":
    sys.exit(main())
