"""A stdlib WSGI app for the built-in worker's tests, wrapped in `wsgiref.validate.validator`.

Run as `wsgi = "wsgi_app:app"` (validated) or `wsgi = "wsgi_app:raw"` (the same app unwrapped,
for what the validator hides, such as `wsgi.file_wrapper` going out with sendfile) from this
directory. The validator raises AssertionError on any breach of PEP 3333 by the app *or* the
server, and this module turns its warnings into errors too, so a test that finds no
"AssertionError" or "Warning" in the log has seen a conforming server.

Endpoints (every response but /error carries the serving process's pid in X-Worker-Pid):
  /                 "hello from PID"
  /environ          JSON: the CGI variables and wsgi.* flags the app saw
  /echo?mode=M      POST: JSON with the body's length and sha256, read with M = read (one
                    read(n)), chunks (read(1000) until empty), readline, readlines, iter
  /stream?n=N       N chunks from a generator (add &nobuffer=1 for X-Accel-Buffering: no)
  /write            the body through the write() callable, then more from the iterable
  /error            raises before start_response: a 500 and a traceback
  /error-mid-body   raises after the first chunk
  /exc-info         start_response, then an exception, then start_response(..., exc_info)
  /file             this file through wsgi.file_wrapper
  /closing          an iterable whose close() prints "iterable closed"
  /status?code=N    an empty answer with status N (204, 304, 404...)
  /redirect         302 to /environ
  /sleep?ms=N       prints "sleeping N ms", answers after N milliseconds
  /barrier?n=N      answers once N requests are inside it at once (proves N threads)
  /hang             never answers: sleeps in hang_forever() (SIGABRT shows it in the stack)
  /crash            exits 1 mid-request
  /exit             calls sys.exit(): the worker logs it and exits, as Gunicorn's does
  /empty            200 with no body and no Content-Length (HEAD must not announce 0)
  /app-reset        raises the app's own ConnectionResetError (a 500, not a client gone)
  /shrinking-file   a file_wrapper file that shrinks to half between stat and sendfile
  /invalid?what=W   (raw only: the validator refuses them first) start_response with a broken
                    status or header, W in INVALID: each must be a 500 with a traceback
"""

import hashlib
import io
import json
import os
import sys
import tempfile
import threading
import time
import warnings
from urllib.parse import parse_qs
from wsgiref.validate import WSGIWarning, validator

warnings.simplefilter("error", WSGIWarning)

CGI_KEYS = (
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
    "CONTENT_LENGTH", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR",
    "HTTP_HOST", "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_REAL_IP",
    "HTTP_X_CUSTOM", "HTTP_COOKIE", "wsgi.url_scheme",
)

BARRIER = {"inside": 0, "cond": threading.Condition()}

# What /invalid?what=W passes to start_response: (status, extra headers).
INVALID = {
    "status-crlf": ("200 OK\r\nX-Injected: yes", []),
    "status-lf": ("200 OK\nX-Injected: yes", []),
    "status-nul": ("200 OK\x00", []),
    "status-1xx": ("103 Early Hints", []),
    "status-100": ("100 Continue", []),
    "name-space": ("200 OK", [("X Bad", "v")]),
    "name-tab": ("200 OK", [("X-Bad\t", "v")]),
    "name-colon": ("200 OK", [("X-Bad:", "v")]),
    "name-empty": ("200 OK", [("", "v")]),
    "name-crlf": ("200 OK", [("X-Bad\r\nX-Injected", "v")]),
    "value-crlf": ("200 OK", [("X-Bad", "v\r\nX-Injected: yes")]),
    "value-nul": ("200 OK", [("X-Bad", "v\x00")]),
    "length-negative": ("200 OK", [("Content-Length", "-1")]),
    "length-text": ("200 OK", [("Content-Length", "ten")]),
    "length-plus": ("200 OK", [("Content-Length", "+5")]),
}


def hang_forever():
    print("hang_forever: entered", flush=True)
    while True:
        time.sleep(3600)


def headers(content_type="text/plain", **extra):
    out = [("Content-Type", content_type), ("X-Worker-Pid", str(os.getpid()))]
    out.extend((name.replace("_", "-"), value) for name, value in extra.items())
    return out


def text(start_response, body, status="200 OK", **extra):
    data = body.encode()
    start_response(status, headers(Content_Length=str(len(data)), **extra))
    return [data]


def read_body(stream, mode, length):
    if mode == "read":
        return stream.read(length)
    if mode == "chunks":
        parts = []
        while True:
            part = stream.read(1000)
            if not part:
                return b"".join(parts)
            parts.append(part)
    if mode == "readline":
        parts = []
        while True:
            line = stream.readline()
            if not line:
                return b"".join(parts)
            parts.append(line)
    if mode == "readlines":
        return b"".join(stream.readlines())
    if mode == "iter":
        return b"".join(stream)
    raise ValueError("unknown mode %r" % mode)


