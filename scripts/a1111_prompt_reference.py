#!/usr/bin/env python3
"""Golden values for PromptSyntax (Sources/LDMModels/PromptSyntax.swift): AUTOMATIC1111's prompt
attention syntax and its 75-token chunking, ported to stand-alone Python.

This file is a port, written for this project, of two functions of AUTOMATIC1111's
stable-diffusion-webui (no webui import):
  * `parse_prompt_attention` from modules/prompt_parser.py, read at commit
    28bd8e142d5f77b71ae8d7d7140b5da1b3a49906 (the 1.7+ form, where a weight may carry spaces:
    `(a: 1.2 )`);
  * `TextConditionalModel.tokenize_line` (+ its `next_chunk`, `empty_chunk`) and the SD 2.x pad
    rewrite of `process_tokens` from modules/sd_hijack_clip.py, read at commit
    5ad03e65863b0972e133c00692556752016f10c8, with
    `EmbeddingDatabase.find_embedding_at_position` / `register_embedding_by_name` from
    modules/textual_inversion/textual_inversion.py (commit 22ecb78b51f7e6f0234cbc0efbde4ee9a2dc466f)
    and the way `EmbeddingsWithFixes` (modules/sd_hijack.py) writes an embedding's vectors at
    `offset + 1`. Options at their defaults: emphasis "Original" (the parser is used),
    comma_padding_backtrack = 20; SD 1.x pads with id_end, SD 2.x (sd_hijack_open_clip.py) with
    id_pad = 0.

The tokenizer is transformers' CLIPTokenizer loaded from the tiny test model's folder
(Tests/Fixtures/models/tiny-sd/tokenizer, a 1114-token cut-down CLIP BPE), called the way
FrozenCLIPEmbedderWithCustomWords.tokenize calls it:
    tokenizer(texts, truncation=False, add_special_tokens=False)["input_ids"]

Writes Tests/LDMModelsTests/Fixtures/prompt-syntax-cases.json: for every case the parsed segments
(weights as Python doubles), the chunks (77 ids each after the SD 2.x pad rewrite, embedding slots
as [index, name, vector], 77 multipliers) and tokenize_line's token count.

Usage:  /work/venv/bin/python scripts/a1111_prompt_reference.py
"""
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
TOKENIZER = os.path.join(ROOT, "Tests", "Fixtures", "models", "tiny-sd", "tokenizer")
OUTPUT = os.path.join(ROOT, "Tests", "LDMModelsTests", "Fixtures", "prompt-syntax-cases.json")

CHUNK_LENGTH = 75

# ---------------------------------------------------------------------------------------------
# parse_prompt_attention
# ---------------------------------------------------------------------------------------------

# One token per alternative, tried in this order at every position (the alternatives tile the text):
# the five escapes, a lone backslash, "(", "[", a weight closer ":<number>)", ")", "]", a run of
# plain characters, and a lone ":".
ATTENTION_TOKEN = re.compile(r"""
    \\[()\[\]\\]
  | \\
  | \(
  | \[
  | :\s*([+-]?[.\d]+)\s*\)
  | \)
  | \]
  | [^\\()\[\]:]+
  | :
""", re.X)

BREAK_SEPARATOR = re.compile(r"\s*\bBREAK\b\s*", re.S)

ROUND = 1.1
SQUARE = 1 / 1.1


