#!/usr/bin/env python3
"""Golden token ids for CLIPTokenizer (Sources/LDMModels/Tokenizer.swift).

Runs transformers' slow CLIPTokenizer (transformers 4.x: tokenization_clip.py; transformers 5
replaced it with a tokenizers-backed class) WITHOUT ftfy installed, loaded from the converted
vocabulary in Tests/LDMModelsTests/Fixtures/clip-tokenizer (see convert_clip_vocab.py), on a few
hundred varied strings, as diffusers calls it:
    tokenizer(text, padding="max_length", max_length=77, truncation=True).input_ids
once with the SD 1.x pad token '<|endoftext|>' and once with the SD 2.x pad token '!'.

Writes Tests/LDMModelsTests/Fixtures/clip-tokenizer-cases.json.

Usage (a virtualenv with transformers<5 and without ftfy):
    python -m venv /tmp/tok && /tmp/tok/bin/pip install "transformers<5"
    /tmp/tok/bin/python scripts/make_tokenizer_fixtures.py
"""
import json
import os
import random
import shutil
import sys
import tempfile
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(HERE, "..", "Tests", "LDMModelsTests", "Fixtures")
FOLDER = os.path.join(TESTS, "clip-tokenizer")
OUTPUT = os.path.join(TESTS, "clip-tokenizer-cases.json")

HANDWRITTEN = [
    # empty and whitespace
    "", " ", "   ", "\n", "\n\n\t  \r\n", "\t",
    # prompts
    "a photograph of an astronaut riding a horse",
    "A beautiful landscape painting of a mountain lake at sunset, highly detailed, 4k, trending on artstation",
    "portrait of a cyberpunk samurai, neon lights, rain, cinematic lighting, octane render, unreal engine 5",
    "(masterpiece:1.2), ((best quality)), [low quality], {ultra-detailed}, <lora:add_detail:0.8>, BREAK, 1girl",
    "[cat|dog] in a field, by Greg Rutkowski and Alphonse Mucha",
    "photo of a red cube on a blue sphere, studio lighting, f/1.8, 85mm, ISO 100",
    # mixed case
    "HeLLo WoRLD", "CamelCaseWordsTogether", "ALL CAPS PROMPT", "iPhone macOS eBay",
    # accents and NFC
    "café naïve crème brûlée", "cafe\u0301", "e\u0301\u0302", "Ångström \u212Bngstr\u00f6m", "ﬁnance ﬂower",
    "ñ vs n\u0303", "a\u0300\u0301\u0302", "\u0301leading combining mark", "Z\u0324\u0325\u0344\u0308algo", "sF\u0345 1", "a\u0345a \u03b1\u0345",
    "\u1100\u1161\u11a8 jamo", "ḍ̇ q̣̇ order \u1e0b\u0323", "Straße STRASSE ß ẞ", "ǅemal ǈ titlecase",
    # CJK and other scripts
    "一只猫在月光下", "日本語のテキストと漢字", "한국어 텍스트 입니다", "𠀀𠀁 extension B", "中文, English, 混合",
    "מה שלום", "مرحبا بالعالم", "مَرْحَبًا", "Привет, мир! ЁЛКА", "Ελληνικά ΟΔΟΣ ὀδός Σ ΣΑ ΑΣ",
    "İstanbul ISTANBUL ıi", "नमस्ते दुनिया", "สวัสดีชาวโลก", "வணக்கம்", "ქართული", "Հայերեն",
    # emoji
    "🐱 cat 🐶 dog", "👨‍👩‍👧 family", "❤️ love ♥", "🇯🇵 flag", "👍🏽 thumbs", "😀😃😄😁", "a🦄b",
    # punctuation
    "Hello, world!!!", "...", "?!?!", "«quotes» “smart” ‘single’", "em—dash en–dash", "(parens) [brackets] {braces}",
    "a&b a+b a=b a/b a\\b a|b", "#hashtag @mention", "$100.00 €50 £20 ¥1000", "50% off!", "~tilde~ `backtick` ^caret^",
    "<>", "<<<>>>", "a---b", "wow!!!", "a!b", "!", "!!", "hello !", "! start",
    # apostrophes and contractions
    "it's", "IT'S", "don't won't can't", "we're they've I'm you'll he'd", "'s alone", "''s", "'''",
    "rock'n'roll", "it’s typographic", "'S 'T 'RE 'VE 'M 'LL 'D", "cat's cats' o'clock", "'x 'sx 'ss",
    # digits
    "1234567890", "3.14159", "1st 2nd 3rd 4th", "٣٤٥ arabic-indic", "½ ¾ ⅓", "x² y³ ₂", "Ⅻ Ⅳ roman", "①②③", "0x1F",
    # spaces and separators
    "a  b", "a\n\nb", "  leading", "trailing  ", "a\u00a0b", "a\u3000b", "a\u2003b", "a\u2028b", "a\u2029b",
    "a\u0085b", "a\x0bb", "a\x0cb", "a\x1cb", "a\x1fb", "a\u180eb", "a\u200ab",
    # control and format characters
    "a\x00b", "a\x07b", "\x1b[31mred\x1b[0m", "a\ufffdb", "a\u200bb", "a\u200db", "a\ufeffb", "a\u00adb",
    "a\ue000b", "a\U000f0000b", "a\u0378b", "\x7f", "a\u061cb", "a\U000e0041b",
    # math and symbols
    "∑ x² ≤ ∞", "√2 ≈ 1.414", "∀x∈ℝ: x²≥0", "a×b÷c", "𝔸𝕓𝒸 math letters", "→ ← ↑ ↓", "© ® ™ °C", "♠♣♥♦",
    # URLs and e-mail
    "https://example.com/path?q=1&r=2#frag", "www.Example.COM/Index.HTML", "user.name+tag@mail.co.uk",
    "file:///home/user/image.png", "C:\\Users\\name",
    # special tokens in text
    "<|startoftext|>", "<|endoftext|>", "a<|endoftext|>b", "<|ENDOFTEXT|>", "<|endoftext|", "<|endoftext|><|endoftext|>",
    "x<|startoftext|>y <|endoftext|> z", "!<|endoftext|>!", "<|endoftext|>!", "it'ſ", "<|ſtartoftext|>",
    # long words and long prompts
    "supercalifragilisticexpialidocious", "a" * 300, "ab" * 120, "pneumonoultramicroscopicsilicovolcanoconiosis " * 3,
    " ".join(["word"] * 75), " ".join(["word"] * 76), " ".join(["word"] * 77), " ".join(["word"] * 200),
    ", ".join(["highly detailed"] * 30), "!" * 100, "😀" * 60,
]

