//! The sidecar binary: flags, logging, listeners; everything else is in the library.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

// The proxy allocates a little per request on every worker thread; mimalloc's thread-local
// heaps cost measurably less CPU per request than glibc's malloc (docs/benchmarks/sidecar.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The library's flags plus the binary's own.
#[derive(clap::Parser)]
#[command(
    name = "sidecar",
    version,
    about = "A reverse proxy that measures RED metrics per route."
)]
struct Args {
    #[command(flatten)]
    cli: sidecar::Cli,
    #[command(flatten)]
    tracing: traces::TracingArgs,
    /// Load and validate the configuration (flags, TOML file, route templates; every plugin
    /// compiled and started once), print a one-line summary and exit without listening:
    /// status 0 when it is valid, 1 with the error otherwise.
    #[arg(long)]
    check_config: bool,
    /// The child's side of compiling a plugin (`wasm_host::compile`): reads a module on
    /// standard input, compiles it into this compiled-module cache directory, and exits.
    #[arg(long, hide = true, value_name = "CACHE_DIR")]
    compile_plugin_into: Option<PathBuf>,
}

/// The flag the sidecar runs itself with to compile a plugin in a child process.
const COMPILE_FLAG: &str = "--compile-plugin-into";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let Args {
        cli,
        tracing,
        check_config,
        compile_plugin_into,
    } = Args::parse();
    if let Some(cache_dir) = compile_plugin_into {
        let mut wasm = Vec::new();
        std::io::stdin()
            .read_to_end(&mut wasm)
            .context("reading the module on standard input")?;
        return wasm_host::compile_into_cache(&cache_dir, &wasm);
    }
    if check_config {
        // A dry run for deployment checks: the summary on stdout, an error exits 1 via main.
        println!("{}", cli.check_config()?);
        return Ok(());
    }
    let mut config = sidecar::Config::load(&cli)?;
    // Compiling in a child keeps cranelift's memory out of this long-lived process; without a
    // path to our own binary, plugins compile here.
    config.plugin_compiler = std::env::current_exe()
        .ok()
        .map(|program| wasm_host::ChildCommand {
            program,
            args: vec![COMPILE_FLAG.into()],
        });
    config.tracing = tracing
        .settings("sidecar")
        .context("reading the tracing flags")?;
    let proxy = TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("binding the proxy listener {}", cli.listen))?;
    let admin = TcpListener::bind(cli.admin_listen)
        .await
        .with_context(|| format!("binding the admin listener {}", cli.admin_listen))?;
    sidecar::run(config, proxy, admin, serve::signal()).await
}
