//! The command line (contract §3). Every option is also an `SECRETS_INIT_*` variable; the
//! flag wins.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use placeholder::{EnvFrom, parse_env_from};

/// Resolve AWS Secrets Manager and SSM Parameter Store placeholders in the environment, then
/// exec the program.
///
/// Variables whose value starts with `awssm:`/`awsssm:` or contains `${awssm:…}`/
/// `${awsssm:…}` are resolved: awssm:<secret-id>[#<key>[#<version>]],
/// awsssm:<parameter>[#<key>[#<version>]]. The program then replaces secrets-init (same PID)
/// with the real values in its environment.
#[derive(Debug, Parser)]
#[command(
    name = "secrets-init",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    override_usage = "secrets-init [OPTIONS] [--] <PROGRAM> [ARGS]...\n       secrets-init install <DIR>"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub options: Options,

    /// The program to exec, and its arguments (a name without `/` is looked up in PATH).
    #[arg(value_name = "PROGRAM", required = true, trailing_var_arg = true)]
    pub program: Vec<OsString>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Copy this executable to DIR/secrets-init (mode 0555, atomic rename).
    Install {
        /// Target directory (an emptyDir shared with the app containers).
        dir: PathBuf,
    },
}

/// Kubernetes' default `terminationMessagePath`.
pub const DEFAULT_TERMINATION_LOG: &str = "/dev/termination-log";

/// The value of the option `--<long>` when the command line as a whole does not parse:
/// `--<long> value` or `--<long>=value` among the options (before `--` or the program),
/// else the environment variable `env`. Used only to report that parse error in the
/// format asked for.
pub fn early_option(args: &[OsString], long: &str, env: &str) -> Option<String> {
    let command = <Cli as clap::CommandFactory>::command();
    let takes_value = |flag: &str| {
        command
            .get_arguments()
            .any(|a| a.get_long() == Some(flag) && a.get_action().takes_values())
    };
    let mut it = args.iter().map(|a| a.to_string_lossy());
    while let Some(arg) = it.next() {
        if arg == "--" {
            break;
        }
        let Some(option) = arg.strip_prefix("--") else {
            if arg.starts_with('-') {
                continue; // -h, -V
            }
            break; // the program, or `install`
        };
        let (flag, inline) = match option.split_once('=') {
            Some((flag, value)) => (flag, Some(value)),
            None => (option, None),
        };
        if flag == long {
            return match inline {
                Some(value) => Some(value.to_owned()),
                None => it.next().map(|v| v.into_owned()),
            };
        }
        if inline.is_none() && takes_value(flag) {
            it.next();
        }
    }
    std::env::var(env).ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct Options {
    /// AWS region for secret names (an ARN's own region always wins).
    #[arg(long, env = "SECRETS_INIT_REGION", value_name = "REGION")]
    pub region: Option<String>,

    /// A secret, version, key or pointer that does not exist, or that access is denied to,
    /// becomes the empty string (with a warning). Other failures still fail.
    #[arg(long, env = "SECRETS_INIT_IGNORE_MISSING")]
    pub ignore_missing: bool,

    /// Total deadline for resolution in seconds, retries included.
    #[arg(long, env = "SECRETS_INIT_TIMEOUT", value_name = "SECONDS", default_value = "30", value_parser = parse_seconds)]
    pub timeout: Duration,

    /// Log format on stderr.
    #[arg(
        long,
        env = "SECRETS_INIT_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,

    /// Never use BatchGetSecretValue (SECRETS_INIT_BATCH=false does the same).
    #[arg(long)]
    pub no_batch: bool,

    /// Expand $(VAR) in the program's arguments with the resolved environment, as
    /// Kubernetes does ($$ gives $).
    #[arg(long, env = "SECRETS_INIT_EXPAND_ARGS")]
    pub expand_args: bool,

    /// For exec probes: take values from the main process (/proc/1/environ) where it has
    /// them resolved, and resolve only the rest.
    #[arg(long, env = "SECRETS_INIT_PROBE")]
    pub probe: bool,

    /// Where to write a failure summary (Kubernetes terminationMessagePath); skipped when
    /// not writable.
    #[arg(
        long,
        env = "SECRETS_INIT_TERMINATION_LOG",
        value_name = "PATH",
        default_value = DEFAULT_TERMINATION_LOG
    )]
    pub termination_log: PathBuf,

    /// Import variables: every top-level key of a JSON-object secret
    /// (awssm:<secret-id>[##<version>]) or every parameter directly under a Parameter Store
    /// path (awsssm:<path>/). Repeatable; comma-separated in the variable. Variables the
    /// container sets win; a later --env-from wins over an earlier one.
    #[arg(
        long,
        env = "SECRETS_INIT_ENV_FROM",
        value_name = "REF",
        value_delimiter = ',',
        value_parser = env_from_arg
    )]
    pub env_from: Vec<EnvFrom>,

    /// Assume this IAM role (STS AssumeRole) for every Secrets Manager and Parameter Store
    /// call, starting from secrets-init's own credentials (the pod identity).
    #[arg(long, env = "SECRETS_INIT_ROLE_ARN", value_name = "ARN", value_parser = role_arn_arg)]
    pub role_arn: Option<String>,

    /// External id to pass when assuming --role-arn.
    #[arg(
        long,
        env = "SECRETS_INIT_ROLE_EXTERNAL_ID",
        value_name = "ID",
        requires = "role_arn",
        value_parser = external_id_arg
    )]
    pub role_external_id: Option<String>,

    /// Where --probe reads the main process's environment (for tests).
    #[arg(
        long,
        env = "SECRETS_INIT_PROBE_ENVIRON",
        default_value = "/proc/1/environ",
        hide = true
    )]
    pub probe_environ: PathBuf,
}

