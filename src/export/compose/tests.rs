//! Table tests: units in, the compose file (parsed back) and warnings out.

use serde_json::{Value, json};

use crate::export::{Host, Options, loaded};

fn export(units: &[(&str, &str)]) -> (Value, Vec<String>) {
    let export =
        super::export(&loaded(units), &Host::default(), &Options::default()).expect("export");
    let file: Value = serde_saphyr::from_str(&export.stream()).expect("YAML parses back");
    let warnings = export.warnings.iter().map(|w| w.to_string()).collect();
    (file, warnings)
}

const EXEC: &str = "[service]\nexec = [\"/bin/app\"]\n";

#[test]
fn settings_carry_over() {
    let cases: &[(&str, &str, Value)] = &[
        ("", "/entrypoint", json!(["/bin/app"])),
        ("", "/cap_drop", json!(["ALL"])),
        ("", "/security_opt", json!(["no-new-privileges:true"])),
        ("", "/init", json!(true)),
        ("restart = \"always\"\n", "/restart", json!("always")),
        ("user = \"app\"\ngroup = 10\n", "/user", json!("app:10")),
        (
            "stop_signal = \"SIGQUIT\"\nstop_timeout = \"30s\"\n",
            "/stop_signal",
            json!("SIGQUIT"),
        ),
        (
            "stop_timeout = \"90s\"\n",
            "/stop_grace_period",
            json!("1m30s"),
        ),
        (
            "[container]\ncapabilities = [\"net_bind_service\"]\n",
            "/cap_add",
            json!(["NET_BIND_SERVICE"]),
        ),
        (
            "[container]\nreadonly_root = true\n",
            "/read_only",
            json!(true),
        ),
        (
            "[resources]\nmemory_max = \"128M\"\ncpu_max = \"50%\"\n",
            "/deploy/resources/limits",
            json!({"cpus": "0.5", "memory": "128m"}),
        ),
        (
            "[network]\nmode = \"bridge\"\nports = [\"127.0.0.1:8080:80\"]\n",
            "/ports",
            json!(["127.0.0.1:8080:80/tcp"]),
        ),
        (
            "[network]\nmode = \"bridge\"\nnetworks = [\"default\"]\naliases = [\"www\"]\n",
            "/networks/default/aliases",
            json!(["www"]),
        ),
        (
            "[[mount]]\ntype = \"bind\"\nsource = \"/srv/conf\"\ntarget = \"/conf\"\nreadonly = true\n",
            "/volumes/0",
            json!("/srv/conf:/conf:ro"),
        ),
        (
            "[health]\nexec = [\"/bin/check\"]\ninterval = \"5s\"\nretries = 2\n",
            "/healthcheck",
            json!({"test": ["CMD", "/bin/check"], "interval": "5s", "timeout": "5s", "retries": 2, "start_interval": "5s"}),
        ),
        (
            "[container]\nrlimits = { nofile = 1024 }\n",
            "/ulimits/nofile",
            json!({"soft": 1024, "hard": 1024}),
        ),
    ];
    for (extra, pointer, want) in cases {
        let (file, _) = export(&[("app", &format!("{EXEC}{extra}"))]);
        let service = &file["services"]["app"];
        assert_eq!(
            service.pointer(pointer),
            Some(want),
            "{extra} at {pointer}: {service:#}"
        );
    }
}

#[test]
fn dependencies_and_network_modes() {
    let db = "[service]\nexec = [\"/bin/db\"]\n[health]\ntcp = \"127.0.0.1:5432\"\n";
    let setup = "[service]\nexec = [\"/bin/setup\"]\ntype = \"oneshot\"\n";
    let api = "[unit]\nrequires = [\"db\", \"setup\"]\nwants = [\"cache\"]\n[service]\nexec = [\"/bin/api\"]\n[network]\nmode = \"host\"\n";
    let cache = EXEC;
    let (file, _) = export(&[("db", db), ("setup", setup), ("api", api), ("cache", cache)]);
    let api = &file["services"]["api"];
    assert_eq!(
        api["depends_on"],
        json!({
            "db": {"condition": "service_healthy", "required": true},
            "setup": {"condition": "service_completed_successfully", "required": true},
            "cache": {"condition": "service_started", "required": false},
        })
    );
    assert_eq!(api["network_mode"], "host");
}

#[test]
fn warned() {
    let cases: &[(&str, &str)] = &[
        ("exec_start_pre = [[\"/bin/migrate\"]]\n", "exec_start_pre"),
        ("restart = \"on-abnormal\"\n", "on-abnormal"),
        ("[health]\nhttp = \"http://127.0.0.1:80/\"\n", "needs curl"),
        ("[resources]\npids_max = 5\n", "pids_max = 5"),
        ("", "has no image"),
    ];
    for (extra, want) in cases {
        let (_, warnings) = export(&[("app", &format!("{EXEC}{extra}"))]);
        assert!(
            warnings.iter().any(|w| w.contains(want)),
            "{extra}: want {want:?} in {warnings:?}"
        );
    }
}

#[test]
fn credentials_become_secrets() {
    let text = format!("{EXEC}[credentials]\ntoken = \"/etc/app/token\"\n");
    let (file, _) = export(&[("app", &text)]);
    assert_eq!(
        file["secrets"]["app-token"],
        json!({"file": "/etc/app/token"})
    );
    let service = &file["services"]["app"];
    assert_eq!(
        service["secrets"][0],
        json!({"source": "app-token", "target": "/run/credentials/app/token", "mode": "0400"})
    );
    assert_eq!(
        service["environment"]["CREDENTIALS_DIRECTORY"],
        "/run/credentials/app"
    );
}
