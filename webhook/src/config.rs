//! Configuration: flag > env `SECRETS_INIT_WEBHOOK_<NAME>` > YAML file (`--config`) > default.
//!
//! clap resolves flag and env (every argument is optional there, so an unset one is
//! visibly unset); the YAML file fills what is still missing; [`Config`] holds the result
//! with every default applied. File keys are spelled like the flags without `--`; an
//! unknown key is an error that names it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;

use crate::Error;

/// The mutation modes a cluster default may name (contract §5).
pub const MUTATION_MODES: [&str; 3] = ["init-container", "shared-volume", "image-swap"];

/// Default `--image-swap-template` (contract §5).
pub const DEFAULT_IMAGE_SWAP_TEMPLATE: &str = "{registry}/{repository}:{tag}-secrets-init";

/// Default `--secrets-init-image`: the image released with this webhook version.
pub const DEFAULT_SECRETS_INIT_IMAGE: &str = concat!(
    "ghcr.io/secrets-init/secrets-init:",
    env!("CARGO_PKG_VERSION")
);

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
        match s {
            "json" => Ok(Self::Json),
            "text" => Ok(Self::Text),
            other => Err(format!(
                "`{other}` is not a log format; valid values: json, text"
            )),
        }
    }
}

/// Parses a duration: a bare number is seconds (`8`), otherwise humantime (`8s`, `500ms`, `1m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    if let Ok(secs) = s.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Ok(Duration::from_secs_f64(secs));
    }
    humantime::parse_duration(s).map_err(|e| {
        format!(
            "`{s}` is not a duration ({e}); write seconds (`8`) or a unit (`8s`, `500ms`, `2m`)"
        )
    })
}

/// Parses a byte size: a plain number of bytes, or with a `KiB`/`MiB`/`GiB` (or `K`/`M`/`G`) suffix.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num.parse().map_err(|_| {
        format!("`{s}` is not a byte size; write e.g. `4194304`, `4MiB` or `512KiB`")
    })?;
    let mult: usize = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" | "Ki" => 1 << 10,
        "M" | "MiB" | "Mi" => 1 << 20,
        "G" | "GiB" | "Gi" => 1 << 30,
        other => {
            return Err(format!(
                "`{s}`: unknown size unit `{other}`; use B, KiB, MiB or GiB"
            ));
        }
    };
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("`{s}` is out of range; give a positive size"))
}

/// Validates a mutation mode name.
pub fn parse_mode(s: &str) -> Result<String, String> {
    let s = s.trim();
    if MUTATION_MODES.contains(&s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}` is not a mutation mode; valid values: {}",
            MUTATION_MODES.join(", ")
        ))
    }
}

fn parse_positive_usize(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{s}` is not a positive whole number")),
    }
}

