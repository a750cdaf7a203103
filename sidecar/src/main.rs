//! The sidecar binary: flags, logging, listeners; everything else is in the library.

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

// The proxy allocates a little per request on every worker thread; mimalloc's thread-local
// heaps cost measurably less CPU per request than glibc's malloc (docs/benchmarks/sidecar.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = sidecar::Cli::parse();
    let config = sidecar::Config::load(&cli)?;
    let proxy = TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("binding the proxy listener {}", cli.listen))?;
    let admin = TcpListener::bind(cli.admin_listen)
        .await
        .with_context(|| format!("binding the admin listener {}", cli.admin_listen))?;
    sidecar::run(config, proxy, admin, serve::signal()).await
}
