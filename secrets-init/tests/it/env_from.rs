//! `--env-from` against moto_server: importing every key of a JSON-object secret and every
//! parameter directly under a path, precedence, name rules, errors, and what `--probe` and
//! `--expand-args` see.

use crate::common::{self, *};

const APP_JSON: &str = r#"{"DB_USER":"app","DB_PASS":"imp0rt-s3cret","PRICE":1.50,"EMPTY":null,"NESTED":{"b":[1,2],"a":"x"},"bad-name":"skip-s3cret","1LEADING":"skip","SECRETS_INIT_TIMEOUT":"1","SHARED":"from-secret","KEPT":"from-secret"}"#;

#[test]
fn a_secret_and_a_path_become_variables() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint);
    moto.create("prod/app", APP_JSON);
    moto.put_version("prod/app", r#"{"OLD_ONLY":"old"}"#, &["AWSPREVIOUS"]);
    moto.put_parameter("/prod/cfg/SHARED", "from-path", "String");
    moto.put_parameter("/prod/cfg/PATH_ONLY", "path-only", "String");
    moto.put_parameter("/prod/cfg/SECURE", "secure-s3cret", "SecureString");
    moto.put_parameter("/prod/cfg/LIST", "a,b", "StringList");
    moto.put_parameter("/prod/cfg/db-url", "skip", "String");
    moto.put_parameter("/prod/cfg/sub/DEEPER", "not imported", "String");

    let run = run_app(
        &proxy.endpoint,
        &[
            "--env-from",
            "awssm:prod/app",
            "--env-from",
            "awsssm:/prod/cfg/",
        ],
        &[
            ("KEPT", "from-container"),
            ("PLACEHOLDER", "awssm:prod/app#DB_USER"),
        ],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr);
    let (_, env) = run.app();
    let want = [
        ("DB_USER", "app"),
        ("DB_PASS", "imp0rt-s3cret"),
        ("PRICE", "1.50"),
        ("EMPTY", ""),
        ("NESTED", r#"{"b":[1,2],"a":"x"}"#),
        // the later --env-from wins
        ("SHARED", "from-path"),
        // the container's own variable wins
        ("KEPT", "from-container"),
        ("PATH_ONLY", "path-only"),
        ("SECURE", "secure-s3cret"),
        ("LIST", "a,b"),
        ("PLACEHOLDER", "app"),
    ];
    for (name, value) in want {
        assert_eq!(env.get(name).map(String::as_str), Some(value), "{name}");
    }
    for absent in [
        "bad-name",
        "1LEADING",
        "SECRETS_INIT_TIMEOUT",
        "db-url",
        "DEEPER",
        "OLD_ONLY",
    ] {
        assert!(!env.contains_key(absent), "{absent} must not be imported");
    }
    for warning in [
        "warn: --env-from awssm:prod/app: `bad-name` is not a variable name ([A-Za-z_][A-Za-z0-9_]*); skipped",
        "warn: --env-from awssm:prod/app: `1LEADING` is not a variable name",
        "warn: --env-from awssm:prod/app: `SECRETS_INIT_TIMEOUT` has secrets-init's own prefix SECRETS_INIT_; skipped",
        "warn: --env-from awsssm:/prod/cfg/: `db-url` is not a variable name",
    ] {
        assert!(run.stderr.contains(warning), "{warning}\n{}", run.stderr);
    }
    run.assert_no_secret_in_logs(&["imp0rt-s3cret", "skip-s3cret", "secure-s3cret"]);
    // The secret imported and the one referenced are one fetch.
    assert_eq!(
        proxy.summary(),
        [
            ("AmazonSSM.GetParametersByPath".to_owned(), 1),
            ("secretsmanager.GetSecretValue".to_owned(), 1),
        ]
        .into()
    );

    // Reversed order: the secret comes later and wins; a version; the variable form.
    proxy.reset();
    let run = run_app(
        &proxy.endpoint,
        &[],
        &[(
            "SECRETS_INIT_ENV_FROM",
            "awsssm:/prod/cfg/, awssm:prod/app,awssm:prod/app##AWSPREVIOUS",
        )],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr);
    let (_, env) = run.app();
    assert_eq!(env["SHARED"], "from-secret");
    assert_eq!(env["KEPT"], "from-secret");
    assert_eq!(env["OLD_ONLY"], "old");
    assert!(!env.keys().any(|k| k.starts_with("SECRETS_INIT_")));
}

#[test]
fn a_path_is_read_page_by_page() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint);
    for i in 0..23 {
        moto.put_parameter(&format!("/many/P{i:02}"), &format!("v{i}"), "String");
    }
    let run = run_app(&proxy.endpoint, &["--env-from", "awsssm:/many/"], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr);
    let (_, env) = run.app();
    for i in 0..23 {
        assert_eq!(env[&format!("P{i:02}")], format!("v{i}"));
    }
    // Pages of 10, the API's largest.
    assert_eq!(proxy.count("AmazonSSM.GetParametersByPath"), 3);
}

