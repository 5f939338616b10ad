//! End-to-end tests of issue 15's unit keys and operator verbs: enable and
//! disable across supd restarts, `env_file`, `[credentials]`, `wants` and the
//! main pid in status. Real supd, real supctl, real containers (root).

#[path = "../common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::harness::{self, root, trials};
use common::*;

fn main() -> std::process::ExitCode {
    harness::main(trials![root => [
        disable_survives_a_supd_restart_and_enable_undoes_it,
        main_pid_is_the_service_under_the_containers_init,
        env_files_are_read_at_each_start,
        a_missing_env_file_fails_the_start_unless_optional,
        a_wanted_unit_failing_does_not_stop_the_wanter,
        credentials_are_private_read_only_files_shown_nowhere,
        a_missing_credential_fails_the_start,
        credentials_reach_a_unit_with_a_rootfs,
        credentials_reach_a_unit_with_its_own_run,
        stop_and_restart_say_what_they_did,
        restart_count_does_not_lag_during_backoff,
        relative_directories_show_as_absolute_paths,
        a_second_supd_on_the_socket_says_why_once,
    ]])
}

/// A unit idling in a default container; `head` comes before `[service]`.
fn idle(head: &str) -> String {
    sh_unit(head, "exec sleep 1000") + "stop_timeout = \"2s\"\n"
}

/// A directory below the test's own that every container may write.
fn out_dir(sup: &Sup) -> PathBuf {
    set_mode(sup.path(), 0o755);
    shared_dir(sup.path(), "out")
}

/// supd stopped (every unit with it) and started again on the same directories.
fn restart_supd(mut sup: Sup) -> Sup {
    assert!(
        sup.stop().success(),
        "supd exits 0; log:\n{}",
        sup.log.text()
    );
    sup.log = Arc::default();
    sup.launch()
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "supctl failed: {}{}",
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

fn disable_survives_a_supd_restart_and_enable_undoes_it() {
    let sup = Sup::start(&[
        ("db", &idle("")),
        ("web", &idle("[unit]\nrequires = [\"db\"]")),
    ]);
    sup.wait_all_running();
    let said = ok(&sup.supctl(&["disable", "db"]));
    let lines: Vec<&str> = said
        .lines()
        .map(|l| l.split(':').next().unwrap_or(""))
        .collect();
    assert_eq!(lines, ["web", "db"], "what it stops, in order: {said}");
    let text = stdout(&sup.supctl(&["status"]));
    assert!(text.contains("(disabled)"), "{text}");
    let sup = {
        let db = sup.wait_state("db", "inactive");
        assert_eq!(db["enabled"], false, "{db:#}");
        sup.wait_state("web", "inactive");
        restart_supd(sup)
    };
    // After supd's restart: db is kept stopped, web waits for it.
    let web = sup.wait_state("web", "starting");
    assert_eq!(web["reason"], "waiting for db (disabled)", "{web:#}");
    let db = sup.unit("db");
    assert_eq!(db["state"], "inactive", "{db:#}");
    assert_eq!(db["enabled"], false);
    assert!(
        db["reason"].as_str().unwrap_or("").contains("disabled"),
        "{db:#}"
    );
    let detail = stdout(&sup.supctl(&["status", "db"]));
    assert!(detail.contains("Enabled: no"), "{detail}");
    let refused = sup.supctl(&["start", "db"]);
    assert_eq!(refused.status.code(), Some(1), "start of a disabled unit");
    assert!(
        stderr(&refused).contains("db is disabled"),
        "{}",
        stderr(&refused)
    );
    // Waiting for web to come up ends at once: nothing will start db.
    let waited = sup.supctl_within(
        &["start", "--wait", "web"],
        std::time::Duration::from_secs(10),
    );
    assert_eq!(waited.status.code(), Some(1));
    assert!(
        stderr(&waited).contains("waiting for db (disabled)"),
        "{}",
        stderr(&waited)
    );
    // enable alone starts nothing.
    ok(&sup.supctl(&["enable", "db"]));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let db = sup.unit("db");
    assert_eq!(
        (db["state"].as_str(), db["enabled"].as_bool()),
        (Some("inactive"), Some(true))
    );
    // enable --now starts it, and web, which waited, follows.
    ok(&sup.supctl(&["enable", "--now", "db"]));
    sup.wait_all_running();
    assert!(!sup.state_dir().join("disabled/db").exists());
}

fn main_pid_is_the_service_under_the_containers_init() {
    let sup = Sup::prepare(&[]);
    let out = out_dir(&sup);
    let script = |file: &str| format!("echo $$ > {}/{file}; exec sleep 1000", out.display());
    sup.write_unit(
        "boxed",
        &(sh_unit("", &script("boxed")) + "stop_timeout = \"2s\"\n"),
    );
    sup.write_unit(
        "bare",
        &(sh_unit("[container]\ninit = false", &script("bare")) + "stop_timeout = \"2s\"\n"),
    );
    let sup = sup.launch();
    sup.wait_all_running();
    let inside: i64 = wait_file(&out.join("boxed")).trim().parse().expect("pid");
    let boxed = sup.wait_status("boxed's main pid", |s| {
        s.iter()
            .any(|u| u["name"] == "boxed" && u["main_pid"].is_i64())
    });
    let boxed = boxed.iter().find(|u| u["name"] == "boxed").expect("boxed");
    let main = boxed["main_pid"].as_i64().expect("main_pid");
    assert_ne!(
        boxed["pid"].as_i64(),
        Some(main),
        "init is not the service: {boxed:#}"
    );
    assert_eq!(
        boxed["main_pid_in_container"].as_i64(),
        Some(inside),
        "{boxed:#}"
    );
    let comm = std::fs::read_to_string(format!("/proc/{main}/comm")).expect("comm");
    assert_eq!(comm.trim(), "sleep");
    let detail = stdout(&sup.supctl(&["status", "boxed"]));
    assert!(
        detail.contains(&format!("Main PID: {main} ({inside} in the container)")),
        "{detail}"
    );
    let bare = sup.unit("bare");
    assert_eq!(bare["main_pid"], bare["pid"], "{bare:#}");
    let bare_inside: i64 = wait_file(&out.join("bare")).trim().parse().expect("pid");
    assert_eq!(bare["main_pid_in_container"].as_i64(), Some(bare_inside));
}

/// A unit that writes the variables it was given (`env`, sorted) to `out/NAME`,
/// once per start, then idles.
fn env_reporter(out: &Path, name: &str, service_keys: &str) -> String {
    let script = format!(
        "env | sort > {o}/{name}.tmp; mv {o}/{name}.tmp {o}/{name}; exec sleep 1000",
        o = out.display()
    );
    sh_unit("", &script) + "stop_timeout = \"2s\"\n" + service_keys
}

fn var<'t>(env: &'t str, key: &str) -> Option<&'t str> {
    env.lines().find_map(|l| l.strip_prefix(&format!("{key}=")))
}

