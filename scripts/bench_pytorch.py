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
from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel


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


if __name__ == "__main__":
    main()
