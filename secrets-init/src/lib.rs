//! secrets-init: resolve AWS Secrets Manager and SSM Parameter Store placeholders in the
//! environment, import `--env-from` variables, then `execve()` the real program, which keeps
//! this PID (contract §2–§3).

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;
use placeholder::{EnvFrom, Source, is_placeholder};

pub mod aws;
pub mod cli;
pub mod env_from;
pub mod exec;
pub mod extract;
pub mod fetch;
pub mod install;
pub mod parameters;
pub mod probe;
pub mod problem;
pub mod program_env;
pub mod report;
pub mod resolve;
pub mod secret;

use cli::{Cli, Command, Options};
use report::Failure;
use resolve::{Parsed, Resolved};

/// Exit codes (contract §3).
pub mod exit {
    pub const RESOLVE_FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NOT_EXECUTABLE: u8 = 126;
    pub const NOT_FOUND: u8 = 127;
}

/// Runs secrets-init with this process's arguments and environment. Returns only when it
/// does not exec.
pub fn main_entry() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version
        Err(err) if err.exit_code() == 0 => {
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => return ExitCode::from(command_line_error(&err)),
    };
    let level = std::env::var("SECRETS_INIT_LOG_LEVEL").ok();
    report::init_logging(cli.options.log_format, level.as_deref());

    if let Some(Command::Install { dir }) = &cli.command {
        return match install::install(dir) {
            Ok(path) => {
                tracing::info!("installed {}", path.display());
                ExitCode::SUCCESS
            }
            Err(err) => {
                tracing::error!("{err}");
                ExitCode::from(exit::RESOLVE_FAILED)
            }
        };
    }
    ExitCode::from(run(cli))
}

/// A command-line error found by the parser, before the options are known: reported in the
/// log format asked for (flag or env, read as far as they can be), and written to the
/// termination log like every other failure, so `kubectl describe pod` shows it.
fn command_line_error(err: &clap::Error) -> u8 {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let format = cli::early_option(&args, "log-format", "SECRETS_INIT_LOG_FORMAT")
        .and_then(|v| <cli::LogFormat as clap::ValueEnum>::from_str(&v, true).ok())
        .unwrap_or(cli::LogFormat::Text);
    let termination_log =
        cli::early_option(&args, "termination-log", "SECRETS_INIT_TERMINATION_LOG")
            .unwrap_or_else(|| cli::DEFAULT_TERMINATION_LOG.to_owned());
    // clap's message without its tips and usage, on one line.
    let rendered = err.render().to_string();
    let message: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:"))
        .filter(|l| {
            !l.is_empty() && !l.starts_with("tip:") && !l.starts_with("For more information")
        })
        .collect();
    let message = message.join(" ");
    let headline = format!(
        "command-line error: {}; see secrets-init --help",
        message.strip_prefix("error: ").unwrap_or(&message)
    );
    match format {
        // People reading text get clap's own message, with its tips and usage.
        cli::LogFormat::Text => {
            let _ = err.print();
        }
        cli::LogFormat::Json => {
            report::init_logging(format, None);
            tracing::error!("{headline}");
        }
    }
    report::write_termination_log(
        std::path::Path::new(&termination_log),
        &report::summary(&headline, &[]),
    );
    exit::USAGE
}

/// Resolves and execs; returns only when that failed, after reporting why.
fn run(cli: Cli) -> u8 {
    let Err(failure) = resolve_and_exec(&cli.options, &cli.program);
    failure.report(&cli.options.termination_log)
}

/// The steps of a run, in order; the first that fails ends it.
fn resolve_and_exec(options: &Options, command_line: &[OsString]) -> Result<Infallible, Failure> {
    let batch = batch_setting(options)?;
    let Some((program, args)) = command_line.split_first() else {
        return Err(Failure::new(
            exit::USAGE,
            "no program given: secrets-init [OPTIONS] -- <PROGRAM> [ARGS]...",
        ));
    };
    let original_env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let parsed = parse_environment(&original_env)?;
    let variables = parsed.templates.len();
    let resolved = resolve_environment(options, batch, &original_env, parsed)?;
    let resolved = check_resolved(resolved, variables)?;
    Err(exec_program(
        options,
        program,
        args,
        &original_env,
        &resolved,
    ))
}

/// `--no-batch`, or `SECRETS_INIT_BATCH` (which clap does not read: it is a negated flag).
fn batch_setting(options: &Options) -> Result<bool, Failure> {
    options
        .batch(std::env::var("SECRETS_INIT_BATCH").ok().as_deref())
        .map_err(|msg| Failure::new(exit::USAGE, msg))
}

