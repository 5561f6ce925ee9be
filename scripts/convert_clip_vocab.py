#!/usr/bin/env python3
"""Converts CLIP's BPE vocabulary (bpe_simple_vocab_16e6.txt.gz, shipped in PyPI's open-clip-torch
wheel) into a tokenizer folder as Stable Diffusion model folders have it:

  vocab.json               49408 tokens: the 256 byte characters, the same with '</w>', the 48894
                           merges joined, then <|startoftext|> and <|endoftext|>
  merges.txt               '#version: 0.2' and merges 1..48894 of the file (after its header line)
  tokenizer_config.json    SD 1.x form (model_max_length 77, pad <|endoftext|>)
  special_tokens_map.json  SD 1.x form; --pad '!' writes the SD 2.x form instead

Then, when open_clip and transformers are importable, checks that transformers' CLIPTokenizer
loaded from the folder gives the same ids as open_clip's SimpleTokenizer on a few strings.

Usage:  python scripts/convert_clip_vocab.py OUT_DIR [--bpe PATH.txt.gz] [--pad TOKEN]
"""
import argparse
import gzip
import json
import os
import sys
import types

MERGE_COUNT = 49152 - 256 - 2  # 48894, as CLIP's own tokenizer reads the file


def bytes_to_unicode():
    """CLIP's reversible map from the 256 byte values to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def default_bpe_path():
    import importlib.util

    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("open_clip is not installed: pass --bpe PATH (the file is in PyPI's open-clip-torch wheel)")
    return os.path.join(list(spec.submodule_search_locations)[0], "bpe_simple_vocab_16e6.txt.gz")


def added_token(content):
    return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": True,
            "rstrip": False, "single_word": False}


def special_token(content):
    return {"content": content, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}


def convert(bpe_path, out_dir, pad):
    lines = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = lines[1:MERGE_COUNT + 1]
    assert len(merges) == MERGE_COUNT and all(len(m.split()) == 2 for m in merges)
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    encoder = {token: i for i, token in enumerate(vocab)}
    assert len(encoder) == len(vocab) == 49408

    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(encoder, f, ensure_ascii=False)
    with open(os.path.join(out_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    config = {
        "add_prefix_space": False,
        "bos_token": added_token("<|startoftext|>"),
        "do_lower_case": True,
        "eos_token": added_token("<|endoftext|>"),
        "errors": "replace",
        "model_max_length": 77,
        "name_or_path": "openai/clip-vit-large-patch14",
        "pad_token": pad,
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": added_token("<|endoftext|>"),
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
        f.write("\n")
    special = {
        "bos_token": special_token("<|startoftext|>"),
        "eos_token": special_token("<|endoftext|>"),
        "pad_token": pad,
        "unk_token": special_token("<|endoftext|>"),
    }
    with open(os.path.join(out_dir, "special_tokens_map.json"), "w", encoding="utf-8") as f:
        json.dump(special, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {out_dir}: {len(encoder)} tokens, {len(merges)} merges, pad {pad!r}")


CHECK_STRINGS = [
    "a photograph of an astronaut riding a horse",
    "A cat's toy, isn't it?! 12345 dollars; e-mail: someone@example.com",
    "Hello   world\n\ttabs and    spaces",
    "digital painting, highly detailed, trending on artstation, 8k, octane render",
    "don't won't they're we've I'm you'll he'd",
    "a" * 300,
    "(masterpiece:1.2), [best quality], {ultra-detailed} <lora:foo:0.8>",
]


def check(out_dir, bpe_path):
    try:
        import transformers
        from transformers import CLIPTokenizer
    except ImportError:
        print("transformers not installed: skipping the check")
        return
    if "ftfy" not in sys.modules:
        try:
            import ftfy  # noqa: F401
        except ImportError:
            # open_clip imports ftfy; the check strings are plain text that ftfy leaves alone.
            stub = types.ModuleType("ftfy")
            stub.fix_text = lambda text: text
            sys.modules["ftfy"] = stub
    import importlib.util

    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        print("open_clip not installed: skipping the check")
        return
    # Load open_clip/tokenizer.py alone (the package's __init__ needs torchvision).
    path = os.path.join(list(spec.submodule_search_locations)[0], "tokenizer.py")
    module_spec = importlib.util.spec_from_file_location("open_clip_tokenizer", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    SimpleTokenizer = module.SimpleTokenizer
    ours = CLIPTokenizer.from_pretrained(out_dir)
    theirs = SimpleTokenizer(bpe_path)
    for text in CHECK_STRINGS:
        a = ours(text, add_special_tokens=False)["input_ids"]
        b = theirs.encode(text)
        assert a == b, f"mismatch for {text!r}:\n{a}\n{b}"
    print(f"check passed: transformers {transformers.__version__} CLIPTokenizer == open_clip SimpleTokenizer "
          f"on {len(CHECK_STRINGS)} strings")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--bpe", default=None, help="bpe_simple_vocab_16e6.txt.gz (default: open_clip's)")
    parser.add_argument("--pad", default="<|endoftext|>", help="pad token: '<|endoftext|>' (SD 1.x) or '!' (SD 2.x)")
    parser.add_argument("--no-check", action="store_true")
    args = parser.parse_args()
    bpe_path = args.bpe or default_bpe_path()
    convert(bpe_path, args.out_dir, args.pad)
    if not args.no_check:
        check(args.out_dir, bpe_path)


if __name__ == "__main__":
    main()