#[test]
fn what_cannot_be_imported_is_an_error_naming_the_reference() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint);
    moto.create("plain", "not-json-s3cret");
    moto.create("list", r#"["a"]"#);
    moto.put_parameter("/other/X", "x", "String");
    let dir = tempfile::tempdir().unwrap();
    let termination_log = dir.path().join("termination-log");
    std::fs::write(&termination_log, "").unwrap();
    let run = run_app(
        &proxy.endpoint,
        &[
            "--termination-log",
            termination_log.to_str().unwrap(),
            "--env-from",
            "awssm:plain",
            "--env-from",
            "awssm:list",
            "--env-from",
            "awsssm:/empty/",
            "--env-from",
            "awssm:absent",
        ],
        &[],
    );
    assert_eq!(run.code(), 1, "{}", run.stderr);
    assert!(run.stdout.is_empty());
    for line in [
        "error: --env-from: awssm:plain: SecretNotJsonObject: the secret is not a JSON object, so it has no keys to import",
        "error: --env-from: awssm:list: SecretNotJsonObject",
        "error: --env-from: awsssm:/empty/: NoParametersUnderPath: Parameter Store has no parameter directly under `/empty/`",
        "error: --env-from: awssm:absent: ResourceNotFoundException",
        "4 --env-from reference(s) could not be imported; the program was not started",
    ] {
        assert!(run.stderr.contains(line), "{line}\n{}", run.stderr);
    }
    run.assert_no_secret_in_logs(&["not-json-s3cret"]);
    let summary = std::fs::read_to_string(&termination_log).unwrap();
    assert!(
        summary.contains("--env-from: awssm:plain: SecretNotJsonObject"),
        "{summary}"
    );

    // --ignore-missing covers what does not exist, not what is the wrong shape.
    let run = run_app(
        &proxy.endpoint,
        &[
            "--ignore-missing",
            "--env-from",
            "awssm:absent,awsssm:/other/",
        ],
        &[],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr);
    assert_eq!(run.app().1["X"], "x");
    assert!(
        run.stderr
            .contains("warn: --env-from: awssm:absent: ResourceNotFoundException"),
        "{}",
        run.stderr
    );
    for bad in ["awssm:plain", "awsssm:/empty/"] {
        let run = run_app(
            &proxy.endpoint,
            &["--ignore-missing", "--env-from", bad],
            &[],
        );
        assert_eq!(run.code(), 1, "{bad}: {}", run.stderr);
    }
}

#[test]
fn malformed_references_are_usage_errors() {
    for (value, want) in [
        ("awssm:app#KEY", "a `#<key>` cannot be used"),
        ("awsssm:/no/slash", "must end with `/`"),
        ("vault:x", "starts with neither `awssm:` nor `awsssm:`"),
        ("awssm:a,,awssm:b", "it is empty"),
    ] {
        for (args, env) in [
            (vec!["--env-from", value], vec![]),
            (vec![], vec![("SECRETS_INIT_ENV_FROM", value)]),
        ] {
            let run = run_app("http://127.0.0.1:9", &args, &env);
            assert_eq!(run.code(), 2, "{value}: {}", run.stderr);
            assert!(run.stderr.contains(want), "{value}: {}", run.stderr);
        }
    }
}

#[test]
fn probe_and_expand_args_see_imported_variables() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint);
    moto.create("imp", r#"{"IMPORTED":"imported-value","TOKEN":"tok"}"#);

    let mut cmd = secrets_init(&proxy.endpoint);
    cmd.args([
        "--env-from",
        "awssm:imp",
        "--expand-args",
        "--",
        "/bin/echo",
        "$(IMPORTED)-$(TOKEN)",
    ]);
    let run = common::run(&mut cmd);
    assert_eq!(run.code(), 0, "{}", run.stderr);
    assert_eq!(run.stdout_text(), "imported-value-tok\n");

    // A probe takes imported variables from the main process: no AWS call.
    let dir = tempfile::tempdir().unwrap();
    let environ = dir.path().join("environ");
    std::fs::write(
        &environ,
        b"PATH=/usr/local/bin:/usr/bin:/bin\0IMPORTED=from-pid-1\0TOKEN=tok-pid-1\0A=a-from-pid-1\0",
    )
    .unwrap();
    proxy.reset();
    let env = [
        ("A", "awssm:a"),
        ("SECRETS_INIT_PROBE_ENVIRON", environ.to_str().unwrap()),
    ];
    let run = run_app(
        &proxy.endpoint,
        &["--probe", "--env-from", "awssm:imp"],
        &env,
    );
    assert_eq!(run.code(), 0, "{}", run.stderr);
    let (_, seen) = run.app();
    assert_eq!(seen["IMPORTED"], "from-pid-1");
    assert_eq!(seen["TOKEN"], "tok-pid-1");
    assert_eq!(seen["A"], "a-from-pid-1");
    assert!(proxy.calls().is_empty(), "{:?}", proxy.summary());

    // A main process without them (not ours, or not started yet): imported as usual.
    std::fs::write(&environ, b"PATH=/usr/local/bin:/usr/bin:/bin\0").unwrap();
    let run = run_app(
        &proxy.endpoint,
        &["--probe", "--env-from", "awssm:imp"],
        &[("SECRETS_INIT_PROBE_ENVIRON", environ.to_str().unwrap())],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr);
    assert_eq!(run.app().1["IMPORTED"], "imported-value");
    assert_eq!(proxy.count("secretsmanager.GetSecretValue"), 1);
}
