//! `awsssm:` placeholders against a real Parameter Store protocol peer (moto_server), through
//! the counting proxy: values, versions, labels, JSON keys, regions, `GetParameters` call
//! counts, missing and denied parameters.

use crate::common::{self, *};

const DB_JSON: &str = r#"{"user":"app","pass":"ssm-pa55-s3cret","port":5432,"price":1.50,"none":null,"nested":{"hosts":["h1","h2"]}}"#;

#[test]
fn parameter_values_keys_versions_labels_and_embedding() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint);
    moto.create("sm/db", r#"{"user":"sm-user","pass":"sm-s3cret"}"#);
    moto.put_parameter("/prod/app/db-url", "postgres://db:5432/app", "String");
    moto.put_parameter("/prod/app/json", DB_JSON, "String");
    moto.put_parameter("/prod/app/secure", "secure-s3cret", "SecureString");
    moto.put_parameter("/prod/app/list", "a,b,c", "StringList");
    moto.put_parameter("plain-name", "no hierarchy", "String");
    let v1 = moto.put_parameter("/prod/app/versioned", r#"{"k":"one"}"#, "String");
    let v2 = moto.put_parameter("/prod/app/versioned", r#"{"k":"two"}"#, "String");
    let v3 = moto.put_parameter("/prod/app/versioned", r#"{"k":"three"}"#, "String");
    assert_eq!((v1, v2, v3), (1, 2, 3));
    moto.label_parameter("/prod/app/versioned", 2, "live");

    let run = run_app(
        &proxy.endpoint,
        &[],
        &[
            ("URL", "awsssm:/prod/app/db-url"),
            ("WHOLE_JSON", "awsssm:/prod/app/json"),
            ("USER", "awsssm:/prod/app/json#user"),
            ("PORT", "awsssm:/prod/app/json#port"),
            ("PRICE", "awsssm:/prod/app/json#price"),
            ("NONE", "awsssm:/prod/app/json#none"),
            ("NESTED", "awsssm:/prod/app/json#nested"),
            ("POINTER", "awsssm:/prod/app/json#/nested/hosts/1"),
            ("SECURE", "awsssm:/prod/app/secure"),
            ("LIST", "awsssm:/prod/app/list"),
            ("PLAIN", "awsssm:plain-name"),
            ("LATEST", "awsssm:/prod/app/versioned#k"),
            ("V1", "awsssm:/prod/app/versioned#k#1"),
            ("V1_WHOLE", "awsssm:/prod/app/versioned##1"),
            ("LIVE", "awsssm:/prod/app/versioned#k#live"),
            (
                "DSN",
                "postgres://${awsssm:/prod/app/json#user}:${awssm:sm/db#pass}@${awsssm:/prod/app/json#/nested/hosts/0}/app?x=$${awsssm:literal}",
            ),
            (
                "SM_THROUGH_SSM",
                "awsssm:/aws/reference/secretsmanager/sm/db#user",
            ),
            ("SECRETS_INIT_LOG_LEVEL", "debug"),
        ],
    );
    assert_eq!(run.code(), 0, "stderr: {}", run.stderr);
    let (_, env) = run.app();
    let want = [
        ("URL", "postgres://db:5432/app"),
        ("WHOLE_JSON", DB_JSON),
        ("USER", "app"),
        ("PORT", "5432"),
        ("PRICE", "1.50"),
        ("NONE", ""),
        ("NESTED", r#"{"hosts":["h1","h2"]}"#),
        ("POINTER", "h2"),
        ("SECURE", "secure-s3cret"),
        ("LIST", "a,b,c"),
        ("PLAIN", "no hierarchy"),
        ("LATEST", "three"),
        ("V1", "one"),
        ("V1_WHOLE", r#"{"k":"one"}"#),
        ("LIVE", "two"),
        ("DSN", "postgres://app:sm-s3cret@h1/app?x=${awsssm:literal}"),
        ("SM_THROUGH_SSM", "sm-user"),
    ];
    for (name, value) in want {
        assert_eq!(env[name], value, "{name}");
    }
    run.assert_no_secret_in_logs(&["ssm-pa55-s3cret", "secure-s3cret", "sm-s3cret"]);
    // Distinct (parameter, selector): db-url, json, secure, list, plain-name, versioned,
    // versioned:1, versioned:live, the Secrets Manager reference = 9 names, but the three
    // `versioned` ones cannot share a call (answers are matched by name): 3 calls.
    assert_eq!(
        proxy.count("AmazonSSM.GetParameters"),
        3,
        "{:?}",
        proxy.summary()
    );
    assert_eq!(proxy.count("secretsmanager.GetSecretValue"), 1);
    assert_eq!(proxy.calls().len(), 4, "{:?}", proxy.summary());
}

#[test]
fn get_parameters_takes_ten_names_a_call() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint);
    for i in 0..35 {
        moto.put_parameter(&format!("/batch/p{i:02}"), &format!("value-{i}"), "String");
    }
    for (n, calls) in [(1, 1), (10, 1), (11, 2), (35, 4)] {
        proxy.reset();
        // Each parameter twice (whole and embedded): still fetched once.
        let env: Vec<(String, String)> = (0..n)
            .flat_map(|i| {
                [
                    (format!("P{i:02}"), format!("awsssm:/batch/p{i:02}")),
                    (format!("E{i:02}"), format!("<${{awsssm:/batch/p{i:02}}}>")),
                ]
            })
            .collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let run = run_app(&proxy.endpoint, &[], &env);
        assert_eq!(run.code(), 0, "{n}: {}", run.stderr);
        let (_, seen) = run.app();
        for i in 0..n {
            assert_eq!(seen[&format!("P{i:02}")], format!("value-{i}"));
            assert_eq!(seen[&format!("E{i:02}")], format!("<value-{i}>"));
        }
        assert_eq!(
            proxy.summary(),
            [("AmazonSSM.GetParameters".to_owned(), calls)].into(),
            "{n} distinct parameters"
        );
    }
}

#[test]
fn a_mixed_pod_costs_one_batch_and_one_get_parameters() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint);
    let mut env = Vec::new();
    for i in 0..20 {
        moto.create(&format!("mixed/s{i:02}"), &format!("secret-{i}"));
        env.push((format!("S{i:02}"), format!("awssm:mixed/s{i:02}")));
    }
    for i in 0..10 {
        moto.put_parameter(
            &format!("/mixed/p{i:02}"),
            &format!("param-{i}"),
            "SecureString",
        );
        env.push((format!("P{i:02}"), format!("awsssm:/mixed/p{i:02}")));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let run = run_app(&proxy.endpoint, &[], &env);
    assert_eq!(run.code(), 0, "{}", run.stderr);
    let (_, seen) = run.app();
    assert_eq!(seen["S19"], "secret-19");
    assert_eq!(seen["P09"], "param-9");
    assert_eq!(
        proxy.summary(),
        [
            ("AmazonSSM.GetParameters".to_owned(), 1),
            ("secretsmanager.BatchGetSecretValue".to_owned(), 1),
        ]
        .into()
    );
}

#[test]
fn missing_parameters_versions_and_labels() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint);
    moto.put_parameter("/have/json", r#"{"k":"v"}"#, "String");
    moto.put_parameter("/have/plain", "text", "String");
    let env = [
        ("GOOD", "awsssm:/have/json#k"),
        ("NO_PARAM", "awsssm:/absent/param"),
        ("NO_VERSION", "awsssm:/have/json#k#7"),
        ("NO_LABEL", "awsssm:/have/json##nope"),
        ("NO_KEY", "awsssm:/have/json#missing"),
        ("NOT_JSON", "awsssm:/have/plain#k"),
        ("EMBED", "a${awsssm:/absent/param}b${awsssm:/have/json#k}"),
    ];
    let run = run_app(&proxy.endpoint, &[], &env);
    assert_eq!(run.code(), 1, "{}", run.stderr);
    assert!(run.stdout.is_empty());
    for line in [
        "error: NO_PARAM: awsssm:/absent/param: ParameterNotFound: Parameter Store has no parameter `/absent/param` in this account and region",
        "error: NO_VERSION: awsssm:/have/json#k#7: ParameterNotFound: Parameter Store has no parameter `/have/json` (or it has no version 7)",
        "error: NO_LABEL: awsssm:/have/json##nope: ParameterNotFound: Parameter Store has no parameter `/have/json` (or no version of it has the label `nope`)",
        "error: NO_KEY: awsssm:/have/json#missing: KeyNotFound: key `missing` is not in the secret (its keys: `k`)",
        "error: NOT_JSON: awsssm:/have/plain#k: SecretNotJsonObject",
        "error: EMBED: awsssm:/absent/param: ParameterNotFound",
    ] {
        assert!(run.stderr.contains(line), "{line}\n{}", run.stderr);
    }

    for flag in [&["--ignore-missing"][..], &[]] {
        let mut env = env.to_vec();
        if flag.is_empty() {
            env.push(("SECRETS_INIT_IGNORE_MISSING", "true"));
        }
        let run = run_app(&proxy.endpoint, flag, &env);
        assert_eq!(run.code(), 0, "{}", run.stderr);
        let (_, seen) = run.app();
        assert_eq!(seen["GOOD"], "v");
        for var in ["NO_PARAM", "NO_VERSION", "NO_LABEL", "NO_KEY", "NOT_JSON"] {
            assert_eq!(seen[var], "", "{var}");
            assert!(
                run.stderr.contains(&format!("warn: {var}: awsssm:")),
                "{var}: {}",
                run.stderr
            );
        }
        assert_eq!(seen["EMBED"], "abv");
    }
}

#[test]
fn a_denied_parameter_does_not_take_its_call_with_it() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint);
    for name in ["/d/a", "/d/b", "/d/c"] {
        moto.put_parameter(name, &format!("{name}-value"), "String");
    }
    proxy.set_faults(Faults {
        deny_parameter: Some("/d/b".into()),
        ..Faults::default()
    });
    let env = [
        ("A", "awsssm:/d/a"),
        ("B", "awsssm:/d/b"),
        ("C", "awsssm:/d/c"),
        ("SECRETS_INIT_LOG_LEVEL", "debug"),
    ];
    let run = run_app(&proxy.endpoint, &[], &env);
    assert_eq!(run.code(), 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("error: B: awsssm:/d/b: AccessDeniedException: injected by the test proxy"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("error: A:"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("GetParameters failed as a whole (AccessDeniedException"),
        "{}",
        run.stderr
    );
    // The call for three, then one call each.
    assert_eq!(
        proxy.count("AmazonSSM.GetParameters"),
        4,
        "{:?}",
        proxy.summary()
    );

    let run = run_app(&proxy.endpoint, &["--ignore-missing"], &env);
    assert_eq!(run.code(), 0, "{}", run.stderr);
    let (_, seen) = run.app();
    assert_eq!(seen["A"], "/d/a-value");
    assert_eq!(seen["B"], "");
    assert_eq!(seen["C"], "/d/c-value");
    assert!(
        run.stderr
            .contains("warn: B: awsssm:/d/b: AccessDeniedException")
    );
}

#[test]
fn transient_failures_are_not_ignored() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    let run = run_app(
        &closed,
        &["--ignore-missing", "--timeout", "20"],
        &[("A", "awsssm:/p")],
    );
    assert_eq!(run.code(), 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("A: awsssm:/p: NetworkError"),
        "{}",
        run.stderr
    );

    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint);
    proxy.set_faults(Faults {
        hang: true,
        ..Faults::default()
    });
    let run = run_app(
        &proxy.endpoint,
        &["--ignore-missing", "--timeout", "1"],
        &[("A", "awsssm:/p")],
    );
    assert_eq!(run.code(), 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("timed out after 1s resolving 1 placeholder variable(s)"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_parameter_arn_names_its_region() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint);
    let client = moto.ssm("eu-west-1");
    moto.put_parameter_with(&client, "/regional/db", "from-eu-west-1", "String");
    moto.put_parameter_with(&client, "regional-flat", "flat-eu-west-1", "String");
    let arn = "arn:aws:ssm:eu-west-1:123456789012:parameter/regional/db";
    let flat = "arn:aws:ssm:eu-west-1:123456789012:parameter/regional-flat";
    let run = run_app(
        &proxy.endpoint,
        &["--region", "us-east-1"],
        &[
            ("BY_ARN", &format!("awsssm:{arn}")),
            ("FLAT_BY_ARN", &format!("awsssm:{flat}")),
            ("BY_NAME", "awsssm:/regional/db"),
        ],
    );
    assert_eq!(
        run.code(),
        1,
        "the name is looked up in us-east-1: {}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("BY_NAME: awsssm:/regional/db: ParameterNotFound"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("BY_ARN"), "{}", run.stderr);
    let regions: Vec<_> = proxy.calls().into_iter().filter_map(|c| c.region).collect();
    assert_eq!(regions.len(), 2, "{regions:?}");
    assert!(regions.contains(&"eu-west-1".to_owned()), "{regions:?}");
    assert!(regions.contains(&"us-east-1".to_owned()), "{regions:?}");

    let run = run_app(
        &proxy.endpoint,
        &[],
        &[
            ("BY_ARN", &format!("awsssm:{arn}")),
            ("FLAT_BY_ARN", &format!("${{awsssm:{flat}}}")),
            ("VERSIONED", &format!("awsssm:{arn}##1")),
        ],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr);
    let (_, seen) = run.app();
    assert_eq!(seen["BY_ARN"], "from-eu-west-1");
    assert_eq!(seen["FLAT_BY_ARN"], "flat-eu-west-1");
    assert_eq!(seen["VERSIONED"], "from-eu-west-1");
}

#[test]
fn endpoint_url_ssm_is_honoured() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint);
    moto.put_parameter("/e/p", "via-ssm-endpoint", "String");
    moto.create("e/s", "via-default-endpoint");
    let mut cmd = secrets_init(&moto.endpoint);
    cmd.env("AWS_ENDPOINT_URL_SSM", &proxy.endpoint)
        .env("P", "awsssm:/e/p")
        .env("S", "awssm:e/s")
        .arg("--")
        .args(APP);
    let run = common::run(&mut cmd);
    assert_eq!(run.code(), 0, "{}", run.stderr);
    let (_, seen) = run.app();
    assert_eq!(seen["P"], "via-ssm-endpoint");
    assert_eq!(seen["S"], "via-default-endpoint");
    assert_eq!(
        proxy.summary(),
        [("AmazonSSM.GetParameters".to_owned(), 1)].into(),
        "only Parameter Store goes to AWS_ENDPOINT_URL_SSM"
    );
}
