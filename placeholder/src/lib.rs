//! The placeholder grammar (contract §2), one implementation for secrets-init, which resolves
//! placeholders, and the webhook, which checks them at admission. Pure: no I/O, no AWS types.
//!
//! Whole value: `awssm:<secret-id>[#<key>[#<version>]]` (Secrets Manager),
//!              `awsssm:<parameter>[#<key>[#<version>]]` (SSM Parameter Store).
//! Embedded:    `${awssm:…}` / `${awsssm:…}` anywhere, any number of times;
//!              `$${` is an escape for a literal `${`.
//! Legacy:      `awssm://<secret-id>…` is read as `awssm:<secret-id>…` (Secrets Manager only).
//! Env-from:    `awssm:<secret-id>[##<version>]` or `awsssm:<path>/`, the references of
//!              `--env-from` and the `secretsinit.io/env-from` annotation ([`parse_env_from`]).
//!
//! The grammar after the prefix is shared by every [`Source`]; a new store is a new variant
//! with its prefix, and [`is_placeholder`] and [`parse_value`] recognise it from then on.

use std::fmt;

/// Escape for a literal `${` inside a value that also holds embedded references.
const ESCAPE: &str = "$${";

/// The AWS service a reference is resolved from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// AWS Secrets Manager, prefix `awssm:`.
    SecretsManager,
    /// AWS Systems Manager Parameter Store, prefix `awsssm:`.
    ParameterStore,
}

impl Source {
    /// Every source the grammar recognises. No prefix is a prefix of another, so the order
    /// does not matter.
    pub const ALL: [Source; 2] = [Source::SecretsManager, Source::ParameterStore];

    /// What a whole value starts with.
    pub const fn prefix(self) -> &'static str {
        match self {
            Source::SecretsManager => "awssm:",
            Source::ParameterStore => "awsssm:",
        }
    }

    /// What an embedded reference starts with: `${` and the prefix.
    pub const fn embed_open(self) -> &'static str {
        match self {
            Source::SecretsManager => "${awssm:",
            Source::ParameterStore => "${awsssm:",
        }
    }

    /// The service named in this source's ARNs (`arn:<partition>:<service>:<region>:…`).
    pub const fn arn_service(self) -> &'static str {
        match self {
            Source::SecretsManager => "secretsmanager",
            Source::ParameterStore => "ssm",
        }
    }

    /// The shape of a reference, for error messages.
    pub const fn form(self) -> &'static str {
        match self {
            Source::SecretsManager => "awssm:<secret-id>[#<key>[#<version>]]",
            Source::ParameterStore => "awsssm:<parameter>[#<key>[#<version>]]",
        }
    }

    /// What the part before the first `#` is called in messages.
    const fn id_name(self) -> &'static str {
        match self {
            Source::SecretsManager => "secret id",
            Source::ParameterStore => "parameter name",
        }
    }

    /// The original tool wrote `awssm://<secret-id>`; this marker after the prefix is dropped.
    const fn legacy_marker(self) -> Option<&'static str> {
        match self {
            Source::SecretsManager => Some("//"),
            Source::ParameterStore => None,
        }
    }

    /// The version field of a reference; `Err` only for a parameter version number too large
    /// to be one (Parameter Store counts versions in a 64-bit integer).
    fn parse_version(self, text: &str) -> Result<Version, std::num::ParseIntError> {
        Ok(match self {
            Source::SecretsManager => match text {
                "" | "AWSCURRENT" => Version::Current,
                "AWSPREVIOUS" | "AWSPENDING" => Version::Stage(text.to_owned()),
                other => Version::Id(other.to_owned()),
            },
            // Parameter Store labels cannot start with a digit, so digits are always a version.
            Source::ParameterStore => match text {
                "" => Version::Current,
                digits if digits.bytes().all(|b| b.is_ascii_digit()) => {
                    Version::Number(digits.parse()?)
                }
                label => Version::Label(label.to_owned()),
            },
        })
    }
}

/// Which version of a secret or parameter a reference asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// No version given (and, for Secrets Manager, `AWSCURRENT`): the current / latest one.
    Current,
    /// Secrets Manager: `AWSPREVIOUS` or `AWSPENDING`.
    Stage(String),
    /// Secrets Manager: any other value, a version id.
    Id(String),
    /// Parameter Store: digits, a parameter version.
    Number(u64),
    /// Parameter Store: anything else, a parameter label.
    Label(String),
}

