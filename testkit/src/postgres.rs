//! Throwaway PostgreSQL clusters started from the installed binaries (`initdb`, `pg_ctl`).
//!
//! Debian keeps those binaries off `PATH` (`/usr/lib/postgresql/<v>/bin`); `PG_BIN` overrides
//! the search. PostgreSQL refuses to run as root, so as root every command runs through
//! `runuser -u postgres`. The server listens only on a unix socket in a short `/tmp` directory
//! (the socket path limit is ~107 bytes), so clusters never collide on ports.
//!
//! [`Postgres::shared`] is one cluster per test process; a watchdog shell stops it when the
//! process exits, however it exits, because statics are never dropped. A private cluster
//! ([`Postgres::start`]) can be stopped and restarted, or frozen ([`Postgres::freeze`]).

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    },
};

use anyhow::{Context, bail};
use tempfile::TempDir;

/// A running throwaway cluster. Dropping it stops the server and deletes its files.
pub struct Postgres {
    dir: TempDir,
    bin: PathBuf,
    as_postgres: bool,
}

static SHARED: OnceLock<Postgres> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

impl Postgres {
    /// The test process's shared cluster, started on first use.
    ///
    /// # Panics
    /// If no cluster can be started; the message says what to install.
    pub fn shared() -> &'static Postgres {
        SHARED.get_or_init(|| {
            let pg = Postgres::start();
            pg.stop_when_process_exits();
            pg
        })
    }

    /// Starts a private cluster (for tests that stop and restart the database).
    ///
    /// # Panics
    /// If no cluster can be started; the message says what to install.
    pub fn start() -> Postgres {
        Self::try_start().unwrap_or_else(|e| panic!("cannot start a throwaway PostgreSQL: {e:#}"))
    }

    fn try_start() -> anyhow::Result<Postgres> {
        let bin = find_bin_dir()?;
        let dir = tempfile::Builder::new()
            .prefix("pg")
            .tempdir_in("/tmp")
            .context("creating tempdir")?;
        let as_postgres = nix::unistd::geteuid().is_root();
        if as_postgres {
            let user = nix::unistd::User::from_name("postgres")?
                .context("running as root needs a `postgres` user: apt-get install postgresql")?;
            nix::unistd::chown(dir.path(), Some(user.uid), Some(user.gid))?;
        }
        let pg = Postgres {
            dir,
            bin,
            as_postgres,
        };
        let data = pg.data_dir();
        pg.run(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "-N",
            ],
        )?;
        pg.pg_ctl_start()?;
        Ok(pg)
    }

    /// A libpq key/value connection string for database `dbname`.
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "host={} port=5432 user=postgres dbname={dbname}",
            self.socket_dir().display()
        )
    }

    /// Creates a fresh, uniquely named database and returns its connection string.
    ///
    /// # Panics
    /// If `createdb` fails.
    pub fn create_database(&self) -> String {
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        let host = self.socket_dir();
        self.run(
            "createdb",
            &["-h", path_str(&host), "-U", "postgres", &name],
        )
        .unwrap_or_else(|e| panic!("createdb {name}: {e:#}"));
        self.url(&name)
    }

    /// Stops the server (fast shutdown: open connections are cut), keeping its data.
    ///
    /// # Panics
    /// If `pg_ctl stop` fails.
    pub fn stop(&self) {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &["-D", path_str(&data), "-m", "fast", "-w", "stop"],
        )
        .unwrap_or_else(|e| panic!("pg_ctl stop: {e:#}"));
    }

    /// Starts the server again after [`Postgres::stop`], on the same data and socket.
    ///
    /// # Panics
    /// If `pg_ctl start` fails.
    pub fn restart(&self) {
        self.pg_ctl_start()
            .unwrap_or_else(|e| panic!("pg_ctl start: {e:#}"));
    }

    /// Freezes the whole server (postmaster and every backend) with `SIGSTOP`, as a machine
    /// that stops scheduling it would: sockets stay open, nothing answers. The guard sends
    /// `SIGCONT` when dropped (so a failing test never leaves a frozen server that `pg_ctl
    /// stop` would wait on), or earlier with [`Frozen::thaw`].
    ///
    /// Every PostgreSQL child process leads its own process group, so each is signalled by
    /// pid: the postmaster first (it forks no more children), then its children.
    ///
    /// # Panics
    /// If the postmaster's pid cannot be read or a process cannot be signalled.
    pub fn freeze(&self) -> Frozen<'_> {
        let postmaster = self
            .postmaster_pid()
            .unwrap_or_else(|e| panic!("freezing PostgreSQL: {e:#}"));
        let mut frozen = Frozen {
            _pg: self,
            pids: vec![postmaster],
        };
        signal(postmaster, nix::sys::signal::Signal::SIGSTOP);
        for child in children(postmaster) {
            signal(child, nix::sys::signal::Signal::SIGSTOP);
            frozen.pids.push(child);
        }
        frozen
    }

    fn postmaster_pid(&self) -> anyhow::Result<nix::unistd::Pid> {
        let file = self.data_dir().join("postmaster.pid");
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let pid: i32 = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .with_context(|| format!("no pid on the first line of {}", file.display()))?;
        Ok(nix::unistd::Pid::from_raw(pid))
    }

    /// The server's log so far (what it reported: cancelled statements, lost clients, ...).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// The directory holding the unix socket (what libpq calls `host`).
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_ctl_start(&self) -> anyhow::Result<()> {
        let (data, log) = (self.data_dir(), self.dir.path().join("log"));
        let opts = format!(
            "-c listen_addresses='' -k {} -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=200",
            self.dir.path().display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&data),
                "-l",
                path_str(&log),
                "-w",
                "-t",
                "60",
                "-o",
                &opts,
                "start",
            ],
        )
        .with_context(|| {
            format!(
                "server log: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        })
    }

    fn run(&self, tool: &str, args: &[&str]) -> anyhow::Result<()> {
        let program = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = cmd
            .args(args)
            .output()
            .with_context(|| format!("running {}", program.display()))?;
        if !out.status.success() {
            bail!(
                "{tool} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// A detached shell that waits for this process to die, then stops the cluster and removes
    /// its directory: the cleanup a `static` never gets from `Drop`.
    fn stop_when_process_exits(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = format!(
            "{} -D {} -m immediate stop",
            pg_ctl.display(),
            self.data_dir().display()
        );
        let stop = if self.as_postgres {
            format!("runuser -u postgres -- {stop}")
        } else {
            stop
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            dir = self.dir.path().display()
        );
        let _ = Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
}

/// A server frozen by [`Postgres::freeze`]; running again once dropped.
pub struct Frozen<'a> {
    _pg: &'a Postgres,
    pids: Vec<nix::unistd::Pid>,
}

impl Frozen<'_> {
    /// Lets the server run again (`SIGCONT`).
    pub fn thaw(mut self) {
        self.resume();
    }

    /// Children first, so the postmaster finds them running when it resumes.
    fn resume(&mut self) {
        while let Some(pid) = self.pids.pop() {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
        }
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        self.resume();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self.run(
            "pg_ctl",
            &["-D", path_str(&data), "-m", "immediate", "stop"],
        );
    }
}

fn signal(pid: nix::unistd::Pid, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(pid, signal).unwrap_or_else(|e| panic!("{signal} to {pid}: {e}"));
}

/// The processes whose parent is `parent`, from `/proc/<pid>/stat` (the parent is the fourth
/// field, after the command name in parentheses, which may itself hold spaces).
fn children(parent: nix::unistd::Pid) -> Vec<nix::unistd::Pid> {
    let parent = parent.as_raw();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let ppid: i32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == parent).then(|| nix::unistd::Pid::from_raw(pid))
        })
        .collect()
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// `PG_BIN`, else `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`.
fn find_bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).context(
        "no PostgreSQL server binaries (initdb, pg_ctl) found: install them with \
         `apt-get install postgresql` (or set PG_BIN to their directory)",
    )
}
