#!/usr/bin/env python3
"""Whether a trained text encoder carries a caption word into the tokens after it.

Run by hand with the reference virtualenv (transformers, torch), never by tests or the product:

    /work/venv/ref/bin/python scripts/probe_text_relation.py [MODEL_DIR [CHECKPOINT_DIR]]

With a training checkpoint folder (checkpoint-NNNNNNN of `ldm train unet`) as well, the text
encoder's raw (not EMA) weights are read from its model.safetensors, in MODEL_DIR's architecture.

For pairs of prompts that differ in one word (the relation, the position, the size) it prints,
token by token, |ctx(a) − ctx(b)| / |ctx(a)| of the text encoder's last hidden state. CLIP's
causal mask means only the tokens after the differing word can change; a relation the encoder has
learned to pass on changes the second shape's tokens and the end-of-text token, not only the
relation word itself.
"""

import sys

import torch
from transformers import CLIPTextModel, CLIPTokenizer

PAIRS = [("a red circle above a blue square", "a red circle below a blue square"),
         ("a red circle left of a blue square", "a red circle right of a blue square"),
         ("a green triangle below a yellow circle", "a green triangle above a yellow circle"),
         ("a red circle in the top left", "a red circle in the bottom right"),
         ("a large red circle", "a small red circle")]


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "Checkpoints"
    torch.set_num_threads(2)
    tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer")
    encoder = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", torch_dtype=torch.float32)
    if len(sys.argv) > 2:
        from safetensors.torch import load_file
        raw = load_file(f"{sys.argv[2]}/model.safetensors")
        prefix = "text_encoder."
        own = set(encoder.state_dict())
        state = {}
        for k, v in raw.items():
            if k.startswith(prefix):
                k = k[len(prefix):]
                # transformers 5 names the modules without the "text_model." level
                state[k if k in own else k.removeprefix("text_model.")] = v.float()
        missing, unexpected = encoder.load_state_dict(state, strict=False)
        if [k for k in missing if "position_ids" not in k] or unexpected:
            sys.exit(f"checkpoint does not match the model: missing {missing}, unexpected {unexpected}")
    encoder.eval()

    def encode(prompt):
        ids = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length,
                        return_tensors="pt").input_ids
        with torch.no_grad():
            return ids[0], encoder(ids)[0][0]

    for a, b in PAIRS:
        ids, ha = encode(a)
        _, hb = encode(b)
        change = (ha - hb).norm(dim=-1) / ha.norm(dim=-1)
        words = tokenizer.convert_ids_to_tokens(ids.tolist())
        end = next(i for i, t in enumerate(ids.tolist()) if t == tokenizer.eos_token_id)
        cells = [f"{w.replace('</w>', '')}:{c:.2f}" for w, c in zip(words[1:end + 2], change[1:end + 2].tolist())]
        print(f"{a!r} vs {b!r}")
        print("   " + "  ".join(cells))


if __name__ == "__main__":
    main()