/// Splits the environment; any malformed placeholder stops the run (exit 2) with a line for
/// each.
fn parse_environment(env: &[(OsString, OsString)]) -> Result<Parsed, Failure> {
    let mut parsed = resolve::parse_env(env.iter().cloned());
    if !parsed.malformed.is_empty() {
        let forms: Vec<&str> = Source::ALL.iter().map(|s| s.form()).collect();
        let headline = format!(
            "{} environment variable(s) hold a malformed placeholder (the form is {})",
            parsed.malformed.len(),
            forms.join(" or ")
        );
        return Err(Failure::with_problems(
            exit::USAGE,
            headline,
            std::mem::take(&mut parsed.malformed),
        ));
    }
    if !parsed.legacy.is_empty() {
        tracing::info!(
            "{} use the legacy awssm:// form; it keeps working, and awssm:<secret-id> is the current spelling",
            parsed.legacy.join(", ")
        );
    }
    Ok(parsed)
}

/// The program's environment: values taken from the main process (`--probe`), the rest
/// fetched from AWS when there is anything to fetch.
fn resolve_environment(
    options: &Options,
    batch: bool,
    original_env: &[(OsString, OsString)],
    parsed: Parsed,
) -> Result<Resolved, Failure> {
    let taken = if options.probe {
        take_from_main_process(options, original_env, &parsed)
    } else {
        Taken {
            prefilled: HashMap::new(),
            env_from: &options.env_from,
            imported: Vec::new(),
        }
    };
    let container = parsed.names();
    let wanted = resolve::wanted(&parsed, &taken.prefilled, taken.env_from);
    let fetched = if wanted.is_empty() {
        fetch::Fetched::default()
    } else {
        fetch_from_aws(
            options,
            batch,
            original_env,
            wanted,
            &parsed,
            taken.env_from,
        )?
    };
    let mut resolved = resolve::finish(
        parsed,
        taken.prefilled,
        taken.env_from,
        options.ignore_missing,
        &fetched,
    );
    env_from::append(taken.imported, &container, &mut resolved);
    Ok(resolved)
}

/// What `--probe` takes from the main process, and what is left to import.
struct Taken<'a> {
    /// Placeholder variables' values.
    prefilled: HashMap<String, String>,
    /// The `--env-from` references still to import.
    env_from: &'a [EnvFrom],
    /// Variables the main process imported.
    imported: Vec<(String, String)>,
}

/// `--probe`: the placeholder values the main process holds resolved, and, when it holds
/// variables imported with `--env-from`, those (then nothing is imported again).
fn take_from_main_process<'a>(
    options: &'a Options,
    original_env: &[(OsString, OsString)],
    parsed: &Parsed,
) -> Taken<'a> {
    let prefilled = probe::take_from_main_process(&options.probe_environ, &parsed.templates);
    let mut taken = Taken {
        prefilled,
        env_from: &options.env_from,
        imported: Vec::new(),
    };
    if options.env_from.is_empty() {
        return taken;
    }
    let own: HashSet<String> = original_env
        .iter()
        .map(|(name, _)| name.to_string_lossy().into_owned())
        .collect();
    taken.imported = probe::imported_by_main_process(&options.probe_environ, &own);
    if !taken.imported.is_empty() {
        taken.env_from = &[];
    }
    taken
}

