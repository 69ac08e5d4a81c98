//! `gatehouse serve MODULE:APP`: run a WSGI app with the built-in worker and no config file, with
//! Gunicorn's flag names (and defaults) where Gunicorn has the flag.
//!
//! The flags become a config file, rendered as TOML (`--print-config` shows it: the start of a
//! real `gatehouse.toml`), checked like any config, written into a private temporary directory
//! (which also holds the worker sockets) and run by `run::run`, so `serve` behaves exactly as
//! `run` does: same validation, same signals (HUP re-reads the file and rolls the workers), same
//! logs. Every path in it is absolute, since relative paths in a config file are resolved
//! against the file's directory, not the directory `serve` was started in.

use std::fmt::Write as _;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::{check, EXIT_CONFIG_ERROR, EXIT_RUNTIME_FAILURE};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The WSGI app, as `module:callable` (`module:factory()` calls a factory).
    #[arg(value_name = "MODULE:APP")]
    pub app: String,

    // Boxed: the CLI's subcommands stay small next to each other.
    #[command(flatten)]
    pub options: Box<ServeOptions>,
}

#[derive(Debug, Args)]
pub struct ServeOptions {
    /// Where to listen: HOST:PORT, HOST (port 8000), tcp://HOST:PORT, unix:PATH or fd://N;
    /// repeat for several. Default: 0.0.0.0:$PORT if $PORT is set, else 127.0.0.1:8000.
    #[arg(short, long, value_name = "ADDR")]
    pub bind: Vec<String>,

    /// Worker processes: a number or "auto" (2 x cores + 1). Default: $WEB_CONCURRENCY, else 1.
    #[arg(short, long, value_name = "N")]
    pub workers: Option<String>,

    /// Threads per worker: requests one worker serves at once.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub threads: u32,

    /// Seconds a request may take: then 504, the worker's stack in the log, a fresh worker
    /// (0: no limit).
    #[arg(short, long, value_name = "S", default_value_t = 30)]
    pub timeout: u64,

    /// Seconds workers (and connections) get to finish their requests when stopping.
    #[arg(long, value_name = "S", default_value_t = 30)]
    pub graceful_timeout: u64,

    /// Recycle a worker after this many requests (0: never).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_requests: u64,

    /// Add a random 0..=N to each worker's max_requests.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_requests_jitter: u64,

    /// Serve the files of DIR under the URL prefix PREFIX (e.g. /static/=./static); repeatable.
    #[arg(long = "static", value_name = "PREFIX=DIR")]
    pub static_dirs: Vec<String>,

    /// The directory the app is imported from (and the workers run in). Default: this one.
    #[arg(long, value_name = "DIR")]
    pub chdir: Option<PathBuf>,

    /// The Python interpreter of the workers (e.g. .venv/bin/python). Default: python3 from PATH.
    #[arg(long, value_name = "PATH")]
    pub python: Option<String>,

    /// An environment variable for the workers; repeatable.
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,

    /// SCRIPT_NAME: the prefix the app is mounted under (e.g. /app).
    #[arg(long, value_name = "PATH")]
    pub root_path: Option<String>,

    /// The access log: a file, or - for stdout. Default: none.
    #[arg(long, value_name = "FILE")]
    pub access_logfile: Option<String>,

    /// The access log's format: combined, json, or Gunicorn's '%(h)s %(r)s ...'.
    #[arg(long, value_name = "FORMAT")]
    pub access_logformat: Option<String>,

    /// debug, info, warning, error or critical.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub log_level: String,

    /// Write gatehouse's pid to this file.
    #[arg(short, long, value_name = "FILE")]
    pub pid: Option<PathBuf>,

    /// Proxies (comma-separated addresses or networks, * for any) whose X-Forwarded-For is trusted.
    #[arg(long, value_name = "IPS")]
    pub forwarded_allow_ips: Option<String>,

    /// Seconds an idle client connection stays open.
    #[arg(long, value_name = "S")]
    pub keep_alive: Option<u64>,

    /// TLS certificate chain (PEM); with --keyfile, every TCP bind serves HTTPS.
    #[arg(long, value_name = "FILE", requires = "keyfile")]
    pub certfile: Option<PathBuf>,