impl Options {
    /// Batching is on unless `--no-batch`, or `SECRETS_INIT_BATCH` says false.
    pub fn batch(&self, env_batch: Option<&str>) -> Result<bool, String> {
        if self.no_batch {
            return Ok(false);
        }
        match env_batch.map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(true),
            Some(v) if ["true", "1", "yes", "on", ""].contains(&v.as_str()) => Ok(true),
            Some(v) if ["false", "0", "no", "off"].contains(&v.as_str()) => Ok(false),
            Some(v) => Err(format!(
                "SECRETS_INIT_BATCH={v:?} is not a boolean: use true or false"
            )),
        }
    }
}

/// One item of `--env-from` / `SECRETS_INIT_ENV_FROM` (surrounding spaces allowed, as in the
/// annotation's comma list).
fn env_from_arg(text: &str) -> Result<EnvFrom, String> {
    parse_env_from(text.trim()).map_err(|e| e.to_string())
}

/// `arn:<partition>:iam::<account>:role/<path/name>`: checked here, so a typo is a usage
/// error (exit 2) rather than an STS error after a network round trip.
fn role_arn_arg(text: &str) -> Result<String, String> {
    let text = text.trim();
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, "iam", "", account, resource]
            if !partition.is_empty()
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource
                    .strip_prefix("role/")
                    .is_some_and(|name| !name.is_empty()) =>
        {
            Ok(text.to_owned())
        }
        _ => Err(format!(
            "{text:?} is not an IAM role ARN: the form is arn:aws:iam::<12-digit account id>:role/<name>"
        )),
    }
}

