#!/usr/bin/env python3
"""Golden token ids for CLIPTokenizer (Sources/LDMModels/Tokenizer.swift).

Runs transformers 5's CLIPTokenizer (the tokenizers-backed class: NFC, whitespace runs to one
space, lowercase, CLIP's split pattern, byte-level BPE — what diffusers users get, and what
open_clip and the original training match far better than transformers 4's slow class without
ftfy, which split CJK characters into words and dropped control characters), loaded from the
converted vocabulary in Tests/LDMModelsTests/Fixtures/clip-tokenizer (see convert_clip_vocab.py),
on several hundred varied strings, as diffusers calls it:
    tokenizer(text, padding="max_length", max_length=77, truncation=True).input_ids
once with the SD 1.x pad token '<|endoftext|>' and once with the SD 2.x pad token '!'; and with
the tiny test model's 1114-token tokenizer (Tests/Fixtures/models/tiny-sd/tokenizer), saved with
save_pretrained into Tests/LDMModelsTests/Fixtures/tiny-tokenizer-json (transformers 5 writes only
tokenizer.json and tokenizer_config.json), which the Swift tokenizer must read, as well as the
vocab.json/merges.txt form, to the same ids.

Writes Tests/LDMModelsTests/Fixtures/clip-tokenizer-cases.json (versions recorded in it).

Usage:  /work/venv/bin/python scripts/make_tokenizer_fixtures.py   (transformers >= 5)
"""
import json
import os
import random
import shutil
import sys
import tempfile

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
    # what transformers 5 reads differently from transformers 4's slow class
    "猫", "一只猫", "東京タワーの夜景", "漢字かなカナ混じり文", "中文English混合", "北京烤鸭, 高清", "「引用」と『二重』",
    "👩🏽‍💻 woman technologist", "🏳️‍🌈 flag", "👨‍👨‍👧‍👦", "🧑🏿‍🤝‍🧑🏻", "❤️‍🔥", "🐻‍❄️", "1️⃣ keycap", "🏴󠁧󠁢󠁳󠁣󠁴󠁿 scotland",
    "zero\u200bwidth", "zw\u200cnj", "zw\u200dj", "word\u2060joiner", "\ufeffbom start", "a\u200b\u200bb", "\u200b",
    "tab\there", "bell\x07", "\x01\x02\x03", "esc\x1b", "del\x7fx", "c1\x80\x9f", "a\x1c\x1d\x1e\x1fb",
    "ΟΔΟΣ", "ὈΔΥΣΣΕΎΣ", "ΣΑΣ ΣΑΣ", "Σ", "aΣ", "Σa", "ΑΣ.", "ΑΣ'Σ", "μάθησις ΜΆΘΗΣΙΣ",
    "<|StartOfText|>", "<|endoftext|>x<|ENDOFTEXT|>", "İI ı", "ǈ ǉ Ǌ", "ꭰ Ꭰ cherokee",
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
    + ["\u2060", "\ufeff", "\x1c", "\x1f", "\x85", "\u0345", "İ", "Σ", "ΣΑ", "\u200c"]
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
    import tokenizers
    import transformers
    from transformers import CLIPTokenizer

    if int(transformers.__version__.split(".")[0]) < 5:
        sys.exit("needs transformers>=5 (the tokenizers-backed CLIPTokenizer)")
    sd1 = CLIPTokenizer.from_pretrained(make_folder("<|endoftext|>"))
    sd2 = CLIPTokenizer.from_pretrained(make_folder("!"))
    for t in (sd1, sd2):
        assert t.model_max_length == 77
    assert sd1.pad_token_id == 49407 and sd2.pad_token_id == 0
    saved = os.path.join(TESTS, "tiny-tokenizer-json")
    shutil.rmtree(saved, ignore_errors=True)
    tiny = CLIPTokenizer.from_pretrained(os.path.join(HERE, "..", "Tests", "Fixtures", "models", "tiny-sd", "tokenizer"))
    tiny.save_pretrained(saved)
    assert sorted(os.listdir(saved)) == ["tokenizer.json", "tokenizer_config.json"], os.listdir(saved)

    cases = []
    texts = list(dict.fromkeys(HANDWRITTEN + random_strings(200)))
    assert len(set(texts)) == len(texts)
    for text in texts:
        case = {
            "text": text,
            "tokens": sd1.tokenize(text),
            "sd1": sd1(text, padding="max_length", max_length=77, truncation=True).input_ids,
            "sd2": sd2(text, padding="max_length", max_length=77, truncation=True).input_ids,
            "sd1_truncated": len(sd1(text).input_ids) > 77,
            "sd2_truncated": len(sd2(text).input_ids) > 77,
            "tiny": tiny(text, padding="max_length", max_length=77, truncation=True).input_ids,
        }
        assert len(case["sd1"]) == 77 and len(case["sd2"]) == 77
        cases.append(case)

    fixture = {
        "producer": "scripts/make_tokenizer_fixtures.py",
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "python": sys.version.split()[0],
        "call": 'tokenizer(text, padding="max_length", max_length=77, truncation=True).input_ids',
        "cases": cases,
    }
    with open(OUTPUT, "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUTPUT}: {len(cases)} cases, transformers {transformers.__version__}, "
          f"tokenizers {tokenizers.__version__}")


if __name__ == "__main__":
    main()