    /// TLS private key (PEM), with --certfile.
    #[arg(long, value_name = "FILE", requires = "certfile")]
    pub keyfile: Option<PathBuf>,

    /// The admin listener (/metrics, /livez, /readyz, /status). Default: none.
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,

    /// Print the config these flags make, as TOML, and exit.
    #[arg(long)]
    pub print_config: bool,
}

pub fn serve(args: ServeArgs) -> ExitCode {
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(error) => {
            eprintln!("gatehouse serve: cannot read the current directory: {error}");
            return ExitCode::from(EXIT_RUNTIME_FAILURE);
        }
    };
    let home = serve_dir();
    let env = Env {
        web_concurrency: std::env::var("WEB_CONCURRENCY").ok(),
        port: std::env::var("PORT").ok(),
    };
    let toml = match render(&args.app, &args.options, &cwd, &home, &env) {
        Ok(toml) => toml,
        Err(message) => {
            eprintln!("gatehouse serve: {message}");
            return ExitCode::from(EXIT_CONFIG_ERROR);
        }
    };
    if args.options.print_config {
        print!("{toml}");
        return ExitCode::SUCCESS;
    }
    let path = home.join("gatehouse.toml");
    if let Err(error) = gatehouse_config::parse(&path, &toml) {
        eprintln!(
            "gatehouse serve: the flags make an invalid config (see it with --print-config):\n{}",
            check::describe(&error)
        );
        return ExitCode::from(EXIT_CONFIG_ERROR);
    }
    if let Err(error) = write_private(&home, &path, &toml) {
        eprintln!("gatehouse serve: cannot write {}: {error}", path.display());
        return ExitCode::from(EXIT_RUNTIME_FAILURE);
    }
    let code = crate::run::run(&path);
    let _ = std::fs::remove_dir_all(&home);
    code
}

/// The environment variables Gunicorn reads for its defaults.
#[derive(Debug, Default)]
struct Env {
    /// `$WEB_CONCURRENCY`: the default `--workers`.
    web_concurrency: Option<String>,
    /// `$PORT`: without `--bind`, listen on 0.0.0.0:$PORT (as Gunicorn does, for PaaS).
    port: Option<String>,
}

/// This process's own directory for the rendered config and the worker sockets. The sockets
/// (`DIR/run/app/w<id>.sock`) must fit in `sun_path` (107 bytes): with a $TMPDIR too long for
/// that, the directory goes in /tmp.
fn serve_dir() -> PathBuf {
    let name = format!("gatehouse-serve-{}", std::process::id());
    let dir = std::env::temp_dir().join(&name);
    if socket_fits(&dir) {
        dir
    } else {
        Path::new("/tmp").join(name)
    }
}

/// Whether the longest worker socket path under `home` fits in `sun_path`.
fn socket_fits(home: &Path) -> bool {
    // `/run/` + the app's name + `/w` + a u64 + `.sock`.
    const SOCKET_SUFFIX: usize = "/run/".len() + APP_NAME.len() + "/w".len() + 20 + ".sock".len();
    home.as_os_str().len() + SOCKET_SUFFIX <= 107
}

/// The name of the one app: short, since it is a directory in every worker socket's path (a
/// long module name would push the path past `sun_path`'s 107 bytes).
const APP_NAME: &str = "app";

/// Creates `home` (0700: the worker sockets live there) afresh and writes the config into it.
fn write_private(home: &Path, path: &Path, toml: &str) -> std::io::Result<()> {
    // A directory of an earlier process with the same pid is stale.
    let _ = std::fs::remove_dir_all(home);
    std::fs::DirBuilder::new().mode(0o700).create(home)?;
    std::fs::write(path, toml)
}

