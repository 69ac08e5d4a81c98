"""A Flask app for the comparison suite (`tests/e2e/wsgi/compare.rs`): the same requests under the
built-in worker (`wsgi = "flask_site:app"`) and under Gunicorn (`gunicorn flask_site:app`) must
get identical answers. Run from this directory.

Endpoints: / (text), /json, /form (POST form fields), /json-echo (POST JSON), /upload (POST
multipart: a file and a field), /stream (a generator), /redirect, /redirect-external (an
absolute URL built from Host and scheme), /cookies/set, /cookies, /request (what Flask parsed of
the request: path, args, headers), /path/<rest>, /send-file (send_file of this file), /missing
(abort 404), /error (an exception: Flask's own 500 page).
"""

import hashlib

from flask import Flask, Response, abort, jsonify, redirect, request, send_file, url_for

app = Flask(__name__)


@app.get("/")
def hello():
    return "Hello, World!"


@app.get("/json")
def json_hello():
    return jsonify(message="Hello, World!", numbers=[1, 2, 3])


@app.post("/form")
def form():
    return jsonify(fields={key: request.form.getlist(key) for key in request.form})


@app.post("/json-echo")
def json_echo():
    return jsonify(received=request.get_json(), content_type=request.content_type)


@app.post("/upload")
def upload():
    upload = request.files["file"]
    data = upload.read()
    return jsonify(
        filename=upload.filename,
        mimetype=upload.mimetype,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        note=request.form.get("note"),
    )


@app.get("/stream")
def stream():
    def generate():
        for i in range(50):
            yield "line %d\n" % i

    return Response(generate(), mimetype="text/plain")


@app.get("/redirect")
def go_home():
    return redirect(url_for("hello"))


@app.get("/redirect-external")
def go_home_external():
    return redirect(url_for("json_hello", _external=True), code=301)


@app.get("/cookies/set")
def set_cookies():
    response = jsonify(set=True)
    response.set_cookie("flavour", "oatmeal raisin", max_age=3600, httponly=True)
    response.set_cookie("theme", "dark", samesite="Lax")
    return response


@app.get("/cookies")
def cookies():
    return jsonify(cookies=dict(request.cookies))


@app.route("/request", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
def request_info():
    return jsonify(
        method=request.method,
        path=request.path,
        full_path=request.full_path,
        url=request.url,
        script_root=request.script_root,
        args={key: request.args.getlist(key) for key in request.args},
        custom=request.headers.get("X-Custom"),
        accept=request.headers.get("Accept"),
        content_length=request.content_length,
        body=request.get_data(as_text=True),
        scheme=request.scheme,
        host=request.host,
    )


@app.get("/path/<path:rest>")
def path(rest):
    return jsonify(rest=rest, path=request.path)


@app.get("/send-file")
def send_this_file():
    return send_file(__file__, mimetype="text/x-python", etag=False, last_modified=None)


@app.get("/missing")
def missing():
    abort(404)


@app.get("/error")
def error():
    raise RuntimeError("flask_site: an error, as asked")
