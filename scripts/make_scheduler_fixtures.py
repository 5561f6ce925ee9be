#!/usr/bin/env python3
"""Reference fixtures for the Swift schedulers (Sources/LDMDiffusion/Schedulers).

Run by hand from the repository root with the reference virtualenv:

    /work/venv/ref/bin/python scripts/make_scheduler_fixtures.py [OUT_DIR]

OUT_DIR defaults to Tests/Fixtures/schedulers. It writes
  - manifest.json        : library versions, the fake model, and one entry per case (scheduler
                           config as found in the file, the config diffusers resolved from it, the
                           schedules' lengths / init_noise_sigma / errors);
  - schedulers.safetensors: timesteps and sigmas for N = 1, 5, 20, 50 and the loop samples.

A case is a scheduler_config.json (written to a temporary folder) loaded the way the Swift
factory `makeScheduler(folderConfig:sampler:)` loads it:
  - with a sampler name: `Class.from_pretrained(folder, **forced)` (keys present in the file plus
    the class's own defaults; `forced` pins what the sampler name means, e.g. use_karras_sigmas);
  - without one: the class named by `_class_name`, `Class.from_pretrained(folder)`.

For every case, on the CPU in float32:
  - schedule: `set_timesteps(N)` for N in STEPS -> timesteps, sigmas (when the class has them),
    init_noise_sigma; or the error message diffusers raised.
  - loop (txt2img): set_timesteps(N) (N = 10, or 20 for some extras);
    x = randn((1,4,8,8), manual_seed(0)) * init_noise_sigma;
    for t in timesteps: x_in = scale_model_input(x, t); eps = fake_model(x_in, t);
    x = step(eps, t, x, generator=manual_seed(1) if step takes a generator).
    Saved: `mid` (after len(timesteps)//2 steps) and `final`.
  - img2img as StableDiffusionImg2ImgPipeline does it: set_timesteps(N), strength 0.6,
    t_start = N - int(N * 0.6), timesteps = timesteps[t_start*order:],
    set_begin_index(t_start*order) when the class has it,
    x = add_noise(original, noise, timesteps[:1]) with original = 0.5 * randn(manual_seed(2)) and
    noise = randn(manual_seed(3)) (saved as `img2img_noised`), then the loop over
    the remaining timesteps (saved as `img2img_final`, generator manual_seed(1) again).
    After the first img2img step, add_noise(original, noise, [timesteps[1]]) is saved as
    `inpaint_noised` (what the inpaint pipeline does for 4-channel models; sigma schedulers use
    their step index there).

Some extra cases pass step() arguments a pipeline would pass (DDIM's eta); they are recorded in the
manifest as `step_arguments`. Cases where diffusers itself fails record `loop_error` (the Swift
test then only checks that ours runs). Needs scipy (LMSDiscreteScheduler integrates with it).

fake_model(x_in, t) = a * x_in + b, elementwise in float32, with
    a = float32(0.3 * cos(t / 300)), b = float32(0.1 * sin(t / 100)), t = float(timestep) in
    float64.
"""

import json
import math
import os
import platform
import sys
import tempfile

import diffusers
import numpy as np
import scipy
import torch
from safetensors.torch import save_file

torch.set_num_threads(1)

