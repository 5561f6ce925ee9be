#!/usr/bin/env python3
"""Fixtures for the safetensors reader/writer tests (Tests/LDMIOTests/Fixtures/safetensors/).

Run by hand with the reference virtualenv; the Swift tests never need Python:

    /work/venv/ref/bin/python scripts/make_safetensors_fixtures.py
        writes, next to each other in the fixtures folder:
          sample.safetensors          tensors of many dtypes (F32, F16, BF16, F64, I32, I64, BOOL,
                                      U8), a 0-d scalar, an empty (0, 3) tensor, metadata
          sample.expected.json        per tensor: dtype, shape, data_offsets and the values as
                                      float32 ("floats") or exact integers ("ints", as strings)
          metadata_only.safetensors   no tensors, only __metadata__
          no_tensors.safetensors      no tensors, no metadata ("{}" padded)
          writer_input.json           what the Swift writer test writes: input float32 values
                                      and the values stored after rounding to F16/BF16 as
                                      numpy computes them (round to nearest, ties to even)
          VERSIONS.txt                library versions used

    /work/venv/ref/bin/python scripts/make_safetensors_fixtures.py --verify FILE [--expected JSON]
        loads FILE (a file written by our Swift SafeTensorsWriter, e.g. the committed
        writer_reference.safetensors) with PyPI safetensors -- safetensors.deserialize (raw),
        safetensors.numpy.load_file (all numpy dtypes) and safetensors.torch.load_file (BF16,
        when torch is installed) -- compares every value and the metadata with the expected JSON
        (default: writer_input.json beside FILE), and checks that PyPI's serializer writes the
        same bytes for the same tensors. Exits non-zero on any difference.

Regenerating changes sample.safetensors' bytes (not its content): PyPI orders a metadata map of
more than one key by hash. All files are written by PyPI safetensors' serializer (`serialize_file`, the function behind
`safetensors.numpy.save_file`); BF16, which numpy lacks, is handed to it as raw uint16 bits.
"""

import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import safetensors
from safetensors import TensorSpec, deserialize, serialize, serialize_file
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "Tests", "LDMIOTests", "Fixtures", "safetensors")


def bf16_bits(values):
    """float32 -> bfloat16 bits, round to nearest, ties to even (NaN -> quiet NaN)."""
    x = np.asarray(values, dtype=np.float32)
    bits = x.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(x)
    rounded[nan] = ((bits[nan] >> 16).astype(np.uint16) | 0x0040)
    return rounded


def bf16_to_f32(bits):
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def float_json(values):
    """float32 values as JSON numbers (exact: repr of the float64 equal to each float32);
    infinities and NaN as the strings "inf", "-inf", "nan"."""
    out = []
    for v in np.asarray(values, dtype=np.float32).reshape(-1):
        v = float(v)
        if math.isnan(v):
            out.append("nan")
        elif math.isinf(v):
            out.append("inf" if v > 0 else "-inf")
        else:
            out.append(v)
    return out


def json_floats(values):
    return np.array([float(v) for v in values], dtype=np.float32)


class Spec:
    """Tensors to hand to serialize/serialize_file, keeping their buffers alive."""

    def __init__(self):
        self.arrays = {}
        self.specs = {}

    def add(self, name, array, dtype_name=None):
        array = np.array(array, order="C", copy=True)  # (ascontiguousarray would make a 0-d array 1-d)
        self.arrays[name] = array
        self.specs[name] = TensorSpec(
            dtype=dtype_name or array.dtype.name,
            shape=list(array.shape),
            data_ptr=array.ctypes.data,
            data_len=array.nbytes,
        )


def read_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))


