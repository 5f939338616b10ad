//! `supctl export`: the microservices example as Kubernetes objects and as a
//! compose file, read back into the typed API objects. Runs the real supctl
//! binary, offline: no root, no supd.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, Secret, Service};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

fn example_units() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/microservices/units")
}

fn supctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_supctl"))
        .args(args)
        .output()
        .expect("run supctl")
}

fn export(format: &str, units: &Path, extra: &[&str]) -> (String, Vec<String>) {
    let units = units.to_str().expect("UTF-8 path");
    let mut args = vec!["export", format, "--units", units];
    args.extend_from_slice(extra);
    let out = supctl(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "supctl export {format} failed: {stderr}"
    );
    let warnings = stderr.lines().map(str::to_owned).collect();
    (String::from_utf8(out.stdout).expect("UTF-8 YAML"), warnings)
}

/// Every object of the stream, typed by its kind.
#[derive(Default)]
struct Objects {
    deployments: Vec<Deployment>,
    stateful_sets: Vec<StatefulSet>,
    jobs: Vec<Job>,
    services: Vec<Service>,
    config_maps: Vec<ConfigMap>,
    secrets: Vec<Secret>,
}

fn typed(yaml: &str) -> Objects {
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).expect("a YAML stream");
    let mut objects = Objects::default();
    for doc in &docs {
        match doc["kind"].as_str().unwrap_or_default() {
            "Deployment" => objects.deployments.push(parse(doc)),
            "StatefulSet" => objects.stateful_sets.push(parse(doc)),
            "Job" => objects.jobs.push(parse(doc)),
            "Service" => objects.services.push(parse(doc)),
            "ConfigMap" => objects.config_maps.push(parse(doc)),
            "Secret" => objects.secrets.push(parse(doc)),
            other => panic!("unexpected kind {other:?}"),
        }
    }
    objects
}

/// One document as its typed object; the API types reject a wrong shape.
fn parse<T: serde::de::DeserializeOwned>(doc: &Value) -> T {
    serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{} does not deserialize: {e}: {doc:#}", doc["kind"]))
}

fn name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

fn pod_of_deployment<'a>(objects: &'a Objects, unit: &str) -> &'a PodSpec {
    let d = objects
        .deployments
        .iter()
        .find(|d| name(&d.metadata) == unit)
        .unwrap_or_else(|| panic!("no Deployment {unit}"));
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec")
}

fn main_container(pod: &PodSpec) -> &Container {
    &pod.containers[0]
}

#[test]
fn microservices_to_kubernetes() {
    let (yaml, warnings) = export(
        "kubernetes",
        &example_units(),
        &["--registry", "registry.example/shop"],
    );
    let objects = typed(&yaml);

    // Workloads: state on the host makes db a StatefulSet, the oneshot a Job.
    let mut deployments: Vec<&str> = objects
        .deployments
        .iter()
        .map(|d| name(&d.metadata))
        .collect();
    deployments.sort_unstable();
    assert_eq!(deployments, ["api", "cache", "web"]);
    let db = &objects.stateful_sets[0];
    assert_eq!(name(&db.metadata), "db");
    let db_spec = db.spec.as_ref().expect("spec");
    let claims = db_spec.volume_claim_templates.as_ref().expect("claims");
    assert_eq!(claims.len(), 1);
    let db_pod = db_spec.template.spec.as_ref().expect("pod");
    let mounts = main_container(db_pod)
        .volume_mounts
        .as_ref()
        .expect("mounts");
    assert!(
        mounts
            .iter()
            .any(|m| m.mount_path == "/srv/sup-example/data/pg"
                && Some(&m.name) == claims[0].metadata.name.as_ref())
    );
    assert_eq!(db_pod.termination_grace_period_seconds, Some(30));
    assert_eq!(objects.jobs.len(), 1);
    assert_eq!(name(&objects.jobs[0].metadata), "setup");

    // Services under the names units reach each other by; web's published port.
    let mut services: Vec<&str> = objects.services.iter().map(|s| name(&s.metadata)).collect();
    services.sort_unstable();
    assert_eq!(services, ["api", "cache", "db", "web", "web-published"]);
    let published = objects
        .services
        .iter()
        .find(|s| name(&s.metadata) == "web-published")
        .expect("web-published");
    let port = &published
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .expect("ports")[0];
    assert_eq!(
        (port.port, port.target_port.clone()),
        (8080, Some(IntOrString::Int(8080)))
    );

    // The API: limits, its http check as readiness and liveness, env, identity.
    let api_pod = pod_of_deployment(&objects, "api");
    let api = main_container(api_pod);
    assert_eq!(
        api.image.as_deref(),
        Some("registry.example/shop/api:latest")
    );
    let limits = api
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .expect("limits");
    assert_eq!(limits.get("memory"), Some(&Quantity("128Mi".into())));
    assert_eq!(limits.get("cpu"), Some(&Quantity("500m".into())));
    for probe in [api.readiness_probe.as_ref(), api.liveness_probe.as_ref()] {
        let probe = probe.expect("probe");
        let get = probe.http_get.as_ref().expect("httpGet");
        assert_eq!(get.path.as_deref(), Some("/healthz"));
        assert_eq!(get.port, IntOrString::Int(8000));
        assert_eq!(probe.period_seconds, Some(5));
        assert_eq!(probe.timeout_seconds, Some(2));
        assert_eq!(probe.failure_threshold, Some(3));
    }
    assert!(api.startup_probe.is_some());
    let security = api.security_context.as_ref().expect("securityContext");
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    let caps = security.capabilities.as_ref().expect("capabilities");
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_owned()][..]));
    let env = objects
        .config_maps
        .iter()
        .find(|c| name(&c.metadata) == "api-env")
        .expect("api-env");
    assert_eq!(
        env.data
            .as_ref()
            .and_then(|d| d.get("DB_HOST"))
            .map(String::as_str),
        Some("db")
    );

    // Redis's tcp check and its arguments ("no" stays a string).
    let cache = main_container(pod_of_deployment(&objects, "cache"));
    let tcp = cache
        .liveness_probe
        .as_ref()
        .and_then(|p| p.tcp_socket.as_ref())
        .expect("tcpSocket");
    assert_eq!(tcp.port, IntOrString::Int(6379));
    assert!(
        cache
            .command
            .as_ref()
            .expect("command")
            .contains(&"no".to_owned())
    );

    // What was dropped is said, per unit.
    for want in [
        "warning: unit db: writable path /srv/sup-example/data/pg",
        "warning: unit api: pids_max = 64 is not expressed",
        "warning: unit web: stop_signal = SIGQUIT",
        "warning: unit api: networks frontend, backend are not expressed",
        "warning: unit setup: runs in the host's network",
        "warning: unit web: has no image",
    ] {
        assert!(
            warnings.iter().any(|w| w.starts_with(want)),
            "no {want:?} in {warnings:#?}"
        );
    }
}

