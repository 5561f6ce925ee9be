#!/usr/bin/env python3
"""Build the end-to-end pipeline parity fixtures under Tests/Fixtures/pipelines/.

Run by hand with the reference virtualenv (never needed by tests or the product), after
scripts/make_model_fixtures.py:

    /work/venv/ref/bin/python scripts/make_pipeline_fixtures.py [--root .]

What it does:
  1. writes Tests/Fixtures/models/tiny-sd-inpaint/: a StableDiffusionInpaintPipeline folder made of
     tiny-sd's text_encoder, tokenizer, vae and scheduler (copied byte for byte) and the 9-channel
     tiny-sd2-inpaint-unet/unet (copied), plus a model_index.json naming the inpainting pipeline;
  2. draws a 64x64 RGB test picture and a 64x64 mask with numpy (init.png, mask.png);
  3. runs diffusers' StableDiffusionPipeline (one run per sampler), StableDiffusionImg2ImgPipeline and
     StableDiffusionInpaintPipeline (9-channel unet, and tiny-sd's 4-channel unet = latent blending)
     on the CPU in float32 with generator=torch.manual_seed(seed), 5 steps, guidance 7.5, and saves
     each output as PNG (output_type "pil") and as float32 arrays (output_type "np") with the
     initial and final latents (.safetensors);
  4. logs every random draw (randn_tensor calls: shape and calling line) and every add_noise call,
     replays the draws from a fresh generator to prove that nothing else consumed the generator,
     and writes manifest.json (runs, resolved scheduler configs, timesteps, draws, versions);
  5. writes README.md, whose diffusers line references are checked against the installed source.
"""

import argparse
import inspect
import json
import os
import platform
import shutil
import sys

import numpy as np
import PIL
import torch
from PIL import Image

import diffusers
import safetensors
import transformers
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    LMSDiscreteScheduler,
    PNDMScheduler,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionInpaintPipeline,
    StableDiffusionPipeline,
    UniPCMultistepScheduler,
)
from diffusers.utils import torch_utils
from safetensors.torch import save_file

PROMPT = "a red circle above a blue square"
NEGATIVE = "green"
STEPS = 5
GUIDANCE = 7.5
EXPECTED_DIFFUSERS = "0.42.1"

SAMPLERS = {
    "ddpm": (DDPMScheduler, {}),
    "ddim": (DDIMScheduler, {}),
    "pndm": (PNDMScheduler, {}),
    "lms": (LMSDiscreteScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
    "euler-a": (EulerAncestralDiscreteScheduler, {}),
    "heun": (HeunDiscreteScheduler, {}),
    "dpm++2m": (DPMSolverMultistepScheduler, {}),
    "dpm++2m-karras": (DPMSolverMultistepScheduler, {"use_karras_sigmas": True}),
    "unipc": (UniPCMultistepScheduler, {}),
}


def run_list():
    runs = []
    for sampler in SAMPLERS:
        runs.append(dict(name=f"txt2img-{sampler}-s42", kind="txt2img", sampler=sampler, seed=42))
    runs.append(dict(name="txt2img-ddim-s7-b2", kind="txt2img", sampler="ddim", seed=7, num_images=2))
    runs.append(dict(name="txt2img-ddim-w64h48-s42", kind="txt2img", sampler="ddim", seed=42, width=64, height=48))
    runs.append(dict(name="img2img-ddim-s42", kind="img2img", sampler="ddim", seed=42, strength=0.6))
    runs.append(dict(name="img2img-euler-a-s42", kind="img2img", sampler="euler-a", seed=42, strength=0.6))
    runs.append(dict(name="inpaint9-ddim-s42", kind="inpaint9", sampler="ddim", seed=42, strength=1.0))
    runs.append(dict(name="inpaint4-ddim-s42", kind="inpaint4", sampler="ddim", seed=42, strength=1.0))
    runs.append(dict(name="inpaint4-ddim-str075-s42", kind="inpaint4", sampler="ddim", seed=42, strength=0.75))
    for r in runs:
        r.setdefault("width", 64)
        r.setdefault("height", 64)
        r.setdefault("num_images", 1)
    return runs


# --------------------------------------------------------------------------------------------
# Test inputs
# --------------------------------------------------------------------------------------------

# mask rectangle: rows MASK_TOP..MASK_BOTTOM-1, columns MASK_LEFT..MASK_RIGHT-1 are white (255);
# the column just left of it holds 128 (binarises to 1: 128/255 >= 0.5) and the column just right of
# it holds 127 (binarises to 0: 127/255 < 0.5); everything else black (0).
MASK_TOP, MASK_BOTTOM, MASK_LEFT, MASK_RIGHT = 10, 41, 18, 45


def make_init_image():
    """64x64 RGB: grey background with a diagonal gradient, a red disc and a blue square.

    Per pixel (row y, column x, 0-based), as float64 then rounded half-up to uint8:
      background  R = G = B = 96 + 64 * (x + y) / 126          (96 ... 160)
      blue square rows 40..55, columns 8..23: (30, 60, 200)
      red disc    (x - 40)^2 + (y - 22)^2 <= 12^2: (220, 30, 40)   (drawn last, on top)
    """
    y, x = np.mgrid[0:64, 0:64].astype(np.float64)
    img = np.zeros((64, 64, 3), dtype=np.float64)
    img[...] = (96 + 64 * (x + y) / 126)[..., None]
    img[40:56, 8:24] = (30, 60, 200)
    disc = (x - 40) ** 2 + (y - 22) ** 2 <= 12**2
    img[disc] = (220, 30, 40)
    return np.floor(img + 0.5).astype(np.uint8)


def make_mask():
    m = np.zeros((64, 64), dtype=np.uint8)
    m[MASK_TOP:MASK_BOTTOM, MASK_LEFT:MASK_RIGHT] = 255
    m[MASK_TOP:MASK_BOTTOM, MASK_LEFT - 1] = 128
    m[MASK_TOP:MASK_BOTTOM, MASK_RIGHT] = 127
    return m


# --------------------------------------------------------------------------------------------
# Instrumentation: every randn_tensor call, every add_noise call
# --------------------------------------------------------------------------------------------

class Recorder:
    def __init__(self):
        self.reset()

    def reset(self):
        self.draws = []  # dicts: shape, site, pipeline_site
        self.draw_values = []
        self.add_noise = []
        self.unet_calls = []
        self.model_input_first = None
        self.step_latents = []
        self.cb_mask = None
        self.cb_masked_image_latents = None
        self.encoded = []


REC = Recorder()
_ORIGINAL_RANDN = torch_utils.randn_tensor


def _site(frame):
    path = frame.f_code.co_filename
    rel = path.split("site-packages/diffusers/")[-1] if "site-packages/diffusers/" in path else os.path.basename(path)
    return f"{rel}:{frame.f_lineno} ({frame.f_code.co_name})"


def logging_randn_tensor(shape, generator=None, device=None, dtype=None, layout=None):
    out = _ORIGINAL_RANDN(shape, generator=generator, device=device, dtype=dtype, layout=layout)
    frame = inspect.currentframe().f_back
    site = _site(frame)
    pipeline_site = None
    f = frame
    while f is not None:
        if "diffusers/pipelines/" in f.f_code.co_filename:
            pipeline_site = _site(f)
            break
        f = f.f_back
    REC.draws.append(dict(shape=list(shape), dtype=str(out.dtype).replace("torch.", ""), site=site,
                          pipeline_site=pipeline_site))
    REC.draw_values.append(out.detach().clone())
    return out


def install_randn_logger():
    patched = []
    for name, mod in list(sys.modules.items()):
        if name.startswith("diffusers") and getattr(mod, "randn_tensor", None) is _ORIGINAL_RANDN:
            setattr(mod, "randn_tensor", logging_randn_tensor)
            patched.append(name)
    for needed in (
        "diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion",
        "diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img",
        "diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_inpaint",
        "diffusers.models.autoencoders.vae",
        "diffusers.schedulers.scheduling_ddpm",
        "diffusers.schedulers.scheduling_euler_ancestral_discrete",
    ):
        assert needed in patched, f"randn_tensor not patched in {needed}"
    return patched


def instrument_scheduler(sched):
    orig_add_noise = sched.add_noise
    orig_scale = sched.scale_model_input

    def add_noise(original_samples, noise, timesteps):
        REC.add_noise.append(dict(
            timesteps=[float(t) for t in torch.as_tensor(timesteps).flatten()],
            step_index=getattr(sched, "step_index", None) if hasattr(sched, "_step_index") else None,
            begin_index=getattr(sched, "begin_index", None) if hasattr(sched, "_begin_index") else None,
        ))
        return orig_add_noise(original_samples, noise, timesteps)

    def scale_model_input(sample, *args, **kwargs):
        if REC.model_input_first is None:
            REC.model_input_first = sample.detach().clone()
        return orig_scale(sample, *args, **kwargs)

    sched.add_noise = add_noise
    sched.scale_model_input = scale_model_input
    return sched


def make_scheduler(folder, sampler):
    cls, extra = SAMPLERS[sampler]
    return instrument_scheduler(cls.from_pretrained(folder, subfolder="scheduler", **extra))


def unet_hook(module, args, kwargs):
    sample = args[0] if args else kwargs["sample"]
    t = args[1] if len(args) > 1 else kwargs["timestep"]
    t = torch.as_tensor(t)
    REC.unet_calls.append(dict(t=float(t.flatten()[0]), t_dtype=str(t.dtype).replace("torch.", ""),
                               shape=list(sample.shape)))


def step_callback(pipe, i, t, kw):
    REC.step_latents.append(kw["latents"].detach().clone())
    if "mask" in kw and REC.cb_mask is None:
        REC.cb_mask = kw["mask"].detach().clone()
        REC.cb_masked_image_latents = kw["masked_image_latents"].detach().clone()
    return {}


def wrap_encode(pipe):
    if not hasattr(pipe, "_encode_vae_image"):
        return
    orig = pipe._encode_vae_image

    def enc(image, generator):
        out = orig(image=image, generator=generator)
        REC.encoded.append(out.detach().clone())
        return out

    pipe._encode_vae_image = enc


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------

def json_safe(v):
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, torch.Tensor):
        return v.tolist()
    return v


