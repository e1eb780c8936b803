//! Table tests and property tests of the grammar.

use super::*;

fn r(id: impl Into<String>, key: Key, version: Version) -> Reference {
    Reference {
        fetch: FetchKey {
            source: Source::SecretsManager,
            id: id.into(),
            version,
        },
        key,
    }
}
fn field(k: impl Into<String>) -> Key {
    Key::Field(k.into())
}
fn whole(reference: Reference) -> Option<Template> {
    Some(Template {
        parts: vec![Part::Ref(reference)],
    })
}
fn lit(s: impl Into<String>) -> Part {
    Part::Literal(s.into())
}

const ARN: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/myapp/config-AbCdEf";

#[test]
fn whole_values() {
    use Version::*;
    let cases: Vec<(String, Option<Template>)> = vec![
        ("plain".to_string(), None),
        ("".to_string(), None),
        ("AWSSM:upper-is-not-a-placeholder".to_string(), None),
        (" awssm:leading-space".to_string(), None),
        ("prefix awssm:x".to_string(), None),
        (
            "awssm:prod/db".to_string(),
            whole(r("prod/db".to_string(), Key::Whole, Current)),
        ),
        (
            "awssm:prod/db#".to_string(),
            whole(r("prod/db".to_string(), Key::Whole, Current)),
        ),
        (
            "awssm:prod/db#USER".to_string(),
            whole(r("prod/db".to_string(), field("USER"), Current)),
        ),
        (
            "awssm:prod/db#USER#".to_string(),
            whole(r("prod/db".to_string(), field("USER"), Current)),
        ),
        (
            "awssm:prod/db#USER#AWSCURRENT".to_string(),
            whole(r("prod/db".to_string(), field("USER"), Current)),
        ),
        (
            "awssm:prod/db#USER#AWSPREVIOUS".to_string(),
            whole(r(
                "prod/db".to_string(),
                field("USER"),
                Stage("AWSPREVIOUS".into()),
            )),
        ),
        (
            "awssm:prod/db#USER#AWSPENDING".to_string(),
            whole(r(
                "prod/db".to_string(),
                field("USER"),
                Stage("AWSPENDING".into()),
            )),
        ),
        (
            "awssm:prod/db#USER#v-abc123".to_string(),
            whole(r(
                "prod/db".to_string(),
                field("USER"),
                Id("v-abc123".into()),
            )),
        ),
        (
            "awssm:prod/db##AWSPREVIOUS".to_string(),
            whole(r(
                "prod/db".to_string(),
                Key::Whole,
                Stage("AWSPREVIOUS".into()),
            )),
        ),
        (
            "awssm:prod/db#/db/hosts/0".to_string(),
            whole(r(
                "prod/db".to_string(),
                Key::Pointer("/db/hosts/0".into()),
                Current,
            )),
        ),
        (
            "awssm:prod/db#/a~1b#AWSPENDING".to_string(),
            whole(r(
                "prod/db".to_string(),
                Key::Pointer("/a~1b".into()),
                Stage("AWSPENDING".into()),
            )),
        ),
        (format!("awssm:{ARN}"), whole(r(ARN, Key::Whole, Current))),
        (
            format!("awssm:{ARN}#DATABASE_URL"),
            whole(r(ARN, field("DATABASE_URL"), Current)),
        ),
        // the legacy form
        (
            "awssm://prod/db#USER".to_string(),
            whole(r("prod/db".to_string(), field("USER"), Current)),
        ),
        (format!("awssm://{ARN}"), whole(r(ARN, Key::Whole, Current))),
        // a whole value is one reference even when it contains `${`
        (
            "awssm:a#k}x".to_string(),
            whole(r("a".to_string(), field("k}x"), Current)),
        ),
    ];
    for (input, want) in cases {
        assert_eq!(parse_value(&input).unwrap(), want, "input {input:?}");
    }
}

