//! Paths from package data stay inside the package.
//!
//! A package's configuration names its own files (`config.json`'s
//! `filename_tokens_embed`, the layer template, the tokenizer...). A hostile
//! package must not be able to make the loader open anything else, so:
//! * a name from the configuration must be relative, without `..`
//!   components or NUL bytes ([`PackageDir::named`]);
//! * every file the loader opens must resolve, symlinks followed, inside the
//!   package directory, or inside one of the link roots the caller trusts
//!   (a package made of links into a content store, like the one Ollama's
//!   runner builds from its blobs) ([`PackageDir::confine`]);
//! * files the library reads itself are opened once, and the file actually
//!   opened is checked (through `/proc/self/fd` on Linux), so a symlink
//!   swapped in after the check cannot redirect the read; only regular files
//!   are read. Layer files, which the runtime opens by path, are handed over as
//!   their resolved path; a directory swapped between the check and that open
//!   is the remaining window.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// A package directory and the roots its files may resolve into.
#[derive(Debug, Clone)]
pub struct PackageDir {
    /// As the caller named it (for messages and the paths handed out).
    root: PathBuf,
    /// The directory with every symlink resolved.
    canonical: PathBuf,
    /// Resolved directories outside the package that its symlinks may point into.
    link_roots: Vec<PathBuf>,
}

impl PackageDir {
    /// Opens the package at `root`; `link_roots` are directories outside it that
    /// its symlinks may point into (normally none).
    pub fn new(root: &Path, link_roots: &[PathBuf]) -> Result<PackageDir> {
        let bad = |reason: &str, source: Option<std::io::Error>| Error::BadPackage {
            package: root.to_path_buf(),
            file: PathBuf::new(),
            reason: reason.into(),
            source: source.map(Into::into),
        };
        let canonical = match root.canonicalize() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(bad("no such directory", Some(e))),
            Err(e) => return Err(bad("cannot resolve the directory", Some(e))),
        };
        if !canonical.is_dir() {
            return Err(bad("not a directory", None));
        }
        let link_roots = link_roots
            .iter()
            .map(|r| {
                r.canonicalize()
                    .map_err(|e| Error::invalid(format!("link root {} cannot be resolved: {e}", r.display())))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PackageDir { root: root.to_path_buf(), canonical, link_roots })
    }

    /// The directory as the caller named it.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file a configuration names: `name` (from `field`, e.g.
    /// `config.json: filename_tokens_embed`) joined to the package directory.
    /// Refuses absolute names, `..` components, NUL bytes and empty names; the
    /// file itself is checked when it is opened ([`PackageDir::confine`]).
    pub fn named(&self, field: &str, name: &str) -> Result<PathBuf> {
        let refuse = |why: &str| {
            Error::bad_file(
                self.root.join(field.split(':').next().unwrap_or(field)),
                format!("{field} {name:?} {why}; a package may only name files inside its own directory"),
            )
            .in_package(&self.root)
        };
        if name.is_empty() {
            return Err(refuse("is empty"));
        }
        if name.contains('\0') {
            return Err(refuse("contains a NUL byte"));
        }
        let path = Path::new(name);
        if path.has_root() {
            return Err(refuse("is an absolute path"));
        }
        for c in path.components() {
            match c {
                Component::Normal(_) | Component::CurDir => {}
                Component::ParentDir => return Err(refuse("goes up with ..")),
                Component::RootDir | Component::Prefix(_) => return Err(refuse("is an absolute path")),
            }
        }
        Ok(self.root.join(path))
    }

    /// Whether a resolved path lies in the package or a link root.
    fn allowed(&self, real: &Path) -> bool {
        real.starts_with(&self.canonical) || self.link_roots.iter().any(|r| real.starts_with(r))
    }

    fn outside(&self, path: &Path, real: &Path) -> Error {
        Error::bad_file(
            path,
            format!(
                "resolves to {}, outside the package directory {}; a package may only use its own files",
                real.display(),
                self.canonical.display()
            ),
        )
        .in_package(&self.root)
    }

    /// Resolves `path` (a path under the package directory), following every
    /// symlink, and checks that it stays inside; returns the resolved path.
    pub fn confine(&self, path: &Path) -> Result<PathBuf> {
        let real = path
            .canonicalize()
            .map_err(|e| Error::bad_file_from(path, "cannot resolve the path", e).in_package(&self.root))?;
        if !self.allowed(&real) {
            return Err(self.outside(path, &real));
        }
        Ok(real)
    }

    /// Opens a regular file of the package for reading, checking the file that
    /// was actually opened.
    pub fn open(&self, path: &Path) -> Result<File> {
        let err = |reason: &str, e: std::io::Error| Error::bad_file_from(path, reason, e).in_package(&self.root);
        // Resolve first so that a name outside is refused before it is opened at all.
        let real = self.confine(path)?;
        let file = File::open(&real).map_err(|e| err("cannot open", e))?;
        let meta = file.metadata().map_err(|e| err("cannot read the metadata", e))?;
        if !meta.is_file() {
            return Err(Error::bad_file(path, "is not a regular file").in_package(&self.root));
        }
        if let Some(opened) = opened_path(&file)
            && !self.allowed(&opened)
        {
            return Err(self.outside(path, &opened));
        }
        Ok(file)
    }

