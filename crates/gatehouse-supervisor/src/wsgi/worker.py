"""gatehouse's built-in WSGI worker: one process serving one WSGI app over HTTP/1.1 on a Unix socket.

Embedded in the gatehouse binary and written under the runtime directory at start; gatehouse runs
it as `python worker.py --socket PATH [--threads N] [--root-path /app] [--workers N] MODULE:CALLABLE`
for every `[[app]] wsgi = "module:callable"`. It needs nothing but the standard library
(Python 3.8 or later).

Only gatehouse talks to it (the socket sits in a directory private to gatehouse), and gatehouse
normalises every request first: HTTP/1.1, validated header names and values, hop-by-hop headers
removed, the body buffered and sent with a Content-Length (never chunked). So the parser here is
small: it trusts the framing and keeps connections alive.

Environ (PEP 3333): SCRIPT_NAME is `--root-path` and PATH_INFO the rest of the path (a path that
does not start with the root path was already stripped by the route, and is PATH_INFO whole);
REMOTE_ADDR comes from X-Real-IP and wsgi.url_scheme from X-Forwarded-Proto, which gatehouse sets
on every request and never takes from the client. Header names with `_` are dropped, as Gunicorn
does, so that `X-Real_IP` cannot pose as `X-Real-IP`.

Responses: the head and a body that fits in BUFFER_LIMIT leave in one write with a Content-Length.
gatehouse buffers a sync app's whole response anyway, so holding a few chunks back changes nothing
a client sees; a response gatehouse streams (`text/event-stream`, `X-Accel-Buffering: no`) is sent
chunk by chunk, as is anything larger than BUFFER_LIMIT. `wsgi.file_wrapper` of a regular file
goes out with sendfile(2).

Processes and signals: the app is imported before the socket is bound, so readiness (gatehouse
waits for an answer to `OPTIONS *`) means the app is loaded, and an app that cannot be imported
exits with status 4 and its traceback on stderr. `--threads N` > 1 serves N requests at once from
a pool of N threads started up front (Gunicorn's gthread); one thread serves inline, with no
thread at all. TERM stops accepting, finishes the requests in flight, and exits 0; INT and QUIT
exit at once; ABRT (gatehouse's request deadline) dumps every thread's stack (faulthandler).
An exception in the app is a 500 with its traceback on stderr, and the worker keeps serving; so
is a status or header gatehouse could not forward (a 1xx status, a CR, LF or other control
character, a header name that is not a token, a Content-Length that is not a number), rejected by
start_response with a ValueError. SystemExit (sys.exit() in the app) or any other BaseException
is logged with its traceback and exits the worker (status 1), whatever thread it is in, and the
supervisor starts a fresh one. A HEAD response carries the head a GET would (with no
Content-Length when the app returned no body, rather than a wrong 0), never a body. After TERM,
each response says `Connection: close`, as the worker closes its connection after it.
"""

import faulthandler
import io
import os
import re
import selectors
import signal
import socket
import sys
import traceback

# The most bytes of a response held back so that head and body leave in one write.
BUFFER_LIMIT = 64 * 1024
# gatehouse's own limit (`max_header_bytes`) comes first; this only bounds a broken peer.
HEAD_LIMIT = 1024 * 1024
RECV_SIZE = 256 * 1024
# Gunicorn's exit status for an app that cannot be loaded.
EXIT_APP_LOAD_ERROR = 4

# The 500 for an exception before the head left: [HEAD][close]. A HEAD's has the head alone (with
# the length a GET's body has), so the connection stays in step.
STATUS_500_HEAD = (
    b"HTTP/1.1 500 Internal Server Error\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 22\r\n"
)
STATUS_500_BODY = b"Internal Server Error\n"
STATUS_500 = {
    (False, False): STATUS_500_HEAD + b"\r\n" + STATUS_500_BODY,
    (False, True): STATUS_500_HEAD + b"Connection: close\r\n\r\n" + STATUS_500_BODY,
    (True, False): STATUS_500_HEAD + b"\r\n",
    (True, True): STATUS_500_HEAD + b"Connection: close\r\n\r\n",
}
STATUS_400 = (
    b"HTTP/1.1 400 Bad Request\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nBad Request\n"
)
OPTIONS_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
CLOSE_LINE = "Connection: close\r\n"
CHUNK_END = b"0\r\n\r\n"

