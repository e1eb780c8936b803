//! Registry credentials from a docker `config.json` (the format of a Kubernetes
//! `kubernetes.io/dockerconfigjson` Secret, mounted into the webhook).
//!
//! Supported: `auths.<registry>.auth` (base64 of `user:password`) and
//! `auths.<registry>.username` + `password`. Registry keys are normalised the way docker does
//! (`https://index.docker.io/v1/` and `docker.io` are the same key; a scheme and path are
//! ignored). Not supported: `credsStore`/`credHelpers` (no helper binaries in the webhook image)
//! and `identitytoken`; entries that only have those are skipped with a warning.
//!
//! Error messages never quote file content (it holds passwords): JSON errors give a line and
//! column only.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use super::error::ImagesError;

/// A user name and password for one registry. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The credentials of a docker `config.json`, keyed by normalised registry host.
#[derive(Debug, Clone, Default)]
pub struct DockerConfig {
    auths: HashMap<String, Credentials>,
    /// Entries that were ignored (registry key, why); logged once at start-up.
    pub skipped: Vec<(String, &'static str)>,
}

#[derive(Deserialize)]
struct RawConfig {
    auths: Option<HashMap<String, RawAuth>>,
}

#[derive(Deserialize)]
struct RawAuth {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

impl DockerConfig {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, ImagesError> {
        let bytes = std::fs::read(path).map_err(|e| ImagesError::DockerConfig {
            path: path.to_owned(),
            reason: format!("cannot read it: {e}"),
        })?;
        Self::parse(&bytes, path)
    }

    /// Parses the content of a docker `config.json`; `path` is only used in error messages.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, ImagesError> {
        let err = |reason: String| ImagesError::DockerConfig {
            path: PathBuf::from(path),
            reason,
        };
        let raw: RawConfig = serde_json::from_slice(bytes).map_err(|e| {
            err(format!(
                "not a docker config.json ({:?} error at line {} column {}); expected {{\"auths\": {{\"<registry>\": {{\"auth\": \"<base64 user:password>\"}}}}}}",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        let Some(raw_auths) = raw.auths else {
            return Err(err(
                "has no \"auths\" object; expected {\"auths\": {\"<registry>\": {\"auth\": \"<base64 user:password>\"}}}"
                    .into(),
            ));
        };
        let mut auths = HashMap::new();
        let mut skipped = Vec::new();
        for (key, entry) in raw_auths {
            let host = normalize_registry_host(&key);
            if host.is_empty() {
                return Err(err(format!(
                    "auths has an entry with an empty registry name ({key:?})"
                )));
            }
            let creds = if let Some(auth) = entry.auth.filter(|a| !a.is_empty()) {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        err(format!(
                            "auths[{key:?}].auth is not base64 of \"user:password\""
                        ))
                    })?;
                let (user, pass) = decoded.split_once(':').ok_or_else(|| {
                    err(format!(
                        "auths[{key:?}].auth decodes to text without a ':'; it must be base64 of \"user:password\""
                    ))
                })?;
                Credentials {
                    username: user.to_owned(),
                    password: pass.to_owned(),
                }
            } else if let (Some(username), Some(password)) = (entry.username, entry.password) {
                Credentials { username, password }
            } else {
                skipped.push((
                    key.clone(),
                    if entry.identitytoken.is_some() {
                        "uses identitytoken, which is not supported"
                    } else {
                        "has neither auth nor username/password"
                    },
                ));
                continue;
            };
            auths.insert(host, creds);
        }
        skipped.sort();
        Ok(Self { auths, skipped })
    }

    /// The credentials for `registry` (as written in an image reference, e.g. `ghcr.io`,
    /// `localhost:5000`, `docker.io`), if the file has any.
    pub fn credentials_for(&self, registry: &str) -> Option<&Credentials> {
        self.auths.get(&normalize_registry_host(registry))
    }

    /// The registries this file has credentials for (normalised, sorted); for logs.
    pub fn registries(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.auths.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }
}

/// Normalises a registry name the way docker does for `auths` keys: no scheme, no path,
/// lower case, and every Docker Hub alias becomes `docker.io`.
pub fn normalize_registry_host(name: &str) -> String {
    let s = name.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or("").to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_owned()
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<DockerConfig, ImagesError> {
        DockerConfig::parse(s.as_bytes(), Path::new("/cfg/config.json"))
    }

    #[test]
    fn normalises_keys() {
        let cases = [
            ("https://index.docker.io/v1/", "docker.io"),
            ("docker.io", "docker.io"),
            ("registry-1.docker.io", "docker.io"),
            ("http://LocalHost:5000/v2/", "localhost:5000"),
            ("ghcr.io", "ghcr.io"),
            (
                "123.dkr.ecr.eu-west-1.amazonaws.com",
                "123.dkr.ecr.eu-west-1.amazonaws.com",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_registry_host(input), want, "{input}");
        }
    }

    #[test]
    fn reads_auth_and_username_password() {
        // "alice:s3cr:et" -> password may contain ':'
        let cfg = parse(
            r#"{"auths": {
                "https://index.docker.io/v1/": {"auth": "YWxpY2U6czNjcjpldA=="},
                "localhost:5000": {"username": "bob", "password": "pw"},
                "only-token.example": {"identitytoken": "x"}
            }}"#,
        )
        .expect("valid");
        let hub = cfg.credentials_for("docker.io").expect("hub creds");
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("alice", "s3cr:et")
        );
        let local = cfg.credentials_for("localhost:5000").expect("local creds");
        assert_eq!(
            (local.username.as_str(), local.password.as_str()),
            ("bob", "pw")
        );
        assert!(cfg.credentials_for("only-token.example").is_none());
        assert_eq!(
            cfg.skipped,
            vec![(
                "only-token.example".to_owned(),
                "uses identitytoken, which is not supported"
            )]
        );
        assert!(cfg.credentials_for("quay.io").is_none());
        assert_eq!(cfg.registries(), vec!["docker.io", "localhost:5000"]);
    }

    #[test]
    fn errors_are_clear_and_never_quote_secrets() {
        let cases = [
            (
                r#"{"auths": {"r": {"auth": "%%%notbase64"}}}"#,
                "is not base64",
            ),
            (
                r#"{"auths": {"r": {"auth": "bm9jb2xvbg=="}}}"#,
                "without a ':'",
            ),
            (r#"{"credsStore": "desktop"}"#, "has no \"auths\" object"),
            (
                r#"{"auths": {"r": {"auth": "hunter2-secret"#,
                "not a docker config.json",
            ),
        ];
        for (input, want) in cases {
            let e = parse(input).expect_err(input).to_string();
            assert!(e.contains(want), "{e:?} should contain {want:?}");
            assert!(e.contains("/cfg/config.json"), "{e:?} names the file");
            assert!(
                !e.contains("hunter2") && !e.contains("notbase64"),
                "{e:?} leaks content"
            );
        }
    }

    #[test]
    fn debug_redacts_password() {
        let c = Credentials {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
