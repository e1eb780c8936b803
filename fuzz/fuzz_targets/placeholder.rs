//! The placeholder grammar (contract §2): any env value parses without panicking; exactly
//! the values `is_placeholder` names are touched; every reference's canonical spelling parses
//! back to the same reference; rendering fills references in order. The same text as an
//! `--env-from` reference (contract §3): no panic, an error that names the reference, and a
//! canonical spelling that parses back to the same reference.
#![no_main]

use libfuzzer_sys::fuzz_target;
use placeholder::{Part, is_placeholder, parse_env_from, parse_value};

fuzz_target!(|value: &str| {
    match parse_env_from(value) {
        Ok(reference) => {
            let canonical = reference.to_string();
            let again = parse_env_from(&canonical).unwrap_or_else(|e| {
                panic!("env-from canonical {canonical:?} of {value:?} does not parse: {e}")
            });
            assert_eq!(again, reference, "env-from canonical {canonical:?} of {value:?}");
        }
        Err(e) => assert!(e.to_string().contains("env-from reference")),
    }
    let parsed = parse_value(value);
    assert_eq!(
        is_placeholder(value),
        !matches!(parsed, Ok(None)),
        "is_placeholder disagrees with parse_value for {value:?}"
    );
    let Ok(Some(template)) = parsed else {
        if let Err(e) = parsed {
            assert!(!e.to_string().is_empty());
        }
        return;
    };
    for reference in template.refs() {
        let canonical = reference.to_string();
        let again = parse_value(&canonical)
            .unwrap_or_else(|e| panic!("canonical {canonical:?} of {value:?} does not parse: {e}"))
            .unwrap_or_else(|| panic!("canonical {canonical:?} is not a placeholder"));
        let parts = &again.parts;
        assert_eq!(parts.len(), 1, "canonical {canonical:?}");
        assert_eq!(
            &parts[0],
            &Part::Ref(reference.clone()),
            "canonical {canonical:?} of {value:?} parses to another reference"
        );
    }
    // Rendering with each reference's own spelling as its value: literals and values in
    // order, nothing dropped.
    let values: Vec<String> = template.refs().map(|r| format!("<{r}>")).collect();
    let rendered = template.render(&values);
    let expected: String = template
        .parts
        .iter()
        .map(|p| match p {
            Part::Literal(s) => s.clone(),
            Part::Ref(r) => format!("<{r}>"),
        })
        .collect();
    assert_eq!(rendered, expected);
});
