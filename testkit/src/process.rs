//! A child process under test: spawned with its output captured to a file, killed on drop.

use std::{
    fs::File,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use nix::{sys::signal::Signal, unistd::Pid};

/// A running child process. Dropping it kills the process (SIGKILL) and reaps it.
pub struct Process {
    child: Child,
    name: String,
    log: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl Process {
    /// Spawns `program` with `args` and extra environment `envs`; stdout and stderr go to a log
    /// file readable with [`Process::output_text`].
    ///
    /// # Panics
    /// If the program cannot be started (the message names it).
    pub fn spawn<I, K, V>(program: impl AsRef<Path>, args: &[&str], envs: I) -> Process
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<std::ffi::OsStr>,
        V: AsRef<std::ffi::OsStr>,
    {
        let program = program.as_ref();
        let log_dir = tempfile::tempdir().expect("tempdir for process log");
        let log = log_dir.path().join("output.log");
        let out = File::create(&log).expect("creating process log");
        let err = out.try_clone().expect("cloning log handle");
        let child = Command::new(program)
            .args(args)
            .envs(envs)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e} (was it built?)", program.display()));
        let name = program.file_name().map_or_else(
            || program.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        Process {
            child,
            name,
            log,
            _log_dir: log_dir,
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Polls `url` until it answers 2xx, the process exits, or `timeout` passes.
    ///
    /// # Errors
    /// If the process died or never became ready; the error carries its output.
    pub async fn wait_ready(&mut self, url: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited with {status} before becoming ready:\n{}",
                    self.name,
                    self.output_text()
                );
            }
            if let Ok(resp) = crate::http::get(url).await
                && resp.status.is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} not ready at {url} after {timeout:?}:\n{}",
                    self.name,
                    self.output_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends `signal` (e.g. `Signal::SIGTERM`) to the process.
    ///
    /// # Panics
    /// If the signal cannot be delivered.
    pub fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits i32"));
        nix::sys::signal::kill(pid, signal)
            .unwrap_or_else(|e| panic!("kill -{signal} {}: {e}", self.name));
    }

    /// Waits for the process to exit, at most `timeout`.
    ///
    /// # Errors
    /// If it is still running after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().context("waiting for child")? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} still running after {timeout:?}:\n{}",
                    self.name,
                    self.output_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn output_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port that was free a moment ago (bind to :0, read, release). For child processes that
/// must be told their port; in-process servers should bind `127.0.0.1:0` themselves instead.
///
/// # Panics
/// If no port can be bound on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

/// Re-exported so tests need not depend on `nix` themselves.
pub use nix::sys::signal::Signal as UnixSignal;
