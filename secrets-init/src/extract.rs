//! Picking a value out of a secret's text (contract §2, "Extracted JSON values"). Pure.
//!
//! Numbers keep the text they were written with (`1.50` stays `1.50`) and objects keep
//! their key order, so extraction works on the raw JSON text rather than on a parsed
//! `serde_json::Value`.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

use placeholder::Key;

use crate::problem::Code;

/// Why a key could not be taken from a secret. Messages never contain secret values;
/// they may name keys, which are not secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    #[error(
        "the secret is not a JSON object, so key `{key}` cannot be read from it (use no #key for the whole secret)"
    )]
    NotAnObject { key: String },
    #[error("key `{key}` is not in the secret{}", hint(.available))]
    KeyMissing { key: String, available: Vec<String> },
    #[error("JSON pointer `{pointer}` does not match the secret: {reason}")]
    PointerMissing { pointer: String, reason: String },
    #[error("JSON pointer `{pointer}` is not valid: {reason}")]
    BadPointer { pointer: String, reason: String },
}

impl ExtractError {
    /// A key or pointer that does not exist is a missing value (`--ignore-missing` covers it);
    /// a malformed pointer is a mistake in the manifest.
    pub fn code(&self) -> Code {
        match self {
            ExtractError::NotAnObject { .. } => Code::SecretNotJsonObject,
            ExtractError::KeyMissing { .. } => Code::KeyNotFound,
            ExtractError::PointerMissing { .. } => Code::PointerNotFound,
            ExtractError::BadPointer { .. } => Code::MalformedPointer,
        }
    }
}

fn hint(available: &[String]) -> String {
    if available.is_empty() {
        return String::new();
    }
    const SHOWN: usize = 20;
    let mut list = available
        .iter()
        .take(SHOWN)
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if available.len() > SHOWN {
        list.push_str(&format!(" and {} more", available.len() - SHOWN));
    }
    format!(" (its keys: {list})")
}

/// Extracts the value `key` selects from the secret text.
pub fn extract(secret: &str, key: &Key) -> Result<String, ExtractError> {
    match key {
        Key::Whole => Ok(secret.to_owned()),
        Key::Field(name) => {
            let map =
                as_object(secret).ok_or_else(|| ExtractError::NotAnObject { key: name.clone() })?;
            match map.get(name.as_str()) {
                Some(raw) => Ok(render(raw)),
                None => Err(ExtractError::KeyMissing {
                    key: name.clone(),
                    available: map.keys().cloned().collect(),
                }),
            }
        }
        Key::Pointer(pointer) => {
            let root: &RawValue =
                serde_json::from_str(secret).map_err(|_| ExtractError::PointerMissing {
                    pointer: pointer.clone(),
                    reason: "the secret is not JSON".into(),
                })?;
            let mut current = root;
            let mut walked = String::new();
            for token in pointer_tokens(pointer)? {
                current = step(current, &token).ok_or_else(|| ExtractError::PointerMissing {
                    pointer: pointer.clone(),
                    reason: format!("nothing at `{token}` under `{}`", display_path(&walked)),
                })?;
                walked.push('/');
                walked.push_str(&token.replace('~', "~0").replace('/', "~1"));
            }
            Ok(render(current))
        }
    }
}

/// Every top-level key of a JSON-object document with its value as [`extract`] gives it
/// (`--env-from`), in key order; `None` when the text is not a JSON object. A key written
/// twice keeps its last value, as in `#key` extraction.
pub fn object_entries(text: &str) -> Option<Vec<(String, String)>> {
    let map = as_object(text)?;
    Some(map.into_iter().map(|(k, raw)| (k, render(raw))).collect())
}

fn display_path(walked: &str) -> &str {
    if walked.is_empty() {
        "the root"
    } else {
        walked
    }
}

fn as_object(text: &str) -> Option<BTreeMap<String, &RawValue>> {
    serde_json::from_str::<BTreeMap<String, &RawValue>>(text).ok()
}

