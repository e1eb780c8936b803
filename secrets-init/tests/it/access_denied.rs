//! Per-secret `AccessDeniedException` (contract §3): a secret the pod may not read fails the
//! start naming variable, reference and code; under `--ignore-missing` it becomes the empty
//! string with a warning naming variable and reference, never a value, and the other secrets
//! of the same call still resolve. For `GetSecretValue`, for the `Errors` entries of a
//! `BatchGetSecretValue` answer, and for Parameter Store.
//!
//! The denial comes from the test proxy, not from moto: moto (5.1) checks IAM policies only
//! against the resource `*` for Secrets Manager and Parameter Store, does not enforce secret
//! resource policies, and its `BatchGetSecretValue` lists only not-found secrets under
//! `Errors`. So no policy can make moto deny one secret and serve the next. The proxy
//! answers a denied `GetSecretValue` with the JSON error AWS sends (HTTP 400, `__type`
//! `AccessDeniedException`, IAM's message), and rewrites moto's real batch answer, moving the
//! denied secret from `SecretValues` to an `Errors` entry with that code; everything else is
//! moto's own answer.

use crate::common::{Faults, Moto, Proxy, Run, run_app};

const VALUES: [&str; 3] = [
    "a-V4lue-d3nied-test",
    "c-V4lue-d3nied-test",
    "hidden-V4lue-d3nied",
];

