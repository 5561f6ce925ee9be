#!/usr/bin/env python3
"""Checks our PNG decoder against the public PngSuite, by hand (not part of the test suite).

    swift build -c release        # or debug; pass the binary with --ldm
    /work/venv/ref/bin/python scripts/check_pngsuite.py [--ldm .build/release/ldm] [--suite DIR] [-v]

The PngSuite files are NOT in the repository; --suite points at a local copy (default
/work/shared/pngsuite; every *.png below it is used). Our decoder is reached through the CLI:
`ldm image convert IN OUT` decodes IN and writes OUT as 8-bit RGBA, which Pillow then reads
back losslessly.

For every valid file, our pixels are compared with
  1. Pillow: `Image.open(f).convert("RGBA")`; 16-bit files may differ by 1, since Pillow keeps
     the high byte (v >> 8) where we round (round(v * 255 / 65535), libpng's png_set_scale_16);
  2. when Pillow disagrees by more, the "standard decoder" values computed here from pypng's raw
     samples with the PNG specification's rules (the same rules as make_png_fixtures.py):
     low-bit gray scaled to 0..255, palette + tRNS, gray/RGB tRNS compared at the file's bit
     depth, 16 -> 8 bits by rounding, no gamma/sBIT/colour-space change.
Known Pillow departures this exposes: convert("RGBA") clips 16-bit gray (mode I;16) to 255
instead of scaling it; it compares a 2/4-bit gray tRNS level (or a 16-bit RGB tRNS colour) with
its already-scaled 8-bit samples, so those pixels stay opaque (a 16-bit tRNS of 65535 = white
happens to work).

Every x*.png (the suite's deliberately corrupt files) must make `ldm` exit with status 1 and one
`ldm: error: ...` line on stderr; a signal or any other status counts as a crash.
"""

import argparse
import collections
import glob
import os
import platform
import subprocess
import sys
import tempfile

import numpy as np
import PIL
import png  # pypng
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_png_fixtures import expected_rgba  # noqa: E402  (the same rules as the fixtures)


def standard_rgba(path):
    """8-bit RGBA by the specification's rules, from pypng's raw (unscaled) samples."""
    width, height, rows, info = png.Reader(filename=path).read()
    samples = np.array([list(row) for row in rows], dtype=np.int64)
    planes, depth = info["planes"], info["bitdepth"]
    samples = samples.reshape(height, width, planes)
    if ihdr_fields(path)[1] == 3:          # a PLTE in an RGB file is only a suggestion
        palette = [tuple(entry) for entry in info["palette"]]
        palette += [(0, 0, 0, 255)] * (256 - len(palette))   # out-of-range indices: black, opaque
        return expected_rgba(3, depth, samples, palette)
    colour_type = (0 if info["greyscale"] else 2) + (4 if info["alpha"] else 0)
    transparent = info.get("transparent")
    if transparent is not None and colour_type == 0:
        transparent = transparent[0]
    return expected_rgba(colour_type, depth, samples, transparent=transparent)


def ihdr_fields(path):
    with open(path, "rb") as f:
        header = f.read(33)
    return header[24], header[25]          # IHDR bit depth, colour type


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--ldm", default=None, help="the ldm binary (default: .build/release or debug)")
    parser.add_argument("--suite", default="/work/shared/pngsuite")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    ldm = args.ldm
    if ldm is None:
        candidates = [os.path.join(root, ".build", c, "ldm") for c in ("release", "debug")]
        ldm = next((c for c in candidates if os.path.exists(c)), candidates[0])

    files = sorted(glob.glob(os.path.join(args.suite, "**", "*.png"), recursive=True))
    print(f"ldm: {ldm}\nsuite: {args.suite} ({len(files)} files)")
    print(f"versions: python {platform.python_version()}, Pillow {PIL.__version__}, "
          f"numpy {np.__version__}, pypng {png.__version__}")

    counts = collections.Counter()
    notes = collections.defaultdict(list)
    errors = collections.Counter()
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "out.png")
        for path in files:
            name = os.path.relpath(path, args.suite)
            corrupt = os.path.basename(path).startswith("x")
            result = subprocess.run([ldm, "image", "convert", path, out], capture_output=True, text=True)
            stderr = result.stderr.strip()
            if corrupt:
                one_line = stderr.startswith("ldm: error: ") and "\n" not in stderr
                if result.returncode == 1 and one_line:
                    counts["corrupt: clean error"] += 1
                    errors[stderr.split(" is not a valid PNG: ")[-1]] += 1
                    if args.verbose:
                        print(f"  {name}: {stderr}")
                else:
                    counts["corrupt: CRASH or bad exit"] += 1
                    notes["corrupt: CRASH or bad exit"].append(f"{name} (status {result.returncode}: {stderr})")
                continue
            if result.returncode != 0:
                counts["valid: rejected"] += 1
                notes["valid: rejected"].append(f"{name}: {stderr}")
                continue
            ours = np.asarray(Image.open(out), dtype=np.int64)
            assert ours.ndim == 3 and ours.shape[2] == 4, name
            pillow = np.asarray(Image.open(path).convert("RGBA"), dtype=np.int64)
            standard = standard_rgba(path).astype(np.int64)
            diff = int(np.abs(ours - pillow).max())
            depth, colour_type = ihdr_fields(path)
            if np.array_equal(ours, standard):
                counts["valid: equal to the standard values"] += 1
            else:
                key = "valid: MISMATCH with the standard values"
                counts[key] += 1
                bad = tuple(np.argwhere(ours != standard)[0])
                notes[key].append(f"{name}: first at (y, x, c) = {bad}: ours {ours[bad]}, "
                                  f"standard {standard[bad]}, Pillow {pillow[bad]}")
            if diff == 0:
                counts["valid: equal to Pillow"] += 1
            elif diff <= 1 and depth == 16:
                counts["valid: 16-bit, within 1 of Pillow (Pillow truncates, we round)"] += 1
            else:
                key = "valid: differs from Pillow by more than 1"
                counts[key] += 1
                why = "see file"
                if depth == 16 and colour_type == 0:
                    why = "Pillow clips 16-bit gray to 255"
                elif colour_type == 0 and depth in (2, 4):
                    why = f"Pillow does not scale the {depth}-bit gray tRNS level, so no pixel turns transparent"
                elif depth == 16 and colour_type == 2:
                    why = "Pillow does not scale the 16-bit RGB tRNS colour"
                notes[key].append(f"{name} (max |diff| {diff}; {why})")

    print()
    for key in sorted(counts):
        print(f"{counts[key]:4d}  {key}")
        for line in notes.get(key, []):
            print(f"        {line}")
    print("\nerror messages for the corrupt files:")
    for message, count in errors.most_common():
        print(f"{count:4d}  {message}")
    failed = sum(v for k, v in counts.items() if "CRASH" in k or "MISMATCH" in k or "rejected" in k)
    # Every Pillow difference must be a known Pillow departure, and ours must equal the standard.
    print("\nresult:", "OK" if failed == 0 else f"{failed} PROBLEMS")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
