#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) for Chorus's email connector tests.

Binds 127.0.0.1 on a port the OS chooses and prints ``READY <port>``. For every message it
accepts it prints one JSON line::

    {"mail_from": ..., "rcpt_tos": [...], "data": <full message text>,
     "subject": <decoded Subject>, "text": <decoded text/plain body>}

``subject`` and ``text`` are decoded with Python's ``email`` package, so a test can compare
them without reimplementing MIME encodings. The sink exits when its stdin closes, so it dies
with the test that started it.

Options:
    --fail-first N  answer the first N DATA commands with ``451 4.3.0 try again later``
    --reject        answer every RCPT with ``550 5.1.1 no such user``
    --spare-codes   accept Chorus's verification codes (Subject ``Your Chorus code: …``)
                    whatever the options above say: they fail or reject only the other
                    messages (``--reject`` then answers the DATA of those, as it cannot
                    tell them apart at RCPT)

Needs ``pip install aiosmtpd`` (1.4.x).
"""

import argparse
import asyncio
import json
import sys
import threading
from email import policy
from email.parser import BytesParser

from aiosmtpd.smtp import SMTP


def emit(obj):
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


CODE_SUBJECT = "Your Chorus code"


class Handler:
    def __init__(self, fail_first, reject, spare_codes):
        self.fail_left = fail_first
        self.reject = reject
        self.spare_codes = spare_codes

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reject and not self.spare_codes:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        message = BytesParser(policy=policy.default).parsebytes(raw)
        spared = self.spare_codes and str(message["subject"] or "").startswith(CODE_SUBJECT)
        if not spared:
            if self.reject:
                return "550 5.1.1 no such user"
            if self.fail_left > 0:
                self.fail_left -= 1
                return "451 4.3.0 try again later"
        body = message.get_body(preferencelist=("plain",))
        emit(
            {
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "data": raw.decode("utf-8", "replace"),
                "subject": str(message["subject"]) if message["subject"] else None,
                "text": body.get_content() if body is not None else None,
            }
        )
        return "250 OK"


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fail-first", type=int, default=0, metavar="N")
    parser.add_argument("--reject", action="store_true")
    parser.add_argument("--spare-codes", action="store_true")
    args = parser.parse_args()

    loop = asyncio.get_running_loop()
    handler = Handler(args.fail_first, args.reject, args.spare_codes)
    # aiosmtpd's Controller cannot report an OS-chosen port, so the server is made here.
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="localhost", enable_SMTPUTF8=True),
        "127.0.0.1",
        0,
    )
    port = server.sockets[0].getsockname()[1]

    stdin_closed = asyncio.Event()

    def watch_stdin():
        # Blocks until the parent closes our stdin (or dies).
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            loop.call_soon_threadsafe(stdin_closed.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    sys.stdout.write(f"READY {port}\n")
    sys.stdout.flush()

    await stdin_closed.wait()
    # Not wait_closed(): since Python 3.12 it also waits for open client connections.
    server.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