fn seed(moto: &Moto) {
    moto.create("app/a", &format!(r#"{{"k":"{}"}}"#, VALUES[0]));
    moto.create("app/c", VALUES[1]);
    moto.create("app/denied", &format!(r#"{{"k":"{}"}}"#, VALUES[2]));
}

/// The environment every run resolves: two readable secrets around a denied one, used whole,
/// by key and embedded.
const ENV: [(&str, &str); 5] = [
    ("A", "awssm:app/a#k"),
    ("C", "awssm:app/c"),
    ("DENIED", "awssm:app/denied"),
    ("DENIED_KEY", "awssm:app/denied#k"),
    ("EMBED", "before-${awssm:app/denied#k}-after"),
];

fn assert_no_value_logged(run: &Run) {
    run.assert_no_secret_in_logs(&VALUES);
    assert!(
        !run.stderr.contains("V4lue"),
        "a value leaked: {}",
        run.stderr
    );
}

/// Denied, without `--ignore-missing`: exit 1, one line per variable, the program not run.
fn assert_denied_fails(run: &Run) {
    assert_eq!(run.code(), 1, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "the program must not run");
    for (var, reference) in [
        ("DENIED", "awssm:app/denied"),
        ("DENIED_KEY", "awssm:app/denied#k"),
        ("EMBED", "awssm:app/denied#k"),
    ] {
        let want = format!("error: {var}: {reference}: AccessDeniedException");
        assert!(run.stderr.contains(&want), "{want:?} not in {}", run.stderr);
    }
    assert!(!run.stderr.contains("error: A:"), "{}", run.stderr);
    assert!(!run.stderr.contains("error: C:"), "{}", run.stderr);
    assert_no_value_logged(run);
}

/// Denied, with `--ignore-missing`: the program runs with empty values where the denied
/// secret was, the real values elsewhere, and a warning per variable.
fn assert_denied_ignored(run: &Run) {
    assert_eq!(run.code(), 0, "{}", run.stderr);
    let (_, seen) = run.app();
    assert_eq!(seen["A"], VALUES[0]);
    assert_eq!(seen["C"], VALUES[1]);
    assert_eq!(seen["DENIED"], "");
    assert_eq!(seen["DENIED_KEY"], "");
    assert_eq!(seen["EMBED"], "before--after");
    for (var, reference) in [
        ("DENIED", "awssm:app/denied"),
        ("DENIED_KEY", "awssm:app/denied#k"),
        ("EMBED", "awssm:app/denied#k"),
    ] {
        let want = format!("warn: {var}: {reference}: AccessDeniedException");
        assert!(run.stderr.contains(&want), "{want:?} not in {}", run.stderr);
    }
    assert!(!run.stderr.contains(": A:"), "{}", run.stderr);
    assert_no_value_logged(run);
}

fn denying(moto: &Moto) -> Proxy {
    let proxy = Proxy::start(&moto.endpoint);
    proxy.set_faults(Faults {
        deny_secret: Some("app/denied".into()),
        ..Faults::default()
    });
    proxy
}

#[test]
fn a_denied_secret_in_a_batch_answer() {
    let moto = Moto::start();
    seed(&moto);
    let proxy = denying(&moto);
    for (args, check) in [
        (&[][..], assert_denied_fails as fn(&Run)),
        (&["--ignore-missing"][..], assert_denied_ignored),
    ] {
        proxy.reset();
        let run = run_app(&proxy.endpoint, args, &ENV);
        check(&run);
        // One batch for the three secrets; its Errors entry is the answer for the denied one
        // (asking again with GetSecretValue would only be denied again).
        assert_eq!(
            proxy.count("secretsmanager.BatchGetSecretValue"),
            1,
            "{args:?}: {:?}",
            proxy.summary()
        );
        assert_eq!(
            proxy.count("secretsmanager.GetSecretValue"),
            0,
            "{args:?}: {:?}",
            proxy.summary()
        );
    }
}

#[test]
fn a_denied_secret_asked_with_get_secret_value() {
    let moto = Moto::start();
    seed(&moto);
    let proxy = denying(&moto);
    for (args, check) in [
        (&["--no-batch"][..], assert_denied_fails as fn(&Run)),
        (
            &["--no-batch", "--ignore-missing"][..],
            assert_denied_ignored,
        ),
    ] {
        proxy.reset();
        let run = run_app(&proxy.endpoint, args, &ENV);
        check(&run);
        assert_eq!(
            proxy.count("secretsmanager.GetSecretValue"),
            3,
            "{args:?}: {:?}",
            proxy.summary()
        );
        assert_eq!(proxy.count("secretsmanager.BatchGetSecretValue"), 0);
    }

    // A single reference, and a versioned one, always go through GetSecretValue.
    for (var, reference) in [
        ("ONLY", "awssm:app/denied#k"),
        (
            "BY_ID",
            "awssm:app/denied#k#11111111-2222-3333-4444-555555555555",
        ),
        ("PREVIOUS", "awssm:app/denied##AWSPREVIOUS"),
    ] {
        let run = run_app(&proxy.endpoint, &["--ignore-missing"], &[(var, reference)]);
        assert_eq!(run.code(), 0, "{reference}: {}", run.stderr);
        assert_eq!(run.app().1[var], "", "{reference}");
        let want = format!("warn: {var}: {reference}: AccessDeniedException");
        assert!(run.stderr.contains(&want), "{want:?} not in {}", run.stderr);
        assert_no_value_logged(&run);
    }
}

#[test]
fn a_denied_parameter_next_to_a_denied_secret() {
    let moto = Moto::start();
    seed(&moto);
    moto.put_parameter("/app/p", "p-V4lue-d3nied-test", "SecureString");
    moto.put_parameter("/app/denied", "hidden-param-V4lue", "SecureString");
    let proxy = Proxy::start(&moto.endpoint);
    proxy.set_faults(Faults {
        deny_secret: Some("app/denied".into()),
        deny_parameter: Some("/app/denied".into()),
        ..Faults::default()
    });
    let mut env = ENV.to_vec();
    env.extend([("P", "awsssm:/app/p"), ("P_DENIED", "awsssm:/app/denied")]);

    let run = run_app(&proxy.endpoint, &[], &env);
    assert_denied_fails(&run);
    assert!(
        run.stderr
            .contains("error: P_DENIED: awsssm:/app/denied: AccessDeniedException"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("hidden-param"), "{}", run.stderr);

    let run = run_app(&proxy.endpoint, &["--ignore-missing"], &env);
    assert_denied_ignored(&run);
    let (_, seen) = run.app();
    assert_eq!(seen["P"], "p-V4lue-d3nied-test");
    assert_eq!(seen["P_DENIED"], "");
    assert!(
        run.stderr
            .contains("warn: P_DENIED: awsssm:/app/denied: AccessDeniedException"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("hidden-param"), "{}", run.stderr);
}
