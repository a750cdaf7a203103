//! Static consistency of the container stack (no Docker engine needed): compose services have
//! health checks and an ordered start, images are pinned, ports are loopback-only, Grafana has no
//! default admin password, Prometheus gets the generated compose config, the Dockerfiles pin
//! their bases and copy files that exist, and the native stack uses the same files.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
use std::collections::{BTreeMap, BTreeSet};

use e2e::config::{jobs, port, text as s};
use e2e::workspace;
use serde_yaml::Value;

fn yaml(relative: &str) -> Value {
    e2e::config::yaml(relative).unwrap()
}

#[test]
fn compose_services_have_healthchecks_ordered_start_and_pinned_images() {
    let compose = yaml("docker-compose.yml");
    let services = compose["services"].as_mapping().expect("services");
    let names: BTreeSet<String> = services.keys().map(|k| s(k).to_owned()).collect();
    let want: BTreeSet<String> = [
        "postgres",
        "api",
        "sidecar",
        "prometheus",
        "alertmanager",
        "jaeger",
        "grafana",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(names, want);
    for (name, svc) in services {
        let name = s(name);
        assert!(
            svc["healthcheck"]["test"]
                .as_sequence()
                .is_some_and(|t| !t.is_empty()),
            "{name}: healthcheck"
        );
        if let Some(deps) = svc["depends_on"].as_mapping() {
            for (dep, cond) in deps {
                let dep = s(dep);
                assert!(
                    names.contains(dep),
                    "{name} depends on unknown service {dep}"
                );
                let c = s(&cond["condition"]);
                assert!(
                    [
                        "service_started",
                        "service_healthy",
                        "service_completed_successfully"
                    ]
                    .contains(&c),
                    "{name} -> {dep}: {c}"
                );
                if c == "service_healthy" {
                    assert!(
                        services[dep]["healthcheck"].is_mapping(),
                        "{name} waits for {dep}'s health, which has no healthcheck"
                    );
                }
            }
        }
        match (svc.get("image"), svc.get("build")) {
            (_, Some(build)) => {
                let dockerfile = s(&build["dockerfile"]);
                assert_eq!(
                    s(&build["context"]),
                    ".",
                    "{name}: build context is the repository root"
                );
                assert!(
                    workspace::path(dockerfile).is_file(),
                    "{name}: {dockerfile} does not exist"
                );
            }
            (Some(image), None) => {
                let image = s(image);
                let tag = image.rsplit_once(':').map_or("", |(_, t)| t);
                assert!(
                    !tag.is_empty() && tag != "latest" && tag.chars().any(|c| c.is_ascii_digit()),
                    "{name}: image {image} is not pinned"
                );
            }
            (None, None) => panic!("{name}: neither image nor build"),
        }
        for p in svc["ports"].as_sequence().into_iter().flatten() {
            assert!(
                s(p).starts_with("127.0.0.1:"),
                "{name}: port {} must be bound to loopback",
                s(p)
            );
        }
        for v in svc["volumes"].as_sequence().into_iter().flatten() {
            if let Some(src) = s(v).split(':').next().filter(|src| src.starts_with("./")) {
                assert!(
                    workspace::path(src.trim_start_matches("./")).exists(),
                    "{name}: mounted {src} does not exist"
                );
            }
        }
    }
    // Start order: postgres -> api -> sidecar -> prometheus -> grafana, by health.
    for (svc, dep) in [
        ("api", "postgres"),
        ("sidecar", "api"),
        ("prometheus", "sidecar"),
        ("grafana", "prometheus"),
    ] {
        assert_eq!(
            s(&services[svc]["depends_on"][dep]["condition"]),
            "service_healthy",
            "{svc} must wait for a healthy {dep}"
        );
    }
}

#[test]
fn compose_has_no_default_grafana_password_and_mounts_the_compose_prometheus_config() {
    let compose = yaml("docker-compose.yml");
    let svc = &compose["services"];
    let pw = s(&svc["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]);
    assert!(
        pw.starts_with("${GRAFANA_ADMIN_PASSWORD:?"),
        "Grafana's admin password must be required, not defaulted: {pw}"
    );
    let prom_mounts: Vec<&str> = svc["prometheus"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(s)
        .collect();
    assert!(
        prom_mounts
            .contains(&"./prometheus/prometheus.compose.yml:/etc/prometheus/prometheus.yml:ro")
    );
    assert!(
        prom_mounts.contains(&"./prometheus/rules:/etc/prometheus/rules:ro"),
        "rule_files are relative to the config"
    );
    let am: Vec<&str> = svc["alertmanager"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(s)
        .collect();
    assert!(am.contains(&"./prometheus/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro"));
    // The compose Prometheus targets are these services on the ports their env sets.
    let env_port =
        |svc_name: &str, key: &str| port(s(&svc[svc_name]["environment"][key])).to_owned();
    let targets: BTreeMap<String, String> = jobs(&yaml("prometheus/prometheus.compose.yml"))
        .into_iter()
        .map(|j| (j.name, j.targets[0].clone()))
        .collect();
    assert_eq!(
        targets["api"],
        format!("api:{}", env_port("api", "API_LISTEN"))
    );
    assert_eq!(
        targets["sidecar"],
        format!("sidecar:{}", env_port("sidecar", "SIDECAR_ADMIN_LISTEN"))
    );
    assert_eq!(
        s(&svc["sidecar"]["environment"]["SIDECAR_UPSTREAM"]),
        format!("http://api:{}", env_port("api", "API_LISTEN"))
    );
}

#[test]
fn dockerfiles_pin_their_bases_and_copy_files_that_exist() {
    for name in ["docker/api.Dockerfile", "docker/sidecar.Dockerfile"] {
        let text = workspace::read(name).unwrap();
        let mut stages = BTreeSet::new();
        let mut joined = String::new();
        for line in text.lines() {
            // Continuation lines belong to the instruction above.
            joined.push_str(line.trim_end_matches('\\'));
            if line.ends_with('\\') {
                joined.push(' ');
                continue;
            }
            let instr = std::mem::take(&mut joined);
            let words: Vec<&str> = instr.split_whitespace().collect();
            match words.first().copied() {
                Some("FROM") => {
                    let image = words[1];
                    let tag = image.rsplit_once(':').map_or("", |(_, t)| t);
                    assert!(
                        stages.contains(image)
                            || (tag.chars().any(|c| c.is_ascii_digit()) && tag != "latest"),
                        "{name}: FROM {image} not pinned"
                    );
                    if let Some(i) = words.iter().position(|w| w.eq_ignore_ascii_case("AS")) {
                        stages.insert(words[i + 1].to_owned());
                    }
                }
                Some("COPY") if !words.iter().any(|w| w.starts_with("--from")) => {
                    for src in &words[1..words.len() - 1] {
                        assert!(
                            workspace::path(src).exists(),
                            "{name}: COPY {src}: no such file in the repository"
                        );
                    }
                }
                _ => {}
            }
        }
        assert!(
            workspace::path(&format!("{name}.dockerignore")).is_file(),
            "{name}: .dockerignore keeps target/ out of the context"
        );
    }
    for name in ["docker/api.Dockerfile", "docker/sidecar.Dockerfile"] {
        let ignore = workspace::read(&format!("{name}.dockerignore")).unwrap();
        assert!(
            ignore.lines().any(|l| l.trim() == "target"),
            "{name}.dockerignore must exclude target"
        );
    }
}

#[test]
fn the_native_stack_uses_the_same_files_as_compose() {
    let stack = workspace::read("scripts/stack").unwrap();
    for needle in [
        "prometheus/prometheus.yml",
        "config/sidecar.toml",
        "plugins/build",
        "scripts/setup",
    ] {
        assert!(
            stack.contains(needle),
            "scripts/stack does not use {needle}"
        );
    }
}
