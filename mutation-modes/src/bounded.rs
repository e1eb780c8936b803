//! Text for people, bounded in size whatever the pod holds.
//!
//! Denial messages and warnings echo names and values from the pod, and the API server
//! shows them to a person (and the webhook logs them). The pod is not validated yet when the
//! webhook sees it, so a name can be a megabyte long and a list can hold a hundred thousand
//! names: every echo goes through these helpers, which keep the start of each value and say
//! how much was left out.

use std::fmt::Write as _;

/// Bytes of one echoed value (a name, an annotation value, an image reference) kept in a
/// message. Names Kubernetes accepts are at most 63 (containers) or 253 (images, hosts)
/// bytes, so real values are rarely cut.
pub const VALUE_BYTES: usize = 256;
/// Items of an echoed list kept in a message.
pub const LIST_ITEMS: usize = 5;
/// Bytes of a whole denial message (the final guard; the helpers above keep messages far
/// below it).
pub const MESSAGE_BYTES: usize = 4096;
/// Bytes of one AdmissionResponse warning. The API documents warnings "over 256 characters
/// [...] may be truncated" (`AdmissionResponse.warnings`).
pub const WARNING_BYTES: usize = 256;
/// Warnings in one AdmissionResponse; the last says how many more there were.
pub const WARNINGS: usize = 8;

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `s` cut to at most `max` bytes, `…` marking a cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let ellipsis = "…";
    let mut out = prefix(s, max.saturating_sub(ellipsis.len())).to_owned();
    out.push_str(ellipsis);
    out
}

/// `s` quoted as Rust's `{:?}` does; when longer than [`VALUE_BYTES`], its start, then
/// `…"` and the full length: `"aaaa…" (1048576 bytes)`.
pub fn quoted(s: &str) -> String {
    if s.len() <= VALUE_BYTES {
        return format!("{s:?}");
    }
    format!(
        "\"{}…\" ({} bytes)",
        prefix(s, VALUE_BYTES).escape_debug(),
        s.len()
    )
}

/// The first [`LIST_ITEMS`] items, joined by `, `, then `and N more` when there were more.
/// Reads `items` to the end only to count them.
pub fn list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let mut out = String::new();
    let mut more = 0usize;
    for (i, item) in items.into_iter().enumerate() {
        if i < LIST_ITEMS {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{item}");
        } else {
            more += 1;
        }
    }
    if more > 0 {
        let _ = write!(out, " and {more} more");
    }
    out
}

/// [`list`] of the items [`quoted`]: `"a", "b", "c", "d", "e" and 12 more`.
pub fn quoted_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    // Only the items shown are quoted; the rest are counted.
    struct Lazy<'a>(&'a str);
    impl std::fmt::Display for Lazy<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&quoted(self.0))
        }
    }
    list(items.into_iter().map(Lazy))
}

/// A denial message cut to [`MESSAGE_BYTES`].
pub fn message(m: String) -> String {
    if m.len() <= MESSAGE_BYTES {
        m
    } else {
        clip(&m, MESSAGE_BYTES)
    }
}

/// Warnings as the API server should receive them: each cut to [`WARNING_BYTES`], at most
/// [`WARNINGS`], the last of which says how many were left out.
pub fn warnings(mut w: Vec<String>) -> Vec<String> {
    if w.len() > WARNINGS {
        let left_out = w.len() - (WARNINGS - 1);
        w.truncate(WARNINGS - 1);
        w.push(format!(
            "secrets-init: {left_out} more warnings were left out"
        ));
    }
    for item in &mut w {
        if item.len() > WARNING_BYTES {
            *item = clip(item, WARNING_BYTES);
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_quoted_as_debug() {
        for s in ["", "app", "a\"b", "tab\there", "ünïcode"] {
            assert_eq!(quoted(s), format!("{s:?}"));
        }
    }

    #[test]
    fn long_values_keep_their_start_and_length() {
        let s = "é".repeat(VALUE_BYTES); // 2 bytes each: the cut must land on a boundary
        let q = quoted(&s);
        assert!(q.starts_with("\"éé"), "{q}");
        assert!(q.ends_with(&format!("…\" ({} bytes)", s.len())), "{q}");
        assert!(q.len() < VALUE_BYTES + 32, "{}", q.len());
    }

    #[test]
    fn lists_show_a_few_and_count_the_rest() {
        assert_eq!(quoted_list([]), "");
        assert_eq!(quoted_list(["a"]), "\"a\"");
        assert_eq!(
            quoted_list(["a", "b", "c", "d", "e"]),
            "\"a\", \"b\", \"c\", \"d\", \"e\""
        );
        let many: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
        assert_eq!(
            quoted_list(many.iter().map(String::as_str)),
            "\"0\", \"1\", \"2\", \"3\", \"4\" and 995 more"
        );
    }

    #[test]
    fn clip_marks_the_cut_and_respects_the_limit() {
        assert_eq!(clip("abc", 3), "abc");
        let c = clip(&"x".repeat(100), 10);
        assert_eq!(c, format!("{}…", "x".repeat(7)));
        assert!(c.len() <= 10);
        let c = clip(&"€".repeat(100), 10); // 3 bytes each
        assert!(c.len() <= 10 && c.ends_with('…'), "{c}");
    }

    #[test]
    fn warnings_are_few_and_short() {
        let w = warnings(
            (0..20)
                .map(|i| format!("w{i} {}", "x".repeat(i * 40)))
                .collect(),
        );
        assert_eq!(w.len(), WARNINGS);
        assert!(w.iter().all(|w| w.len() <= WARNING_BYTES));
        assert_eq!(w[0], "w0 ");
        assert_eq!(
            w[WARNINGS - 1],
            "secrets-init: 13 more warnings were left out"
        );
        assert_eq!(warnings(vec!["one".into()]), ["one"]);
    }

    #[test]
    fn messages_are_capped() {
        assert_eq!(message("short".into()), "short");
        assert!(message("m".repeat(1 << 20)).len() <= MESSAGE_BYTES);
    }
}