#[test]
fn host_bind_is_warned() {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(example_units()).expect("example units") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
    }
    let reports = "[service]\nexec = [\"/usr/bin/reports\"]\n\n[[mount]]\ntype = \"bind\"\nsource = \"/srv/reports\"\ntarget = \"/reports\"\nreadonly = true\n";
    std::fs::write(dir.path().join("reports.toml"), reports).expect("write");
    let out = dir.path().join("out");
    let (stdout, warnings) = export(
        "kubernetes",
        dir.path(),
        &["--output", out.to_str().expect("UTF-8")],
    );
    assert!(stdout.is_empty(), "--output writes files, not stdout");
    assert!(
        warnings.iter().any(|w| w.starts_with(
            "warning: unit reports: bind /srv/reports from the host at /reports cannot be expressed"
        )),
        "{warnings:#?}"
    );
    for unit in ["api", "cache", "db", "reports", "setup", "web"] {
        let text =
            std::fs::read_to_string(out.join(format!("{unit}.yaml"))).expect("a file per unit");
        typed(&text);
    }
}

#[test]
fn microservices_to_compose() {
    let (yaml, _) = export("compose", &example_units(), &[]);
    let file: Value = serde_saphyr::from_str(&yaml).expect("compose YAML");
    let services = file["services"].as_object().expect("services");
    let mut names: Vec<&str> = services.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["api", "cache", "db", "setup", "web"]);
    let web = &services["web"];
    assert_eq!(web["ports"], serde_json::json!(["8080:8080/tcp"]));
    assert_eq!(web["stop_signal"], "SIGQUIT");
    let api = &services["api"];
    assert_eq!(api["deploy"]["resources"]["limits"]["memory"], "128m");
    assert_eq!(api["deploy"]["resources"]["limits"]["cpus"], "0.5");
    assert_eq!(api["healthcheck"]["interval"], "5s");
    assert_eq!(api["healthcheck"]["retries"], 3);
    assert!(
        api["healthcheck"]["test"]
            .as_array()
            .expect("test")
            .iter()
            .any(|a| a == "http://127.0.0.1:8000/healthz")
    );
    assert_eq!(api["depends_on"]["db"]["condition"], "service_healthy");
    assert_eq!(
        services["db"]["depends_on"]["setup"]["condition"],
        "service_completed_successfully"
    );
    assert_eq!(file["networks"]["backend"]["internal"], true);
    assert_eq!(
        file["networks"]["backend"]["ipam"]["config"][0]["subnet"],
        "10.90.2.0/24"
    );
}

#[test]
fn broken_unit_fails_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bad.toml"), "[service]\nexec = 5\n").expect("write");
    let out = supctl(&[
        "export",
        "kubernetes",
        "--units",
        dir.path().to_str().expect("UTF-8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.toml:2:"), "{stderr}");
    assert!(stderr.contains("supd --check"), "{stderr}");
    assert!(out.stdout.is_empty());
}