/// Splits an RFC 6901 pointer into unescaped reference tokens.
fn pointer_tokens(pointer: &str) -> Result<Vec<String>, ExtractError> {
    let bad = |reason: &str| ExtractError::BadPointer {
        pointer: pointer.to_owned(),
        reason: reason.to_owned(),
    };
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(bad("it must start with `/`"));
    };
    rest.split('/')
        .map(|token| {
            let mut out = String::with_capacity(token.len());
            let mut chars = token.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    out.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => out.push('~'),
                    Some('1') => out.push('/'),
                    _ => return Err(bad("`~` must be followed by `0` or `1`")),
                }
            }
            Ok(out)
        })
        .collect()
}

fn step<'a>(value: &'a RawValue, token: &str) -> Option<&'a RawValue> {
    let text = value.get().trim_start();
    if text.starts_with('{') {
        let map: BTreeMap<String, &RawValue> = serde_json::from_str(value.get()).ok()?;
        map.get(token).copied()
    } else if text.starts_with('[') {
        // RFC 6901 array index: "0" or digits without a leading zero (no sign: `usize`'s
        // parser would take "+1").
        if token.is_empty()
            || !token.bytes().all(|b| b.is_ascii_digit())
            || (token.len() > 1 && token.starts_with('0'))
        {
            return None;
        }
        let index: usize = token.parse().ok()?;
        let items: Vec<&RawValue> = serde_json::from_str(value.get()).ok()?;
        items.get(index).copied()
    } else {
        None
    }
}

/// The text an extracted JSON value becomes.
fn render(raw: &RawValue) -> String {
    let text = raw.get().trim();
    match text.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<String>(text).unwrap_or_default(),
        Some(b'{') | Some(b'[') => compact(text),
        _ if text == "null" => String::new(),
        _ => text.to_owned(),
    }
}