/// The config the flags describe. `cwd` resolves relative paths; `home` holds the sockets.
fn render(
    target: &str,
    args: &ServeOptions,
    cwd: &Path,
    home: &Path,
    env: &Env,
) -> Result<String, String> {
    let absolute = |path: &Path| cwd.join(path);
    let directory = args
        .chdir
        .as_deref()
        .map_or_else(|| cwd.to_path_buf(), absolute);
    let mut out = String::from("# Rendered by `gatehouse serve`; a start for a gatehouse.toml.\n");

    out.push_str("\n[server]\n");
    let _ = writeln!(out, "runtime_dir = {}", quote_path(&home.join("run")));
    out.push_str("watch_config = false\n");
    let _ = writeln!(out, "graceful_timeout = \"{}s\"", args.graceful_timeout);
    if let Some(pid) = &args.pid {
        let _ = writeln!(out, "pid_file = {}", quote_path(&absolute(pid)));
    }
    if let Some(ips) = &args.forwarded_allow_ips {
        let networks: Vec<String> = ips
            .split(',')
            .map(str::trim)
            .filter(|ip| !ip.is_empty())
            .flat_map(|ip| match ip {
                "*" => vec!["0.0.0.0/0".to_owned(), "::/0".to_owned()],
                ip => vec![ip.to_owned()],
            })
            .map(|network| quote(&network))
            .collect();
        let _ = writeln!(out, "trusted_proxies = [{}]", networks.join(", "));
    }

    out.push_str("\n[admin]\n");
    let _ = writeln!(
        out,
        "listen = {}",
        quote(args.admin.as_deref().unwrap_or("off"))
    );

    out.push_str("\n[log]\n");
    let _ = writeln!(out, "level = {}", quote(log_level(&args.log_level)?));
    let access_log = match args.access_logfile.as_deref() {
        None => "off".to_owned(),
        Some("-") => "-".to_owned(),
        Some(file) => absolute(Path::new(file)).display().to_string(),
    };
    let _ = writeln!(out, "access_log = {}", quote(&access_log));
    if let Some(format) = &args.access_logformat {
        let _ = writeln!(out, "access_format = {}", quote(format));
    }

    if let Some(seconds) = args.keep_alive {
        out.push_str("\n[limits]\n");
        let _ = writeln!(out, "keepalive_timeout = \"{seconds}s\"");
    }

    let default_bind = match env.port.as_deref().map(str::trim) {
        Some(port) if !port.is_empty() => format!("0.0.0.0:{port}"),
        _ => "127.0.0.1:8000".to_owned(),
    };
    let binds = if args.bind.is_empty() {
        std::slice::from_ref(&default_bind)
    } else {
        args.bind.as_slice()
    };
    for bind in binds {
        out.push_str("\n[[listener]]\n");
        let address = bind_address(bind, cwd);
        let _ = writeln!(out, "address = {}", quote(&address));
        if let (Some(cert), Some(key)) = (&args.certfile, &args.keyfile) {
            if !address.starts_with("unix:") {
                let _ = writeln!(
                    out,
                    "tls = {{ certificates = [{{ cert = {}, key = {} }}] }}",
                    quote_path(&absolute(cert)),
                    quote_path(&absolute(key))
                );
            }
        }
    }

    let name = APP_NAME;
    out.push_str("\n[[app]]\n");
    let _ = writeln!(out, "name = {}", quote(name));
    let _ = writeln!(out, "wsgi = {}", quote(target));
    if let Some(python) = &args.python {
        // As typed in this directory: a path with a slash is relative to it, a name is looked up.
        let python = if python.contains('/') {
            absolute(Path::new(python)).display().to_string()
        } else {
            python.clone()
        };
        let _ = writeln!(out, "python = {}", quote(&python));
    }
    let _ = writeln!(out, "directory = {}", quote_path(&directory));
    if !args.env.is_empty() {
        let mut pairs = Vec::new();
        for pair in &args.env {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("--env {pair:?}: expected KEY=VALUE"))?;
            pairs.push(format!("{} = {}", quote(key), quote(value)));
        }
        let _ = writeln!(out, "env = {{ {} }}", pairs.join(", "));
    }
    let workers = args
        .workers
        .as_deref()
        .or(env.web_concurrency.as_deref())
        .unwrap_or("1")
        .trim();
    if workers == "auto" {
        out.push_str("workers = \"auto\"\n");
    } else {
        let count: u64 = workers
            .parse()
            .map_err(|_| format!("--workers {workers:?}: expected a number or \"auto\""))?;
        let _ = writeln!(out, "workers = {count}");
    }
    let _ = writeln!(out, "concurrency = {}", args.threads);
    if args.timeout == 0 {
        // Gunicorn's `--timeout 0` is no timeout; gatehouse wants one (a zero one is invalid), so
        // the longest it takes: a year, which no request reaches.
        out.push_str("timeout = \"365d\"\n");
    } else {
        let _ = writeln!(out, "timeout = \"{}s\"", args.timeout);
    }
    let _ = writeln!(out, "graceful_timeout = \"{}s\"", args.graceful_timeout);
    if args.max_requests > 0 {
        let _ = writeln!(out, "max_requests = {}", args.max_requests);
        let _ = writeln!(out, "max_requests_jitter = {}", args.max_requests_jitter);
    }
    if let Some(root) = &args.root_path {
        let _ = writeln!(out, "root_path = {}", quote(root));
    }

    for entry in &args.static_dirs {
        let (prefix, dir) = entry.split_once('=').ok_or_else(|| {
            format!("--static {entry:?}: expected PREFIX=DIR, e.g. /static/=static")
        })?;
        out.push_str("\n[[route]]\n");
        let _ = writeln!(out, "path = {}", quote(prefix));
        let _ = writeln!(
            out,
            "static = {{ root = {} }}",
            quote_path(&absolute(Path::new(dir)))
        );
    }
    out.push_str("\n[[route]]\npath = \"/\"\n");
    let _ = writeln!(out, "app = {}", quote(name));
    Ok(out)
}

