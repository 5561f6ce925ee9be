#!/usr/bin/env python3
"""Fixtures for the PyTorch checkpoint reader tests (Tests/LDMIOTests/Fixtures/ckpt/).

Run by hand with the torch virtualenv; the Swift tests never need Python:

    /work/venv/bin/python scripts/make_ckpt_fixtures.py [--out DIR]

writes, next to each other in the fixtures folder:

  plain.ckpt                     torch.save of a state dict (an nn.Module's OrderedDict, so it has
                                 the `_metadata` BUILD) plus extra tensors: float16 (with inf, -0
                                 and NaN), bfloat16, float64, int64, bool, float8 (e4m3fn, e5m2)
                                 and uint16 (_rebuild_tensor_v3), an nn.Parameter
                                 (_rebuild_parameter), a tensor with a Python attribute
                                 (_rebuild_from_type_v2), a transposed view, a permuted strided
                                 slice, an expanded view (stride 0), a 0-d scalar, an empty
                                 (0, 3) tensor, and two views of one storage (one at an offset)
  plain.expected.safetensors     every tensor of plain.ckpt, made contiguous, same dtype and shape
  plain_zip64.ckpt               plain.ckpt's entries re-packed with every zip64 field forced
                                 (zip64 extra fields, zip64 end-of-central-directory record)
  lightning.ckpt                 {"state_dict": {...}, "global_step": 7, "epoch": 0, ...} as
                                 PyTorch Lightning / CompVis checkpoints are, with optimizer states
  lightning.expected.safetensors the state_dict's tensors
  embedding.pt                   an AUTOMATIC1111 textual-inversion embedding
  embedding.expected.safetensors its one tensor, as `string_to_param.*`
  malicious_system.ckpt          torch.save of a dict holding an object whose __reduce__ is
                                 os.system (pickled as GLOBAL posix.system)
  malicious_exec.ckpt            the same with builtins.exec, pickle protocol 4 (STACK_GLOBAL,
                                 FRAME, MEMOIZE)
  malicious_inst.ckpt            a hand-written pickle in a torch zip that calls os.system
                                 through the INST opcode (protocol 0's call-a-class opcode)
  truncated.ckpt                 the first 60 % of plain.ckpt's bytes
  not_a_zip.ckpt                 a text file
  compressed.ckpt                plain.ckpt's entries re-packed with DEFLATE
  big_endian.ckpt                plain.ckpt with `byteorder` saying "big"
  legacy.pt                      torch.save(..., _use_new_zipfile_serialization=False)
  versions.json                  python, torch, safetensors and numpy versions

Every malicious fixture is checked to be real: the script loads it with
torch.load(weights_only=False), which runs the payload (a harmless `touch` of
/tmp/ldm-pwned-<kind>), asserts the file appeared, and removes it. It also checks that
torch.load(weights_only=True) refuses each malicious file and loads every good one to the same
tensors as the expectation.
"""

import argparse
import collections
import io
import json
import os
import pickle
import platform
import struct
import sys
import zipfile
import zlib

import numpy as np
import safetensors
import torch
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "Tests", "LDMIOTests", "Fixtures", "ckpt")


# ----------------------------------------------------------------------------------------------
# The good checkpoints


def plain_state_dict():
    torch.manual_seed(0)

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv_in = torch.nn.Conv2d(2, 3, 3)
            self.norm = torch.nn.GroupNorm(1, 3)

    sd = Tiny().state_dict()  # an OrderedDict with `_metadata`
    half = torch.randn(2, 5).half()
    half[0, 0] = float("inf")
    half[0, 1] = -0.0
    half[0, 2] = float("nan")
    half[1, 0] = 2.0 ** -20  # subnormal in binary16
    sd["model.half_weight"] = half
    sd["model.bf16_weight"] = torch.randn(3, 4).to(torch.bfloat16)
    sd["model.double_weight"] = torch.randn(4).double()
    sd["cond_stage_model.position_ids"] = torch.arange(7).unsqueeze(0)  # int64 [1, 7]
    sd["model.mask"] = torch.tensor([True, False, True])
    # dtypes that torch pickles as an UntypedStorage plus a dtype (_rebuild_tensor_v3)
    sd["model.float8_e4m3"] = (torch.randn(6) * 4).to(torch.float8_e4m3fn)
    sd["model.float8_e5m2"] = (torch.randn(6) * 4).to(torch.float8_e5m2)
    sd["model.uint16"] = torch.tensor([0, 1, 40000, 65535], dtype=torch.int32).to(torch.uint16)
    sd["model.parameter"] = torch.nn.Parameter(torch.randn(2, 2))
    with_attr = torch.randn(3)
    with_attr.note = "kept by _rebuild_from_type_v2"
    sd["model.with_attribute"] = with_attr
    sd["model.transposed"] = torch.randn(3, 5).t()  # shape (5, 3), stride (1, 5)
    sd["model.strided"] = torch.randn(4, 6, 2)[:, ::2, :].permute(2, 0, 1)  # (2, 4, 3)
    sd["model.expanded"] = torch.randn(3, 1).expand(3, 4)  # stride (1, 0)
    sd["model.scalar"] = torch.tensor(0.25)
    sd["model.empty"] = torch.zeros(0, 3)
    base = torch.randn(24)
    sd["shared.whole"] = base.view(4, 6)
    sd["shared.part"] = base[6:18].view(3, 4)  # storage offset 6
    assert not sd["model.transposed"].is_contiguous()
    assert not sd["model.strided"].is_contiguous()
    assert sd["model.expanded"].stride() == (1, 0)
    return sd


