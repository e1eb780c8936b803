//! Configuration: flag > env `SECRETS_INIT_WEBHOOK_<NAME>` > YAML file (`--config`) > default.
//!
//! [`Config`] is the one place a setting is declared: its clap attributes give the flag, its
//! type and check, its default and its help; the file key is the flag's long name; the
//! environment variable comes from the long name by one rule ([`env_name`]); serde prints
//! it back for `--print-config` under the same name. Settings owned by another crate are a
//! flattened group declared there (`mutation_modes::MutationConfig`). Adding a setting is
//! adding a field (and a line in `config/webhook.yaml`, which a test holds to the keys).

use std::collections::BTreeMap;
use std::error::Error as _;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use mutation_modes::MutationConfig;

use crate::Error;
use crate::images::RegistryConfig;
use crate::parse::{parse_addr, parse_path, parse_positive, ser_duration};
pub use crate::parse::{parse_bytes, parse_duration};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// One JSON object per line (the default: what log pipelines want).
    #[default]
    Json,
    /// Human-readable lines.
    Text,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "json" => Ok(Self::Json),
            "text" => Ok(Self::Text),
            other => Err(format!(
                "`{other}` is not a log format; valid values: json, text"
            )),
        }
    }
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Json => "json",
            Self::Text => "text",
        })
    }
}

/// The webhook's settings, every default applied. Serializes to the config file format.
#[derive(Debug, Clone, PartialEq, Parser, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Config {
    /// Address of the HTTPS server (`/mutate`, `/healthz`, `/readyz`).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8443", value_parser = parse_addr)]
    pub listen: SocketAddr,
    /// Address of the plain-HTTP metrics server (`/metrics`).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:9090", value_parser = parse_addr)]
    pub metrics_listen: SocketAddr,
    /// Serving certificate chain (PEM); reloaded on change. Without --tls-cert/--tls-key: development mode.
    #[arg(long, value_name = "PEM", value_parser = parse_path)]
    pub tls_cert: Option<PathBuf>,
    /// Private key of the serving certificate (PEM); reloaded on change.
    #[arg(long, value_name = "PEM", value_parser = parse_path)]
    pub tls_key: Option<PathBuf>,
    /// CA bundle (PEM): `/mutate` requires a client certificate signed by it; reloaded on change. Off when unset.
    #[arg(long, value_name = "PEM", value_parser = parse_path)]
    pub client_ca: Option<PathBuf>,
    /// File holding a bearer token: `/mutate` requires `Authorization: Bearer <token>`. Off when unset.
    #[arg(long, value_name = "FILE", value_parser = parse_path)]
    pub bearer_token_file: Option<PathBuf>,

    #[command(flatten)]
    #[serde(flatten)]
    pub mutation: MutationConfig,

    #[command(flatten)]
    #[serde(flatten)]
    pub registry: RegistryConfig,

    /// Deadline for answering one admission request (`8`, `8s`, `500ms`).
    #[arg(long, value_name = "DURATION", default_value = "8s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_duration")]
    pub request_timeout: Duration,
    /// Largest accepted request body (`4194304`, `4MiB`).
    #[arg(long, value_name = "BYTES", default_value = "4MiB", value_parser = parse_bytes)]
    pub max_body_bytes: usize,
    /// Deadline for a client to send request headers, and then its body.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_duration")]
    pub read_timeout: Duration,
    /// Admission requests handled at once; more are answered 503 at once.
    #[arg(long, value_name = "N", default_value = "256", value_parser = parse_positive::<usize>)]
    pub max_concurrent_requests: usize,
    /// TLS connections open at once; at the limit no new connection is accepted until one
    /// closes (they wait in the kernel's listen backlog).
    #[arg(long, value_name = "N", default_value = "1024", value_parser = parse_positive::<usize>)]
    pub max_connections: usize,

    /// Connections older than this are told to close on their next answer (HTTP/1.1:
    /// `Connection: close`; HTTP/2: GOAWAY), so a long-lived client pool spreads over new
    /// replicas after a scale-up. `0` keeps connections for as long as the client does.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_duration")]
    pub max_connection_age: Duration,

    /// After SIGTERM: time /readyz reports 503 while still serving, so endpoints drop this pod.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_duration")]
    pub shutdown_delay: Duration,
    /// After the delay: longest wait for in-flight requests before exiting anyway.
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_duration")]
    pub shutdown_timeout: Duration,

    /// Log format: json or text.
    #[arg(long, value_name = "FORMAT", default_value_t = LogFormat::Json, value_parser = LogFormat::from_str)]
    pub log_format: LogFormat,
}

