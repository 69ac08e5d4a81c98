//! The one static path validation: from a still percent-encoded request path to a file or
//! directory that is certainly inside the root (design invariant 6).
//!
//! [`resolve`] is two halves so the cache can skip the expensive one:
//! [`lexical`] is pure (no file system) and turns the request path into root-relative segments,
//! [`confine`] asks the file system where those segments really lead.
//! Every way a request can fail here is a [`Rejection`] variant, and every one becomes a 404.

use std::ffi::OsStr;
use std::fs::Metadata;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Why a request path does not name a servable file. The caller answers all of them alike
/// (404 or the route's fallback), so the variants exist for logs and tests.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// A `%` not followed by two hex digits.
    #[error("invalid percent-encoding")]
    BadEncoding,
    /// `%2f` or `%5c`: a separator smuggled inside a segment, or a literal backslash
    /// (a path separator on the Windows side of a share, never a file name here).
    #[error("encoded or backslash separator")]
    Separator,
    /// A NUL byte, which no file name can hold and which truncates C strings.
    #[error("NUL byte")]
    Nul,
    /// A `.` or `..` segment, after decoding (so `%2e%2e` too).
    #[error("dot segment")]
    DotSegment,
    /// A segment starting with `.` while `dotfiles = false` (also when a symlink leads there).
    #[error("hidden file")]
    Hidden,
    /// The path does not exist, or resolving it failed (permissions, loops, name too long).
    #[error("not found")]
    NotFound(#[source] io::Error),
    /// Resolving symlinks led outside the root.
    #[error("outside the root")]
    Escapes,
    /// A FIFO, socket or device: opening one could block or have side effects.
    #[error("not a regular file or directory")]
    NotRegular,
}

/// Resolves `relative_encoded` (the request path after the route prefix, still percent-encoded)
/// under `root`, which must be canonical. On success the result is canonical, starts with
/// `root`, and names a regular file or a directory.
pub fn resolve(root: &Path, relative_encoded: &str, dotfiles: bool) -> Result<PathBuf, Rejection> {
    let relative = lexical(relative_encoded, dotfiles)?;
    confine(root, &root.join(relative), dotfiles).map(|(path, _)| path)
}

/// The pure half: decodes each segment and refuses anything that could climb, hide or smuggle.
/// Empty segments (`a//b`, a leading `/`) are skipped as Nginx merges slashes; the result is
/// relative and never contains `.`, `..` or a separator inside a segment.
pub fn lexical(relative_encoded: &str, dotfiles: bool) -> Result<PathBuf, Rejection> {
    let mut path = PathBuf::new();
    let mut segment = Vec::new();
    for raw in relative_encoded.split('/').filter(|raw| !raw.is_empty()) {
        decode(raw, &mut segment)?;
        check_segment(&segment, dotfiles)?;
        path.push(OsStr::from_bytes(&segment));
    }
    Ok(path)
}

/// The file system half: resolves symlinks in `target` (which the caller built as
/// `root.join(lexical(..))`) and checks where it really leads. Returns the canonical path and its
/// metadata, read from the path *before* anything opens it.
pub fn confine(
    root: &Path,
    target: &Path,
    dotfiles: bool,
) -> Result<(PathBuf, Metadata), Rejection> {
    let canonical = std::fs::canonicalize(target).map_err(Rejection::NotFound)?;
    let inside = canonical
        .strip_prefix(root)
        .map_err(|_| Rejection::Escapes)?;
    // A symlink inside the root may point at a dotfile the request could not have named.
    if !dotfiles && inside.iter().any(|name| name.as_bytes().starts_with(b".")) {
        return Err(Rejection::Hidden);
    }
    let metadata = std::fs::metadata(&canonical).map_err(Rejection::NotFound)?;
    if !(metadata.is_file() || metadata.is_dir()) {
        return Err(Rejection::NotRegular);
    }
    Ok((canonical, metadata))
}

