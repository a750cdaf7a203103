//! Where plugin modules are compiled. Compiling leaves its mark on the process that does it:
//! the allocator keeps the ~7 MiB of pages cranelift freed, and the ~4 MiB of cranelift's own
//! machine code it ran stay resident, for the life of the process, when one instance of an
//! example plugin needs ~1 MiB. So a server can have each module compiled by a child process
//! (the server's own binary, run with a flag that calls [`compile_into_cache`]), which writes
//! the compiled code to wasmtime's compiled-module cache and exits; this process then loads the
//! module from that cache (the engine's settings are the same, so the key is too) and never
//! runs cranelift. Without a `--wasm-cache-dir` the cache is a scratch directory removed when
//! the runtime is dropped. If the child cannot run or fails, the module is compiled here, as
//! without a child: a broken module then fails with the compiler's own error.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use wasmtime::{Engine, Module};

/// How a [`super::WasmRuntime`] compiles modules.
#[derive(Clone, Debug, Default)]
pub struct CompileOptions {
    /// Compiled modules are kept here across restarts (wasmtime's cache, keyed by the module's
    /// bytes and the engine's settings).
    pub cache_dir: Option<PathBuf>,
    /// Compile each module in a child process running this command; `None`: on a short-lived
    /// thread of this process.
    pub child: Option<ChildCommand>,
}

/// A command that compiles a module into a cache: run as `program args... CACHE_DIR` with the
/// module's bytes on its standard input, it must call [`compile_into_cache`] and exit 0.
#[derive(Clone, Debug)]
pub struct ChildCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

/// The child's side: compiles `wasm` with the engine settings every runtime uses, which writes
/// it into `cache_dir`.
///
/// # Errors
/// The module does not compile, or the engine cannot be made.
pub fn compile_into_cache(cache_dir: &Path, wasm: &[u8]) -> anyhow::Result<()> {
    let engine = Engine::new(&super::runtime::engine_config(Some(cache_dir))?)
        .map_err(anyhow::Error::from)
        .context("creating the wasm engine")?;
    Module::new(&engine, wasm).map_err(anyhow::Error::from)?;
    Ok(())
}

/// The runtime's compiler: a child process and the cache it compiles into, or nothing.
#[derive(Debug, Default)]
pub(crate) struct Compiler {
    child: Option<Child>,
}

#[derive(Debug)]
struct Child {
    command: ChildCommand,
    cache_dir: PathBuf,
    /// The scratch cache when none was configured; removed on drop.
    _scratch: Option<tempfile::TempDir>,
}

impl Compiler {
    /// Picks the cache directory the child writes to (the configured one, else a scratch one).
    /// A scratch directory that cannot be made means compiling here (read-only `/tmp`).
    pub(crate) fn new(options: &CompileOptions) -> Compiler {
        let Some(command) = options.child.clone() else {
            return Compiler::default();
        };
        let (cache_dir, scratch) = match &options.cache_dir {
            Some(dir) => (dir.clone(), None),
            None => match tempfile::Builder::new().prefix("redside-wasm-").tempdir() {
                Ok(dir) => (dir.path().to_owned(), Some(dir)),
                Err(error) => {
                    tracing::warn!(%error, "no scratch directory for compiled plugins; compiling them in this process");
                    return Compiler::default();
                }
            },
        };
        Compiler {
            child: Some(Child {
                command,
                cache_dir,
                _scratch: scratch,
            }),
        }
    }

    /// The directory the engine must cache into, so that it finds what the child wrote.
    pub(crate) fn cache_dir<'a>(&'a self, options: &'a CompileOptions) -> Option<&'a Path> {
        match &self.child {
            Some(child) => Some(&child.cache_dir),
            None => options.cache_dir.as_deref(),
        }
    }

    /// Compiles `wasm` for `engine`: by the child, then loaded from the cache; or here.
    pub(crate) fn compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        plugin: &str,
    ) -> anyhow::Result<Module> {
        let Some(child) = &self.child else {
            return compile_here(engine, wasm);
        };
        let started = std::time::Instant::now();
        let in_child = child.run(wasm);
        let module = compile_here(engine, wasm)?;
        match in_child {
            Ok(()) => tracing::info!(
                plugin,
                ms = started.elapsed().as_millis(),
                "plugin compiled in a child process"
            ),
            // Logged only when the module is fine: a broken one fails above, with the
            // compiler's own error.
            Err(error) => tracing::warn!(
                plugin,
                error = format!("{error:#}"),
                "compiling in a child process failed; compiled in this process instead"
            ),
        }
        Ok(module)
    }
}

impl Child {
    fn run(&self, wasm: &[u8]) -> anyhow::Result<()> {
        let mut process = Command::new(&self.command.program)
            .args(&self.command.args)
            .arg(&self.cache_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", self.command.program.display()))?;
        // The child reads all of its input before it writes anything; one that exits early
        // closes the pipe, and its exit status and message say why.
        let written = match process.stdin.take() {
            Some(mut stdin) => stdin.write_all(wasm),
            None => Ok(()),
        };
        let output = process
            .wait_with_output()
            .context("waiting for the compiler process")?;
        if !output.status.success() {
            let message = String::from_utf8_lossy(&output.stderr);
            bail!(
                "the compiler process exited with {}: {}",
                output.status,
                message.trim()
            );
        }
        written.context("handing the module to the compiler process")
    }
}

/// Compiles `wasm` on a short-lived thread: compiling allocates ~12 MiB, which a thread that
/// lives on (the caller's, or rayon's) would keep in its heap for the life of the process. An
/// ended thread's pages are not all returned either (mimalloc kept ~7 MiB of them, measured),
/// hence the child. Loading from the cache takes this path too, and compiles nothing.
fn compile_here(engine: &Engine, wasm: &[u8]) -> anyhow::Result<Module> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("wasm-compile".into())
            .spawn_scoped(scope, || {
                Module::new(engine, wasm).map_err(anyhow::Error::from)
            })
            .context("starting the compile thread")?
            .join()
            .map_err(|_| anyhow::anyhow!("the compile thread panicked"))?
    })
}