/// What the command line asks for besides the settings.
#[derive(Debug, Parser)]
#[command(
    name = "secrets-init-webhook",
    version,
    about = "Kubernetes mutating admission webhook that injects secrets-init into pods",
    after_help = "Every flag can also be set by env SECRETS_INIT_WEBHOOK_<NAME> (upper snake case; \
repeatable flags comma-separated) or by a key spelled like the flag in the --config YAML file. \
Precedence: flag > env > file > default. OTLP_ENDPOINT (env) sends traces over OTLP/gRPC."
)]
struct Cli {
    /// Print the resolved configuration (YAML, the config file's format) and exit.
    #[arg(long)]
    print_config: bool,
    /// YAML config file; keys are spelled like the flags without `--`.
    #[arg(long = "config", value_name = "FILE", value_parser = parse_path)]
    config_file: Option<PathBuf>,
    #[command(flatten)]
    config: Config,
}

/// What to do, from the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub config: Config,
    /// `--print-config`: print `config` and exit.
    pub print_config: bool,
}

/// The prefix of every setting's environment variable.
pub const ENV_PREFIX: &str = "SECRETS_INIT_WEBHOOK_";

/// `SECRETS_INIT_WEBHOOK_` + the flag's long name in upper snake case
/// (`--request-timeout` → `SECRETS_INIT_WEBHOOK_REQUEST_TIMEOUT`).
pub fn env_name(long: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        long.replace('-', "_").to_ascii_uppercase()
    )
}

/// The command line with an environment variable for every setting (and `--config`).
fn command() -> clap::Command {
    Cli::command().mut_args(|arg| match arg.get_long() {
        Some(long) if long != "print-config" => {
            let env = env_name(long);
            arg.env(env)
        }
        _ => arg,
    })
}

/// The file keys: the long names of the settings' flags.
pub fn file_keys() -> Vec<String> {
    Config::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_owned))
        .filter(|l| l != "help" && l != "version")
        .collect()
}

impl Default for Config {
    /// Every setting at its declared default (no flags, environment or file).
    fn default() -> Self {
        let parsed = Config::command()
            .try_get_matches_from(["secrets-init-webhook"])
            .and_then(|m| Config::from_arg_matches(&m));
        match parsed {
            Ok(config) => config,
            // The declared defaults parse; `config::tests::defaults` holds them to it.
            Err(e) => panic!("the declared defaults do not parse: {e}"),
        }
    }
}

impl Config {
    /// Reads the command line (`args`, argv[0] first) with the process environment, then
    /// the `--config` file, and checks the whole. `--help` and `--version` come back as
    /// [`Error::Cli`] (print it with `exit()`).
    pub fn from_args<I, T>(args: I) -> Result<Invocation, Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let cmd = command();
        let matches = cmd.clone().try_get_matches_from(&args)?;
        let cli = Cli::from_arg_matches(&matches)?;
        let matches = match &cli.config_file {
            None => matches,
            Some(path) => {
                let file = FileValues::read(path)?;
                let from_file = file.as_args(&cmd, &matches)?;
                // The file's values go in as flags only for settings that neither a flag
                // nor the environment set, so they rank below both.
                let argv0 = args.first().cloned().unwrap_or_default();
                let merged = std::iter::once(argv0)
                    .chain(from_file)
                    .chain(args.iter().skip(1).cloned());
                cmd.try_get_matches_from(merged)?
            }
        };
        let cli = Cli::from_arg_matches(&matches)?;
        cli.config.validate()?;
        Ok(Invocation {
            config: cli.config,
            print_config: cli.print_config,
        })
    }

    /// Checks what single values cannot: pairs that belong together, usable timeouts, the
    /// mutation's settings.
    pub fn validate(&self) -> Result<(), Error> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                return Err(Error::Config(
                    "--tls-cert is set but --tls-key is not; give both (or neither, for development mode)".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(Error::Config(
                    "--tls-key is set but --tls-cert is not; give both (or neither, for development mode)".into(),
                ));
            }
            _ => {}
        }
        for (name, d) in [
            ("--request-timeout", self.request_timeout),
            ("--read-timeout", self.read_timeout),
            ("--registry-timeout", self.registry.registry_timeout),
        ] {
            if d.is_zero() {
                return Err(Error::Config(format!(
                    "{name} is 0; give a positive duration such as `8s`"
                )));
            }
        }
        self.mutation
            .validate()
            .map_err(|e| Error::Config(e.to_string()))
    }

    /// True when no certificate is configured: the server uses an in-memory self-signed one.
    pub fn dev_mode(&self) -> bool {
        self.tls_cert.is_none() && self.tls_key.is_none()
    }
}

