//! What became of one admission request. The handler puts it into the response's
//! extensions; the metrics layer counts it (`result` label), the tracing layer records it
//! (`result`, `mode`). An answer without one (400, 401, 413, 503) is an [`Outcome::Error`].

use mutation_modes::ModeKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The pod was patched, in this mode.
    Mutated(ModeKind),
    /// Allowed unchanged (not annotated, not a pod, already injected, nothing to mutate).
    Skipped,
    /// Denied because of the pod (bad annotation, unknown container, image not found...).
    Denied,
    /// The webhook itself failed: malformed review, timeout, internal error, refusal.
    Error,
}

impl Outcome {
    /// Every `result` label value, so the metric can show zeros from the start.
    pub const LABELS: [&'static str; 4] = ["mutated", "skipped", "denied", "error"];

    /// The `result` label of `secrets_init_webhook_admission_requests_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mutated(_) => "mutated",
            Self::Skipped => "skipped",
            Self::Denied => "denied",
            Self::Error => "error",
        }
    }

    pub fn mode(self) -> Option<ModeKind> {
        match self {
            Self::Mutated(mode) => Some(mode),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_cover_every_outcome() {
        let all = [
            Outcome::Mutated(ModeKind::ImageSwap),
            Outcome::Skipped,
            Outcome::Denied,
            Outcome::Error,
        ];
        assert_eq!(all.map(Outcome::as_str), Outcome::LABELS);
        assert_eq!(all[0].mode(), Some(ModeKind::ImageSwap));
        assert_eq!(all[1].mode(), None);
    }
}
