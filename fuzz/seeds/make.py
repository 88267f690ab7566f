#!/usr/bin/env python3
"""Writes the hand-made seeds of each fuzz target into fuzz/corpus/<target>/ (then run
`cargo fuzz cmin`, see fuzz/README.md): real client frames, the contract's bodies, cursors as
the server writes them, profiles and contacts. Run from anywhere; files are named seed-*."""
import hashlib
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus")


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- ws_frames: raw mode is [0, max_hi, max_lo, chunk_seed, stream...]
def frame(opcode, payload, fin=True, mask=(1, 2, 3, 4), masked=True):
    out = bytearray([(0x80 if fin else 0) | opcode])
    m = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        out.append(m | n)
    elif n < 65536:
        out.append(m | 126)
        out += struct.pack(">H", n)
    else:
        out.append(m | 127)
        out += struct.pack(">Q", n)
    if masked:
        out += bytes(mask)
        out += bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    else:
        out += payload
    return bytes(out)


def raw(max_size, seed, *frames):
    return bytes([0]) + struct.pack(">H", max_size) + bytes([seed]) + b"".join(frames)


resume = json.dumps({"type": "resume", "since": 41, "groups": {"0f" * 16: 7}}).encode()
ping = json.dumps({"type": "ping"}).encode()
for mx, seed in [(65535, 0), (64, 7), (16, 200)]:
    put("ws_frames", raw(mx, seed, frame(1, resume)))
    put("ws_frames", raw(mx, seed, frame(1, ping), frame(9, b"p"), frame(10, b""), frame(1, ping)))
put("ws_frames", raw(4096, 3, frame(1, resume[:10], fin=False), frame(9, b"x"),
                     frame(0, resume[10:30], fin=False), frame(0, resume[30:])))
put("ws_frames", raw(4096, 9, frame(2, b"\x00\x01", fin=False), frame(0, b"\x02")))
put("ws_frames", raw(4096, 1, frame(8, struct.pack(">H", 1000) + b"bye")))
put("ws_frames", raw(4096, 5, frame(1, "é€😀".encode() * 3)))
put("ws_frames", raw(4096, 5, frame(1, b"\xff\xfe")))  # 1007
put("ws_frames", raw(4096, 5, frame(1, "é".encode()[:1], fin=False), frame(0, "é".encode()[1:])))
put("ws_frames", raw(100, 2, frame(1, b"a" * 200)))  # 1009, 16-bit length
put("ws_frames", raw(100, 2, frame(1, b"a" * 60, fin=False), frame(0, b"b" * 60)))  # 1009 reassembled
put("ws_frames", raw(65535, 2, bytes([0x81, 0xFF]) + struct.pack(">Q", 1 << 40) + b"\x01\x02\x03\x04"))
put("ws_frames", raw(4096, 4, frame(1, b"hi", masked=False)))  # unmasked: protocol error
put("ws_frames", raw(4096, 4, frame(0, b"hi")))  # continuation first
put("ws_frames", raw(4096, 4, frame(9, b"x" * 126)))  # control frame too long
put("ws_frames", raw(4096, 4, bytes([0x83, 0x80, 0, 0, 0, 0])))  # reserved opcode
put("ws_frames", bytes([1]) + bytes(range(64)))  # built mode
put("ws_frames", bytes([3]) + b"\x10\x00hello world, \xc3\xa9\xff" * 4)

# ---- json_bodies: the contract's bodies, and near misses
bodies = [
    {"password": "correct horse battery", "profile": {"display_name": "Ann", "email": "Ann@Example.com", "phone": "+1 (555) 010-0000", "city": "Rome"}},
    {"login": "ann@example.com", "password": "correct horse battery"},
    {"display_name": "Ann B", "bio": None, "email": "ann.b@example.com"},
    {"platform": "webhook", "handle": "ann-hook", "config": {"url": "http://127.0.0.1:9/hook", "secret": "s3cret"}},
    {"platform": "mastodon", "handle": "@ann@example.social", "config": {"base_url": "https://example.social", "token": "t"}},
    {"to": "0123456789abcdef0123456789abcdef"},
    {"contacts": [{"kind": "email", "value": "bob@example.com"}, {"kind": "phone", "value": "+15550100001"}, {"kind": "platform", "platform": "webhook", "value": "@Bob"}]},
    {"text": "hello, world", "idempotency_key": "k-1"},
    {"name": "Climbers"},
    {"account_id": "0123456789abcdef0123456789abcdef"},
    {"account_id": "0123456789abcdef0123456789abcdef", "kind": "post.v1", "text": "new route"},
    {"group_id": "0123456789abcdef0123456789abcdef", "note": "please bind"},
    {"text": "hi \u00e9 \ud83d\ude00"},
]
for b in bodies:
    put("json_bodies", json.dumps(b))
for s in ['["x"]', '[{"name":"x"}]', '{"name": 1}', '{"name": "x"', '{"contacts": {}}', 'null', '"x"', '1e999',
          '{"name":"\\ud800"}', '{"a":' * 64 + '1' + '}' * 64, '{"name":"x","name":"y"}', '\ufeff{"name":"x"}']:
    put("json_bodies", s)

# ---- cursors: query strings and cursors as the server writes them ({ms}.{id})
for q in ["", "limit=50", "limit=1&before=1764460800000.0123456789abcdef0123456789abcdef",
          "before=1764460800000.0123456789abcdef0123456789abcdef", "limit=200", "limit=201", "limit=0",
          "limit=-1", "limit=%31", "before=garbage", "before=.x", "before=18446744073709551616.x",
          "before=1.a.b", "before=%FF", "limit=5&limit=6", "1764460800000.0123456789abcdef"]:
    put("cursors", q)

# ---- normalize: rule name, then its arguments, one a line; "UNIT\t*N" repeats UNIT N times
for s in ["email\n Ann@Example.COM ", "email\na@b@c.d", "email\n\u0130@x.io", "phone\n+1 (555) 010-0000",
          "phone\n+0123456789", "handle\nwebhook\n @Bob", "handle\nmastodon\n@@ann@example.social",
          "patch\ndisplay_name\nAnn\nbio\n~\nemail\n ANN@example.com", "patch\ndisplay_name\n~",
          "patch\nphone\n+44 20 7946 0000", "profile\ndisplay_name\nAnn\nemail\nann@example.com\nphone\n+15550100000",
          "profile\nbio\nx", "profile\ndisplay_name\nx\tx\t*2000", "contact\nemail\nBob@Example.com",
          "contact\nphone\n(555) 010", "contact\nplatform\n@Bob\nwebhook", "contact\nplatform\nbob\nmyspace",
          "contact\nplatform\nab\t*1000\nmastodon", "name\n  Climbers  ", "text\nhello", "kind\npost.v1",
          "note\nplease", "post\nhello\nkey-1", "post\nhi\x00\n"]:
    put("normalize", s)
