//! Table tests: a unit's text in, the objects (parsed back from the YAML) and
//! warnings out.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::export::{Host, Options, loaded};
use crate::spawn::accounts::Accounts;

fn host() -> Host {
    let accounts = Accounts::parse(
        "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        "root:x:0:\napp:x:1000:\nextra:x:2000:\n",
    );
    Host {
        accounts: BTreeMap::from([("/".into(), accounts)]),
        ..Host::default()
    }
}

/// Every object of the units' export, as JSON, and the warnings' messages.
fn export_with(units: &[(&str, &str)], opts: &Options) -> (Vec<Value>, Vec<String>) {
    let export = super::export(&loaded(units), &host(), opts).expect("export");
    let objects = serde_saphyr::from_multiple(&export.stream()).expect("YAML parses back");
    let warnings = export.warnings.iter().map(|w| w.to_string()).collect();
    (objects, warnings)
}

fn export(text: &str) -> (Vec<Value>, Vec<String>) {
    export_with(&[("app", text)], &Options::default())
}

fn kind<'a>(objects: &'a [Value], kind: &str) -> Option<&'a Value> {
    objects.iter().find(|o| o["kind"] == kind)
}

fn container(objects: &[Value]) -> &Value {
    let workload = objects
        .iter()
        .find(|o| ["Deployment", "StatefulSet", "Job"].contains(&o["kind"].as_str().unwrap_or("")))
        .expect("a workload");
    &workload["spec"]["template"]["spec"]["containers"][0]
}

fn pod(objects: &[Value]) -> &Value {
    let workload = objects
        .iter()
        .find(|o| ["Deployment", "StatefulSet", "Job"].contains(&o["kind"].as_str().unwrap_or("")))
        .expect("a workload");
    &workload["spec"]["template"]["spec"]
}

const EXEC: &str = "[service]\nexec = [\"/bin/app\"]\nrestart = \"always\"\n";

#[test]
fn workload_kinds() {
    for (extra, want) in [
        ("", "Deployment"),
        (
            "[[mount]]\ntype = \"bind\"\nsource = \"/srv/data\"\ntarget = \"/data\"\n",
            "StatefulSet",
        ),
        (
            "[container]\nprotect_system = \"strict\"\nwritable_paths = [\"/var/lib/app\"]\n",
            "StatefulSet",
        ),
        ("type = \"oneshot\"\n", "Job"),
    ] {
        let (objects, _) = export(&format!("[service]\nexec = [\"/bin/app\"]\n{extra}"));
        assert!(kind(&objects, want).is_some(), "{extra}: {objects:?}");
    }
}

#[test]
fn state_becomes_claim_templates() {
    let bind = "[[mount]]\ntype = \"bind\"\nsource = \"/srv/data\"\ntarget = \"/data\"\n";
    let (objects, warnings) = export(&format!("{EXEC}{bind}"));
    let set = kind(&objects, "StatefulSet").expect("StatefulSet");
    assert_eq!(set["spec"]["serviceName"], "app");
    assert_eq!(
        set["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "data-0"
    );
    assert_eq!(container(&objects)["volumeMounts"][0]["mountPath"], "/data");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("bind /srv/data from the host")),
        "{warnings:?}"
    );
}

