//! The placeholder grammar (contract §2). Pure: no I/O, no AWS types.
//!
//! Whole value: `awssm:<secret-id>[#<key>[#<version>]]`.
//! Embedded:    `${awssm:<secret-id>[#<key>[#<version>]]}` anywhere, any number of times;
//!              `$${` is an escape for a literal `${`.
//! Legacy:      `awssm://<secret-id>…` is read as `awssm:<secret-id>…`.

use std::fmt;

use crate::Error;

const PREFIX: &str = "awssm:";
const LEGACY_PREFIX: &str = "awssm://";
const EMBED_OPEN: &str = "${awssm:";
const ESCAPE: &str = "$${";

/// Which version of a secret a reference asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// `AWSCURRENT`, or no version given.
    Current,
    /// `AWSPREVIOUS` or `AWSPENDING`.
    Stage(String),
    /// Any other value: a version id.
    Id(String),
}

impl Version {
    fn parse(text: &str) -> Self {
        match text {
            "" | "AWSCURRENT" => Version::Current,
            "AWSPREVIOUS" | "AWSPENDING" => Version::Stage(text.to_owned()),
            other => Version::Id(other.to_owned()),
        }
    }
}

/// How to pick a value out of the secret text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// The whole SecretString.
    Whole,
    /// A top-level key of a JSON-object secret.
    Field(String),
    /// An RFC 6901 JSON Pointer (starts with `/`).
    Pointer(String),
}

/// What has to be fetched from Secrets Manager: each distinct one is fetched once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FetchKey {
    pub secret_id: String,
    pub version: Version,
}

impl FetchKey {
    /// The region named by an ARN secret id (`arn:<partition>:secretsmanager:<region>:…`).
    pub fn arn_region(&self) -> Option<&str> {
        let mut parts = self.secret_id.splitn(6, ':');
        let (arn, _partition, service, region) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        (arn == "arn" && service == "secretsmanager" && !region.is_empty()).then_some(region)
    }
}

impl fmt::Display for FetchKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.secret_id)?;
        match &self.version {
            Version::Current => Ok(()),
            Version::Stage(s) => write!(f, " (stage {s})"),
            Version::Id(id) => write!(f, " (version {id})"),
        }
    }
}

/// One parsed reference to a value in a secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretRef {
    pub fetch: FetchKey,
    pub key: Key,
}

impl fmt::Display for SecretRef {
    /// The canonical `awssm:` spelling (never contains a value). It parses back to the same
    /// reference: an id that itself starts with `//` is written after the legacy `awssm://`,
    /// which the parser strips (found by fuzzing).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = if self.fetch.secret_id.starts_with("//") {
            LEGACY_PREFIX
        } else {
            PREFIX
        };
        write!(f, "{prefix}{}", self.fetch.secret_id)?;
        let key = match &self.key {
            Key::Whole => "",
            Key::Field(k) | Key::Pointer(k) => k.as_str(),
        };
        let version = match &self.fetch.version {
            Version::Current => None,
            Version::Stage(s) | Version::Id(s) => Some(s.as_str()),
        };
        match version {
            Some(v) => write!(f, "#{key}#{v}"),
            None if !key.is_empty() => write!(f, "#{key}"),
            None => Ok(()),
        }
    }
}

/// A piece of an env value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Literal(String),
    Ref(SecretRef),
}

/// A parsed env value that needs resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub parts: Vec<Part>,
}

impl Template {
    pub fn refs(&self) -> impl Iterator<Item = &SecretRef> {
        self.parts.iter().filter_map(|p| match p {
            Part::Ref(r) => Some(r),
            Part::Literal(_) => None,
        })
    }

    /// Renders the value; `values[i]` is the value of the i-th reference of [`Self::refs`].
    /// The result is allocated once at its final size, so no partial copy of a value is left
    /// behind in memory released by a reallocation.
    pub fn render(&self, values: &[String]) -> String {
        let mut sizes = values.iter();
        let size = self
            .parts
            .iter()
            .map(|part| match part {
                Part::Literal(s) => s.len(),
                Part::Ref(_) => sizes.next().map_or(0, String::len),
            })
            .sum();
        let mut out = String::with_capacity(size);
        let mut values = values.iter();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Ref(_) => out.push_str(values.next().map(String::as_str).unwrap_or_default()),
            }
        }
        out
    }
}

/// True when a value is one secrets-init must touch: it starts with `awssm:` or contains
/// `${awssm:` (the legacy `awssm://` spelling included).
pub fn is_placeholder(value: &str) -> bool {
    value.starts_with(PREFIX) || value.contains(EMBED_OPEN)
}

