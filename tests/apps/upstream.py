"""The real upstream of the end-to-end tests: a stdlib-only threaded HTTP/1.1 server.

Usage: upstream.py [--port N | --unix PATH]

Once bound it prints `LISTENING 127.0.0.1:PORT` or `LISTENING unix:PATH` on stdout, and then one
`REQ METHOD TARGET` line per request (before answering), so tests can see what was forwarded.

Endpoints:
  /echo          JSON: method, path, query, headers (every header as [name, value], in order),
                 body_len and body_sha256 of the request body (Content-Length or chunked)
  /sleep?ms=N    answers "slept" after N milliseconds
  /status/N      answers status N
  /big?bytes=N   streams N bytes of b"x" (Content-Length, or chunked with &chunked=1)
  /ws            a minimal WebSocket echo (text, binary, ping, close)
  /malformed     writes a garbage status line and closes
  /hop           a response carrying hop-by-hop headers (Connection: X-Up-Hop, X-Up-Hop, Keep-Alive)
  /health        "ok"
  anything else  "upstream PATH"
"""

import argparse
import base64
import hashlib
import json
import os
import socketserver
import struct
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # silence the default stderr access log
        pass

    def parse_request(self):
        # Announce each request once its head is parsed, before it is answered.
        ok = super().parse_request()
        if ok:
            print(f"REQ {self.command} {self.path}", flush=True)
        return ok

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def dispatch(self):
        url = urlsplit(self.path)
        if path_is_body_free(url.path):
            self.drain_body()
        query = parse_qs(url.query)
        path = url.path
        if path == "/echo" or path.endswith("/echo"):
            self.echo(url)
        elif path == "/sleep":
            time.sleep(int(query.get("ms", ["1000"])[0]) / 1000)
            self.reply(200, b"slept\n")
        elif path.startswith("/status/"):
            self.reply(int(path.rsplit("/", 1)[1]), b"status\n")
        elif path == "/big":
            self.big(int(query.get("bytes", ["0"])[0]), query.get("chunked") == ["1"])
        elif path == "/ws":
            self.websocket()
        elif path == "/malformed":
            self.wfile.write(b"HTTP/1.1 abc this is not a status line\r\n\x00\x01\r\n\r\n")
            self.wfile.flush()
            self.close_connection = True
        elif path == "/hop":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "4")
            self.send_header("Connection", "X-Up-Hop")
            self.send_header("X-Up-Hop", "secret")
            self.send_header("Keep-Alive", "timeout=5")
            self.send_header("X-Up-Kept", "yes")
            self.end_headers()
            self.wfile.write(b"hop\n")
        elif path == "/health":
            self.reply(200, b"ok\n")
        else:
            self.reply(200, f"upstream {path}\n".encode())

    def reply(self, status, body, content_type="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def drain_body(self):
        for _ in self.read_body():
            pass

    def read_body(self):
        """Yields the request body in pieces (Content-Length or chunked)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                remaining = size
                while remaining:
                    piece = self.rfile.read(min(remaining, 65536))
                    if not piece:
                        return
                    remaining -= len(piece)
                    yield piece
                self.rfile.readline()
        else:
            remaining = int(self.headers.get("Content-Length", "0"))
            while remaining:
                piece = self.rfile.read(min(remaining, 65536))
                if not piece:
                    return
                remaining -= len(piece)
                yield piece

    def echo(self, url):
        digest = hashlib.sha256()
        length = 0
        for piece in self.read_body():
            digest.update(piece)
            length += len(piece)
        body = json.dumps(
            {
                "method": self.command,
                "path": url.path,
                "query": url.query,
                "version": self.request_version,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body_len": length,
                "body_sha256": digest.hexdigest(),
                # The client side of the connection: equal across requests when the proxy reuses it.
                "peer": str(self.client_address),
            }
        ).encode()
        self.reply(200, body, "application/json")

    def big(self, size, chunked):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(size))
        self.end_headers()
        block = b"x" * 65536
        remaining = size
        while remaining:
            piece = block[: min(remaining, len(block))]
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            else:
                self.wfile.write(piece)
            remaining -= len(piece)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def websocket(self):
        key = self.headers.get("Sec-WebSocket-Key", "")
        if self.headers.get("Upgrade", "").lower() != "websocket" or not key:
            self.reply(400, b"not a websocket handshake\n")
            return
        accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        while True:
            frame = self.read_frame()
            if frame is None:
                return
            opcode, payload = frame
            if opcode == 0x8:  # close: echo it and stop
                self.write_frame(0x8, payload)
                return
            if opcode == 0x9:  # ping
                self.write_frame(0xA, payload)
            elif opcode in (0x1, 0x2):
                self.write_frame(opcode, payload)

    def read_frame(self):
        head = self.rfile.read(2)
        if len(head) < 2:
            return None
        opcode = head[0] & 0x0F
        masked = head[1] & 0x80
        length = head[1] & 0x7F
        if length == 126:
            length = struct.unpack(">H", self.rfile.read(2))[0]
        elif length == 127:
            length = struct.unpack(">Q", self.rfile.read(8))[0]
        mask = self.rfile.read(4) if masked else b"\0\0\0\0"
        data = self.rfile.read(length)
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        return opcode, payload

    def write_frame(self, opcode, payload):
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([n])
        elif n < 65536:
            head += bytes([126]) + struct.pack(">H", n)
        else:
            head += bytes([127]) + struct.pack(">Q", n)
        self.wfile.write(head + payload)
        self.wfile.flush()


def path_is_body_free(path):
    """Every endpoint but /echo ignores the request body; it is read anyway to keep the connection usable."""
    return not path.endswith("/echo") and path != "/ws"


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 128

    def get_request(self):
        conn, _ = super().get_request()
        return conn, ("unix", conn.fileno())  # BaseHTTPRequestHandler wants a (host, port) client address


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--unix")
    args = parser.parse_args()
    if args.unix:
        if os.path.exists(args.unix):
            os.unlink(args.unix)
        server = UnixHTTPServer(args.unix, Handler)
        where = f"unix:{args.unix}"
    else:
        ThreadingHTTPServer.daemon_threads = True
        ThreadingHTTPServer.request_queue_size = 128
        server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
        where = f"127.0.0.1:{server.server_address[1]}"
    print(f"LISTENING {where}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
