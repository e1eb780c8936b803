//! The harness the other tests stand on (issue 18): a child's output is read however much
//! there is, and each `Moto` is a moto of its own on the port it reported.

use std::process::Command;

use crate::common::{self, CredentialsEndpoint, Moto};

fn port_of(url: &str) -> u16 {
    let authority = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next());
    authority
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

/// 1 MiB to each stream, in 64 KiB turns, so each pipe fills while the other is being written.
const NOISY: &str = r#"i=0; while [ "$i" -lt 16 ]; do head -c 65536 /dev/zero | tr '\0' o; head -c 65536 /dev/zero | tr '\0' e >&2; i=$((i + 1)); done"#;

fn assert_noisy_output(run: &common::Run) {
    assert_eq!(run.code(), 0, "exit code");
    assert_eq!(run.stdout.len(), 1 << 20, "stdout length");
    assert!(run.stdout.iter().all(|&b| b == b'o'), "stdout content");
    assert_eq!(run.stderr.len(), 1 << 20, "stderr length");
    assert!(run.stderr.bytes().all(|b| b == b'e'), "stderr content");
}

#[test]
fn run_reads_both_streams_of_a_child_that_writes_more_than_a_pipe_holds() {
    let run = common::run(Command::new("/bin/sh").args(["-c", NOISY]));
    assert_noisy_output(&run);
}

#[test]
fn run_reads_both_streams_of_a_program_secrets_init_execs() {
    // Nothing to resolve, so no AWS call: the endpoint is never used.
    let closed = format!("http://127.0.0.1:{}", common::free_port());
    let mut cmd = common::secrets_init(&closed);
    cmd.args(["--", "/bin/sh", "-c", NOISY]);
    assert_noisy_output(&common::run(&mut cmd));
}

#[test]
fn each_moto_is_its_own_server_on_the_port_it_reported() {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(Moto::start);
        let b = s.spawn(Moto::start);
        (a.join().expect("moto a"), b.join().expect("moto b"))
    });
    assert_ne!(a.endpoint, b.endpoint);
    for moto in [&a, &b] {
        assert!(
            common::is_moto(port_of(&moto.endpoint)),
            "{} is not moto",
            moto.endpoint
        );
    }
    // Another HTTP server on loopback is not taken for moto.
    let other = CredentialsEndpoint::start("token", "key");
    assert!(!common::is_moto(port_of(&other.url)), "{}", other.url);
    a.create("only-in-a", "a");
    let listed = b.block_on(async {
        b.client(common::REGION)
            .list_secrets()
            .send()
            .await
            .expect("list secrets in b")
    });
    assert!(
        listed.secret_list().is_empty(),
        "a secret created in one moto shows in the other: {:?}",
        listed.secret_list()
    );
}
