//! The flag contract between the webhook and secrets-init: every command line that
//! `mutation_modes::Flags::wrap` writes into a pod is read by secrets-init's own parser as the
//! options it means, with the program and its arguments after `--` untouched.
//!
//! The values of `--env-from`, `--role-arn` and `--role-external-id` are the webhook's checked
//! canonical spellings; none of their grammars allows `$`, so Kubernetes' `$(VAR)` / `$$`
//! expansion of the command line leaves them as written.

use std::ffi::OsString;
use std::time::Duration;

use clap::Parser as _;
use mutation_modes::command::{escape_image, escape_spec};
use mutation_modes::{Flags, SECRETS_INIT_BIN};
use secrets_init::cli::{Cli, LogFormat};

/// Programs as the webhook puts them behind `--`: arguments that look like secrets-init's
/// own flags, `--` again, a lone `-`, `$` in every escaped form, empty strings.
fn programs() -> Vec<Vec<String>> {
    let own = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    vec![
        own(&["/app"]),
        own(&["/bin/sh", "-c", "exec app --region x"]),
        own(&[
            "/app",
            "--region",
            "us-east-1",
            "--ignore-missing",
            "--probe",
            "--expand-args",
            "--no-batch",
            "--timeout=1",
            "--log-format",
            "xml",
            "--env-from",
            "awssm:not/ours",
            "--role-arn",
            "arn:aws:iam::123456789012:role/not-ours",
            "--role-external-id=x",
        ]),
        own(&["app", "--", "-x", "--", "-", "-V", "--help", "-h", ""]),
        own(&["-leading-dash-program", "--version"]),
        own(&["install", "/secrets-init-bin"]),
        vec![
            escape_spec("postgres://$(DB_USER)@db"),
            escape_spec("$$(literal) $HOME ${HOME} $"),
            escape_image("$(FROM_IMAGE) $$ $"),
            "$(ALREADY_ESCAPED_BY_NOBODY)".to_owned(),
        ],
    ]
}

#[test]
fn every_wrapped_command_line_parses_into_the_options_it_means() {
    // clap reads SECRETS_INIT_* too; with one set, the flags would not be all that is tested.
    let stray: Vec<String> = std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("SECRETS_INIT_"))
        .collect();
    assert!(stray.is_empty(), "unset {stray:?} to run this test");

    let env_froms: [&[&str]; 3] = [
        &[],
        &["awsssm:/prod/app/"],
        &[
            "awssm:prod/app##AWSPREVIOUS",
            "awssm:arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf",
            "awsssm:/",
        ],
    ];
    let roles = [
        (None, None),
        (Some("arn:aws:iam::123456789012:role/reader"), None),
        (
            Some("arn:aws-cn:iam::123456789012:role/path/reader"),
            Some("ext=id,1.@:/_-"),
        ),
    ];
    let mut checked = 0;
    for region in [None, Some("eu-west-1"), Some("cn-northwest-1")] {
        for ignore_missing in [false, true] {
            for probe in [false, true] {
                for program in programs() {
                    for env_from in env_froms {
                        for (role_arn, role_external_id) in roles {
                            let flags = Flags {
                                region: region.map(str::to_owned),
                                ignore_missing,
                                env_from: env_from.iter().map(|e| (*e).to_owned()).collect(),
                                role_arn: role_arn.map(str::to_owned),
                                role_external_id: role_external_id.map(str::to_owned),
                            };
                            let line = flags.wrap(program.clone(), probe);
                            assert_eq!(line[0], SECRETS_INIT_BIN);
                            let cli = Cli::try_parse_from(&line)
                                .unwrap_or_else(|e| panic!("{line:?} does not parse: {e}"));
                            let o = &cli.options;
                            assert!(cli.command.is_none(), "{line:?}: read as a subcommand");
                            assert_eq!(o.region.as_deref(), region, "{line:?}: --region");
                            assert_eq!(
                                o.ignore_missing, ignore_missing,
                                "{line:?}: --ignore-missing"
                            );
                            assert!(o.expand_args, "{line:?}: --expand-args");
                            assert_eq!(o.probe, probe, "{line:?}: --probe");
                            let got: Vec<String> =
                                o.env_from.iter().map(|e| e.to_string()).collect();
                            assert_eq!(got, env_from, "{line:?}: --env-from");
                            assert_eq!(o.role_arn.as_deref(), role_arn, "{line:?}: --role-arn");
                            assert_eq!(
                                o.role_external_id.as_deref(),
                                role_external_id,
                                "{line:?}: --role-external-id"
                            );
                            // The program's arguments set none of secrets-init's other options.
                            assert!(!o.no_batch, "{line:?}: --no-batch");
                            assert_eq!(o.timeout, Duration::from_secs(30), "{line:?}: --timeout");
                            assert_eq!(o.log_format, LogFormat::Text, "{line:?}: --log-format");
                            let want: Vec<OsString> = program.iter().map(OsString::from).collect();
                            assert_eq!(
                                cli.program, want,
                                "{line:?}: the program and its arguments"
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    assert_eq!(
        checked,
        3 * 2 * 2 * programs().len() * env_froms.len() * roles.len()
    );
}