fn env_files_are_read_at_each_start() {
    let sup = Sup::prepare(&[]);
    let out = out_dir(&sup);
    let base = sup.path().join("app.env");
    let local = sup.path().join("local.env");
    std::fs::write(
        &base,
        "# settings\nexport GREETING='hello world'\nLEVEL=debug # a comment\nSHARED=base\nQUOTED=\"a\\\"b\"\n",
    )
    .expect("env file");
    std::fs::write(&local, "SHARED=local\nOVERRIDDEN=file\n").expect("env file");
    let keys = format!(
        "env_file = [{:?}, {:?}, \"-{}/absent.env\"]\nenv = {{ OVERRIDDEN = \"env\" }}\n",
        base.display().to_string(),
        local.display().to_string(),
        sup.path().display()
    );
    sup.write_unit("app", &env_reporter(&out, "app", &keys));
    let sup = sup.launch();
    sup.wait_all_running();
    let env = wait_file(&out.join("app"));
    assert_eq!(var(&env, "GREETING"), Some("hello world"), "{env}");
    assert_eq!(var(&env, "LEVEL"), Some("debug"));
    assert_eq!(var(&env, "QUOTED"), Some("a\"b"));
    assert_eq!(var(&env, "SHARED"), Some("local"), "a later file wins");
    assert_eq!(
        var(&env, "OVERRIDDEN"),
        Some("env"),
        "env wins over the files"
    );
    // An edit applies at the next start, without a reload.
    std::fs::remove_file(out.join("app")).expect("rm");
    std::fs::write(&base, "GREETING=edited\n").expect("edit");
    ok(&sup.supctl(&["restart", "--wait", "app"]));
    let env = wait_file(&out.join("app"));
    assert_eq!(var(&env, "GREETING"), Some("edited"), "{env}");
    assert_eq!(var(&env, "LEVEL"), None);
}

