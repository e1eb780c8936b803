//! `--role-arn` / `--role-external-id` against moto's STS: one AssumeRole per run, from the
//! pod identity, and every Secrets Manager and Parameter Store call signed with the assumed
//! role's credentials; a refused AssumeRole is one line naming the role and STS's code.

use crate::common::*;

const ROLE: &str = "arn:aws:iam::123456789012:role/secrets-reader";
/// A role in another account: moto keeps a separate store per account, and an assumed
/// role's keys belong to the role's account.
const OTHER_ACCOUNT_ROLE: &str = "arn:aws:iam::111111111111:role/cross-account-reader";

#[test]
fn one_assume_role_and_every_call_signed_with_its_credentials() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint);
    for i in 0..3 {
        moto.create(&format!("r/s{i}"), &format!("secret-{i}"));
        moto.put_parameter(&format!("/r/p{i}"), &format!("param-{i}"), "String");
    }
    moto.create("r/json", r#"{"K":"k"}"#);
    moto.put_parameter("/r/path/V", "v", "String");
    let run = run_app(
        &proxy.endpoint,
        &[
            "--role-arn",
            ROLE,
            "--role-external-id",
            "ext-1234",
            "--env-from",
            "awssm:r/json,awsssm:/r/path/",
        ],
        &[
            ("S0", "awssm:r/s0"),
            ("S1", "awssm:r/s1"),
            ("S2", "awssm:r/s2#k#AWSPREVIOUS"),
            ("P0", "awsssm:/r/p0"),
            ("P1", "awsssm:/r/p1##1"),
            ("P2", "awsssm:/r/p2"),
            ("HOSTNAME", "app-7d9f8b-x2k4q"),
            ("SECRETS_INIT_IGNORE_MISSING", "true"),
        ],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr);
    let (_, env) = run.app();
    assert_eq!(env["S1"], "secret-1");
    assert_eq!(env["P2"], "param-2");
    assert_eq!(env["K"], "k");
    assert_eq!(env["V"], "v");

    let calls = proxy.calls();
    let assume: Vec<_> = calls
        .iter()
        .filter(|c| c.operation == "sts.AssumeRole")
        .collect();
    assert_eq!(
        assume.len(),
        1,
        "exactly one AssumeRole: {:?}",
        proxy.summary()
    );
    let assume = assume[0];
    assert_eq!(assume.form["RoleArn"], ROLE);
    assert_eq!(assume.form["ExternalId"], "ext-1234");
    assert_eq!(
        assume.form["RoleSessionName"],
        "secrets-init-app-7d9f8b-x2k4q"
    );
    assert_eq!(
        assume.access_key.as_deref(),
        Some(STATIC_KEY),
        "AssumeRole is signed with secrets-init's own credentials"
    );
    let issued = assume
        .issued_key
        .clone()
        .expect("AssumeRole's access key id");
    assert_ne!(issued, STATIC_KEY);
    let others: Vec<_> = calls
        .iter()
        .filter(|c| c.operation != "sts.AssumeRole")
        .collect();
    // 1 batch for S0/S1 and r/json, 1 GetSecretValue for the version, 1 GetParameters, 1 path.
    assert_eq!(others.len(), 4, "{:?}", proxy.summary());
    for call in others {
        assert_eq!(
            call.access_key.as_deref(),
            Some(issued.as_str()),
            "{} is signed with the assumed role",
            call.operation
        );
    }
    assert_eq!(
        calls[0].operation,
        "sts.AssumeRole",
        "{:?}",
        proxy.summary()
    );
}

#[test]
fn a_cross_account_role_reads_the_other_accounts_secrets() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint);
    let seed = moto.assume(OTHER_ACCOUNT_ROLE);
    let secrets = moto.client_as(REGION, seed.clone());
    moto.block_on(async {
        secrets
            .create_secret()
            .name("shared/db")
            .secret_string("other-account-s3cret")
            .send()
            .await
            .expect("create in the other account");
    });
    moto.put_parameter_with(
        &moto.ssm_as(REGION, seed),
        "/shared/param",
        "other-account-param",
        "SecureString",
    );
    let env = [("DB", "awssm:shared/db"), ("PARAM", "awsssm:/shared/param")];
    let run = run_app(&proxy.endpoint, &[], &env);
    assert_eq!(run.code(), 1, "not in our own account: {}", run.stderr);

    let mut with_role = env.to_vec();
    with_role.push(("SECRETS_INIT_ROLE_ARN", OTHER_ACCOUNT_ROLE));
    let run = run_app(&proxy.endpoint, &[], &with_role);
    assert_eq!(run.code(), 0, "{}", run.stderr);
    let (_, seen) = run.app();
    assert_eq!(seen["DB"], "other-account-s3cret");
    assert_eq!(seen["PARAM"], "other-account-param");
    assert!(!seen.contains_key("SECRETS_INIT_ROLE_ARN"));
    run.assert_no_secret_in_logs(&["other-account-s3cret", "other-account-param"]);
}