impl Version {
    /// The version as written in a reference (`None` for the current one).
    pub fn text(&self) -> Option<String> {
        match self {
            Version::Current => None,
            Version::Stage(s) | Version::Id(s) | Version::Label(s) => Some(s.clone()),
            Version::Number(n) => Some(n.to_string()),
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

/// What has to be fetched: each distinct one is fetched once, however many references use it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FetchKey {
    pub source: Source,
    /// The secret's name or ARN, as written.
    pub id: String,
    pub version: Version,
}

impl FetchKey {
    /// The region named by an ARN id (`arn:<partition>:<service>:<region>:…` of this source's
    /// service), which wins over any configured region.
    pub fn arn_region(&self) -> Option<&str> {
        let mut parts = self.id.splitn(6, ':');
        let (arn, _partition, service, region) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        (arn == "arn" && service == self.source.arn_service() && !region.is_empty())
            .then_some(region)
    }
}

impl fmt::Display for FetchKey {
    /// The id with its version, for messages: `prod/db (stage AWSPREVIOUS)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)?;
        match &self.version {
            Version::Current => Ok(()),
            Version::Stage(s) => write!(f, " (stage {s})"),
            Version::Id(id) => write!(f, " (version {id})"),
            Version::Number(n) => write!(f, " (version {n})"),
            Version::Label(l) => write!(f, " (label {l})"),
        }
    }
}

/// One parsed reference to a value: what to fetch and what to take out of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    pub fetch: FetchKey,
    pub key: Key,
}

impl fmt::Display for Reference {
    /// The canonical spelling (`awssm:id#key#version`, never a value). It parses back to the
    /// same reference: an id that itself starts with the legacy marker `//` is written after
    /// `awssm://`, which the parser strips (found by fuzzing).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = self.fetch.source;
        f.write_str(source.prefix())?;
        if let Some(marker) = source.legacy_marker()
            && self.fetch.id.starts_with(marker)
        {
            f.write_str(marker)?;
        }
        f.write_str(&self.fetch.id)?;
        let key = match &self.key {
            Key::Whole => "",
            Key::Field(k) | Key::Pointer(k) => k.as_str(),
        };
        match self.fetch.version.text() {
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
    Ref(Reference),
}

/// An env value that holds placeholders, split into literal text and references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub parts: Vec<Part>,
}

impl Template {
    /// The references, in the order they appear in the value.
    pub fn refs(&self) -> impl Iterator<Item = &Reference> {
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

/// Why an env value that is a placeholder cannot be read. The caller adds the variable's
/// name. Messages quote the placeholder as written (placeholders are not secret) and never
/// any other part of the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error(
        "malformed placeholder: unclosed `{open}` at byte {at}: add the closing `}}` (write `$${{` for a literal `${{`)"
    )]
    Unclosed { open: &'static str, at: usize },
    #[error("malformed placeholder: `{placeholder}` has more than two `#`: the form is {form}")]
    TooManyFields {
        placeholder: String,
        form: &'static str,
    },
    #[error("malformed placeholder: `{placeholder}` has an empty {id_name}: the form is {form}")]
    EmptyId {
        placeholder: String,
        id_name: &'static str,
        form: &'static str,
    },
    #[error(
        "malformed placeholder: `{}` has a {id_name} containing {character:?}; names and ARNs have no spaces or control characters (a trailing newline from a YAML block scalar is a common cause)",
        placeholder.escape_debug()
    )]
    IdCharacter {
        placeholder: String,
        id_name: &'static str,
        character: char,
    },
    #[error(
        "malformed placeholder: `{}` has a version containing {character:?}",
        placeholder.escape_debug()
    )]
    VersionCharacter {
        placeholder: String,
        character: char,
    },
    #[error(
        "malformed placeholder: `{placeholder}` names a version with `:` (`{selector}`), which Parameter Store names never contain: write it after `#`, as in awsssm:<parameter>#<key>#{selector} (or ##{selector} for the whole value)"
    )]
    ParameterSelector {
        placeholder: String,
        selector: String,
    },
    #[error(
        "malformed placeholder: `{placeholder}` is not a parameter ARN: the form is arn:<partition>:ssm:<region>:<account>:parameter/<name> (or write the parameter's name)"
    )]
    ParameterArn { placeholder: String },
    #[error(
        "malformed placeholder: `{placeholder}` has the version number {number}, larger than any parameter version"
    )]
    VersionNumber { placeholder: String, number: String },
    #[error("`{}` is not a valid env-from reference: {reason}; the forms are {}", reference.escape_debug(), EnvFrom::FORMS)]
    EnvFrom { reference: String, reason: String },
}