# What gatehouse (and HTTP) accepts from an app, checked in start_response so that a breach is
# the app's 500 with a traceback, not a 502 without one: a final status (no 1xx: this worker sends
# no interim responses) with a reason free of control characters (a CR or LF would start headers
# of its own), token header names, and header values of visible Latin-1, space and tab. Names
# repeat, so the ones seen valid are remembered; a value that str.isprintable() passes (the common
# case, and quicker than a regex) is valid, or not Latin-1 and then fails to encode (a 500 too).
VALID_STATUS = re.compile(r"[2-9][0-9][0-9] [\t\x20-\x7e\x80-\xff]*\Z").match
VALID_NAME = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+\Z").match
INVALID_VALUE = re.compile(r"[^\t\x20-\x7e\x80-\xff]").search
VALID_NAMES = {}


class BadRequest(Exception):
    """The request cannot be parsed; answered with 400 and the connection closed."""


class ClientGone(Exception):
    """The connection to gatehouse failed (closed or reset) in one of the worker's own socket
    operations: reading the request body, sending the response. Never raised for the app's own
    sockets, whose BrokenPipeError or ConnectionResetError is an error of the app (a 500)."""


# ----------------------------------------------------------------------------------------------
# Request bodies


class EmptyInput:
    """wsgi.input of a request without a body (one shared, stateless instance)."""

    __slots__ = ()

    def read(self, size=-1):
        return b""

    def readline(self, size=-1):
        return b""

    def readlines(self, hint=-1):
        return []

    def __iter__(self):
        return iter(())


EMPTY_INPUT = EmptyInput()


class SocketInput:
    """wsgi.input of a body not yet received in full: reads the rest from the socket, never past
    Content-Length (so `read()` without a size is safe, and the end reads as b"")."""

    __slots__ = ("_sock", "_buf", "_left")

    def __init__(self, sock, received, left):
        self._sock = sock
        self._buf = bytearray(received)
        self._left = left

    def _fill(self, want):
        try:
            data = self._sock.recv(min(self._left, max(want, RECV_SIZE)))
        except OSError as error:
            raise ClientGone("reading the request body: %s" % error) from None
        if not data:
            raise ClientGone("the connection closed in the middle of the request body")
        self._left -= len(data)
        self._buf += data

    def read(self, size=-1):
        if size is None or size < 0:
            while self._left:
                self._fill(self._left)
            size = len(self._buf)
        else:
            while len(self._buf) < size and self._left:
                self._fill(size - len(self._buf))
        data = bytes(self._buf[:size])
        del self._buf[:size]
        return data

    def readline(self, size=-1):
        while True:
            end = self._buf.find(b"\n")
            if end >= 0:
                end += 1
                break
            if not self._left or (size is not None and 0 <= size <= len(self._buf)):
                end = len(self._buf)
                break
            self._fill(RECV_SIZE)
        if size is not None and 0 <= size < end:
            end = size
        data = bytes(self._buf[:end])
        del self._buf[:end]
        return data

    def readlines(self, hint=-1):
        lines = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self):
        return iter(self.readline, b"")

    def drain(self):
        """Reads and drops what the app left unread, so the next request starts in place."""
        self._buf = bytearray()
        while self._left:
            try:
                data = self._sock.recv(min(self._left, RECV_SIZE))
            except OSError as error:
                raise ClientGone("reading the request body: %s" % error) from None
            if not data:
                raise ClientGone("the connection closed in the middle of the request body")
            self._left -= len(data)


class FileWrapper:
    """wsgi.file_wrapper: iterates a file in blocks; `Exchange` sends a regular file's rest with
    sendfile(2) instead."""

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        read = self.filelike.read
        blksize = self.blksize
        while True:
            block = read(blksize)
            if not block:
                return
            yield block


# ----------------------------------------------------------------------------------------------
# One request and its response