#[test]
fn embedded_values() {
    use Version::*;
    let cases: Vec<(String, Vec<Part>)> = vec![
        (
            "postgres://${awssm:db#user}:${awssm:db#pass}@host/db".to_string(),
            vec![
                lit("postgres://"),
                Part::Ref(r("db".to_string(), field("user"), Current)),
                lit(":"),
                Part::Ref(r("db".to_string(), field("pass"), Current)),
                lit("@host/db"),
            ],
        ),
        (
            "${awssm:x}".to_string(),
            vec![Part::Ref(r("x".to_string(), Key::Whole, Current))],
        ),
        (
            "${awssm:x}${awssm:y#k#AWSPREVIOUS}".to_string(),
            vec![
                Part::Ref(r("x".to_string(), Key::Whole, Current)),
                Part::Ref(r("y".to_string(), field("k"), Stage("AWSPREVIOUS".into()))),
            ],
        ),
        (
            "a $${awssm:literal} b ${awssm:x}".to_string(),
            vec![
                lit("a ${awssm:literal} b "),
                Part::Ref(r("x".to_string(), Key::Whole, Current)),
            ],
        ),
        (
            "${HOME} and $x and ${awssm://legacy#k}".to_string(),
            vec![
                lit("${HOME} and $x and "),
                Part::Ref(r("legacy".to_string(), field("k"), Current)),
            ],
        ),
        (
            "ünïcode ${awssm:x} ✓".to_string(),
            vec![
                lit("ünïcode "),
                Part::Ref(r("x".to_string(), Key::Whole, Current)),
                lit(" ✓"),
            ],
        ),
        (
            format!("k=${{awssm:{ARN}#/nested/key}}"),
            vec![
                lit("k="),
                Part::Ref(r(ARN, Key::Pointer("/nested/key".into()), Current)),
            ],
        ),
        (
            "$${awssm:only-escaped}".to_string(),
            vec![lit("${awssm:only-escaped}")],
        ),
    ];
    for (input, want) in cases {
        assert_eq!(
            parse_value(&input).unwrap(),
            Some(Template { parts: want }),
            "input {input:?}"
        );
    }
}

#[test]
fn malformed_values() {
    let cases = [
        ("awssm:", "empty secret id"),
        ("awssm:#key", "empty secret id"),
        ("awssm://", "empty secret id"),
        ("awssm:a#b#c#d", "more than two `#`"),
        ("awssm:prod/db\n", "secret id containing '\\n'"),
        ("awssm:prod db", "secret id containing ' '"),
        ("awssm:db#k#v 1", "version containing ' '"),
        ("x ${awssm:db#user", "unclosed `${awssm:` at byte 2"),
        ("${awssm:}", "empty secret id"),
        ("${awssm:#k}", "empty secret id"),
        (
            "ok ${awssm:a} then ${awssm:",
            "unclosed `${awssm:` at byte 19",
        ),
    ];
    for (input, want) in cases {
        let err = parse_value(input).expect_err(input).to_string();
        assert!(err.contains(want), "input {input:?}: {err}");
    }
}

#[test]
fn not_placeholders_are_untouched() {
    for v in [
        "",
        "hello",
        "$${awssm",
        "${awssm",
        "awssm",
        "AWSSM:x",
        "${AWSSM:x}",
        "awsssm",
        "${awsssm",
        "AWSSSM:x",
        "x awsssm:y",
    ] {
        assert!(!is_placeholder(v), "{v}");
        assert_eq!(parse_value(v).unwrap(), None, "{v}");
    }
    assert!(is_placeholder("awssm:x"));
    assert!(is_placeholder("a${awssm:x}"));
    assert!(is_placeholder("awsssm:x"));
    assert!(is_placeholder("a${awsssm:x}"));
    assert!(is_placeholder("awsssm:"));
}

#[test]
fn display_is_canonical_and_round_trips() {
    for input in [
        "awssm:a",
        "awssm:a#k",
        "awssm:a#k#AWSPREVIOUS",
        "awssm:a##v1",
        "awssm:a#/p/q",
    ] {
        let t = parse_value(input).unwrap().unwrap();
        let reference = t.refs().next().unwrap();
        assert_eq!(reference.to_string(), input);
    }
    let t = parse_value("awssm://a#k#AWSCURRENT").unwrap().unwrap();
    assert_eq!(t.refs().next().unwrap().to_string(), "awssm:a#k");
    // A secret id that starts with `//` (after the legacy prefix is stripped).
    for input in ["awssm:////a#k", "x${awssm:////a#k}"] {
        let t = parse_value(input).unwrap().unwrap();
        let reference = t.refs().next().unwrap();
        assert_eq!(reference.fetch.id, "//a");
        assert_eq!(reference.to_string(), "awssm:////a#k");
        let again = parse_value(&reference.to_string()).unwrap().unwrap();
        assert_eq!(again.refs().next().unwrap(), reference);
    }
}

