//! `cargo xtask dist`: a release archive for this machine's architecture,
//! `<target>/dist/gatehouse-<version>-<arch>-linux.tar.gz` (and its `.sha256`), holding the
//! release binary and what a deployment reads next to it: the README, `config/reference.toml`,
//! the examples and the demo, `deploy/` (systemd unit and socket, Containerfile, Kubernetes
//! manifests) and `docs/`.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{cargo, exec, output, root, target_dir};

/// What goes into the archive besides the binary, relative to the checkout.
const FILES: [&str; 7] = [
    "README.md",
    "config/reference.toml",
    "config/examples",
    "config/demo.toml",
    "config/demo",
    "deploy",
    "docs",
];

pub(crate) fn run(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        bail!("unknown argument {arg}; usage: cargo xtask dist");
    }
    exec(cargo().args(["build", "--release", "--locked", "-p", "gatehouse"]))?;
    let binary = target_dir().join("release/gatehouse");
    // `gatehouse 0.1.0`
    let version = output(Command::new(&binary).arg("--version"))?;
    let version = version.split_whitespace().nth(1).unwrap_or("unknown");
    let name = format!("gatehouse-{version}-{}-linux", std::env::consts::ARCH);
    let dist = target_dir().join("dist");
    let staging = dist.join(&name);
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    std::fs::create_dir_all(staging.join("config"))?;
    copy(&binary, &staging.join("gatehouse"))?;
    for file in FILES {
        copy(&root().join(file), &staging.join(file))?;
    }
    let archive = dist.join(format!("{name}.tar.gz"));
    exec(
        Command::new("tar")
            .arg("-czf")
            .arg(&archive)
            .arg("-C")
            .arg(&dist)
            .arg(&name),
    )?;
    let sum = output(
        Command::new("sha256sum")
            .arg(format!("{name}.tar.gz"))
            .current_dir(&dist),
    )?;
    std::fs::write(dist.join(format!("{name}.tar.gz.sha256")), &sum)?;
    println!("{}\n{}", archive.display(), sum.trim());
    Ok(())
}

/// Copies a file, or a directory with everything below it.
fn copy(from: &Path, to: &Path) -> Result<()> {
    let metadata =
        std::fs::metadata(from).with_context(|| format!("cannot read {}", from.display()))?;
    if metadata.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else {
        std::fs::copy(from, to)
            .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}
