"""Host-side peer for the in-OVMF HTTP client example (efisock-http-client).

Python's own http.server does the HTTP/1.1 work: SimpleHTTPRequestHandler
serves files from --dir with Content-Length and keep-alive. Only two things
are added, both because the stock handler lacks them:

* do_POST: read Content-Length bytes, answer {"length", "fnv1a64"} (JSON);
* GET /chunked/<file>: the same file re-framed as Transfer-Encoding: chunked
  (chunk sizes vary), so the guest's chunked decoder meets a real server.

Binds 127.0.0.1 only, prints "LISTENING <port>" on stdout once ready, logs
requests on stderr, and exits by itself after --max-seconds (xtask also
kills it). Usage: server.py --dir DIR [--port 0] [--max-seconds 600]
"""

import argparse
import json
import os
import sys
import threading
from functools import partial
from http.server import HTTPServer, SimpleHTTPRequestHandler

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MAX_POST = 256 * 1024 * 1024
CHUNK_SIZES = (1, 1000, 4096, 65536, 12345)


def fnv1a64_update(h, data):
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


class Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; the stock default is 1.0

    def do_GET(self):
        if not self.path.startswith("/chunked/"):
            return super().do_GET()
        name = os.path.basename(self.path[len("/chunked/"):])
        path = os.path.join(self.directory, name)
        if not name or not os.path.isfile(path):
            return self.send_error(404)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        with open(path, "rb") as f:
            i = 0
            while True:
                data = f.read(CHUNK_SIZES[i % len(CHUNK_SIZES)])
                i += 1
                if not data:
                    break
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.write(b"0\r\n\r\n")

    def do_POST(self):
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit() or int(length) > MAX_POST:
            return self.send_error(411 if length is None else 400)
        remaining, h, n = int(length), FNV_OFFSET, 0
        while remaining:
            data = self.rfile.read(min(remaining, 65536))
            if not data:
                return self.send_error(400, "body truncated")
            h = fnv1a64_update(h, data)
            n += len(data)
            remaining -= len(data)
        body = json.dumps({"length": n, "fnv1a64": "%016x" % h}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=600.0)
    a = ap.parse_args()
    server = HTTPServer(("127.0.0.1", a.port), partial(Handler, directory=a.dir))
    timer = threading.Timer(a.max_seconds, server.shutdown)
    timer.daemon = True
    timer.start()
    print("LISTENING %d" % server.server_address[1], flush=True)
    server.serve_forever()
    sys.stderr.write("server.py: stopped\n")


if __name__ == "__main__":
    main()
