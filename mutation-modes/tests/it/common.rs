//! Helpers shared by the integration tests: a table-driven `ImageConfigSource`, fixture
//! loading, and finding the schema validator.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use mutation_modes::{ImageConfig, ImageConfigError, ImageConfigSource, MutationConfig, Platform};

/// One row of `images.yaml`. Keys are `image` (any platform) or `image|os/arch` (that
/// platform only; wins over the plain key). A missing key is `NotFound`, or `PlatformMissing`
/// when the image has rows for other platforms only.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FakeImage {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// When set, the lookup fails with `ImageConfigError::Other` and this reason.
    pub error: Option<String>,
}

/// An `ImageConfigSource` backed by a table; records every lookup.
#[derive(Debug, Default)]
pub struct FakeImages {
    pub table: BTreeMap<String, FakeImage>,
    pub calls: Mutex<Vec<String>>,
}

impl FakeImages {
    pub fn new(table: BTreeMap<String, FakeImage>) -> Self {
        Self {
            table,
            calls: Mutex::new(Vec::new()),
        }
    }

    /// The lookups made so far, sorted (they run concurrently), as `image os/arch` lines.
    pub fn calls(&self) -> Vec<String> {
        let mut c = self.calls.lock().unwrap().clone();
        c.sort();
        c
    }
}

impl ImageConfigSource for FakeImages {
    async fn image_config(
        &self,
        image: &str,
        platform: &Platform,
    ) -> Result<ImageConfig, ImageConfigError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("{image} {platform}"));
        let platforms: Vec<&str> = self
            .table
            .keys()
            .filter_map(|k| k.strip_prefix(image)?.strip_prefix('|'))
            .collect();
        let row = self
            .table
            .get(&format!("{image}|{platform}"))
            .or_else(|| self.table.get(image));
        let row = match row {
            Some(row) => row,
            None if !platforms.is_empty() => {
                return Err(ImageConfigError::PlatformMissing {
                    image: image.to_owned(),
                    platform: platform.to_string(),
                    available: platforms.join(", "),
                });
            }
            None => {
                return Err(ImageConfigError::NotFound {
                    image: image.to_owned(),
                });
            }
        };
        if let Some(reason) = &row.error {
            return Err(ImageConfigError::Other {
                image: image.to_owned(),
                reason: reason.clone(),
            });
        }
        Ok(ImageConfig {
            entrypoint: row.entrypoint.clone(),
            cmd: row.cmd.clone(),
        })
    }
}

/// The configuration golden tests start from (fixed, so a version bump changes no fixture).
pub fn base_config() -> MutationConfig {
    MutationConfig {
        secrets_init_image: "registry.example/secrets-init/secrets-init:1.0.0".to_owned(),
        ..MutationConfig::default()
    }
}

pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

pub fn read_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `kubernetes-validate` from PATH (scripts/test puts .tools/venv/bin there), else from the
/// repository's .tools/venv. Missing: the test fails and says how to get it.
pub fn kubernetes_validate() -> PathBuf {
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("kubernetes-validate"))
            .find(|p| p.is_file())
    });
    let local =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/venv/bin/kubernetes-validate");
    from_path.or_else(|| local.is_file().then_some(local)).unwrap_or_else(|| {
        panic!("kubernetes-validate is not installed (not on PATH, not in .tools/venv/bin): run scripts/setup")
    })
}

/// The Kubernetes version whose schema the pods are checked against (the newest that
/// kubernetes-validate ships; it has ImageVolumeSource).
pub const SCHEMA_VERSION: &str = "1.33.0";

/// Runs kubernetes-validate (strict) over `files`; returns its combined output on failure.
pub fn validate_files(files: &[PathBuf]) -> Result<(), String> {
    let out = std::process::Command::new(kubernetes_validate())
        .args([
            "--kubernetes-version",
            SCHEMA_VERSION,
            "--strict",
            "--quiet",
        ])
        .args(files)
        .output()
        .expect("run kubernetes-validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && !text.contains("ERROR") {
        Ok(())
    } else {
        Err(format!(
            "kubernetes-validate failed ({}):\n{text}",
            out.status
        ))
    }
}