    /// Reads a regular file of the package (see [`PackageDir::open`]).
    pub fn read(&self, path: &Path) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.open(path)?
            .read_to_end(&mut bytes)
            .map_err(|e| Error::bad_file_from(path, "cannot read", e).in_package(&self.root))?;
        Ok(bytes)
    }

    /// Whether `path` exists as a file (symlinks followed). A file that exists
    /// but resolves outside is reported when it is opened.
    pub fn has_file(&self, path: &Path) -> bool {
        path.is_file()
    }
}

/// The path of the file an open descriptor refers to.
#[cfg(target_os = "linux")]
fn opened_path(file: &File) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()
}

#[cfg(not(target_os = "linux"))]
fn opened_path(_file: &File) -> Option<PathBuf> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn package() -> (tempfile::TempDir, PackageDir) {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("pkg")).unwrap();
        std::fs::create_dir(tmp.path().join("pkg/sub")).unwrap();
        std::fs::write(tmp.path().join("pkg/sub/inside.bin"), b"inside").unwrap();
        std::fs::write(tmp.path().join("secret"), b"outside").unwrap();
        let pkg = PackageDir::new(&tmp.path().join("pkg"), &[]).unwrap();
        (tmp, pkg)
    }

    fn refused(r: Result<impl std::fmt::Debug>, words: &str) {
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadPackage, "{e}");
        assert!(e.to_string().contains(words), "{e} should say {words:?}");
    }

    #[test]
    fn names_must_be_relative_and_stay_below() {
        let (_t, pkg) = package();
        assert_eq!(pkg.named("config.json: f", "sub/inside.bin").unwrap(), pkg.root().join("sub/inside.bin"));
        assert_eq!(pkg.named("config.json: f", "./sub/inside.bin").unwrap(), pkg.root().join("./sub/inside.bin"));
        refused(pkg.named("config.json: filename_tokens_embed", "/etc/passwd"), "is an absolute path");
        refused(pkg.named("config.json: f", "../secret"), "goes up with ..");
        refused(pkg.named("config.json: f", "sub/../../secret"), "goes up with ..");
        refused(pkg.named("config.json: f", "sub/../inside.bin"), "goes up with ..");
        refused(pkg.named("config.json: f", ""), "is empty");
        refused(pkg.named("config.json: f", "a\0b"), "NUL");
        let e = pkg.named("config.json: filename_tokens_embed", "/etc/passwd").unwrap_err();
        assert!(e.to_string().contains(": config.json: filename_tokens_embed \"/etc/passwd\""), "{e}");
    }

    #[test]
    fn symlinks_out_of_the_package_are_refused() {
        let (t, pkg) = package();
        std::os::unix::fs::symlink(t.path().join("secret"), t.path().join("pkg/link.bin")).unwrap();
        std::os::unix::fs::symlink(t.path(), t.path().join("pkg/updir")).unwrap();
        refused(pkg.read(&pkg.root().join("link.bin")), "outside the package directory");
        refused(pkg.read(&pkg.root().join("updir/secret")), "outside the package directory");
        // A symlink that stays inside is fine.
        std::os::unix::fs::symlink("sub/inside.bin", t.path().join("pkg/alias.bin")).unwrap();
        assert_eq!(pkg.read(&pkg.root().join("alias.bin")).unwrap(), b"inside");
    }

    #[test]
    fn link_roots_admit_links_into_a_trusted_store() {
        let (t, _) = package();
        let store = t.path().join("store");
        std::fs::create_dir(&store).unwrap();
        std::fs::write(store.join("blob"), b"blob").unwrap();
        std::os::unix::fs::symlink(store.join("blob"), t.path().join("pkg/model.bin")).unwrap();
        let pkg = PackageDir::new(&t.path().join("pkg"), &[store]).unwrap();
        assert_eq!(pkg.read(&pkg.root().join("model.bin")).unwrap(), b"blob");
        std::os::unix::fs::symlink(t.path().join("secret"), t.path().join("pkg/other.bin")).unwrap();
        refused(pkg.read(&pkg.root().join("other.bin")), "outside the package directory");
    }

    #[test]
    fn only_regular_files_are_read() {
        let (_t, pkg) = package();
        refused(pkg.read(&pkg.root().join("sub")), "not a regular file");
        refused(pkg.read(&pkg.root().join("missing")), "cannot resolve");
        let missing = PackageDir::new(Path::new("/nonexistent/package"), &[]).unwrap_err();
        assert!(missing.to_string().contains("no such directory"), "{missing}");
    }
}