class Exchange:
    """start_response, write() and the response's way out for one request."""

    __slots__ = (
        "sock", "server", "status", "header_block", "head_sent", "is_head", "asked_close", "close",
        "no_body", "bodiless", "declared", "sent", "chunked", "streaming", "pending", "pending_len",
    )

    def __init__(self, sock, server, close, no_body):
        self.sock = sock
        # Its `stopping`: a TERM during the request makes this the connection's last response.
        self.server = server
        self.status = None
        # The app's headers, checked and joined (without framing, which is ours).
        self.header_block = ""
        self.head_sent = False
        # The request asked to close, or the worker is stopping.
        self.asked_close = close
        # The connection ends after this response.
        self.close = close
        # HEAD (or a 204/304 status): the head as for GET, never a body.
        self.no_body = self.is_head = no_body
        # A 204 or 304 status: no body and no Content-Length of ours.
        self.bodiless = False
        # The app's Content-Length, or None.
        self.declared = None
        self.sent = 0
        self.chunked = False
        # Each write goes out at once (gatehouse streams this response too), not held back.
        self.streaming = False
        self.pending = []
        self.pending_len = 0

    def start_response(self, status, headers, exc_info=None):
        if exc_info is not None:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError(
                "start_response() was already called (pass exc_info to replace the response)"
            )
        if type(status) is not str:
            raise TypeError("the status must be a str, e.g. '200 OK', not %r" % (status,))
        if not VALID_STATUS(status):
            if status[:1] == "1" and status[1:3].isdigit():
                raise ValueError(
                    "a 1xx status is not a response a WSGI app can send: %r" % (status,)
                )
            raise ValueError(
                "the status must be a 3-digit code (200-999), a space and a reason without"
                " control characters: %r" % (status,)
            )
        declared = None
        streaming = False
        close = self.asked_close
        parts = []
        for name, value in headers:
            if type(name) is not str or type(value) is not str:
                raise TypeError("header names and values must be str: %r" % ((name, value),))
            if name not in VALID_NAMES:
                if not VALID_NAME(name):
                    raise ValueError("invalid response header name %r" % ((name, value),))
                if len(VALID_NAMES) < 4096:
                    VALID_NAMES[name] = True
            if not value.isprintable() and INVALID_VALUE(value):
                raise ValueError("invalid response header value %r" % ((name, value),))
            lower = name.lower()
            if lower == "content-length":
                length = value.strip(" \t")
                if not (length.isdigit() and length.isascii()):
                    raise ValueError("invalid Content-Length %r" % (value,))
                length = int(length)
                if declared is not None and declared != length:
                    raise ValueError("two different Content-Length headers: %r" % (headers,))
                declared = length
            elif lower == "content-type":
                streaming = streaming or value.startswith("text/event-stream")
            elif lower == "x-accel-buffering":
                streaming = streaming or value.lower() == "no"
            elif lower == "transfer-encoding":
                continue  # the framing is ours
            elif lower == "connection":
                close = close or "close" in value.lower()
                continue  # and so is the connection
            parts.append("%s: %s\r\n" % (name, value))
        code = status[:3]
        self.bodiless = code == "204" or code == "304"
        self.no_body = self.is_head or self.bodiless
        self.status = status
        self.header_block = "".join(parts)
        self.declared = declared
        self.streaming = streaming
        self.close = close
        self.pending = []
        self.pending_len = 0
        return self.write

    def write(self, data):
        """The write() callable of PEP 3333 (also how the response iterable's items go out)."""
        if self.status is None:
            raise AssertionError("write() before start_response()")
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError("a WSGI response body is bytes, not %s" % type(data).__name__)
            data = bytes(data)
        if not data:
            return
        if self.streaming:
            self._send(data)
            return
        self.pending.append(data)
        self.pending_len += len(data)
        if self.pending_len > BUFFER_LIMIT:
            self.streaming = True
            pending = self.pending
            self.pending = []
            self.pending_len = 0
            for data in pending:
                self._send(data)

    def finish(self):
        """Everything the app produced has been written: send what is held back and end the body."""
        if not self.head_sent:
            if self.status is None:
                raise AssertionError("the app returned without calling start_response()")
            pending = self.pending
            body = pending[0] if len(pending) == 1 else b"".join(pending)
            self.pending = []
            head = self._head(len(body))
            self.head_sent = True
            if self.no_body or not body:
                self._sendall(head)
            else:
                body = self._fit(body)
                self._sendall(head + body)
                self.sent = len(body)
        elif self.chunked and not self.no_body:
            self._sendall(CHUNK_END)
        if self.declared is not None and self.sent < self.declared and not self.no_body:
            # The app promised more than it gave: only a closed connection tells the proxy.
            self.close = True

    def send_file(self, wrapper):
        """Sends a file_wrapper's regular file with sendfile(2); False when it cannot (then the
        wrapper is iterated like any response)."""
        if self.pending_len or self.status is None:
            return False
        filelike = wrapper.filelike
        try:
            fd = filelike.fileno()
            stat = os.fstat(fd)
            offset = filelike.tell()
        except (AttributeError, OSError, io.UnsupportedOperation, ValueError):
            return False
        if stat.st_mode & 0o170000 != 0o100000:  # not a regular file
            return False
        count = max(stat.st_size - offset, 0)
        if self.declared is not None:
            count = min(count, self.declared)
        head = self._head(count)
        self.head_sent = True
        self._sendall(head)
        if count and not self.no_body:
            try:
                # Fewer bytes than `count` when the file shrank meanwhile: then the connection
                # closes below, as the head promised more.
                self.sent = self.sock.sendfile(filelike, offset, count)
            except OSError as error:
                raise ClientGone("sendfile: %s" % error) from None
        if self.declared is not None and self.sent < self.declared and not self.no_body:
            self.close = True
        return True

    def _send(self, data):
        if not self.head_sent:
            head = self._head(None)
            self.head_sent = True
            self._sendall(head + self._frame(data))
        elif not self.no_body:
            self._sendall(self._frame(data))

    def _sendall(self, data):
        try:
            self.sock.sendall(data)
        except OSError as error:
            raise ClientGone("sending the response: %s" % error) from None

    def _frame(self, data):
        if self.no_body:
            return b""
        if self.chunked:
            return b"%x\r\n%s\r\n" % (len(data), data)
        data = self._fit(data)
        self.sent += len(data)
        return data

    def _fit(self, data):
        """Cuts what goes past the app's Content-Length (the proxy would read it as garbage)."""
        if self.declared is None:
            return data
        room = self.declared - self.sent
        return data if len(data) <= room else data[:max(room, 0)]

    def _head(self, length):
        """The response head; `length` is the whole body's size when known, else None."""
        framing = ""
        if self.declared is None and not self.bodiless:
            if length is not None:
                # A HEAD whose app returned no body does not know GET's length: no
                # Content-Length rather than a wrong 0 (RFC 9110 8.6; Gunicorn does the same).
                if length or not self.is_head:
                    framing = "Content-Length: %d\r\n" % length
                self.declared = length
            elif not self.no_body:
                self.chunked = True
                framing = "Transfer-Encoding: chunked\r\n"
        if self.close or self.server.stopping:
            # The worker closes the connection after this response (asked to, or stopping).
            self.close = True
            framing += CLOSE_LINE
        return ("HTTP/1.1 %s\r\n%s%s\r\n" % (self.status, self.header_block, framing)).encode(
            "latin-1"
        )