#[test]
fn settings_carry_over() {
    // (extra unit text, JSON pointer into the object, expected value)
    let cases: &[(&str, &str, &str, Value)] = &[
        (
            "[container]\ncapabilities = [\"chown\"]\n",
            "container",
            "/securityContext/capabilities",
            json!({"add": ["CHOWN"], "drop": ["ALL"]}),
        ),
        (
            "",
            "container",
            "/securityContext/allowPrivilegeEscalation",
            json!(false),
        ),
        (
            "",
            "container",
            "/securityContext/seccompProfile/type",
            json!("RuntimeDefault"),
        ),
        (
            "[container]\nseccomp = false\n",
            "container",
            "/securityContext/seccompProfile/type",
            json!("Unconfined"),
        ),
        (
            "[container]\nreadonly_root = true\n",
            "container",
            "/securityContext/readOnlyRootFilesystem",
            json!(true),
        ),
        (
            "[resources]\nmemory_max = \"256M\"\ncpu_max = \"150%\"\ncpu_weight = 50\n",
            "container",
            "/resources",
            json!({"limits": {"memory": "256Mi", "cpu": "1500m"}, "requests": {"cpu": "500m"}}),
        ),
        (
            "[[mount]]\ntype = \"tmpfs\"\ntarget = \"/cache\"\nsize = \"64M\"\n",
            "pod",
            "/volumes/0/emptyDir",
            json!({"medium": "Memory", "sizeLimit": "64Mi"}),
        ),
        (
            "stop_timeout = \"30s\"\n",
            "pod",
            "/terminationGracePeriodSeconds",
            json!(30),
        ),
        (
            "user = \"app\"\n",
            "pod",
            "/securityContext",
            json!({"runAsUser": 1000, "runAsGroup": 1000, "runAsNonRoot": true}),
        ),
        (
            "user = 33\ngroup = \"extra\"\n",
            "pod",
            "/securityContext",
            json!({"runAsUser": 33, "runAsGroup": 2000, "runAsNonRoot": true}),
        ),
        (
            "exec_start_pre = [[\"/bin/migrate\", \"--up\"]]\n",
            "pod",
            "/initContainers/0/command",
            json!(["/bin/migrate", "--up"]),
        ),
        (
            "[container]\nnamespaces = [\"user\", \"mnt\", \"pid\", \"uts\", \"ipc\", \"cgroup\"]\nuserns_base = 100000\n",
            "pod",
            "/hostUsers",
            json!(false),
        ),
        (
            "[health]\nexec = [\"/bin/check\", \"-q\"]\ninterval = \"7s\"\nretries = 4\n",
            "container",
            "/readinessProbe",
            json!({"exec": {"command": ["/bin/check", "-q"]}, "periodSeconds": 7, "failureThreshold": 4, "timeoutSeconds": 5}),
        ),
        (
            "[health]\ntcp = \"127.0.0.1:5432\"\n",
            "container",
            "/livenessProbe/tcpSocket/port",
            json!(5432),
        ),
        (
            "[health]\nhttp = \"http://127.0.0.1:8080/healthz\"\nstart_interval = \"2s\"\n",
            "container",
            "/startupProbe",
            json!({"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 2, "failureThreshold": 45, "timeoutSeconds": 5}),
        ),
    ];
    for (extra, base, pointer, want) in cases {
        let (objects, _) = export(&format!("{EXEC}{extra}"));
        let root = if *base == "pod" {
            pod(&objects)
        } else {
            container(&objects)
        };
        assert_eq!(
            root.pointer(pointer),
            Some(want),
            "{extra} at {base}{pointer}: {root:#}"
        );
    }
}

#[test]
fn warned() {
    let cases: &[(&str, &str)] = &[
        (
            "[container]\nnamespaces = []\n",
            "host's mnt, pid, uts, ipc, cgroup namespace",
        ),
        ("on_failure = \"poweroff\"\n", "on_failure = \"poweroff\""),
        (
            "[[mount]]\ntype = \"bind\"\nsource = \"/srv/conf\"\ntarget = \"/conf\"\nreadonly = true\n",
            "bind /srv/conf from the host at /conf cannot be expressed",
        ),
        ("[resources]\npids_max = 10\n", "pids_max = 10"),
        (
            "user = \"nobody-here\"\n",
            "user Name(\"nobody-here\") cannot be resolved",
        ),
        ("stop_signal = \"SIGQUIT\"\n", "stop_signal = SIGQUIT"),
        (
            "[health]\ntcp = \"127.0.0.1:1\"\non_unhealthy = \"stop\"\n",
            "on_unhealthy = \"stop\"",
        ),
        ("", "has no image"),
    ];
    for (extra, want) in cases {
        let (_, warnings) = export(&format!("{EXEC}{extra}"));
        assert!(
            warnings
                .iter()
                .any(|w| w.starts_with("warning: unit app: ") && w.contains(want)),
            "{extra}: want {want:?} in {warnings:?}"
        );
    }
}

#[test]
fn names_services_and_images() {
    let web = "[service]\nexec = [\"/bin/web\"]\n[network]\nmode = \"bridge\"\nports = [\"8080:80\"]\naliases = [\"www\"]\n[container]\nimage = \"nginx:1.27\"\n";
    let opts = Options {
        registry: Some("registry.example/team/".into()),
        namespace: Some("shop".into()),
    };
    let (objects, warnings) = export_with(&[("My_Web", web)], &opts);
    let names: Vec<&str> = objects
        .iter()
        .filter(|o| o["kind"] == "Service")
        .filter_map(|o| o["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["my-web", "www", "my-web-published"]);
    assert!(objects.iter().all(|o| o["metadata"]["namespace"] == "shop"));
    let published = objects
        .iter()
        .find(|o| o["metadata"]["name"] == "my-web-published")
        .expect("published");
    assert_eq!(published["spec"]["type"], "LoadBalancer");
    assert_eq!(
        published["spec"]["ports"][0],
        json!({"name": "tcp-8080", "port": 8080, "protocol": "TCP", "targetPort": 80})
    );
    assert_eq!(
        container(&objects)["image"],
        "registry.example/team/nginx:1.27"
    );
    assert!(
        warnings.iter().any(|w| w.contains("named \"my-web\"")),
        "{warnings:?}"
    );
    assert!(
        !warnings.iter().any(|w| w.contains("has no image")),
        "{warnings:?}"
    );
}

#[test]
fn environment_and_credentials() {
    let text = format!(
        "{EXEC}env = {{ MODE = \"no\" }}\n[credentials]\ndb_password = \"/etc/app/db.pass\"\n"
    );
    let (objects, warnings) = export(&text);
    // "no" stays a string for YAML 1.1 readers (kubectl).
    assert_eq!(
        kind(&objects, "ConfigMap").expect("ConfigMap")["data"],
        json!({"MODE": "no"})
    );
    let secret = kind(&objects, "Secret").expect("Secret");
    assert_eq!(secret["stringData"], json!({"db_password": ""}));
    let c = container(&objects);
    assert_eq!(
        c["env"][0],
        json!({"name": "CREDENTIALS_DIRECTORY", "value": "/run/credentials/app"})
    );
    assert_eq!(c["envFrom"][0]["configMapRef"]["name"], "app-env");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("--from-file=db_password=/etc/app/db.pass")),
        "{warnings:?}"
    );
}

#[test]
fn clashing_names_fail() {
    let text = "[service]\nexec = [\"/bin/app\"]\n";
    let err = super::export(
        &loaded(&[("a_b", text), ("a.b", text)]),
        &host(),
        &Options::default(),
    )
    .expect_err("clash");
    assert!(err.contains("\"a-b\""), "{err}");
}

#[test]
fn env_files_then_env() {
    let text = format!(
        "{EXEC}env_file = [\"/etc/app/a.env\", \"/etc/app/b.env\"]\nenv = {{ LEVEL = \"debug\" }}\n"
    );
    let mut host = host();
    let vars = |pairs: &[(&str, &str)]| {
        Ok(pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    };
    host.env_files.insert(
        "/etc/app/a.env".into(),
        vars(&[("LEVEL", "info"), ("A", "1")]),
    );
    host.env_files
        .insert("/etc/app/b.env".into(), Err("Permission denied".into()));
    let export =
        super::export(&loaded(&[("app", &text)]), &host, &Options::default()).expect("export");
    let objects: Vec<Value> = serde_saphyr::from_multiple(&export.stream()).expect("YAML");
    let data = &kind(&objects, "ConfigMap").expect("ConfigMap")["data"];
    assert_eq!(*data, json!({"A": "1", "LEVEL": "debug"}));
    let warned = export.warnings.iter().any(|w| {
        w.message
            .contains("/etc/app/b.env cannot be read (Permission denied)")
    });
    assert!(warned, "{:?}", export.warnings);
}

#[test]
fn an_alias_like_its_unit_makes_one_service() {
    let text =
        "[service]\nexec = [\"/bin/app\"]\n[network]\nmode = \"bridge\"\naliases = [\"App\"]\n";
    let (objects, _) = export_with(&[("app", text)], &Options::default());
    let services = objects.iter().filter(|o| o["kind"] == "Service").count();
    assert_eq!(services, 1);
}
