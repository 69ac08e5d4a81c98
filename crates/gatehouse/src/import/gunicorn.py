"""Evaluate a Gunicorn config file the way Gunicorn does, and print its settings as JSON.

Run by `gatehouse import` as `python3 -c <this> CONFIG_FILE`. Gunicorn executes the file as the
module `__config__` and keeps the top-level names that are Gunicorn settings, ignoring the rest
(imports, helper variables); so does this script. Gunicorn itself need not be installed.

Output: {"settings": [[name, "value", json] | [name, "python", repr], ...], "cpus": N,
"cpu_dependent": bool} on stdout, where "python" marks a value JSON cannot hold (a server hook, an
object), kept as its repr; "cpus" is os.cpu_count() here and "cpu_dependent" says whether the file
mentions the CPU count (so `workers` may have been computed from it). Whatever the config prints
goes to stderr: stdout carries only the JSON.
"""

import importlib.machinery
import importlib.util
import json
import os
import sys

# Gunicorn's setting names (gunicorn.config.KNOWN_SETTINGS, Gunicorn 20 to 27).
SETTINGS = set("""
access_log_format accesslog asgi_disconnect_grace_period asgi_lifespan asgi_loop backlog bind
ca_certs capture_output casefold_http_method cert_reqs certfile chdir check_config child_exit
ciphers config control_socket control_socket_disable control_socket_mode daemon
default_proc_name dirty_apps dirty_graceful_timeout dirty_post_fork dirty_threads dirty_timeout
dirty_worker_exit dirty_worker_init dirty_workers disable_redirect_access_to_syslog
do_handshake_on_connect dogstatsd_tags enable_backlog_metric enable_stdio_inheritance errorlog
forwarded_allow_ips forwarder_headers graceful_timeout group header_map http2_cleartext
http2_initial_window_size http2_max_concurrent_streams http2_max_frame_size
http2_max_header_list_size http_parser http_protocols initgroups keepalive keyfile
limit_request_field_size limit_request_fields limit_request_line logconfig logconfig_dict
logconfig_json logger_class loglevel max_requests max_requests_jitter nworkers_changed
on_dirty_starting on_exit on_reload on_starting paste permit_obsolete_folding
permit_unconventional_http_method permit_unconventional_http_version pidfile post_fork
post_request post_worker_init pre_exec pre_fork pre_request preload_app print_config proc_name
protocol proxy_allow_ips proxy_protocol pythonpath raw_env raw_paste_global_conf reload
reload_engine reload_extra_files reuse_port root_path secure_scheme_headers sendfile spew
ssl_context ssl_version statsd_host statsd_prefix strip_header_spaces suppress_ragged_eofs
syslog syslog_addr syslog_facility syslog_prefix threads timeout tmp_upload_dir umask user
uwsgi_allow_ips websocket_max_message_size when_ready worker_abort worker_class
worker_connections worker_exit worker_int worker_tmp_dir workers wsgi_app
""".split())


def load(filename):
    # As gunicorn.app.base.Application.get_config_from_filename does.
    loader = importlib.machinery.SourceFileLoader("__config__", filename)
    spec = importlib.util.spec_from_file_location("__config__", filename, loader=loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["__config__"] = module
    spec.loader.exec_module(module)
    return vars(module)


def plain(value):
    """The value as JSON data, or raise TypeError."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    raise TypeError(type(value).__name__)


def main():
    # The config may print (or start programs that do): all of it goes to stderr, and the JSON to
    # the real stdout, kept aside as its own file descriptor.
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    names = load(sys.argv[1])
    with open(sys.argv[1], "rb") as f:
        source = f.read()
    settings = []
    for name in sorted(names):
        # Gunicorn matches setting names exactly: `WORKERS = 8` is not `workers`.
        if name not in SETTINGS:
            continue
        value = names[name]
        try:
            settings.append([name, "value", plain(value)])
        except TypeError:
            settings.append([name, "python", repr(value)])
    cpu_dependent = any(
        word in source for word in (b"cpu_count", b"sched_getaffinity", b"process_cpu_count")
    )
    json.dump(
        {"settings": settings, "cpus": os.cpu_count(), "cpu_dependent": cpu_dependent}, out
    )
    out.flush()


main()