def make_sample(out):
    s = Spec()
    expected = {}

    def record(name, dtype, values=None, ints=None):
        arr = s.arrays[name]
        entry = {"dtype": dtype, "shape": list(arr.shape)}
        if values is not None:
            entry["floats"] = float_json(values)
        if ints is not None:
            entry["ints"] = [str(int(v)) for v in np.asarray(ints).reshape(-1)]
        expected[name] = entry

    f32 = np.array([[0.1, -1.5, 3.25], [1e-40, -0.0, 65504.0]], dtype=np.float32)
    s.add("weight.f32", f32)
    record("weight.f32", "F32", f32)

    specials = np.array([np.inf, -np.inf, np.nan, 3.4028235e38], dtype=np.float32)
    s.add("specials.f32", specials)
    record("specials.f32", "F32", specials)

    f16 = np.array([[0.1, -2.5, 65504, 6e-8], [-0.0, np.inf, 1 / 3, 1000.5]], dtype=np.float16)
    s.add("weight.f16", f16)
    record("weight.f16", "F16", f16.astype(np.float32))

    bf = bf16_bits([0.1, -2.5, 3.14159, 1e30, 1e-39, -np.inf])
    s.add("weight.bf16", bf, "bfloat16")
    record("weight.bf16", "BF16", bf16_to_f32(bf))

    f64 = np.array([0.1, -1e-3], dtype=np.float64)
    s.add("double.f64", f64)
    record("double.f64", "F64", f64.astype(np.float32))

    i32 = np.array([[0, -1], [2147483647, -2147483648]], dtype=np.int32)
    s.add("ids.i32", i32)
    record("ids.i32", "I32", i32.astype(np.float32), ints=i32)

    i64 = np.array([0, -9223372036854775808, 9007199254740993], dtype=np.int64)
    s.add("ids.i64", i64)
    record("ids.i64", "I64", i64.astype(np.float32), ints=i64)

    mask = np.array([True, False, True])
    s.add("mask.bool", mask)
    record("mask.bool", "BOOL", mask.astype(np.float32), ints=mask.astype(np.int64))

    u8 = np.array([0, 255], dtype=np.uint8)
    s.add("bytes.u8", u8)
    record("bytes.u8", "U8", u8.astype(np.float32), ints=u8)

    scalar = np.array(2.5, dtype=np.float32)
    s.add("scalar", scalar)
    record("scalar", "F32", scalar)

    empty = np.zeros((0, 3), dtype=np.float32)
    s.add("empty", empty)
    record("empty", "F32", empty)

    metadata = {"format": "np", "note": 'caf\u00e9 "quoted" \\ / tab\t newline\n'}
    path = os.path.join(out, "sample.safetensors")
    serialize_file(s.specs, path, metadata=metadata)

    header = read_header(path)
    order = sorted((k for k in header if k != "__metadata__"), key=lambda k: tuple(header[k]["data_offsets"]))
    for name in expected:
        expected[name]["data_offsets"] = header[name]["data_offsets"]
    with open(os.path.join(out, "sample.expected.json"), "w") as f:
        json.dump({"file": "sample.safetensors", "order": order, "metadata": metadata, "tensors": expected},
                  f, indent=1, ensure_ascii=False)
        f.write("\n")

    serialize_file({}, os.path.join(out, "metadata_only.safetensors"), metadata={"format": "pt"})
    serialize_file({}, os.path.join(out, "no_tensors.safetensors"), metadata=None)