def parse_attention(prompt):
    """[[text, weight], ...] exactly as A1111's parse_prompt_attention returns it.

    A break is the pair ["BREAK", -1]. Raises ValueError where A1111 does (a weight such as
    "1.2.3" that float() rejects)."""
    out = []
    open_round = []
    open_square = []

    def scale_from(start, factor):
        for k in range(start, len(out)):
            out[k][1] *= factor

    for match in ATTENTION_TOKEN.finditer(prompt):
        token = match.group(0)
        number = match.group(1)
        if token[0] == "\\":
            out.append([token[1:], 1.0])
        elif token == "(":
            open_round.append(len(out))
        elif token == "[":
            open_square.append(len(out))
        elif number is not None and open_round:
            scale_from(open_round.pop(), float(number))
        elif token == ")" and open_round:
            scale_from(open_round.pop(), ROUND)
        elif token == "]" and open_square:
            scale_from(open_square.pop(), SQUARE)
        else:
            for k, piece in enumerate(BREAK_SEPARATOR.split(token)):
                if k > 0:
                    out.append(["BREAK", -1])
                out.append([piece, 1.0])

    # Unclosed brackets close at the end: all round ones (in opening order), then all square ones.
    for start in open_round:
        scale_from(start, ROUND)
    for start in open_square:
        scale_from(start, SQUARE)

    if not out:
        out = [["", 1.0]]

    # Neighbours of equal weight become one segment.
    merged = [out[0]]
    for text, weight in out[1:]:
        if merged[-1][1] == weight:
            merged[-1][0] += text
        else:
            merged.append([text, weight])
    return merged


# ---------------------------------------------------------------------------------------------
# tokenize_line
# ---------------------------------------------------------------------------------------------

class EmbeddingIndex:
    """A1111's ids_lookup: first token id -> [(ids, name, vectors)], longest ids first (stable)."""

    def __init__(self, triggers):
        self.by_first = {}
        for name, ids, vectors in triggers:
            entries = self.by_first.setdefault(ids[0], [])
            entries.append((ids, name, vectors))
            entries.sort(key=lambda entry: len(entry[0]), reverse=True)

    def at(self, tokens, position):
        for ids, name, vectors in self.by_first.get(tokens[position], []):
            if tokens[position:position + len(ids)] == ids:
                return (name, vectors), len(ids)
        return None, None


def tokenize_line(segments, tokenize, index, id_start, id_end, id_pad, comma, backtrack=20):
    """A1111's tokenize_line. Returns (chunks, token_count); each chunk is (ids, multipliers,
    fixes) with 77 ids after the SD 2.x pad rewrite and fixes [(offset, (name, vectors))]."""
    token_lists = tokenize([text for text, _ in segments])
    chunks = []
    state = {"ids": [], "mults": [], "fixes": [], "count": 0, "last_comma": -1}

    def close_chunk(is_last=False):
        ids, mults = state["ids"], state["mults"]
        state["count"] += len(ids) if is_last else CHUNK_LENGTH
        missing = CHUNK_LENGTH - len(ids)
        if missing > 0:
            ids = ids + [id_end] * missing
            mults = mults + [1.0] * missing
        chunks.append(([id_start] + ids + [id_end], [1.0] + mults + [1.0], state["fixes"]))
        state.update(ids=[], mults=[], fixes=[], last_comma=-1)

    for tokens, (text, weight) in zip(token_lists, segments):
        if text == "BREAK" and weight == -1:
            close_chunk()
            continue
        position = 0
        while position < len(tokens):
            token = tokens[position]
            if token == comma:
                state["last_comma"] = len(state["ids"])
            elif (backtrack != 0 and len(state["ids"]) == CHUNK_LENGTH and state["last_comma"] != -1
                  and len(state["ids"]) - state["last_comma"] <= backtrack):
                # Move everything after the last comma into the next chunk (fixes stay behind, as in A1111).
                cut = state["last_comma"] + 1
                moved_ids, moved_mults = state["ids"][cut:], state["mults"][cut:]
                state["ids"], state["mults"] = state["ids"][:cut], state["mults"][:cut]
                close_chunk()
                state["ids"], state["mults"] = moved_ids, moved_mults
            if len(state["ids"]) == CHUNK_LENGTH:
                close_chunk()

            embedding, trigger_length = index.at(tokens, position)
            if embedding is None:
                state["ids"].append(token)
                state["mults"].append(weight)
                position += 1
                continue
            vectors = embedding[1]
            if len(state["ids"]) + vectors > CHUNK_LENGTH:
                close_chunk()
            state["fixes"].append((len(state["ids"]), embedding))
            state["ids"] += [0] * vectors
            state["mults"] += [weight] * vectors
            position += trigger_length

    if state["ids"] or not chunks:
        close_chunk(is_last=True)

    # process_tokens: with id_end != id_pad (SD 2.x) everything after the first id_end becomes id_pad.
    if id_end != id_pad:
        rewritten = []
        for ids, mults, fixes in chunks:
            first = ids.index(id_end)
            rewritten.append((ids[:first + 1] + [id_pad] * (len(ids) - first - 1), mults, fixes))
        chunks = rewritten
    return chunks, state["count"]


