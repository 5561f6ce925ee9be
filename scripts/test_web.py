#!/usr/bin/env python3
"""Browser test of `ldm serve`'s web page (what `make test-web` runs; not part of `make test`).

Starts `ldm serve` on a free port with the shipped model, opens the page in headless Chromium
(Debian's chromium + chromium-driver, driven by selenium), and checks what a user does: type a
prompt, press Generate, see the progress bar move and the image appear with its parameters; then
switch to inpainting, load an image, paint a mask with the brush and inpaint; the gallery lists
both. Saves a screenshot of the page with a generated image to docs/serve-page.png.

    make test-web        (or: python3 scripts/test_web.py [path/to/ldm])
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
LDM = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".build", "release", "ldm")


def check(label, condition):
    print(("ok   " if condition else "FAIL ") + label, flush=True)
    if not condition:
        raise SystemExit(1)


def wait_for(condition, timeout, label):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    check(label + " (timed out)", False)


def main():
    data = tempfile.mkdtemp(prefix="ldm-web-")
    server = subprocess.Popen([LDM, "serve", "--port", "0", "--data-dir", data], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    driver = None
    try:
        line = server.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        check(f"server started: {line.strip()}", match is not None)
        url = match.group(0)

        options = Options()
        for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000", "--disable-dev-shm-usage"]:
            options.add_argument(arg)
        options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)
        driver.get(url + "/")
        by_id = lambda i: driver.find_element(By.ID, i)
        wait_for(lambda: len(by_id("model").find_elements(By.TAG_NAME, "option")) > 0, 20, "models listed")
        wait_for(lambda: by_id("width").get_attribute("value") == "64", 20, "the model's own size taken (64)")
        check("page loaded with the model and samplers",
              len(by_id("sampler").find_elements(By.TAG_NAME, "option")) >= 8)

        # txt2img: a longer run so the progress bar can be seen moving.
        prompt = by_id("prompt")
        prompt.clear()
        prompt.send_keys("a red circle above a blue square")
        steps = by_id("steps")
        steps.clear()
        steps.send_keys("120")
        seed = by_id("seed")
        seed.clear()
        seed.send_keys("42")
        by_id("generate").click()
        values = set()
        deadline = time.time() + 120
        while time.time() < deadline and not by_id("result").find_elements(By.TAG_NAME, "img"):
            v = by_id("progress").get_attribute("value")
            if v:
                values.add(round(float(v), 2))
            time.sleep(0.1)
        check(f"progress bar moved through {len(values)} values", len([v for v in values if 0 < v < 1]) >= 2)
        images = wait_for(lambda: by_id("result").find_elements(By.TAG_NAME, "img"), 60, "image appeared")
        check("image shown", images[0].get_attribute("naturalWidth") == "64")
        params = wait_for(lambda: by_id("result-params").text, 10, "parameters shown")
        check(f"parameters shown: {params.splitlines()[-1][:60]}…", "Seed: 42" in params and "Steps: 120" in params)
        os.makedirs(os.path.join(ROOT, "docs"), exist_ok=True)
        shot = os.path.join(ROOT, "docs", "serve-page.png")
        driver.save_screenshot(shot)
        check(f"screenshot saved to {os.path.relpath(shot, ROOT)}", os.path.getsize(shot) > 10000)

        # Inpainting: load an image, paint the mask, generate.
        by_id("mode-inpaint").click()
        by_id("init-file").send_keys(os.path.join(ROOT, "Tests", "Fixtures", "pipelines", "init.png"))
        canvas = wait_for(lambda: by_id("mask-canvas").is_displayed() and by_id("mask-canvas"), 20, "mask canvas shown")
        steps.clear()
        steps.send_keys("20")
        size = canvas.size
        ActionChains(driver).move_to_element_with_offset(canvas, -size["width"] // 6, 0).click_and_hold() \
            .move_by_offset(size["width"] // 3, 0).move_by_offset(0, size["height"] // 6).release().perform()
        before = len(by_id("gallery").find_elements(By.TAG_NAME, "img"))
        by_id("generate").click()
        wait_for(lambda: not by_id("error").is_displayed() or by_id("error").text == "", 1, "no error after inpainting starts")
        wait_for(lambda: "Mask blur" in by_id("result-params").text, 120, "inpainting result with its parameters")
        error = by_id("error").text if by_id("error").is_displayed() else ""
        check(f"inpainted without error {error!r}", error == "")
        wait_for(lambda: len(by_id("gallery").find_elements(By.TAG_NAME, "img")) > before, 30, "gallery grew")
        check("gallery lists the images", len(by_id("gallery").find_elements(By.TAG_NAME, "img")) >= 2)
        print("web page test passed")
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(10)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