/// True when a value is one secrets-init must touch (contract §2): it starts with a prefix
/// (`awssm:`, the legacy `awssm://` included, or `awsssm:`) or contains an embedded opening
/// (`${awssm:`, `${awsssm:`).
/// Exactly the values for which [`parse_value`] does not return `Ok(None)`.
pub fn is_placeholder(value: &str) -> bool {
    Source::ALL
        .iter()
        .any(|s| value.starts_with(s.prefix()) || value.contains(s.embed_open()))
}

/// Parses an env value. `Ok(None)`: not a placeholder, leave it alone.
pub fn parse_value(value: &str) -> Result<Option<Template>, ParseError> {
    for source in Source::ALL {
        if let Some(rest) = value.strip_prefix(source.prefix()) {
            let reference = parse_reference(source, rest, value)?;
            return Ok(Some(Template {
                parts: vec![Part::Ref(reference)],
            }));
        }
    }
    if !is_placeholder(value) {
        return Ok(None);
    }
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = value;
    while !rest.is_empty() {
        // Everything up to the next `$` is literal text.
        let plain = rest.find('$').unwrap_or(rest.len());
        if plain > 0 {
            literal.push_str(&rest[..plain]);
            rest = &rest[plain..];
            continue;
        }
        if let Some(after) = rest.strip_prefix(ESCAPE) {
            literal.push_str("${");
            rest = after;
            continue;
        }
        let opened = Source::ALL
            .into_iter()
            .find_map(|s| rest.strip_prefix(s.embed_open()).map(|after| (s, after)));
        let Some((source, after)) = opened else {
            literal.push('$');
            rest = &rest[1..];
            continue;
        };
        let open = source.embed_open();
        let Some(end) = after.find('}') else {
            return Err(ParseError::Unclosed {
                open,
                at: value.len() - rest.len(),
            });
        };
        let reference = parse_reference(source, &after[..end], &rest[..open.len() + end + 1])?;
        if !literal.is_empty() {
            parts.push(Part::Literal(std::mem::take(&mut literal)));
        }
        parts.push(Part::Ref(reference));
        rest = &after[end + 1..];
    }
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    Ok(Some(Template { parts }))
}

/// Parses `<id>[#<key>[#<version>]]` (the text after the prefix). `shown` is the placeholder
/// as written, for error messages.
fn parse_reference(source: Source, text: &str, shown: &str) -> Result<Reference, ParseError> {
    let text = source
        .legacy_marker()
        .and_then(|marker| text.strip_prefix(marker))
        .unwrap_or(text);
    let mut fields = text.split('#');
    let id = fields.next().unwrap_or_default();
    let key = fields.next().unwrap_or_default();
    let version = fields.next();
    if fields.next().is_some() {
        return Err(ParseError::TooManyFields {
            placeholder: shown.to_owned(),
            form: source.form(),
        });
    }
    if id.is_empty() {
        return Err(ParseError::EmptyId {
            placeholder: shown.to_owned(),
            id_name: source.id_name(),
            form: source.form(),
        });
    }
    if let Some(character) = id.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(ParseError::IdCharacter {
            placeholder: shown.to_owned(),
            id_name: source.id_name(),
            character,
        });
    }
    if let Some(character) =
        version.and_then(|v| v.chars().find(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(ParseError::VersionCharacter {
            placeholder: shown.to_owned(),
            character,
        });
    }
    if source == Source::ParameterStore {
        check_parameter_id(id, shown)?;
    }
    let version_text = version.unwrap_or_default();
    let version = source
        .parse_version(version_text)
        .map_err(|_| ParseError::VersionNumber {
            placeholder: shown.to_owned(),
            number: version_text.to_owned(),
        })?;
    let key = if key.is_empty() {
        Key::Whole
    } else if key.starts_with('/') {
        Key::Pointer(key.to_owned())
    } else {
        Key::Field(key.to_owned())
    };
    Ok(Reference {
        fetch: FetchKey {
            source,
            id: id.to_owned(),
            version,
        },
        key,
    })
}

