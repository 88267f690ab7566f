"""Traffic for scripts/dashboard-snapshot that chorus-loadtest does not make: requests refused
by a limit (429) and a device too slow to read its events (close 1013), which then catches up
with `resume` (events replayed). Loopback only; every step is bounded in time.

    traffic.py rejections URL SECONDS    wrong passwords for one account, a burst every 3 s
    traffic.py slow-reader URL           a device that stops reading, closed with 1013, resumes
"""

import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

import websocket


def call(url, method, path, body=None, token=None):
    """One JSON request; answers (status, body as JSON or None)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, (json.loads(raw) if raw else None)


def account(url, name):
    status, body = call(url, "POST", "/v1/accounts",
                        {"password": "dashboard-pw-1", "profile": {"display_name": name}})
    if status != 201:
        sys.exit(f"create account {name}: {status} {body}")
    return body["account_id"], body["token"]


def rejections(url, seconds):
    """A burst of wrong passwords for one account every 3 s: past the per-account login limit
    each answers 429 `rate_limited` (kind `login` on the dashboard's rejections panel)."""
    aid, _ = account(url, "Locked out")
    end = time.monotonic() + seconds
    refused = 0
    while time.monotonic() < end:
        for _ in range(4):
            status, _ = call(url, "POST", "/v1/sessions", {"login": aid, "password": "wrong"})
            refused += status == 429
        time.sleep(3)
    print(f"rejections: {refused} answered 429")


def ws_url(url, token):
    return url.replace("http://", "ws://", 1) + "/v1/ws?token=" + token


def slow_reader(url, patches=300, fields=30):
    """`slow` never reads while `writer`, its friend, changes a large profile `patches` times:
    its socket's buffers fill, its frames pass the server's --ws-mailbox, and the server
    closes it with 1013. Then it comes back and resumes from the `seq` of its first hello."""
    writer, wtok = account(url, "Writer")
    slow, stok = account(url, "Slow")
    status, body = call(url, "POST", "/v1/friends/requests", {"to": slow}, wtok)
    if status != 201:
        sys.exit(f"friend request: {status} {body}")
    status, body = call(url, "POST", f"/v1/friends/requests/{writer}/accept", None, stok)
    if status != 200:
        sys.exit(f"accept: {status} {body}")

    # A small receive buffer, so that the kernel holds little of what the server sends.
    ws = websocket.create_connection(ws_url(url, stok), timeout=30,
                                     sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
    hello = json.loads(ws.recv())
    since = hello["seq"]

    def patch(part):
        for i in range(part, patches, 4):
            change = {f"f{f}": f"{i:05}" + "w" * 995 for f in range(fields)}
            status, body = call(url, "PATCH", "/v1/me/profile", change, wtok)
            if status != 200:
                sys.exit(f"patch {i}: {status} {body}")

    writers = [threading.Thread(target=patch, args=(p,)) for p in range(4)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()

    # Now it reads: what was queued, then the close.
    read, code = 0, None
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            op, data = ws.recv_data(control_frame=True)
            if op == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                break
            if op == websocket.ABNF.OPCODE_TEXT:
                read += 1
    except (websocket.WebSocketException, OSError) as e:
        code = f"ended ({type(e).__name__})"
    ws.close()
    print(f"slow reader: read {read} of {patches} events, then close {code}")

    # It catches up.
    ws = websocket.create_connection(ws_url(url, stok), timeout=30)
    json.loads(ws.recv())
    ws.send(json.dumps({"type": "resume", "since": since}))
    last = since
    while last < since + patches:
        event = json.loads(ws.recv())
        last = event.get("seq", last)
    ws.close()
    print(f"slow reader: resumed from seq {since} to {last}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "rejections":
        rejections(sys.argv[2], float(sys.argv[3]))
    elif len(sys.argv) == 3 and sys.argv[1] == "slow-reader":
        slow_reader(sys.argv[2])
    else:
        sys.exit(__doc__)
