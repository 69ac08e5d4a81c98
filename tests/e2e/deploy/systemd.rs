//! `deploy/systemd/`: the unit passes `systemd-analyze verify` and says what issue 8 asks of it;
//! sd_notify messages and socket activation through the real binary.

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};

use gatehouse_tests::gatehouse::binary;
use gatehouse_tests::python::python;
use gatehouse_tests::wait::wait_until;
use gatehouse_tests::workers::{one_app, worker_command};
use gatehouse_tests::Sandbox;

use super::{read, Spawned};

/// `systemd-analyze verify` on the unit and the socket, the install path of the binary replaced
/// by the one under test (verify insists that ExecStart's program exists).
#[test]
fn the_unit_and_the_socket_pass_systemd_analyze_verify() {
    let sandbox = Sandbox::new();
    let bin = binary().display().to_string();
    let unit = read("systemd/gatehouse.service").replace("/usr/local/bin/gatehouse", &bin);
    sandbox.write("gatehouse.service", unit);
    sandbox.write("gatehouse.socket", read("systemd/gatehouse.socket"));
    let output = Command::new("systemd-analyze")
        .args(["verify", "./gatehouse.service", "./gatehouse.socket"])
        .current_dir(sandbox.path())
        .output()
        .expect("run systemd-analyze (Debian package systemd; .ci/run installs it)");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    // Unknown keys and bad values are warnings with exit 0: there must be none.
    assert_eq!(said.trim(), "", "systemd-analyze verify warned");
}

#[test]
fn the_unit_notifies_reloads_with_hup_and_runs_hardened_without_root() {
    let unit = read("systemd/gatehouse.service");
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for line in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "RuntimeDirectory=gatehouse",
    ] {
        assert!(lines.contains(&line), "{line} in the unit");
    }
    let user = lines
        .iter()
        .find_map(|l| l.strip_prefix("User="))
        .expect("a User= line");
    assert!(!matches!(user, "root" | "0"), "User={user}");
    let writable = lines
        .iter()
        .find_map(|l| l.strip_prefix("ReadWritePaths="))
        .expect("a ReadWritePaths= line");
    assert!(
        writable.split_whitespace().any(|p| p == "/run/gatehouse"),
        "the runtime directory is writable: {writable}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ExecStart=") && l.contains(" run -c ")),
        "ExecStart runs gatehouse"
    );
}

/// Datagrams arriving on a test NOTIFY_SOCKET, each as received.
struct NotifySocket {
    path: std::path::PathBuf,
    messages: Arc<Mutex<Vec<String>>>,
}

impl NotifySocket {
    fn bind(sandbox: &Sandbox) -> NotifySocket {
        let path = sandbox.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&messages);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(text);
            }
        });
        NotifySocket { path, messages }
    }

    fn all(&self) -> Vec<String> {
        self.messages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The messages so far without the watchdog pings.
    fn states(&self) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|m| !m.lines().all(|l| l == "WATCHDOG=1"))
            .collect()
    }

    fn wait_for(&self, what: &str, count: usize) {
        wait_until(&format!("{count} notify messages, the last {what}"), || {
            let states = self.states();
            states.len() >= count && states[count - 1].lines().any(|l| l == what)
        });
    }
}

#[test]
fn sd_notify_says_ready_reloading_ready_stopping_in_order_and_pings_the_watchdog() {
    let sandbox = Sandbox::new();
    let notify = NotifySocket::bind(&sandbox);
    let config = sandbox.config(&one_app("w", &worker_command(&[]), "workers = 1"));
    let mut command = Command::new(binary());
    command
        .args(["run", "-c"])
        .arg(&config)
        .current_dir(sandbox.path())
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", "200000");
    let mut gh = Spawned::start(command);

    notify.wait_for("READY=1", 1);
    assert!(
        gh.stderr.text().contains("worker ready"),
        "READY=1 only once an app has a ready worker"
    );
    gh.signal("HUP");
    notify.wait_for("RELOADING=1", 2);
    notify.wait_for("READY=1", 3);
    gh.signal("TERM");
    notify.wait_for("STOPPING=1", 4);
    assert_eq!(gh.wait_exit().code(), Some(0));

    let states = notify.states();
    let reloading = &states[1];
    let usec = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .expect("RELOADING=1 comes with MONOTONIC_USEC");
    assert!(usec.parse::<u64>().is_ok_and(|n| n > 0), "{reloading}");
    assert_eq!(states.len(), 4, "nothing else: {states:?}");
    let pings = notify
        .all()
        .iter()
        .filter(|m| m.as_str() == "WATCHDOG=1")
        .count();
    assert!(pings >= 1, "WATCHDOG=1 pings with WATCHDOG_USEC set");
}

/// Starts gatehouse the way systemd does with a socket unit: the listening socket is descriptor 3
/// and LISTEN_PID is gatehouse's own pid. Python binds the socket, writes its port into the config
/// (`{port}`), moves it to descriptor 3 and execs gatehouse (keeping its pid).
fn socket_activated(sandbox: &Sandbox, config: &str) -> (Spawned, u16) {
    sandbox.write("template.toml", sandbox.expand(config));
    let launcher = r#"
import os, socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(128)
port = s.getsockname()[1]
with open("template.toml") as f:
    text = f.read().replace("{port}", str(port))
with open("gatehouse.toml", "w") as f:
    f.write(text)
with open("port", "w") as f:
    f.write(str(port))
os.dup2(s.fileno(), 3)
# dup2 onto itself (the socket may already be descriptor 3) keeps close-on-exec.
os.set_inheritable(3, True)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1", LISTEN_FDNAMES="http")
os.execv(sys.argv[1], [sys.argv[1], "run", "-c", "gatehouse.toml"])
"#;
    let mut command = Command::new(python());
    command
        .args(["-c", launcher])
        .arg(binary())
        .current_dir(sandbox.path());
    let spawned = Spawned::start(command);
    let port_file = sandbox.join("port");
    wait_until("the launcher's port", || port_file.exists());
    let port = std::fs::read_to_string(&port_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (spawned, port)
}

const RESPOND: &str = "\n[[route]]\npath = \"/\"\nrespond = { status = 200, body = \"activated\\n\" }\n\n[admin]\nlisten = \"off\"\n";

async fn assert_serves(port: u16) {
    let url = format!("http://127.0.0.1:{port}/");
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "activated\n");
}

#[tokio::test]
async fn a_socket_activated_listener_named_fd_3_serves_requests() {
    let sandbox = Sandbox::new();
    let (gh, port) = socket_activated(
        &sandbox,
        &format!("[[listener]]\naddress = \"fd:3\"\n{RESPOND}"),
    );
    gh.stderr.wait_for("listening on");
    assert_serves(port).await;
}

#[tokio::test]
async fn an_inherited_socket_with_the_listeners_address_is_used_instead_of_binding() {
    let sandbox = Sandbox::new();
    let (gh, port) = socket_activated(
        &sandbox,
        &format!("[[listener]]\naddress = \"127.0.0.1:{{port}}\"\n{RESPOND}"),
    );
    gh.stderr.wait_for("listening on");
    assert_serves(port).await;
    // One listening socket on the port: gatehouse did not bind a second one next to it (with
    // SO_REUSEPORT it could, and then half the connections would wait on the unused one).
    assert_eq!(listening_sockets(port), 1);
}

/// How many TCP sockets listen on `port` (IPv4, /proc/net/tcp: state 0A is LISTEN).
fn listening_sockets(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let hex = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 3 && fields[1].ends_with(&hex) && fields[3] == "0A"
        })
        .count()
}
