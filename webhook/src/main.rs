use std::process::ExitCode;

use anyhow::Context as _;
use secrets_init_webhook::Error;
use secrets_init_webhook::config::Config;

// mimalloc rather than the C library's allocator: allocation was a quarter of the CPU per
// admission with glibc, and the shipped static binary would otherwise use musl's, which is
// slower still under threads (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// memcpy, memmove, memset, memcmp, bcmp in place of musl's in the static x86_64 build (the
// crate exports them only there); the import links it although nothing names it.
use fast_mem as _;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("secrets-init-webhook: {e:#}");
            // Bad configuration is a usage error (2), like clap's own; anything else is 1.
            if matches!(e.downcast_ref::<Error>(), Some(Error::Config(_))) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn run() -> anyhow::Result<()> {
    let invocation = match Config::from_args(std::env::args_os()) {
        Ok(i) => i,
        Err(Error::Cli(e)) => e.exit(),
        Err(e) => return Err(e.into()),
    };
    let config = invocation.config;
    if invocation.print_config {
        let yaml = serde_yaml_ng::to_string(&config).context("rendering the configuration")?;
        std::io::Write::write_all(&mut std::io::stdout(), yaml.as_bytes())?;
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let telemetry =
        runtime.block_on(async { secrets_init_webhook::telemetry::init(config.log_format) })?;
    let result = runtime.block_on(secrets_init_webhook::run(config));
    if let Err(e) = &result {
        tracing::error!(error = %e, "secrets-init-webhook failed");
    }
    telemetry.shutdown();
    result.map_err(Into::into)
}