fn a_missing_env_file_fails_the_start_unless_optional() {
    let sup = Sup::prepare(&[]);
    let out = out_dir(&sup);
    let missing = sup.path().join("missing.env");
    let broken = sup.path().join("broken.env");
    std::fs::write(&broken, "OK=1\nthis line is secret\n").expect("env file");
    let keys = |file: &Path| {
        format!(
            "restart = \"no\"\nenv_file = [{:?}]\n",
            file.display().to_string()
        )
    };
    sup.write_unit("needs", &env_reporter(&out, "needs", &keys(&missing)));
    sup.write_unit("broken", &env_reporter(&out, "broken", &keys(&broken)));
    let optional = format!("env_file = [\"-{}\"]\n", missing.display());
    sup.write_unit("optional", &env_reporter(&out, "optional", &optional));
    let sup = sup.launch();
    sup.wait_state("optional", "running");
    let needs = sup.wait_state("needs", "failed");
    let reason = needs["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("env_file") && reason.contains(&missing.display().to_string()),
        "{needs:#}"
    );
    let broken = sup.wait_state("broken", "failed");
    let reason = broken["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!("{}:2:", broken_path(&sup))),
        "{broken:#}"
    );
    assert!(
        !reason.contains("secret"),
        "the line is not quoted: {reason}"
    );
    // Once the file exists, a start works.
    std::fs::write(&missing, "X=1\n").expect("env file");
    ok(&sup.supctl(&["start", "--wait", "needs"]));
}

fn broken_path(sup: &Sup) -> String {
    sup.path().join("broken.env").display().to_string()
}

fn a_wanted_unit_failing_does_not_stop_the_wanter() {
    let sup = Sup::start(&[
        ("app", &idle("[unit]\nwants = [\"flaky\"]")),
        (
            "flaky",
            &(sh_unit("", "sleep 0.5; exit 3") + "restart = \"no\"\n"),
        ),
    ]);
    sup.wait_state("app", "running");
    let flaky = sup.wait_state("flaky", "failed");
    assert_eq!(flaky["last_exit"]["code"], 3);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        sup.unit("app")["state"],
        "running",
        "its failure is not app's"
    );
    // Starting app starts what it wants again (and does not wait for it).
    ok(&sup.supctl(&["stop", "--wait", "app"]));
    ok(&sup.supctl(&["start", "--wait", "app"]));
    let flaky = sup.unit("flaky");
    assert!(
        ["starting", "running"].contains(&flaky["state"].as_str().unwrap_or("")),
        "started along: {flaky:#}"
    );
    sup.wait_state("flaky", "failed");
    assert_eq!(sup.unit("app")["state"], "running");
}

const SECRET: &str = "s3cr3t-VALUE-4711";

/// A service that reports what it finds in `$CREDENTIALS_DIRECTORY` to `out/NAME`.
fn credential_reporter(out: &Path, name: &str, head: &str, keys: &str) -> String {
    let o = out.display();
    let commands = "echo dir=$CREDENTIALS_DIRECTORY; \
         echo content=$(cat $CREDENTIALS_DIRECTORY/db_password); \
         echo file=$(stat -c '%a %u %g' $CREDENTIALS_DIRECTORY/db_password); \
         echo top=$(stat -c '%a %u' $CREDENTIALS_DIRECTORY); \
         echo me=$(id -u); \
         if touch $CREDENTIALS_DIRECTORY/new 2>/dev/null; then echo write=yes; else echo write=no; fi";
    let script =
        format!("({commands}) > {o}/{name}.tmp; mv {o}/{name}.tmp {o}/{name}; exec sleep 1000");
    sh_unit(head, &script) + "stop_timeout = \"2s\"\n" + keys
}

fn field<'t>(report: &'t str, key: &str) -> &'t str {
    report
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {report}"))
}

