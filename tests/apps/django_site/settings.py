"""A minimal Django project for the comparison suite (`tests/e2e/wsgi/compare.rs`): no database,
no templates, no CSRF (the suite posts forms without tokens), production settings (DEBUG off).

Served as `django_site.wsgi:application` from `tests/apps` with
DJANGO_SETTINGS_MODULE=django_site.settings, by the built-in worker and by Gunicorn.
"""

SECRET_KEY = "gatehouse-tests-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "django_site.urls"
INSTALLED_APPS = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES = {}
USE_TZ = True
DEFAULT_CHARSET = "utf-8"
# An upload larger than this goes to a temporary file: both paths are exercised.
FILE_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