def writer_input():
    """The tensors the Swift writer test writes, with the values PyPI must read back."""
    tensors = []

    def add(name, dtype, shape, inputs, stored=None, ints=None):
        entry = {"name": name, "dtype": dtype, "shape": shape}
        if ints is not None:
            entry["ints"] = [str(v) for v in ints]
        else:
            entry["input"] = float_json(inputs)
            entry["stored"] = float_json(stored)
        tensors.append(entry)

    # Ties and overflow exercise round-to-nearest-even:
    # F16: 1 + 2^-11 is halfway between 1 and 1 + 2^-10 -> 1 (even); 1 + 3·2^-11 -> 1 + 2^-9;
    #      65519 -> 65504, 65520 -> inf; 1e-8 -> 0 (below half the smallest subnormal).
    f16_in = np.array([1 + 2**-11, 1 + 3 * 2**-11, 0.1, -2.5, 65519, 65520, 1e-8, 6e-8], dtype=np.float32)
    with np.errstate(over="ignore"):
        f16_stored = f16_in.astype(np.float16).astype(np.float32)
    add("a.f16", "F16", [2, 4], f16_in, f16_stored)
    # BF16: 1 + 2^-8 -> 1 (even); 1 + 3·2^-8 -> 1 + 2^-6; 3.4e38 -> inf; NaN stays NaN.
    bf_in = np.array([1 + 2**-8, 1 + 3 * 2**-8, 0.1, -3.14159, 3.4e38, np.nan], dtype=np.float32)
    add("m.bf16", "BF16", [3, 2], bf_in, bf16_to_f32(bf16_bits(bf_in)))
    f32_in = np.array([0.1, -1.5, 1e-40, -0.0, np.inf, 12345.678], dtype=np.float32)
    add("z.f32", "F32", [6], f32_in, f32_in)
    add("A.upper", "F32", [1, 2], np.array([1, 2], np.float32), np.array([1, 2], np.float32))
    add("\u00fcn\u00efcode", "F32", [2], np.array([5, 6], np.float32), np.array([5, 6], np.float32))
    add("scalar", "F32", [], np.array([7.5], np.float32), np.array([7.5], np.float32))
    add("empty", "F16", [0, 4], np.zeros(0, np.float32), np.zeros(0, np.float32))
    add("b.i32", "I32", [3], None, ints=[0, -7, 2147483647])
    add("c.i64", "I64", [2, 1], None, ints=[-9223372036854775808, 9007199254740993])
    return {
        "reference": "writer_reference.safetensors",
        # One key, so PyPI's serializer (which orders a larger map by hash) must match byte for byte.
        "metadata": {"note": 'caf\u00e9 "q" \\ / \t\n\u0001'},
        "tensors": tensors,
    }


def versions_text():
    return (
        f"python {sys.version.split()[0]}\n"
        f"safetensors {safetensors.__version__}\n"
        f"numpy {np.__version__}\n"
        "written by scripts/make_safetensors_fixtures.py\n"
    )


def decode(dtype, data):
    if dtype == "F32":
        return np.frombuffer(data, np.float32)
    if dtype == "F16":
        return np.frombuffer(data, np.float16).astype(np.float32)
    if dtype == "BF16":
        return bf16_to_f32(np.frombuffer(data, np.uint16))
    if dtype == "I32":
        return np.frombuffer(data, np.int32)
    if dtype == "I64":
        return np.frombuffer(data, np.int64)
    raise ValueError(f"unexpected dtype {dtype}")


def same_floats(a, b):
    a = np.asarray(a, np.float32).reshape(-1)
    b = np.asarray(b, np.float32).reshape(-1)
    return a.shape == b.shape and bool(np.all((a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))))