def embedding_slots(ids, fixes):
    """Where EmbeddingsWithFixes writes vectors: offset + 1 on, at most up to the chunk's end."""
    slots = []
    for offset, (name, vectors) in fixes:
        for k in range(min(len(ids) - offset - 1, vectors)):
            slots.append([offset + 1 + k, name, k])
    return slots


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------

def words(n, word="a"):
    return " ".join([word] * n)


def long_comma_prompt():
    # 120 tokens: comma-separated phrases whose lengths vary so a comma sits within 20 tokens of 75.
    phrases, count, k = [], 0, 0
    sizes = [6, 9, 4, 11, 7, 5, 13, 3, 8, 10]
    while count < 118:
        n = sizes[k % len(sizes)]
        phrases.append(words(n, "x"))
        count += n + 1
        k += 1
    return ", ".join(phrases)


PROMPTS = [
    # plain text and the doctest examples
    "",
    "normal text",
    "an (important) word",
    "(unbalanced",
    "\\(literal\\]",
    "(unnecessary)(parens)",
    "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
    # emphasis and de-emphasis
    "((a))",
    "[[a]]",
    "(((a)))",
    "[[[a]]]",
    "(a:1.3)",
    "(a: 1.3 )",
    "(a:-1) (b:+.5) (c:1.) (d:0)",
    "(a:0.5) b [c:2]",
    "((a:1.2) b:0.8) c",
    "[a (b) [c]]",
    "(a:1.1)(b)",
    "(a)[b](c:0.9090909090909091)",
    "a:1.3) b",
    "(a:1.3 b)",
    # unbalanced and crossing brackets
    "a) b] c",
    "((a) [b",
    "[[a (b",
    "[a (b] c)",
    "()[]:(:)",
    # escapes
    "a \\(b\\) \\[c\\] d",
    "back\\\\slash \\x lone \\",
    "(\\(esc\\):1.5)",
    # BREAK
    "a BREAK b",
    "BREAK a",
    "a BREAK",
    "a BREAK BREAK b",
    "aBREAK b BREAKx BREAK_y (BREAK) z",
    "(a BREAK b:1.2)",
    "(BRE:-1)(AK:-1) c",
    "a\n BREAK\t\nb",
    "break lowercase, Break too",
    "(x BREAK:0) y",
    "[a BREAK b]",
    # commas, lengths and chunk boundaries
    "a, b, c, (d, e:1.2), f",
    long_comma_prompt(),
    words(75),
    words(76),
    words(150),
    words(75) + " BREAK " + words(3),
    words(75) + " BREAK",
    words(74) + ", " + words(5),
    words(60) + ", " + words(30),
    words(50) + ", " + words(40),
    words(70) + " (" + words(10, "b") + ":1.4) " + words(80, "c"),
    ", ".join(["m"] * 100),
    # textual-inversion embeddings (triggers below)
    "a photo of myemb on a table",
    "(myemb:1.2) and [myemb]",
    "style girl, style, style boy",
    words(73) + " myemb b",
    words(72) + " myemb b",
    words(70) + ", bigemb b",
    words(66) + ", c myemb " + words(10),
    "zeroemb vanishes",
    "myembmyemb myemb,myemb",
]

SD2_PROMPTS = [
    "",
    "a (b:1.2) c",
    words(80) + " BREAK d",
    "a <|endoftext|> b c",
]

# Prompts where A1111's float() raises ValueError (the generation fails): parse only, flagged.
RAISING = ["(a:1.2.3)", "(a:.)"]

# Random strings over the syntax's characters, parsed only (segments, or null where A1111 raises).
RANDOM_ALPHABET = list("ab ,()[]:\\") + ["BREAK", " BREAK ", "1.2", "0", "-1", ".5", "\n", "_", "\u00a0",
                                        "\u0663", "\u2003", "\x1c", "\u00e9", "x"]