#[test]
fn arn_region() {
    let key = |id: &str| FetchKey {
        source: Source::SecretsManager,
        id: id.into(),
        version: Version::Current,
    };
    assert_eq!(key(ARN).arn_region(), Some("eu-west-1"));
    assert_eq!(
        key("arn:aws-cn:secretsmanager:cn-north-1:1:secret:x").arn_region(),
        Some("cn-north-1")
    );
    assert_eq!(key("prod/db").arn_region(), None);
    assert_eq!(
        key("arn:aws:ssm:eu-west-1:1:parameter/x").arn_region(),
        None
    );
    assert_eq!(key("arn:aws:secretsmanager::1:secret:x").arn_region(), None);
}

#[test]
fn render_fills_references_in_order() {
    let t = parse_value("u=${awssm:a#x}&p=${awssm:a#y}")
        .unwrap()
        .unwrap();
    assert_eq!(t.render(&["1".into(), "2".into()]), "u=1&p=2");
}

#[test]
fn legacy_detection() {
    assert!(uses_legacy_form("awssm://a"));
    assert!(uses_legacy_form("x${awssm://a}"));
    assert!(uses_legacy_form("${awssm:a} ${awssm://b}"));
    assert!(!uses_legacy_form("awssm:a"));
    assert!(!uses_legacy_form("${awssm:a//b}"));
    assert!(!uses_legacy_form("x awssm://a"));
}

