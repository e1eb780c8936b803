//! What went wrong for one variable, in the shape every report takes: variable, reference,
//! code, message (contract §3: one line per problem, with the AWS error code).

use std::fmt;

/// The name of a problem in logs and the termination log: AWS's own error code when AWS
/// answered with one, otherwise one of secrets-init's. `as_str` is the spelling users search
/// for, so it never changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    /// AWS: `ResourceNotFoundException` (no such secret, or no such version or stage).
    ResourceNotFound,
    /// AWS: `AccessDeniedException`.
    AccessDenied,
    /// AWS: `DecryptionFailure` (the KMS key cannot be used: denied, disabled or deleted).
    DecryptionFailure,
    /// Parameter Store: no such parameter, or no such version or label of it (`GetParameters`
    /// lists such names in `InvalidParameters`; `GetParameter` answers with this code).
    ParameterNotFound,
    /// Parameter Store: `ParameterVersionNotFound`.
    ParameterVersionNotFound,
    /// Parameter Store: `ParameterVersionLabelNotFound`.
    ParameterVersionLabelNotFound,
    /// Any other code AWS answered with, as AWS spelled it.
    Aws(String),
    /// The placeholder does not follow the grammar.
    MalformedPlaceholder,
    /// A `#key` asked of a secret that is not a JSON object, or an `--env-from` secret that
    /// is not one.
    SecretNotJsonObject,
    /// An `--env-from` Parameter Store path with no parameter directly under it.
    NoParametersUnderPath,
    /// The JSON object has no such top-level key.
    KeyNotFound,
    /// The JSON Pointer selects nothing.
    PointerNotFound,
    /// The JSON Pointer is not RFC 6901.
    MalformedPointer,
    /// SecretBinary that is not UTF-8 text without NUL.
    SecretBinaryNotText,
    /// A secret version with neither SecretString nor SecretBinary.
    EmptySecret,
    /// The value would hold a NUL byte, which an environment variable cannot.
    ValueContainsNul,
    /// No region from the ARN, `--region`, or the SDK's chain.
    NoRegion,
    /// The request never got an answer (DNS, connection, TLS).
    NetworkError,
    /// A single request timed out.
    Timeout,
    /// The SDK failed the request before or after sending it, without an AWS code.
    RequestFailed,
    /// AWS answered with an error that carries no code.
    UnknownError,
    /// A reference was not in the fetched set (a bug if it ever shows).
    NotFetched,
}

/// Every code but [`Code::Aws`]: the names secrets-init gives problems itself or acts on.
/// Readers of the termination log (secrets-init-controller counts failures by code) take
/// their bounded label set from it.
pub static NAMED: [Code; 21] = [
    Code::ResourceNotFound,
    Code::AccessDenied,
    Code::DecryptionFailure,
    Code::ParameterNotFound,
    Code::ParameterVersionNotFound,
    Code::ParameterVersionLabelNotFound,
    Code::MalformedPlaceholder,
    Code::SecretNotJsonObject,
    Code::NoParametersUnderPath,
    Code::KeyNotFound,
    Code::PointerNotFound,
    Code::MalformedPointer,
    Code::SecretBinaryNotText,
    Code::EmptySecret,
    Code::ValueContainsNul,
    Code::NoRegion,
    Code::NetworkError,
    Code::Timeout,
    Code::RequestFailed,
    Code::UnknownError,
    Code::NotFetched,
];

