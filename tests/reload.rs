//! Hot reload (issue 5): edits on disk are applied by themselves, minimally and
//! safely. These tests use the real directory watcher; they need root (units run
//! as containers) and are reported as ignored without it.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::harness::{self, root, trials};
use common::*;

fn main() -> std::process::ExitCode {
    harness::main(trials![root => [
        editing_one_of_five_units_restarts_exactly_that_one,
        rename_into_place_adds_and_deleting_removes,
        a_broken_edit_keeps_the_running_version_until_fixed,
        changing_only_memory_max_updates_the_cgroup_in_place,
        changing_only_the_health_check_applies_it_without_a_restart,
        a_hundred_rapid_rewrites_converge_with_few_restarts,
        a_reload_creating_a_cycle_is_rejected_naming_it,
    ]])
}

fn sleeper(arg: &str) -> String {
    format!("[service]\nexec = [\"/bin/sleep\", \"{arg}\"]\n")
}

fn pid(sup: &Sup, name: &str) -> Option<i64> {
    sup.status()
        .into_iter()
        .find(|u| u["name"] == name)
        .and_then(|u| u["pid"].as_i64())
}

/// Save like an editor: write a temp file next to it, then rename over the unit.
fn save(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.toml.swp"));
    std::fs::write(&tmp, text).expect("write temp");
    std::fs::rename(&tmp, dir.join(format!("{name}.toml"))).expect("rename");
}

fn editing_one_of_five_units_restarts_exactly_that_one() {
    let text = sleeper("1000");
    let names = ["u1", "u2", "u3", "u4", "u5"];
    let units: Vec<(&str, &str)> = names.iter().map(|n| (*n, text.as_str())).collect();
    let sup = Sup::start(&units);
    let before = sup.wait_status("all running", |s| {
        s.len() == 5 && s.iter().all(|u| u["state"] == "running")
    });
    std::fs::write(sup.units_dir().join("u3.toml"), sleeper("2000")).expect("edit");
    let after = sup.wait_status("u3 restarted", |s| {
        s.iter().all(|u| u["state"] == "running")
            && s.iter()
                .zip(&before)
                .any(|(a, b)| a["name"] == "u3" && a["pid"] != b["pid"])
    });
    for (a, b) in after.iter().zip(&before) {
        if a["name"] != "u3" {
            assert_eq!(a["pid"], b["pid"], "{} must not be touched", a["name"]);
        }
    }
}

fn rename_into_place_adds_and_deleting_removes() {
    let sup = Sup::start(&[("keep", &sleeper("1000"))]);
    sup.wait_state("keep", "running");
    save(&sup.units_dir(), "fresh", &sleeper("1000"));
    sup.wait_state("fresh", "running");
    assert!(
        sup.status()
            .iter()
            .all(|u| !u["name"].as_str().unwrap_or("").starts_with('.')),
        "temp files are not units"
    );
    let fresh_pid = pid(&sup, "fresh").expect("pid") as i32;
    std::fs::remove_file(sup.units_dir().join("fresh.toml")).expect("rm");
    sup.wait_status("fresh removed", |s| s.iter().all(|u| u["name"] != "fresh"));
    wait_until("the removed unit's process to end", || {
        !pid_alive(fresh_pid)
    });
    assert_eq!(sup.unit("keep")["state"], "running");
}

fn a_broken_edit_keeps_the_running_version_until_fixed() {
    let sup = Sup::start(&[("svc", &sleeper("1000"))]);
    let running = sup.wait_state("svc", "running");
    save(
        &sup.units_dir(),
        "svc",
        "[service]\nexec = [\"/bin/sleep\", \"1000\"]\nrestart = \"sometimes\"\n",
    );
    let rejected = sup.wait_status("rejection shown", |s| {
        s.iter()
            .any(|u| u["name"] == "svc" && u["definition_error"].is_string())
    });
    let svc = rejected.iter().find(|u| u["name"] == "svc").expect("svc");
    let error = svc["definition_error"].as_str().expect("error");
    assert!(error.contains("svc.toml:3:"), "names the line: {error}");
    assert_eq!(svc["pid"], running["pid"], "still the same process");
    assert_eq!(svc["state"], "running");
    let table = stdout(&sup.supctl(&["status"]));
    assert!(table.contains("definition on disk rejected"), "{table}");
    sup.log.wait_for("svc.toml:3:");

    save(&sup.units_dir(), "svc", &sleeper("2000"));
    let fixed = sup.wait_status("fix applied", |s| {
        s.iter().any(|u| {
            u["name"] == "svc"
                && u["definition_error"].is_null()
                && u["state"] == "running"
                && u["pid"] != running["pid"]
        })
    });
    assert_eq!(fixed[0]["disk_differs"], false);
}