fn parse_positive_u64(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{s}` is not a positive whole number")),
    }
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!("`{s}` is not a socket address; write e.g. `0.0.0.0:8443` or `[::]:8443`")
    })
}

fn parse_string(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        Err("the value is empty".into())
    } else {
        Ok(s.to_owned())
    }
}

fn parse_path(s: &str) -> Result<PathBuf, String> {
    parse_string(s).map(PathBuf::from)
}

/// The command line. Every value is optional here so that "not given" stays visible for
/// the file and defaults; [`Config::load`] merges.
#[derive(Debug, Default, Parser)]
#[command(
    name = "secrets-init-webhook",
    version,
    about = "Kubernetes mutating admission webhook that injects secrets-init into pods",
    after_help = "Every flag can also be set by env SECRETS_INIT_WEBHOOK_<NAME> (upper snake case; \
repeatable flags comma-separated) or by a key spelled like the flag in the --config YAML file. \
Precedence: flag > env > file > default. OTLP_ENDPOINT (env) sends traces over OTLP/gRPC."
)]
pub struct Cli {
    /// Print the resolved configuration (YAML, the config file's format) and exit.
    #[arg(long)]
    pub print_config: bool,
    /// YAML config file; keys are spelled like the flags without `--`.
    #[arg(long, env = "SECRETS_INIT_WEBHOOK_CONFIG", value_name = "FILE", value_parser = parse_path)]
    pub config: Option<PathBuf>,
    /// Address of the HTTPS server (`/mutate`, `/healthz`, `/readyz`) [default: 0.0.0.0:8443].
    #[arg(long, env = "SECRETS_INIT_WEBHOOK_LISTEN", value_name = "ADDR", value_parser = parse_addr)]
    pub listen: Option<SocketAddr>,
    /// Address of the plain-HTTP metrics server (`/metrics`) [default: 0.0.0.0:9090].
    #[arg(long, env = "SECRETS_INIT_WEBHOOK_METRICS_LISTEN", value_name = "ADDR", value_parser = parse_addr)]
    pub metrics_listen: Option<SocketAddr>,
    /// Serving certificate chain (PEM); reloaded on change. Without --tls-cert/--tls-key: development mode.
    #[arg(long, env = "SECRETS_INIT_WEBHOOK_TLS_CERT", value_name = "PEM", value_parser = parse_path)]
    pub tls_cert: Option<PathBuf>,
    /// Private key of the serving certificate (PEM); reloaded on change.
    #[arg(long, env = "SECRETS_INIT_WEBHOOK_TLS_KEY", value_name = "PEM", value_parser = parse_path)]
    pub tls_key: Option<PathBuf>,
    /// CA bundle (PEM): `/mutate` requires a client certificate signed by it; reloaded on change. Off when unset.
    #[arg(long, env = "SECRETS_INIT_WEBHOOK_CLIENT_CA", value_name = "PEM", value_parser = parse_path)]
    pub client_ca: Option<PathBuf>,
    /// File holding a bearer token: `/mutate` requires `Authorization: Bearer <token>`. Off when unset.
    #[arg(long, env = "SECRETS_INIT_WEBHOOK_BEARER_TOKEN_FILE", value_name = "FILE", value_parser = parse_path)]
    pub bearer_token_file: Option<PathBuf>,
    /// Cluster default mutation mode: init-container, shared-volume, image-swap [default: init-container].
    #[arg(long, env = "SECRETS_INIT_WEBHOOK_MUTATION_MODE", value_name = "MODE", value_parser = parse_mode)]
    pub mutation_mode: Option<String>,
    /// Image that holds the secrets-init binary at /secrets-init [default: ghcr.io/secrets-init/secrets-init:<this version>].
    #[arg(long, env = "SECRETS_INIT_WEBHOOK_SECRETS_INIT_IMAGE", value_name = "REF", value_parser = parse_string)]
    pub secrets_init_image: Option<String>,
    /// Region handed to secrets-init when the pod sets none [default: none, the SDK chain decides].
    #[arg(long, env = "SECRETS_INIT_WEBHOOK_AWS_REGION", value_name = "REGION", value_parser = parse_string)]
    pub aws_region: Option<String>,
    /// Registry reached over plain HTTP (development only); repeatable.
    #[arg(long, env = "SECRETS_INIT_WEBHOOK_INSECURE_REGISTRY", value_name = "HOST:PORT", value_delimiter = ',', value_parser = parse_string)]
    pub insecure_registry: Vec<String>,
    /// Name of the image-swap variant [default: {registry}/{repository}:{tag}-secrets-init].
    #[arg(long, env = "SECRETS_INIT_WEBHOOK_IMAGE_SWAP_TEMPLATE", value_name = "TEMPLATE", value_parser = parse_string)]
    pub image_swap_template: Option<String>,
    /// Deadline for answering one admission request (`8`, `8s`, `500ms`) [default: 8s].
    #[arg(long, env = "SECRETS_INIT_WEBHOOK_REQUEST_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub request_timeout: Option<Duration>,
    /// Largest accepted request body (`4194304`, `4MiB`) [default: 4MiB].
    #[arg(long, env = "SECRETS_INIT_WEBHOOK_MAX_BODY_BYTES", value_name = "BYTES", value_parser = parse_bytes)]
    pub max_body_bytes: Option<usize>,
    /// Deadline for a client to send request headers, and then its body [default: 10s].
    #[arg(long, env = "SECRETS_INIT_WEBHOOK_READ_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub read_timeout: Option<Duration>,
    /// Log format: json or text [default: json].
    #[arg(long, env = "SECRETS_INIT_WEBHOOK_LOG_FORMAT", value_name = "FORMAT", value_parser = LogFormat::from_str)]
    pub log_format: Option<LogFormat>,
    /// Admission requests handled at once; more are answered 503 at once [default: 256].
    #[arg(long, env = "SECRETS_INIT_WEBHOOK_MAX_CONCURRENT_REQUESTS", value_name = "N", value_parser = parse_positive_usize)]
    pub max_concurrent_requests: Option<usize>,
    /// TLS connections open at once; at the limit no new connection is accepted until one
    /// closes (they wait in the kernel's listen backlog) [default: 1024].
    #[arg(long, env = "SECRETS_INIT_WEBHOOK_MAX_CONNECTIONS", value_name = "N", value_parser = parse_positive_usize)]
    pub max_connections: Option<usize>,
    /// After SIGTERM: time /readyz reports 503 while still serving, so endpoints drop this pod [default: 2s].
    #[arg(long, env = "SECRETS_INIT_WEBHOOK_SHUTDOWN_DELAY", value_name = "DURATION", value_parser = parse_duration)]
    pub shutdown_delay: Option<Duration>,
    /// After the delay: longest wait for in-flight requests before exiting anyway [default: 20s].
    #[arg(long, env = "SECRETS_INIT_WEBHOOK_SHUTDOWN_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub shutdown_timeout: Option<Duration>,
    /// Docker config.json with registry credentials (`auths`) [default: none; anonymous pulls, ECR via AWS].
    #[arg(long, env = "SECRETS_INIT_WEBHOOK_DOCKER_CONFIG", value_name = "FILE", value_parser = parse_path)]
    pub docker_config: Option<PathBuf>,
    /// Deadline for one whole registry lookup (token, manifests, config); keep it below --request-timeout [default: 6s].
    #[arg(long, env = "SECRETS_INIT_WEBHOOK_REGISTRY_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub registry_timeout: Option<Duration>,
    /// How long the config of an image referenced by tag is cached (by digest: 24h) [default: 1m].
    #[arg(long, env = "SECRETS_INIT_WEBHOOK_IMAGE_CACHE_TTL", value_name = "DURATION", value_parser = parse_duration)]
    pub image_cache_ttl: Option<Duration>,
    /// How long a failed image lookup is remembered [default: 5s].
    #[arg(long, env = "SECRETS_INIT_WEBHOOK_IMAGE_CACHE_ERROR_TTL", value_name = "DURATION", value_parser = parse_duration)]
    pub image_cache_error_ttl: Option<Duration>,
    /// Most image configs kept in the cache [default: 10000].
    #[arg(long, env = "SECRETS_INIT_WEBHOOK_IMAGE_CACHE_CAPACITY", value_name = "N", value_parser = parse_positive_u64)]
    pub image_cache_capacity: Option<u64>,
}

/// The resolved configuration, every default applied. Serializes to the config file format.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Config {
    pub listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
    pub bearer_token_file: Option<PathBuf>,
    pub mutation_mode: String,
    pub secrets_init_image: String,
    pub aws_region: Option<String>,
    pub insecure_registry: Vec<String>,
    pub image_swap_template: String,
    #[serde(serialize_with = "ser_duration")]
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    #[serde(serialize_with = "ser_duration")]
    pub read_timeout: Duration,
    pub log_format: LogFormat,
    pub max_concurrent_requests: usize,
    pub max_connections: usize,
    #[serde(serialize_with = "ser_duration")]
    pub shutdown_delay: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub shutdown_timeout: Duration,
    pub docker_config: Option<PathBuf>,
    #[serde(serialize_with = "ser_duration")]
    pub registry_timeout: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub image_cache_ttl: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub image_cache_error_ttl: Duration,
    pub image_cache_capacity: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            metrics_listen: SocketAddr::from(([0, 0, 0, 0], 9090)),
            tls_cert: None,
            tls_key: None,
            client_ca: None,
            bearer_token_file: None,
            mutation_mode: "init-container".into(),
            secrets_init_image: DEFAULT_SECRETS_INIT_IMAGE.into(),
            aws_region: None,
            insecure_registry: Vec::new(),
            image_swap_template: DEFAULT_IMAGE_SWAP_TEMPLATE.into(),
            request_timeout: Duration::from_secs(8),
            max_body_bytes: 4 << 20,
            read_timeout: Duration::from_secs(10),
            log_format: LogFormat::Json,
            max_concurrent_requests: 256,
            max_connections: 1024,
            shutdown_delay: Duration::from_secs(2),
            shutdown_timeout: Duration::from_secs(20),
            docker_config: None,
            registry_timeout: Duration::from_secs(6),
            image_cache_ttl: Duration::from_secs(60),
            image_cache_error_ttl: Duration::from_secs(5),
            image_cache_capacity: 10_000,
        }
    }
}

/// Every key the YAML file may hold, in the order of the flags. `true` marks a repeatable key.
pub const FILE_KEYS: &[(&str, bool)] = &[
    ("listen", false),
    ("metrics-listen", false),
    ("tls-cert", false),
    ("tls-key", false),
    ("client-ca", false),
    ("bearer-token-file", false),
    ("mutation-mode", false),
    ("secrets-init-image", false),
    ("aws-region", false),
    ("insecure-registry", true),
    ("image-swap-template", false),
    ("request-timeout", false),
    ("max-body-bytes", false),
    ("read-timeout", false),
    ("log-format", false),
    ("max-concurrent-requests", false),
    ("max-connections", false),
    ("shutdown-delay", false),
    ("shutdown-timeout", false),
    ("docker-config", false),
    ("registry-timeout", false),
    ("image-cache-ttl", false),
    ("image-cache-error-ttl", false),
    ("image-cache-capacity", false),
];

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
        Self::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<Self, Error> {
        let at = |msg: String| Error::Config(format!("config file {}: {msg}", path.display()));
        let doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).map_err(|e| at(format!("not valid YAML: {e}")))?;
        let mut values = BTreeMap::new();
        let map = match doc {
            serde_yaml_ng::Value::Null => serde_yaml_ng::Mapping::new(),
            serde_yaml_ng::Value::Mapping(m) => m,
            _ => return Err(at("the top level must be a mapping of `key: value`".into())),
        };
        for (k, v) in map {
            let key = match k {
                serde_yaml_ng::Value::String(s) => s,
                other => return Err(at(format!("key {other:?} is not a string"))),
            };
            let Some((_, repeatable)) = FILE_KEYS.iter().find(|(name, _)| *name == key) else {
                let valid: Vec<&str> = FILE_KEYS.iter().map(|(n, _)| *n).collect();
                return Err(at(format!(
                    "unknown key `{key}`; valid keys: {}",
                    valid.join(", ")
                )));
            };
            let scalar = |v: &serde_yaml_ng::Value| -> Result<Option<String>, Error> {
                Ok(match v {
                    serde_yaml_ng::Value::Null => None,
                    serde_yaml_ng::Value::String(s) => Some(s.clone()),
                    serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
                    serde_yaml_ng::Value::Bool(b) => Some(b.to_string()),
                    _ => {
                        return Err(at(format!(
                            "key `{key}`: expected a single value, found a list or mapping"
                        )));
                    }
                })
            };
            let list = match &v {
                serde_yaml_ng::Value::Sequence(items) if *repeatable => items
                    .iter()
                    .map(|i| scalar(i).map(|s| s.unwrap_or_default()))
                    .collect::<Result<Vec<_>, _>>()?,
                serde_yaml_ng::Value::String(s) if *repeatable => {
                    s.split(',').map(|p| p.trim().to_owned()).collect()
                }
                other => match scalar(other)? {
                    Some(s) => vec![s],
                    None => continue, // `key:` with no value = not set
                },
            };
            values.insert(key, list);
        }
        Ok(Self {
            path: path.to_owned(),
            values,
        })
    }

    fn get<T>(
        &self,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, Error> {
        match self.values.get(key).and_then(|v| v.first()) {
            None => Ok(None),
            Some(raw) => parse(raw).map(Some).map_err(|e| {
                Error::Config(format!(
                    "config file {}: key `{key}`: {e}",
                    self.path.display()
                ))
            }),
        }
    }

    fn get_list(
        &self,
        key: &str,
        parse: impl Fn(&str) -> Result<String, String>,
    ) -> Result<Vec<String>, Error> {
        self.values
            .get(key)
            .into_iter()
            .flatten()
            .map(|raw| {
                parse(raw).map_err(|e| {
                    Error::Config(format!(
                        "config file {}: key `{key}`: {e}",
                        self.path.display()
                    ))
                })
            })
            .collect()
    }
}

impl Config {
    /// Parses the process's command line and environment, then the `--config` file.
    pub fn from_env_and_args() -> Result<Self, Error> {
        Self::load(Cli::parse())
    }

    /// Parses a command line (argv[0] first) with the process environment; for tests and tools.
    pub fn try_from_args<I, T>(args: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let cli = Cli::try_parse_from(args).map_err(|e| Error::Config(e.to_string()))?;
        Self::load(cli)
    }

    /// Merges a parsed command line (flags and env already resolved by clap) with the
    /// `--config` file and the defaults, then checks the whole.
    pub fn load(cli: Cli) -> Result<Self, Error> {
        let file = match &cli.config {
            Some(path) => FileValues::read(path)?,
            None => FileValues::default(),
        };
        let d = Config::default();
        let insecure_registry = if cli.insecure_registry.is_empty() {
            file.get_list("insecure-registry", parse_string)?
        } else {
            cli.insecure_registry
        };
        let config = Config {
            listen: pick(cli.listen, file.get("listen", parse_addr)?, d.listen),
            metrics_listen: pick(
                cli.metrics_listen,
                file.get("metrics-listen", parse_addr)?,
                d.metrics_listen,
            ),
            tls_cert: cli.tls_cert.or(file.get("tls-cert", parse_path)?),
            tls_key: cli.tls_key.or(file.get("tls-key", parse_path)?),
            client_ca: cli.client_ca.or(file.get("client-ca", parse_path)?),
            bearer_token_file: cli
                .bearer_token_file
                .or(file.get("bearer-token-file", parse_path)?),
            mutation_mode: pick(
                cli.mutation_mode,
                file.get("mutation-mode", parse_mode)?,
                d.mutation_mode,
            ),
            secrets_init_image: pick(
                cli.secrets_init_image,
                file.get("secrets-init-image", parse_string)?,
                d.secrets_init_image,
            ),
            aws_region: cli.aws_region.or(file.get("aws-region", parse_string)?),
            insecure_registry,
            image_swap_template: pick(
                cli.image_swap_template,
                file.get("image-swap-template", parse_string)?,
                d.image_swap_template,
            ),
            request_timeout: pick(
                cli.request_timeout,
                file.get("request-timeout", parse_duration)?,
                d.request_timeout,
            ),
            max_body_bytes: pick(
                cli.max_body_bytes,
                file.get("max-body-bytes", parse_bytes)?,
                d.max_body_bytes,
            ),
            read_timeout: pick(
                cli.read_timeout,
                file.get("read-timeout", parse_duration)?,
                d.read_timeout,
            ),
            log_format: pick(
                cli.log_format,
                file.get("log-format", LogFormat::from_str)?,
                d.log_format,
            ),
            max_concurrent_requests: pick(
                cli.max_concurrent_requests,
                file.get("max-concurrent-requests", parse_positive_usize)?,
                d.max_concurrent_requests,
            ),
            max_connections: pick(
                cli.max_connections,
                file.get("max-connections", parse_positive_usize)?,
                d.max_connections,
            ),
            shutdown_delay: pick(
                cli.shutdown_delay,
                file.get("shutdown-delay", parse_duration)?,
                d.shutdown_delay,
            ),
            shutdown_timeout: pick(
                cli.shutdown_timeout,
                file.get("shutdown-timeout", parse_duration)?,
                d.shutdown_timeout,
            ),
            docker_config: cli.docker_config.or(file.get("docker-config", parse_path)?),
            registry_timeout: pick(
                cli.registry_timeout,
                file.get("registry-timeout", parse_duration)?,
                d.registry_timeout,
            ),
            image_cache_ttl: pick(
                cli.image_cache_ttl,
                file.get("image-cache-ttl", parse_duration)?,
                d.image_cache_ttl,
            ),
            image_cache_error_ttl: pick(
                cli.image_cache_error_ttl,
                file.get("image-cache-error-ttl", parse_duration)?,
                d.image_cache_error_ttl,
            ),
            image_cache_capacity: pick(
                cli.image_cache_capacity,
                file.get("image-cache-capacity", parse_positive_u64)?,
                d.image_cache_capacity,
            ),
        };
        config.validate()?;
        // The mutation settings are checked here too, so `--print-config` catches them.
        crate::glue::mutation_config(&config)?;
        Ok(config)
    }

    /// Checks what single values cannot: pairs that belong together, usable timeouts.
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
            ("--registry-timeout", self.registry_timeout),
        ] {
            if d.is_zero() {
                return Err(Error::Config(format!(
                    "{name} is 0; give a positive duration such as `8s`"
                )));
            }
        }
        Ok(())
    }

    /// True when no certificate is configured: the server uses an in-memory self-signed one.
    pub fn dev_mode(&self) -> bool {
        self.tls_cert.is_none() && self.tls_key.is_none()
    }
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

fn pick<T>(flag_or_env: Option<T>, file: Option<T>, default: T) -> T {
    flag_or_env.or(file).unwrap_or(default)
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

    #[test]
    fn file_rejects_unknown_key_by_name() {
        let err = FileValues::parse(Path::new("w.yaml"), "listen: 127.0.0.1:1\nlisten-addr: x\n")
            .expect_err("unknown key must fail");
        let msg = err.to_string();
        assert!(msg.contains("unknown key `listen-addr`"), "{msg}");
        assert!(msg.contains("w.yaml"), "{msg}");
    }

    #[test]
    fn file_values_and_lists() {
        let f = FileValues::parse(
            Path::new("w.yaml"),
            "insecure-registry: [a:5000, b:5000]\nrequest-timeout: 3\nmutation-mode: image-swap\naws-region:\n",
        )
        .expect("valid file");
        assert_eq!(
            f.get_list("insecure-registry", parse_string).expect("list"),
            vec!["a:5000", "b:5000"]
        );
        assert_eq!(
            f.get("request-timeout", parse_duration).expect("dur"),
            Some(Duration::from_secs(3))
        );
        assert_eq!(f.get("aws-region", parse_string).expect("empty"), None);
        let bad =
            FileValues::parse(Path::new("w.yaml"), "mutation-mode: sidecar\n").expect("parses");
        let msg = bad
            .get("mutation-mode", parse_mode)
            .expect_err("bad mode")
            .to_string();
        assert!(
            msg.contains("key `mutation-mode`") && msg.contains("image-swap"),
            "{msg}"
        );
        let list_for_scalar = FileValues::parse(Path::new("w.yaml"), "listen: [a, b]\n")
            .expect_err("list for scalar");
        assert!(list_for_scalar.to_string().contains("key `listen`"));
    }

    #[test]
    fn defaults_without_anything() {
        let cfg = Config::load(Cli::default()).expect("defaults are valid");
        assert_eq!(cfg, Config::default());
        assert!(cfg.dev_mode());
    }

    #[test]
    fn half_a_tls_pair_is_an_error() {
        let cli = Cli {
            tls_cert: Some("/x/tls.crt".into()),
            ..Cli::default()
        };
        let msg = Config::load(cli).expect_err("half a pair").to_string();
        assert!(msg.contains("--tls-key"), "{msg}");
    }
}