impl Code {
    /// Reads a code AWS sent: the ones secrets-init acts on get their own variant, any other
    /// is kept as AWS spelled it.
    pub fn from_aws(code: &str) -> Self {
        match code {
            "ResourceNotFoundException" => Code::ResourceNotFound,
            "AccessDeniedException" => Code::AccessDenied,
            "DecryptionFailure" => Code::DecryptionFailure,
            "ParameterNotFound" => Code::ParameterNotFound,
            "ParameterVersionNotFound" => Code::ParameterVersionNotFound,
            "ParameterVersionLabelNotFound" => Code::ParameterVersionLabelNotFound,
            other => Code::Aws(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Code::ResourceNotFound => "ResourceNotFoundException",
            Code::AccessDenied => "AccessDeniedException",
            Code::DecryptionFailure => "DecryptionFailure",
            Code::ParameterNotFound => "ParameterNotFound",
            Code::ParameterVersionNotFound => "ParameterVersionNotFound",
            Code::ParameterVersionLabelNotFound => "ParameterVersionLabelNotFound",
            Code::Aws(code) => code,
            Code::MalformedPlaceholder => "MalformedPlaceholder",
            Code::SecretNotJsonObject => "SecretNotJsonObject",
            Code::NoParametersUnderPath => "NoParametersUnderPath",
            Code::KeyNotFound => "KeyNotFound",
            Code::PointerNotFound => "PointerNotFound",
            Code::MalformedPointer => "MalformedPointer",
            Code::SecretBinaryNotText => "SecretBinaryNotText",
            Code::EmptySecret => "EmptySecret",
            Code::ValueContainsNul => "ValueContainsNul",
            Code::NoRegion => "NoRegion",
            Code::NetworkError => "NetworkError",
            Code::Timeout => "Timeout",
            Code::RequestFailed => "RequestFailed",
            Code::UnknownError => "UnknownError",
            Code::NotFetched => "NotFetched",
        }
    }

    /// What `--ignore-missing` turns into an empty value (contract §3): the secret, parameter,
    /// version, label, key or pointer does not exist, or access to it is denied. Everything
    /// else (a malformed pointer, a transient failure) still fails.
    pub fn is_missing(&self) -> bool {
        matches!(
            self,
            Code::ResourceNotFound
                | Code::AccessDenied
                | Code::DecryptionFailure
                | Code::ParameterNotFound
                | Code::ParameterVersionNotFound
                | Code::ParameterVersionLabelNotFound
                | Code::SecretNotJsonObject
                | Code::KeyNotFound
                | Code::PointerNotFound
        )
    }
}

impl Code {
    /// A failure that says nothing about the names asked for, only that AWS could not answer
    /// now: asking again name by name would only multiply the calls (and a throttled caller
    /// must call less, not more).
    pub fn is_transient(&self) -> bool {
        match self {
            Code::NetworkError | Code::Timeout => true,
            Code::Aws(code) => matches!(
                code.as_str(),
                "ThrottlingException"
                    | "TooManyRequestsException"
                    | "Throttling"
                    | "RequestLimitExceeded"
                    | "InternalServerError"
                    | "InternalFailure"
                    | "InternalServiceError"
                    | "ServiceUnavailable"
            ),
            _ => false,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing that went wrong for one variable. Never holds a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub variable: String,
    /// The placeholder reference as written (`awssm:prod/db#user`), when there is one.
    pub reference: Option<String>,
    pub code: Code,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reference {
            Some(r) => write!(
                f,
                "{}: {}: {}: {}",
                self.variable, r, self.code, self.message
            ),
            None => write!(f, "{}: {}: {}", self.variable, self.code, self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_lists_every_code_but_aws_once() {
        let names: std::collections::BTreeSet<&str> = NAMED.iter().map(Code::as_str).collect();
        assert_eq!(names.len(), NAMED.len());
        assert!(NAMED.iter().all(|c| !matches!(c, Code::Aws(_))));
        // from_aws gives the named variant back for the AWS codes it knows
        for c in &NAMED[..6] {
            assert_eq!(&Code::from_aws(c.as_str()), c);
        }
    }

    #[test]
    fn aws_codes_keep_their_spelling() {
        for code in [
            "ResourceNotFoundException",
            "AccessDeniedException",
            "DecryptionFailure",
            "ThrottlingException",
            "InternalServiceError",
        ] {
            assert_eq!(Code::from_aws(code).as_str(), code);
        }
        assert_eq!(
            Code::from_aws("ResourceNotFoundException"),
            Code::ResourceNotFound
        );
    }

    #[test]
    fn what_ignore_missing_covers() {
        for code in [
            "ResourceNotFoundException",
            "AccessDeniedException",
            "DecryptionFailure",
            "ParameterNotFound",
            "ParameterVersionNotFound",
            "ParameterVersionLabelNotFound",
        ] {
            assert!(Code::from_aws(code).is_missing(), "{code}");
            assert_eq!(Code::from_aws(code).as_str(), code);
        }
        for code in [
            Code::SecretNotJsonObject,
            Code::KeyNotFound,
            Code::PointerNotFound,
        ] {
            assert!(code.is_missing(), "{code}");
        }
        for code in [
            Code::from_aws("ThrottlingException"),
            Code::from_aws("InternalServiceError"),
            Code::from_aws("InvalidRequestException"),
            Code::MalformedPointer,
            Code::MalformedPlaceholder,
            Code::NetworkError,
            Code::Timeout,
            Code::NoRegion,
            Code::SecretBinaryNotText,
            Code::ValueContainsNul,
            Code::NotFetched,
            Code::NoParametersUnderPath,
        ] {
            assert!(!code.is_missing(), "{code}");
        }
        for code in ["ThrottlingException", "InternalServerError"] {
            assert!(Code::from_aws(code).is_transient(), "{code}");
        }
        for code in [
            Code::AccessDenied,
            Code::ParameterNotFound,
            Code::from_aws("InvalidKeyId"),
        ] {
            assert!(!code.is_transient(), "{code}");
        }
    }
}
