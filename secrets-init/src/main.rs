//! `secrets-init`: see the library for what it does.

fn main() -> std::process::ExitCode {
    secrets_init::main_entry()
}
