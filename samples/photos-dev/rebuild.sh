#!/usr/bin/env bash
# Rebuilds samples/photos-dev/*.png from the Debian packages named in sources.tsv: downloads each package with
# apt-get, unpacks it with dpkg-deb, centre-crops each listed photo to a square and resizes it to 128x128 (Lanczos,
# Pillow), and rewrites LICENSES.md from sources.tsv. Needs apt-get, dpkg-deb and python3-pil (apt-get install
# python3-pil). Run from anywhere; writes next to this script.
#   samples/photos-dev/rebuild.sh [SIZE]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
size=${1:-128}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
for pkg in $(tail -n +2 "$here/sources.tsv" | cut -f2 | sort -u); do
  version=$(awk -F'\t' -v p="$pkg" '$2 == p { print $3; exit }' "$here/sources.tsv")
  apt-get download "$pkg=$version" >/dev/null 2>&1 || apt-get download "$pkg" >/dev/null
  mkdir -p "x/$pkg"
  dpkg-deb -x "$pkg"_*.deb "x/$pkg"
done
/usr/bin/python3 - "$here" "$tmp/x" "$size" <<'PY'
import csv, sys
from pathlib import Path
from PIL import Image

here, root, size = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
rows = list(csv.DictReader(open(here / "sources.tsv", encoding="utf-8"), delimiter="\t"))
for old in here.glob("*.png"):
    old.unlink()
for r in rows:
    im = Image.open(root / r["package"] / r["file"].lstrip("/")).convert("RGB")
    w, h = im.size
    s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)).resize((size, size), Image.LANCZOS)
    im.save(here / f"{r['id']}.png", optimize=True)
with open(here / "LICENSES.md", "w", encoding="utf-8") as f:
    f.write("# Licences of samples/photos-dev\n\n")
    f.write(f"{len(rows)} real photographs from Debian 12 (bookworm) packages, centre-cropped to a square and resized to "
            f"{size}x{size} by `rebuild.sh` (the only change made to them). Licences as each package's "
            "`/usr/share/doc/<package>/copyright` states them; the per-wallpaper licence of plasma-workspace-wallpapers is the "
            "`License` field of its `metadata.json`. Full licence texts: `/usr/share/common-licenses/` on Debian and the "
            "packages' copyright files.\n\n")
    f.write("| file | package (version) | file in the package | author | licence |\n|---|---|---|---|---|\n")
    for r in rows:
        f.write(f"| {r['id']}.png | {r['package']} ({r['version']}) | `{r['file']}` | {r['author']} | {r['licence']} |\n")
print(f"wrote {len(rows)} photos and LICENSES.md to {here}")
PY
