"""A WSGI app that cannot be imported: the built-in worker must exit with its traceback logged.

Run as `wsgi = "wsgi_broken:app"` from this directory.
"""

print("wsgi_broken: importing", flush=True)


def load_settings():
    raise ImportError("wsgi_broken cannot be imported, as intended")


load_settings()


def app(environ, start_response):  # never reached
    start_response("200 OK", [])
    return [b""]
