//! The one log line per admission ("admission answered"), written without `tracing`'s
//! formatter.
//!
//! It is the audit trail, so it stays on at the default level; through `tracing` and the JSON
//! formatter it cost ~23 µs of the ~130 µs of CPU an admission took (BENCHMARKS.md,
//! findings): the formatter re-renders the span's fields and allocates for every value. Here
//! the same JSON object — same keys, same order, same values as the JSON formatter writes —
//! is written into a reused per-thread buffer, and a writer thread copies finished lines to
//! stderr, so a slow or blocked stderr never holds an admission. The queue between them is
//! bounded; a line that does not fit is dropped and counted
//! (`secrets_init_webhook_log_lines_dropped_total`).
//!
//! With `--log-format text` the line goes through `tracing` as before (people read it; its
//! cost does not matter there).

use std::cell::RefCell;
use std::io::Write as _;
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::IntCounter;

use crate::outcome::Outcome;

/// The `target` the line has always had (the module of the layer that writes it).
pub const TARGET: &str = "secrets_init_webhook::layers::tracing";
/// Lines waiting for the writer thread. At ~400 bytes a line, 1 MiB.
const QUEUE: usize = 2048;

/// What the handler learned about the request, for the line and the span. Every value is
/// bounded (the handler cuts names to 253 bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFacts {
    pub uid: String,
    /// The rest is unknown when the deadline passed before the review was decoded.
    pub kind: Option<String>,
    pub operation: Option<&'static str>,
    pub dry_run: Option<bool>,
    pub namespace: Option<String>,
    pub pod: Option<String>,
}

impl RequestFacts {
    /// Records the facts on the `admission` span, in one call (the JSON formatter re-renders
    /// a span's fields on every record).
    pub fn record(&self, span: &tracing::Span) {
        tracing::record_all!(
            span,
            uid = self.uid.as_str(),
            kind = self.kind.as_deref(),
            operation = self.operation,
            dry_run = self.dry_run,
            namespace = self.namespace.as_deref(),
            pod = self.pod.as_deref(),
        );
    }
}

/// Where finished lines go.
#[derive(Debug)]
pub struct AuditLog {
    queue: SyncSender<Vec<u8>>,
}

static LOG: OnceLock<AuditLog> = OnceLock::new();

/// Lines dropped because the writer fell behind; registered in every [`crate::metrics::Metrics`].
pub fn dropped_lines() -> &'static IntCounter {
    static DROPPED: OnceLock<IntCounter> = OnceLock::new();
    DROPPED.get_or_init(|| {
        IntCounter::new(
            "secrets_init_webhook_log_lines_dropped_total",
            "Per-admission log lines dropped because stderr could not take them as fast as they \
             came (the writer's queue was full); the admissions themselves were answered.",
        )
        .unwrap_or_else(|e| panic!("a valid metric definition: {e}"))
    })
}

/// True once [`start`] was called: the line is written here, and the `admission` span is only
/// needed where spans are exported.
pub fn started() -> bool {
    LOG.get().is_some()
}

/// Starts the writer thread (once) with `out` as the destination; from then on
/// [`answered`] writes JSON lines. Not called: the line goes through `tracing`.
pub fn start(out: impl std::io::Write + Send + 'static) -> std::io::Result<()> {
    if LOG.get().is_some() {
        return Ok(());
    }
    let (tx, rx) = sync_channel(QUEUE);
    std::thread::Builder::new()
        .name("audit-log".to_owned())
        .spawn(move || write_lines(rx, out))?;
    let _ = LOG.set(AuditLog { queue: tx });
    Ok(())
}

/// How long the writer sleeps between batches while lines keep coming.
const BATCH_EVERY: std::time::Duration = std::time::Duration::from_millis(5);

/// Waits for a line (asleep, no cost while idle); then, while lines keep coming, takes them
/// in batches every [`BATCH_EVERY`] instead of being woken for each: a wake-up is a system
/// call on the admission's thread, which in the in-process benchmark cost more than the
/// formatting saved.
fn write_lines(rx: Receiver<Vec<u8>>, out: impl std::io::Write) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    while let Ok(line) = rx.recv() {
        let _ = out.write_all(&line);
        loop {
            let mut took = false;
            while let Ok(more) = rx.try_recv() {
                let _ = out.write_all(&more);
                took = true;
            }
            let _ = out.flush();
            if !took {
                break;
            }
            std::thread::sleep(BATCH_EVERY);
        }
    }
}

