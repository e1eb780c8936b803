//! The stand-in API server's own self-test (tests/apiserver/test_fake_kube_apiserver.py),
//! run here so that `cargo nextest` holds it to the real kubectl on every run: the other
//! tests are only as honest as the server they talk to.

use std::path::Path;
use std::process::Command;

use crate::support::tool;

#[test]
fn the_stand_in_api_server_passes_its_self_test_with_the_real_kubectl() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apiserver");
    // kubectl from scripts/setup; missing, this fails (never a skip).
    let kubectl = tool("kubectl");
    assert!(kubectl.is_file());
    let out = Command::new(tool("python3"))
        .args(["-m", "unittest", "-v", "test_fake_kube_apiserver"])
        .current_dir(&dir)
        .output()
        .expect("run python3 -m unittest");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the stand-in API server's self-test failed:\n{stderr}"
    );
    // unittest's closing line: "Ran N tests" then "OK"; a run of no test is no pass.
    let ran = stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("Ran ")?
                .split_whitespace()
                .next()?
                .parse::<u32>()
                .ok()
        })
        .unwrap_or(0);
    assert!(
        ran >= 20,
        "expected the whole self-test, ran {ran}:\n{stderr}"
    );
}
