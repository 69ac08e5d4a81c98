//! The Nginx translation on small sites: what each directive becomes.

use super::*;

fn run(site: &str, binds: &[&str]) -> String {
    let binds = Binds(binds.iter().map(|b| (*b).to_owned()).collect());
    let cx = Context {
        file: "site.conf",
        binds: &binds,
        app: "web",
    };
    let mut doc = Document::default();
    translate(site, &cx, &mut doc).unwrap();
    doc.render()
}

fn assert_has(out: &str, lines: &[&str]) {
    for line in lines {
        assert!(out.contains(line), "{line:?} in\n{out}");
    }
}

const GUIDE: &str = r#"
upstream app_server {
    server 127.0.0.1:8000 fail_timeout=0;
}

server {
    listen 80;
    server_name yourdomain.com;

    location / {
        proxy_pass http://app_server;
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
    }

    location /static/ {
        alias /path/to/static/;
    }
}
"#;

#[test]
fn the_guides_snippet() {
    let out = run(GUIDE, &["0.0.0.0:8000"]);
    assert_has(
        &out,
        &[
            "[[listener]]\naddress = \"0.0.0.0:80\"",
            "path = \"/\"\napp = \"web\"",
            "path = \"/static/\"\nstatic = { root = \"/path/to/static/\" }",
            "max_body_size = \"1MiB\"",
            "# server_name yourdomain.com: Nginx's default server answers any Host",
            "X-Real-IP $remote_addr` (site.conf:13): gatehouse sets it itself",
        ],
    );
    assert!(!out.contains("[[upstream]]"), "{out}");
    assert!(!out.contains("host = "), "{out}");
}

