//! `secrets-init install <DIR>`: the init container's job. Its image is `FROM scratch`,
//! so there is no `cp`: the binary copies itself.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why `install` failed. Names the path and the OS error.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(
        "install failed: cannot find this executable: /proc/self/exe is unavailable and argv[0] is not a path"
    )]
    NoExecutable,
    #[error("install failed: {} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("install failed: {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// Copies this executable to `dir/secrets-init` with mode 0555; the file appears whole or
/// not at all (written to a temporary name, synced, then renamed).
pub fn install(dir: &Path) -> Result<PathBuf, InstallError> {
    // /proc/self/exe; without /proc (a bare chroot), the path we were started by.
    let source = std::env::current_exe()
        .ok()
        .filter(|p| p.is_file())
        .or_else(|| {
            std::env::args_os()
                .next()
                .map(PathBuf::from)
                .filter(|p| p.components().count() > 1 && p.is_file())
        })
        .ok_or(InstallError::NoExecutable)?;
    install_from(&source, dir)
}

/// [`install`] with the file to copy given.
pub fn install_from(source: &Path, dir: &Path) -> Result<PathBuf, InstallError> {
    let fail = |what: &'static str, path: &Path, source: io::Error| InstallError::Io {
        what,
        path: path.to_owned(),
        source,
    };
    let meta = fs::metadata(dir).map_err(|e| fail("cannot use directory", dir, e))?;
    if !meta.is_dir() {
        return Err(InstallError::NotADirectory(dir.to_owned()));
    }
    let target = dir.join("secrets-init");
    let temp = dir.join(format!(".secrets-init.{}.tmp", std::process::id()));
    let bytes = fs::read(source).map_err(|e| fail("cannot read", source, e))?;
    let write = || -> io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o700)
            .open(&temp)?;
        file.write_all(&bytes)?;
        file.set_permissions(fs::Permissions::from_mode(0o555))?;
        file.sync_all()?;
        fs::rename(&temp, &target)?;
        // Make the rename itself durable.
        fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&temp);
        fail("cannot install into", dir, e)
    })?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_atomically_with_mode_0555() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        fs::write(&source, b"#!/bin/sh\necho hi\n").unwrap();
        let target_dir = dir.path().join("bin");
        fs::create_dir(&target_dir).unwrap();
        let target = install_from(&source, &target_dir).unwrap();
        assert_eq!(target, target_dir.join("secrets-init"));
        assert_eq!(fs::read(&target).unwrap(), b"#!/bin/sh\necho hi\n");
        let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o555);
        // a second install replaces the read-only file (rename over it)
        fs::write(&source, b"v2").unwrap();
        install_from(&source, &target_dir).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"v2");
        let leftovers: Vec<_> = fs::read_dir(&target_dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary files left behind");
    }

    #[test]
    fn missing_dir_is_a_clear_error() {
        let err =
            install_from(Path::new("/etc/hostname"), Path::new("/nonexistent/dir")).unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot use directory /nonexistent/dir"),
            "{err}"
        );
        let err = install_from(Path::new("/etc/hostname"), Path::new("/etc/hostname")).unwrap_err();
        assert!(err.to_string().contains("is not a directory"), "{err}");
    }
}
