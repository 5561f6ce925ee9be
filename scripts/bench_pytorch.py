#!/usr/bin/env python3
"""The PyTorch side of `ldm bench` (issue: speed), run by hand, never in CI:

    /work/venv/ref/bin/python scripts/bench_pytorch.py [--threads 2] [--repeats 2] [--only unet64,...]

Times the Stable Diffusion 1.x networks with random weights on the CPU in float32, the same
shapes `ldm bench` uses:
  unet64   U-Net call, latent 64×64, batch 2 (one guided step)    ldm bench unet --architecture sd15 --latent 64 --batch 2
  unet32   U-Net call, latent 32×32, batch 2                       ldm bench unet --architecture sd15 --latent 32 --batch 2
  vae512   VAE decode to 512×512                                   ldm bench vae --architecture sd15 --size 512
  text     CLIP ViT-L/14 text encoder, 2 × 77 tokens               ldm bench text --architecture sd15
  image    whole 512×512 image: text (2×77), 20 guided DPM++ 2M steps, VAE decode
                                                                   ldm bench image --architecture sd15 --size 512 --steps 20
  sdxl128  SDXL U-Net call, latent 128×128 (1024²), batch 2         ldm bench unet --architecture sdxl --latent 128 --batch 2
  sdxl64   SDXL U-Net call, latent 64×64 (SDXL-Turbo's 512²), batch 1
                                                                   ldm bench unet --architecture sdxl-turbo --latent 64 --batch 1
  sd21turbo  whole 512×512 image, SD-Turbo (SD 2.1 networks): 1 Euler step at trailing spacing, guidance 0,
           tiny-autoencoder (TAESD) decode, through diffusers' StableDiffusionPipeline
                                                                   ldm bench image --architecture sd21-turbo --steps 1 --guidance 0 --vae taesd
  sdxlturbo  the same for SDXL-Turbo (Euler a), StableDiffusionXLPipeline
                                                                   ldm bench image --architecture sdxl-turbo --steps 1 --guidance 0 --vae taesd
Rows sdxl128 and sdxl64 hold the 2.6 B-parameter U-Net in float32 (10.3 GB): run them with --only.
Each row: best seconds of `--repeats` calls after one warm-up call, and the process's peak RSS
(VmHWM) after that row — rows run in order, so peak memory is cumulative; use --only for one row's
own peak.
"""
import argparse
import platform
import resource
import time

import torch

import diffusers
import transformers
from diffusers import (AutoencoderKL, AutoencoderTiny, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer
import os

FAMILIES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Checkpoints", "families")


def sdxl_unet(sample_size=128):
    return UNet2DConditionModel(
        sample_size=sample_size, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280), cross_attention_dim=2048, attention_head_dim=(5, 10, 20),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2, 10), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816).eval()


def sd21_unet():
    return UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, use_linear_projection=True).eval()


def openclip_text(width, layers, heads, inter, projection=None):
    cfg = CLIPTextConfig(vocab_size=49408, hidden_size=width, intermediate_size=inter, num_hidden_layers=layers,
                         num_attention_heads=heads, max_position_embeddings=77, hidden_act="gelu",
                         projection_dim=projection or 512)
    return (CLIPTextModelWithProjection(cfg) if projection else CLIPTextModel(cfg)).eval()


def turbo_image(xl):
    """A whole 512² image as a few-step user runs it: 1 step, guidance 0, TAESD decode."""
    tok = CLIPTokenizer.from_pretrained(os.path.join(FAMILIES, "sd1" if xl else "sd2", "tokenizer"))
    sched_cls = EulerAncestralDiscreteScheduler if xl else EulerDiscreteScheduler
    sched = sched_cls(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                      timestep_spacing="trailing")
    if xl:
        tok2 = CLIPTokenizer.from_pretrained(os.path.join(FAMILIES, "sd2", "tokenizer"))
        pipe = StableDiffusionXLPipeline(vae=AutoencoderTiny().eval(), text_encoder=sd15_text(),
                                         text_encoder_2=openclip_text(1280, 32, 20, 5120, projection=1280),
                                         tokenizer=tok, tokenizer_2=tok2, unet=sdxl_unet(64), scheduler=sched,
                                         add_watermarker=False)
    else:
        pipe = StableDiffusionPipeline(vae=AutoencoderTiny().eval(), text_encoder=openclip_text(1024, 23, 16, 4096),
                                       tokenizer=tok, unet=sd21_unet(), scheduler=sched, safety_checker=None,
                                       feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sd15_unet():
    return UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3).eval()


