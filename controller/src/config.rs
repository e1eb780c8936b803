//! Settings: flag > env `SECRETS_INIT_CONTROLLER_<NAME>` > default. [`Config`] is the one
//! place a setting is declared (flag, env, type, default, help); the env name is the flag's
//! long name in upper snake case under the prefix, which a test holds every field to.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

/// A duration: plain seconds (`60`) or with a unit (`60s`, `500ms`, `5m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| {
        format!("`{s}` is not a duration ({e}); write seconds (`60`) or a unit (`60s`, `5m`)")
    })
}

fn positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) {
        return Err(format!("`{s}` is too short; give at least 1s"));
    }
    Ok(d)
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!(
            "`{other}` is not a boolean; valid values: true, false"
        )),
    }
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "secrets-init-controller",
    version,
    about = "Restarts workloads when the AWS secrets and parameters they reference change, and counts the fleet's secret-resolution failures (controller/README.md)."
)]
pub struct Config {
    /// How often every watched id is checked.
    #[arg(long, env = "SECRETS_INIT_CONTROLLER_POLL_INTERVAL", value_name = "DURATION", default_value = "60s", value_parser = positive_duration)]
    pub poll_interval: Duration,
    /// Region for ids without an ARN region or a `secretsinit.io/aws-region` annotation (else the AWS SDK chain's).
    #[arg(
        long,
        env = "SECRETS_INIT_CONTROLLER_AWS_REGION",
        value_name = "REGION"
    )]
    pub aws_region: Option<String>,
    /// Only workloads in namespaces matching this label selector (needs list/watch on namespaces).
    #[arg(
        long,
        env = "SECRETS_INIT_CONTROLLER_NAMESPACE_SELECTOR",
        value_name = "SELECTOR"
    )]
    pub namespace_selector: Option<String>,
    /// Minimum time between two restarts of one workload.
    #[arg(long, env = "SECRETS_INIT_CONTROLLER_COOLDOWN", value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub cooldown: Duration,
    /// Cluster-wide restart rate (a token bucket of this size, refilled over a minute).
    #[arg(long, env = "SECRETS_INIT_CONTROLLER_MAX_RESTARTS_PER_MINUTE", value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_restarts_per_minute: u32,
    /// Log and count restarts, patch nothing and create no Event.
    #[arg(long, env = "SECRETS_INIT_CONTROLLER_DRY_RUN", value_name = "BOOL", num_args = 0..=1, default_value = "false", default_missing_value = "true", value_parser = parse_bool)]
    pub dry_run: bool,
    /// Read the ConfigMaps and Secrets that templates take env from, for placeholders (needs get on configmaps and secrets).
    #[arg(long, env = "SECRETS_INIT_CONTROLLER_FOLLOW_REFS", value_name = "BOOL", num_args = 0..=1, default_value = "false", default_missing_value = "true", value_parser = parse_bool)]
    pub follow_refs: bool,
    /// Long-poll this SQS queue (fed by EventBridge) for change events; polling stays on.
    #[arg(
        long,
        env = "SECRETS_INIT_CONTROLLER_SQS_QUEUE_URL",
        value_name = "URL"
    )]
    pub sqs_queue_url: Option<String>,
    /// Hold a Lease before acting (off: this replica always acts; run one replica only).
    #[arg(long, env = "SECRETS_INIT_CONTROLLER_LEADER_ELECTION", value_name = "BOOL", default_value = "true", value_parser = parse_bool)]
    pub leader_election: bool,
    /// The Lease's name.
    #[arg(
        long,
        env = "SECRETS_INIT_CONTROLLER_LEASE_NAME",
        value_name = "NAME",
        default_value = "secrets-init-controller"
    )]
    pub lease_name: String,
    /// The Lease's namespace (default: $POD_NAMESPACE, else the client's namespace).
    #[arg(
        long,
        env = "SECRETS_INIT_CONTROLLER_LEASE_NAMESPACE",
        value_name = "NAMESPACE"
    )]
    pub lease_namespace: Option<String>,
    /// How long a Lease is valid without renewal (renewed every third of it).
    #[arg(long, env = "SECRETS_INIT_CONTROLLER_LEASE_DURATION", value_name = "DURATION", default_value = "15s", value_parser = positive_duration)]
    pub lease_duration: Duration,
    /// The holder identity written in the Lease (default: $HOSTNAME, the pod name).
    #[arg(long, env = "SECRETS_INIT_CONTROLLER_IDENTITY", value_name = "ID")]
    pub identity: Option<String>,
    /// Address of the plain-HTTP server: /metrics, /healthz, /readyz.
    #[arg(
        long,
        env = "SECRETS_INIT_CONTROLLER_LISTEN",
        value_name = "ADDR",
        default_value = "0.0.0.0:9091"
    )]
    pub listen: SocketAddr,
    /// Log format on stderr.
    #[arg(
        long,
        env = "SECRETS_INIT_CONTROLLER_LOG_FORMAT",
        value_enum,
        default_value = "json"
    )]
    pub log_format: LogFormat,
    /// How long a shutdown may wait for the restart in progress.
    #[arg(long, env = "SECRETS_INIT_CONTROLLER_SHUTDOWN_TIMEOUT", value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn every_flag_has_the_env_name_the_rule_gives() {
        let cmd = Config::command();
        let mut n = 0;
        for arg in cmd.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            let want = format!(
                "SECRETS_INIT_CONTROLLER_{}",
                long.to_ascii_uppercase().replace('-', "_")
            );
            let got = arg.get_env().and_then(|e| e.to_str()).unwrap_or_default();
            assert_eq!(got, want, "--{long}");
            n += 1;
        }
        assert_eq!(n, 16);
    }

    #[test]
    fn defaults_and_bad_values() {
        let c = Config::try_parse_from(["x"]).expect("defaults");
        assert_eq!(c.poll_interval, Duration::from_secs(60));
        assert_eq!(c.cooldown, Duration::from_secs(300));
        assert!(!c.dry_run && c.leader_election);
        let c = Config::try_parse_from(["x", "--dry-run", "--poll-interval", "2"]).expect("ok");
        assert!(c.dry_run);
        assert_eq!(c.poll_interval, Duration::from_secs(2));
        let e = Config::try_parse_from(["x", "--poll-interval", "soon"]).expect_err("bad");
        assert!(e.to_string().contains("is not a duration"), "{e}");
        let e = Config::try_parse_from(["x", "--max-restarts-per-minute", "0"]).expect_err("bad");
        assert!(e.to_string().contains("max-restarts-per-minute"), "{e}");
    }
}