/// Fetches `wanted` from AWS within `--timeout`, as `--role-arn` when given.
fn fetch_from_aws(
    options: &Options,
    batch: bool,
    original_env: &[(OsString, OsString)],
    wanted: fetch::Wanted,
    parsed: &Parsed,
    env_from: &[EnvFrom],
) -> Result<fetch::Fetched, Failure> {
    // The container's environment belongs to the app: what is not ours to use is hidden
    // from the AWS SDK (which reads this process's environment) before anything starts.
    for name in aws::vars_not_for_us(original_env) {
        // SAFETY: no other thread exists yet; the async runtime is built below.
        unsafe { std::env::remove_var(&name) };
    }
    // Before the runtime and the SDK: a bad SSL_CERT_FILE is a configuration error, and the
    // SDK would panic on it.
    let http_client = aws_https::https_client(aws_https::ssl_cert_file_from_env().as_deref())
        .map_err(|err| Failure::new(exit::USAGE, err.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| Failure::new(exit::RESOLVE_FAILED, format!("cannot start: {err}")))?;
    let role = options.role_arn.as_ref().map(|arn| aws::Role {
        arn: arn.clone(),
        external_id: options.role_external_id.clone(),
        session_name: aws::session_name(
            original_env
                .iter()
                .find(|(name, _)| name == "HOSTNAME")
                .and_then(|(_, value)| value.to_str()),
        ),
    });
    // STS needs a region even when every reference is an ARN naming its own.
    let arn_region = wanted
        .keys
        .iter()
        .find_map(|k| k.arn_region())
        .map(str::to_owned);
    let region = options.region.clone();
    let fetch_options = fetch::FetchOptions { batch };
    let work = async move {
        let mut sdk = aws::load_config(region, http_client).await;
        if let Some(role) = &role {
            sdk = aws::assume_role(&sdk, role, arn_region.as_deref())
                .await
                .map_err(|msg| Failure::new(exit::RESOLVE_FAILED, msg))?;
        }
        Ok(fetch::Fetcher::new(sdk, fetch_options)
            .fetch_all(&wanted)
            .await)
    };
    let outcome = runtime.block_on(async { tokio::time::timeout(options.timeout, work).await });
    drop(runtime);
    outcome.unwrap_or_else(|_| {
        let variables = parsed.templates.len();
        let imports = if env_from.is_empty() {
            String::new()
        } else {
            format!(" and {} --env-from reference(s)", env_from.len())
        };
        Err(Failure::new(
            exit::RESOLVE_FAILED,
            format!(
                "timed out after {:?} resolving {variables} placeholder variable(s){imports}; raise --timeout or check network access to AWS (Secrets Manager, Parameter Store, STS)",
                options.timeout
            ),
        ))
    })
}

/// Warns about what `--ignore-missing` emptied; any other problem stops the run (exit 1).
fn check_resolved(mut resolved: Resolved, variables: usize) -> Result<Resolved, Failure> {
    for p in &resolved.ignored {
        tracing::warn!(
            variable = %p.variable,
            reference = p.reference.as_deref().unwrap_or(""),
            code = %p.code,
            "{p}; set to the empty string (--ignore-missing)"
        );
    }
    if !resolved.problems.is_empty() {
        let imports = resolved
            .problems
            .iter()
            .filter(|p| p.variable == env_from::LABEL)
            .count();
        let placeholders = resolved.problems.len() - imports;
        let what = match (placeholders, imports) {
            (p, 0) => format!("{p} placeholder(s) could not be resolved"),
            (0, i) => format!("{i} --env-from reference(s) could not be imported"),
            (p, i) => format!(
                "{p} placeholder(s) could not be resolved and {i} --env-from reference(s) could not be imported"
            ),
        };
        let headline = format!("{what}; the program was not started");
        return Err(Failure::with_problems(
            exit::RESOLVE_FAILED,
            headline,
            std::mem::take(&mut resolved.problems),
        ));
    }
    tracing::debug!("resolved {variables} variable(s)");
    Ok(resolved)
}

/// Replaces this process with the program. Returns only when the exec failed: 127 when the
/// program was not found (naming the PATH searched), 126 otherwise.
fn exec_program(
    options: &Options,
    program: &OsString,
    args: &[OsString],
    original_env: &[(OsString, OsString)],
    resolved: &Resolved,
) -> Failure {
    let mut args = if options.expand_args {
        exec::expand_args(args, &resolved.env)
    } else {
        args.to_vec()
    };
    let err = exec::exec(program, &args, &resolved.env);
    // The exec failed: the expanded arguments may hold values (the environment is wiped
    // when `resolved` is dropped).
    args.iter_mut().for_each(resolve::wipe);
    let code = exec::exit_code_for(&err);
    let what = if code == exit::NOT_FOUND {
        "not found".to_owned()
    } else {
        format!("not executable ({err})")
    };
    let path_hint = if program.to_string_lossy().contains('/') {
        String::new()
    } else {
        format!(
            " in PATH={}",
            original_env
                .iter()
                .find(|(k, _)| k == "PATH")
                .map(|(_, v)| v.to_string_lossy().into_owned())
                .map(|v| if is_placeholder(&v) {
                    "(a placeholder)".into()
                } else {
                    v
                })
                .unwrap_or_else(|| "(unset)".into())
        )
    };
    Failure::new(
        code,
        format!(
            "cannot execute {}: {what}{path_hint}",
            program.to_string_lossy()
        ),
    )
}
