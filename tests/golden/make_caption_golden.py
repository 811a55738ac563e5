"""Extracts the caption instructions of diffusers' QwenImageLayeredPipeline into caption-instructions/reference.json.

Usage: python3 make_caption_golden.py PATH/TO/pipeline_qwenimage_layered.py COMMIT
Reads the two string constants (image_caption_prompt_en / _cn) with Python's own parser, so the expected text is the
reference's value, escapes and wrapped lines included, independent of our C#.
"""
import ast
import json
import sys

path, commit = sys.argv[1], sys.argv[2]
values = {}
for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
    if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Attribute) and node.targets[0].attr.startswith("image_caption_prompt"):
        values[node.targets[0].attr] = node.value.value
out = {"source": f"huggingface/diffusers {commit} src/diffusers/pipelines/qwenimage/pipeline_qwenimage_layered.py", **values}
with open("caption-instructions/reference.json", "w", encoding="utf-8") as f:
    json.dump(out, f, ensure_ascii=False, indent=1)
