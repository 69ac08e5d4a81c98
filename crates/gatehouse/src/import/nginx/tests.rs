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
