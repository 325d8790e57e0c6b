//! Writing images without leaving partial files behind.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Writes a file through a temporary sibling and an atomic rename, so a crash or an error never
/// leaves a half-written file at `path` (and an existing file is replaced only on success).
pub fn write_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = write(&tmp).and_then(|()| {
        std::fs::rename(&tmp, path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    });
    if result.is_err() {
        // Best effort: the temporary may not exist if the writer failed before creating it.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
