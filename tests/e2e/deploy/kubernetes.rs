//! `deploy/kubernetes/`: every manifest parses as YAML, the probes ask the paths the admin
//! listener serves on the port the ConfigMap's gatehouse.toml gives it, and that config passes
//! `gatehouse check`.

use std::process::Command;

use gatehouse_tests::admin::Admin;
use gatehouse_tests::python::python;
use gatehouse_tests::{Gatehouse, Sandbox};
use serde_json::Value;

use super::deploy_dir;

/// Every document of every manifest, parsed by PyYAML (from the test venv) and handed over as JSON.
fn documents() -> Vec<Value> {
    let script = r#"
import glob, json, sys, yaml
docs = []
for path in sorted(glob.glob(sys.argv[1] + "/*.yaml")):
    with open(path) as f:
        docs.extend(d for d in yaml.safe_load_all(f) if d is not None)
print(json.dumps(docs))
"#;
    let output = Command::new(python())
        .args(["-c", script])
        .arg(deploy_dir().join("kubernetes"))
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "the manifests do not parse: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("a {kind} in deploy/kubernetes"))
}

/// The port of `listen = "IP:PORT"` in `table` of the TOML text.
fn listen_port(toml: &str, table: &str, key: &str) -> u64 {
    let mut in_table = false;
    for line in toml.lines().map(str::trim) {
        if line.starts_with('[') {
            in_table = line == table;
        } else if in_table {
            if let Some(value) = line
                .strip_prefix(key)
                .and_then(|r| r.trim().strip_prefix('='))
            {
                let value = value.trim().trim_matches('"');
                return value.rsplit_once(':').unwrap().1.parse().unwrap();
            }
        }
    }
    panic!("no {table} {key} in:\n{toml}")
}

#[test]
fn the_manifests_parse_and_probe_livez_and_readyz_on_the_admin_port() {
    let docs = documents();
    for expected in ["ConfigMap", "Deployment", "Service", "PodDisruptionBudget"] {
        kind(&docs, expected);
    }
    let toml = kind(&docs, "ConfigMap")["data"]["gatehouse.toml"]
        .as_str()
        .expect("the ConfigMap holds gatehouse.toml")
        .to_owned();
    let admin_port = listen_port(&toml, "[admin]", "listen");
    let http_port = listen_port(&toml, "[[listener]]", "address");

    let deployment = kind(&docs, "Deployment");
    let pod = &deployment["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    let port_named = |name: &str| -> u64 {
        container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["containerPort"].as_u64())
            .unwrap_or_else(|| panic!("a container port named {name}"))
    };
    let probe_port = |probe: &Value| -> u64 {
        match &probe["httpGet"]["port"] {
            Value::String(name) => port_named(name),
            other => other.as_u64().unwrap(),
        }
    };
    for (probe, path) in [("livenessProbe", "/livez"), ("readinessProbe", "/readyz")] {
        assert_eq!(container[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(probe_port(&container[probe]), admin_port, "{probe} port");
    }
    assert!(
        !container["lifecycle"]["preStop"].is_null(),
        "a preStop delay lets readiness flip before TERM"
    );
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], admin_port.to_string());
    assert_eq!(annotations["prometheus.io/path"], "/metrics");

    let volumes = pod["spec"]["volumes"].as_array().unwrap();
    let config_volume = volumes
        .iter()
        .find(|v| v["configMap"]["name"] == "gatehouse")
        .expect("the ConfigMap as a volume");
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == config_volume["name"])
        .expect("the ConfigMap mounted");
    assert!(
        mount["subPath"].is_null(),
        "a subPath mount never sees ConfigMap updates"
    );

    let service = kind(&docs, "Service");
    let target = &service["spec"]["ports"][0]["targetPort"];
    let target = match target {
        Value::String(name) => port_named(name),
        other => other.as_u64().unwrap(),
    };
    assert_eq!(target, http_port, "the Service reaches the listener");
    let pdb = kind(&docs, "PodDisruptionBudget");
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configmaps_config_passes_check_and_the_probe_paths_answer() {
    let docs = documents();
    let toml = kind(&docs, "ConfigMap")["data"]["gatehouse.toml"]
        .as_str()
        .unwrap()
        .to_owned();
    // The image's paths, moved into a sandbox.
    let sandbox = Sandbox::new();
    std::fs::create_dir_all(sandbox.join("srv/app/static")).unwrap();
    let local = toml
        .replace("/srv/app", &sandbox.join("srv/app").display().to_string())
        .replace("/run/gatehouse", &sandbox.join("run").display().to_string());
    sandbox.write("gatehouse.toml", &local);
    let output = sandbox.command(&["check", "-c", "gatehouse.toml"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");

    let gh = Gatehouse::start(
        "[admin]\nlisten = \"127.0.0.1:0\"\n\n[[listener]]\naddress = \"127.0.0.1:0\"\n\n[[route]]\npath = \"/\"\nrespond = { status = 200 }\n",
    );
    let admin = Admin::of(&gh);
    for path in ["/livez", "/readyz", "/metrics"] {
        let (status, _) = admin.try_get(path).await.unwrap();
        assert_eq!(status, 200, "{path}");
    }
}