/// The full text of every error: what is wrong, where, and how to fix it.
#[test]
fn error_messages() {
    let cases = [
        (
            "x ${awssm:db#user",
            "malformed placeholder: unclosed `${awssm:` at byte 2: add the closing `}` (write `$${` for a literal `${`)",
        ),
        (
            "awssm:a#b#c#d",
            "malformed placeholder: `awssm:a#b#c#d` has more than two `#`: the form is awssm:<secret-id>[#<key>[#<version>]]",
        ),
        (
            "pre ${awssm:#k} post",
            "malformed placeholder: `${awssm:#k}` has an empty secret id: the form is awssm:<secret-id>[#<key>[#<version>]]",
        ),
        (
            "awssm:prod/db\n",
            "malformed placeholder: `awssm:prod/db\\n` has a secret id containing '\\n'; names and ARNs have no spaces or control characters (a trailing newline from a YAML block scalar is a common cause)",
        ),
        (
            "awssm:db#k#v 1",
            "malformed placeholder: `awssm:db#k#v 1` has a version containing ' '",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(
            parse_value(input).unwrap_err().to_string(),
            want,
            "{input:?}"
        );
    }
}

/// Only the placeholder itself is quoted: literal text around an embedded one (which may be
/// anything the app put there) never reaches a message.
#[test]
fn errors_quote_only_the_placeholder() {
    for input in [
        "user:literal-pass@${awssm:#k}",
        "literal-pass ${awssm:a#b#c#d} tail",
        "literal-pass ${awssm:a b}",
        "literal-pass ${awssm:a#k#v 1}",
        "literal-pass ${awssm:a",
    ] {
        let err = parse_value(input).unwrap_err().to_string();
        assert!(!err.contains("literal-pass"), "{input:?}: {err}");
    }
}

#[test]
fn sources() {
    for source in Source::ALL {
        assert_eq!(source.embed_open(), format!("${{{}", source.prefix()));
        assert!(source.form().starts_with(source.prefix()));
        // No prefix may be a prefix of another, or a value would have two readings.
        for other in Source::ALL {
            assert!(other == source || !other.prefix().starts_with(source.prefix()));
        }
    }
    let t = parse_value("awssm:x").unwrap().unwrap();
    assert_eq!(
        t.refs().next().unwrap().fetch.source,
        Source::SecretsManager
    );
}

proptest::proptest! {
    #[test]
    fn parse_never_panics_and_agrees_with_is_placeholder(s in ".*") {
        let parsed = parse_value(&s);
        proptest::prop_assert_eq!(is_placeholder(&s), !matches!(parsed, Ok(None)));
    }

    #[test]
    fn literal_text_survives_around_references(
        before in "[^$]{0,20}",
        after in "[^$]{0,20}",
    ) {
        let value = format!("{before}${{awssm:x}}{after}");
        let t = parse_value(&value).unwrap().unwrap();
        proptest::prop_assert_eq!(t.render(&["V".to_owned()]), format!("{before}V{after}"));
    }

    #[test]
    fn parameter_references_round_trip(
        id in "/?[A-Za-z0-9_.-]{1,20}(/[A-Za-z0-9_.-]{1,20}){0,3}",
        key in proptest::option::of("[A-Za-z0-9_/~.-]{1,20}"),
        version in proptest::option::of("([0-9]{1,18}|[a-z][a-z0-9_.-]{0,20})"),
    ) {
        let text = format!(
            "awsssm:{id}#{}#{}",
            key.as_deref().unwrap_or(""),
            version.as_deref().unwrap_or("")
        );
        let parsed = parse_value(&text).unwrap().unwrap();
        let reference = parsed.refs().next().unwrap().clone();
        proptest::prop_assert_eq!(reference.fetch.source, Source::ParameterStore);
        let again = parse_value(&reference.to_string()).unwrap().unwrap();
        proptest::prop_assert_eq!(again.refs().next().unwrap(), &reference);
        let embedded = parse_value(&format!("x${{{}}}y", reference)).unwrap().unwrap();
        proptest::prop_assert_eq!(embedded.refs().next().unwrap(), &reference);
    }

    #[test]
    fn canonical_form_round_trips(
        id in "[A-Za-z0-9/_+=.@-]{1,40}",
        key in proptest::option::of("[A-Za-z0-9_/~.-]{1,20}"),
        version in proptest::option::of("(AWSCURRENT|AWSPREVIOUS|AWSPENDING|[a-f0-9-]{1,36})"),
    ) {
        let mut text = format!("awssm:{id}");
        if key.is_some() || version.is_some() {
            text.push('#');
            text.push_str(key.as_deref().unwrap_or(""));
        }
        if let Some(v) = &version {
            text.push('#');
            text.push_str(v);
        }
        let parsed = parse_value(&text).unwrap().unwrap();
        let reference = parsed.refs().next().unwrap().clone();
        let again = parse_value(&reference.to_string()).unwrap().unwrap();
        proptest::prop_assert_eq!(again.refs().next().unwrap(), &reference);
        // the same reference embedded parses to the same thing
        let embedded = parse_value(&format!("x${{{}}}y", reference)).unwrap().unwrap();
        proptest::prop_assert_eq!(embedded.refs().next().unwrap(), &reference);
    }
}

#[test]
fn env_from_references() {
    let secret = |id: &str, version: Version| EnvFrom::Secret {
        id: id.into(),
        version,
    };
    let path = |p: &str| EnvFrom::ParameterPath { path: p.into() };
    let cases = [
        ("awssm:prod/app", secret("prod/app", Version::Current)),
        ("awssm:prod/app##", secret("prod/app", Version::Current)),
        (
            "awssm:prod/app##AWSCURRENT",
            secret("prod/app", Version::Current),
        ),
        (
            "awssm:prod/app##AWSPREVIOUS",
            secret("prod/app", Version::Stage("AWSPREVIOUS".into())),
        ),
        (
            "awssm:prod/app##v-1",
            secret("prod/app", Version::Id("v-1".into())),
        ),
        (&format!("awssm:{ARN}"), secret(ARN, Version::Current)),
        (
            &format!("awssm:{ARN}##AWSPENDING"),
            secret(ARN, Version::Stage("AWSPENDING".into())),
        ),
        ("awssm://prod/app", secret("prod/app", Version::Current)),
        ("awsssm:/prod/app/", path("/prod/app/")),
        ("awsssm:/", path("/")),
    ];
    for (input, want) in cases {
        assert_eq!(parse_env_from(input).unwrap(), want, "{input}");
    }
}

#[test]
fn env_from_display_round_trips() {
    for input in [
        "awssm:prod/app",
        "awssm:prod/app##AWSPREVIOUS",
        "awssm:prod/app##v-1",
        "awssm:////odd",
        "awsssm:/prod/app/",
        "awsssm:/",
    ] {
        let parsed = parse_env_from(input).unwrap();
        assert_eq!(parsed.to_string(), input);
        assert_eq!(parse_env_from(&parsed.to_string()).unwrap(), parsed);
    }
    let parsed = parse_env_from("awssm://prod/app##AWSCURRENT").unwrap();
    assert_eq!(parsed.to_string(), "awssm:prod/app");
}

#[test]
fn env_from_errors() {
    let cases = [
        ("", "it is empty"),
        ("prod/app", "starts with neither `awssm:` nor `awsssm:`"),
        ("AWSSM:prod/app", "starts with neither"),
        ("awssm:", "the secret id is empty"),
        ("awssm:##AWSPREVIOUS", "the secret id is empty"),
        ("awssm:prod/app#KEY", "a `#<key>` cannot be used"),
        (
            "awssm:prod/app#KEY#AWSPREVIOUS",
            "a `#<key>` cannot be used",
        ),
        ("awssm:prod/app##v#x", "more than two `#`"),
        ("awssm:prod app", "contains ' '"),
        ("awssm:prod/app\n", "contains '\\n'"),
        (" awssm:prod/app", "contains ' '"),
        (
            "awssm:arn:aws:ssm:eu-west-1:1:parameter/x",
            "its service is `ssm`",
        ),
        (
            "awssm:arn:aws:secretsmanager:eu-west-1:1:x",
            "the form is arn:",
        ),
        (
            "awssm:arn:aws:secretsmanager::1:secret:x",
            "the form is arn:",
        ),
        (
            "awssm:arn:aws:secretsmanager:eu-west-1:1:secret:",
            "the form is arn:",
        ),
        ("awsssm:", "must start with `/`"),
        ("awsssm:prod/app/", "must start with `/`"),
        ("awsssm:/prod/app", "must end with `/`"),
        ("awsssm:/prod/app/#k", "must end with `/`"),
        ("awsssm:/prod#x/", "no `#<key>`"),
        ("awsssm:/prod//app/", "empty segment"),
        ("awsssm://", "empty segment"),
        (
            "awsssm:arn:aws:ssm:eu-west-1:1:parameter/prod/",
            "not an ARN",
        ),
    ];
    for (input, want) in cases {
        let err = parse_env_from(input).expect_err(input).to_string();
        assert!(err.contains(want), "{input:?}: {err}");
        assert!(err.contains(EnvFrom::FORMS), "{input:?}: {err}");
    }
    assert_eq!(
        parse_env_from("awsssm:/prod/app").unwrap_err().to_string(),
        "`awsssm:/prod/app` is not a valid env-from reference: the path must end with `/` (to read the single parameter `/prod/app`, use the placeholder awsssm:/prod/app in a variable); the forms are awssm:<secret-id>[##<version>] (every top-level key of a JSON-object secret) or awsssm:<path>/ (every parameter directly under a Parameter Store path)"
    );
}

fn p(id: impl Into<String>, key: Key, version: Version) -> Reference {
    Reference {
        fetch: FetchKey {
            source: Source::ParameterStore,
            id: id.into(),
            version,
        },
        key,
    }
}

const SSM_ARN: &str = "arn:aws:ssm:eu-west-1:123456789012:parameter/prod/myapp/db-url";

#[test]
fn parameter_store_values() {
    use Version::*;
    let cases: Vec<(String, Vec<Part>)> = vec![
        (
            "awsssm:/prod/db".into(),
            vec![Part::Ref(p("/prod/db", Key::Whole, Current))],
        ),
        (
            "awsssm:prod-db-url".into(),
            vec![Part::Ref(p("prod-db-url", Key::Whole, Current))],
        ),
        (
            "awsssm:/prod/db#password".into(),
            vec![Part::Ref(p("/prod/db", field("password"), Current))],
        ),
        (
            "awsssm:/prod/db#password#3".into(),
            vec![Part::Ref(p("/prod/db", field("password"), Number(3)))],
        ),
        (
            "awsssm:/prod/db##live".into(),
            vec![Part::Ref(p("/prod/db", Key::Whole, Label("live".into())))],
        ),
        (
            "awsssm:/prod/db##".into(),
            vec![Part::Ref(p("/prod/db", Key::Whole, Current))],
        ),
        (
            "awsssm:/prod/db#/a/0#007".into(),
            vec![Part::Ref(p(
                "/prod/db",
                Key::Pointer("/a/0".into()),
                Number(7),
            ))],
        ),
        // AWSCURRENT is a Secrets Manager stage; for a parameter it is a label like any other.
        (
            "awsssm:/p##AWSCURRENT".into(),
            vec![Part::Ref(p("/p", Key::Whole, Label("AWSCURRENT".into())))],
        ),
        (
            format!("awsssm:{SSM_ARN}#k"),
            vec![Part::Ref(p(SSM_ARN, field("k"), Current))],
        ),
        (
            "awsssm:/aws/reference/secretsmanager/arn:aws:secretsmanager:eu-west-1:1:secret:db"
                .into(),
            vec![Part::Ref(p(
                "/aws/reference/secretsmanager/arn:aws:secretsmanager:eu-west-1:1:secret:db",
                Key::Whole,
                Current,
            ))],
        ),
        (
            "awsssm:/aws/reference/secretsmanager/prod/db#user".into(),
            vec![Part::Ref(p(
                "/aws/reference/secretsmanager/prod/db",
                field("user"),
                Current,
            ))],
        ),
        // No legacy spelling: `//` belongs to the name.
        (
            "awsssm://x".into(),
            vec![Part::Ref(p("//x", Key::Whole, Current))],
        ),
        (
            "u=${awsssm:/db#user#2}&p=${awssm:db#pass}&$${awsssm:lit}".into(),
            vec![
                lit("u="),
                Part::Ref(p("/db", field("user"), Number(2))),
                lit("&p="),
                Part::Ref(r("db", field("pass"), Current)),
                lit("&${awsssm:lit}"),
            ],
        ),
    ];
    for (input, want) in cases {
        assert_eq!(
            parse_value(&input).unwrap(),
            Some(Template { parts: want }),
            "input {input:?}"
        );
    }
    assert!(!uses_legacy_form("awsssm://x"));
    assert!(!uses_legacy_form("${awsssm://x}"));
}

#[test]
fn parameter_store_errors() {
    let cases = [
        (
            "awsssm:",
            "`awsssm:` has an empty parameter name: the form is awsssm:<parameter>[#<key>[#<version>]]",
        ),
        (
            "x${awsssm:#k}",
            "`${awsssm:#k}` has an empty parameter name",
        ),
        (
            "awsssm:/a#b#c#d",
            "more than two `#`: the form is awsssm:<parameter>[#<key>[#<version>]]",
        ),
        ("awsssm:/a b", "has a parameter name containing ' '"),
        ("x ${awsssm:/db", "unclosed `${awsssm:` at byte 2"),
        (
            "awsssm:/a##99999999999999999999",
            "has the version number 99999999999999999999, larger than any parameter version",
        ),
        (
            "awsssm:/api/key:3",
            "`awsssm:/api/key:3` names a version with `:` (`3`), which Parameter Store names never contain: write it after `#`, as in awsssm:<parameter>#<key>#3 (or ##3 for the whole value)",
        ),
        (
            "x${awsssm:arn:aws:ssm:eu-west-1:1:parameter/api/key:live#k}",
            "names a version with `:` (`live`)",
        ),
        (
            "awsssm:arn:aws:ssm:eu-west-1:1:param/x",
            "`awsssm:arn:aws:ssm:eu-west-1:1:param/x` is not a parameter ARN: the form is arn:<partition>:ssm:<region>:<account>:parameter/<name>",
        ),
        (
            "awsssm:arn:aws:secretsmanager:eu-west-1:1:secret:x",
            "is not a parameter ARN",
        ),
        (
            "awsssm:arn:aws:ssm::1:parameter/x",
            "is not a parameter ARN",
        ),
        (
            "awsssm:arn:aws:ssm:eu-west-1:1:parameter/",
            "is not a parameter ARN",
        ),
    ];
    for (input, want) in cases {
        let err = parse_value(input).expect_err(input).to_string();
        assert!(err.contains(want), "input {input:?}: {err}");
    }
}

#[test]
fn parameter_store_display_and_region() {
    for input in [
        "awsssm:/p",
        "awsssm:/p#k",
        "awsssm:/p#k#3",
        "awsssm:/p##live",
        "awsssm://double",
    ] {
        let t = parse_value(input).unwrap().unwrap();
        assert_eq!(t.refs().next().unwrap().to_string(), input);
    }
    let t = parse_value("awsssm:/p##007").unwrap().unwrap();
    assert_eq!(t.refs().next().unwrap().to_string(), "awsssm:/p##7");
    let key = |id: &str| FetchKey {
        source: Source::ParameterStore,
        id: id.into(),
        version: Version::Current,
    };
    assert_eq!(key(SSM_ARN).arn_region(), Some("eu-west-1"));
    assert_eq!(key("/prod/db").arn_region(), None);
    assert_eq!(
        key(ARN).arn_region(),
        None,
        "a Secrets Manager ARN is not a parameter's"
    );
    let versioned = FetchKey {
        version: Version::Number(3),
        ..key("/p")
    };
    assert_eq!(versioned.to_string(), "/p (version 3)");
    let labelled = FetchKey {
        version: Version::Label("live".into()),
        ..key("/p")
    };
    assert_eq!(labelled.to_string(), "/p (label live)");
}
