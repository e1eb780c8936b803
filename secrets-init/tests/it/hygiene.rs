//! Secret hygiene (issue 7): secrets-init is driven through every error path — and the
//! success paths that log — with known secret values, at every log format and level, and
//! none of the values may appear in stdout, stderr or the termination log.
//!
//! Every secret value below contains `V4lue`; no key, name, reference or flag does, so the
//! marker alone catches a leak of any value or any piece of one.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, Faults, Moto, Proxy, Run};

/// In every secret value, and nowhere else.
const MARK: &str = "V4lue";

const USER: &str = "hyg-user-V4lue";
const PASS: &str = "hyg-pass-V4lue";
const DEEP: &str = "hyg-deep-V4lue";
const PLAIN: &str = "hyg-plain-V4lue, not JSON";
const PREVIOUS: &str = "hyg-previous-V4lue";

/// The secrets every scenario can reach.
fn seed(moto: &Moto) {
    moto.create(
        "hyg/json",
        &format!(
            r#"{{"user":"{USER}","pass":"{PASS}","nested":{{"deep":"{DEEP}","list":["{DEEP}-0"]}},"num":1.5}}"#
        ),
    );
    moto.create("hyg/plain", PLAIN);
    moto.create("hyg/versioned", r#"{"k":"hyg-current-V4lue"}"#);
    moto.put_version(
        "hyg/versioned",
        &format!(r#"{{"k":"{PREVIOUS}"}}"#),
        &["AWSPREVIOUS"],
    );
    moto.create("hyg/nul-in-json", r#"{"k":"hyg-nul-V4lue\u0000tail"}"#);
    let mut not_utf8 = b"hyg-binary-V4lue".to_vec();
    not_utf8.extend([0xff, 0xfe, 0x80]);
    moto.create_binary("hyg/binary-not-utf8", &not_utf8);
    moto.create_binary("hyg/binary-nul", b"hyg-binary-nul-V4lue\0tail");
    moto.create_binary("hyg/binary-json", br#"{"k":"hyg-binary-json-V4lue"}"#);
    moto.create(
        "hyg/import",
        r#"{"IMPORTED":"hyg-imported-V4lue","bad-name":"hyg-skipped-V4lue","SECRETS_INIT_X":"hyg-own-V4lue"}"#,
    );
    // Parameter Store.
    moto.put_parameter(
        "/hyg/json",
        &format!(r#"{{"user":"{USER}","nested":{{"deep":"{DEEP}"}}}}"#),
        "String",
    );
    moto.put_parameter("/hyg/plain", PLAIN, "String");
    moto.put_parameter("/hyg/secure", "hyg-secure-V4lue", "SecureString");
    moto.put_parameter("/hyg/list", "hyg-list-V4lue,b", "StringList");
    moto.put_parameter("/hyg/versioned", "hyg-v1-V4lue", "SecureString");
    moto.put_parameter("/hyg/versioned", "hyg-v2-V4lue", "SecureString");
    moto.label_parameter("/hyg/versioned", 1, "old");
    moto.put_parameter("/hyg/path/PATH_A", "hyg-path-a-V4lue", "SecureString");
    moto.put_parameter("/hyg/path/path-b", "hyg-path-b-V4lue", "String");
}

/// One way of running secrets-init.
struct Scenario {
    name: &'static str,
    args: Vec<String>,
    env: Vec<(&'static str, &'static str)>,
    /// The program and its arguments (default: one that prints nothing and checks nothing).
    program: Vec<String>,
    faults: Faults,
    want_code: i32,
    /// Each must appear in stderr: proof that the path was really taken.
    want_stderr: Vec<&'static str>,
    /// A termination message is expected (every failure but a command-line error).
    want_summary: bool,
}

impl Scenario {
    fn new(name: &'static str, want_code: i32) -> Self {
        Scenario {
            name,
            args: Vec::new(),
            env: Vec::new(),
            program: vec!["/bin/true".into()],
            faults: Faults::default(),
            want_code,
            want_stderr: Vec::new(),
            want_summary: want_code != 0,
        }
    }
    fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|s| (*s).to_owned()).collect();
        self
    }
    fn env(mut self, env: &[(&'static str, &'static str)]) -> Self {
        self.env = env.to_vec();
        self
    }
    fn program(mut self, program: &[&str]) -> Self {
        self.program = program.iter().map(|s| (*s).to_owned()).collect();
        self
    }
    fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }
    fn expect(mut self, needles: &[&'static str]) -> Self {
        self.want_stderr = needles.to_vec();
        self
    }
}

/// The base scenarios: every failure secrets-init knows, next to placeholders that resolve.
fn scenarios(not_executable: &Path) -> Vec<Scenario> {
    let good = [
        ("GOOD_USER", "awssm:hyg/json#user"),
        (
            "GOOD_URL",
            "postgres://${awssm:hyg/json#user}:${awssm:hyg/json#pass}@db/app",
        ),
        ("GOOD_DEEP", "awssm:hyg/json#/nested/deep"),
        ("GOOD_PARAM", "awsssm:/hyg/json#user"),
        ("GOOD_SECURE", "x${awsssm:/hyg/secure}x"),
    ];
    let with_good = |extra: &[(&'static str, &'static str)]| {
        let mut env = good.to_vec();
        env.extend_from_slice(extra);
        env
    };
    let not_executable = not_executable.to_str().expect("utf-8 path");
    vec![
        Scenario::new("missing key lists the keys", 1)
            .env(&with_good(&[("NO_KEY", "awssm:hyg/json#nope")]))
            .expect(&["KeyNotFound", "its keys: `nested`, `num`, `pass`, `user`"]),
        Scenario::new("secret is not JSON", 1)
            .env(&with_good(&[("NOT_JSON", "awssm:hyg/plain#k")]))
            .expect(&["SecretNotJsonObject"]),
        Scenario::new("pointer into a string", 1)
            .env(&with_good(&[("NO_POINTER", "awssm:hyg/json#/nested/deep/x")]))
            .expect(&["PointerNotFound", "nothing at `x` under `/nested/deep`"]),
        Scenario::new("pointer into a non-JSON secret", 1)
            .env(&with_good(&[("PLAIN_POINTER", "awssm:hyg/plain#/a")]))
            .expect(&["PointerNotFound", "the secret is not JSON"]),
        Scenario::new("malformed pointer", 1)
            .env(&with_good(&[("BAD_POINTER", "awssm:hyg/json#/nested/~9")]))
            .expect(&["MalformedPointer"]),
        Scenario::new("binary secret that is not UTF-8", 1)
            .env(&with_good(&[("BINARY", "awssm:hyg/binary-not-utf8")]))
            .expect(&["SecretBinaryNotText", "not valid UTF-8"]),
        Scenario::new("binary secret with a NUL", 1)
            .env(&with_good(&[("BINARY_NUL", "awssm:hyg/binary-nul")]))
            .expect(&["SecretBinaryNotText", "NUL"]),
        Scenario::new("value with a NUL", 1)
            .env(&with_good(&[("NUL", "awssm:hyg/nul-in-json#k")]))
            .expect(&["ValueContainsNul"]),
        Scenario::new("secret that does not exist", 1)
            .env(&with_good(&[("ABSENT", "awssm:hyg/absent#k")]))
            .expect(&["ResourceNotFoundException"]),
        Scenario::new("version that does not exist", 1)
            .env(&with_good(&[("NO_VERSION", "awssm:hyg/json#user#AWSPENDING")]))
            .expect(&["NO_VERSION: awssm:hyg/json#user#AWSPENDING"]),
        Scenario::new("ignore-missing warnings", 0)
            .args(&["--ignore-missing"])
            .env(&with_good(&[
                ("NO_KEY", "awssm:hyg/json#nope"),
                ("ABSENT", "${awssm:hyg/absent}x"),
                ("NO_POINTER", "awssm:hyg/json#/nested/nope"),
                ("PREV", "awssm:hyg/versioned#k#AWSPREVIOUS"),
                ("BIN_JSON", "awssm:hyg/binary-json#k"),
            ]))
            // The program checks the values arrived without printing them.
            .program(&[
                "/bin/sh",
                "-c",
                &[
                    good_values_arrived(),
                    holds("PREV", PREVIOUS),
                    holds("BIN_JSON", "hyg-binary-json-V4lue"),
                    holds("NO_KEY", ""),
                    holds("ABSENT", "x"),
                ]
                .join(" && "),
            ])
            .expect(&["NO_KEY: awssm:hyg/json#nope", "ABSENT: awssm:hyg/absent", "--ignore-missing"]),
        Scenario::new("ignore-missing does not hide a transient failure", 1)
            .args(&["--ignore-missing", "--timeout", "2"])
            .env(&with_good(&[]))
            .faults(Faults {
                hang: true,
                ..Faults::default()
            })
            .expect(&["timed out after 2s"]),
        Scenario::new("timeout", 1)
            .args(&["--timeout", "1.5"])
            .env(&with_good(&[]))
            .faults(Faults {
                hang: true,
                ..Faults::default()
            })
            .expect(&["timed out after 1.5s"]),
        Scenario::new("batch denied, fetched one by one", 1)
            .env(&with_good(&[("NO_KEY", "awssm:hyg/json#nope"), ("OTHER", "awssm:hyg/plain")]))
            .faults(Faults {
                batch_error: Some("AccessDeniedException".into()),
                ..Faults::default()
            })
            .expect(&["KeyNotFound"]),
        Scenario::new("program not found", 127)
            .env(&with_good(&[]))
            .program(&["/nonexistent/program", "$(GOOD_USER)"])
            .args(&["--expand-args"])
            .expect(&["cannot execute /nonexistent/program: not found"]),
        Scenario::new("program not found in a PATH that is a placeholder", 127)
            .env(&with_good(&[("PATH", "awssm:hyg/json#user")]))
            .program(&["no-such-program"])
            .expect(&["PATH=(a placeholder)"]),
        Scenario::new("program not executable", 126)
            .env(&with_good(&[]))
            .program(&[not_executable])
            .expect(&["not executable"]),
        Scenario::new("malformed placeholder next to resolved ones", 2)
            .env(&with_good(&[
                ("UNCLOSED", "${awssm:hyg/json#pass} and ${awssm:hyg/json"),
                ("EMPTY_ID", "awssm:#user"),
                ("TOO_MANY", "awssm:hyg/json#user#AWSCURRENT#x"),
            ]))
            .expect(&["UNCLOSED", "EMPTY_ID", "TOO_MANY", "MalformedPlaceholder"]),
        Scenario::new("no program (a command-line error)", 2)
            .env(&with_good(&[]))
            .program(&[])
            .expect(&["PROGRAM"]),
        Scenario::new("unknown flag (a command-line error)", 2)
            .args(&["--no-such-flag"])
            .env(&with_good(&[]))
            .expect(&["--no-such-flag"]),
        Scenario::new("bad flag value (a command-line error)", 2)
            .args(&["--timeout", "soon"])
            .env(&with_good(&[]))
            .expect(&["soon"]),
        Scenario::new("parameter that does not exist", 1)
            .env(&with_good(&[("NO_PARAM", "awsssm:/hyg/absent#k")]))
            .expect(&["NO_PARAM: awsssm:/hyg/absent#k: ParameterNotFound"]),
        Scenario::new("parameter version and label that do not exist", 1)
            .env(&with_good(&[
                ("NO_VERSION", "awsssm:/hyg/versioned##9"),
                ("NO_LABEL", "awsssm:/hyg/versioned##nope"),
            ]))
            .expect(&["NO_VERSION: awsssm:/hyg/versioned##9: ParameterNotFound", "NO_LABEL: awsssm:/hyg/versioned##nope: ParameterNotFound"]),
        Scenario::new("parameter key missing, parameter not JSON", 1)
            .env(&with_good(&[
                ("NO_KEY", "awsssm:/hyg/json#nope"),
                ("NOT_JSON", "awsssm:/hyg/plain#k"),
                ("NO_POINTER", "awsssm:/hyg/json#/nested/deep/x"),
            ]))
            .expect(&["its keys: `nested`, `user`", "SecretNotJsonObject", "PointerNotFound"]),
        Scenario::new("parameter denied, the rest asked one by one", 1)
            .env(&with_good(&[
                ("DENIED", "awsssm:/hyg/secure"),
                ("OTHER", "awsssm:/hyg/list"),
            ]))
            .faults(Faults {
                deny_parameter: Some("/hyg/secure".into()),
                ..Faults::default()
            })
            .expect(&["DENIED: awsssm:/hyg/secure: AccessDeniedException"]),
        Scenario::new("parameters under ignore-missing", 0)
            .args(&["--ignore-missing"])
            .env(&with_good(&[
                ("NO_PARAM", "awsssm:/hyg/absent"),
                ("NO_KEY", "${awsssm:/hyg/json#nope}x"),
                ("OLD", "awsssm:/hyg/versioned##old"),
                ("V2", "awsssm:/hyg/versioned#k#2"),
                ("LIST", "awsssm:/hyg/list"),
            ]))
            .program(&[
                "/bin/sh",
                "-c",
                r#"test -n "$OLD" && test -n "$LIST" && test "$NO_KEY" = x && test -z "$NO_PARAM" && test -n "$GOOD_PARAM""#,
            ])
            .expect(&["NO_PARAM: awsssm:/hyg/absent", "V2: awsssm:/hyg/versioned#k#2: SecretNotJsonObject"]),
        Scenario::new("env-from imports, skipping names", 0)
            .args(&["--env-from", "awssm:hyg/import,awsssm:/hyg/path/"])
            .env(&with_good(&[]))
            .program(&["/bin/sh", "-c", r#"test -n "$IMPORTED" && test -n "$PATH_A""#])
            .expect(&["`bad-name` is not a variable name", "`path-b` is not a variable name", "`SECRETS_INIT_X` has secrets-init's own prefix"]),
        Scenario::new("env-from what cannot be imported", 1)
            .args(&[
                "--env-from",
                "awssm:hyg/plain",
                "--env-from",
                "awsssm:/hyg/empty/",
                "--env-from",
                "awssm:hyg/nul-in-json",
                "--env-from",
                "awssm:hyg/absent",
            ])
            .env(&with_good(&[]))
            .expect(&[
                "--env-from: awssm:hyg/plain: SecretNotJsonObject",
                "--env-from: awsssm:/hyg/empty/: NoParametersUnderPath",
                "k: awssm:hyg/nul-in-json: ValueContainsNul",
                "--env-from: awssm:hyg/absent: ResourceNotFoundException",
            ]),
        Scenario::new("env-from malformed (a command-line error)", 2)
            .args(&["--env-from", "awssm:hyg/json#user"])
            .env(&with_good(&[]))
            .expect(&["a `#<key>` cannot be used"]),
        Scenario::new("role assumed", 0)
            .args(&["--role-arn", "arn:aws:iam::123456789012:role/hygiene"])
            .env(&with_good(&[("HOSTNAME", "hyg-pod")]))
            .program(&["/bin/sh", "-c", r#"test -n "$GOOD_USER" && test -n "$GOOD_SECURE""#]),
        Scenario::new("role refused", 1)
            .args(&["--role-arn", "arn:aws:iam::123456789012:role/hygiene", "--role-external-id", "hyg-ext"])
            .env(&with_good(&[]))
            .faults(Faults {
                assume_role_error: Some("AccessDenied".into()),
                ..Faults::default()
            })
            .expect(&["cannot assume role arn:aws:iam::123456789012:role/hygiene (--role-arn): AccessDenied"]),
        Scenario::new("role flags malformed (a command-line error)", 2)
            .args(&["--role-arn", "not-an-arn"])
            .env(&with_good(&[]))
            .expect(&["is not an IAM role ARN"]),
        Scenario::new("success", 0)
            .env(&with_good(&[]))
            .program(&["/bin/sh", "-c", &good_values_arrived()]),
    ]
}

/// A shell test that `$var` is exactly `want`, compared as hex so that neither the value nor
/// the expectation appears in plain text anywhere a leak check looks (argv included).
fn holds(var: &str, want: &str) -> String {
    let hex: String = want.bytes().map(|b| format!("{b:02x}")).collect();
    format!(r#"test "$(printf %s "${var}" | od -An -v -tx1 | tr -d ' \n')" = "{hex}""#)
}

/// Every `GOOD_*` of [`scenarios`] has the value its reference selects from [`seed`]'s data.
fn good_values_arrived() -> String {
    [
        holds("GOOD_USER", USER),
        holds("GOOD_URL", &format!("postgres://{USER}:{PASS}@db/app")),
        holds("GOOD_DEEP", DEEP),
        holds("GOOD_PARAM", USER),
        holds("GOOD_SECURE", "xhyg-secure-V4luex"),
    ]
    .join(" && ")
}

fn run_scenario(
    endpoint: &str,
    s: &Scenario,
    extra_args: &[&str],
    extra_env: &[(&str, &str)],
) -> (Run, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let termination_log = dir.path().join("termination-log");
    std::fs::write(&termination_log, "").expect("termination log");
    let mut cmd = common::secrets_init(endpoint);
    cmd.env("SECRETS_INIT_TERMINATION_LOG", &termination_log)
        .args(&s.args)
        .args(extra_args);
    for (k, v) in s.env.iter().chain(extra_env) {
        cmd.env(k, v);
    }
    if !s.program.is_empty() {
        cmd.arg("--").args(&s.program);
    }
    let run = run_to_files(&mut cmd, dir.path());
    let summary = std::fs::read_to_string(&termination_log).expect("read termination log");
    (run, summary)
}

/// Like `common::run`, but stdout and stderr go to files: at trace level the logs outgrow a
/// pipe's buffer, which would block the child while nobody reads.
fn run_to_files(cmd: &mut Command, dir: &Path) -> Run {
    let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("stdout file"))
        .stderr(File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn secrets-init");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("secrets-init did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        status,
        spawned_pid: child.id(),
        stdout: std::fs::read(&out_path).expect("stdout"),
        stderr: String::from_utf8_lossy(&std::fs::read(&err_path).expect("stderr")).into_owned(),
    }
}

fn check(label: &str, s: &Scenario, run: &Run, summary: &str) {
    assert_eq!(
        run.code(),
        s.want_code,
        "{label}: exit code; stderr:\n{}",
        run.stderr
    );
    for needle in &s.want_stderr {
        assert!(
            run.stderr.contains(needle),
            "{label}: {needle:?} not in stderr (the path was not taken):\n{}",
            run.stderr
        );
    }
    let stdout = run.stdout_text();
    for (what, text) in [
        ("stdout", stdout.as_str()),
        ("stderr", &run.stderr),
        ("termination log", summary),
    ] {
        assert!(
            !text.contains(MARK),
            "{label}: a secret value leaked into {what}:\n{text}"
        );
    }
    run.assert_no_secret_in_logs(&[USER, PASS, DEEP, PLAIN, PREVIOUS, "hyg-secure-V4lue"]);
    if s.want_summary {
        assert!(!summary.is_empty(), "{label}: no termination message");
    }
}

fn not_executable_file(dir: &Path) -> PathBuf {
    let path = dir.join("not-executable");
    std::fs::write(&path, "#!/bin/sh\necho hi\n").expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    path
}

#[test]
fn no_secret_value_reaches_any_output_on_any_path() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint);
    seed(&moto);
    let dir = tempfile::tempdir().expect("tempdir");
    let not_executable = not_executable_file(dir.path());

    // Every scenario in text and JSON logs, at the default level, debug and trace.
    let formats: [(&str, &[&str]); 2] = [("text", &[]), ("json", &["--log-format", "json"])];
    let levels: [(&str, &[(&str, &str)]); 3] = [
        ("info", &[]),
        ("debug", &[("SECRETS_INIT_LOG_LEVEL", "debug")]),
        ("trace", &[("SECRETS_INIT_LOG_LEVEL", "trace")]),
    ];
    for s in scenarios(&not_executable) {
        proxy.set_faults(s.faults.clone());
        for (format, format_args) in formats {
            for (level, level_env) in levels {
                let label = format!("{} [{format}, {level}]", s.name);
                let (run, summary) = run_scenario(&proxy.endpoint, &s, format_args, level_env);
                check(&label, &s, &run, &summary);
                if format == "json" {
                    for line in run.stderr.lines() {
                        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| {
                            panic!("{label}: log line is not JSON ({e}): {line}")
                        });
                    }
                }
            }
        }
        proxy.set_faults(Faults::default());
    }
}

#[test]
fn debug_logging_really_is_on_at_debug_level() {
    // The hygiene test above is only worth something if debug/trace runs log more; prove it.
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.endpoint);
    seed(&moto);
    proxy.set_faults(Faults {
        batch_error: Some("ThrottlingException".into()),
        ..Faults::default()
    });
    let s = Scenario::new("debug", 0)
        .env(&[("A", "awssm:hyg/json#user"), ("B", "awssm:hyg/plain")])
        .expect(&[
            "BatchGetSecretValue failed as a whole",
            "resolved 2 variable(s)",
        ]);
    let (run, summary) = run_scenario(
        &proxy.endpoint,
        &s,
        &[],
        &[("SECRETS_INIT_LOG_LEVEL", "debug")],
    );
    check("debug", &s, &run, &summary);
}

#[test]
fn debug_of_everything_that_holds_a_value_is_redacted() {
    use std::collections::{BTreeMap, HashMap};
    use std::ffi::OsString;

    use secrets_init::fetch::SecretText;
    use secrets_init::resolve::{parse_env, render};

    let env = [
        ("APP_OWN_KEY", "app-own-V4lue"),
        ("DB", "postgres://${awssm:hyg/json#user}@db"),
        ("WHOLE", "awssm:hyg/plain"),
    ]
    .map(|(k, v)| (OsString::from(k), OsString::from(v)));
    let parsed = parse_env(env);
    let shown = format!("{parsed:?}");
    assert!(!shown.contains(MARK), "Parsed shows a value: {shown}");
    assert!(
        shown.contains("APP_OWN_KEY"),
        "Parsed hides the names: {shown}"
    );

    let mut fetched = BTreeMap::new();
    for template in parsed.templates.values() {
        for r in template.refs() {
            let text = if r.fetch.id == "hyg/json" {
                format!(r#"{{"user":"{USER}"}}"#)
            } else {
                PLAIN.to_owned()
            };
            fetched.insert(r.fetch.clone(), Ok(SecretText::new(text)));
        }
    }
    let shown = format!("{fetched:?}");
    assert!(
        !shown.contains(MARK),
        "fetched secrets show a value: {shown}"
    );
    let mut with_paths = secrets_init::fetch::Fetched::default();
    with_paths.paths.insert(
        "/hyg/path/".to_owned(),
        Ok(vec![(
            "/hyg/path/PATH_A".to_owned(),
            SecretText::new("hyg-path-a-V4lue".to_owned()),
        )]),
    );
    let shown = format!("{with_paths:?}");
    assert!(!shown.contains(MARK), "fetched paths show a value: {shown}");
    assert!(
        shown.contains("PATH_A"),
        "fetched paths hide the names: {shown}"
    );

    let resolved = render(parsed, HashMap::new(), false, &fetched);
    assert!(resolved.problems.is_empty(), "{:?}", resolved.problems);
    let db = resolved
        .env
        .iter()
        .find(|(k, _)| k == "DB")
        .map(|(_, v)| v.clone());
    assert_eq!(db, Some(OsString::from(format!("postgres://{USER}@db"))));
    let shown = format!("{resolved:?}");
    assert!(!shown.contains(MARK), "Resolved shows a value: {shown}");
    assert!(
        shown.contains("DB") && shown.contains("WHOLE"),
        "Resolved hides the names: {shown}"
    );
}