#[test]
fn a_proxy_pass_elsewhere_is_an_upstream_and_other_servers_get_hosts() {
    let out = run(
        r#"
        http {
          client_max_body_size 20m;
          keepalive_timeout 1m;
          server { listen 8080 default_server; return 404; }
          server {
            listen 8080;
            server_name .example.com;
            root /srv/www;
            location /api/ { proxy_pass http://10.0.0.5:9000/; proxy_read_timeout 90s; }
            location = /old { return 301 https://$host/new; }
            location ~ \.php$ { deny all; }
          }
        }"#,
        &["unix:/run/gunicorn.sock"],
    );
    assert_has(
        &out,
        &[
            "max_body_size = \"20MiB\"",
            "keepalive_timeout = \"60s\"",
            "[[upstream]]\nname = \"10.0.0.5-9000\"\nservers = [\"10.0.0.5:9000\"]\ntimeout = \"90s\"",
            "path = \"/\"\nrespond = { status = 404 }",
            "host = \"example.com\"\npath = \"/api/\"\nupstream = \"10.0.0.5-9000\"\nstrip_prefix = true",
            "host = \"*.example.com\"\npath = \"/api/\"",
            "host = \"example.com\"\npath = \"/old\"\n",
            "redirect = \"https://{host}/new\"",
            "host = \"example.com\"\npath = \"/\"\nstatic = { root = \"/srv/www\" }",
            "location ~ \\.php$` (site.conf:12): not translated: regular-expression",
            "No Nginx location proxied to Gunicorn's bind",
        ],
    );
}

#[test]
fn tls_servers_and_https_redirects() {
    let out = run(
        r#"
        server { listen 80; server_name a.example; return 301 https://$host$request_uri; }
        server {
          listen 443 ssl;
          server_name a.example;
          ssl_certificate /etc/ssl/a.pem;
          ssl_certificate_key /etc/ssl/a.key;
          ssl_protocols TLSv1.3;
          add_header Strict-Transport-Security "max-age=63072000" always;
          location / { proxy_pass http://unix:/run/gunicorn.sock; }
        }"#,
        &["unix:/run/gunicorn.sock"],
    );
    assert_has(
        &out,
        &[
            "redirect_https = \"https://{host}\"",
            "address = \"0.0.0.0:443\"",
            "tls = { certificates = [{ cert = \"/etc/ssl/a.pem\", key = \"/etc/ssl/a.key\" }], min_version = \"1.3\", hsts = \"max-age=63072000\" }",
            "host = \"a.example\"\npath = \"/\"\napp = \"web\"",
        ],
    );
}

#[test]
fn endpoints_sizes_and_times() {
    assert!(same_endpoint("0.0.0.0:8000", "127.0.0.1:8000"));
    assert!(same_endpoint("127.0.0.1:8000", "localhost:8000"));
    assert!(!same_endpoint("127.0.0.1:8000", "127.0.0.1:8001"));
    assert!(same_endpoint("unix:/run/g.sock", "unix:/run/g.sock"));
    assert!(!same_endpoint("10.0.0.1:8000", "127.0.0.1:8000"));
    assert_eq!(size("10m"), Some(10 << 20));
    assert_eq!(size("512K"), Some(512 << 10));
    assert_eq!(size("12x"), None);
    assert_eq!(size_value(1536), Value::Int(1536));
    assert_eq!(size_value(3 << 10), Value::str("3KiB"));
    assert_eq!(seconds("75s"), Some(75));
    assert_eq!(seconds("2h"), Some(7200));
    assert_eq!(listen_address("80"), "0.0.0.0:80");
    assert_eq!(listen_address("[::]:443"), "[::]:443");
    assert_eq!(listen_address("127.0.0.1"), "127.0.0.1:80");
    assert_eq!(upstream_server("backend"), "backend:80");
}

#[test]
fn exact_locations_never_become_catch_all_or_file_roots() {
    let out = run(
        r#"
        server {
          listen 80;
          root /srv/www;
          location = / { proxy_pass http://127.0.0.1:8000; }
          location = /favicon.ico { expires 30d; }
          location = /health { proxy_pass http://127.0.0.1:8000; }
        }"#,
        &["127.0.0.1:8000"],
    );
    assert_has(
        &out,
        &[
            "location = /` (site.conf:5): not translated: exact location = / would match every path",
            "location = /favicon.ico` (site.conf:6): not translated: an exact location serving one file (/srv/www/favicon.ico)",
            // The server's root still answers /.
            "path = \"/\"\nstatic = { root = \"/srv/www\" }",
            "path = \"/health\"\napp = \"web\"\n# Nginx matched this path exactly",
        ],
    );
    assert!(!out.contains("favicon.ico\" }"), "{out}");
    assert!(!out.contains("path = \"/\"\napp"), "{out}");
}

#[test]
fn try_files_with_a_named_proxy_location_becomes_a_static_fallback() {
    // Gunicorn's own deployment docs.
    let out = run(
        r#"
        upstream app_server { server unix:/tmp/gunicorn.sock fail_timeout=0; }
        server {
          listen 80;
          server_name example.com www.example.com;
          root /path/to/app/current/public;
          location / {
            try_files $uri @proxy_to_app;
          }
          location @proxy_to_app {
            proxy_set_header Host $http_host;
            proxy_redirect off;
            proxy_pass http://app_server;
          }
          location /media/ { alias /srv/media/; try_files $uri =404; }
          location /other/ { try_files $uri @nowhere; }
        }"#,
        &["unix:/tmp/gunicorn.sock"],
    );
    assert_has(
        &out,
        &[
            "path = \"/\"\nstatic = { root = \"/path/to/app/current/public/\", fallback = \"web\" }",
            "# try_files $uri @proxy_to_app: fallback = \"web\" answers when no file exists",
            "proxy_redirect off` (site.conf:12): gatehouse does not rewrite Location headers",
            "path = \"/media/\"\nstatic = { root = \"/srv/media/\" }\n",
            "try_files $uri @nowhere` (site.conf:16): not translated: no location @nowhere",
        ],
    );
    assert!(!out.contains("No Nginx location proxied"), "{out}");
    assert!(!out.contains("location @proxy_to_app` ("), "{out}");

    // A named location that proxies nowhere known keeps a comment, and the route stays static.
    let out = run(
        r#"
        server {
          listen 80;
          root /srv/www;
          location / { try_files $uri $uri/ @php; }
          location @php { fastcgi_pass unix:/run/php.sock; }
        }"#,
        &["127.0.0.1:8000"],
    );
    assert_has(
        &out,
        &[
            "path = \"/\"\nstatic = { root = \"/srv/www/\" }",
            "not translated: location @php does not proxy_pass",
        ],
    );
}

#[test]
fn literal_https_redirects_and_merged_listeners() {
    let out = run(
        r#"
        server { listen 80; server_name a.example; return 301 https://a.example:8443$request_uri; }
        server {
          listen 8443 ssl;
          server_name a.example;
          ssl_certificate /etc/ssl/a.pem;
          ssl_certificate_key /etc/ssl/a.key;
          location / { proxy_pass http://127.0.0.1:8000; }
        }"#,
        &["127.0.0.1:8000"],
    );
    assert_has(&out, &["redirect_https = \"https://a.example:8443\""]);
    assert!(!out.contains("are merged"), "{out}");

    let out = run(
        r#"
        server { listen 80; location / { proxy_pass http://127.0.0.1:8000; } }
        server { listen 8080; server_name admin.example; location / { return 403; } }"#,
        &["127.0.0.1:8000"],
    );
    assert_has(
        &out,
        &["# Nginx servers on different listeners (0.0.0.0:80, 0.0.0.0:8080) are merged here"],
    );
    assert_eq!(
        redirect_target("https://$host$request_uri").as_deref(),
        Some("https://{host}")
    );
    assert_eq!(
        redirect_target("https://$host:8443$request_uri").as_deref(),
        Some("https://{host}:8443")
    );
    assert_eq!(
        redirect_target("https://example.com$request_uri").as_deref(),
        Some("https://example.com")
    );
    assert_eq!(redirect_target("https://example.com/x$request_uri"), None);
    assert_eq!(redirect_target("https://$host/"), None);
}

#[test]
fn upstream_directives_backup_servers_and_unused_blocks_are_noted() {
    let out = run(
        r#"
        upstream api { least_conn; keepalive 16; server 10.0.0.5:9000; server 10.0.0.6:9000 backup; }
        upstream app_server { keepalive 8; server 127.0.0.1:8000; }
        upstream unused { server 10.0.0.9:80; }
        server {
          listen 80;
          location / { proxy_pass http://app_server; }
          location /api/ { proxy_pass http://api; }
        }"#,
        &["127.0.0.1:8000"],
    );
    assert_has(
        &out,
        &[
            "nginx `least_conn` (site.conf:2): gatehouse already sends each request",
            "nginx `keepalive 16` (site.conf:2): gatehouse keeps its own pool",
            "nginx `server 10.0.0.6:9000 backup` (site.conf:2): not translated: gatehouse has no backup servers",
            "nginx `keepalive 8` (site.conf:3): gatehouse keeps its own pool",
            "nginx `upstream unused` (site.conf:4): not translated: no proxy_pass uses this upstream",
        ],
    );
    assert!(!out.contains("upstream app_server` ("), "{out}");
}

#[test]
fn tls_without_certificates_and_old_protocols_are_noted() {
    let out = run(
        r#"
        server {
          listen 443 ssl;
          ssl_protocols TLSv1 TLSv1.1 TLSv1.2;
          location / { proxy_pass http://127.0.0.1:8000; }
        }"#,
        &["127.0.0.1:8000"],
    );
    assert_has(
        &out,
        &[
            "listens with ssl but has no ssl_certificate and ssl_certificate_key: add its { cert, key } to certificates below",
            "ssl_protocols TLSv1 TLSv1.1 TLSv1.2 (server at site.conf:2): not translated: TLSv1, TLSv1.1; gatehouse accepts TLS 1.2 and 1.3 only.",
            "tls = { certificates = [], min_version = \"1.2\" }",
        ],
    );
}

#[test]
fn includes_inside_servers_and_locations_are_not_followed() {
    let out = run(
        r#"
        server {
          listen 80;
          include snippets/ssl.conf;
          location / { include proxy_params; proxy_pass http://127.0.0.1:8000; }
        }"#,
        &["127.0.0.1:8000"],
    );
    assert_has(
        &out,
        &[
            "nginx `include snippets/ssl.conf` (site.conf:4): not followed: run gatehouse import",
            "nginx `include proxy_params` (site.conf:5): not followed: run gatehouse import",
        ],
    );
}