def random_prompts(count, seed=20240501):
    import random
    rng = random.Random(seed)
    return ["".join(rng.choice(RANDOM_ALPHABET) for _ in range(rng.randint(0, 16))) for _ in range(count)]

TRIGGERS = [("myemb", 3), ("style girl", 2), ("style", 5), ("bigemb", 10), ("zeroemb", 0)]


def main():
    try:
        import transformers
        from transformers import CLIPTokenizer
    except ImportError as error:
        sys.exit(f"needs transformers: {error}")
    tokenizer = CLIPTokenizer.from_pretrained(TOKENIZER)

    def tokenize(texts):
        return tokenizer(texts, truncation=False, add_special_tokens=False)["input_ids"]

    comma = tokenizer.get_vocab().get(",</w>", None)
    id_start, id_end = tokenizer.bos_token_id, tokenizer.eos_token_id
    triggers = [(name, tokenize([name])[0], vectors) for name, vectors in TRIGGERS]
    index = EmbeddingIndex(triggers)

    def case(prompt, id_pad, backtrack=20):
        segments = parse_attention(prompt)
        chunks, count = tokenize_line(segments, tokenize, index, id_start, id_end, id_pad, comma, backtrack)
        for ids, mults, _ in chunks:
            assert len(ids) == len(mults) == CHUNK_LENGTH + 2
        return {
            "prompt": prompt,
            "pad_id": id_pad,
            "comma_padding_backtrack": backtrack,
            "segments": [{"text": t, "weight": w, "is_break": t == "BREAK" and w == -1} for t, w in segments],
            "chunks": [{"ids": ids, "weights": mults, "embeddings": embedding_slots(ids, fixes)}
                       for ids, mults, fixes in chunks],
            "token_count": count,
        }

    cases = [case(p, id_end) for p in PROMPTS]
    cases += [case(p, 0) for p in SD2_PROMPTS]
    cases += [case(long_comma_prompt(), id_end, 0), case(words(60) + ", " + words(30), id_end, 5)]
    for prompt in RAISING:
        try:
            parse_attention(prompt)
        except ValueError:
            continue
        raise AssertionError(f"{prompt!r} was expected to raise")

    random_cases = []
    for prompt in random_prompts(400):
        try:
            segments = [{"text": t, "weight": w, "is_break": t == "BREAK" and w == -1} for t, w in parse_attention(prompt)]
        except ValueError:
            segments = None
        random_cases.append({"prompt": prompt, "segments": segments})

    # The doctests of parse_prompt_attention, as a check on this port.
    assert parse_attention("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).") == [
        ["a ", 1.0], ["house", 1.5730000000000004], [" ", 1.1], ["on", 1.0], [" a ", 1.1],
        ["hill", 0.55], [", sun, ", 1.1], ["sky", 1.4641000000000006], [".", 1.1]]
    assert parse_attention("(unnecessary)(parens)") == [["unnecessaryparens", 1.1]]

    fixture = {
        "source": "scripts/a1111_prompt_reference.py (stable-diffusion-webui prompt_parser.py @28bd8e14, "
                  "sd_hijack_clip.py @5ad03e65)",
        "transformers": transformers.__version__,
        "tokenizer": "Tests/Fixtures/models/tiny-sd/tokenizer",
        "bos_id": id_start,
        "eos_id": id_end,
        "comma_id": comma,
        "embeddings": [{"name": n, "token_ids": ids, "vectors": v} for n, ids, v in triggers],
        "raising": RAISING,
        "cases": cases,
        "random_parse_cases": random_cases,
    }
    # One line per case, so a regenerated file diffs case by case.
    lines = []
    for key, value in fixture.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            items = ",\n".join("  " + json.dumps(item, ensure_ascii=False) for item in value)
            lines.append(f" {json.dumps(key)}: [\n{items}\n ]")
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
    with open(OUTPUT, "w", encoding="utf-8") as f:
        f.write("{\n" + ",\n".join(lines) + "\n}\n")
    print(f"wrote {len(cases)} cases to {os.path.relpath(OUTPUT, ROOT)}")


if __name__ == "__main__":
    main()