/// One `--env-from` reference (contract §3).
///
/// Rules beyond the contract's two forms, so that a mistake is caught where it is written
/// (the webhook checks the `secretsinit.io/env-from` annotation with this function):
/// - `awssm:<secret-id>[##<version>]`: the id is a secret name or a Secrets Manager ARN
///   (`arn:<partition>:secretsmanager:<region>:<account>:secret:<name>`; its region is
///   used); an ARN of another service is an error. There is no `#<key>` (every key is
///   imported); `##` is followed by a version as in placeholders (`AWSPREVIOUS`,
///   `AWSPENDING`, a version id; empty or `AWSCURRENT` = current). The legacy `awssm://`
///   spelling is read as in placeholders.
/// - `awsssm:<path>/`: the path starts and ends with `/` and has no empty segment (`//`)
///   and no `#`. `/` alone is the root. Not an ARN: `GetParametersByPath` takes only a path
///   in the caller's own account, and the region comes from `--region` as for names.
/// - No whitespace or control characters anywhere; callers trim list items themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvFrom {
    /// `awssm:<secret-id>[##<version>]`: every top-level key of a JSON-object secret.
    Secret { id: String, version: Version },
    /// `awsssm:<path>/`: every parameter directly under the path.
    ParameterPath { path: String },
}

impl EnvFrom {
    /// The two forms, for messages.
    pub const FORMS: &'static str = "awssm:<secret-id>[##<version>] (every top-level key of a JSON-object secret) or awsssm:<path>/ (every parameter directly under a Parameter Store path)";
}

impl fmt::Display for EnvFrom {
    /// The canonical spelling; it parses back to the same reference.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvFrom::Secret { id, version } => {
                let source = Source::SecretsManager;
                f.write_str(source.prefix())?;
                if let Some(marker) = source.legacy_marker()
                    && id.starts_with(marker)
                {
                    f.write_str(marker)?;
                }
                f.write_str(id)?;
                match version.text() {
                    None => Ok(()),
                    Some(v) => write!(f, "##{v}"),
                }
            }
            EnvFrom::ParameterPath { path } => {
                write!(f, "{}{path}", Source::ParameterStore.prefix())
            }
        }
    }
}

/// Parses one `--env-from` reference (one item of `SECRETS_INIT_ENV_FROM` or of the
/// `secretsinit.io/env-from` annotation). The error says what is wrong and shows the two
/// valid forms.
pub fn parse_env_from(reference: &str) -> Result<EnvFrom, ParseError> {
    let bad = |reason: String| ParseError::EnvFrom {
        reference: reference.to_owned(),
        reason,
    };
    if let Some(character) = reference
        .chars()
        .find(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad(format!(
            "it contains {character:?} (no spaces or control characters)"
        )));
    }
    if let Some(path) = reference.strip_prefix(Source::ParameterStore.prefix()) {
        return parse_env_from_path(path).map_err(bad);
    }
    let source = Source::SecretsManager;
    let Some(rest) = reference.strip_prefix(source.prefix()) else {
        return Err(bad(if reference.is_empty() {
            "it is empty".to_owned()
        } else {
            "it starts with neither `awssm:` nor `awsssm:`".to_owned()
        }));
    };
    let rest = source
        .legacy_marker()
        .and_then(|marker| rest.strip_prefix(marker))
        .unwrap_or(rest);
    let (id, version) = match rest.split_once('#') {
        None => (rest, ""),
        Some((id, after)) => match after.strip_prefix('#') {
            Some(version) if !version.contains('#') => (id, version),
            Some(_) => return Err(bad("it has more than two `#`".to_owned())),
            None => {
                return Err(bad(
                    "a `#<key>` cannot be used: env-from imports every top-level key (write `##<version>` for a version)"
                        .to_owned(),
                ));
            }
        },
    };
    if id.is_empty() {
        return Err(bad("the secret id is empty".to_owned()));
    }
    if id.starts_with("arn:") {
        check_secret_arn(id).map_err(bad)?;
    }
    let version = source
        .parse_version(version)
        .map_err(|_| bad("the version is not valid".to_owned()))?;
    Ok(EnvFrom::Secret {
        id: id.to_owned(),
        version,
    })
}

