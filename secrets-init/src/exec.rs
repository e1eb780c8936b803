//! Handing over to the program: Kubernetes-style `$(VAR)` expansion of its arguments
//! (`--expand-args`, contract §5) and `execvp`.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Expands one argument the way the kubelet expands `command`/`args`: `$$` gives `$`,
/// `$(NAME)` gives the value of NAME when it is set and stays as written otherwise, and any
/// other `$` is kept.
pub fn expand_arg(arg: &OsStr, lookup: &dyn Fn(&[u8]) -> Option<Vec<u8>>) -> OsString {
    let input = arg.as_bytes();
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b != b'$' || i + 1 >= input.len() {
            out.push(b);
            i += 1;
            continue;
        }
        match input[i + 1] {
            b'$' => {
                out.push(b'$');
                i += 2;
            }
            b'(' => match input[i + 2..].iter().position(|&c| c == b')') {
                Some(len) => {
                    let name = &input[i + 2..i + 2 + len];
                    match lookup(name) {
                        Some(value) => out.extend_from_slice(&value),
                        None => out.extend_from_slice(&input[i..i + 3 + len]),
                    }
                    i += 3 + len;
                }
                None => {
                    // An unclosed reference is kept as written.
                    out.extend_from_slice(b"$(");
                    i += 2;
                }
            },
            other => {
                out.push(b'$');
                out.push(other);
                i += 2;
            }
        }
    }
    OsString::from_vec(out)
}

/// Expands every argument with the program's final environment.
pub fn expand_args(args: &[OsString], env: &[(OsString, OsString)]) -> Vec<OsString> {
    let map: HashMap<&[u8], &[u8]> = env
        .iter()
        .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
        .collect();
    let lookup = |name: &[u8]| map.get(name).map(|v| v.to_vec());
    args.iter().map(|a| expand_arg(a, &lookup)).collect()
}

/// Replaces this process with the program (same PID). Returns only on failure.
pub fn exec(program: &OsStr, args: &[OsString], env: &[(OsString, OsString)]) -> io::Error {
    Command::new(program)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .exec()
}

/// Exit code for a failed exec: 127 not found, 126 found but not executable.
pub fn exit_code_for(err: &io::Error) -> u8 {
    match err.kind() {
        io::ErrorKind::NotFound => 127,
        _ => 126,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(s: &str) -> String {
        let lookup = |name: &[u8]| match name {
            b"DB" => Some(b"postgres://u:p@h/db".to_vec()),
            b"EMPTY" => Some(Vec::new()),
            b"DOLLAR" => Some(b"$(DB)".to_vec()),
            _ => None,
        };
        expand_arg(OsStr::new(s), &lookup).into_string().unwrap()
    }

    #[test]
    fn kubernetes_expansion_rules() {
        let cases = [
            ("plain", "plain"),
            ("$(DB)", "postgres://u:p@h/db"),
            ("x=$(DB);", "x=postgres://u:p@h/db;"),
            ("$(EMPTY)|", "|"),
            ("$(UNSET)", "$(UNSET)"),
            ("$$(DB)", "$(DB)"),
            ("$$$(DB)", "$postgres://u:p@h/db"),
            ("$$$$", "$$"),
            ("$", "$"),
            ("a$", "a$"),
            ("$x", "$x"),
            ("$(", "$("),
            ("$(DB", "$(DB"),
            ("$()", "$()"),
            ("$(DOLLAR)", "$(DB)"),
            ("ü$(DB)ü", "üpostgres://u:p@h/dbü"),
            ("$ü", "$ü"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input), want, "input {input:?}");
        }
    }

    #[test]
    fn webhook_escaping_round_trips() {
        // The kubelet expands `command`/`args` with the pod's env, where DB is still a
        // placeholder; secrets-init expands again with the real value.
        let kubelet = |s: &str| {
            let lookup = |name: &[u8]| (name == b"DB").then(|| b"awssm:db#url".to_vec());
            expand_arg(OsStr::new(s), &lookup).into_string().unwrap()
        };
        let real = |s: &str| kubelet_with_real_values(s);
        fn kubelet_with_real_values(s: &str) -> String {
            let lookup = |name: &[u8]| (name == b"DB").then(|| b"postgres://u:p@h/db".to_vec());
            expand_arg(OsStr::new(s), &lookup).into_string().unwrap()
        }
        for original in ["echo $HOME $(DB) $$ $$(DB) $(", "plain", "$(DB)"] {
            // From the image: Kubernetes never expands it, so the program must get it verbatim.
            let from_image = original.replace('$', "$$$$");
            assert_eq!(
                expand(&kubelet(&from_image)),
                original,
                "image value {original:?}"
            );
            // From the pod spec: the program must get what Kubernetes would have given it
            // with the real values in the environment.
            let from_spec = original.replace('$', "$$");
            assert_eq!(
                expand(&kubelet(&from_spec)),
                real(original),
                "spec value {original:?}"
            );
        }
    }

    #[test]
    fn exit_codes() {
        assert_eq!(
            exit_code_for(&io::Error::from(io::ErrorKind::NotFound)),
            127
        );
        assert_eq!(
            exit_code_for(&io::Error::from(io::ErrorKind::PermissionDenied)),
            126
        );
    }
}
