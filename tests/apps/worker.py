"""An app worker for the supervisor tests: a stdlib-only HTTP/1.1 server, one process.

Usage: worker.py [--socket PATH | --port N] [--threads N] [--fail-health] [--crash-on-start]
                 [--slow-start-ms N]

It binds the Unix socket `--socket` (default $GATEHOUSE_SOCKET) or the loopback port `--port`
(default $PORT), prints `LISTENING unix:PATH` or `LISTENING 127.0.0.1:PORT` on stdout, and serves
one request at a time (Gunicorn's sync worker) or `--threads N` at once. The switches can also be
given as WORKER_FAIL_HEALTH=1, WORKER_CRASH_ON_START=1 and WORKER_SLOW_START_MS=N.

On SIGTERM it finishes the request in flight, then exits 0 (like Gunicorn's sync worker).

Endpoints:
  /                hello, with the pid in the body and in X-Worker-Pid
  /health          "ok", or 500 after --fail-health or /fail-health
  /fail-health     makes /health answer 500 from now on
  /pid             the pid
  /whoami          JSON: pid, ppid, pgid, uid, gid, cwd
  /env?name=X      the value of $X ("" when unset)
  /sleep?ms=N      prints `sleeping N ms`, answers after N milliseconds
  /hang            never answers: sleeps forever in hang_forever() (SIGABRT shows it in the stack)
  /crash           exits 1 mid-request
  /leak?mb=N       allocates N MiB and keeps them
  /spawn           starts `sleep 1000` (same process group, does not watch its parent); its pid
  /echo            POST: JSON with the body's length and sha256
"""

import argparse
import hashlib
import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def parse_args():
    env = os.environ
    p = argparse.ArgumentParser()
    p.add_argument("--socket", default=env.get("GATEHOUSE_SOCKET"))
    p.add_argument("--port", type=int, default=int(env["PORT"]) if env.get("PORT") else None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--fail-health", action="store_true", default=env.get("WORKER_FAIL_HEALTH") == "1")
    p.add_argument("--crash-on-start", action="store_true", default=env.get("WORKER_CRASH_ON_START") == "1")
    p.add_argument("--slow-start-ms", type=int, default=int(env.get("WORKER_SLOW_START_MS", "0")))
    return p.parse_args()


ARGS = parse_args()
if ARGS.crash_on_start:
    print("crashing on start, as asked", file=sys.stderr)
    sys.exit(3)

STATE = {"fail_health": ARGS.fail_health, "in_flight": 0, "stopping": False}
LEAKED = []
LOCK = threading.Lock()


def hang_forever():
    print("hang_forever: entered", flush=True)
    while True:
        time.sleep(3600)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def address_string(self):
        return "unix" if isinstance(self.client_address, (str, bytes)) else self.client_address[0]

    def log_request(self, code="-", size="-"):
        if not self.path.startswith("/health"):
            super().log_request(code, size)

    def do_GET(self):
        with LOCK:
            STATE["in_flight"] += 1
        try:
            self.dispatch()
        finally:
            with LOCK:
                STATE["in_flight"] -= 1
                last = STATE["in_flight"] == 0
            if STATE["stopping"] and last:
                # SIGTERM came while this request ran: it is answered, now go.
                self.wfile.flush()
                os._exit(0)

    do_POST = do_GET

    def dispatch(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        arg = lambda name, default: query.get(name, [default])[0]
        path = url.path
        if path == "/health":
            if STATE["fail_health"]:
                self.reply(500, "failing\n")
            else:
                self.reply(200, "ok\n")
        elif path == "/fail-health":
            STATE["fail_health"] = True
            self.reply(200, "health will fail\n")
        elif path == "/pid":
            self.reply(200, str(os.getpid()))
        elif path == "/whoami":
            info = {
                "pid": os.getpid(),
                "ppid": os.getppid(),
                "pgid": os.getpgid(0),
                "uid": os.getuid(),
                "gid": os.getgid(),
                "cwd": os.getcwd(),
            }
            self.reply(200, json.dumps(info), "application/json")
        elif path == "/env":
            self.reply(200, os.environ.get(arg("name", ""), ""))
        elif path == "/sleep":
            ms = int(arg("ms", "1000"))
            print(f"sleeping {ms} ms", flush=True)
            time.sleep(ms / 1000)
            self.reply(200, "slept\n")
        elif path == "/hang":
            hang_forever()
        elif path == "/crash":
            os._exit(1)
        elif path == "/leak":
            mb = int(arg("mb", "10"))
            LEAKED.append(b"\x01" * (mb * 1024 * 1024))  # filled, so resident
            self.reply(200, f"leaked {mb} MiB\n")
        elif path == "/spawn":
            child = subprocess.Popen(["sleep", "1000"])
            self.reply(200, str(child.pid))
        elif path == "/echo":
            body = self.read_body()
            info = {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}
            self.reply(200, json.dumps(info), "application/json")
        else:
            self.reply(200, f"hello from {os.getpid()}\n")

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def reply(self, status, text, content_type="text/plain"):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Worker-Pid", str(os.getpid()))
        self.end_headers()
        self.wfile.write(body)


def server_class(threads, unix):
    base = ThreadingHTTPServer if threads > 1 else HTTPServer

    class Server(base):
        address_family = socket.AF_UNIX if unix else socket.AF_INET
        daemon_threads = True

        def server_bind(self):
            if unix:
                socketserver.TCPServer.server_bind(self)
                self.server_name, self.server_port = "localhost", 0
            else:
                super().server_bind()

    return Server


def on_term(signum, frame):
    STATE["stopping"] = True
    if STATE["in_flight"] == 0:
        sys.exit(0)  # idle: raised in the main thread, wherever it waits


def main():
    if ARGS.slow_start_ms:
        time.sleep(ARGS.slow_start_ms / 1000)
    signal.signal(signal.SIGTERM, on_term)
    if ARGS.port is not None:
        server = server_class(ARGS.threads, False)(("127.0.0.1", ARGS.port), Handler)
        where = "%s:%d" % server.server_address[:2]
    elif ARGS.socket:
        if os.path.exists(ARGS.socket):
            os.unlink(ARGS.socket)
        server = server_class(ARGS.threads, True)(ARGS.socket, Handler)
        where = "unix:" + ARGS.socket
    else:
        sys.exit("worker.py: no --socket, --port, $GATEHOUSE_SOCKET or $PORT")
    print(f"LISTENING {where}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