fn credentials_are_private_read_only_files_shown_nowhere() {
    let sup = Sup::prepare(&[]);
    let out = out_dir(&sup);
    let secret = sup.path().join("db.pass");
    std::fs::write(&secret, SECRET).expect("secret");
    set_mode(&secret, 0o600);
    let keys = format!(
        "user = 4711\n[credentials]\ndb_password = {:?}\n",
        secret.display().to_string()
    );
    sup.write_unit("app", &credential_reporter(&out, "app", "", &keys));
    let userns = "[container]\nnamespaces = [\"user\", \"mnt\", \"pid\"]\nuserns_base = 200000";
    let keys = format!(
        "[credentials]\ndb_password = {:?}\n",
        secret.display().to_string()
    );
    sup.write_unit("boxed", &credential_reporter(&out, "boxed", userns, &keys));
    let sup = sup.launch();
    sup.wait_all_running();
    let app = wait_file(&out.join("app"));
    assert_eq!(field(&app, "dir"), "/run/credentials/app", "{app}");
    assert_eq!(field(&app, "content"), SECRET);
    assert_eq!(
        field(&app, "file"),
        "400 4711 4711",
        "mode 0400, the service's"
    );
    assert_eq!(field(&app, "top"), "500 4711");
    assert_eq!(field(&app, "me"), "4711");
    assert_eq!(field(&app, "write"), "no", "read-only");
    let boxed = wait_file(&out.join("boxed"));
    assert_eq!(field(&boxed, "content"), SECRET, "{boxed}");
    assert_eq!(
        field(&boxed, "file"),
        "400 0 0",
        "the namespace's root owns it"
    );
    assert_eq!(field(&boxed, "write"), "no");
    let host = sup.state_dir().join("credentials/boxed/db_password");
    let meta = std::fs::metadata(&host).expect("host side");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        200_000,
        "mapped uid on the host"
    );
    // Nowhere in what supd shows: status, logs, a dry-run reload's plan.
    std::fs::write(&secret, format!("{SECRET}-changed")).expect("secret");
    let edited = std::fs::read_to_string(sup.units_dir().join("app.toml"))
        .expect("unit")
        .replace("user = 4711", "user = 4712");
    sup.write_unit("app", &edited);
    for args in [
        &["status", "--json"][..],
        &["status", "app"],
        &["status", "boxed"],
        &["logs", "app"],
        &["logs", "boxed"],
        &["reload", "--dry-run"],
        &["audit", "app"],
    ] {
        let o = sup.supctl(args);
        let text = format!("{}{}", stdout(&o), stderr(&o));
        assert!(
            !text.contains(SECRET),
            "supctl {args:?} shows the secret: {text}"
        );
    }
    let dry = stdout(&sup.supctl(&["reload", "--dry-run"]));
    assert!(dry.contains("restarted: app"), "{dry}");
    assert!(!sup.log.text().contains(SECRET), "supd's log");
    // A restart copies the file afresh.
    std::fs::remove_file(out.join("boxed")).expect("rm");
    ok(&sup.supctl(&["restart", "--wait", "boxed"]));
    let boxed = wait_file(&out.join("boxed"));
    assert_eq!(field(&boxed, "content"), format!("{SECRET}-changed"));
    // A removed unit's copies go with it.
    std::fs::remove_file(sup.units_dir().join("boxed.toml")).expect("rm");
    ok(&sup.supctl(&["reload"]));
    let gone = sup.state_dir().join("credentials/boxed");
    wait_until("boxed's credentials to go", || !gone.exists());
}

fn a_missing_credential_fails_the_start() {
    let sup = Sup::prepare(&[]);
    let out = out_dir(&sup);
    let missing = sup.path().join("nowhere.pass");
    let keys = format!(
        "restart = \"no\"\n[credentials]\ndb_password = {:?}\n",
        missing.display().to_string()
    );
    sup.write_unit("app", &credential_reporter(&out, "app", "", &keys));
    let sup = sup.launch();
    let app = sup.wait_state("app", "failed");
    let reason = app["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("credential db_password")
            && reason.contains(&missing.display().to_string())
            && reason.contains("No such file"),
        "{app:#}"
    );
}

fn credentials_reach_a_unit_with_a_rootfs() {
    let sup = Sup::prepare(&[]);
    let out = out_dir(&sup);
    let root = busybox_rootfs(&sup.path().join("root"));
    let secret = sup.path().join("token");
    std::fs::write(&secret, SECRET).expect("secret");
    let o = out.display();
    let head = format!(
        "[container]\nrootfs = {:?}\n[[mount]]\ntype = \"bind\"\nsource = \"{o}\"\ntarget = \"/out\"",
        root.display().to_string()
    );
    let script = "cat $CREDENTIALS_DIRECTORY/token > /out/rootfs.tmp; mv /out/rootfs.tmp /out/rootfs; exec sleep 1000";
    let text = sh_unit(&head, script)
        + &format!(
            "stop_timeout = \"2s\"\n[credentials]\ntoken = {:?}\n",
            secret.display().to_string()
        );
    sup.write_unit("boxed", &text);
    let sup = sup.launch();
    sup.wait_all_running();
    let seen = wait_file_exact(&out.join("rootfs"));
    assert_eq!(seen, SECRET);
}