/// STS takes 2 to 1224 characters of `[A-Za-z0-9+=,.@:/_-]` as an external id.
fn external_id_arg(text: &str) -> Result<String, String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "+=,.@:/_-".contains(c);
    if (2..=1224).contains(&text.len()) && text.chars().all(ok_char) {
        Ok(text.to_owned())
    } else {
        Err(
            "an external id is 2 to 1224 characters of letters, digits and +=,.@:/_- (what the role's trust policy names in sts:ExternalId)"
                .to_owned(),
        )
    }
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .trim_end_matches('s')
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds (e.g. 30)"))?;
    if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
        return Err(format!("{text:?} must be between 0 and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_option_reads_the_options_only() {
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let env = "SECRETS_INIT_TEST_EARLY_OPTION_UNSET";
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["--log-format", "json", "--bogus"], Some("json")),
            (&["--log-format=json", "--bogus"], Some("json")),
            (
                &["--region", "eu-west-1", "--log-format", "json"],
                Some("json"),
            ),
            (
                &["--bogus", "--timeout", "3", "--log-format=json"],
                Some("json"),
            ),
            // A value that looks like the flag is a value, not the flag.
            (&["--region", "--log-format", "--bogus"], None),
            // The program's own arguments are not ours.
            (&["--bogus", "--", "prog", "--log-format", "json"], None),
            (&["--bogus", "prog", "--log-format", "json"], None),
            (&["-h", "--log-format", "json"], Some("json")),
            (&["--log-format"], None),
        ];
        for (args, want) in cases {
            assert_eq!(
                early_option(&os(args), "log-format", env).as_deref(),
                *want,
                "{args:?}"
            );
        }
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("secrets-init").chain(args.iter().copied()))
    }

    #[test]
    fn program_and_args_are_kept_verbatim() {
        let cli = parse(&["--region", "eu-west-1", "sh", "-c", "echo --region x"]).unwrap();
        assert_eq!(cli.options.region.as_deref(), Some("eu-west-1"));
        assert_eq!(cli.program, ["sh", "-c", "echo --region x"]);
        let cli = parse(&["--ignore-missing", "--", "install", "-m", "0755"]).unwrap();
        assert!(cli.options.ignore_missing);
        assert!(cli.command.is_none());
        assert_eq!(cli.program, ["install", "-m", "0755"]);
    }

    #[test]
    fn install_subcommand() {
        let cli = parse(&["install", "/secrets-init-bin"]).unwrap();
        match cli.command {
            Some(Command::Install { dir }) => assert_eq!(dir, PathBuf::from("/secrets-init-bin")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn usage_errors() {
        for args in [
            &[][..],
            &["--timeout", "abc", "true"],
            &["--log-format", "xml", "true"],
            &["--bogus", "true"],
        ] {
            let err = parse(args).expect_err(&format!("{args:?}"));
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn env_from_and_role_flags() {
        let cli = parse(&[
            "--env-from",
            "awssm:prod/app",
            "--env-from",
            " awsssm:/prod/app/ , awssm:other##AWSPREVIOUS",
            "--role-arn",
            "arn:aws:iam::123456789012:role/reader",
            "--role-external-id",
            "ext-id:1",
            "true",
        ])
        .unwrap();
        let refs: Vec<String> = cli.options.env_from.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            refs,
            [
                "awssm:prod/app",
                "awsssm:/prod/app/",
                "awssm:other##AWSPREVIOUS"
            ]
        );
        assert_eq!(
            cli.options.role_arn.as_deref(),
            Some("arn:aws:iam::123456789012:role/reader")
        );
        assert_eq!(cli.options.role_external_id.as_deref(), Some("ext-id:1"));

        for (args, want) in [
            (
                &["--env-from", "awssm:app#KEY", "true"][..],
                "a `#<key>` cannot be used",
            ),
            (&["--env-from", "awsssm:/p", "true"], "must end with `/`"),
            (
                &["--env-from", "a,,b", "true"],
                "is not a valid env-from reference",
            ),
            (
                &["--role-arn", "arn:aws:iam::1:role/x", "true"],
                "is not an IAM role ARN",
            ),
            (
                &["--role-arn", "arn:aws:sts::123456789012:role/x", "true"],
                "is not an IAM role ARN",
            ),
            (
                &["--role-arn", "arn:aws:iam::123456789012:user/x", "true"],
                "is not an IAM role ARN",
            ),
            (&["--role-external-id", "abc", "true"], "--role-arn"),
            (
                &[
                    "--role-arn",
                    "arn:aws:iam::123456789012:role/x",
                    "--role-external-id",
                    "a b",
                    "true",
                ],
                "an external id is 2 to 1224 characters",
            ),
        ] {
            let err = parse(args).expect_err(&format!("{args:?}"));
            assert_eq!(err.exit_code(), 2, "{args:?}");
            assert!(err.to_string().contains(want), "{args:?}: {err}");
        }
        assert_eq!(
            role_arn_arg("arn:aws-cn:iam::123456789012:role/path/to/r").as_deref(),
            Ok("arn:aws-cn:iam::123456789012:role/path/to/r")
        );
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_seconds("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_seconds("2.5s").unwrap(), Duration::from_millis(2500));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-1").is_err());
    }

    #[test]
    fn batch_setting() {
        let cli = parse(&["true"]).unwrap();
        assert_eq!(cli.options.batch(None), Ok(true));
        assert_eq!(cli.options.batch(Some("false")), Ok(false));
        assert_eq!(cli.options.batch(Some("TRUE")), Ok(true));
        assert!(cli.options.batch(Some("maybe")).is_err());
        let cli = parse(&["--no-batch", "true"]).unwrap();
        assert_eq!(cli.options.batch(Some("true")), Ok(false));
    }
}
