#!/usr/bin/env python3
"""Makes the PNG test fixtures in Tests/LDMIOTests/Fixtures/png/ (run by hand, not by tests).

    /work/venv/ref/bin/pip install pypng        # once
    /work/venv/ref/bin/python scripts/make_png_fixtures.py [OUTPUT_DIR]

Every image is written by pypng (which can write each colour type and bit depth, tRNS, and
Adam7 interlacing) from numpy arrays made here. For each one the script stores the 8-bit RGBA
pixels a standard decoder must give, as raw bytes in `<name>.rgba` (height * width * 4), computed
from those same arrays, never by decoding a file with our code:

    gray, bit depth b < 8:   v8 = v * 255 / (2^b - 1)
    16-bit samples:          v8 = round(v16 * 255 / 65535)  (no ties: v16 / 257 is never k + 0.5)
    palette:                 RGB = PLTE[i], A = tRNS[i], 255 past the end of tRNS
    gray / RGB with tRNS:    A = 0 where the sample(s) equal the tRNS value at the file's own
                             bit depth, else 255 (16-bit fixtures include a pixel that matches
                             only in its high byte, which must stay opaque)
    no alpha:                A = 255; gray: R = G = B
    gAMA, cHRM, sRGB, bKGD, pHYs, sBIT, tIME: ignored (no colour change)

As a cross-check, Pillow's decode (`Image.open(f).convert("RGBA")`) must equal the expected
pixels for the fixtures where Pillow follows the specification. Its known departures are handled
so: it keeps only the high byte of 16-bit samples (16-bit fixtures are checked to within 1); its
convert() clips 16-bit gray to 255 (those are checked from its raw I;16 samples); it compares a
16-bit RGB or 2/4-bit gray tRNS value with its 8-bit samples without scaling the value (those
are checked for colour only); it refuses any chunk with a bad CRC (text_bad_crc is skipped).

Corrupt files (bad CRCs, truncations, not a PNG, empty, bad IHDR, limits, bad zlib data...) are
made by editing the bytes of a valid fixture; the manifest lists a substring the decoder's error
message must contain (libpng's wording, matched case-insensitively).

manifest.json records all of this plus the library versions used.
"""

import io
import json
import os
import struct
import sys
import zlib

import numpy as np
import png  # pypng
import PIL
from PIL import Image

SMALL = (7, 5)     # width, height of non-interlaced fixtures
LARGE = (13, 9)    # interlaced fixtures: every Adam7 pass is non-empty at this size

COLOUR_TYPES = {  # name: (PNG colour type, allowed bit depths)
    "g": (0, [1, 2, 4, 8, 16]),
    "rgb": (2, [8, 16]),
    "p": (3, [1, 2, 4, 8]),
    "ga": (4, [8, 16]),
    "rgba": (6, [8, 16]),
}
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


# --------------------------------------------------------------------------------------------
# Expected decoding, straight from the arrays
# --------------------------------------------------------------------------------------------