/// Percent-decodes one segment into `out`. A decoded `/` or `\` means the client encoded a
/// separator, which is refused rather than given a meaning.
fn decode(raw: &str, out: &mut Vec<u8>) -> Result<(), Rejection> {
    out.clear();
    let mut bytes = raw.bytes();
    while let Some(byte) = bytes.next() {
        let byte = if byte == b'%' {
            let high = bytes.next().and_then(hex).ok_or(Rejection::BadEncoding)?;
            let low = bytes.next().and_then(hex).ok_or(Rejection::BadEncoding)?;
            high << 4 | low
        } else {
            byte
        };
        match byte {
            b'/' | b'\\' => return Err(Rejection::Separator),
            0 => return Err(Rejection::Nul),
            _ => out.push(byte),
        }
    }
    Ok(())
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

fn check_segment(segment: &[u8], dotfiles: bool) -> Result<(), Rejection> {
    match segment {
        b"." | b".." => Err(Rejection::DotSegment),
        [b'.', ..] if !dotfiles => Err(Rejection::Hidden),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    struct Site {
        // Holds the temp dir alive; `root` is inside it so a canary can sit next to the root.
        _dir: tempfile::TempDir,
        root: PathBuf,
    }

    /// `<tmp>/secret.txt` (the canary), `<tmp>/root/{a.txt, sub/b.txt, .env, café.txt}`.
    fn site() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(dir.path()).unwrap();
        fs::write(base.join("secret.txt"), "canary").unwrap();
        let root = base.join("root");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("a.txt"), "a").unwrap();
        fs::write(root.join("sub/b.txt"), "b").unwrap();
        fs::write(root.join(".env"), "env").unwrap();
        fs::write(root.join("café.txt"), "unicode").unwrap();
        Site { _dir: dir, root }
    }

    fn ok(site: &Site, request: &str, dotfiles: bool) -> PathBuf {
        match resolve(&site.root, request, dotfiles) {
            Ok(path) => path,
            Err(rejection) => panic!("{request:?} rejected: {rejection}"),
        }
    }

    fn rejected(site: &Site, request: &str, dotfiles: bool) -> Rejection {
        match resolve(&site.root, request, dotfiles) {
            Ok(path) => panic!("{request:?} resolved to {}", path.display()),
            Err(rejection) => rejection,
        }
    }

    #[test]
    fn plain_paths_resolve_inside_the_root() {
        let site = site();
        assert_eq!(ok(&site, "a.txt", false), site.root.join("a.txt"));
        assert_eq!(ok(&site, "/a.txt", false), site.root.join("a.txt"));
        assert_eq!(ok(&site, "sub//b.txt", false), site.root.join("sub/b.txt"));
        assert_eq!(
            ok(&site, "%73ub/b%2Etxt", false),
            site.root.join("sub/b.txt")
        );
        assert_eq!(ok(&site, "", false), site.root);
        assert_eq!(ok(&site, "sub/", false), site.root.join("sub"));
    }

    #[test]
    fn unicode_names_decode_from_utf8_percent_escapes() {
        let site = site();
        assert_eq!(
            ok(&site, "caf%C3%A9.txt", false),
            site.root.join("café.txt")
        );
        assert_eq!(ok(&site, "café.txt", false), site.root.join("café.txt"));
        // Not UTF-8: a legal Unix name that simply does not exist.
        assert!(matches!(
            rejected(&site, "caf%E9.txt", false),
            Rejection::NotFound(_)
        ));
    }

    #[test]
    fn traversal_is_refused_plain_and_encoded() {
        let site = site();
        for attack in [
            "../secret.txt",
            "sub/../../secret.txt",
            "%2e%2e/secret.txt",
            "%2E%2E/secret.txt",
            ".%2e/secret.txt",
            "sub/%2e%2e/%2e%2e/secret.txt",
            "./a.txt",
            "sub/./b.txt",
        ] {
            assert!(
                matches!(rejected(&site, attack, true), Rejection::DotSegment),
                "{attack}"
            );
        }
        for attack in [
            "..%2fsecret.txt",
            "%2e%2e%2fsecret.txt",
            "..%2Fsecret.txt",
            "..%5csecret.txt",
            "..%5Csecret.txt",
            "..\\secret.txt",
            "sub%2fb.txt",
        ] {
            assert!(
                matches!(rejected(&site, attack, true), Rejection::Separator),
                "{attack}"
            );
        }
    }

    #[test]
    fn odd_dots_and_double_encoding_are_just_missing_names() {
        let site = site();
        // `....` is an ordinary (absent) name on Unix, and hidden when dotfiles are off.
        assert!(matches!(
            rejected(&site, "....//secret.txt", false),
            Rejection::Hidden
        ));
        assert!(matches!(
            rejected(&site, "....//secret.txt", true),
            Rejection::NotFound(_)
        ));
        // Decoded once, `%252e%252e` is the literal name `%2e%2e`, which does not exist.
        assert!(matches!(
            rejected(&site, "%252e%252e/secret.txt", false),
            Rejection::NotFound(_)
        ));
        assert!(matches!(
            rejected(&site, "%252e%252e%252fsecret.txt", false),
            Rejection::NotFound(_)
        ));
    }

    #[test]
    fn bad_encoding_and_nul_are_refused() {
        let site = site();
        for attack in ["a.txt%", "a.txt%2", "a%zz.txt", "a%.txt", "%%32%65"] {
            assert!(
                matches!(rejected(&site, attack, false), Rejection::BadEncoding),
                "{attack}"
            );
        }
        assert!(matches!(rejected(&site, "a.txt%00", false), Rejection::Nul));
        assert!(matches!(
            rejected(&site, "a.txt%00.png", false),
            Rejection::Nul
        ));
        assert!(matches!(rejected(&site, "a.txt\0", false), Rejection::Nul));
    }

    #[test]
    fn dotfiles_follow_the_setting_but_dot_segments_never_pass() {
        let site = site();
        assert!(matches!(rejected(&site, ".env", false), Rejection::Hidden));
        assert!(matches!(
            rejected(&site, "%2eenv", false),
            Rejection::Hidden
        ));
        assert_eq!(ok(&site, ".env", true), site.root.join(".env"));
        assert!(matches!(rejected(&site, "..", true), Rejection::DotSegment));
        assert!(matches!(rejected(&site, ".", true), Rejection::DotSegment));
    }

    #[test]
    fn symlinks_are_followed_only_inside_the_root() {
        let site = site();
        let base = site.root.parent().unwrap();
        std::os::unix::fs::symlink(site.root.join("sub/b.txt"), site.root.join("inside")).unwrap();
        std::os::unix::fs::symlink(base.join("secret.txt"), site.root.join("escape")).unwrap();
        std::os::unix::fs::symlink(base, site.root.join("updir")).unwrap();
        std::os::unix::fs::symlink(".env", site.root.join("hidden-link")).unwrap();
        assert_eq!(ok(&site, "inside", false), site.root.join("sub/b.txt"));
        assert!(matches!(
            rejected(&site, "escape", false),
            Rejection::Escapes
        ));
        assert!(matches!(
            rejected(&site, "updir/secret.txt", false),
            Rejection::Escapes
        ));
        assert!(matches!(
            rejected(&site, "hidden-link", false),
            Rejection::Hidden
        ));
        assert_eq!(ok(&site, "hidden-link", true), site.root.join(".env"));
    }

    #[test]
    fn a_sibling_with_the_root_as_name_prefix_is_outside() {
        let site = site();
        let sibling = site.root.with_file_name("root2");
        fs::create_dir(&sibling).unwrap();
        fs::write(sibling.join("x.txt"), "x").unwrap();
        std::os::unix::fs::symlink(sibling.join("x.txt"), site.root.join("x")).unwrap();
        assert!(matches!(rejected(&site, "x", false), Rejection::Escapes));
    }

    #[test]
    fn fifos_are_refused_from_metadata() {
        let site = site();
        let made = std::process::Command::new("mkfifo")
            .arg(site.root.join("pipe"))
            .status()
            .unwrap();
        assert!(made.success());
        assert!(matches!(
            rejected(&site, "pipe", false),
            Rejection::NotRegular
        ));
    }

    #[test]
    fn a_root_that_is_not_canonical_fails_closed() {
        let site = site();
        let crooked = site.root.join("sub/..");
        assert!(matches!(
            resolve(&crooked, "a.txt", false),
            Err(Rejection::Escapes)
        ));
    }

    /// Deterministic stand-in for the fuzz target (`fuzz/fuzz_targets/static_path.rs`), so CI
    /// exercises the property: whatever the input, an accepted path is under the root and is
    /// never the canary next to it.
    #[test]
    fn generated_paths_never_leave_the_root() {
        const PIECES: &[&str] = &[
            ".",
            "..",
            "/",
            "%2e",
            "%2E",
            "%2f",
            "%2F",
            "%5c",
            "%5C",
            "%00",
            "%",
            "%25",
            "\\",
            "a",
            "b",
            "sub",
            "secret.txt",
            "a.txt",
            "root",
            "escape",
            "updir",
            "z",
        ];
        let site = site();
        let base = site.root.parent().unwrap().to_path_buf();
        std::os::unix::fs::symlink(base.join("secret.txt"), site.root.join("escape")).unwrap();
        std::os::unix::fs::symlink(&base, site.root.join("updir")).unwrap();
        let mut rng = fastrand::Rng::with_seed(0x6761_7465);
        let mut accepted = 0;
        for _ in 0..20_000 {
            let request: String = (0..rng.usize(1..10))
                .map(|_| PIECES[rng.usize(..PIECES.len())])
                .collect();
            let dotfiles = rng.bool();
            if let Ok(path) = resolve(&site.root, &request, dotfiles) {
                accepted += 1;
                assert!(
                    path.starts_with(&site.root),
                    "{request:?} -> {}",
                    path.display()
                );
                assert_ne!(
                    fs::read(&path).ok().as_deref(),
                    Some(&b"canary"[..]),
                    "{request:?}"
                );
            }
        }
        // The generator must also produce valid paths, or the property is tested on nothing.
        assert!(accepted > 100, "only {accepted} accepted");
    }
}
