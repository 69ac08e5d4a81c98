"""A WSGI app whose import waits until the file named by $WSGI_GATE exists.

Run as `wsgi = "wsgi_gate:app"` from this directory: the worker must not be ready while the
import waits, and must be ready (and serve) once it completes.
"""

import os
import time

GATE = os.environ["WSGI_GATE"]
print("wsgi_gate: importing, waiting for the gate", flush=True)
while not os.path.exists(GATE):
    time.sleep(0.02)
print("wsgi_gate: imported", flush=True)


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "6")])
    return [b"ready\n"]
