//! The program's environment as resolving leaves it: values wiped from memory when dropped,
//! only names in `Debug`. Shared by [`crate::resolve`] and [`crate::env_from`].

use std::ffi::OsString;

use zeroize::Zeroize;

use crate::problem::Problem;

/// Variables with this prefix configure secrets-init and are removed from the program's env.
pub const OWN_PREFIX: &str = "SECRETS_INIT_";

/// The result of resolving. `Debug` shows variable names only, and the values are wiped
/// when it is dropped (after a failed exec; a successful one replaces the whole process).
#[derive(Default)]
pub struct Resolved {
    pub env: Vec<(OsString, OsString)>,
    pub problems: Vec<Problem>,
    /// Placeholders that `--ignore-missing` turned into empty values: (variable, reference, why).
    pub ignored: Vec<Problem>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("env", &Names(&self.env))
            .field("problems", &self.problems)
            .field("ignored", &self.ignored)
            .finish()
    }
}

impl Drop for Resolved {
    fn drop(&mut self) {
        for (_, value) in &mut self.env {
            wipe(value);
        }
    }
}

pub(crate) struct Names<'a, V>(pub(crate) &'a [(OsString, V)]);

impl<V> std::fmt::Debug for Names<'_, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.0
                    .iter()
                    .map(|(name, _)| format!("{}=<redacted>", name.to_string_lossy())),
            )
            .finish()
    }
}

/// Overwrites the bytes of a value before its memory is released.
pub fn wipe(value: &mut OsString) {
    let mut bytes = std::mem::take(value).into_encoded_bytes();
    bytes.zeroize();
}