#[test]
fn the_role_is_assumed_from_the_pod_identity_through_the_sts_endpoint() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint);
    moto.create("db", "pod-identity-then-role");
    let creds = CredentialsEndpoint::start("token", "AKIAPODIDENTITY00000");
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "token").unwrap();
    // Only STS goes through the proxy: AWS_ENDPOINT_URL_STS is honoured.
    let run = run_app(
        &moto.endpoint,
        &["--role-arn", ROLE],
        &[
            ("DB", "awssm:db"),
            ("AWS_ENDPOINT_URL_STS", &proxy.endpoint),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &creds.url),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                token_file.to_str().unwrap(),
            ),
        ],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr);
    assert_eq!(run.app().1["DB"], "pod-identity-then-role");
    let calls = proxy.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].operation, "sts.AssumeRole");
    assert_eq!(calls[0].access_key.as_deref(), Some("AKIAPODIDENTITY00000"));
    assert_eq!(
        calls[0].form["RoleSessionName"], "secrets-init",
        "no HOSTNAME: the bare prefix"
    );
}

#[test]
fn a_refused_assume_role_is_one_line_naming_the_role() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint);
    proxy.set_faults(Faults {
        assume_role_error: Some("AccessDenied".into()),
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let termination_log = dir.path().join("termination-log");
    std::fs::write(&termination_log, "").unwrap();
    for (format, args) in [("text", &[][..]), ("json", &["--log-format", "json"][..])] {
        proxy.reset();
        let mut all = vec![
            "--role-arn",
            ROLE,
            "--ignore-missing",
            "--termination-log",
            termination_log.to_str().unwrap(),
        ];
        all.extend(args);
        let run = run_app(
            &proxy.endpoint,
            &all,
            &[("DB", "awssm:db"), ("P", "awsssm:/p")],
        );
        assert_eq!(run.code(), 1, "{format}: {}", run.stderr);
        assert!(run.stdout.is_empty());
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{format}: one line: {}", run.stderr);
        let want = format!(
            "cannot assume role {ROLE} (--role-arn): AccessDenied: injected by the test proxy: not authorized to perform sts:AssumeRole; the pod's identity needs sts:AssumeRole on that role, and the role's trust policy must allow the pod's identity"
        );
        assert!(lines[0].contains(&want), "{format}: {}", run.stderr);
        let summary = std::fs::read_to_string(&termination_log).unwrap();
        assert!(summary.contains(&want), "{summary}");
        assert_eq!(
            proxy.summary(),
            [("sts.AssumeRole".to_owned(), 1)].into(),
            "{format}: no retry of a refusal, and nothing fetched"
        );
    }
}

#[test]
fn no_assume_role_without_anything_to_fetch() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint);
    let run = run_app(&proxy.endpoint, &["--role-arn", ROLE], &[("PLAIN", "x")]);
    assert_eq!(run.code(), 0, "{}", run.stderr);
    assert!(proxy.calls().is_empty(), "{:?}", proxy.summary());
}

#[test]
fn role_flags_are_checked_before_any_call() {
    for (args, env, want) in [
        (
            vec!["--role-arn", "arn:aws:iam::123:role/x"],
            vec![],
            "is not an IAM role ARN",
        ),
        (
            vec![],
            vec![("SECRETS_INIT_ROLE_ARN", "reader")],
            "is not an IAM role ARN",
        ),
        (vec!["--role-external-id", "ext-1234"], vec![], "--role-arn"),
        (
            vec![],
            vec![
                ("SECRETS_INIT_ROLE_ARN", ROLE),
                ("SECRETS_INIT_ROLE_EXTERNAL_ID", "x"),
            ],
            "an external id is 2 to 1224 characters",
        ),
    ] {
        let mut all = env.clone();
        all.push(("DB", "awssm:db"));
        let run = run_app("http://127.0.0.1:9", &args, &all);
        assert_eq!(run.code(), 2, "{args:?} {env:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(want),
            "{args:?} {env:?}: {}",
            run.stderr
        );
    }
}