SD15 = {
    "_class_name": "PNDMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}

# What the names dpm++2m / dpm++2m-karras pin on top of the file's keys (SamplerName.pin).
DPM_PINNED = {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_exponential_sigmas": False,
              "use_lu_lambdas": False, "use_beta_sigmas": False}

# The sampler names of the CLI and what each pins on top of the file's keys.
SAMPLERS = {
    "ddpm": ("DDPMScheduler", {}),
    "ddim": ("DDIMScheduler", {}),
    "pndm": ("PNDMScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "dpm++2m": ("DPMSolverMultistepScheduler", {**DPM_PINNED, "use_karras_sigmas": False}),
    "dpm++2m-karras": ("DPMSolverMultistepScheduler", {**DPM_PINNED, "use_karras_sigmas": True}),
    "unipc": ("UniPCMultistepScheduler", {}),
}

VARIANTS = {
    "sd15": dict(SD15),
    "vpred-trailing": {**SD15, "prediction_type": "v_prediction", "timestep_spacing": "trailing"},
    "linspace": {**SD15, "timestep_spacing": "linspace"},
    "cosine": {**SD15, "beta_schedule": "squaredcos_cap_v2"},
    "linear": {**SD15, "beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02,
               "clip_sample": True, "steps_offset": 0},
}

# Extra cases: (name, config, sampler or None, loop steps[, extra step() arguments]). Without a
# sampler the class is the config's `_class_name`.
EXTRAS = [
    ("pndm-prk", {**SD15, "skip_prk_steps": False}, None, 10),
    ("pndm-prk-leading20", {**SD15, "skip_prk_steps": False}, None, 20),
    ("ddim-setalpha-trailing", {**SD15, "_class_name": "DDIMScheduler", "set_alpha_to_one": True,
                           "timestep_spacing": "trailing"}, None, 10),
    ("ddim-trained-betas", {**SD15, "_class_name": "DDIMScheduler", "num_train_timesteps": 100,
                            "trained_betas": [round(0.001 + i * 0.0005, 6) for i in range(100)]}, None, 10),
    ("ddpm-sample-fixedlarge", {**SD15, "_class_name": "DDPMScheduler", "prediction_type": "sample",
                                "variance_type": "fixed_large", "clip_sample": True}, None, 10),
    ("ddpm-smalllog-sigmoid", {**SD15, "_class_name": "DDPMScheduler", "variance_type": "fixed_small_log",
                               "beta_schedule": "sigmoid", "beta_start": 0.0001, "beta_end": 0.02}, None, 10),
    ("zsnr-ddim", {**SD15, "_class_name": "DDIMScheduler", "rescale_betas_zero_snr": True,
                   "prediction_type": "v_prediction", "timestep_spacing": "trailing"}, None, 10),
    ("zsnr-euler", {**SD15, "_class_name": "EulerDiscreteScheduler", "rescale_betas_zero_snr": True,
                    "prediction_type": "v_prediction", "timestep_spacing": "trailing"}, None, 10),
    ("zsnr-euler-a", {**SD15, "_class_name": "EulerAncestralDiscreteScheduler", "rescale_betas_zero_snr": True,
                      "prediction_type": "v_prediction", "timestep_spacing": "trailing"}, None, 10),
    ("thresholding-ddpm", {**SD15, "_class_name": "DDPMScheduler", "thresholding": True,
                           "sample_max_value": 1.5, "dynamic_thresholding_ratio": 0.9}, None, 10),
    ("thresholding-dpm", {**SD15, "_class_name": "DPMSolverMultistepScheduler", "thresholding": True,
                          "sample_max_value": 1.5, "dynamic_thresholding_ratio": 0.9}, None, 10),
    ("euler-karras", {**SD15, "_class_name": "EulerDiscreteScheduler", "use_karras_sigmas": True}, None, 10),
    ("euler-exponential-sigmamin", {**SD15, "_class_name": "EulerDiscreteScheduler",
                                    "use_exponential_sigmas": True, "final_sigmas_type": "sigma_min"}, None, 10),
    ("euler-continuous-vpred", {**SD15, "_class_name": "EulerDiscreteScheduler", "timestep_type": "continuous",
                                "prediction_type": "v_prediction"}, None, 10),
    ("heun-karras", {**SD15, "_class_name": "HeunDiscreteScheduler", "use_karras_sigmas": True}, None, 10),
    ("heun-vpred-clip", {**SD15, "_class_name": "HeunDiscreteScheduler", "prediction_type": "v_prediction",
                         "clip_sample": True}, None, 10),
    ("lms-karras", {**SD15, "_class_name": "LMSDiscreteScheduler", "use_karras_sigmas": True}, None, 10),
    ("lms-20", {**SD15, "_class_name": "LMSDiscreteScheduler"}, None, 20),
    ("dpm-order3-sigmamin", {**SD15, "_class_name": "DPMSolverMultistepScheduler", "solver_order": 3,
                             "final_sigmas_type": "sigma_min", "lower_order_final": False}, None, 10),
    ("dpm-order3-20", {**SD15, "_class_name": "DPMSolverMultistepScheduler", "solver_order": 3}, None, 20),
    ("dpm-heun-20", {**SD15, "_class_name": "DPMSolverMultistepScheduler", "solver_type": "heun"}, None, 20),
    ("dpm-sde", {**SD15, "_class_name": "DPMSolverMultistepScheduler", "algorithm_type": "sde-dpmsolver++"},
     None, 10),
    ("dpm-dpmsolver", {**SD15, "_class_name": "DPMSolverMultistepScheduler", "algorithm_type": "dpmsolver",
                       "final_sigmas_type": "sigma_min"}, None, 10),
    ("dpm-lu-lambdas", {**SD15, "_class_name": "DPMSolverMultistepScheduler", "use_lu_lambdas": True}, None, 10),
    ("dpm-exponential", {**SD15, "_class_name": "DPMSolverMultistepScheduler",
                         "use_exponential_sigmas": True}, None, 10),
    ("dpm-lambda-clipped-euler-final", {**SD15, "_class_name": "DPMSolverMultistepScheduler",
                                        "lambda_min_clipped": -5.1, "euler_at_final": True,
                                        "final_sigmas_type": "sigma_min"}, None, 20),
    ("unipc-karras", {**SD15, "_class_name": "UniPCMultistepScheduler", "use_karras_sigmas": True}, None, 10),
    ("unipc-bh1-order3", {**SD15, "_class_name": "UniPCMultistepScheduler", "solver_type": "bh1",
                          "solver_order": 3}, None, 20),
    ("unipc-order3-noncorrector", {**SD15, "_class_name": "UniPCMultistepScheduler", "solver_order": 3,
                                   "disable_corrector": [0, 3], "lower_order_final": False,
                                   "final_sigmas_type": "sigma_min"}, None, 10),
    ("unipc-eps-space", {**SD15, "_class_name": "UniPCMultistepScheduler", "predict_x0": False}, None, 20),
    ("unipc-20", {**SD15, "_class_name": "UniPCMultistepScheduler"}, None, 20),
    ("dpm-20", {**SD15, "_class_name": "DPMSolverMultistepScheduler"}, None, 20),
    ("zsnr-ddpm", {**SD15, "_class_name": "DDPMScheduler", "rescale_betas_zero_snr": True,
                   "prediction_type": "v_prediction", "timestep_spacing": "trailing"}, None, 10),
    ("zsnr-dpm", {**SD15, "_class_name": "DPMSolverMultistepScheduler", "rescale_betas_zero_snr": True,
                  "prediction_type": "v_prediction", "timestep_spacing": "trailing"}, None, 10),
    ("zsnr-unipc", {**SD15, "_class_name": "UniPCMultistepScheduler", "rescale_betas_zero_snr": True,
                    "prediction_type": "v_prediction", "timestep_spacing": "trailing"}, None, 10),
    ("ddpm-laplace", {**SD15, "_class_name": "DDPMScheduler", "beta_schedule": "laplace"}, None, 10),
    ("heun-exp-beta", {**SD15, "_class_name": "HeunDiscreteScheduler", "beta_schedule": "exp"}, None, 10),
    ("heun-exponential-leading", {**SD15, "_class_name": "HeunDiscreteScheduler", "use_exponential_sigmas": True,
                                  "timestep_spacing": "leading"}, None, 10),
    ("lms-exponential-trailing", {**SD15, "_class_name": "LMSDiscreteScheduler", "use_exponential_sigmas": True,
                                  "timestep_spacing": "trailing"}, None, 10),
    ("unipc-exponential", {**SD15, "_class_name": "UniPCMultistepScheduler", "use_exponential_sigmas": True}, None, 10),
    ("unipc-karras-range", {**SD15, "_class_name": "UniPCMultistepScheduler", "use_karras_sigmas": True,
                            "sigma_min": 0.1, "sigma_max": 10.0, "final_sigmas_type": "sigma_min"}, None, 10),
    ("euler-karras-range", {**SD15, "_class_name": "EulerDiscreteScheduler", "use_karras_sigmas": True,
                            "sigma_min": 0.1, "sigma_max": 10.0}, None, 10),
    ("ddim-eta", {**SD15, "_class_name": "DDIMScheduler"}, None, 10, {"eta": 0.5}),
    ("dpm-sde-order3-karras", {**SD15, "_class_name": "DPMSolverMultistepScheduler",
                               "algorithm_type": "sde-dpmsolver++", "solver_order": 3, "use_karras_sigmas": True},
     None, 20),
]

STEPS = [1, 5, 20, 50]
SHAPE = (1, 4, 8, 8)
STRENGTH = 0.6


def fake_model(x_in, t):
    tf = float(t)
    a = torch.tensor(np.float32(0.3 * math.cos(tf / 300.0)))
    b = torch.tensor(np.float32(0.1 * math.sin(tf / 100.0)))
    return x_in * a + b


def load(config, sampler):
    folder = tempfile.mkdtemp()
    with open(os.path.join(folder, "scheduler_config.json"), "w") as f:
        json.dump(config, f)
    if sampler is not None:
        class_name, forced = SAMPLERS[sampler]
        return getattr(diffusers, class_name).from_pretrained(folder, **forced)
    return getattr(diffusers, config["_class_name"]).from_pretrained(folder)


def step_kwargs(scheduler, generator):
    import inspect
    params = set(inspect.signature(scheduler.step).parameters.keys())
    return {"generator": generator} if "generator" in params else {}


def as_float(x):
    return float(x.item()) if isinstance(x, torch.Tensor) else float(x)


def jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # "-inf": JSON has no infinities
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    return repr(value)


def run_case(name, config, sampler, loop_steps, tensors, inputs, extra_step=None):
    s = load(config, sampler)
    entry = {
        "name": name,
        "sampler": sampler,
        "config": config,
        "class": type(s).__name__,
        "resolved": {k: jsonable(v) for k, v in dict(s.config).items() if not k.startswith("_")},
        "order": s.order,
        "schedules": [],
        "step_arguments": extra_step or {},
    }
    for n in STEPS + ([loop_steps] if loop_steps not in STEPS else []):
        s = load(config, sampler)
        rec = {"steps": n}
        try:
            s.set_timesteps(n)
        except Exception as e:  # diffusers refuses this N: record why
            rec["error"] = f"{type(e).__name__}: {e}"
            entry["schedules"].append(rec)
            continue
        key = f"{name}/N{n}"
        tensors[f"{key}/timesteps"] = s.timesteps.to(torch.float32).clone()
        rec["count"] = len(s.timesteps)
        rec["timesteps_dtype"] = str(s.timesteps.dtype)
        if hasattr(s, "sigmas") and isinstance(s.sigmas, torch.Tensor):
            tensors[f"{key}/sigmas"] = s.sigmas.to(torch.float32).clone()
            rec["sigmas"] = True
        rec["init_noise_sigma"] = as_float(s.init_noise_sigma)
        entry["schedules"].append(rec)

    try:
        run_loops(name, config, sampler, loop_steps, tensors, inputs, entry, extra_step or {})
    except Exception as e:  # diffusers itself fails on this case: record why, keep what was saved
        entry["loop_error"] = f"{type(e).__name__}: {e}"
        for k in [k for k in tensors if k.startswith(name + "/") and "/N" not in k[len(name):]]:
            del tensors[k]
    return entry


def run_loops(name, config, sampler, loop_steps, tensors, inputs, entry, extra_step):
    # txt2img loop
    s = load(config, sampler)
    s.set_timesteps(loop_steps)
    x = inputs["noise0"] * s.init_noise_sigma
    generator = torch.manual_seed(1)
    mid_after = len(s.timesteps) // 2
    for i, t in enumerate(s.timesteps):
        x_in = s.scale_model_input(x, t)
        eps = fake_model(x_in, t)
        x = s.step(eps, t, x, **step_kwargs(s, generator), **extra_step, return_dict=False)[0]
        if i + 1 == mid_after:
            tensors[f"{name}/mid"] = x.clone()
    tensors[f"{name}/final"] = x.clone()
    entry["loop"] = {"steps": loop_steps, "mid_after": mid_after, "model_calls": len(s.timesteps)}

    # img2img loop
    s = load(config, sampler)
    s.set_timesteps(loop_steps)
    init_timestep = min(int(loop_steps * STRENGTH), loop_steps)
    t_start = max(loop_steps - init_timestep, 0)
    timesteps = s.timesteps[t_start * s.order:]
    if hasattr(s, "set_begin_index"):
        s.set_begin_index(t_start * s.order)
    x = s.add_noise(inputs["original"], inputs["img2img_noise"], timesteps[:1])
    tensors[f"{name}/img2img_noised"] = x.clone()
    generator = torch.manual_seed(1)
    for i, t in enumerate(timesteps):
        x_in = s.scale_model_input(x, t)
        eps = fake_model(x_in, t)
        x = s.step(eps, t, x, **step_kwargs(s, generator), **extra_step, return_dict=False)[0]
        if i == 0 and len(timesteps) > 1:
            noised = s.add_noise(inputs["original"], inputs["img2img_noise"], torch.tensor([timesteps[1]]))
            tensors[f"{name}/inpaint_noised"] = noised.clone()
    tensors[f"{name}/img2img_final"] = x.clone()
    entry["img2img"] = {"strength": STRENGTH, "t_start": t_start, "begin_index": t_start * s.order,
                        "model_calls": len(timesteps)}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "schedulers")
    os.makedirs(out, exist_ok=True)
    inputs = {
        "noise0": torch.randn(SHAPE, generator=torch.manual_seed(0)),
        "original": torch.randn(SHAPE, generator=torch.manual_seed(2)) * 0.5,
        "img2img_noise": torch.randn(SHAPE, generator=torch.manual_seed(3)),
        # Two successive draws of a manual_seed(1) generator, as euler-a / ddpm take them.
        "seed1_draws": torch.randn((2,) + SHAPE, generator=torch.manual_seed(1)),
    }
    tensors = {f"inputs/{k}": v.contiguous() for k, v in inputs.items()}
    cases = []
    for variant, config in VARIANTS.items():
        for sampler in SAMPLERS:
            cases.append(run_case(f"{sampler}/{variant}", config, sampler, 10, tensors, inputs))
    for name, config, sampler, loop_steps, *extra in EXTRAS:
        cases.append(run_case(name, config, sampler, loop_steps, tensors, inputs, *extra))

    manifest = {
        "generated_by": "scripts/make_scheduler_fixtures.py",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        },
        "fake_model": "eps = a * x_in + b (float32), a = float32(0.3*cos(t/300)), b = float32(0.1*sin(t/100)), "
                      "t = float64(timestep)",
        "shape": list(SHAPE),
        "steps": STEPS,
        "cases": cases,
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=False, allow_nan=False)
    save_file({k: v.contiguous().to(torch.float32) for k, v in tensors.items()},
              os.path.join(out, "schedulers.safetensors"),
              metadata={"generated_by": "scripts/make_scheduler_fixtures.py",
                        "torch": torch.__version__, "diffusers": diffusers.__version__})
    for name in ("manifest.json", "schedulers.safetensors"):
        os.chmod(os.path.join(out, name), 0o644)
    print(f"{len(cases)} cases, {len(tensors)} tensors -> {out}")


if __name__ == "__main__":
    main()