# Characters for random strings (all assigned in Unicode 14 or earlier).
POOL = (
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    + list("     ") + ["\t", "\n", "\r", "\u00a0", "\u3000", "\u2028"]
    + list(".,;:!?'\"()[]{}<>|/\\-_+=*&^%$#@~`")
    + list("àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿßÀÉÎÕÜ")
    + ["\u0300", "\u0301", "\u0303", "\u0308", "\u0323", "\u200d", "\u200b", "\ufe0f", "\x00", "\x07", "\ufffd"]
    + list("一二三猫犬月光中文字日本語") + list("あいうえおアイウエオ") + list("가나다라")
    + list("абвгдеёжзАБВГ") + list("αβγδΣσςΩ") + list("مرحب") + list("שלום")
    + ["🐱", "🐶", "❤", "👍", "🏽", "🇯", "🇵", "😀"] + list("∑∞≤√×÷²³½")
    + ["<|endoftext|>", "<|startoftext|>", "'s", "'t", "'re", "'ll"]
)


def random_strings(count, seed=1234):
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        n = rng.randint(1, 40)
        out.append("".join(rng.choice(POOL) for _ in range(n)))
    return out


def make_folder(pad):
    folder = tempfile.mkdtemp()
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(os.path.join(FOLDER, name), folder)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = os.path.join(folder, name)
        with open(path) as f:
            config = json.load(f)
        config["pad_token"] = pad
        with open(path, "w") as f:
            json.dump(config, f)
    return folder


def main():
    try:
        import ftfy  # noqa: F401
        sys.exit("ftfy is installed: uninstall it (the reference is CLIPTokenizer without ftfy)")
    except ImportError:
        pass
    import transformers
    from transformers import CLIPTokenizer

    if int(transformers.__version__.split(".")[0]) >= 5:
        sys.exit("needs transformers<5 (the slow, Python CLIPTokenizer)")
    sd1 = CLIPTokenizer.from_pretrained(make_folder("<|endoftext|>"))
    sd2 = CLIPTokenizer.from_pretrained(make_folder("!"))
    for t in (sd1, sd2):
        assert t.fix_text is None and t.model_max_length == 77
    assert sd1.pad_token_id == 49407 and sd2.pad_token_id == 0

    cases = []
    texts = HANDWRITTEN + random_strings(200)
    assert len(set(texts)) == len(texts)
    for text in texts:
        case = {
            "text": text,
            "tokens": sd1.tokenize(text),
            "sd1": sd1(text, padding="max_length", max_length=77, truncation=True).input_ids,
            "sd2": sd2(text, padding="max_length", max_length=77, truncation=True).input_ids,
            "sd1_truncated": len(sd1(text).input_ids) > 77,
            "sd2_truncated": len(sd2(text).input_ids) > 77,
        }
        assert len(case["sd1"]) == 77 and len(case["sd2"]) == 77
        cases.append(case)

    fixture = {
        "producer": "scripts/make_tokenizer_fixtures.py",
        "transformers": transformers.__version__,
        "python": sys.version.split()[0],
        "unicode": unicodedata.unidata_version,
        "ftfy": False,
        "call": 'tokenizer(text, padding="max_length", max_length=77, truncation=True).input_ids',
        "cases": cases,
    }
    with open(OUTPUT, "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUTPUT}: {len(cases)} cases, transformers {transformers.__version__}, "
          f"Unicode {unicodedata.unidata_version}")


if __name__ == "__main__":
    main()
