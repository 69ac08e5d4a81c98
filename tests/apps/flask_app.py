"""A small Flask app for the supervisor tests under real Gunicorn, and for `cargo xtask bench`.

Run as `gunicorn -w 1 --bind unix:SOCKET flask_app:app` from this directory.

Endpoints (every response carries the serving process's pid in X-Worker-Pid):
  /                "Hello, World!" (the benchmark's hello)
  /json            {"message": "Hello, World!"} (the benchmark's JSON)
  /health          "ok"
  /pid             the pid of the process serving the request (Gunicorn's worker, not its master)
  /sleep?ms=N      prints `sleeping N ms`, answers after N milliseconds
  /hang            never answers: sleeps forever in hang_forever()
  /crash           exits 1 mid-request
"""

import os
import sys
import time

from flask import Flask, jsonify, request

app = Flask(__name__)


def hang_forever():
    print("hang_forever: entered", flush=True)
    while True:
        time.sleep(3600)


@app.after_request
def tag_pid(response):
    response.headers["X-Worker-Pid"] = str(os.getpid())
    return response


@app.get("/")
def hello():
    return "Hello, World!"


@app.get("/json")
def json_hello():
    return jsonify(message="Hello, World!")


@app.get("/health")
def health():
    return "ok\n"


@app.get("/pid")
def pid():
    return str(os.getpid())


@app.get("/sleep")
def sleep():
    ms = int(request.args.get("ms", "1000"))
    print(f"sleeping {ms} ms", flush=True)
    time.sleep(ms / 1000)
    return "slept\n"


@app.get("/hang")
def hang():
    hang_forever()


@app.get("/crash")
def crash():
    sys.stdout.flush()
    os._exit(1)