# ----------------------------------------------------------------------------------------------
# Connections


class Server:
    """The app, the environ every request starts from, and the connections' request loop."""

    def __init__(self, app, root_path, threads, workers):
        self.app = app
        self.root = root_path
        self.stopping = False
        self.base = {
            "wsgi.version": (1, 0),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": threads > 1,
            "wsgi.multiprocess": workers > 1,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
            "wsgi.input_terminated": True,
            "SCRIPT_NAME": root_path,
            "SERVER_SOFTWARE": "gatehouse",
        }
        # Header name as sent -> environ key (None: dropped). Names repeat, so this stays small.
        self.keys = {}

    def key(self, name):
        key = self.keys.get(name)
        if key is None and name not in self.keys:
            if "_" in name or not name or name != name.strip():
                key = None
            else:
                upper = name.upper().replace("-", "_")
                if upper == "CONTENT_TYPE" or upper == "CONTENT_LENGTH":
                    key = upper
                else:
                    key = "HTTP_" + upper
            if len(self.keys) < 4096:
                self.keys[name] = key
        return key

    def serve(self, conn):
        """Serves every complete request `conn` has received; False when it must close."""
        try:
            data = conn.sock.recv(RECV_SIZE)
        except OSError:
            return False
        if not data:
            return False
        buf = conn.buf + data if conn.buf else data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > HEAD_LIMIT:
                    return False
                conn.buf = buf
                return True
            try:
                keep, buf = self.handle(conn.sock, buf, end)
            except (ClientGone, OSError):
                return False
            if not keep or self.stopping:
                return False
            if not buf:
                conn.buf = b""
                return True

    def handle(self, sock, buf, end):
        """One request whose head ends at `end` in `buf`; returns (keep the connection, the bytes
        after the request)."""
        try:
            environ, length, close = self.environ(buf[:end].decode("latin-1"))
        except BadRequest as error:
            print("gatehouse worker: bad request: %s" % error, file=sys.stderr)
            sock.sendall(STATUS_400)
            return False, b""
        if environ is None:  # OPTIONS *: gatehouse's readiness probe
            sock.sendall(OPTIONS_OK)
            return True, buf[end + 4:]
        start = end + 4
        if length == 0:
            environ["wsgi.input"] = body = EMPTY_INPUT
            rest = buf[start:]
        elif len(buf) - start >= length:
            environ["wsgi.input"] = body = io.BytesIO(buf[start:start + length])
            rest = buf[start + length:]
        else:
            environ["wsgi.input"] = body = SocketInput(sock, buf[start:], length - (len(buf) - start))
            rest = b""
        exchange = Exchange(sock, self, close or self.stopping, environ["REQUEST_METHOD"] == "HEAD")
        self.run(environ, exchange)
        if type(body) is SocketInput:
            body.drain()
        return not exchange.close, rest

    def environ(self, head):
        lines = head.split("\r\n")
        try:
            method, target, protocol = lines[0].split(" ")
        except ValueError:
            raise BadRequest("request line %r" % lines[0][:200]) from None
        if target == "*" and method == "OPTIONS":
            return None, 0, False
        environ = self.base.copy()
        key = self.key
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise BadRequest("header line %r" % line[:200])
            name_key = key(name)
            if name_key is None:
                continue
            value = value.strip(" \t")
            if name_key in environ:
                environ[name_key] += "," + value
            else:
                environ[name_key] = value
        environ["REQUEST_METHOD"] = method
        environ["SERVER_PROTOCOL"] = protocol
        environ["RAW_URI"] = environ["REQUEST_URI"] = target
        path, _, environ["QUERY_STRING"] = target.partition("?")
        root = self.root
        if root and (path == root or path.startswith(root) and path[len(root)] == "/"):
            path = path[len(root):]
        environ["PATH_INFO"] = unquote(path) if "%" in path else path
        environ["REMOTE_ADDR"] = environ.get("HTTP_X_REAL_IP", "")
        https = environ.get("HTTP_X_FORWARDED_PROTO") == "https"
        environ["wsgi.url_scheme"] = "https" if https else "http"
        host = environ.get("HTTP_HOST")
        if host:
            name, port = split_host(host)
            environ["SERVER_NAME"] = name
            environ["SERVER_PORT"] = port or ("443" if https else "80")
        else:
            environ["SERVER_NAME"] = "localhost"
            environ["SERVER_PORT"] = "443" if https else "80"
        length = environ.get("CONTENT_LENGTH")
        if length:
            try:
                length = int(length)
            except ValueError:
                raise BadRequest("Content-Length %r" % length) from None
            if length < 0:
                raise BadRequest("Content-Length %r" % length)
        else:
            length = 0
        connection = environ.get("HTTP_CONNECTION")
        if protocol == "HTTP/1.1":
            close = connection is not None and "close" in connection.lower()
        else:
            close = connection is None or "keep-alive" not in connection.lower()
        return environ, length, close

    def run(self, environ, exchange):
        """Calls the app and sends its response; an exception is a 500 (or a cut connection once
        the head is out) with its traceback on stderr."""
        result = None
        fatal = False
        try:
            result = self.app(environ, exchange.start_response)
            if type(result) is FileWrapper and exchange.send_file(result):
                pass
            else:
                write = exchange.write
                for data in result:
                    write(data)
                exchange.finish()
        except ClientGone:
            # gatehouse closed the connection (its client left, or the request timed out).
            exchange.close = True
        except Exception:
            log_error(environ)
            if exchange.head_sent:
                exchange.close = True
            else:
                closing = exchange.close or self.stopping
                exchange.close = closing
                try:
                    exchange.sock.sendall(STATUS_500[exchange.is_head, closing])
                except OSError:
                    exchange.close = True
        except BaseException:
            # SystemExit (sys.exit() in the app), KeyboardInterrupt...: the app means the process
            # to end. Log it and exit, as Gunicorn does, so the supervisor starts a fresh worker
            # (in a pool, a thread that ended quietly would leave its connection busy forever).
            log_error(environ)
            fatal = sys.exc_info()[0].__name__
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    print("Error closing the response of %s" % environ["RAW_URI"], file=sys.stderr)
                    traceback.print_exc()
                    exchange.close = True
        if fatal:
            exit_now("the app raised %s" % fatal)


