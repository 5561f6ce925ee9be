#!/usr/bin/env python3
"""Drive a running `ldm serve` with PyPI's webuiapi (the A1111 client library), unchanged, the way
its README shows — a by-hand check of API compatibility (never run by tests or CI).

    ldm serve --port 7861 &
    /work/venv/bin/python scripts/check_webuiapi.py 7861

Also makes Open WebUI's four calls (GET/POST options, GET sd-models, POST txt2img) with requests.
Prints one line per check and exits non-zero on the first failure.
"""
import base64
import io
import sys
import threading
import time

import requests
import webuiapi
from PIL import Image, ImageDraw

port = int(sys.argv[1]) if len(sys.argv) > 1 else 7860
api = webuiapi.WebUIApi(host="127.0.0.1", port=port)
base = f"http://127.0.0.1:{port}"


def check(label, condition):
    print(("ok   " if condition else "FAIL ") + label)
    if not condition:
        sys.exit(1)


print("webuiapi", getattr(webuiapi, "__version__", "0.9.17"))
models = api.util_get_model_names()
check(f"util_get_model_names -> {models}", len(models) >= 1)
api.util_set_model(models[0])
check("util_set_model", api.util_get_current_model() == models[0])
check("get_sampler_names", "Euler a" in [s["name"] for s in api.get_samplers()])

r = api.txt2img(prompt="a red circle above a blue square", negative_prompt="", seed=5, steps=10, cfg_scale=5,
                width=64, height=64, sampler_name="DPM++ 2M")
check(f"txt2img -> {r.image.size}, seed {r.info.get('seed')}", r.image.size == (64, 64) and r.info["seed"] == 5)
check("txt2img parameters text", "Seed: 5" in r.info["infotexts"][0])

mask = Image.new("L", (64, 64), 0)
ImageDraw.Draw(mask).rectangle([16, 16, 47, 47], fill=255)
r2 = api.img2img(images=[r.image], mask_image=mask, prompt="a green triangle", seed=6, steps=10, denoising_strength=0.9,
                 inpainting_fill=1, width=64, height=64)
same = sum(1 for x in range(64) for y in range(64) if (x < 12 or x > 51 or y < 12 or y > 51) and r2.image.getpixel((x, y)) == r.image.convert("RGB").getpixel((x, y)))
check(f"img2img with a mask -> {r2.image.size}, unmasked border pixels kept: {same}", r2.image.size == (64, 64) and same == 64 * 64 - 40 * 40)

buffer = io.BytesIO()
r.image.save(buffer, format="PNG", pnginfo=None)
info = api.png_info(r.image)
check(f"png_info -> {info.info[:40]!r}", "Steps:" in info.info or info.info == "")

progress = api.get_progress()
check(f"get_progress -> {progress['progress']}", "progress" in progress and "state" in progress)

result = {}
thread = threading.Thread(target=lambda: result.update(r=api.txt2img(prompt="a blue square", steps=80, n_iter=8, seed=1,
                                                                   width=64, height=64, sampler_name="Euler")))
thread.start()
time.sleep(1.5)
mid = api.get_progress()
api.interrupt()
thread.join(120)
check(f"progress during a job {mid['progress']:.2f}, interrupt -> {len(result['r'].images)} of 8 images",
      mid["progress"] > 0 and len(result["r"].images) < 8)

# Open WebUI's calls.
opts = requests.get(base + "/sdapi/v1/options").json()
check("Open WebUI: GET options", "sd_model_checkpoint" in opts)
check("Open WebUI: POST options", requests.post(base + "/sdapi/v1/options", json={"sd_model_checkpoint": opts["sd_model_checkpoint"]}).status_code == 200)
check("Open WebUI: GET sd-models", requests.get(base + "/sdapi/v1/sd-models").status_code == 200)
resp = requests.post(base + "/sdapi/v1/txt2img", json={"prompt": "a yellow circle", "batch_size": 1, "width": 64, "height": 64})
check("Open WebUI: POST txt2img", resp.status_code == 200 and Image.open(io.BytesIO(base64.b64decode(resp.json()["images"][0]))).size == (64, 64))
print("all checks passed")