class Closing:
    def __init__(self, chunks):
        self.chunks = chunks

    def __iter__(self):
        return iter(self.chunks)

    def close(self):
        print("iterable closed", flush=True)


class Shrinking(io.FileIO):
    """A file that loses its second half as the worker asks where it stands (after its fstat,
    before its sendfile): sendfile sends less than the size the head announced."""

    def tell(self):
        position = super().tell()
        os.ftruncate(self.fileno(), SHRINKING_SIZE // 2)
        return position


SHRINKING_SIZE = 64 * 1024


def shrinking_file():
    handle, path = tempfile.mkstemp(prefix="wsgi-shrinking-")
    os.write(handle, b"x" * SHRINKING_SIZE)
    os.close(handle)
    file = Shrinking(path, "r+b")
    os.unlink(path)
    return file


def raw(environ, start_response):
    path = environ["PATH_INFO"]
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/":
        return text(start_response, "hello from %d\n" % os.getpid())
    if path == "/environ":
        seen = {key: environ[key] for key in CGI_KEYS if key in environ}
        for flag in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once", "wsgi.input_terminated"):
            seen[flag] = environ.get(flag)
        seen["wsgi.version"] = list(environ["wsgi.version"])
        return text(start_response, json.dumps(seen), content_type="application/json")
    if path == "/echo":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = read_body(environ["wsgi.input"], query.get("mode", "read"), length)
        info = {
            "length": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "content_length": environ.get("CONTENT_LENGTH"),
            "content_type": environ.get("CONTENT_TYPE"),
        }
        return text(start_response, json.dumps(info), content_type="application/json")
    if path == "/stream":
        n = int(query.get("n", "5"))
        extra = {"X_Accel_Buffering": "no"} if query.get("nobuffer") else {}
        start_response("200 OK", headers(**extra))
        return (b"chunk %d\n" % i for i in range(n))
    if path == "/write":
        write = start_response("200 OK", headers())
        write(b"written ")
        write(b"then ")
        return [b"returned\n"]
    if path == "/error":
        raise RuntimeError("boom from the app, as asked")
    if path == "/error-mid-body":
        start_response("200 OK", headers(X_Accel_Buffering="no"))

        def body():
            yield b"first chunk\n"
            raise RuntimeError("boom in the middle of the body, as asked")

        return body()
    if path == "/exc-info":
        start_response("200 OK", headers())
        try:
            raise ValueError("replaced response, as asked")
        except ValueError:
            start_response("500 Internal Server Error", headers(), sys.exc_info())
        return [b"replaced by exc_info\n"]
    if path == "/file":
        handle = open(__file__, "rb")
        size = os.fstat(handle.fileno()).st_size
        start_response("200 OK", headers(Content_Length=str(size)))
        return environ["wsgi.file_wrapper"](handle, 4096)
    if path == "/closing":
        start_response("200 OK", headers())
        return Closing([b"closing ", b"iterable\n"])
    if path == "/status":
        code = int(query.get("code", "204"))
        reasons = {204: "No Content", 304: "Not Modified", 404: "Not Found"}
        if code in (204, 304):
            start_response("%d %s" % (code, reasons[code]), [("X-Worker-Pid", str(os.getpid()))])
            return []
        return text(start_response, "status %d\n" % code, status="%d %s" % (code, reasons.get(code, "Other")))
    if path == "/redirect":
        start_response("302 Found", headers(Location="/environ", Content_Length="0"))
        return []
    if path == "/sleep":
        ms = int(query.get("ms", "1000"))
        print("sleeping %d ms" % ms, flush=True)
        time.sleep(ms / 1000)
        return text(start_response, "slept\n")
    if path == "/barrier":
        n = int(query.get("n", "2"))
        cond = BARRIER["cond"]
        with cond:
            BARRIER["inside"] += 1
            print("inside the barrier: %d" % BARRIER["inside"], flush=True)
            cond.notify_all()
            met = cond.wait_for(lambda: BARRIER["inside"] >= n, timeout=30)
        return text(start_response, "together\n" if met else "alone\n")
    if path == "/hang":
        hang_forever()
    if path == "/crash":
        os._exit(1)
    if path == "/exit":
        print("exiting from the app", flush=True)
        sys.exit("sys.exit() from the app, as asked")
    if path == "/empty":
        start_response("200 OK", headers())
        return []
    if path == "/app-reset":
        raise ConnectionResetError("the app's own peer reset, as asked")
    if path == "/shrinking-file":
        start_response("200 OK", headers())
        return environ["wsgi.file_wrapper"](shrinking_file())
    if path == "/invalid":
        status, extra = INVALID[query["what"]]
        start_response(status, headers() + extra)
        return [b"must not be sent\n"]
    return text(start_response, "not found\n", status="404 Not Found")


app = validator(raw)