def compact_json(value, indent=0):
    """JSON with one key per line, but lists of scalars and small dicts of scalars kept on one line."""
    pad = " " * indent

    def scalar(x):
        return not isinstance(x, (list, dict))

    if isinstance(value, list) and all(scalar(x) for x in value):
        return json.dumps(value)
    if isinstance(value, dict) and all(
        scalar(x) or (isinstance(x, list) and all(scalar(y) for y in x)) for x in value.values()
    ) and len(json.dumps(value)) <= 160:
        return json.dumps(value)
    if isinstance(value, list):
        items = [pad + "  " + compact_json(x, indent + 2) for x in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    if isinstance(value, dict):
        items = [pad + "  " + json.dumps(k) + ": " + compact_json(x, indent + 2) for k, x in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    return json.dumps(value)


def load_pipelines(models):
    sd = os.path.join(models, "tiny-sd")
    inp = os.path.join(models, "tiny-sd-inpaint")
    common = dict(safety_checker=None, requires_safety_checker=False, dtype=torch.float32)
    pipes = {
        "txt2img": StableDiffusionPipeline.from_pretrained(sd, **common),
        "img2img": StableDiffusionImg2ImgPipeline.from_pretrained(sd, **common),
        "inpaint4": StableDiffusionInpaintPipeline.from_pretrained(sd, **common),
        "inpaint9": StableDiffusionInpaintPipeline.from_pretrained(inp, **common),
    }
    for kind, p in pipes.items():
        p.set_progress_bar_config(disable=True)
        for comp in ("unet", "vae", "text_encoder"):
            m = getattr(p, comp)
            m.eval()
            dts = {q.dtype for q in m.parameters()}
            assert dts == {torch.float32}, f"{kind}.{comp} dtypes {dts}"
        p.unet.register_forward_pre_hook(unet_hook, with_kwargs=True)
        wrap_encode(p)
    assert pipes["inpaint9"].unet.config.in_channels == 9
    assert pipes["inpaint4"].unet.config.in_channels == 4
    return pipes, {"txt2img": sd, "img2img": sd, "inpaint4": sd, "inpaint9": inp}


def call(pipe, run, folder, init_img, mask_img, output_type):
    REC.reset()
    pipe.scheduler = make_scheduler(folder, run["sampler"])
    kwargs = dict(
        prompt=PROMPT,
        negative_prompt=NEGATIVE,
        num_inference_steps=STEPS,
        guidance_scale=GUIDANCE,
        num_images_per_prompt=run["num_images"],
        generator=torch.manual_seed(run["seed"]),
        output_type=output_type,
        callback_on_step_end=step_callback,
        callback_on_step_end_tensor_inputs=["latents"],
    )
    if run["kind"] == "txt2img":
        kwargs.update(width=run["width"], height=run["height"])
    elif run["kind"] == "img2img":
        kwargs.update(image=init_img, strength=run["strength"])
    else:
        kwargs.update(image=init_img, mask_image=mask_img, strength=run["strength"], width=run["width"],
                      height=run["height"], callback_on_step_end_tensor_inputs=["latents", "mask", "masked_image_latents"])
    out = pipe(**kwargs).images
    return out


def replay_draws(seed):
    """Draw the logged shapes in order from a fresh generator; they must equal what the pipeline got."""
    g = torch.manual_seed(seed)
    for d, v in zip(REC.draws, REC.draw_values):
        again = torch.randn(d["shape"], generator=g, dtype=v.dtype)
        assert torch.equal(again, v), f"replayed draw differs at {d['site']}: a hidden draw came earlier"


def stats(t):
    t = t.float()
    return dict(mean_abs=round(float(t.abs().mean()), 5), max_abs=round(float(t.abs().max()), 5))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.join(here, ".."))
    args = parser.parse_args()
    root = os.path.abspath(args.root)
    models = os.path.join(root, "Tests", "Fixtures", "models")
    out = os.path.join(root, "Tests", "Fixtures", "pipelines")

    try:
        import ftfy  # noqa: F401

        raise SystemExit("ftfy is installed: uninstall it (the fixtures use the plain, ftfy-free CLIP text cleaning)")
    except ImportError:
        pass
    if diffusers.__version__ != EXPECTED_DIFFUSERS:
        print(f"warning: diffusers {diffusers.__version__}, README line references are for {EXPECTED_DIFFUSERS};"
              " the reference check below will tell", file=sys.stderr)

    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)

    # ---- 1. the inpainting model folder ------------------------------------------------------
    sd = os.path.join(models, "tiny-sd")
    inp = os.path.join(models, "tiny-sd-inpaint")
    shutil.rmtree(inp, ignore_errors=True)
    for comp in ("scheduler", "text_encoder", "tokenizer", "vae"):
        shutil.copytree(os.path.join(sd, comp), os.path.join(inp, comp))
    shutil.copytree(os.path.join(models, "tiny-sd2-inpaint-unet", "unet"), os.path.join(inp, "unet"))
    with open(os.path.join(sd, "model_index.json")) as f:
        index = json.load(f)
    index["_class_name"] = "StableDiffusionInpaintPipeline"
    with open(os.path.join(inp, "model_index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")

    # ---- 2. inputs ---------------------------------------------------------------------------
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    init_np = make_init_image()
    mask_np = make_mask()
    Image.fromarray(init_np, mode="RGB").save(os.path.join(out, "init.png"))
    Image.fromarray(mask_np, mode="L").save(os.path.join(out, "mask.png"))
    # the pipelines get the images exactly as a user would: read back from the PNG files
    init_img = Image.open(os.path.join(out, "init.png"))
    mask_img = Image.open(os.path.join(out, "mask.png"))
    assert np.array_equal(np.array(init_img), init_np) and np.array_equal(np.array(mask_img), mask_np)

    # ---- 3. runs -----------------------------------------------------------------------------
    patched = install_randn_logger()
    pipes, folders = load_pipelines(models)

    # what the pipelines do to the inputs, for the inputs.safetensors reference
    proc = pipes["inpaint9"]
    init_t = proc.image_processor.preprocess(init_img, height=64, width=64)
    mask_t = proc.mask_processor.preprocess(mask_img, height=64, width=64)
    mask_lat = torch.nn.functional.interpolate(mask_t, size=(16, 16))
    masked_image = init_t * (mask_t < 0.5)
    expected_bin = (mask_np.astype(np.float32) / 255.0 >= 0.5).astype(np.float32)
    assert np.array_equal(mask_t[0, 0].numpy(), expected_bin)
    assert torch.equal(mask_lat[0, 0], mask_t[0, 0, ::4, ::4]), "nearest 64->16 should pick rows/cols 4i"
    assert torch.equal(init_t, torch.from_numpy(init_np.astype(np.float32) / 255.0).permute(2, 0, 1)[None] * 2 - 1)
    assert torch.equal(masked_image, init_t * (1 - mask_t))
    save_file(
        {"mask": mask_t.contiguous(), "mask_latent": mask_lat.contiguous()},
        os.path.join(out, "inputs.safetensors"),
    )

    manifest_runs = []
    for run in run_list():
        kind = run["kind"]
        pipe = pipes[kind]
        folder = folders[kind]
        # output_type "np" first (instrumented capture), then "pil"; both must agree exactly
        images_np = call(pipe, run, folder, init_img, mask_img, "np")
        replay_draws(run["seed"])
        draws = list(REC.draws)
        add_noise = list(REC.add_noise)
        unet_calls = list(REC.unet_calls)
        b = run["num_images"]
        latents_init = REC.model_input_first[:b].contiguous()
        latents_final = REC.step_latents[-1].contiguous()
        cb_mask, cb_mil = REC.cb_mask, REC.cb_masked_image_latents
        encoded = list(REC.encoded)
        sched = pipe.scheduler
        sched_info = dict(
            class_name=type(sched).__name__,
            config={k: (sorted(v) if k == "_use_default_values" else json_safe(v)) for k, v in dict(sched.config).items()},
            timesteps_all=[float(t) for t in sched.timesteps],
            init_noise_sigma=float(sched.init_noise_sigma),
            order=sched.order,
        )
        if hasattr(sched, "sigmas"):
            sched_info["sigmas_all"] = [float(s) for s in sched.sigmas]
        if hasattr(sched, "_begin_index"):
            sched_info["begin_index"] = sched.begin_index

        images_pil = call(pipe, run, folder, init_img, mask_img, "pil")
        assert [d["shape"] for d in REC.draws] == [d["shape"] for d in draws]
        assert len(images_pil) == b and images_np.shape == (b, run["height"], run["width"], 3)
        png_names = []
        for k, im in enumerate(images_pil):
            expect = (images_np[k] * 255).round().astype("uint8")
            assert np.array_equal(np.array(im), expect), f"{run['name']}: pil and np outputs differ"
            name = f"{run['name']}.png" if b == 1 else f"{run['name']}-{k}.png"
            im.save(os.path.join(out, name))
            png_names.append(name)

        tensors = {
            "image": torch.from_numpy(np.ascontiguousarray(images_np)),
            "latents_init": latents_init,
            "latents_final": latents_final,
        }
        if kind.startswith("inpaint"):
            half = cb_mask.shape[0] // 2
            tensors["mask_latent"] = cb_mask[:half].contiguous()
            tensors["masked_image_latents"] = cb_mil[:half].contiguous()
            assert torch.equal(cb_mask[:1], mask_lat)
            if kind == "inpaint4":
                tensors["image_latents"] = encoded[0].contiguous()
        st_name = f"{run['name']}.safetensors"
        save_file(tensors, os.path.join(out, st_name))

        entry = dict(
            name=run["name"],
            pipeline=type(pipe).__name__,
            unet_in_channels=pipe.unet.config.in_channels,
            sampler=run["sampler"],
            scheduler=sched_info,
            seed=run["seed"],
            generator="torch.manual_seed(seed) (the default CPU generator)",
            prompt=PROMPT,
            negative_prompt=NEGATIVE,
            num_inference_steps=STEPS,
            guidance_scale=GUIDANCE,
            eta=0.0,
            num_images_per_prompt=b,
            width=run["width"],
            height=run["height"],
            latent_shape=list(latents_init.shape),
            strength=run.get("strength"),
            init_image="init.png" if kind != "txt2img" else None,
            mask_image="mask.png" if kind.startswith("inpaint") else None,
            files=dict(png=png_names, tensors=st_name),
            tensors={k: dict(shape=list(v.shape), **stats(v)) for k, v in tensors.items()},
            unet_calls=[dict(t=c["t"], t_dtype=c["t_dtype"], input_shape=c["shape"]) for c in unet_calls],
            random_draws=draws,
            add_noise_calls=add_noise,
        )
        manifest_runs.append(entry)
        print(f"{run['name']}: draws {[tuple(d['shape']) for d in draws]}, unet calls {len(unet_calls)}, "
              f"image mean {images_np.mean():.4f}")

    # batched randn vs. two draws of half the size (documents how the batch noise is laid out)
    a = torch.randn((2, 4, 16, 16), generator=torch.manual_seed(7))
    g = torch.manual_seed(7)
    b2 = torch.cat([torch.randn((1, 4, 16, 16), generator=g), torch.randn((1, 4, 16, 16), generator=g)])
    batch_split_equal = bool(torch.equal(a, b2))

    versions = dict(
        python=platform.python_version(),
        torch=torch.__version__,
        diffusers=diffusers.__version__,
        transformers=transformers.__version__,
        safetensors=safetensors.__version__,
        numpy=np.__version__,
        pillow=PIL.__version__,
        torch_num_threads=torch.get_num_threads(),
        command="python scripts/make_pipeline_fixtures.py",
    )
    manifest = dict(
        versions=versions,
        models=dict(
            txt2img_img2img_inpaint4="Tests/Fixtures/models/tiny-sd",
            inpaint9="Tests/Fixtures/models/tiny-sd-inpaint",
        ),
        inputs=dict(init="init.png", mask="mask.png", tensors="inputs.safetensors",
                    mask_rect=dict(top=MASK_TOP, bottom_exclusive=MASK_BOTTOM, left=MASK_LEFT,
                                   right_exclusive=MASK_RIGHT)),
        randn_batch_equals_two_halves=batch_split_equal,
        runs=manifest_runs,
    )
    with open(os.path.join(out, "manifest.json"), "w") as f:
        f.write(compact_json(manifest) + "\n")

    check_source_references()
    write_readme(out, manifest)
    total = 0
    for name in sorted(os.listdir(out)):
        total += os.path.getsize(os.path.join(out, name))
    print(f"wrote {out} ({total} bytes)")


# --------------------------------------------------------------------------------------------
# README (line references into the installed diffusers; checked below)
# --------------------------------------------------------------------------------------------

D = "diffusers/"
SD = "pipelines/stable_diffusion/pipeline_stable_diffusion.py"
I2I = "pipelines/stable_diffusion/pipeline_stable_diffusion_img2img.py"
INP = "pipelines/stable_diffusion/pipeline_stable_diffusion_inpaint.py"
IMP = "image_processor.py"
VAE = "models/autoencoders/vae.py"
TU = "utils/torch_utils.py"

# (file, line, text that must occur on that line)
REFS = {
    "sd_cfg_cat": (SD, 978, "prompt_embeds = torch.cat([negative_prompt_embeds, prompt_embeds])"),
    "sd_prepare_latents_randn": (SD, 708, "latents = randn_tensor(shape, generator=generator"),
    "sd_init_sigma": (SD, 713, "latents = latents * self.scheduler.init_noise_sigma"),
    "sd_latent_cat": (SD, 1037, "latent_model_input = torch.cat([latents] * 2)"),
    "sd_scale_input": (SD, 1039, "latent_model_input = self.scheduler.scale_model_input(latent_model_input, t)"),
    "sd_chunk": (SD, 1054, "noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)"),
    "sd_guidance": (SD, 1055, "noise_pred = noise_pred_uncond + self.guidance_scale * (noise_pred_text - noise_pred_uncond)"),
    "sd_rescale_call": (SD, 1059, "noise_pred = rescale_noise_cfg(noise_pred, noise_pred_text"),
    "sd_rescale_std_text": (SD, 86, "std_text = noise_pred_text.std(dim=list(range(1, noise_pred_text.ndim)), keepdim=True)"),
    "sd_rescale_mix": (SD, 91, "noise_cfg = guidance_rescale * noise_pred_rescaled + (1 - guidance_rescale) * noise_cfg"),
    "sd_step": (SD, 1062, "latents = self.scheduler.step(noise_pred, t, latents, **extra_step_kwargs"),
    "sd_decode": (SD, 1085, "image = self.vae.decode(latents / self.vae.config.scaling_factor"),
    "sd_postprocess": (SD, 1099, "image = self.image_processor.postprocess(image, output_type=output_type"),
    "sd_extra_kwargs_gen": (SD, 622, 'extra_step_kwargs["generator"] = generator'),
    "sd_repeat": (SD, 450, "prompt_embeds = prompt_embeds.repeat(1, num_images_per_prompt, 1)"),
    "sd_uncond_str": (SD, 464, "uncond_tokens = [negative_prompt]"),
    "sd_check_8": (SD, 638, "if height % 8 != 0 or width % 8 != 0:"),
    "sd_vae_scale": (SD, 296, "self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)"),
    "randn_single": (TU, 110, "latents = torch.randn(shape, generator=generator"),
    "randn_list": (TU, 105, "torch.randn(shape, generator=generator[i]"),
    "vae_sample_randn": (VAE, 705, "sample = randn_tensor("),
    "vae_sample_x": (VAE, 711, "x = self.mean + self.std * sample"),
    "vae_logvar_clamp": (VAE, 694, "self.logvar = torch.clamp(self.logvar, -30.0, 20.0)"),
    "vae_std": (VAE, 696, "self.std = torch.exp(0.5 * self.logvar)"),
    "retrieve_latents_sample": (I2I, 90, "return encoder_output.latent_dist.sample(generator)"),
    "i2i_preprocess": (I2I, 1048, "image = self.image_processor.preprocess(image)"),
    "i2i_get_timesteps_call": (I2I, 1058, "timesteps, num_inference_steps = self.get_timesteps(num_inference_steps, strength, device)"),
    "i2i_latent_timestep": (I2I, 1059, "latent_timestep = timesteps[:1].repeat(batch_size * num_images_per_prompt)"),
    "i2i_init_timestep": (I2I, 726, "init_timestep = min(int(num_inference_steps * strength), num_inference_steps)"),
    "i2i_t_start": (I2I, 728, "t_start = max(num_inference_steps - init_timestep, 0)"),
    "i2i_ts_slice": (I2I, 729, "timesteps = self.scheduler.timesteps[t_start * self.scheduler.order :]"),
    "i2i_begin": (I2I, 731, "self.scheduler.set_begin_index(t_start * self.scheduler.order)"),
    "i2i_encode": (I2I, 769, "init_latents = retrieve_latents(self.vae.encode(image), generator=generator)"),
    "i2i_scale": (I2I, 771, "init_latents = self.vae.config.scaling_factor * init_latents"),
    "i2i_noise": (I2I, 792, "noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)"),
    "i2i_add_noise": (I2I, 795, "init_latents = self.scheduler.add_noise(init_latents, noise, timestep)"),
    "i2i_scale_input": (I2I, 1100, "latent_model_input = self.scheduler.scale_model_input(latent_model_input, t)"),
    "inp_mask_proc": (INP, 274, "do_normalize=False, do_binarize=True, do_convert_grayscale=True"),
    "inp_get_timesteps": (INP, 1146, "timesteps, num_inference_steps = self.get_timesteps("),
    "inp_latent_timestep": (INP, 1156, "latent_timestep = timesteps[:1].repeat(batch_size * num_images_per_prompt)"),
    "inp_strength_max": (INP, 1158, "is_strength_max = strength == 1.0"),
    "inp_resize_default": (INP, 1167, 'resize_mode = "default"'),
    "inp_init_preprocess": (INP, 1170, "init_image = self.image_processor.preprocess("),
    "inp_return_image_latents": (INP, 1178, "return_image_latents = num_channels_unet == 4"),
    "inp_encode_cond": (INP, 722, "if return_image_latents or (latents is None and not is_strength_max):"),
    "inp_encode_image": (INP, 728, "image_latents = self._encode_vae_image(image=image, generator=generator)"),
    "inp_noise": (INP, 732, "noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)"),
    "inp_latents_init": (INP, 734, "latents = noise if is_strength_max else self.scheduler.add_noise(image_latents, noise, timestep)"),
    "inp_latents_sigma": (INP, 736, "latents = latents * self.scheduler.init_noise_sigma if is_strength_max else latents"),
    "inp_encode_fn": (INP, 759, "image_latents = retrieve_latents(self.vae.encode(image), generator=generator)"),
    "inp_encode_scale": (INP, 761, "image_latents = self.vae.config.scaling_factor * image_latents"),
    "inp_mask_preprocess": (INP, 1202, "mask_condition = self.mask_processor.preprocess("),
    "inp_masked_image": (INP, 1207, "masked_image = init_image * (mask_condition < 0.5)"),
    "inp_mask_interp": (INP, 771, "mask = torch.nn.functional.interpolate("),
    "inp_mask_interp_size": (INP, 772, "mask, size=(height // self.vae_scale_factor, width // self.vae_scale_factor)"),
    "inp_masked_encode": (INP, 781, "masked_image_latents = self._encode_vae_image(masked_image, generator=generator)"),
    "inp_mask_cfg": (INP, 801, "mask = torch.cat([mask] * 2) if do_classifier_free_guidance else mask"),
    "inp_scale_input": (INP, 1271, "latent_model_input = self.scheduler.scale_model_input(latent_model_input, t)"),
    "inp_concat": (INP, 1274, "latent_model_input = torch.cat([latent_model_input, mask, masked_image_latents], dim=1)"),
    "inp_step": (INP, 1293, "latents = self.scheduler.step(noise_pred, t, latents, **extra_step_kwargs"),
    "inp_blend_mask": (INP, 1297, "init_mask, _ = mask.chunk(2)"),
    "inp_noise_timestep": (INP, 1302, "noise_timestep = timesteps[i + 1]"),
    "inp_blend_add_noise": (INP, 1303, "init_latents_proper = self.scheduler.add_noise("),
    "inp_blend": (INP, 1307, "latents = (1 - init_mask) * init_latents_proper + init_mask * latents"),
    "inp_overlay": (INP, 1354, "if padding_mask_crop is not None:"),
    "inp_check_div": (INP, 619, "if height % self.vae_scale_factor != 0 or width % self.vae_scale_factor != 0:"),
    "imp_resize_default": (IMP, 497, "image = image.resize("),
    "imp_default_hw": (IMP, 603, "x - x % self.config.vae_scale_factor for x in (width, height)"),
    "imp_resize_call": (IMP, 690, "image = [self.resize(i, height, width, resize_mode=resize_mode) for i in image]"),
    "imp_gray": (IMP, 694, "image = [self.convert_to_grayscale(i) for i in image]"),
    "imp_to_np": (IMP, 167, "images = [np.array(image).astype(np.float32) / 255.0 for image in images]"),
    "imp_normalize": (IMP, 220, "return 2.0 * images - 1.0"),
    "imp_binarize_lt": (IMP, 536, "image[image < 0.5] = 0"),
    "imp_binarize_ge": (IMP, 537, "image[image >= 0.5] = 1"),
    "imp_denorm": (IMP, 235, "return (images * 0.5 + 0.5).clamp(0, 1)"),
    "imp_to_uint8": (IMP, 143, 'images = (images * 255).round().astype("uint8")'),
    "imp_pt_to_np": (IMP, 204, "images = images.cpu().permute(0, 2, 3, 1).float().numpy()"),
}


def check_source_references():
    base = os.path.dirname(diffusers.__file__)
    cache = {}
    for key, (path, line, text) in REFS.items():
        if path not in cache:
            with open(os.path.join(base, path), encoding="utf-8") as f:
                cache[path] = f.read().split("\n")
        got = cache[path][line - 1]
        assert text in got, f"README reference {key}: {path}:{line} is {got.strip()!r}, expected {text!r}"


def ref(key):
    path, line, _ = REFS[key]
    return f"`{path.split('/')[-1]}:{line}`"


def write_readme(out, manifest):
    runs = manifest["runs"]
    v = manifest["versions"]
    R = ref
    lines = []
    w = lines.append
    w("# Pipeline parity fixtures")
    w("")
    w("Generated by `scripts/make_pipeline_fixtures.py` (do not edit by hand: re-run the script; it rewrites")
    w("this file, `manifest.json` and every image). Reference: diffusers "
      f"{v['diffusers']}, torch {v['torch']}, transformers {v['transformers']}, Pillow {v['pillow']}, numpy "
      f"{v['numpy']}, CPU, float32, {v['torch_num_threads']} thread. Line references `file.py:N` are into the installed")
    w("diffusers package (`diffusers/pipelines/stable_diffusion/...`, `diffusers/image_processor.py`,")
    w("`diffusers/models/autoencoders/vae.py`, `diffusers/utils/torch_utils.py`); the script asserts that each")
    w("quoted line still says what this README claims.")
    w("")
    w("## Models")
    w("")
    w("- txt2img, img2img and the 4-channel inpainting runs: `Tests/Fixtures/models/tiny-sd` (f = 4: 64×64")
    w("  images ↔ 4×16×16 latents; `vae_scale_factor = 2^(len(vae.block_out_channels) - 1)` = 4,")
    w(f"  {R('sd_vae_scale')}).")
    w("- 9-channel inpainting: `Tests/Fixtures/models/tiny-sd-inpaint`, written by this script:")
    w("  tiny-sd's `scheduler/`, `text_encoder/`, `tokenizer/`, `vae/` copied byte for byte, the `unet/` of")
    w("  `tiny-sd2-inpaint-unet` (9 in-channels, BF16) copied, and tiny-sd's `model_index.json` with")
    w("  `_class_name` = `StableDiffusionInpaintPipeline`.")
    w("- All pipelines are loaded with `safety_checker=None, requires_safety_checker=False,")
    w("  dtype=torch.float32` (the F16 text encoder and the BF16 unet widen exactly; the script asserts")
    w("  every parameter is float32).")
    w("")
    w("## Common settings")
    w("")
    w(f"prompt `\"{PROMPT}\"`, negative prompt `\"{NEGATIVE}\"`, `num_inference_steps` {STEPS},")
    w(f"`guidance_scale` {GUIDANCE}, `eta` 0, `guidance_rescale` 0 (txt2img only has it), `clip_skip` None,")
    w("`generator = torch.manual_seed(seed)` (the default CPU generator, one generator, not a list). The scheduler of")
    w("each run is `Cls.from_pretrained(\"tiny-sd\", subfolder=\"scheduler\")` (plus `use_karras_sigmas=True` for")
    w("`dpm++2m-karras`), i.e. the PNDM/SD1.5 config file read by another class: keys the class does not take")
    w("(e.g. `skip_prk_steps` for DDIM) are carried along in `config` but unused, keys it takes but the file")
    w("lacks get the class defaults (listed in `_use_default_values`). The resolved config of every run is")
    w("`manifest.json` → `runs[i].scheduler.config`, with the full `timesteps_all` / `sigmas_all` schedule,")
    w("`init_noise_sigma`, and the timestep actually given to the unet at each call (`unet_calls`).")
    w("")
    w("## Files")
    w("")
    w("- `init.png`: 64×64 RGB test picture (8-bit): background grey ramp `round(96 + 64·(x+y)/126)` in all")
    w("  three channels, a blue square (30, 60, 200) at rows 40–55 × columns 8–23, a red disc (220, 30, 40)")
    w("  `(x−40)² + (y−22)² ≤ 144` on top.")
    w(f"- `mask.png`: 64×64 8-bit greyscale: 255 at rows {MASK_TOP}–{MASK_BOTTOM - 1} × columns {MASK_LEFT}–{MASK_RIGHT - 1};")
    w(f"  column {MASK_LEFT - 1} (same rows) = 128 and column {MASK_RIGHT} = 127, to pin the binarisation threshold")
    w("  (128/255 ≥ 0.5 → masked, 127/255 < 0.5 → kept); 0 elsewhere. The edges are deliberately not")
    w("  multiples of 4 (the nearest-neighbour 64 → 16 reduction picks rows/columns 0, 4, 8, …).")
    w("- `inputs.safetensors` (float32): `mask` [1,1,64,64] binarised 0/1 (what `mask_processor.preprocess`")
    w("  returns) and `mask_latent` [1,1,16,16] (after the nearest interpolation). The preprocessed init image is")
    w("  exactly `2·(png/255) − 1` (float32; checked by the script) and the masked image `init · (1 − mask)`.")
    w("- per run `<name>.png` (batch: `<name>-0.png`, `<name>-1.png`): the `output_type=\"pil\"` result, saved")
    w("  with Pillow; the script checks it equals `round(255·np_output)` byte for byte.")
    w("- per run `<name>.safetensors` (float32):")
    w("  - `image` [B,H,W,3]: the `output_type=\"np\"` result in [0,1] (NHWC).")
    w("  - `latents_init` [B,4,h,w]: the latents entering the denoising loop (the first half of the first")
    w("    `scale_model_input` argument), i.e. after `init_noise_sigma` scaling / `add_noise`.")
    w("  - `latents_final` [B,4,h,w]: the latents after the last step (after the last blend for 4-channel")
    w("    inpainting), i.e. what is divided by the scaling factor and decoded.")
    w("  - inpainting also: `mask_latent` [B,1,h,w], `masked_image_latents` [B,4,h,w] (the conditional half")
    w("    as given to the unet; it equals the unconditional half), and for 4-channel runs `image_latents`")
    w("    [1,4,h,w] = `0.18215 · vae.encode(init_image).latent_dist.sample(generator)`.")
    w("- `manifest.json`: library versions; per run the pipeline class, unet in-channels, sampler, scheduler")
    w("  class and resolved config, seed, steps, guidance, sizes, strength, file names, tensor magnitudes,")
    w("  the unet call timesteps, every random draw (`random_draws`: shape, dtype, the diffusers line that")
    w("  drew it and the pipeline line that led there) and every `add_noise` call (timesteps argument and the")
    w("  scheduler's `step_index` / `begin_index` at that moment).")
    w("")
    w("Run table (draws in order; `B`: images per prompt; W×H = width × height):")
    w("")
    w("| run | pipeline | unet ch | sampler | seed | W×H | B | strength | unet calls | random draws (shapes, in order) |")
    w("|---|---|---:|---|---:|---|---:|---:|---:|---|")
    for r in runs:
        draws = ", ".join("×".join(str(s) for s in d["shape"]) for d in r["random_draws"]) or "—"
        w(f"| `{r['name']}` | {r['pipeline']} | {r['unet_in_channels']} | {r['sampler']} | {r['seed']} | "
          f"{r['width']}×{r['height']} | {r['num_images_per_prompt']} | {r['strength'] if r['strength'] is not None else '—'} | "
          f"{len(r['unet_calls'])} | {draws} |")
    w("")
    w("Timesteps given to the unet, one per unet call (the scheduler's `timesteps[t_start·order:]`; PNDM with")
    w("`skip_prk_steps` repeats the second timestep — 6 calls for 5 steps; Heun is second order — 2·5−1 = 9 calls,")
    w("`order` = 2, so strength slicing is in units of 2 there):")
    w("")
    w("| run | timesteps | init_noise_sigma |")
    w("|---|---|---:|")
    for r in runs:
        ts = ", ".join(f"{c['t']:g}" for c in r["unet_calls"])
        w(f"| `{r['name']}` | {ts} | {r['scheduler']['init_noise_sigma']:.6g} |")
    w("")
    w(README_BODY.format(**{k: R(k) for k in REFS},
                         batch_split="equal" if manifest["randn_batch_equals_two_halves"] else "NOT equal"))
    w("")
    w("## File sizes (bytes)")
    w("")
    w("| file | bytes |")
    w("|---|---:|")
    total = 0
    for name in sorted(os.listdir(out)):
        size = os.path.getsize(os.path.join(out, name))
        total += size
        w(f"| `{name}` | {size:,} |")
    w(f"| total (without this README) | {total:,} |")
    w("")
    with open(os.path.join(out, "README.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


README_BODY = """\
## Random draws

All draws go through `randn_tensor` (`torch_utils.py`): with one CPU generator it is a single
`torch.randn(shape, generator=g, dtype=float32)` of the WHOLE shape ({randn_single}); only a list of
generators draws per batch item ({randn_list}). On this CPU, `randn([2,4,16,16])` and two consecutive
`randn([1,4,16,16])` are {batch_split} (checked by the script), but port the call shapes as listed anyway.
The script replays each run's logged draws from a fresh `torch.manual_seed(seed)` and checks they equal the
values the pipeline received, so no other consumer of the generator exists. Draws of the VAE posterior
(`latent_dist.sample`, {vae_sample_randn}) have the posterior mean's shape, i.e. the number of IMAGES
encoded (1 here), not B: the encoded latents are repeated to B afterwards; the posterior is
`mean + std·ε` ({vae_sample_x}) with `logvar` clamped to [−30, 20] ({vae_logvar_clamp}) and
`std = exp(0.5·logvar)` ({vae_std}).

Scheduler steps receive the same generator (`extra_step_kwargs["generator"]`, {sd_extra_kwargs_gen}) and
draw inside `step` only as follows (eta = 0, default configs):
- DDPM: one `randn(model_output.shape)` per step while `t > 0` (all 5 steps here: t = 801 … 1), after the
  mean is computed; variance `fixed_small`.
- Euler ancestral: one `randn(model_output.shape)` per step, every step including the last (where
  `sigma_up` = 0, so the last draw changes nothing but is still consumed).
- Euler: draws only if `s_churn > 0` (gamma > 0): no draws with the defaults.
- DDIM (eta 0), PNDM, LMS, Heun, DPM++ 2M (`dpmsolver++`, not `sde-`), UniPC: no draws.
The model output shape is [B,4,h,w] (after the CFG chunk), so step draws are [B,4,h,w].

### txt2img (`StableDiffusionPipeline`)
1. `randn([B,4,H/f,W/f])` in `prepare_latents` ({sd_prepare_latents_randn}), multiplied by
   `scheduler.init_noise_sigma` ({sd_init_sigma}) (1 for DDPM/DDIM/PNDM/DPM/UniPC; `sqrt(σ_max²+1)` for
   the sigma schedulers with `timestep_spacing` "leading", see the manifest).
2. the scheduler's per-step draws, in step order.

### img2img (`StableDiffusionImg2ImgPipeline`)
1. VAE posterior sample of the init image, `randn([1,4,h,w])` for one image (`retrieve_latents` →
   `latent_dist.sample(generator)`, {retrieve_latents_sample}, called at {i2i_encode}), then
   `init_latents = scaling_factor · sample` ({i2i_scale}), repeated to B when B > 1.
2. `noise = randn([B,4,h,w])` ({i2i_noise}) → `add_noise(init_latents, noise, latent_timestep)` ({i2i_add_noise}).
   No `init_noise_sigma` factor.
3. the scheduler's per-step draws.

### inpaint (`StableDiffusionInpaintPipeline`)
`prepare_latents` runs BEFORE the mask is processed:
1. only if the unet has 4 in-channels (`return_image_latents`, {inp_return_image_latents}) or strength < 1
   ({inp_encode_cond}): VAE posterior sample of the init image `randn([1,4,h,w])` ({inp_encode_image},
   via `_encode_vae_image` {inp_encode_fn}, ×scaling_factor {inp_encode_scale}) → `image_latents` (repeated to B).
2. `noise = randn([B,4,h,w])` ({inp_noise}).
   strength == 1: `latents = noise · init_noise_sigma` ({inp_latents_init}, {inp_latents_sigma});
   strength < 1: `latents = add_noise(image_latents, noise, timesteps[0])` (no init_noise_sigma).
3. `prepare_mask_latents`: VAE posterior sample of the MASKED image `randn([1,4,h,w])`
   ({inp_masked_encode}) → `masked_image_latents` (×scaling_factor). This draw happens for 4-channel unets
   too, although they never use `masked_image_latents`.
4. the scheduler's per-step draws.
So: 9-ch, strength 1: noise, masked-image sample. 4-ch (any strength): image sample, noise,
masked-image sample. 9-ch, strength < 1: image sample, noise, masked-image sample.

## Prompt encoding and classifier-free guidance

`encode_prompt` tokenises the prompt (`padding="max_length"`, 77, truncation) and runs the text encoder
(last hidden state, after `final_layer_norm`); the embeddings are repeated per image
(`repeat(1, B, 1).view(B, 77, 32)`, {sd_repeat}). A string negative prompt becomes `[negative_prompt]`
({sd_uncond_str}); None would be `[""]`. The unet batch is **unconditional first**:
`prompt_embeds = cat([negative_embeds, prompt_embeds])` ({sd_cfg_cat}) and
`latent_model_input = cat([latents, latents])` ({sd_latent_cat}); output split
`uncond, text = noise_pred.chunk(2)` ({sd_chunk}); `noise = uncond + guidance_scale · (text − uncond)`
({sd_guidance}). With B = 2 the unet batch is [u0, u1, c0, c1]. The unet gets the same scalar timestep
`t` (a 0-dim tensor from `scheduler.timesteps`: int64 for DDPM/DDIM/PNDM/DPM/UniPC, float32 for
LMS/Euler/Euler-a/Heun — see `unet_calls[].t_dtype`), broadcast to the batch.

`guidance_rescale` (txt2img only, default 0 → skipped; {sd_rescale_call}), applied after guidance:
`std_text = std(text)`, `std_cfg = std(noise_cfg)` per batch item over all of C,H,W (torch `std`,
unbiased, N−1; {sd_rescale_std_text}); `rescaled = noise_cfg · std_text / std_cfg`;
`noise_cfg = φ·rescaled + (1−φ)·noise_cfg` ({sd_rescale_mix}).

Each step: `latent_model_input = scheduler.scale_model_input(cat([latents]*2), t)` ({sd_scale_input}),
unet, guidance, `latents = scheduler.step(noise_pred, t, latents, generator=g)` ({sd_step}).

## Image pre-processing (`VaeImageProcessor.preprocess`, PIL input)

- img2img calls `image_processor.preprocess(image)` with NO height/width ({i2i_preprocess}): the output
  size is the input size rounded DOWN to a multiple of `vae_scale_factor` ({imp_default_hw}); the pipeline
  has no width/height arguments.
- inpaint calls `preprocess(image, height, width, resize_mode="default")` ({inp_init_preprocess},
  {inp_resize_default}); height/width default to `unet.sample_size · vae_scale_factor` = 64 and must be
  multiples of `vae_scale_factor` ({inp_check_div}; txt2img instead demands multiples of 8, {sd_check_8}).
- resize: PIL `image.resize((width, height), resample=LANCZOS)` ({imp_resize_default}, {imp_resize_call});
  Pillow returns an unchanged copy when the size already matches, so 64×64 inputs are not resampled.
- to float: `np.array(img).astype(float32) / 255` ({imp_to_np}), NCHW, then `2·x − 1` ({imp_normalize}) → [−1,1].

## Mask pre-processing (inpaint)

`mask_processor = VaeImageProcessor(do_normalize=False, do_binarize=True, do_convert_grayscale=True)`
({inp_mask_proc}); `preprocess(mask, height, width, resize_mode="default")` ({inp_mask_preprocess}):
1. PIL LANCZOS resize to (width, height) (no-op at equal size), THEN `convert("L")` ({imp_gray}) (Pillow's
   L = `(R·19595 + G·38470 + B·7471 + 0x8000) >> 16`, checked; an L input is unchanged);
2. `/255` to float32 (no normalisation);
3. binarise: `x < 0.5 → 0`, `x >= 0.5 → 1` ({imp_binarize_lt}, {imp_binarize_ge}) → `mask_condition` [1,1,H,W] in {{0,1}}.
`masked_image = init_image · (mask_condition < 0.5)` ({inp_masked_image}): pixels to repaint become 0
(mid-grey in [−1,1] space), the rest keep the normalised init image. Latent mask:
`F.interpolate(mask_condition, size=(H/f, W/f))` ({inp_mask_interp}, {inp_mask_interp_size}), default mode
"nearest": `out[i,j] = in[floor(i·H/h), floor(j·W/w)]` (here `in[4i, 4j]`); still exactly 0/1. Mask and
`masked_image_latents` are repeated to B and then doubled for CFG ({inp_mask_cfg}).

## Init latents and timesteps for strength

`get_timesteps` ({i2i_init_timestep}, {i2i_t_start}, {i2i_ts_slice}, {i2i_begin}):
`init_timestep = min(int(steps·strength), steps)`, `t_start = max(steps − init_timestep, 0)`,
`timesteps = scheduler.timesteps[t_start·order:]` and, if the scheduler has `set_begin_index`
(LMS/Euler/Euler-a/Heun/DPM/UniPC; not DDPM/DDIM/PNDM), `set_begin_index(t_start·order)`. The loop then
runs `steps − t_start` steps. strength 0.6, 5 steps: int(3.0) = 3 → t_start 2 → the last 3 of the 5
timesteps. strength 0.75: int(3.75) = 3 → also 3 steps. strength 1: all 5.
`latent_timestep = timesteps[:1]` (the first remaining timestep, repeated to B; {i2i_latent_timestep},
{inp_latent_timestep}). The encoder latents are the posterior SAMPLE, not the mean
(`latent_dist.sample(generator)`), times `scaling_factor` 0.18215.

`add_noise` (scheduler-specific; which index it uses matters):
- DDPM, DDIM, PNDM: `sqrt(ᾱ_t)·x0 + sqrt(1−ᾱ_t)·ε`, ᾱ_t = `alphas_cumprod[t]` looked up by the timestep
  VALUE passed in (float32; the sqrt is taken in float32).
- Euler, Euler-a, LMS, Heun: `x0 + σ·ε`; DPM++ (multistep) and UniPC: `α·x0 + σ_t·ε` with
  `α = 1/sqrt(σ²+1)`, `σ_t = σ·α`. For all of these σ = `sigmas[begin_index]` before the first step
  (img2img / inpaint init) or `sigmas[step_index]` once stepping has started (inpaint blending: step_index
  is then i + 1, i.e. the σ of `timesteps[i + 1]`); the timestep argument is only looked up in the schedule
  when no `begin_index` was set (never, in these pipelines). No `init_noise_sigma` factor; the loop's
  `scale_model_input` (÷ `sqrt(σ²+1)` for the Euler family) applies as usual.

## Inpainting loop

- `scale_model_input` is applied to the 4-channel latent part ONLY, then the 9-channel input is
  `cat([scaled_latents(2B), mask(2B,1), masked_image_latents(2B,4)], dim=1)` ({inp_scale_input},
  {inp_concat}) — mask and masked-image latents are never scaled (irrelevant for DDIM, matters for sigma
  schedulers).
- `latents = scheduler.step(...)` on the 4 latent channels only ({inp_step}).
- 4-channel unet (latent blending), after every step ({inp_blend_mask} … {inp_blend}):
  `init_mask` = first half of the doubled mask; if `i < len(timesteps) − 1`:
  `init_latents_proper = add_noise(image_latents, noise, tensor([timesteps[i + 1]]))` ({inp_noise_timestep},
  {inp_blend_add_noise}) with the SAME `noise` tensor drawn in prepare_latents (no new draw); at the last
  step the clean `image_latents`. Then `latents = (1 − init_mask)·init_latents_proper + init_mask·latents`.
  (So after the final step the unmasked latents are exactly the clean image latents.)
- output: diffusers does NOT paste the original pixels back (`padding_mask_crop` None; the overlay at
  {inp_overlay} is skipped). The recorded images are raw decoder output everywhere; compare inside the mask.

## Decoding and conversion to 8-bit

`image = vae.decode(latents / scaling_factor)` ({sd_decode}; float32 division by the float32-rounded
0.18215 — verified bit-exact against numpy float32 division, NOT a multiply by the reciprocal).
`postprocess` ({sd_postprocess}): `(x·0.5 + 0.5).clamp(0, 1)` ({imp_denorm}), NCHW → NHWC float32
({imp_pt_to_np}) = the `np` output; PIL: `(x·255).round().astype(uint8)` ({imp_to_uint8}) — float32
multiply, numpy round-half-to-even.
"""


if __name__ == "__main__":
    main()
