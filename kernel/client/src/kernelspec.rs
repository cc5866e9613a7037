//! Finding and reading kernel specs (`<dir>/kernels/<name>/kernel.json`) the way
//! Jupyter does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// A kernel spec: how to start one kernel.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KernelSpec {
    /// Command line; `{connection_file}` and `{resource_dir}` are substituted at start.
    pub argv: Vec<String>,
    /// Name shown in front ends.
    #[serde(default)]
    pub display_name: String,
    /// Language of the kernel.
    #[serde(default)]
    pub language: String,
    /// Environment variables set for the kernel process.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// "signal" (SIGINT) or "message" (`interrupt_request` on control).
    #[serde(default)]
    pub interrupt_mode: Option<String>,
    /// The directory holding `kernel.json`; its last component is the kernel name.
    #[serde(skip)]
    pub resource_dir: PathBuf,
}

impl KernelSpec {
    /// Reads `<resource_dir>/kernel.json`.
    pub fn load(resource_dir: &Path) -> Result<KernelSpec> {
        let path = resource_dir.join("kernel.json");
        let text = std::fs::read_to_string(&path)
            .map_err(Error::io(format!("read {}", path.display())))?;
        let mut spec: KernelSpec =
            serde_json::from_str(&text).map_err(|error| Error::BadKernelSpec {
                path: path.clone(),
                reason: error.to_string(),
            })?;
        if spec.argv.is_empty() {
            return Err(Error::BadKernelSpec {
                path,
                reason: "argv is empty".to_string(),
            });
        }
        spec.resource_dir = resource_dir.to_path_buf();
        Ok(spec)
    }

    /// Finds kernel `name` in the first of `kernel_dirs` (each a `.../kernels`
    /// directory) that has it.
    pub fn find(name: &str, kernel_dirs: &[PathBuf]) -> Result<KernelSpec> {
        for dir in kernel_dirs {
            let candidate = dir.join(name);
            if candidate.join("kernel.json").is_file() {
                return KernelSpec::load(&candidate);
            }
        }
        Err(Error::KernelSpecNotFound {
            name: name.to_string(),
            searched: kernel_dirs.to_vec(),
        })
    }

    /// The kernel name (the spec directory's name).
    pub fn name(&self) -> String {
        self.resource_dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// `text` with `{connection_file}` and `{resource_dir}` replaced.
    pub fn substitute(&self, text: &str, connection_file: &Path) -> String {
        text.replace("{connection_file}", &connection_file.to_string_lossy())
            .replace("{resource_dir}", &self.resource_dir.to_string_lossy())
    }
}

/// The `kernels` directories Jupyter searches, in order: each entry of
/// `$JUPYTER_PATH`, the active virtualenv's (`$VIRTUAL_ENV`) `share/jupyter`,
/// `$JUPYTER_DATA_DIR` or `~/.local/share/jupyter`, `/usr/local/share/jupyter`,
/// `/usr/share/jupyter`.
pub fn default_kernel_dirs() -> Vec<PathBuf> {
    let mut data_dirs: Vec<PathBuf> = Vec::new();
    if let Some(paths) = std::env::var_os("JUPYTER_PATH") {
        data_dirs.extend(std::env::split_paths(&paths).filter(|p| !p.as_os_str().is_empty()));
    }
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
        data_dirs.push(PathBuf::from(venv).join("share/jupyter"));
    }
    if let Some(dir) = std::env::var_os("JUPYTER_DATA_DIR") {
        data_dirs.push(PathBuf::from(dir));
    } else if let Some(home) = std::env::var_os("HOME") {
        data_dirs.push(PathBuf::from(home).join(".local/share/jupyter"));
    }
    data_dirs.push(PathBuf::from("/usr/local/share/jupyter"));
    data_dirs.push(PathBuf::from("/usr/share/jupyter"));
    data_dirs
        .into_iter()
        .map(|dir| dir.join("kernels"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(label: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("kernel-client-spec-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn finds_the_first_directory_with_the_kernel() {
        let root = temp_dir("find");
        let first = root.join("a/kernels");
        let second = root.join("b/kernels");
        std::fs::create_dir_all(first.join("other")).unwrap();
        std::fs::create_dir_all(second.join("mine")).unwrap();
        std::fs::write(
            second.join("mine/kernel.json"),
            r#"{"argv":["k","-f","{connection_file}","{resource_dir}/x"],"display_name":"Mine",
                "language":"rust","env":{"A":"1"},"interrupt_mode":"message"}"#,
        )
        .unwrap();
        let spec = KernelSpec::find("mine", &[first.clone(), second.clone()]).unwrap();
        assert_eq!(spec.name(), "mine");
        assert_eq!(spec.env.get("A").map(String::as_str), Some("1"));
        assert_eq!(spec.interrupt_mode.as_deref(), Some("message"));
        assert_eq!(
            spec.substitute(&spec.argv[3], Path::new("/c.json")),
            format!("{}/x", second.join("mine").display())
        );
        assert_eq!(
            spec.substitute(&spec.argv[2], Path::new("/c.json")),
            "/c.json"
        );

        let error = KernelSpec::find("absent", &[first.clone(), second]).unwrap_err();
        assert!(
            matches!(error, Error::KernelSpecNotFound { ref searched, .. } if searched.len() == 2)
        );
        assert!(error.to_string().contains("absent"));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn reports_a_broken_spec() {
        let root = temp_dir("broken");
        std::fs::create_dir_all(root.join("bad")).unwrap();
        std::fs::write(root.join("bad/kernel.json"), r#"{"argv":[]}"#).unwrap();
        let error = KernelSpec::find("bad", std::slice::from_ref(&root)).unwrap_err();
        assert!(error.to_string().contains("argv is empty"), "{error}");
        std::fs::write(root.join("bad/kernel.json"), "{").unwrap();
        assert!(matches!(
            KernelSpec::find("bad", std::slice::from_ref(&root)),
            Err(Error::BadKernelSpec { .. })
        ));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn default_dirs_end_with_the_system_ones() {
        let dirs = default_kernel_dirs();
        assert_eq!(
            &dirs[dirs.len() - 2..],
            &[
                PathBuf::from("/usr/local/share/jupyter/kernels"),
                PathBuf::from("/usr/share/jupyter/kernels")
            ]
        );
    }
}
