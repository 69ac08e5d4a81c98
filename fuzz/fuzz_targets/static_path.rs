//! Fuzzes the one static path validation (`gatehouse_proxy::static_files::resolve`): whatever
//! the request path, an accepted result lies under the root and is never the canary placed next
//! to it, even through symlinks that point out of the root.
#![no_main]

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

use gatehouse_proxy::static_files::resolve;
use libfuzzer_sys::fuzz_target;

struct Site {
    root: PathBuf,
    canary: PathBuf,
}

/// `<tmp>/gatehouse-fuzz-<pid>/{secret.txt, root/...}`, built once per fuzzing process. Setup
/// failures panic on purpose: fuzzing without the site would prove nothing.
fn site() -> &'static Site {
    static SITE: OnceLock<Site> = OnceLock::new();
    SITE.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("gatehouse-fuzz-{}", std::process::id()));
        let root = base.join("root");
        fs::create_dir_all(root.join("sub")).unwrap();
        let base = fs::canonicalize(base).unwrap();
        let root = base.join("root");
        let canary = base.join("secret.txt");
        fs::write(&canary, "canary").unwrap();
        fs::write(root.join("a.txt"), "a").unwrap();
        fs::write(root.join("sub/b.txt"), "b").unwrap();
        fs::write(root.join(".env"), "env").unwrap();
        // Symlinks out of the root, to a file and to a directory; `symlink` fails if they exist.
        let _ = std::os::unix::fs::symlink(&canary, root.join("escape"));
        let _ = std::os::unix::fs::symlink(&base, root.join("updir"));
        let _ = std::os::unix::fs::symlink(root.join("a.txt"), root.join("inside"));
        Site { root, canary }
    })
}

fuzz_target!(|data: &[u8]| {
    let request = String::from_utf8_lossy(data);
    let site = site();
    for dotfiles in [false, true] {
        if let Ok(path) = resolve(&site.root, &request, dotfiles) {
            assert!(path.starts_with(&site.root), "{request:?} -> {}", path.display());
            assert_ne!(path, site.canary, "{request:?}");
        }
    }
});
