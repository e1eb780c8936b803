//! `--probe`: exec probes run every few seconds for the life of the pod. The container's main
//! process (PID 1, which secrets-init became) already holds the resolved values, so a probe
//! takes them from there instead of calling AWS.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use placeholder::{Template, is_placeholder};

/// Values for `templates` that the process environment at `environ` (a `/proc/<pid>/environ`
/// file) holds in resolved form. Unreadable file → nothing taken.
pub fn take_from_main_process(
    environ: &Path,
    templates: &BTreeMap<String, Template>,
) -> HashMap<String, String> {
    let Ok(bytes) = std::fs::read(environ) else {
        return HashMap::new();
    };
    let mut taken = HashMap::new();
    for entry in bytes.split(|&b| b == 0) {
        let Ok(entry) = std::str::from_utf8(entry) else {
            continue;
        };
        let Some((name, value)) = entry.split_once('=') else {
            continue;
        };
        // A value that is still a placeholder means PID 1 has not resolved it (yet).
        if templates.contains_key(name) && !is_placeholder(value) {
            taken.insert(name.to_owned(), value.to_owned());
        }
    }
    taken
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
}