def log_error(environ):
    """The exception being handled, with its request, as Gunicorn logs it."""
    print(
        "Error handling request %s %s" % (environ["REQUEST_METHOD"], environ["RAW_URI"]),
        file=sys.stderr,
    )
    traceback.print_exc()
    sys.stderr.flush()


def exit_now(reason):
    """Ends the worker process at once (status 1), whatever thread this is; the supervisor
    replaces it."""
    print("gatehouse worker: %s; exiting" % reason, file=sys.stderr)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(1)


class Conn:
    __slots__ = ("sock", "buf")

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""


def split_host(host):
    """`name[:port]`, IPv6 literals in brackets included."""
    if host.endswith("]"):
        return host, ""
    name, colon, port = host.rpartition(":")
    if not colon or not port.isdigit():
        return host, ""
    return name, port


def unquote(path):
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(path).decode("latin-1")


# ----------------------------------------------------------------------------------------------
# The loops: one thread, or a pool


class Loop:
    """Waits for connections and requests; hands readable connections to `dispatch`."""

    def __init__(self, listener, server):
        self.listener = listener
        self.server = server
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ, None)
        wake_read, self.wake_write = socket.socketpair()
        wake_read.setblocking(False)
        self.wake_write.setblocking(False)
        self.wake_read = wake_read
        self.selector.register(wake_read, selectors.EVENT_READ, wake_read)
        # A signal writes a byte here, so that a stop interrupts the wait at once.
        signal.set_wakeup_fd(self.wake_write.fileno(), warn_on_full_buffer=False)
        self.conns = {}

    def run(self):
        select = self.selector.select
        while not self.server.stopping:
            for key, _ in select():
                data = key.data
                if data is None:
                    self.accept()
                elif data is self.wake_read:
                    try:
                        self.wake_read.recv(64)
                    except OSError:
                        pass
                else:
                    self.dispatch(data)
        self.stop()

    def accept(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                print("gatehouse worker: accept: %s" % error, file=sys.stderr)
                return
            sock.setblocking(True)
            conn = Conn(sock)
            self.conns[sock.fileno()] = conn
            self.arm(conn)

    def arm(self, conn):
        self.selector.register(conn.sock, selectors.EVENT_READ, conn)

    def dispatch(self, conn):
        if not self.server.serve(conn):
            self.drop(conn)

    def drop(self, conn):
        try:
            self.selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        self.conns.pop(conn.sock.fileno(), None)
        conn.sock.close()

    def stop(self):
        self.listener.close()
        for conn in list(self.conns.values()):
            self.drop(conn)


class PoolLoop(Loop):
    """`--threads N`: N threads started up front serve the readable connections (gthread). A
    connection leaves the selector while a thread serves it and returns after."""

    def __init__(self, listener, server, threads):
        super().__init__(listener, server)
        import queue
        import threading

        self.lock = threading.Lock()
        self.busy = set()
        self.jobs = queue.SimpleQueue()
        self.threads = [
            threading.Thread(target=self.work, name="gatehouse-wsgi-%d" % i, daemon=True)
            for i in range(threads)
        ]
        for thread in self.threads:
            thread.start()

    def arm(self, conn):
        with self.lock:
            self.selector.register(conn.sock, selectors.EVENT_READ, conn)

    def dispatch(self, conn):
        with self.lock:
            self.selector.unregister(conn.sock)
            self.busy.add(conn)
        self.jobs.put(conn)

    def work(self):
        try:
            self.serve_jobs()
        except BaseException:
            # The app's SystemExit exits in Server.run; this is for anything else that would
            # end the thread and leave its connection busy forever.
            traceback.print_exc()
            exit_now("a thread of the pool failed")

    def serve_jobs(self):
        serve = self.server.serve
        while True:
            conn = self.jobs.get()
            if conn is None:
                return
            keep = serve(conn)
            with self.lock:
                self.busy.discard(conn)
                if keep and not self.server.stopping:
                    self.selector.register(conn.sock, selectors.EVENT_READ, conn)
                    continue
                self.conns.pop(conn.sock.fileno(), None)
            conn.sock.close()

    def drop(self, conn):
        with self.lock:
            super().drop(conn)

    def stop(self):
        self.listener.close()
        with self.lock:
            idle = [conn for conn in self.conns.values() if conn not in self.busy]
        for conn in idle:
            self.drop(conn)
        # Requests in flight finish (gatehouse KILLs us after its graceful_timeout if they hang).
        for _ in self.threads:
            self.jobs.put(None)
        for thread in self.threads:
            thread.join()


# ----------------------------------------------------------------------------------------------
# Start


def load(target):
    """`module:callable` (Gunicorn's default callable is `application`); `module:factory()` calls
    a factory without arguments."""
    module_name, _, name = target.partition(":")
    name = name or "application"
    call = name.endswith("()")
    if call:
        name = name[:-2]
    import importlib

    obj = importlib.import_module(module_name)
    for part in name.split("."):
        obj = getattr(obj, part)
    if call:
        obj = obj()
    if not callable(obj):
        raise TypeError("%s is not callable" % target)
    return obj


def parse_args(argv):
    import argparse

    parser = argparse.ArgumentParser(prog="gatehouse-wsgi-worker")
    parser.add_argument("--socket", default=os.environ.get("GATEHOUSE_SOCKET"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--root-path", default="")
    parser.add_argument("app", help="module:callable")
    args = parser.parse_args(argv)
    if not args.socket:
        parser.error("no --socket and no $GATEHOUSE_SOCKET")
    return args


def main(argv):
    args = parse_args(argv)
    faulthandler.enable(all_threads=True)
    # The app's directory comes first on sys.path, as it does under Gunicorn; this script's own
    # directory (the runtime directory) does not belong there.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.path.insert(0, os.getcwd())

    stopping = []

    def on_term(signum, frame):
        stopping.append(signum)
        if server is not None:
            server.stopping = True

    server = None
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, lambda signum, frame: os._exit(0))
    signal.signal(signal.SIGQUIT, lambda signum, frame: os._exit(0))

    try:
        app = load(args.app)
    except BaseException:
        print("gatehouse worker: cannot load the WSGI app %s:" % args.app, file=sys.stderr)
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(EXIT_APP_LOAD_ERROR)

    server = Server(app, args.root_path, args.threads, args.workers)
    if stopping:
        return 0
    try:
        os.unlink(args.socket)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(args.socket)
    listener.listen(1024)
    listener.setblocking(False)
    if args.threads > 1:
        loop = PoolLoop(listener, server, args.threads)
    else:
        loop = Loop(listener, server)
    mode = "%d threads" % args.threads if args.threads > 1 else "1 thread"
    print("gatehouse wsgi worker: serving %s (%s) on unix:%s" % (args.app, mode, args.socket), flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
