//! An `SSL_CERT_FILE` the webhook cannot use stops it at start-up, before it serves: exit 2
//! and a message naming the variable, the path and why. (The AWS SDK would otherwise panic on
//! it at the first ECR image.) The checks themselves are the `aws_https` crate's, shared with
//! secrets-init.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_secrets-init-webhook");

/// Starts the webhook with `SSL_CERT_FILE=path`; returns its exit code and stderr. Fails the
/// test if it is still running after 30 s (it started instead of refusing to).
fn start(path: &Path) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let stderr_path = dir.path().join("stderr");
    let mut child = Command::new(BIN)
        .env_clear()
        .env("SSL_CERT_FILE", path)
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("spawn the webhook");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "SSL_CERT_FILE={}: the webhook started instead of refusing to",
                path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(&stderr_path).expect("stderr");
    (status.code().unwrap_or(-1), stderr)
}

fn assert_refused(path: &Path, why: &str) {
    let (code, stderr) = start(path);
    let label = format!("SSL_CERT_FILE={}", path.display());
    assert_eq!(code, 2, "{label}: exit code; stderr: {stderr}");
    assert!(stderr.contains(&label), "{label} not named: {stderr}");
    assert!(stderr.contains(why), "{why:?} not in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_corrupt_file_stops_start_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("corrupt.pem");
    std::fs::write(
        &path,
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    assert_refused(&path, "is not a valid PEM file: bad base64");
}

#[test]
fn an_unreadable_file_stops_start_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_refused(
        &dir.path().join("missing.pem"),
        "cannot be read: No such file",
    );
    assert_refused(dir.path(), "cannot be read: Is a directory");
}
