//! Extraction of a key or JSON Pointer from a secret (contract §2), checked against
//! serde_json: a string gives its text, null the empty string, anything else JSON text equal
//! to the selected value; errors never carry the secret's values.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use placeholder::Key;
use secrets_init::extract::{ExtractError, extract};
use serde_json::Value;
use serde_json::value::RawValue;

const MARK: &str = "s3cr3t";

fuzz_target!(|input: (u8, &str, &str)| {
    let (kind, key_text, secret) = input;
    let key = match kind % 3 {
        0 => Key::Whole,
        1 => Key::Field(key_text.to_owned()),
        _ => Key::Pointer(format!("/{key_text}")),
    };
    let result = extract(secret, &key);
    let value: Option<Value> = serde_json::from_str(secret).ok();
    match (&key, &result) {
        (Key::Whole, r) => assert_eq!(r.as_deref(), Ok(secret)),
        (Key::Field(name), Ok(got)) => {
            if let Some(Value::Object(map)) = &value {
                let want = map
                    .get(name)
                    .expect("extracted a key serde_json does not see");
                same(got, want);
            }
        }
        (Key::Pointer(p), Ok(got)) => {
            if let Some(v) = &value {
                let want = v
                    .pointer(p)
                    .unwrap_or_else(|| panic!("pointer {p:?} found what serde_json does not"));
                same(got, want);
            }
        }
        (Key::Pointer(p), Err(ExtractError::PointerMissing { .. })) => {
            if let Some(v) = &value {
                assert!(v.pointer(p).is_none(), "pointer {p:?} missed a value");
            }
        }
        (Key::Field(name), Err(ExtractError::KeyMissing { .. })) => {
            if let Some(Value::Object(map)) = &value {
                assert!(!map.contains_key(name), "key {name:?} missed");
            }
        }
        _ => {}
    }
    // Hygiene: when the key names no value text, the error names none either.
    if let Err(e) = &result {
        let message = e.to_string();
        if !key_text.contains(MARK) && secret.contains(MARK) {
            let keys_carry_mark = serde_json::from_str::<BTreeMap<String, &RawValue>>(secret)
                .is_ok_and(|map| map.keys().any(|k| k.contains(MARK)));
            if !keys_carry_mark {
                assert!(!message.contains(MARK), "value text in error: {message}");
            }
        }
    }
});

fn same(got: &str, want: &Value) {
    match want {
        Value::String(s) => assert_eq!(got, s),
        Value::Null => assert_eq!(got, ""),
        other => {
            let parsed: Value = serde_json::from_str(got)
                .unwrap_or_else(|e| panic!("extracted {got:?} is not JSON: {e}"));
            assert_eq!(&parsed, other);
        }
    }
}
