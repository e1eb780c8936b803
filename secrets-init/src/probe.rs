//! `--probe`: exec probes run every few seconds for the life of the pod. The container's main
//! process (PID 1, which secrets-init became) already holds the resolved values, so a probe
//! takes them from there instead of calling AWS.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use placeholder::{Template, is_placeholder};
use zeroize::Zeroize as _;

use crate::env_from::is_variable_name;
use crate::resolve::OWN_PREFIX;

/// The variables of a process environment file, in order; entries that are not UTF-8 or not
/// `NAME=value` are left out. `None` when the file cannot be read.
fn read_environ(environ: &Path) -> Option<Vec<(String, String)>> {
    let mut bytes = std::fs::read(environ).ok()?;
    let vars = bytes
        .split(|&b| b == 0)
        .filter_map(|entry| std::str::from_utf8(entry).ok())
        .filter_map(|entry| entry.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    // The file holds every resolved secret of the main process: wiped like our own values.
    bytes.zeroize();
    Some(vars)
}

/// The variables `want` keeps; the values of the others (secrets among them) are wiped.
fn keep(
    vars: Vec<(String, String)>,
    mut want: impl FnMut(&str, &str) -> bool,
) -> Vec<(String, String)> {
    vars.into_iter()
        .filter_map(|(name, mut value)| {
            if want(&name, &value) {
                Some((name, value))
            } else {
                value.zeroize();
                None
            }
        })
        .collect()
}

/// What the main process imported with `--env-from`: the variables it has that this process
/// (started with the container's own environment, as every exec probe is) does not. Empty when
/// the file cannot be read or holds no such variable; the caller then imports as usual.
pub fn imported_by_main_process(environ: &Path, own: &HashSet<String>) -> Vec<(String, String)> {
    keep(read_environ(environ).unwrap_or_default(), |name, _| {
        !own.contains(name) && is_variable_name(name) && !name.starts_with(OWN_PREFIX)
    })
}

/// Values for `templates` that the process environment at `environ` (a `/proc/<pid>/environ`
/// file) holds in resolved form. Unreadable file → nothing taken.
pub fn take_from_main_process(
    environ: &Path,
    templates: &BTreeMap<String, Template>,
) -> HashMap<String, String> {
    // A value that is still a placeholder means PID 1 has not resolved it (yet).
    keep(read_environ(environ).unwrap_or_default(), |name, value| {
        templates.contains_key(name) && !is_placeholder(value)
    })
    .into_iter()
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use placeholder::parse_value;

    #[test]
    fn takes_only_resolved_values_for_placeholder_variables() {
        let dir = tempfile::tempdir().unwrap();
        let environ = dir.path().join("environ");
        std::fs::write(
            &environ,
            b"A=resolved-a\0B=awssm:still#placeholder\0C=other\0D=x=y\0\0",
        )
        .unwrap();
        let mut templates = BTreeMap::new();
        for (name, value) in [
            ("A", "awssm:a"),
            ("B", "awssm:b"),
            ("D", "awssm:d"),
            ("E", "awssm:e"),
        ] {
            templates.insert(name.to_owned(), parse_value(value).unwrap().unwrap());
        }
        let taken = take_from_main_process(&environ, &templates);
        assert_eq!(taken.len(), 2);
        assert_eq!(taken["A"], "resolved-a");
        assert_eq!(taken["D"], "x=y");
        assert!(take_from_main_process(&dir.path().join("missing"), &templates).is_empty());
    }

    #[test]
    fn imported_variables_are_those_the_probe_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let environ = dir.path().join("environ");
        std::fs::write(
            &environ,
            b"PATH=/bin\0OWN=x\0IMPORTED=v\0bad-name=w\0SECRETS_INIT_X=y\0\xff=z\0",
        )
        .unwrap();
        let own: HashSet<String> = ["PATH".to_owned(), "OWN".to_owned()].into();
        assert_eq!(
            imported_by_main_process(&environ, &own),
            [("IMPORTED".to_owned(), "v".to_owned())]
        );
        assert!(imported_by_main_process(&dir.path().join("missing"), &own).is_empty());
    }
}