def to8(values, depth):
    """Scales samples of the given bit depth to 0..255 as the PNG specification defines."""
    v = np.asarray(values, dtype=np.int64)
    if depth == 16:
        return ((2 * v * 255 + 65535) // (2 * 65535)).astype(np.uint8)   # round(v * 255 / 65535)
    if depth == 8:
        return v.astype(np.uint8)
    return (v * 255 // (2 ** depth - 1)).astype(np.uint8)                 # exact for 1, 2, 4


def expected_rgba(colour_type, depth, samples, palette=None, transparent=None):
    """samples: (h, w, channels) array of the raw sample values written to the file."""
    h, w, _ = samples.shape
    out = np.zeros((h, w, 4), dtype=np.uint8)
    out[..., 3] = 255
    if colour_type == 3:
        rgb = np.array([entry[:3] for entry in palette], dtype=np.uint8)
        alpha = np.array([entry[3] if len(entry) == 4 else 255 for entry in palette], dtype=np.uint8)
        index = samples[..., 0]
        out[..., :3] = rgb[index]
        out[..., 3] = alpha[index]
        return out
    if colour_type in (0, 4):
        gray = to8(samples[..., 0], depth)
        out[..., 0] = out[..., 1] = out[..., 2] = gray
        if colour_type == 4:
            out[..., 3] = to8(samples[..., 1], depth)
        elif transparent is not None:
            out[..., 3] = np.where(samples[..., 0] == transparent, 0, 255)
        return out
    out[..., :3] = to8(samples[..., :3], depth)
    if colour_type == 6:
        out[..., 3] = to8(samples[..., 3], depth)
    elif transparent is not None:
        match = np.all(samples[..., :3] == np.array(transparent), axis=-1)
        out[..., 3] = np.where(match, 0, 255)
    return out


# --------------------------------------------------------------------------------------------
# Sample arrays
# --------------------------------------------------------------------------------------------

def make_samples(rng, colour_type, depth, size, palette_size=None):
    w, h = size
    channels = CHANNELS[colour_type]
    top = (palette_size if colour_type == 3 else 2 ** depth)
    samples = rng.integers(0, top, size=(h, w, channels), dtype=np.int64)
    flat = samples.reshape(-1, channels)
    # Make sure the extremes (and, at low depths, every value) occur.
    values = list(range(top)) if top <= 16 else [0, top - 1]
    if depth == 16:
        # Rounding boundaries of round(v / 257): 257k + 128 rounds down, 257k + 129 rounds up.
        values += [257 * 3 + 128, 257 * 3 + 129, 257 * 200 + 128, 257 * 200 + 129, 128, 129, 65407]
    for i, value in enumerate(values[: flat.shape[0]]):
        flat[i, :] = value
    return samples


def make_palette(rng, depth, alpha_entries):
    """2^depth entries for depth < 8 (200 for depth 8); the first alpha_entries carry alpha
    (pypng writes tRNS for a prefix of the palette)."""
    count = 200 if depth == 8 else 2 ** depth
    colours = rng.integers(0, 256, size=(count, 3))
    palette = []
    for i in range(count):
        r, g, b = (int(c) for c in colours[i])
        if i < alpha_entries:
            palette.append((r, g, b, int(rng.integers(0, 256)) if i > 1 else (0 if i == 0 else 128)))
        else:
            palette.append((r, g, b))
    return palette


def rows_for_pypng(samples):
    h, w, c = samples.shape
    return [list(map(int, samples[y].reshape(w * c))) for y in range(h)]


def write_with_pypng(colour_type, depth, samples, interlace, palette=None, transparent=None):
    h, w, _ = samples.shape
    kwargs = dict(width=w, height=h, bitdepth=depth, interlace=interlace)
    if colour_type == 3:
        kwargs["palette"] = palette
    else:
        kwargs["greyscale"] = colour_type in (0, 4)
        kwargs["alpha"] = colour_type in (4, 6)
        if transparent is not None:
            kwargs["transparent"] = transparent
    buffer = io.BytesIO()
    png.Writer(**kwargs).write(buffer, rows_for_pypng(samples))
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# Chunk surgery
# --------------------------------------------------------------------------------------------

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def split_chunks(data):
    """[(offset, kind, payload)] of a well-formed PNG."""
    assert data[:8] == SIGNATURE
    chunks, offset = [], 8
    while offset < len(data):
        length = struct.unpack(">I", data[offset:offset + 4])[0]
        chunks.append((offset, data[offset + 4:offset + 8], data[offset + 8:offset + 8 + length]))
        offset += 12 + length
    return chunks


def rebuild(data, before_idat=(), after_idat=()):
    """Re-assembles a PNG with extra chunks (bytes) before the first IDAT and before IEND."""
    out = bytearray(SIGNATURE)
    seen_idat = False
    for _, kind, payload in split_chunks(data):
        if kind == b"IDAT" and not seen_idat:
            out += b"".join(before_idat)
            seen_idat = True
        if kind == b"IEND":
            out += b"".join(after_idat)
        out += chunk(kind, payload)
    return bytes(out)


def text_chunk(keyword, text):                      # tEXt: Latin-1
    return chunk(b"tEXt", keyword.encode("latin-1") + b"\0" + text.encode("latin-1"))


def ztxt_chunk(keyword, text):                      # zTXt: Latin-1, zlib
    return chunk(b"zTXt", keyword.encode("latin-1") + b"\0\0" + zlib.compress(text.encode("latin-1")))


def itxt_chunk(keyword, text, compressed=False, language="", translated=""):  # iTXt: UTF-8
    body = text.encode("utf-8")
    if compressed:
        body = zlib.compress(body)
    return chunk(b"iTXt", keyword.encode("latin-1") + b"\0" + bytes([1 if compressed else 0, 0])
                 + language.encode("ascii") + b"\0" + translated.encode("utf-8") + b"\0" + body)


def with_bad_crc(data, kind):
    for offset, k, payload in split_chunks(data):
        if k == kind:
            position = offset + 8 + len(payload)
            corrupt = bytearray(data)
            corrupt[position] ^= 0xFF
            return bytes(corrupt)
    raise ValueError(kind)


def replace_ihdr(data, **fields):
    (_, kind, payload) = split_chunks(data)[0]
    assert kind == b"IHDR"
    w, h, depth, colour, comp, filt, interlace = struct.unpack(">IIBBBBB", payload)
    values = dict(width=w, height=h, depth=depth, colour=colour, interlace=interlace)
    values.update(fields)
    ihdr = struct.pack(">IIBBBBB", values["width"], values["height"], values["depth"],
                       values["colour"], comp, filt, values["interlace"])
    return SIGNATURE + chunk(b"IHDR", ihdr) + data[8 + 25:]


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "Tests/LDMIOTests/Fixtures/png")
    os.makedirs(out_dir, exist_ok=True)
    for name in os.listdir(out_dir):
        if name.endswith((".png", ".rgba")) or name == "manifest.json":
            os.remove(os.path.join(out_dir, name))

    rng = np.random.default_rng(20240611)
    images, corrupt = [], []
    pillow_exact, pillow_within1, pillow_skipped, pillow_rgb_only, pillow_raw16 = 0, 0, [], [], []

    def save(name, data, colour_type, depth, interlaced, expected, texts=(), trns=False, pillow=True):
        nonlocal pillow_exact, pillow_within1
        h, w, _ = expected.shape
        with open(os.path.join(out_dir, name + ".png"), "wb") as f:
            f.write(data)
        with open(os.path.join(out_dir, name + ".rgba"), "wb") as f:
            f.write(expected.astype(np.uint8).tobytes())
        images.append(dict(file=name + ".png", rgba=name + ".rgba", width=w, height=h,
                           colourType=colour_type, bitDepth=depth, interlaced=interlaced,
                           texts=[dict(keyword=k, text=t, kind=kind) for (k, t, kind) in texts]))
        # Cross-check against Pillow where Pillow is a faithful reference.
        if not pillow:
            pillow_skipped.append(name)
            return
        if depth == 16 and colour_type == 0:
            # Pillow's convert("RGBA") clips 16-bit gray to 255; check its raw I;16 samples
            # instead (scaled here, and tRNS applied here).
            raw = Image.open(io.BytesIO(data))
            samples16 = np.asarray(raw, dtype=np.int64)
            gray = to8(samples16, 16).astype(np.int64)
            assert (gray == expected[..., 0]).all(), name
            if trns:
                alpha = np.where(samples16 == raw.info["transparency"], 0, 255)
                assert (alpha == expected[..., 3]).all(), name
            pillow_raw16.append(name)
            return
        pil = np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"), dtype=np.int64)
        if trns and (depth == 16 or (colour_type == 0 and depth in (2, 4))):
            # Pillow compares its 8-bit samples with the unscaled tRNS value (a 16-bit RGB
            # colour, or a 2/4-bit gray level), so those pixels never become transparent:
            # compare colour only.
            pil, expected = pil[..., :3], expected[..., :3]
            pillow_rgb_only.append(name)
        diff = np.abs(pil - expected.astype(np.int64)).max()
        if depth == 16:
            assert diff <= 1, (name, diff)
            pillow_within1 += 1
        else:
            assert diff == 0, (name, diff)
            pillow_exact += 1

    # Every colour type x every bit depth, plain (7x5) and Adam7 (13x9).
    for prefix, (colour_type, depths) in COLOUR_TYPES.items():
        for depth in depths:
            for interlace in (False, True):
                size = LARGE if interlace else SMALL
                palette = make_palette(rng, depth, 0) if colour_type == 3 else None
                samples = make_samples(rng, colour_type, depth, size, len(palette) if palette else None)
                data = write_with_pypng(colour_type, depth, samples, interlace, palette)
                name = f"{prefix}{depth}" + ("_i" if interlace else "")
                save(name, data, colour_type, depth, interlace,
                     expected_rgba(colour_type, depth, samples, palette))

    # tRNS: palette alpha, gray and RGB transparent colours.
    trns_cases = [("p", 3, d, False) for d in (1, 2, 4, 8)] + [("p", 3, 8, True)]
    trns_cases += [("g", 0, d, False) for d in (1, 2, 4, 8, 16)] + [("g", 0, 16, True), ("g", 0, 2, True)]
    trns_cases += [("rgb", 2, d, False) for d in (8, 16)] + [("rgb", 2, 8, True), ("rgb", 2, 16, True)]
    for prefix, colour_type, depth, interlace in trns_cases:
        size = LARGE if interlace else SMALL
        palette, transparent = None, None
        if colour_type == 3:
            # tRNS shorter than the palette: entries past its end stay opaque.
            palette = make_palette(rng, depth, alpha_entries={1: 1, 2: 3, 4: 9, 8: 100}[depth])
            samples = make_samples(rng, colour_type, depth, size, len(palette))
        else:
            samples = make_samples(rng, colour_type, depth, size)
            flat = samples.reshape(-1, samples.shape[-1])
            if colour_type == 0:
                # Low depths: a middle value, so comparing before or after scaling differs.
                transparent = {1: 1, 2: 2, 4: 9}.get(depth, int(flat[-1, 0]))
                flat[-3:, 0] = transparent
                if depth == 16:
                    # Same high byte as the transparent value, different low byte: stays opaque.
                    flat[-4, 0] = transparent ^ 0x0001
            else:
                transparent = tuple(int(v) for v in flat[-1])
                flat[-3:] = transparent
                flat[-4] = (transparent[0], transparent[1], transparent[2] ^ 1)   # near miss
                if depth == 16:
                    flat[-5] = (transparent[0], transparent[1] ^ 0x0001, transparent[2])
        data = write_with_pypng(colour_type, depth, samples, interlace, palette, transparent)
        assert b"tRNS" in data
        name = f"{prefix}{depth}_trns" + ("_i" if interlace else "")
        save(name, data, colour_type, depth, interlace,
             expected_rgba(colour_type, depth, samples, palette, transparent), trns=True)

    # Ancillary chunks that must not change the pixels (no gamma or colour-space handling).
    samples = make_samples(rng, 2, 8, SMALL)
    base = write_with_pypng(2, 8, samples, False)
    extra = [chunk(b"gAMA", struct.pack(">I", 100000)),                       # gamma 1.0
             chunk(b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000)),
             chunk(b"sBIT", bytes([5, 6, 5])),
             chunk(b"bKGD", struct.pack(">3H", 255, 0, 0)),
             chunk(b"pHYs", struct.pack(">IIB", 2835, 2835, 1)),
             chunk(b"tIME", struct.pack(">HBBBBB", 2024, 6, 11, 12, 0, 0))]
    save("ancillary_ignored", rebuild(base, before_idat=extra), 2, 8, False,
         expected_rgba(2, 8, samples))

    # Text chunks: tEXt (Latin-1), zTXt (Latin-1), iTXt plain (CJK, emoji) and compressed,
    # and a tEXt after IDAT.
    samples = make_samples(rng, 2, 8, SMALL)
    base = write_with_pypng(2, 8, samples, False)
    latin1 = "Café crème brûlée: ½ × ¼, ÿ ß Ø © ¡¿ «»"
    long_latin1 = "Zürich, line 1\nline 2; " * 8
    cjk = "東京の夜景、桜 🌸🚀 ünïcödé — “quotes”"
    compressed_utf8 = "Описание: 안녕하세요 👋🏽 " * 5
    texts = [("Title", latin1, "tEXt"), ("Comment", long_latin1, "zTXt"),
             ("parameters", cjk, "iTXt"), ("Description", compressed_utf8, "iTXt"),
             ("Software", "pypng fixture (after IDAT)", "tEXt")]
    data = rebuild(base,
                   before_idat=[text_chunk("Title", latin1), ztxt_chunk("Comment", long_latin1),
                                itxt_chunk("parameters", cjk, language="ja", translated="パラメータ"),
                                itxt_chunk("Description", compressed_utf8, compressed=True)],
                   after_idat=[text_chunk("Software", "pypng fixture (after IDAT)")])
    save("text_chunks", data, 2, 8, False, expected_rgba(2, 8, samples), texts)

    # An ancillary chunk with a bad CRC is dropped with a warning; the image still decodes.
    data = rebuild(base, before_idat=[text_chunk("Good", "kept"), text_chunk("Bad", "dropped")])
    data = bytearray(data)
    bad = data.find(b"tEXtBad\0")
    crc_at = bad + 4 + len(b"Bad\0dropped")
    data[crc_at] ^= 0xFF
    # (Pillow refuses any chunk with a bad CRC, so it is not asked about this one.)
    save("text_bad_crc", bytes(data), 2, 8, False, expected_rgba(2, 8, samples), [("Good", "kept", "tEXt")],
         pillow=False)

    # ---- Corrupt files: each must give an error, never a crash. ----
    good = write_with_pypng(0, 8, make_samples(rng, 0, 8, SMALL), False)
    chunks = split_chunks(good)
    idat_offset = next(offset for offset, kind, _ in chunks if kind == b"IDAT")
    iend_offset = next(offset for offset, kind, _ in chunks if kind == b"IEND")

    def bad(name, data, error):
        with open(os.path.join(out_dir, name + ".png"), "wb") as f:
            f.write(data)
        corrupt.append(dict(file=name + ".png", error=error))

    bad("bad_crc_ihdr", with_bad_crc(good, b"IHDR"), "CRC error")
    bad("bad_crc_idat", with_bad_crc(good, b"IDAT"), "CRC error")
    bad("bad_crc_iend", with_bad_crc(good, b"IEND"), "CRC error")
    bad("truncated_4", good[:4], "truncated")
    bad("truncated_8", good[:8], "truncated")
    bad("truncated_20", good[:20], "truncated")
    bad("truncated_33", good[:33], "truncated")
    bad("truncated_idat", good[:idat_offset + 8 + 10], "truncated")
    bad("truncated_no_iend", good[:iend_offset], "truncated")
    bad("not_png", b"This is a plain text file, not a PNG image.\n", "Not a PNG file")
    bad("empty", b"", "empty")
    bad("short_garbage", b"GIF", "Not a PNG file")
    bad("jpeg_magic", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(32), "Not a PNG file")
    bad("bad_ihdr_colour_type", replace_ihdr(good, colour=1), "Invalid IHDR data")
    bad("bad_ihdr_bit_depth", replace_ihdr(good, depth=3), "Invalid IHDR data")
    bad("bad_ihdr_zero_width", replace_ihdr(good, width=0), "Invalid IHDR data")
    bad("bad_ihdr_palette16", replace_ihdr(good, colour=3, depth=16), "Invalid IHDR data")
    bad("bad_ihdr_interlace", replace_ihdr(good, interlace=2), "Invalid IHDR data")
    bad("too_wide", replace_ihdr(good, width=(1 << 20) + 1, height=1), "exceeds user limit")
    bad("too_many_pixels", replace_ihdr(good, width=30000, height=30000), "too large")
    idat = next(payload for _, kind, payload in chunks if kind == b"IDAT")
    broken = bytearray(idat)
    broken[-2] ^= 0xFF                                           # Adler-32 checksum
    bad("bad_adler32", rebuild_replace(good, b"IDAT", bytes(broken)), "IDAT")
    bad("bad_zlib_header", rebuild_replace(good, b"IDAT", b"\x00\x00" + idat[2:]), "IDAT")
    bad("short_image_data", rebuild_replace(good, b"IDAT", zlib.compress(bytes(10))), "image data")
    bad("palette_missing", replace_ihdr(good, colour=3), "PLTE")
    bad("unknown_critical_chunk", rebuild(good, before_idat=[chunk(b"ABCD", b"xyz")]), "unhandled critical chunk")
    bad("huge_chunk_length", good[:33] + struct.pack(">I", 0x7FFFFFF0) + b"tEXt" + b"k\0v", "truncated")

    import platform
    manifest = dict(
        generator="scripts/make_png_fixtures.py",
        versions=dict(python=platform.python_version(), numpy=np.__version__,
                      pypng=png.__version__, pillow=PIL.__version__),
        rules="expected .rgba = 8-bit RGBA computed from the written arrays (see the script's docstring)",
        images=images, corrupt=corrupt)
    with open(os.path.join(out_dir, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, ensure_ascii=False, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(out_dir, n)) for n in os.listdir(out_dir))
    print(f"{len(images)} images, {len(corrupt)} corrupt files, {total} bytes in {out_dir}")
    print(f"Pillow cross-check: {pillow_exact} exact, {pillow_within1} 16-bit within 1, "
          f"raw 16-bit gray samples (Pillow clips them in convert): {', '.join(pillow_raw16)}; "
          f"skipped (Pillow rejects bad ancillary CRCs): {', '.join(pillow_skipped)}; "
          f"colour only (Pillow does not scale the tRNS value): {', '.join(pillow_rgb_only)}")
    print("versions:", manifest["versions"])


def rebuild_replace(data, kind, new_payload):
    """The same PNG with the (single) chunk of this kind given a new payload and a valid CRC."""
    out = bytearray(SIGNATURE)
    for _, k, payload in split_chunks(data):
        out += chunk(k, new_payload if k == kind else payload)
    return bytes(out)


if __name__ == "__main__":
    main()
