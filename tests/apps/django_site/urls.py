from django.urls import path

from . import views

urlpatterns = [
    path("", views.hello),
    path("json", views.json_hello),
    path("form", views.form),
    path("json-echo", views.json_echo),
    path("upload", views.upload),
    path("stream", views.stream),
    path("redirect", views.go_home),
    path("redirect-external", views.go_home_external),
    path("cookies/set", views.set_cookies),
    path("cookies", views.cookies),
    path("request", views.request_info),
    path("path/<path:rest>", views.path),
    path("missing", views.missing),
    path("error", views.error),
]
