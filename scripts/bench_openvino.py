#!/usr/bin/env python3
"""The OpenVINO side of `ldm bench` (issue: speed), run by hand, never in CI:

    /work/venv/bin/python scripts/bench_openvino.py [--threads 2] [--repeats 3] [--only unet64,vae512]

Converts the same random-weight diffusers networks `scripts/bench_pytorch.py` times (SD 1.x) with
`openvino.convert_model`, compiles them for the CPU on `--threads` threads, once at OpenVINO's
default precision (bf16 on CPUs with AVX512-BF16 or AMX, f32 elsewhere) and once forced to f32
(INFERENCE_PRECISION_HINT=f32), and prints the best seconds of `--repeats` calls after a warm-up:
  unet64   U-Net call, latent 64×64, batch 2     ldm bench unet --architecture sd15 --precision auto|fp32
  vae512   VAE decode to 512×512                 ldm bench vae --architecture sd15 --precision auto|fp32
Peak RSS (VmHWM) is cumulative over the rows run; use --only for one row's own peak.
"""
import argparse
import platform
import resource

import openvino as ov
import torch

from bench_pytorch import best, sd15_unet, sd15_vae


def peak_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class Decoder(torch.nn.Module):
    """The VAE's decode path as one module (latents → image), as `ldm bench vae` times it."""
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, z):
        return self.vae.decode(z).sample


def networks():
    torch.manual_seed(0)
    unet = sd15_unet()
    unet_inputs = (torch.randn(2, 4, 64, 64), torch.tensor([500, 500]), torch.randn(2, 77, 768))

    class UNetCall(torch.nn.Module):
        def __init__(self, unet):
            super().__init__()
            self.unet = unet

        def forward(self, x, t, ctx):
            return self.unet(x, t, encoder_hidden_states=ctx).sample

    return {"unet64": (UNetCall(unet).eval(), unet_inputs),
            "vae512": (Decoder(sd15_vae()).eval(), (torch.randn(1, 4, 64, 64),))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="unet64,vae512")
    args = ap.parse_args()
    core = ov.Core()
    print(f"openvino {ov.__version__}, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{args.threads} threads; CPU capabilities: {core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES')}")
    nets = networks()
    for name in args.only.split(","):
        module, inputs = nets[name]
        with torch.no_grad():
            model = ov.convert_model(module, example_input=inputs)
        for label, config in [("default", {}), ("f32", {"INFERENCE_PRECISION_HINT": "f32"})]:
            config = dict(config, INFERENCE_NUM_THREADS=args.threads, NUM_STREAMS=1)
            compiled = core.compile_model(model, "CPU", config)
            precision = compiled.get_property("INFERENCE_PRECISION_HINT")
            request = compiled.create_infer_request()
            feed = [x.numpy() for x in inputs]
            seconds = best(lambda: request.infer(feed), args.repeats)
            print(f"{name:8s} {label:8s} (runs in {precision}): best {seconds:.3f} s of {args.repeats}, "
                  f"peak RSS {peak_gib():.2f} GiB")


if __name__ == "__main__":
    main()