/// A file's contents once it exists (written whole by a rename).
fn wait_file_exact(path: &Path) -> String {
    let mut text = None;
    wait_until(&format!("{}", path.display()), || {
        text = std::fs::read_to_string(path).ok();
        text.is_some()
    });
    text.unwrap_or_default()
}

fn stop_and_restart_say_what_they_did() {
    let sup = Sup::start(&[
        ("db", &idle("")),
        ("web", &idle("[unit]\nrequires = [\"db\"]")),
        ("cron", &idle("[unit]\nafter = [\"db\"]")),
    ]);
    sup.wait_all_running();
    let said = ok(&sup.supctl(&["restart", "web"]));
    assert!(
        said.contains("web: ") && said.contains("restart requested"),
        "{said}"
    );
    sup.wait_all_running();
    let said = ok(&sup.supctl(&["stop", "--wait", "db"]));
    assert_eq!(
        said, "web: inactive\ndb: inactive\n",
        "in the order they stopped"
    );
    assert_eq!(
        sup.unit("cron")["state"],
        "running",
        "after alone is not stopped"
    );
    let said = ok(&sup.supctl(&["stop", "--wait", "db"]));
    assert_eq!(said, "db: inactive\n", "web was already down");
}

fn restart_count_does_not_lag_during_backoff() {
    let text = sh_unit("", "exit 1") + "restart_delay = \"30s\"\nrestart_max_delay = \"30s\"\n";
    let sup = Sup::start(&[("crash", &text)]);
    let crash = sup.wait_state("crash", "restarting");
    assert_eq!(
        crash["restarts"], 1,
        "the restart under way counts: {crash:#}"
    );
    ok(&sup.supctl(&["stop", "crash"]));
}

fn relative_directories_show_as_absolute_paths() {
    let sup = Sup::prepare(&[("app", &idle(""))]);
    let mut supd = std::process::Command::new(SUPD)
        .current_dir(sup.path())
        .args(["--units", "units", "--state-dir", "state", "--cgroup-root"])
        .arg(sup.cgroup_root())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("supd");
    sup.log.collect(supd.stderr.take().expect("stderr"));
    sup.log.wait_for("supd started");
    let app = sup.wait_state("app", "running");
    let want = |p: &str| sup.path().join(p).display().to_string();
    assert_eq!(app["path"], want("units/app.toml"), "{app:#}");
    assert_eq!(app["log_file"], want("state/logs/app.log"));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supd.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    assert!(supd.wait().expect("wait").success());
}

fn a_second_supd_on_the_socket_says_why_once() {
    let sup = Sup::start(&[("app", &idle(""))]);
    let second = std::process::Command::new(SUPD)
        .args(sup.supd_args())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("second supd");
    assert_eq!(second.status.code(), Some(1));
    let err = stderr(&second);
    assert_eq!(err.matches("cannot listen on").count(), 1, "{err}");
    sup.wait_state("app", "running");
}

fn credentials_reach_a_unit_with_its_own_run() {
    let sup = Sup::prepare(&[]);
    let out = out_dir(&sup);
    let secret = sup.path().join("token");
    std::fs::write(&secret, SECRET).expect("secret");
    // A name of this test's own: the mount point must not appear on the host.
    let name = format!("ownrun-{}", std::process::id());
    let host_point = Path::new("/run/credentials").join(&name);
    let o = out.display();
    let script = format!(
        "cat $CREDENTIALS_DIRECTORY/token > {o}/ownrun.tmp; mv {o}/ownrun.tmp {o}/ownrun; exec sleep 1000"
    );
    let text = sh_unit("[[mount]]\ntype = \"tmpfs\"\ntarget = \"/run\"", &script)
        + &format!(
            "stop_timeout = \"2s\"\n[credentials]\ntoken = {:?}\n",
            secret.display().to_string()
        );
    sup.write_unit(&name, &text);
    let sup = sup.launch();
    sup.wait_all_running();
    assert_eq!(wait_file_exact(&out.join("ownrun")), SECRET);
    assert!(
        !host_point.exists(),
        "made in the unit's /run, not the host's"
    );
}