/// Parses an env value. `Ok(None)`: not a placeholder, leave it alone.
/// Errors name what is wrong; the caller adds the variable name.
pub fn parse_value(value: &str) -> Result<Option<Template>, Error> {
    if let Some(rest) = value.strip_prefix(PREFIX) {
        let reference = parse_reference(rest, value)?;
        return Ok(Some(Template {
            parts: vec![Part::Ref(reference)],
        }));
    }
    if !value.contains(EMBED_OPEN) {
        return Ok(None);
    }
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = value;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix(ESCAPE) {
            literal.push_str("${");
            rest = after;
        } else if let Some(after) = rest.strip_prefix(EMBED_OPEN) {
            let Some(end) = after.find('}') else {
                return Err(Error::Malformed(format!(
                    "unclosed `${{awssm:` at byte {}: add the closing `}}` (write `$${{` for a literal `${{`)",
                    value.len() - rest.len()
                )));
            };
            let reference = parse_reference(&after[..end], &rest[..EMBED_OPEN.len() + end + 1])?;
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(Part::Ref(reference));
            rest = &after[end + 1..];
        } else {
            let mut chars = rest.chars();
            if let Some(c) = chars.next() {
                literal.push(c);
            }
            rest = chars.as_str();
        }
    }
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    Ok(Some(Template { parts }))
}

/// Parses `<secret-id>[#<key>[#<version>]]` (the text after `awssm:`). `shown` is the
/// placeholder as written, for error messages (placeholders are not secret).
fn parse_reference(text: &str, shown: &str) -> Result<SecretRef, Error> {
    let text = text.strip_prefix("//").unwrap_or(text);
    let mut fields = text.split('#');
    let secret_id = fields.next().unwrap_or_default();
    let key = fields.next().unwrap_or_default();
    let version = fields.next();
    if fields.next().is_some() {
        return Err(Error::Malformed(format!(
            "`{shown}` has more than two `#`: the form is awssm:<secret-id>[#<key>[#<version>]]"
        )));
    }
    if secret_id.is_empty() {
        return Err(Error::Malformed(format!(
            "`{shown}` has an empty secret id: the form is awssm:<secret-id>[#<key>[#<version>]]"
        )));
    }
    if let Some(c) = secret_id
        .chars()
        .find(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::Malformed(format!(
            "`{}` has a secret id containing {:?}; secret names have no spaces or control characters (a trailing newline from a YAML block scalar is a common cause)",
            shown.escape_debug(),
            c
        )));
    }
    if let Some(c) = version.and_then(|v| v.chars().find(|c| c.is_whitespace() || c.is_control())) {
        return Err(Error::Malformed(format!(
            "`{}` has a version containing {:?}",
            shown.escape_debug(),
            c
        )));
    }
    let key = if key.is_empty() {
        Key::Whole
    } else if key.starts_with('/') {
        Key::Pointer(key.to_owned())
    } else {
        Key::Field(key.to_owned())
    };
    Ok(SecretRef {
        fetch: FetchKey {
            secret_id: secret_id.to_owned(),
            version: Version::parse(version.unwrap_or_default()),
        },
        key,
    })
}

