#!/usr/bin/env python3
"""Load figures for `ldm serve` (by hand, on a quiet machine; never in tests or CI).

Starts `ldm serve` with the shipped model and sends 64×64 txt2img requests (the model's 25 steps
of DPM++ 2M) from 1, 4 and 16 concurrent clients; prints requests per minute and p50/p95 latency
for each, then sends 500 requests from 4 clients while sampling the server's resident memory
(VmRSS), to show whether it stays flat.

    /work/venv/bin/python scripts/load_serve.py [path/to/ldm] [--quick]
"""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
args = [a for a in sys.argv[1:] if not a.startswith("--")]
LDM = args[0] if args else os.path.join(ROOT, ".build", "release", "ldm")
QUICK = "--quick" in sys.argv


def post(url, body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        return response.status, response.read()


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run_clients(url, clients, per_client, seed0=0):
    latencies, errors = [], []
    lock = threading.Lock()

    def client(k):
        for i in range(per_client):
            start = time.time()
            try:
                status, _ = post(url, {"prompt": "a red circle above a blue square", "seed": seed0 + k * 1000 + i, "width": 64, "height": 64})
                ok = status == 200
            except Exception as e:  # noqa: BLE001
                ok = False
                errors.append(str(e))
            with lock:
                (latencies.append(time.time() - start) if ok else errors.append("status"))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    start = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.time() - start, latencies, errors


def main():
    data = tempfile.mkdtemp(prefix="ldm-load-")
    server = subprocess.Popen([LDM, "serve", "--port", "0", "--data-dir", data], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+", server.stdout.readline()).group(0) + "/sdapi/v1/txt2img"
        post(url, {"prompt": "warm up", "width": 64, "height": 64})
        print(f"cpu: {os.cpu_count()} cores; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '-')}")
        for clients in (1, 4, 16):
            per = max(1, (8 if QUICK else 32) // clients)
            seconds, lat, errors = run_clients(url, clients, per)
            lat.sort()
            p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))]
            print(f"{clients:2d} clients: {len(lat)} requests in {seconds:.1f} s = {60 * len(lat) / seconds:.0f}/min, "
                  f"p50 {statistics.median(lat):.2f} s, p95 {p95:.2f} s, errors {len(errors)}")
        total = 100 if QUICK else 500
        samples = [rss_mib(server.pid)]
        done = threading.Event()

        def sample():
            while not done.is_set():
                samples.append(rss_mib(server.pid))
                time.sleep(1)

        sampler = threading.Thread(target=sample)
        sampler.start()
        seconds, lat, errors = run_clients(url, 4, total // 4, seed0=10**6)
        done.set()
        sampler.join()
        samples.append(rss_mib(server.pid))
        tenth = max(1, len(samples) // 10)
        print(f"{len(lat)} requests from 4 clients in {seconds:.0f} s, errors {len(errors)}; server RSS MiB: start {samples[0]:.0f}, "
              f"first tenth max {max(samples[:tenth]):.0f}, last tenth max {max(samples[-tenth:]):.0f}, overall max {max(samples):.0f}")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