/// Removes insignificant whitespace from valid JSON text, keeping everything else
/// (key order, number spelling, string escapes) exactly as written.
fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{
        "DATABASE_URL": "postgres://u:p@h/db",
        "price": 1.50,
        "big": 12345678901234567890123,
        "exp": 1e3,
        "on": true,
        "off": false,
        "nothing": null,
        "quoted": "say \"hi\"\n",
        "nested": { "z": 1, "a": [1, 2.0, {"k": "v w"}], "s": "a b" },
        "list": [ "x" , "y" ],
        "a/b": "slash",
        "t~n": "tilde",
        "": "empty key"
    }"#;

    fn field(k: &str) -> Key {
        Key::Field(k.into())
    }
    fn pointer(p: &str) -> Key {
        Key::Pointer(p.into())
    }

    #[test]
    fn extraction_table() {
        let cases: Vec<(&str, Key, &str)> = vec![
            ("plain text", Key::Whole, "plain text"),
            (DOC, field("DATABASE_URL"), "postgres://u:p@h/db"),
            (DOC, field("price"), "1.50"),
            (DOC, field("big"), "12345678901234567890123"),
            (DOC, field("exp"), "1e3"),
            (DOC, field("on"), "true"),
            (DOC, field("off"), "false"),
            (DOC, field("nothing"), ""),
            (DOC, field("quoted"), "say \"hi\"\n"),
            (
                DOC,
                field("nested"),
                r#"{"z":1,"a":[1,2.0,{"k":"v w"}],"s":"a b"}"#,
            ),
            (DOC, field("list"), r#"["x","y"]"#),
            (DOC, field("a/b"), "slash"),
            (DOC, pointer("/nested/z"), "1"),
            (DOC, pointer("/nested/a/1"), "2.0"),
            (DOC, pointer("/nested/a/2/k"), "v w"),
            (DOC, pointer("/nested/a/2"), r#"{"k":"v w"}"#),
            (DOC, pointer("/a~1b"), "slash"),
            (DOC, pointer("/t~0n"), "tilde"),
            (DOC, pointer("/"), "empty key"),
            (DOC, pointer("/list/0"), "x"),
            (r#"[10, 20]"#, pointer("/1"), "20"),
        ];
        for (secret, key, want) in cases {
            assert_eq!(extract(secret, &key).unwrap(), want, "{key:?}");
        }
    }

    #[test]
    fn whole_secret_is_returned_verbatim_even_when_json() {
        assert_eq!(extract(DOC, &Key::Whole).unwrap(), DOC);
    }

    #[test]
    fn errors_table() {
        let cases: Vec<(&str, Key, &str, bool)> = vec![
            ("not json", field("k"), "not a JSON object", true),
            ("[1,2]", field("k"), "not a JSON object", true),
            ("\"str\"", field("k"), "not a JSON object", true),
            (
                r#"{"a":1,"b":2}"#,
                field("c"),
                "key `c` is not in the secret (its keys: `a`, `b`)",
                true,
            ),
            (
                DOC,
                pointer("/nested/nope"),
                "nothing at `nope` under `/nested`",
                true,
            ),
            (
                DOC,
                pointer("/list/2"),
                "nothing at `2` under `/list`",
                true,
            ),
            (DOC, pointer("/list/01"), "nothing at `01`", true),
            (DOC, pointer("/list/+1"), "nothing at `+1`", true),
            (
                DOC,
                pointer("/price/x"),
                "nothing at `x` under `/price`",
                true,
            ),
            ("plain", pointer("/a"), "the secret is not JSON", true),
            (
                DOC,
                pointer("/bad~2"),
                "`~` must be followed by `0` or `1`",
                false,
            ),
        ];
        for (secret, key, want, missing) in cases {
            let err = extract(secret, &key).expect_err(&format!("{key:?}"));
            assert!(err.to_string().contains(want), "{key:?}: {err}");
            assert_eq!(err.code().is_missing(), missing, "{key:?}");
        }
    }

    #[test]
    fn errors_never_contain_values() {
        let secret = r#"{"user":"alice-s3cret","pass":"hunter2-s3cret"}"#;
        for key in [
            field("nope"),
            pointer("/user/x"),
            pointer("/nope"),
            pointer("/~9"),
        ] {
            let err = extract(secret, &key).unwrap_err().to_string();
            assert!(!err.contains("s3cret"), "{err}");
        }
        let err = extract("top-s3cret", &field("k")).unwrap_err().to_string();
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn long_key_lists_are_cut() {
        let secret = format!(
            "{{{}}}",
            (0..30)
                .map(|i| format!("\"k{i:02}\":1"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let err = extract(&secret, &field("x")).unwrap_err().to_string();
        assert!(err.ends_with("and 10 more)"), "{err}");
    }

    #[test]
    fn object_entries_use_the_extraction_rules() {
        let entries =
            object_entries(r#"{"b":1.50,"a":"x","n":null,"o":{ "z" : [1, 2] },"a":"y"}"#).unwrap();
        assert_eq!(
            entries,
            [
                ("a".to_owned(), "y".to_owned()),
                ("b".to_owned(), "1.50".to_owned()),
                ("n".to_owned(), String::new()),
                ("o".to_owned(), r#"{"z":[1,2]}"#.to_owned()),
            ]
        );
        for not_object in ["[1]", "\"s\"", "text", "", "{"] {
            assert_eq!(object_entries(not_object), None, "{not_object}");
        }
        assert_eq!(object_entries("{}"), Some(Vec::new()));
    }

    #[test]
    fn compact_keeps_strings() {
        assert_eq!(
            compact(r#"{ "a b" : "c\" d" , "e":[ 1 ,2 ] }"#),
            r#"{"a b":"c\" d","e":[1,2]}"#
        );
        assert_eq!(compact(r#"["\\", " x "]"#), r#"["\\"," x "]"#);
    }
}
