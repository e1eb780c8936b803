//! What a fetch gives: a secret's text, or why it could not be had. Shared by the Secrets
//! Manager ([`crate::fetch`]) and Parameter Store ([`crate::parameters`]) calls.

use std::fmt;

use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use zeroize::Zeroizing;

use crate::problem::Code;

/// At most this many API calls in flight at once.
pub const MAX_IN_FLIGHT: usize = 16;

/// A secret's text. `Debug` never shows it; the memory is wiped when dropped.
#[derive(Clone)]
pub struct SecretText(Zeroizing<String>);

impl SecretText {
    pub fn new(text: String) -> Self {
        Self(Zeroizing::new(text))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretText(<redacted>)")
    }
}

/// Why a secret could not be had. Never holds a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchFailure {
    pub code: Code,
    pub message: String,
}

impl FetchFailure {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn from_sdk<E, R>(err: &SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: fmt::Debug,
    {
        match err {
            SdkError::ServiceError(_) => Self::new(
                err.code().map_or(Code::UnknownError, Code::from_aws),
                err.message().unwrap_or("no message from AWS"),
            ),
            SdkError::TimeoutError(_) => Self::new(Code::Timeout, "the request to AWS timed out"),
            SdkError::DispatchFailure(_) => {
                Self::new(Code::NetworkError, format!("{}", DisplayErrorContext(err)))
            }
            _ => Self::new(
                err.code().map_or(Code::RequestFailed, Code::from_aws),
                format!("{}", DisplayErrorContext(err)),
            ),
        }
    }
}

impl fmt::Display for FetchFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

pub type FetchResult = Result<SecretText, FetchFailure>;