/// The YAML file, checked: every key known, every value a scalar (or a list for repeatable keys).
#[derive(Debug, Default)]
struct FileValues {
    path: PathBuf,
    values: BTreeMap<String, Vec<String>>,
}

impl FileValues {
    fn read(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!("cannot read config file {}: {e}", path.display()))
        })?;
        Self::parse(path, &text, &Config::command())
    }

    fn at(&self, msg: String) -> Error {
        Error::Config(format!("config file {}: {msg}", self.path.display()))
    }

    fn parse(path: &Path, text: &str, settings: &clap::Command) -> Result<Self, Error> {
        let mut file = Self {
            path: path.to_owned(),
            values: BTreeMap::new(),
        };
        let doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).map_err(|e| file.at(format!("not valid YAML: {e}")))?;
        let map = match doc {
            serde_yaml_ng::Value::Null => serde_yaml_ng::Mapping::new(),
            serde_yaml_ng::Value::Mapping(m) => m,
            _ => {
                return Err(file.at("the top level must be a mapping of `key: value`".into()));
            }
        };
        for (k, v) in map {
            let key = match k {
                serde_yaml_ng::Value::String(s) => s,
                other => return Err(file.at(format!("key {other:?} is not a string"))),
            };
            let Some(arg) = settings
                .get_arguments()
                .find(|a| a.get_long() == Some(key.as_str()) && key != "help" && key != "version")
            else {
                return Err(file.at(format!(
                    "unknown key `{key}`; valid keys: {}",
                    file_keys().join(", ")
                )));
            };
            let repeatable = arg.get_num_args().is_some_and(|n| n.max_values() > 1)
                || matches!(arg.get_action(), clap::ArgAction::Append);
            let scalar = |v: &serde_yaml_ng::Value| -> Result<Option<String>, Error> {
                Ok(match v {
                    serde_yaml_ng::Value::Null => None,
                    serde_yaml_ng::Value::String(s) => Some(s.clone()),
                    serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
                    serde_yaml_ng::Value::Bool(b) => Some(b.to_string()),
                    _ => {
                        return Err(file.at(format!(
                            "key `{key}`: expected a single value, found a list or mapping"
                        )));
                    }
                })
            };
            let list = match &v {
                serde_yaml_ng::Value::Sequence(items) if repeatable => items
                    .iter()
                    .map(|i| scalar(i).map(Option::unwrap_or_default))
                    .collect::<Result<Vec<_>, _>>()?,
                serde_yaml_ng::Value::String(s) if repeatable => {
                    s.split(',').map(|p| p.trim().to_owned()).collect()
                }
                other => match scalar(other)? {
                    Some(s) => vec![s],
                    None => continue, // `key:` with no value = not set
                },
            };
            file.values.insert(key, list);
        }
        Ok(file)
    }

    /// The file's settings as `--key=value` arguments, for the settings that neither a flag
    /// nor the environment set. Each value is checked here, so an error names the file and
    /// the key.
    fn as_args(&self, cmd: &clap::Command, matches: &ArgMatches) -> Result<Vec<OsString>, Error> {
        let mut out = Vec::new();
        for (key, values) in &self.values {
            let Some(arg) = cmd
                .get_arguments()
                .find(|a| a.get_long() == Some(key.as_str()))
            else {
                continue;
            };
            let id = arg.get_id().as_str();
            if !matches!(
                matches.value_source(id),
                None | Some(ValueSource::DefaultValue)
            ) {
                continue;
            }
            for value in values {
                let flag = format!("--{key}={value}");
                // Alone on a command line without the environment: an error is this value's.
                if let Err(e) = Config::command().try_get_matches_from(["check", flag.as_str()]) {
                    let why = e
                        .source()
                        .map_or_else(|| e.to_string(), ToString::to_string);
                    return Err(self.at(format!("key `{key}`: {why}")));
                }
                out.push(OsString::from(flag));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases: &[(&str, Option<Duration>)] = &[
            ("8", Some(Duration::from_secs(8))),
            ("8s", Some(Duration::from_secs(8))),
            ("500ms", Some(Duration::from_millis(500))),
            ("1.5", Some(Duration::from_millis(1500))),
            ("2m", Some(Duration::from_secs(120))),
            ("", None),
            ("eight", None),
            ("-1", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_duration(input).ok(), *want, "input {input:?}");
        }
    }

    #[test]
    fn byte_sizes() {
        let cases: &[(&str, Option<usize>)] = &[
            ("4194304", Some(4 << 20)),
            ("4MiB", Some(4 << 20)),
            ("512KiB", Some(512 << 10)),
            ("1Gi", Some(1 << 30)),
            ("0", None),
            ("4 MB", None),
            ("lots", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_bytes(input).ok(), *want, "input {input:?}");
        }
    }

    fn parse_file(text: &str) -> Result<FileValues, Error> {
        FileValues::parse(Path::new("w.yaml"), text, &Config::command())
    }

    #[test]
    fn file_rejects_unknown_key_by_name() {
        let msg = parse_file("listen: 127.0.0.1:1\nlisten-addr: x\n")
            .expect_err("unknown key must fail")
            .to_string();
        assert!(msg.contains("unknown key `listen-addr`"), "{msg}");
        assert!(
            msg.contains("w.yaml") && msg.contains("request-timeout"),
            "{msg}"
        );
        for cli_only in ["config", "print-config", "help"] {
            let msg = parse_file(&format!("{cli_only}: x\n"))
                .expect_err(cli_only)
                .to_string();
            assert!(msg.contains("unknown key"), "{cli_only}: {msg}");
        }
    }

    #[test]
    fn file_values_and_lists() {
        let f = parse_file(
            "insecure-registry: [a:5000, b:5000]\nrequest-timeout: 3\nmutation-mode: image-swap\naws-region:\n",
        )
        .expect("valid file");
        assert_eq!(f.values["insecure-registry"], ["a:5000", "b:5000"]);
        assert_eq!(f.values["request-timeout"], ["3"]);
        assert!(!f.values.contains_key("aws-region"));
        let list_for_scalar = parse_file("listen: [a, b]\n").expect_err("list for scalar");
        assert!(list_for_scalar.to_string().contains("key `listen`"));
    }

    #[test]
    fn file_values_are_checked_naming_the_key() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("w.yaml");
        for (text, want) in [
            (
                "mutation-mode: sidecar\n",
                "key `mutation-mode`: unknown mutation mode",
            ),
            (
                "request-timeout: soon\n",
                "key `request-timeout`: `soon` is not a duration",
            ),
            (
                "run-as-user: root\n",
                "key `run-as-user`: `root` is not a user id",
            ),
        ] {
            std::fs::write(&file, text).expect("write");
            let msg = Config::from_args(["w", "--config", file.to_str().expect("utf8")])
                .expect_err(text)
                .to_string();
            assert!(
                msg.contains(want) && msg.contains("w.yaml"),
                "{text}: {msg}"
            );
        }
    }

    #[test]
    fn precedence_is_flag_then_file_then_default() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("w.yaml");
        std::fs::write(
            &file,
            "request-timeout: 3s\nread-timeout: 4s\ninsecure-registry: [f:1]\nmutation-mode: shared-volume\n",
        )
        .expect("write");
        let path = file.to_str().expect("utf8");
        let got = Config::from_args(["w", "--config", path, "--read-timeout", "5s"])
            .expect("valid")
            .config;
        assert_eq!(
            got.request_timeout,
            Duration::from_secs(3),
            "file over default"
        );
        assert_eq!(got.read_timeout, Duration::from_secs(5), "flag over file");
        assert_eq!(got.registry.insecure_registry, ["f:1"]);
        assert_eq!(
            got.mutation.default_mode,
            mutation_modes::ModeKind::SharedVolume
        );
        assert_eq!(
            got.registry.registry_timeout,
            Config::default().registry.registry_timeout
        );
    }

    #[test]
    fn every_setting_has_its_env_variable() {
        let cmd = command();
        for key in file_keys() {
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_long() == Some(key.as_str()))
                .expect("arg");
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(env_name(&key).as_str()),
                "{key}"
            );
        }
        assert_eq!(
            env_name("request-timeout"),
            "SECRETS_INIT_WEBHOOK_REQUEST_TIMEOUT"
        );
    }

    #[test]
    fn printed_keys_are_the_file_keys() {
        let printed = serde_json::to_value(Config::default()).expect("serialize");
        let mut printed: Vec<String> = printed.as_object().expect("map").keys().cloned().collect();
        let mut keys = file_keys();
        printed.sort();
        keys.sort();
        assert_eq!(printed, keys);
    }

    #[test]
    fn defaults() {
        let d = Config::default();
        assert_eq!(d.request_timeout, Duration::from_secs(8));
        assert_eq!(d.max_body_bytes, 4 << 20);
        assert_eq!(d.mutation, MutationConfig::default());
        assert!(d.dev_mode());
        assert!(d.validate().is_ok());
    }

    #[test]
    fn half_a_tls_pair_is_an_error() {
        let config = Config {
            tls_cert: Some("/x/tls.crt".into()),
            ..Config::default()
        };
        let msg = config.validate().expect_err("half a pair").to_string();
        assert!(msg.contains("--tls-key"), "{msg}");
    }
}
