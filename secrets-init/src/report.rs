//! What secrets-init says: logs on stderr (text or JSON) and the failure summary in the
//! termination log (`kubectl describe pod` shows it). Nothing here ever sees a value.

use std::fmt;
use std::io::Write;
use std::path::Path;

use tracing::level_filters::LevelFilter;
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::cli::LogFormat;
use crate::problem::Problem;

/// Kubernetes keeps at most 4096 bytes of a termination message.
const TERMINATION_LOG_LIMIT: usize = 4096;

/// Logs go to stderr. `RUST_LOG` is not read (the container's env belongs to the app);
/// `SECRETS_INIT_LOG_LEVEL` (default `info`) sets the level.
pub fn init_logging(format: LogFormat, level: Option<&str>) {
    let filter = level
        .and_then(|l| l.trim().parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    // aws-config's AssumeRoleProvider warns when STS refuses; secrets-init says so itself, in
    // one line with the role and the code (contract §3), so that warning shows only at debug.
    let quiet = if filter >= LevelFilter::DEBUG {
        filter
    } else {
        LevelFilter::ERROR
    };
    let targets = Targets::new()
        .with_default(filter)
        .with_target("aws_config::sts::assume_role", quiet);
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(filter)
        .with_ansi(false);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_target(false)
            .finish()
            .with(targets)
            .try_init(),
        LogFormat::Text => builder
            .event_format(PlainText)
            .finish()
            .with(targets)
            .try_init(),
    };
}

/// `secrets-init: <level>: <message>` — one line per event, fields left to the JSON format.
struct PlainText;

impl<S, N> FormatEvent<S, N> for PlainText
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut message = MessageOnly(String::new());
        event.record(&mut message);
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        writeln!(writer, "secrets-init: {level}: {}", message.0)
    }
}

struct MessageOnly(String);

impl tracing::field::Visit for MessageOnly {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

/// Why secrets-init stops without starting the program. Every step of a run returns one,
/// and [`Failure::report`] is the one place that says it.
#[derive(Debug)]
pub struct Failure {
    /// The exit code (`crate::exit`).
    pub code: u8,
    /// One line: what failed, and how to fix it.
    pub headline: String,
    /// The per-variable problems behind it, one line each.
    pub problems: Vec<Problem>,
}

impl Failure {
    pub fn new(code: u8, headline: impl Into<String>) -> Self {
        Self::with_problems(code, headline, Vec::new())
    }

    pub fn with_problems(code: u8, headline: impl Into<String>, problems: Vec<Problem>) -> Self {
        Self {
            code,
            headline: headline.into(),
            problems,
        }
    }

    /// Logs a line per problem, then the headline, on stderr; writes the summary to the
    /// termination log; returns the exit code.
    pub fn report(&self, termination_log: &Path) -> u8 {
        for p in &self.problems {
            tracing::error!(
                variable = %p.variable,
                reference = p.reference.as_deref().unwrap_or(""),
                code = %p.code,
                "{p}"
            );
        }
        tracing::error!("{}", self.headline);
        write_termination_log(termination_log, &summary(&self.headline, &self.problems));
        self.code
    }
}

/// Writes `summary` to the termination log when that file is writable; silently skipped
/// otherwise (outside Kubernetes there is none).
pub fn write_termination_log(path: &Path, summary: &str) {
    let mut text = summary.to_owned();
    if text.len() > TERMINATION_LOG_LIMIT {
        let mut cut = TERMINATION_LOG_LIMIT - 4;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("\n...");
    }
    let Ok(mut file) = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
    else {
        return;
    };
    let _ = file.write_all(text.as_bytes());
}

/// The termination-log text for failed placeholders.
pub fn summary(headline: &str, problems: &[Problem]) -> String {
    let mut text = format!("secrets-init: {headline}\n");
    for p in problems {
        text.push_str(&format!("{p}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn termination_log_is_written_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("termination-log");
        std::fs::write(&path, b"").unwrap();
        let problems: Vec<Problem> = (0..200)
            .map(|i| Problem {
                variable: format!("VAR_{i}"),
                reference: Some(format!("awssm:prod/app#KEY_{i}")),
                code: crate::problem::Code::ResourceNotFound,
                message: "Secrets Manager can't find the specified secret.".into(),
            })
            .collect();
        write_termination_log(
            &path,
            &summary("200 placeholders could not be resolved", &problems),
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.len() <= TERMINATION_LOG_LIMIT);
        assert!(text.starts_with("secrets-init: 200 placeholders could not be resolved\nVAR_0: awssm:prod/app#KEY_0: ResourceNotFoundException"));
        assert!(text.ends_with("\n..."));
        // missing file: nothing happens (no file created either)
        let missing = dir.path().join("nope/termination-log");
        write_termination_log(&missing, "x");
        assert!(!missing.exists());
    }
}