/// The legacy `awssm://` spelling, for the migration note in logs.
pub fn uses_legacy_form(value: &str) -> bool {
    value.starts_with(LEGACY_PREFIX) || value.contains("${awssm://")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(id: impl Into<String>, key: Key, version: Version) -> SecretRef {
        SecretRef {
            fetch: FetchKey {
                secret_id: id.into(),
                version,
            },
            key,
        }
    }
    fn field(k: impl Into<String>) -> Key {
        Key::Field(k.into())
    }
    fn whole(reference: SecretRef) -> Option<Template> {
        Some(Template {
            parts: vec![Part::Ref(reference)],
        })
    }
    fn lit(s: impl Into<String>) -> Part {
        Part::Literal(s.into())
    }

    const ARN: &str =
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/myapp/config-AbCdEf";

    #[test]
    fn whole_values() {
        use Version::*;
        let cases: Vec<(String, Option<Template>)> = vec![
            ("plain".to_string(), None),
            ("".to_string(), None),
            ("AWSSM:upper-is-not-a-placeholder".to_string(), None),
            (" awssm:leading-space".to_string(), None),
            ("prefix awssm:x".to_string(), None),
            (
                "awssm:prod/db".to_string(),
                whole(r("prod/db".to_string(), Key::Whole, Current)),
            ),
            (
                "awssm:prod/db#".to_string(),
                whole(r("prod/db".to_string(), Key::Whole, Current)),
            ),
            (
                "awssm:prod/db#USER".to_string(),
                whole(r("prod/db".to_string(), field("USER"), Current)),
            ),
            (
                "awssm:prod/db#USER#".to_string(),
                whole(r("prod/db".to_string(), field("USER"), Current)),
            ),
            (
                "awssm:prod/db#USER#AWSCURRENT".to_string(),
                whole(r("prod/db".to_string(), field("USER"), Current)),
            ),
            (
                "awssm:prod/db#USER#AWSPREVIOUS".to_string(),
                whole(r(
                    "prod/db".to_string(),
                    field("USER"),
                    Stage("AWSPREVIOUS".into()),
                )),
            ),
            (
                "awssm:prod/db#USER#AWSPENDING".to_string(),
                whole(r(
                    "prod/db".to_string(),
                    field("USER"),
                    Stage("AWSPENDING".into()),
                )),
            ),
            (
                "awssm:prod/db#USER#v-abc123".to_string(),
                whole(r(
                    "prod/db".to_string(),
                    field("USER"),
                    Id("v-abc123".into()),
                )),
            ),
            (
                "awssm:prod/db##AWSPREVIOUS".to_string(),
                whole(r(
                    "prod/db".to_string(),
                    Key::Whole,
                    Stage("AWSPREVIOUS".into()),
                )),
            ),
            (
                "awssm:prod/db#/db/hosts/0".to_string(),
                whole(r(
                    "prod/db".to_string(),
                    Key::Pointer("/db/hosts/0".into()),
                    Current,
                )),
            ),
            (
                "awssm:prod/db#/a~1b#AWSPENDING".to_string(),
                whole(r(
                    "prod/db".to_string(),
                    Key::Pointer("/a~1b".into()),
                    Stage("AWSPENDING".into()),
                )),
            ),
            (format!("awssm:{ARN}"), whole(r(ARN, Key::Whole, Current))),
            (
                format!("awssm:{ARN}#DATABASE_URL"),
                whole(r(ARN, field("DATABASE_URL"), Current)),
            ),
            // the legacy form
            (
                "awssm://prod/db#USER".to_string(),
                whole(r("prod/db".to_string(), field("USER"), Current)),
            ),
            (format!("awssm://{ARN}"), whole(r(ARN, Key::Whole, Current))),
            // a whole value is one reference even when it contains `${`
            (
                "awssm:a#k}x".to_string(),
                whole(r("a".to_string(), field("k}x"), Current)),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_value(&input).unwrap(), want, "input {input:?}");
        }
    }

    #[test]
    fn embedded_values() {
        use Version::*;
        let cases: Vec<(String, Vec<Part>)> = vec![
            (
                "postgres://${awssm:db#user}:${awssm:db#pass}@host/db".to_string(),
                vec![
                    lit("postgres://"),
                    Part::Ref(r("db".to_string(), field("user"), Current)),
                    lit(":"),
                    Part::Ref(r("db".to_string(), field("pass"), Current)),
                    lit("@host/db"),
                ],
            ),
            (
                "${awssm:x}".to_string(),
                vec![Part::Ref(r("x".to_string(), Key::Whole, Current))],
            ),
            (
                "${awssm:x}${awssm:y#k#AWSPREVIOUS}".to_string(),
                vec![
                    Part::Ref(r("x".to_string(), Key::Whole, Current)),
                    Part::Ref(r("y".to_string(), field("k"), Stage("AWSPREVIOUS".into()))),
                ],
            ),
            (
                "a $${awssm:literal} b ${awssm:x}".to_string(),
                vec![
                    lit("a ${awssm:literal} b "),
                    Part::Ref(r("x".to_string(), Key::Whole, Current)),
                ],
            ),
            (
                "${HOME} and $x and ${awssm://legacy#k}".to_string(),
                vec![
                    lit("${HOME} and $x and "),
                    Part::Ref(r("legacy".to_string(), field("k"), Current)),
                ],
            ),
            (
                "ünïcode ${awssm:x} ✓".to_string(),
                vec![
                    lit("ünïcode "),
                    Part::Ref(r("x".to_string(), Key::Whole, Current)),
                    lit(" ✓"),
                ],
            ),
            (
                format!("k=${{awssm:{ARN}#/nested/key}}"),
                vec![
                    lit("k="),
                    Part::Ref(r(ARN, Key::Pointer("/nested/key".into()), Current)),
                ],
            ),
            (
                "$${awssm:only-escaped}".to_string(),
                vec![lit("${awssm:only-escaped}")],
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_value(&input).unwrap(),
                Some(Template { parts: want }),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn malformed_values() {
        let cases = [
            ("awssm:", "empty secret id"),
            ("awssm:#key", "empty secret id"),
            ("awssm://", "empty secret id"),
            ("awssm:a#b#c#d", "more than two `#`"),
            ("awssm:prod/db\n", "secret id containing '\\n'"),
            ("awssm:prod db", "secret id containing ' '"),
            ("awssm:db#k#v 1", "version containing ' '"),
            ("x ${awssm:db#user", "unclosed `${awssm:` at byte 2"),
            ("${awssm:}", "empty secret id"),
            ("${awssm:#k}", "empty secret id"),
            (
                "ok ${awssm:a} then ${awssm:",
                "unclosed `${awssm:` at byte 19",
            ),
        ];
        for (input, want) in cases {
            let err = parse_value(input).expect_err(input).to_string();
            assert!(err.contains(want), "input {input:?}: {err}");
        }
    }

    #[test]
    fn not_placeholders_are_untouched() {
        for v in [
            "",
            "hello",
            "$${awssm",
            "${awssm",
            "awssm",
            "AWSSM:x",
            "${AWSSM:x}",
        ] {
            assert!(!is_placeholder(v), "{v}");
            assert_eq!(parse_value(v).unwrap(), None, "{v}");
        }
        assert!(is_placeholder("awssm:x"));
        assert!(is_placeholder("a${awssm:x}"));
    }

    #[test]
    fn display_is_canonical_and_round_trips() {
        for input in [
            "awssm:a",
            "awssm:a#k",
            "awssm:a#k#AWSPREVIOUS",
            "awssm:a##v1",
            "awssm:a#/p/q",
        ] {
            let t = parse_value(input).unwrap().unwrap();
            let reference = t.refs().next().unwrap();
            assert_eq!(reference.to_string(), input);
        }
        let t = parse_value("awssm://a#k#AWSCURRENT").unwrap().unwrap();
        assert_eq!(t.refs().next().unwrap().to_string(), "awssm:a#k");
        // A secret id that starts with `//` (after the legacy prefix is stripped).
        for input in ["awssm:////a#k", "x${awssm:////a#k}"] {
            let t = parse_value(input).unwrap().unwrap();
            let reference = t.refs().next().unwrap();
            assert_eq!(reference.fetch.secret_id, "//a");
            assert_eq!(reference.to_string(), "awssm:////a#k");
            let again = parse_value(&reference.to_string()).unwrap().unwrap();
            assert_eq!(again.refs().next().unwrap(), reference);
        }
    }

    #[test]
    fn arn_region() {
        let key = |id: &str| FetchKey {
            secret_id: id.into(),
            version: Version::Current,
        };
        assert_eq!(key(ARN).arn_region(), Some("eu-west-1"));
        assert_eq!(
            key("arn:aws-cn:secretsmanager:cn-north-1:1:secret:x").arn_region(),
            Some("cn-north-1")
        );
        assert_eq!(key("prod/db").arn_region(), None);
        assert_eq!(
            key("arn:aws:ssm:eu-west-1:1:parameter/x").arn_region(),
            None
        );
        assert_eq!(key("arn:aws:secretsmanager::1:secret:x").arn_region(), None);
    }

    #[test]
    fn render_fills_references_in_order() {
        let t = parse_value("u=${awssm:a#x}&p=${awssm:a#y}")
            .unwrap()
            .unwrap();
        assert_eq!(t.render(&["1".into(), "2".into()]), "u=1&p=2");
    }

    #[test]
    fn legacy_detection() {
        assert!(uses_legacy_form("awssm://a"));
        assert!(uses_legacy_form("x${awssm://a}"));
        assert!(!uses_legacy_form("awssm:a"));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = parse_value(&s);
        }

        #[test]
        fn canonical_form_round_trips(
            id in "[A-Za-z0-9/_+=.@-]{1,40}",
            key in proptest::option::of("[A-Za-z0-9_/~.-]{1,20}"),
            version in proptest::option::of("(AWSCURRENT|AWSPREVIOUS|AWSPENDING|[a-f0-9-]{1,36})"),
        ) {
            let mut text = format!("awssm:{id}");
            if key.is_some() || version.is_some() {
                text.push('#');
                text.push_str(key.as_deref().unwrap_or(""));
            }
            if let Some(v) = &version {
                text.push('#');
                text.push_str(v);
            }
            let parsed = parse_value(&text).unwrap().unwrap();
            let reference = parsed.refs().next().unwrap().clone();
            let again = parse_value(&reference.to_string()).unwrap().unwrap();
            proptest::prop_assert_eq!(again.refs().next().unwrap(), &reference);
            // the same reference embedded parses to the same thing
            let embedded = parse_value(&format!("x${{{}}}y", reference)).unwrap().unwrap();
            proptest::prop_assert_eq!(embedded.refs().next().unwrap(), &reference);
        }
    }
}
