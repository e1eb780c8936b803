//! `SSL_CERT_FILE` (contract §3). A file that cannot be read (missing, a directory) or parsed
//! is a configuration error: exit 2, one line on stderr naming the variable, the path and
//! why, the termination log written, no AWS call and never a panic. It is read only when
//! there is something to fetch; empty counts as unset; a placeholder is the app's. A usable
//! file: `resolve::custom_ca_via_ssl_cert_file`.

use std::ffi::OsStr;
use std::path::Path;

use crate::common::{self, Moto, Proxy, Run};

const CORRUPT: &str =
    "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n";

/// Runs `secrets-init [args] -- APP` with `SSL_CERT_FILE=cert_file` and `env`, against a
/// proxy whose upstream does not exist. Returns the run, the termination log and the number
/// of AWS calls made.
fn run(cert_file: &OsStr, env: &[(&str, &str)], args: &[&str]) -> (Run, String, usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let termination_log = dir.path().join("termination-log");
    std::fs::write(&termination_log, "").expect("termination log");
    let proxy = Proxy::start("http://127.0.0.1:9");
    let mut cmd = common::secrets_init(&proxy.endpoint);
    cmd.env("SECRETS_INIT_TERMINATION_LOG", &termination_log)
        .env("SSL_CERT_FILE", cert_file)
        .envs(env.iter().copied())
        .args(args)
        .arg("--")
        .args(common::APP);
    let run = common::run(&mut cmd);
    let summary = std::fs::read_to_string(&termination_log).expect("termination log");
    (run, summary, proxy.calls().len())
}

/// Exit 2, exactly one stderr line naming `SSL_CERT_FILE=<path>` and `why`, the same text in
/// the termination log, no AWS call.
fn assert_config_error(path: &Path, why: &str) {
    let (run, summary, calls) = run(path.as_os_str(), &[("DB", "awssm:prod/db#password")], &[]);
    let label = format!("SSL_CERT_FILE={}", path.display());
    assert_eq!(run.code(), 2, "{label}: stderr {}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{label}: one line: {}", run.stderr);
    let line = lines[0];
    assert!(
        line.starts_with("secrets-init: error: SSL_CERT_FILE="),
        "{line}"
    );
    assert!(line.contains(&label), "{line}");
    assert!(line.contains(why), "{label}: {why:?} not in {line}");
    assert!(!line.contains("panicked"), "{line}");
    assert_eq!(
        summary,
        format!("secrets-init: {}\n", &line["secrets-init: error: ".len()..])
    );
    assert_eq!(calls, 0, "{label}: AWS was called");
    assert!(run.stdout.is_empty(), "{label}: the program ran");
}

#[test]
fn a_corrupt_file_is_a_configuration_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("corrupt.pem");
    std::fs::write(&path, CORRUPT).expect("write");
    assert_config_error(&path, "is not a valid PEM file: bad base64");
}

#[test]
fn an_unreadable_file_is_a_configuration_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_config_error(
        &dir.path().join("missing.pem"),
        "cannot be read: No such file",
    );
    assert_config_error(dir.path(), "cannot be read: Is a directory");
}

#[test]
fn a_file_without_certificates_is_a_configuration_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("empty.pem");
    std::fs::write(&path, "").expect("write");
    assert_config_error(&path, "holds no certificate");
}

#[test]
fn the_error_is_one_json_line_in_json_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("corrupt.pem");
    std::fs::write(&path, CORRUPT).expect("write");
    let (run, summary, _) = run(
        path.as_os_str(),
        &[("DB", "awssm:prod/db")],
        &["--log-format", "json"],
    );
    assert_eq!(run.code(), 2, "{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("JSON");
    assert_eq!(v["level"], "ERROR");
    let message = v["message"].as_str().expect("message");
    assert!(message.starts_with("SSL_CERT_FILE="), "{message}");
    assert!(summary.contains("bad base64"), "{summary}");
}

#[test]
fn the_file_is_read_only_when_there_is_something_to_fetch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("corrupt.pem");
    std::fs::write(&path, CORRUPT).expect("write");
    let (run, summary, calls) = run(path.as_os_str(), &[("PLAIN", "x")], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr);
    let (_, env) = run.app();
    assert_eq!(
        env["SSL_CERT_FILE"],
        path.to_str().expect("utf-8"),
        "passed on to the app"
    );
    assert!(summary.is_empty(), "{summary}");
    assert_eq!(calls, 0);
}

#[test]
fn empty_is_unset() {
    // Compiled-in roots only: secrets-init goes on to call AWS (here a dead upstream, so the
    // placeholder fails with exit 1, not the configuration error of exit 2).
    let (run, _, calls) = run(
        OsStr::new(""),
        &[("DB", "awssm:prod/db")],
        &["--timeout", "20"],
    );
    assert_eq!(run.code(), 1, "{}", run.stderr);
    assert!(!run.stderr.contains("SSL_CERT_FILE"), "{}", run.stderr);
    assert!(calls > 0, "AWS was not called");
}

#[test]
fn a_placeholder_is_resolved_for_the_app_and_not_read() {
    let moto = Moto::start();
    moto.create("app/certs", r#"{"path":"/etc/ssl/app-bundle.pem"}"#);
    let run = common::run_app(
        &moto.endpoint,
        &[],
        &[("SSL_CERT_FILE", "awssm:app/certs#path")],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr);
    let (_, env) = run.app();
    assert_eq!(env["SSL_CERT_FILE"], "/etc/ssl/app-bundle.pem");
}