/// `arn:<partition>:secretsmanager:<region>:<account>:secret:<name>`.
fn check_secret_arn(id: &str) -> Result<(), String> {
    let parts: Vec<&str> = id.splitn(7, ':').collect();
    let service = Source::SecretsManager.arn_service();
    match parts.as_slice() {
        ["arn", partition, s, region, account, "secret", name]
            if !partition.is_empty()
                && *s == service
                && !region.is_empty()
                && !account.is_empty()
                && !name.is_empty() =>
        {
            Ok(())
        }
        [_, _, s, ..] if *s != service => Err(format!(
            "the ARN is not a Secrets Manager secret's (its service is `{s}`; an SSM parameter path is written awsssm:<path>/)"
        )),
        _ => Err(format!(
            "the ARN is not a Secrets Manager secret's: the form is arn:<partition>:{service}:<region>:<account>:secret:<name>"
        )),
    }
}

fn parse_env_from_path(path: &str) -> Result<EnvFrom, String> {
    if path.starts_with("arn:") {
        return Err(
            "a Parameter Store path is written as a path, not an ARN (GetParametersByPath reads only the caller's own account; --region sets the region)"
                .to_owned(),
        );
    }
    if !path.starts_with('/') {
        return Err("the path must start with `/`".to_owned());
    }
    if !path.ends_with('/') {
        return Err(format!(
            "the path must end with `/` (to read the single parameter `{path}`, use the placeholder awsssm:{path} in a variable)"
        ));
    }
    if path.contains('#') {
        return Err("a path takes no `#<key>` or `#<version>`".to_owned());
    }
    if path.len() > 1 && path.contains("//") {
        return Err("the path has an empty segment (`//`)".to_owned());
    }
    Ok(EnvFrom::ParameterPath {
        path: path.to_owned(),
    })
}

/// A parameter id is a name or `arn:<partition>:ssm:<region>:<account>:parameter/<name>`.
/// Names have no `:` (except Parameter Store's name for a Secrets Manager secret, which may
/// hold the secret's ARN), so a `:3` / `:label` after one is a version written the way
/// `GetParameters` takes it (`/prod/db:3`, the form kube-secrets-init read): the error says
/// where the version goes instead.
fn check_parameter_id(id: &str, shown: &str) -> Result<(), ParseError> {
    const REFERENCE: &str = "/aws/reference/secretsmanager/";
    let name = if id.starts_with("arn:") {
        let parts: Vec<&str> = id.splitn(6, ':').collect();
        match parts.as_slice() {
            ["arn", partition, "ssm", region, account, resource]
                if !partition.is_empty() && !region.is_empty() && !account.is_empty() =>
            {
                match resource.strip_prefix("parameter") {
                    Some(name) if name.len() > 1 && name.starts_with('/') => name,
                    _ => {
                        return Err(ParseError::ParameterArn {
                            placeholder: shown.to_owned(),
                        });
                    }
                }
            }
            _ => {
                return Err(ParseError::ParameterArn {
                    placeholder: shown.to_owned(),
                });
            }
        }
    } else {
        id
    };
    if name.starts_with(REFERENCE) {
        return Ok(());
    }
    match name.split_once(':') {
        Some((_, selector)) => Err(ParseError::ParameterSelector {
            placeholder: shown.to_owned(),
            selector: selector.to_owned(),
        }),
        None => Ok(()),
    }
}

/// True when the value uses the original tool's `awssm://` spelling (for a migration note).
pub fn uses_legacy_form(value: &str) -> bool {
    Source::ALL.iter().any(|&s| {
        s.legacy_marker().is_some_and(|marker| {
            value
                .strip_prefix(s.prefix())
                .is_some_and(|rest| rest.starts_with(marker))
                || value
                    .split(s.embed_open())
                    .skip(1)
                    .any(|rest| rest.starts_with(marker))
        })
    })
}

#[cfg(test)]
mod tests;