/// Gunicorn's binds: `unix:PATH` (relative to `cwd`), `fd://N`, `HOST:PORT`, `tcp://HOST:PORT`,
/// or a `HOST` alone on port 8000; `localhost` is 127.0.0.1 (gatehouse listens on addresses,
/// not names).
fn bind_address(bind: &str, cwd: &Path) -> String {
    if let Some(path) = bind.strip_prefix("unix:") {
        // The config lives in a temporary directory, against which a relative path would
        // resolve (and vanish with it): make it absolute here.
        let path = path.strip_prefix("//").unwrap_or(path);
        return format!("unix:{}", cwd.join(path).display());
    }
    if let Some(fd) = bind.strip_prefix("fd://") {
        return format!("fd:{fd}");
    }
    if bind.starts_with("fd:") {
        return bind.to_owned();
    }
    let bind = bind.strip_prefix("tcp://").unwrap_or(bind);
    let (host, port) = match bind.strip_prefix('[') {
        Some(v6) => match v6.split_once("]:") {
            Some((host, port)) => (&bind[..host.len() + 2], Some(port)),
            None => (bind, None),
        },
        None => match bind.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (bind, None),
        },
    };
    let host = if host.eq_ignore_ascii_case("localhost") {
        "127.0.0.1"
    } else {
        host
    };
    format!("{host}:{}", port.unwrap_or("8000"))
}

/// Gunicorn's log levels as tracing filters.
fn log_level(level: &str) -> Result<&'static str, String> {
    Ok(match level.to_ascii_lowercase().as_str() {
        "debug" => "debug",
        "info" => "info",
        "warning" | "warn" => "warn",
        "error" | "critical" => "error",
        _ => {
            return Err(format!(
                "--log-level {level:?}: expected debug, info, warning, error or critical"
            ))
        }
    })
}

/// A TOML basic string (JSON's escapes are a subset of TOML's). JSON escapes every control
/// character but DEL, which TOML forbids raw too: that one is escaped here.
fn quote(text: &str) -> String {
    let json = serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned());
    if json.contains('\u{7f}') {
        json.replace('\u{7f}', "\\u007f")
    } else {
        json
    }
}