/// Logs one answered admission: as a JSON line when [`start`] was called and INFO is
/// enabled for [`TARGET`], else through `tracing` (text format, or no writer).
pub fn answered(facts: Option<&RequestFacts>, outcome: Outcome, status: u16) {
    if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        return;
    }
    let result = outcome.as_str();
    let Some(log) = LOG.get() else {
        tracing::info!(target: TARGET, result, status, "admission answered");
        return;
    };
    BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        buf.clear();
        write_line(&mut buf, facts, outcome, status, SystemTime::now());
        match log.queue.try_send(buf.clone()) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => dropped_lines().inc(),
        }
    });
}

thread_local! {
    static BUF: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
}

/// The line, exactly as json-subscriber writes an event inside the `admission` span: keys in
/// alphabetical order at each level, fields the span never recorded left out.
pub fn write_line(
    out: &mut Vec<u8>,
    facts: Option<&RequestFacts>,
    outcome: Outcome,
    status: u16,
    now: SystemTime,
) {
    let result = outcome.as_str();
    let mut status_text = itoa::Buffer::new();
    let status_text = status_text.format(status);
    out.extend_from_slice(br#"{"fields":{"message":"admission answered","result":""#);
    out.extend_from_slice(result.as_bytes());
    out.extend_from_slice(br#"","status":"#);
    out.extend_from_slice(status_text.as_bytes());
    out.extend_from_slice(br#"},"level":"INFO","span":{"#);
    if let Some(dry_run) = facts.and_then(|f| f.dry_run) {
        out.extend_from_slice(if dry_run {
            br#""dry_run":true,"#
        } else {
            br#""dry_run":false,"#
        });
    }
    out.extend_from_slice(br#""http.status":"#);
    out.extend_from_slice(status_text.as_bytes());
    if let Some(kind) = facts.and_then(|f| f.kind.as_deref()) {
        out.extend_from_slice(br#","kind":"#);
        string(out, kind);
    }
    if let Some(mode) = outcome.mode() {
        out.extend_from_slice(br#","mode":""#);
        out.extend_from_slice(mode.as_str().as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(br#","name":"admission""#);
    if let Some(ns) = facts.and_then(|f| f.namespace.as_deref()) {
        out.extend_from_slice(br#","namespace":"#);
        string(out, ns);
    }
    if let Some(operation) = facts.and_then(|f| f.operation) {
        out.extend_from_slice(br#","operation":""#);
        out.extend_from_slice(operation.as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(br#","otel.kind":"server","otel.name":"admission""#);
    if let Some(pod) = facts.and_then(|f| f.pod.as_deref()) {
        out.extend_from_slice(br#","pod":"#);
        string(out, pod);
    }
    out.extend_from_slice(br#","result":""#);
    out.extend_from_slice(result.as_bytes());
    out.push(b'"');
    if let Some(f) = facts {
        out.extend_from_slice(br#","uid":"#);
        string(out, &f.uid);
    }
    out.extend_from_slice(br#"},"target":""#);
    out.extend_from_slice(TARGET.as_bytes());
    out.extend_from_slice(br#"","timestamp":""#);
    timestamp(out, now);
    out.extend_from_slice(b"\"}\n");
}

/// A JSON string, escaped as serde_json escapes it.
fn string(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// RFC 3339 in UTC with microseconds, as tracing-subscriber's JSON timestamps
/// (`2026-12-02T02:51:45.714187Z`).
fn timestamp(out: &mut Vec<u8>, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let micros = since.subsec_micros();
    let fields: [(u64, usize, u8); 7] = [
        (y, 4, b'-'),
        (m, 2, b'-'),
        (d, 2, b'T'),
        (hh, 2, b':'),
        (mm, 2, b':'),
        (ss, 2, b'.'),
        (u64::from(micros), 6, b'Z'),
    ];
    for (n, width, then) in fields {
        let mut b = itoa::Buffer::new();
        let s = b.format(n);
        for _ in s.len()..width {
            out.push(b'0');
        }
        out.extend_from_slice(s.as_bytes());
        out.push(then);
    }
}

/// Year, month, day of the proleptic Gregorian calendar for days since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A stderr that takes nothing (a stuck pipe, a stopped log collector) costs lines, never
    /// an admission: `answered` returns at once and counts what it dropped.
    #[test]
    fn a_stuck_stderr_drops_lines_and_never_holds_an_admission() {
        struct Stuck;
        impl std::io::Write for Stuck {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                loop {
                    std::thread::park();
                }
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        start(Stuck).expect("writer thread");
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(std::io::sink)
            .finish();
        let before = dropped_lines().get();
        let lines = QUEUE as u64 + 1000;
        let done = std::thread::spawn(move || {
            tracing::subscriber::with_default(subscriber, || {
                for _ in 0..lines {
                    answered(None, Outcome::Skipped, 200);
                }
            })
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !done.is_finished() {
            assert!(std::time::Instant::now() < deadline, "answered() blocked");
            std::thread::yield_now();
        }
        // The queue holds QUEUE lines and the writer's 64 KiB buffer a few hundred more
        // before its first write gets stuck; every line past those is dropped.
        let dropped = dropped_lines().get() - before;
        assert!((500..=1000).contains(&dropped), "{dropped} dropped");
    }

    #[test]
    fn calendar() {
        let at = |s: u64| {
            let mut v = Vec::new();
            timestamp(&mut v, UNIX_EPOCH + Duration::from_micros(s));
            String::from_utf8(v).expect("ascii")
        };
        assert_eq!(at(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400_000_001), "2000-02-29T00:00:00.000001Z");
        assert_eq!(at(1_796_093_505_714_187), "2026-12-01T02:51:45.714187Z");
        assert_eq!(at(4_107_542_399_999_999), "2100-02-28T23:59:59.999999Z");
    }

    /// The line is what json-subscriber writes for `info!(result, status, "admission
    /// answered")` inside the `admission` span with the same fields recorded: same keys,
    /// same values, same order.
    #[test]
    fn same_line_as_the_json_formatter() {
        use tracing_subscriber::layer::SubscriberExt;

        #[derive(Clone, Default)]
        struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Capture {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("lock").extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let cases = [
            (
                Some(RequestFacts {
                    uid: "u-1".into(),
                    kind: Some("Pod".into()),
                    operation: Some("CREATE"),
                    dry_run: Some(false),
                    namespace: Some("team \"a\"".into()),
                    pod: Some("web-*".into()),
                }),
                Outcome::Mutated(mutation_modes::ModeKind::ImageSwap),
                200,
            ),
            (
                Some(RequestFacts {
                    uid: "u-2".into(),
                    kind: Some("ConfigMap".into()),
                    operation: Some("UPDATE"),
                    dry_run: Some(true),
                    namespace: None,
                    pod: None,
                }),
                Outcome::Skipped,
                200,
            ),
            (
                Some(RequestFacts {
                    uid: "u-3".into(),
                    ..RequestFacts::default()
                }),
                Outcome::Error,
                200,
            ),
            (None, Outcome::Error, 413),
        ];
        for (facts, outcome, status) in cases {
            let capture = Capture::default();
            let writer = capture.clone();
            let subscriber = tracing_subscriber::registry().with(
                json_subscriber::fmt::layer()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(move || writer.clone()),
            );
            tracing::subscriber::with_default(subscriber, || {
                let span = tracing::info_span!(
                    "admission",
                    otel.name = "admission",
                    otel.kind = "server",
                    uid = tracing::field::Empty,
                    namespace = tracing::field::Empty,
                    pod = tracing::field::Empty,
                    kind = tracing::field::Empty,
                    operation = tracing::field::Empty,
                    dry_run = tracing::field::Empty,
                    mode = tracing::field::Empty,
                    result = tracing::field::Empty,
                    http.status = tracing::field::Empty,
                );
                if let Some(f) = &facts {
                    f.record(&span);
                }
                let result = outcome.as_str();
                tracing::record_all!(
                    span,
                    http.status = status,
                    mode = outcome.mode().map(|m| m.as_str()),
                    result = result
                );
                span.in_scope(
                    || tracing::info!(target: TARGET, result, status, "admission answered"),
                );
            });
            let theirs = String::from_utf8(capture.0.lock().expect("lock").clone()).expect("utf8");
            let mut ours = Vec::new();
            write_line(
                &mut ours,
                facts.as_ref(),
                outcome,
                status,
                SystemTime::now(),
            );
            let ours = String::from_utf8(ours).expect("utf8");
            // Everything but the timestamp, byte for byte.
            let cut = |s: &str| s[..s.find("\"timestamp\"").expect("timestamp")].to_owned();
            assert_eq!(cut(&ours), cut(&theirs), "{outcome:?}");
            let parsed: serde_json::Value = serde_json::from_str(&ours).expect("a JSON line");
            assert!(
                parsed["timestamp"]
                    .as_str()
                    .is_some_and(|t| t.ends_with('Z'))
            );
        }
    }
}