def sd15_vae():
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
        block_out_channels=(128, 256, 512, 512), sample_size=512,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4).eval()


def sd15_text():
    return CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
        num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu")).eval()


def peak_gib():
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def best(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--only", default="unet64,unet32,vae512,text,image")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, transformers {transformers.__version__}, "
          f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}, MKL {torch.backends.mkl.is_available()}, "
          f"oneDNN {torch.backends.mkldnn.is_available()}")
    rows = args.only.split(",")
    with torch.inference_mode():
        if "unet64" in rows or "unet32" in rows or "image" in rows:
            unet = sd15_unet()
        for name, res in (("unet64", 64), ("unet32", 32)):
            if name in rows:
                x = torch.randn(2, 4, res, res)
                t = torch.tensor([500.0, 500.0])
                c = torch.randn(2, 77, 768)
                s = best(lambda: unet(x, t, encoder_hidden_states=c), args.repeats)
                print(f"{name:8s} U-Net latent {res}×{res}, batch 2      {s:8.3f} s   peak {peak_gib():.2f} GiB")
        if "vae512" in rows or "image" in rows:
            vae = sd15_vae()
        if "vae512" in rows:
            z = torch.randn(1, 4, 64, 64)
            s = best(lambda: vae.decode(z), args.repeats)
            print(f"vae512   VAE decode to 512×512            {s:8.3f} s   peak {peak_gib():.2f} GiB")
        if "text" in rows or "image" in rows:
            text = sd15_text()
        if "text" in rows:
            ids = torch.randint(0, 49408, (2, 77))
            s = best(lambda: text(ids), args.repeats)
            print(f"text     CLIP-L text encoder, 2×77 tokens {s:8.3f} s   peak {peak_gib():.2f} GiB")
        if "image" in rows:
            sched = DPMSolverMultistepScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")

            def image():
                ids = torch.randint(0, 49408, (2, 77))
                ctx = text(ids)[0]
                sched.set_timesteps(20)
                lat = torch.randn(1, 4, 64, 64, generator=torch.Generator().manual_seed(0))
                for t in sched.timesteps:
                    e = unet(torch.cat([lat, lat]), t, encoder_hidden_states=ctx).sample
                    eu, ec = e.chunk(2)
                    lat = sched.step(eu + 7.5 * (ec - eu), t, lat).prev_sample
                return vae.decode(lat / 0.18215).sample

            t0 = time.perf_counter()
            image()
            s = time.perf_counter() - t0
            print(f"image    512×512, 20 steps, guidance 7.5  {s:8.3f} s   peak {peak_gib():.2f} GiB (one run, no warm-up)")
        for name, res, batch in (("sdxl128", 128, 2), ("sdxl64", 64, 1)):
            if name in rows:
                unet = sdxl_unet()
                x = torch.randn(batch, 4, res, res)
                t = torch.tensor([500.0] * batch)
                c = torch.randn(batch, 77, 2048)
                added = {"text_embeds": torch.randn(batch, 1280),
                         "time_ids": torch.tensor([[1024.0, 1024, 0, 0, 1024, 1024]] * batch)}
                s = best(lambda: unet(x, t, encoder_hidden_states=c, added_cond_kwargs=added), args.repeats)
                print(f"{name:8s} SDXL U-Net latent {res}×{res}, batch {batch} {s:8.3f} s   peak {peak_gib():.2f} GiB")
                del unet
        for name, xl in (("sd21turbo", False), ("sdxlturbo", True)):
            if name in rows:
                pipe = turbo_image(xl)
                t0 = time.perf_counter()
                pipe("a photograph of an astronaut riding a horse on the moon", num_inference_steps=1, guidance_scale=0.0,
                     height=512, width=512, generator=torch.Generator().manual_seed(0))
                s = time.perf_counter() - t0
                print(f"{name:9s} 512×512, 1 step, guidance 0, TAESD {s:8.3f} s   peak {peak_gib():.2f} GiB (one run, no warm-up)")


if __name__ == "__main__":
    main()