def verify(path, expected_path):
    with open(expected_path) as f:
        expected = json.load(f)
    problems = []
    blob = open(path, "rb").read()

    # 1. The raw reader: full validation by the reference parser.
    raw = dict(deserialize(blob))
    names = [t["name"] for t in expected["tensors"]]
    if sorted(raw) != sorted(names):
        problems.append(f"tensor names {sorted(raw)} != {sorted(names)}")
    arrays = {}
    for t in expected["tensors"]:
        r = raw.get(t["name"])
        if r is None:
            continue
        if r["dtype"] != t["dtype"] or list(r["shape"]) != t["shape"]:
            problems.append(f"{t['name']}: {r['dtype']} {r['shape']} != {t['dtype']} {t['shape']}")
            continue
        values = decode(t["dtype"], bytes(r["data"]))
        if "ints" in t:
            ok = [int(v) for v in values] == [int(v) for v in t["ints"]]
        else:
            ok = same_floats(values, json_floats(t["stored"]))
        if not ok:
            problems.append(f"{t['name']}: values differ (deserialize)")
        arrays[t["name"]] = (t["dtype"], np.frombuffer(bytes(r["data"]), np.uint8), t["shape"])

    # 2. safetensors.numpy.load_file (numpy has no bfloat16: those tensors go through torch).
    has_bf16 = any(t["dtype"] == "BF16" for t in expected["tensors"])
    try:
        loaded = load_file(path)
    except TypeError:
        from safetensors import safe_open
        with safe_open(path, "np") as f:
            loaded = {k: f.get_tensor(k) for k in f.keys() if raw[k]["dtype"] != "BF16"}
    for t in expected["tensors"]:
        if t["dtype"] == "BF16":
            continue
        a = loaded[t["name"]]
        if list(a.shape) != t["shape"]:
            problems.append(f"{t['name']}: numpy shape {a.shape}")
        elif "ints" in t:
            if [int(v) for v in a.reshape(-1)] != [int(v) for v in t["ints"]]:
                problems.append(f"{t['name']}: values differ (numpy.load_file)")
        elif not same_floats(a.astype(np.float32), json_floats(t["stored"])):
            problems.append(f"{t['name']}: values differ (numpy.load_file)")
    if has_bf16:
        try:
            import torch
            import safetensors.torch as st
            for name, a in st.load_file(path).items():
                t = next(t for t in expected["tensors"] if t["name"] == name)
                if t["dtype"] == "BF16" and not same_floats(a.float().numpy(), json_floats(t["stored"])):
                    problems.append(f"{name}: values differ (torch.load_file)")
            print(f"torch {torch.__version__}: BF16 tensors checked with safetensors.torch.load_file")
        except ImportError:
            print("torch not installed: BF16 tensors checked through deserialize only")

    # 3. Metadata.
    from safetensors import safe_open
    with safe_open(path, "np") as f:
        metadata = f.metadata() or {}
    if metadata != expected["metadata"]:
        problems.append(f"metadata {metadata!r} != {expected['metadata']!r}")

    # 4. PyPI's serializer writes the same bytes (exact while metadata has at most one key:
    #    PyPI orders a larger map by hash).
    keep = []
    specs = {}
    names_of = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "I32": "int32", "I64": "int64"}
    for name, (dtype, data, shape) in arrays.items():
        keep.append(data)
        specs[name] = TensorSpec(dtype=names_of[dtype], shape=shape, data_ptr=data.ctypes.data, data_len=data.nbytes)
    theirs = bytes(serialize(specs, metadata=expected["metadata"] or None))
    if len(expected["metadata"]) <= 1:
        if theirs != blob:
            problems.append("PyPI serialize() gives different bytes")
        else:
            print("PyPI serialize() of the same tensors (this file's data) gives identical bytes")

    if problems:
        print(f"FAIL {path}")
        for p in problems:
            print("  " + p)
        return 1
    print(f"OK {path}: {len(raw)} tensors match {os.path.basename(expected_path)} "
          f"(safetensors {safetensors.__version__}, numpy {np.__version__})")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=DEFAULT_OUT, help="fixtures folder")
    parser.add_argument("--verify", metavar="FILE", help="check a file our writer produced")
    parser.add_argument("--expected", metavar="JSON", help="expected values for --verify")
    args = parser.parse_args()
    if args.verify:
        expected = args.expected or os.path.join(os.path.dirname(os.path.abspath(args.verify)), "writer_input.json")
        sys.exit(verify(args.verify, expected))
    os.makedirs(args.out, exist_ok=True)
    make_sample(args.out)
    with open(os.path.join(args.out, "writer_input.json"), "w") as f:
        json.dump(writer_input(), f, indent=1, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(args.out, "VERSIONS.txt"), "w") as f:
        f.write(versions_text())
    for name in os.listdir(args.out):
        os.chmod(os.path.join(args.out, name), 0o644)
    print(f"wrote fixtures to {os.path.normpath(args.out)}")


if __name__ == "__main__":
    main()
