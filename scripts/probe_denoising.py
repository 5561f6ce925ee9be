#!/usr/bin/env python3
"""Does a trained model denoise its own training images, and does its caption help? By noise level.

Run by hand with the reference virtualenv (diffusers, torch, numpy), never by tests or the product:

    /work/venv/bin/python scripts/probe_denoising.py MODEL_DIR DATASET_FOLDER [COUNT]

It picks COUNT (default 32) image/caption pairs of a folder dataset (`ldm dataset …` layout: PNG
beside a same-named .txt), encodes them with the model's VAE (the mean latent, scaled), noises them
at t = 999 … 20 with one fixed noise draw, and prints per t the mean squared error of the predicted
x₀ (in scaled latent units) with the true caption and with the empty one, beside the error of
predicting x₀ = √ᾱ·x_t (what a network that outputs zero would give).

A model that reads its captions has a lower error with them than without, most of all at high t;
equal columns mean the captions are ignored (how the session-21 diagnosis of the emoji model found
its U-Net blind to text). An error near the zero-output column at low t means the network does not
denoise at all. It also prints, for three captions, how much the U-Net output moves when the
caption is swapped for another, for random context or for zeros, relative to the output.
"""

import glob
import struct
import sys
import zlib

import numpy as np
import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

TIMESTEPS = (999, 900, 700, 500, 300, 200, 100, 50, 20)


def read_png_rgb(path):
    """An 8-bit RGB or RGBA non-interlaced PNG (what `ldm dataset` writes) as uint8 [h, w, 3]."""
    data = open(path, "rb").read()
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in (2, 6) or interlace:
        raise SystemExit(f"{path}: only 8-bit RGB/RGBA non-interlaced PNGs are read here")
    channels = 3 if colour == 2 else 4
    stride = width * channels
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), np.int32)
    previous = np.zeros(stride, np.int32)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        row = np.zeros(stride, np.int32)
        if kind in (0, 2):
            row = (line + (previous if kind == 2 else 0)) & 255
        else:
            for x in range(stride):
                left = row[x - channels] if x >= channels else 0
                up_left = previous[x - channels] if x >= channels else 0
                if kind == 1:
                    predictor = left
                elif kind == 3:
                    predictor = (left + previous[x]) // 2
                else:
                    p = left + previous[x] - up_left
                    pa, pb, pc = abs(p - left), abs(p - previous[x]), abs(p - up_left)
                    predictor = left if pa <= pb and pa <= pc else (previous[x] if pb <= pc else up_left)
                row[x] = (line[x] + predictor) & 255
        out[y], previous = row, row
    return out.reshape(height, width, channels)[:, :, :3].astype(np.uint8)


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    model, folder = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 32
    torch.set_num_threads(2)
    unet = UNet2DConditionModel.from_pretrained(model, subfolder="unet", torch_dtype=torch.float32).eval()
    vae = AutoencoderKL.from_pretrained(model, subfolder="vae", torch_dtype=torch.float32).eval()
    text = CLIPTextModel.from_pretrained(model, subfolder="text_encoder", torch_dtype=torch.float32).eval()
    tokenizer = CLIPTokenizer.from_pretrained(model, subfolder="tokenizer")
    schedule = DDPMScheduler.from_pretrained(model, subfolder="scheduler")
    files = sorted(glob.glob(folder + "/*.png"))
    picked = np.random.default_rng(0).choice(len(files), min(count, len(files)), replace=False)
    images = [read_png_rgb(files[i]).astype(np.float32) / 127.5 - 1 for i in picked]
    captions = [open(files[i][:-4] + ".txt", encoding="utf-8").read().strip() for i in picked]

    def encode(prompts):
        ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length,
                        truncation=True, return_tensors="pt").input_ids
        return text(ids)[0]

    with torch.no_grad():
        pixels = torch.tensor(np.stack([im.transpose(2, 0, 1) for im in images]))
        latents = vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor
        context, empty = encode(captions), encode([""] * len(captions))
        v_prediction = schedule.config.prediction_type == "v_prediction"
        print(f"{len(captions)} images; latents std {latents.std():.3f}, mean {latents.mean():.3f}")
        print("    t        SNR   x0 error: caption    empty    zero output")
        generator = torch.Generator().manual_seed(0)
        for t in TIMESTEPS:
            noise = torch.randn(latents.shape, generator=generator)
            ab = schedule.alphas_cumprod[t]
            xt = ab.sqrt() * latents + (1 - ab).sqrt() * noise
            steps = torch.full((len(captions),), t)
            errors = []
            for ctx in (context, empty):
                out = unet(xt, steps, encoder_hidden_states=ctx).sample
                x0 = ab.sqrt() * xt - (1 - ab).sqrt() * out if v_prediction else (xt - (1 - ab).sqrt() * out) / ab.sqrt()
                errors.append(((x0 - latents) ** 2).mean().item())
            zero = ((ab.sqrt() * xt - latents) ** 2).mean().item() if v_prediction else float("nan")
            print(f"{t:5d} {ab / (1 - ab):10.3f}   {errors[0]:17.4f} {errors[1]:8.4f} {zero:14.4f}")

        print("\nU-Net output moved by another context, relative to its size (t = 900, 500, 200):")
        x = torch.randn((1,) + tuple(latents.shape[1:]), generator=generator)
        for t in (900, 500, 200):
            base = unet(x, torch.tensor([t]), encoder_hidden_states=context[:1]).sample
            size = base.pow(2).mean().sqrt().item()
            others = {"caption 2": context[1:2], "caption 3": context[2:3],
                      "random": torch.randn(context[:1].shape, generator=generator) * context.std(),
                      "zeros": torch.zeros_like(context[:1])}
            moved = {k: (unet(x, torch.tensor([t]), encoder_hidden_states=c).sample - base).pow(2).mean().sqrt().item() / size
                     for k, c in others.items()}
            print(f"  t = {t}: " + ", ".join(f"{k} {v:.4f}" for k, v in moved.items()))


if __name__ == "__main__":
    main()
