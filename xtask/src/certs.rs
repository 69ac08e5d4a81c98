//! `cargo xtask certs [--dir DIR] [NAME ...]`: a self-signed ECDSA P-256 certificate (the key type
//! certbot issues by default) for trying TLS locally, made with `openssl`. It covers `localhost`,
//! 127.0.0.1, ::1 and any further DNS names given. The files go to `<target>/dev-certs/` unless
//! `--dir` says otherwise; they are never committed.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Result};

use crate::{output, target_dir};

pub(crate) fn run(args: &[String]) -> Result<()> {
    let mut dir = target_dir().join("dev-certs");
    let mut names = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dir" => match args.next() {
                Some(value) => dir = PathBuf::from(value),
                None => bail!("--dir needs a directory"),
            },
            flag if flag.starts_with('-') => {
                bail!("unknown flag {flag}; usage: cargo xtask certs [--dir DIR] [NAME ...]")
            }
            name => names.push(name.to_owned()),
        }
    }
    let (cert, key) = self_signed(&dir, "localhost", &names)?;
    println!(
        "made {} and {} (self-signed; clients must trust the certificate itself).\n\
         Serve it with:\n\n\
         [[listener]]\naddress = \"127.0.0.1:8443\"\n[listener.tls]\n\
         certificates = [{{ cert = {:?}, key = {:?} }}]\n",
        cert.display(),
        key.display(),
        cert.display(),
        key.display()
    );
    Ok(())
}

/// Writes `dir/cert.pem` and `dir/key.pem`: a self-signed certificate for `common_name` (also
/// its first DNS name), localhost's addresses and `extra_names`, valid 30 days. Returns both paths.
pub(crate) fn self_signed(
    dir: &Path,
    common_name: &str,
    extra_names: &[String],
) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let mut alt_names = vec![
        format!("DNS:{common_name}"),
        "IP:127.0.0.1".to_owned(),
        "IP:::1".to_owned(),
    ];
    alt_names.extend(extra_names.iter().map(|name| format!("DNS:{name}")));
    output(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "30"])
            .arg("-subj")
            .arg(format!("/CN={common_name}"))
            .arg("-addext")
            .arg(format!("subjectAltName={}", alt_names.join(",")))
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    )?;
    Ok((cert, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_a_certificate_and_its_key() {
        if !crate::have("openssl") {
            eprintln!("openssl is not installed; skipped");
            return;
        }
        let dir = std::env::temp_dir().join(format!("xtask-certs-{}", std::process::id()));
        let (cert, key) = self_signed(&dir, "localhost", &["dev.test".to_owned()]).unwrap();
        let cert_text = std::fs::read_to_string(&cert).unwrap();
        assert!(cert_text.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(std::fs::read_to_string(&key)
            .unwrap()
            .contains("PRIVATE KEY"));
        let names = output(
            Command::new("openssl")
                .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
                .arg(&cert),
        )
        .unwrap();
        assert!(
            names.contains("DNS:dev.test") && names.contains("IP Address:127.0.0.1"),
            "{names}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
