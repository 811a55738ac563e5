#!/usr/bin/env python3
"""For each prediction folder in SRC: DST/<name>/orig and DST/<name>/emptyK (foreground layer K made fully transparent).
Standard library only (8-bit RGBA/RGB PNGs, as `decompose` writes them)."""
import glob, os, shutil, struct, sys, zlib


def read_png(path):
    data = open(path, 'rb').read()
    pos, idat = 8, b''
    while pos < len(data):
        ln, = struct.unpack('>I', data[pos:pos + 4])
        typ, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + ln]
        pos += 12 + ln
        if typ == b'IHDR':
            w, h, depth, ctype, _, _, interlace = struct.unpack('>IIBBBBB', body)
            assert depth == 8 and interlace == 0 and ctype in (2, 6), path
            ch = 4 if ctype == 6 else 3
        elif typ == b'IDAT':
            idat += body
    return w, h, ch, zlib.decompress(idat)


def write_transparent(path, w, h):
    raw = b''.join(b'\x00' + bytes(w * 4) for _ in range(h))
    def chunk(t, b): return struct.pack('>I', len(b)) + t + b + struct.pack('>I', zlib.crc32(t + b) & 0xffffffff)
    open(path, 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 6, 0, 0, 0))
                           + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))


src, dst = sys.argv[1], sys.argv[2]
for d in sorted(glob.glob(os.path.join(src, '*/'))):
    name = os.path.basename(d.rstrip('/'))
    layers = sorted(glob.glob(os.path.join(d, 'layer_*.png')))
    shutil.copytree(d, os.path.join(dst, name, 'orig'))
    for k in range(1, len(layers)):
        v = os.path.join(dst, name, f'empty{k}')
        shutil.copytree(d, v)
        w, h, _, _ = read_png(layers[k])
        write_transparent(os.path.join(v, os.path.basename(layers[k])), w, h)
