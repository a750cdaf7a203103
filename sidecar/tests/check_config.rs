//! `sidecar --check-config`: the real binary validates a configuration with its own loaders
//! (the example plugins from `plugins/dist/`, built by `plugins/build`) and exits without
//! listening; each kind of mistake exits 1 naming what is wrong.

use std::{
    net::TcpListener,
    process::{Command, Output},
};

use testkit::plugins::dist;

/// Runs `--check-config` on `toml` written to a temporary directory, with `--listen` on an
/// address this test holds: a check that tried to listen would fail.
fn check(toml: &str) -> (Output, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("sidecar.toml");
    std::fs::write(&file, toml).expect("write config");
    let held = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut command = Command::new(env!("CARGO_BIN_EXE_sidecar"));
    for (name, _) in std::env::vars() {
        if name.starts_with("SIDECAR_") {
            command.env_remove(name);
        }
    }
    let output = command
        .arg("--check-config")
        .arg("--config")
        .arg(&file)
        .arg("--listen")
        .arg(held.local_addr().expect("addr").to_string())
        .output()
        .expect("run sidecar");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stdout, stderr)
}

#[test]
fn a_valid_configuration_with_real_plugins_prints_one_summary_line_and_exits_0() {
    let toml = format!(
        r#"
[[routes]]
template = "/items/{{id}}"

[limits]
grace_period = "10s"

[[plugins]]
name = "items-business"
path = {:?}
request_body = true

[[plugins]]
name = "client-slo"
path = {:?}
configuration = '{{"threshold_ms": 250}}'
"#,
        dist("items-business"),
        dist("client-slo")
    );
    let (output, stdout, stderr) = check(&toml);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with("sidecar: configuration OK")
            && stdout.contains("1 configured routes")
            && stdout.contains("grpc_reflection off")
            && stdout.contains("plugins [items-business, client-slo]"),
        "{stdout}"
    );
}

#[test]
fn grpc_reflection_is_shown_and_needs_an_http2_upstream_leg() {
    let reflection = "grpc_reflection = { required = true }\n";
    let (output, stdout, stderr) = check(&format!("{reflection}[protocols]\nupstream = \"h2c\"\n"));
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("grpc_reflection required"), "{stdout}");
    let (output, _, stderr) = check(reflection);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("`grpc_reflection` needs"), "{stderr}");
}

#[test]
fn an_unknown_key_exits_1_naming_it() {
    let (output, stdout, stderr) = check("[limits]\ngrace_perod = \"10s\"\n");
    assert_eq!(output.status.code(), Some(1), "stdout: {stdout}");
    assert!(stderr.contains("grace_perod"), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
}

#[test]
fn a_missing_plugin_file_exits_1_naming_the_plugin() {
    let (output, _, stderr) =
        check("[[plugins]]\nname = \"gone\"\npath = \"/nonexistent/gone.wasm\"\n");
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("gone"), "{stderr}");
}

#[test]
fn a_file_that_is_not_wasm_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bogus = dir.path().join("bogus.wasm");
    std::fs::write(&bogus, b"not a wasm module").expect("write");
    let (output, _, stderr) = check(&format!(
        "[[plugins]]\nname = \"bogus\"\npath = {bogus:?}\n"
    ));
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("loading plugins"), "{stderr}");
}

#[test]
fn a_route_template_the_router_rejects_exits_1() {
    let (output, _, stderr) =
        check("[[routes]]\ntemplate = \"/a/{x}\"\n[[routes]]\ntemplate = \"/a/{y}\"\n");
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("route"), "{stderr}");
}