fn quote_path(path: &Path) -> String {
    quote(&path.display().to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn args(line: &[&str]) -> ServeArgs {
        let argv = std::iter::once("serve").chain(line.iter().copied());
        Cli::try_parse_from(argv).unwrap().serve
    }

    fn rendered(line: &[&str]) -> gatehouse_config::Config {
        rendered_with(line, &Env::default())
    }

    fn rendered_with(line: &[&str], env: &Env) -> gatehouse_config::Config {
        let home = Path::new("/tmp/gatehouse-serve-test");
        let args = args(line);
        let toml = render(&args.app, &args.options, &cwd(), home, env).unwrap();
        gatehouse_config::parse(&home.join("gatehouse.toml"), &toml)
            .unwrap_or_else(|e| panic!("{}\n{toml}", check::describe(&e)))
    }

    fn addresses(config: &gatehouse_config::Config) -> Vec<String> {
        config
            .listeners
            .iter()
            .map(|l| l.address.to_string())
            .collect()
    }

    #[test]
    fn defaults_follow_gunicorn() {
        let config = rendered(&["hello:app"]);
        assert_eq!(
            config.listeners[0].address.to_string(),
            "127.0.0.1:8000",
            "Gunicorn's default bind"
        );
        let app = &config.apps[0];
        assert_eq!(app.name, "app");
        assert_eq!(
            app.launch,
            gatehouse_config::model::Launch::Wsgi {
                target: "hello:app".into(),
                python: "python3".into()
            }
        );
        assert_eq!(app.directory, cwd());
        assert_eq!((app.workers, app.concurrency), (1, 1));
        assert_eq!(app.timeout.as_secs(), 30);
        assert!(app.buffering);
        assert_eq!(config.admin.listen, None);
        assert_eq!(
            config.log.access_log,
            gatehouse_config::model::AccessLogTarget::Off
        );
        assert!(!config.server.watch_config);
        assert_eq!(
            config.server.runtime_dir,
            Path::new("/tmp/gatehouse-serve-test/run")
        );
    }

    #[test]
    fn flags_become_keys() {
        let static_dir = tempfile_dir();
        let config = rendered(&[
            "mysite.wsgi:application",
            "-b",
            "0.0.0.0:9000",
            "--bind",
            "unix:/run/site.sock",
            "-w",
            "3",
            "--threads",
            "4",
            "-t",
            "5",
            "--max-requests",
            "100",
            "--max-requests-jitter",
            "10",
            "--static",
            &format!("/static/={}", static_dir.display()),
            "--python",
            ".venv/bin/python",
            "-e",
            "DJANGO_SETTINGS_MODULE=mysite.settings",
            "--root-path",
            "/app",
            "--access-logfile",
            "-",
            "--log-level",
            "warning",
            "--forwarded-allow-ips",
            "10.0.0.0/8, 192.0.2.1",
        ]);
        assert_eq!(addresses(&config), ["0.0.0.0:9000", "unix:/run/site.sock"]);
        let app = &config.apps[0];
        assert_eq!(app.name, "app");
        assert_eq!((app.workers, app.concurrency), (3, 4));
        assert_eq!(app.timeout.as_secs(), 5);
        assert_eq!((app.max_requests, app.max_requests_jitter), (100, 10));
        assert_eq!(app.env["DJANGO_SETTINGS_MODULE"], "mysite.settings");
        assert_eq!(app.root_path.as_deref(), Some("/app"));
        let gatehouse_config::model::Launch::Wsgi { python, .. } = &app.launch else {
            panic!("a wsgi app");
        };
        assert_eq!(python, &cwd().join(".venv/bin/python"));
        assert_eq!(config.log.level, "warn");
        assert_eq!(config.server.trusted_proxies.len(), 2);
        assert_eq!(config.routes[0].path, "/static/");
        assert_eq!(config.routes[1].path, "/");
    }

    #[test]
    fn binds_and_levels() {
        let cwd = Path::new("/srv/site");
        for (bind, address) in [
            ("0.0.0.0", "0.0.0.0:8000"),
            ("0.0.0.0:9000", "0.0.0.0:9000"),
            ("[::1]", "[::1]:8000"),
            ("[::1]:9000", "[::1]:9000"),
            ("localhost", "127.0.0.1:8000"),
            ("localhost:8001", "127.0.0.1:8001"),
            ("tcp://10.0.0.1:9000", "10.0.0.1:9000"),
            ("tcp://localhost:9000", "127.0.0.1:9000"),
            ("tcp://[::]:9000", "[::]:9000"),
            ("tcp://0.0.0.0", "0.0.0.0:8000"),
            ("unix:/x.sock", "unix:/x.sock"),
            ("unix:rel.sock", "unix:/srv/site/rel.sock"),
            ("unix:run/web.sock", "unix:/srv/site/run/web.sock"),
            ("unix:///abs.sock", "unix:/abs.sock"),
            ("fd://3", "fd:3"),
            ("fd:4", "fd:4"),
        ] {
            assert_eq!(bind_address(bind, cwd), address, "{bind}");
        }
        assert_eq!(log_level("CRITICAL").unwrap(), "error");
        assert!(log_level("loud").is_err());
    }

    #[test]
    fn gunicorn_bind_forms_make_valid_listeners() {
        let config = rendered(&[
            "a:app",
            "-b",
            "localhost:8001",
            "-b",
            "tcp://0.0.0.0:8002",
            "-b",
            "unix:rel.sock",
            "-b",
            "fd://3",
        ]);
        let unix = format!("unix:{}", cwd().join("rel.sock").display());
        assert_eq!(
            addresses(&config),
            ["127.0.0.1:8001", "0.0.0.0:8002", unix.as_str(), "fd:3"]
        );
    }

    #[test]
    fn port_in_the_environment_is_the_default_bind() {
        let env = Env {
            port: Some("5000".into()),
            ..Env::default()
        };
        let config = rendered_with(&["a:app"], &env);
        assert_eq!(addresses(&config), ["0.0.0.0:5000"], "Gunicorn's $PORT");
        let config = rendered_with(&["a:app", "-b", "127.0.0.1:7000"], &env);
        assert_eq!(
            addresses(&config),
            ["127.0.0.1:7000"],
            "an explicit bind wins"
        );
        let config = rendered(&["a:app"]);
        assert_eq!(addresses(&config), ["127.0.0.1:8000"]);
    }

    #[test]
    fn timeout_zero_is_no_timeout() {
        let config = rendered(&["a:app", "--timeout", "0"]);
        let timeout = config.apps[0].timeout;
        assert!(
            timeout >= std::time::Duration::from_secs(300 * 24 * 3600),
            "{timeout:?}"
        );
    }

    #[test]
    fn a_long_module_name_keeps_the_worker_sockets_short() {
        let module = format!("{}.wsgi:application", "m".repeat(200));
        let config = rendered(&[&module]);
        let app = &config.apps[0];
        assert_eq!(app.name, APP_NAME);
        let socket = config
            .server
            .runtime_dir
            .join(&app.name)
            .join(format!("w{}.sock", u64::MAX));
        assert!(socket.as_os_str().len() <= 107, "{}", socket.display());
        assert!(socket_fits(Path::new("/tmp/gatehouse-serve-4194304")));
        assert!(!socket_fits(&Path::new("/tmp").join("t".repeat(80))));
    }

    #[test]
    fn control_characters_are_escaped_for_toml() {
        assert_eq!(quote("a\u{7f}b"), "\"a\\u007fb\"");
        assert_eq!(quote("a\u{1}\tb"), "\"a\\u0001\\tb\"");
        let config = rendered(&[
            "a:app",
            "-e",
            "ODD=x\u{7f}\u{1b}y",
            "--root-path",
            "/a\u{7f}",
        ]);
        assert_eq!(config.apps[0].env["ODD"], "x\u{7f}\u{1b}y");
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        let home = Path::new("/tmp/x");
        let cwd = Path::new("/");
        let run = |line: &[&str], web_concurrency: Option<&str>| {
            let args = args(line);
            let env = Env {
                web_concurrency: web_concurrency.map(str::to_owned),
                ..Env::default()
            };
            render(&args.app, &args.options, cwd, home, &env)
        };
        let bad = |line: &[&str]| run(line, None).unwrap_err();
        assert!(bad(&["a:app", "--static", "/static/"]).contains("PREFIX=DIR"));
        assert!(bad(&["a:app", "-e", "NOVALUE"]).contains("KEY=VALUE"));
        assert!(bad(&["a:app", "-w", "many"]).contains("--workers"));
        let from_env = run(&["a:app"], Some("5")).unwrap();
        assert!(from_env.contains("workers = 5"), "{from_env}");
    }

    /// Directories must exist: the crate's own do.
    fn cwd() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn tempfile_dir() -> PathBuf {
        cwd().join("src")
    }
}