def lightning_checkpoint():
    torch.manual_seed(1)
    state = collections.OrderedDict()
    state["model.diffusion_model.time_embed.0.weight"] = torch.randn(8, 4)
    state["model.diffusion_model.time_embed.0.bias"] = torch.randn(8)
    state["first_stage_model.decoder.conv_in.bias"] = torch.randn(4).half()
    state["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(5).unsqueeze(0)
    return {
        "epoch": 0,
        "global_step": 7,
        "pytorch-lightning_version": "1.4.2",
        "state_dict": state,
        "callbacks": {},
        "optimizer_states": [{
            "state": {0: {"step": 7, "exp_avg": torch.zeros(8, 4), "exp_avg_sq": torch.zeros(8, 4)}},
            "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "weight_decay": 0.0, "params": [0]}],
        }],
        "lr_schedulers": [],
    }


def embedding_checkpoint():
    torch.manual_seed(2)
    return {
        "string_to_token": {"*": 265},
        "string_to_param": {"*": torch.randn(2, 32, requires_grad=True)},
        "name": "tiny",
        "step": 10,
        "sd_checkpoint": None,
        "sd_checkpoint_name": None,
    }


def expectation(tensors):
    """Contiguous, unshared copies with the same dtype and shape, for safetensors."""
    return {k: v.detach().contiguous().clone() for k, v in tensors.items()}


# ----------------------------------------------------------------------------------------------
# The malicious checkpoints


class SystemPayload:
    """Pickles as posix.system("touch /tmp/ldm-pwned-system")."""

    def __reduce__(self):
        return (os.system, ("touch /tmp/ldm-pwned-system",))


class ExecPayload:
    """Pickles as builtins.exec("open('/tmp/ldm-pwned-exec', 'w').close()")."""

    def __reduce__(self):
        import builtins
        return (builtins.exec, ("open('/tmp/ldm-pwned-exec', 'w').close()",))


# MARK, BINUNICODE argument, INST os.system (calls it with the marked arguments), STOP.
_INST_COMMAND = b"touch /tmp/ldm-pwned-inst"
INST_PICKLE = b"(X" + struct.pack("<I", len(_INST_COMMAND)) + _INST_COMMAND + b"ios\nsystem\n."


def torch_zip(entries, archive="archive"):
    """A zip laid out as torch.save lays it out (STORED entries under one folder)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
        for name, data in entries:
            z.writestr(f"{archive}/{name}", data)
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------------
# Re-packing


def entries_of(path):
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def repack(entries, compression=zipfile.ZIP_STORED):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as z:
        for name, data in entries:
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data, compress_type=compression)
    return buffer.getvalue()


def zip64(entries):
    """A STORED zip with every size and offset in zip64 extra fields and a zip64 end record,
    as a writer must produce for files over 4 GiB (zipfile only does this for large files)."""
    out = bytearray()
    central = bytearray()
    for name, data in entries:
        encoded = name.encode()
        crc = zlib.crc32(data)
        offset = len(out)
        local_extra = struct.pack("<HHQQ", 0x0001, 16, len(data), len(data))
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0x21, crc,
                           0xFFFFFFFF, 0xFFFFFFFF, len(encoded), len(local_extra))
        out += encoded + local_extra + data
        central_extra = struct.pack("<HHQQQ", 0x0001, 24, len(data), len(data), offset)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0x21, crc,
                               0xFFFFFFFF, 0xFFFFFFFF, len(encoded), len(central_extra), 0, 0, 0, 0,
                               0xFFFFFFFF)
        central += encoded + central_extra
    central_offset = len(out)
    out += central
    end64_offset = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(entries), len(entries),
                       len(central), central_offset)
    out += struct.pack("<IIQI", 0x07064B50, 0, end64_offset, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return bytes(out)


# ----------------------------------------------------------------------------------------------
# Checks against torch itself


def raw(t):
    """The tensor's bytes (bool as is), so NaN compares equal to the same NaN."""
    t = t.detach().contiguous().reshape(-1)
    return t if t.dtype == torch.bool else t.view(torch.uint8)


def assert_same(loaded, expected, what):
    assert set(loaded) == set(expected), (what, sorted(set(loaded) ^ set(expected)))
    for k, v in expected.items():
        got = loaded[k]
        assert got.dtype == v.dtype and got.shape == v.shape, (what, k)
        assert torch.equal(raw(got), raw(v)), (what, k)


def flatten(obj, prefix=""):
    out = {}
    for k, v in obj.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        elif isinstance(v, torch.Tensor):
            out[f"{prefix}{k}"] = v.detach().contiguous()
    return out


def check_malicious(path, marker):
    if os.path.exists(marker):
        os.remove(marker)
    try:
        torch.load(path, weights_only=True)
    except pickle.UnpicklingError as error:
        reason = next((line for line in str(error).splitlines()
                       if "GLOBAL" in line or "Unsupported operand" in line), str(error))
        print(f"  weights_only=True refuses {os.path.basename(path)}: {reason.strip()[:110]}")
    else:
        sys.exit(f"{path}: torch.load(weights_only=True) accepted a malicious file")
    try:
        torch.load(path, weights_only=False)  # runs the payload: touch MARKER
    except Exception:
        pass
    if not os.path.exists(marker):
        sys.exit(f"{path}: the payload did not run under torch.load(weights_only=False)")
    os.remove(marker)
    print(f"  weights_only=False runs the payload of {os.path.basename(path)} (created and removed {marker})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    p = lambda name: os.path.join(out, name)

    # (1) plain state dict, its zip64 twin, and its expectation.
    sd = plain_state_dict()
    torch.save(sd, p("plain.ckpt"))
    save_file(expectation(sd), p("plain.expected.safetensors"))
    with open(p("plain_zip64.ckpt"), "wb") as f:
        f.write(zip64(entries_of(p("plain.ckpt"))))

    # (2) Lightning-style.
    lightning = lightning_checkpoint()
    torch.save(lightning, p("lightning.ckpt"))
    save_file(expectation(lightning["state_dict"]), p("lightning.expected.safetensors"))

    # (3) A1111 embedding.
    embedding = embedding_checkpoint()
    torch.save(embedding, p("embedding.pt"))
    save_file(expectation({"string_to_param.*": embedding["string_to_param"]["*"]}), p("embedding.expected.safetensors"))

    # (4) Malicious.
    torch.save({"model.weight": torch.ones(2), "evil": SystemPayload()}, p("malicious_system.ckpt"))
    torch.save({"model.weight": torch.ones(2), "evil": ExecPayload()}, p("malicious_exec.ckpt"), pickle_protocol=4)
    with open(p("malicious_inst.ckpt"), "wb") as f:
        f.write(torch_zip([("data.pkl", INST_PICKLE), ("byteorder", b"little"), ("version", b"3\n")]))

    # (5), (6) and other broken files.
    with open(p("plain.ckpt"), "rb") as f:
        plain = f.read()
    with open(p("truncated.ckpt"), "wb") as f:
        f.write(plain[: len(plain) * 6 // 10])
    with open(p("not_a_zip.ckpt"), "wb") as f:
        f.write(b"This is a text file, not a PyTorch checkpoint.\n")
    with open(p("compressed.ckpt"), "wb") as f:
        f.write(repack(entries_of(p("plain.ckpt")), zipfile.ZIP_DEFLATED))
    with open(p("big_endian.ckpt"), "wb") as f:
        f.write(repack([(n, b"big" if n.endswith("/byteorder") else d) for n, d in entries_of(p("plain.ckpt"))]))
    torch.save({"w": torch.ones(2)}, p("legacy.pt"), _use_new_zipfile_serialization=False)

    # Checks: torch reads the good files to the expectation and refuses the malicious ones.
    print("checking with torch.load:")
    expected_plain = load_file(p("plain.expected.safetensors"))
    for name in ("plain.ckpt", "plain_zip64.ckpt"):
        assert_same(flatten(torch.load(p(name), weights_only=True)), expected_plain, name)
        print(f"  {name}: {len(expected_plain)} tensors equal to the expectation")
    assert_same(flatten(torch.load(p("lightning.ckpt"), weights_only=True)["state_dict"]),
                load_file(p("lightning.expected.safetensors")), "lightning.ckpt")
    assert_same(flatten(torch.load(p("embedding.pt"), weights_only=True)),
                load_file(p("embedding.expected.safetensors")), "embedding.pt")
    print("  lightning.ckpt, embedding.pt: equal to the expectation")
    check_malicious(p("malicious_system.ckpt"), "/tmp/ldm-pwned-system")
    check_malicious(p("malicious_exec.ckpt"), "/tmp/ldm-pwned-exec")
    check_malicious(p("malicious_inst.ckpt"), "/tmp/ldm-pwned-inst")

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
    }
    with open(p("versions.json"), "w") as f:
        json.dump(versions, f, indent=2)
        f.write("\n")
    total = sum(os.path.getsize(p(n)) for n in os.listdir(out))
    print(f"wrote {len(os.listdir(out))} files, {total} bytes, to {out}")


if __name__ == "__main__":
    main()