fn changing_only_memory_max_updates_the_cgroup_in_place() {
    let unit = |m: &str| {
        format!("[resources]\nmemory_max = \"{m}\"\n[service]\nexec = [\"/bin/sleep\", \"1000\"]\n")
    };
    let sup = Sup::start(&[("capped", &unit("64M"))]);
    let before = sup.wait_state("capped", "running");
    let p = before["pid"].as_i64().expect("pid") as i32;
    let dir = cgroup_dir_of(p, "memory").expect("memory cgroup");
    let limit = || {
        ["memory.max", "memory.limit_in_bytes"]
            .iter()
            .find_map(|f| std::fs::read_to_string(dir.join(f)).ok())
            .and_then(|t| t.trim().parse::<u64>().ok())
    };
    assert_eq!(limit(), Some(64 << 20));
    save(&sup.units_dir(), "capped", &unit("128M"));
    sup.log
        .wait_for_all(&["resource limits updated in place", "capped"]);
    assert_eq!(limit(), Some(128 << 20));
    let after = sup.unit("capped");
    assert_eq!(after["pid"], before["pid"], "no restart");
    assert_eq!(after["usage"]["memory_max"], 128 << 20);
}

fn changing_only_the_health_check_applies_it_without_a_restart() {
    let unit = |word: &str| {
        format!(
            "[service]\nexec = [\"/bin/sleep\", \"1000\"]\n[health]\n\
             exec = [\"/bin/echo\", \"{word}\"]\ninterval = \"100ms\"\n"
        )
    };
    let sup = Sup::start(&[("probed", &unit("one"))]);
    let output = |s: &[serde_json::Value]| {
        s[0]["health_output"]
            .as_str()
            .map(str::trim)
            .map(String::from)
    };
    let before = sup.wait_status("first probe", |s| output(s).as_deref() == Some("one"));
    save(&sup.units_dir(), "probed", &unit("two"));
    let after = sup.wait_status("the new probe runs", |s| {
        output(s).as_deref() == Some("two")
    });
    assert_eq!(after[0]["pid"], before[0]["pid"], "no restart");
    assert_eq!(after[0]["restarts"], 0);
    assert_eq!(after[0]["state"], "running");
    // Stopped, it shows no health (a failed one shows its last, see lifecycle).
    assert!(sup.supctl(&["stop", "--wait", "probed"]).status.success());
    assert!(
        sup.unit("probed")["health"].is_null(),
        "{}",
        sup.unit("probed")
    );
}

fn a_hundred_rapid_rewrites_converge_with_few_restarts() {
    let sup = Sup::prepare(&[]);
    let starts = sup.path().join("starts");
    let unit = |i: usize| {
        sh_unit(
            "",
            &format!("echo {i} >> {s}; exec sleep 1000", s = starts.display()),
        )
    };
    sup.write_unit("busy", &unit(0));
    let sup = sup.launch();
    sup.wait_state("busy", "running");
    // supd reloads once the directory has been quiet for 150 ms, or after 1 s of
    // continuous events. The burst takes milliseconds, so it makes at most a few
    // starts; on a loaded machine each pause in it longer than the quiet time, and
    // each second it lasts, may legitimately add one. Count those, not the time.
    let quiet = Duration::from_millis(150);
    let (t0, mut last, mut pauses) = (Instant::now(), Instant::now(), 0);
    for i in 1..=100 {
        save(&sup.units_dir(), "busy", &unit(i));
        pauses += usize::from(last.elapsed() > quiet);
        last = Instant::now();
    }
    let allowed = 4 + pauses + t0.elapsed().as_secs() as usize;
    let mut text = String::new();
    wait_until("the last rewrite to be running", || {
        text = std::fs::read_to_string(&starts).unwrap_or_default();
        text.lines().last() == Some("100") && sup.unit("busy")["state"] == "running"
    });
    let count = text.lines().count();
    assert!(
        count <= allowed,
        "{count} starts for one burst (at most {allowed}): {text}"
    );
}

fn a_reload_creating_a_cycle_is_rejected_naming_it() {
    let sup = Sup::start(&[("a", &sleeper("1000")), ("b", &sleeper("1000"))]);
    let before = sup.wait_all_running();
    std::fs::write(
        sup.units_dir().join("a.toml"),
        format!("[unit]\nafter = [\"b\"]\n{}", sleeper("1000")),
    )
    .expect("a");
    std::fs::write(
        sup.units_dir().join("b.toml"),
        format!("[unit]\nafter = [\"a\"]\n{}", sleeper("1000")),
    )
    .expect("b");
    let out = sup.supctl(&["reload", "--dry-run"]);
    assert!(stdout(&out).contains("a -> b -> a"), "{}", stdout(&out));
    let after = sup.wait_status("cycle rejected", |s| {
        s.iter().all(|u| {
            u["definition_error"]
                .as_str()
                .is_some_and(|e| e.contains("dependency cycle: a -> b -> a"))
        })
    });
    for (a, b) in after.iter().zip(&before) {
        assert_eq!(a["pid"], b["pid"], "{} keeps running", a["name"]);
    }
}
