"""The demo app: a small WSGI app (standard library only) that gatehouse's built-in worker serves.

`config/demo.toml` names it as `wsgi = "app:app"`: gatehouse starts its workers with nothing but
`python3`, checks /health before sending traffic, and proxies requests to them. Any WSGI app
(Flask, Django, ...) takes its place the same way; `gatehouse serve app:app` runs it without a
config file.

Pages: / (HTML), /api (JSON about the request), /form (GET shows a form, POST echoes it),
/health.
"""

import html
import json
import os
from urllib.parse import parse_qs

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>gatehouse demo</title>
  <link rel="stylesheet" href="/static/style.css">
</head>
<body>
  <h1>gatehouse</h1>
  <p>This page comes from a WSGI app (<code>config/demo/app/app.py</code>) run by gatehouse's
  built-in worker {worker}, process {pid}.</p>
  <ul>
    <li><a href="/api">/api</a>: what the app saw of this request, as JSON</li>
    <li><a href="/form">/form</a>: a form that posts back to the app</li>
    <li><a href="/static/">/static/</a>: static files, served by gatehouse itself</li>
    <li><a href="/gatehouse">/gatehouse</a>: a fixed response from the config</li>
  </ul>
</body>
</html>
"""

FORM = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>gatehouse demo form</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body>
  <h1>A form</h1>
  {echo}
  <form method="post" action="/form">
    <label>Your name <input name="name" value="{name}"></label>
    <button type="submit">Send</button>
  </form>
  <p><a href="/">back</a></p>
</body>
</html>
"""


def respond(start_response, status, content_type, body):
    data = body.encode("utf-8")
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data)))])
    return [data]


def app(environ, start_response):
    path = environ.get("PATH_INFO") or "/"
    method = environ["REQUEST_METHOD"]
    if path == "/health":
        return respond(start_response, "200 OK", "text/plain", "ok\n")
    if path == "/":
        page = PAGE.format(worker=os.environ.get("GATEHOUSE_WORKER", "?"), pid=os.getpid())
        return respond(start_response, "200 OK", "text/html; charset=utf-8", page)
    if path == "/api":
        seen = {
            "message": "hello from a gatehouse worker",
            "worker": os.environ.get("GATEHOUSE_WORKER"),
            "pid": os.getpid(),
            "method": method,
            "path": path,
            "query": environ.get("QUERY_STRING", ""),
            "client": environ.get("REMOTE_ADDR"),
            "scheme": environ["wsgi.url_scheme"],
            "request_id": environ.get("HTTP_X_REQUEST_ID"),
        }
        return respond(start_response, "200 OK", "application/json", json.dumps(seen, indent=2) + "\n")
    if path == "/form":
        name = ""
        echo = ""
        if method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            fields = parse_qs(environ["wsgi.input"].read(length).decode("utf-8", "replace"))
            name = fields.get("name", [""])[0]
            echo = "<p>Hello, %s!</p>" % html.escape(name or "stranger")
        page = FORM.format(echo=echo, name=html.escape(name, quote=True))
        return respond(start_response, "200 OK", "text/html; charset=utf-8", page)
    return respond(start_response, "404 Not Found", "text/plain", "not found\n")
