//! The real binary: configuration from the environment, SIGTERM drains in-flight requests.

use std::time::Duration;

use testkit::process::UnixSignal as Signal;

use crate::stub::Stub;

/// The real binary on free ports, started with `args` and `envs` and ready (`/readyz`).
struct Running {
    process: testkit::Process,
    port: u16,
    admin_port: u16,
}

impl Running {
    async fn start(args: &[&str], envs: &[(&str, String)], ready_within: Duration) -> Running {
        let (port, admin_port) = (testkit::free_port(), testkit::free_port());
        let (listen, admin) = (
            format!("127.0.0.1:{port}"),
            format!("127.0.0.1:{admin_port}"),
        );
        let all_args = [&["--listen", &listen, "--admin-listen", &admin][..], args].concat();
        let mut process = testkit::Process::spawn(
            env!("CARGO_BIN_EXE_sidecar"),
            &all_args,
            envs.iter().map(|(k, v)| (*k, v.as_str())),
        );
        process
            .wait_ready(
                &format!("http://127.0.0.1:{admin_port}/readyz"),
                ready_within,
            )
            .await
            .unwrap();
        Running {
            process,
            port,
            admin_port,
        }
    }

    fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.admin_port)
    }

    /// After a signal: one more scrape lets the admin listener stop without waiting for
    /// final_scrape_wait; then the exit status.
    async fn exit_status(&mut self) -> std::process::ExitStatus {
        let _ = testkit::http::get(&self.metrics_url()).await;
        self.process
            .wait_exit(Duration::from_secs(10))
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn sigterm_lets_the_in_flight_request_finish_then_exits_cleanly() {
    let stub = Stub::start().await;
    let mut sidecar = Running::start(
        &[],
        &[
            ("SIDECAR_UPSTREAM", stub.url()),
            ("RUST_LOG", "info".into()),
        ],
        Duration::from_secs(20),
    )
    .await;

    let url = format!("http://127.0.0.1:{}/slow/600", sidecar.port);
    let pending = tokio::spawn(async move { testkit::http::get(&url).await });
    let metrics = sidecar.metrics_url();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let scrape =
            testkit::Scrape::parse(&testkit::http::get(&metrics).await.unwrap().text()).unwrap();
        if scrape.value("http_requests_inprogress", &[]) == Some(1.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "request never in flight"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    sidecar.process.signal(Signal::SIGTERM);
    let response = pending
        .await
        .unwrap()
        .expect("in-flight request failed on SIGTERM");
    assert_eq!(response.status, 200);
    let status = sidecar.exit_status().await;
    let output = sidecar.process.output_text();
    assert!(status.success(), "exit status {status}: {output}");
    assert!(output.contains("SIGTERM"), "{output}");
}

#[tokio::test]
async fn bad_config_file_fails_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sidecar.toml");
    std::fs::write(&config, "[limits]\nconect_timeout = \"1s\"\n").unwrap();
    let mut process = testkit::Process::spawn(
        env!("CARGO_BIN_EXE_sidecar"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        [("RUST_LOG", "info")],
    );
    let status = process.wait_exit(Duration::from_secs(10)).await.unwrap();
    assert!(!status.success());
    let output = process.output_text();
    assert!(
        output.contains("conect_timeout") && output.contains("sidecar.toml"),
        "{output}"
    );
}

/// Compiled modules in the cache: wasmtime names them by their hash, with no extension (its
/// usage statistics, writes in progress and cleanup lock have one).
fn cached_modules(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_none() {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// `--wasm-cache-dir`: the first start has a child process compile the plugin into the cache
/// and loads it from there (one module: this process's key is the child's); a restart finds it
/// there (no module is added) and the plugin runs as before.
#[tokio::test]
async fn wasm_cache_dir_keeps_compiled_plugins_across_restarts() {
    let stub = Stub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("wasm-cache");
    let config = client_slo_config(dir.path());
    let mut after_first = Vec::new();
    for start in 0..2 {
        let sidecar = start_with_plugin(
            &stub,
            &config,
            ("SIDECAR_WASM_CACHE_DIR", cache.display().to_string()),
        )
        .await;
        assert_plugin_sees_a_request(&sidecar, start).await;
        let modules = cached_modules(&cache);
        if start == 0 {
            assert_eq!(modules.len(), 1, "one module, compiled once: {modules:?}");
            after_first = modules;
        } else {
            assert_eq!(modules, after_first, "the restart compiled again");
        }
        stop_having_compiled_in_a_child(sidecar, start).await;
    }
}

/// Without `--wasm-cache-dir` the child compiles into a scratch cache under `TMPDIR`, which
/// holds the one module while the sidecar runs and is gone when it exits.
#[tokio::test]
async fn plugins_compile_in_a_child_process_through_a_scratch_cache() {
    let stub = Stub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = client_slo_config(dir.path());
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let sidecar = start_with_plugin(&stub, &config, ("TMPDIR", tmp.display().to_string())).await;
    assert_plugin_sees_a_request(&sidecar, 0).await;
    let scratch: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(scratch.len(), 1, "{scratch:?}");
    assert!(
        scratch[0]
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("redside-wasm-"),
        "{scratch:?}"
    );
    assert_eq!(cached_modules(&scratch[0]).len(), 1, "{scratch:?}");
    stop_having_compiled_in_a_child(sidecar, 0).await;
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "the scratch cache was left behind"
    );
}

/// The binary loading the plugin of `config`, with `env` added to its environment.
async fn start_with_plugin(stub: &Stub, config: &std::path::Path, env: (&str, String)) -> Running {
    Running::start(
        &["--config", config.to_str().unwrap()],
        &[
            ("SIDECAR_UPSTREAM", stub.url()),
            env,
            ("RUST_LOG", "info".into()),
        ],
        Duration::from_secs(30),
    )
    .await
}

/// SIGTERM: the sidecar exits cleanly, and its log says a child process compiled the plugin.
async fn stop_having_compiled_in_a_child(mut sidecar: Running, start: usize) {
    sidecar.process.signal(Signal::SIGTERM);
    let status = sidecar.exit_status().await;
    let output = sidecar.process.output_text();
    assert!(status.success(), "{output}");
    assert!(
        output.contains("plugin compiled in a child process"),
        "start {start}: {output}"
    );
}

/// A TOML file in `dir` loading the client-slo example plugin.
fn client_slo_config(dir: &std::path::Path) -> std::path::PathBuf {
    let config = dir.join("sidecar.toml");
    std::fs::write(
        &config,
        format!(
            "[[plugins]]\nname = \"client-slo\"\npath = {:?}\n",
            testkit::plugins::dist("client-slo")
        ),
    )
    .unwrap();
    config
}

/// One request through the sidecar, counted by client-slo.
async fn assert_plugin_sees_a_request(sidecar: &Running, start: usize) {
    let response = testkit::http::get(&format!("http://127.0.0.1:{}/hello", sidecar.port))
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    let metrics = sidecar.metrics_url();
    let scrape =
        testkit::Scrape::parse(&testkit::http::get(&metrics).await.unwrap().text()).unwrap();
    assert_eq!(
        scrape.value("client_requests_total", &[("agent", "other")]),
        Some(1.0),
        "start {start}: the plugin saw the request"
    );
}
