"""The demo app: a tiny standard-library HTTP server that gatehouse runs as its worker processes.

gatehouse starts one copy per worker with the worker's Unix socket in $GATEHOUSE_SOCKET, checks
/health before sending traffic, and proxies requests to it. Any app server that can listen on a
Unix socket (Gunicorn, Uvicorn, ...) takes its place the same way.
"""

import json
import os
import socketserver
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/health":
            self.reply(200, "text/plain", b"ok\n")
            return
        body = {
            "message": "hello from a gatehouse worker",
            "worker": os.environ.get("GATEHOUSE_WORKER"),
            "pid": os.getpid(),
            "path": self.path,
            "client": self.headers.get("X-Forwarded-For"),
            "request_id": self.headers.get("X-Request-Id"),
        }
        self.reply(200, "application/json", (json.dumps(body, indent=2) + "\n").encode())

    def reply(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass  # gatehouse writes the access log


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer, HTTPServer):
    daemon_threads = True

    def server_bind(self):
        socketserver.UnixStreamServer.server_bind(self)
        self.server_name, self.server_port = "localhost", 0

    def get_request(self):
        request, _ = super().get_request()
        return request, ("unix", 0)


if __name__ == "__main__":
    UnixHTTPServer(os.environ["GATEHOUSE_SOCKET"], Handler).serve_forever()
