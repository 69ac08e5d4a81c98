"""The comparison suite's endpoints, as Django views (the Flask app's twins)."""

import hashlib
import json

from django.http import (
    Http404,
    HttpResponse,
    HttpResponseRedirect,
    HttpResponsePermanentRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.views.decorators.http import require_GET, require_POST


@require_GET
def hello(request):
    return HttpResponse("Hello, World!", content_type="text/plain")


@require_GET
def json_hello(request):
    return JsonResponse({"message": "Hello, World!", "numbers": [1, 2, 3]})


@require_POST
def form(request):
    return JsonResponse({"fields": {key: request.POST.getlist(key) for key in request.POST}})


@require_POST
def json_echo(request):
    return JsonResponse(
        {"received": json.loads(request.body), "content_type": request.content_type}
    )


@require_POST
def upload(request):
    upload = request.FILES["file"]
    data = upload.read()
    return JsonResponse(
        {
            "filename": upload.name,
            "mimetype": upload.content_type,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "note": request.POST.get("note"),
        }
    )


@require_GET
def stream(request):
    return StreamingHttpResponse(
        ("line %d\n" % i for i in range(50)), content_type="text/plain"
    )


def go_home(request):
    return HttpResponseRedirect("/")


def go_home_external(request):
    return HttpResponsePermanentRedirect(request.build_absolute_uri("/json"))


def set_cookies(request):
    response = JsonResponse({"set": True})
    response.set_cookie("flavour", "oatmeal raisin", max_age=3600, httponly=True)
    response.set_cookie("theme", "dark", samesite="Lax")
    return response


def cookies(request):
    return JsonResponse({"cookies": dict(request.COOKIES)})


def request_info(request):
    return JsonResponse(
        {
            "method": request.method,
            "path": request.path,
            "full_path": request.get_full_path(),
            "url": request.build_absolute_uri(),
            "script_root": request.META.get("SCRIPT_NAME", ""),
            "args": {key: request.GET.getlist(key) for key in request.GET},
            "custom": request.headers.get("X-Custom"),
            "accept": request.headers.get("Accept"),
            "content_length": request.META.get("CONTENT_LENGTH"),
            "body": request.body.decode("utf-8"),
            "scheme": request.scheme,
            "host": request.get_host(),
        }
    )


def path(request, rest):
    return JsonResponse({"rest": rest, "path": request.path})


def missing(request):
    raise Http404("missing, as asked")


def error(request):
    raise RuntimeError("django_site: an error, as asked")
