//! The lifecycle keys of `[service]` (`type`, readiness, timeouts, hooks,
//! `on_failure`) and the `[health]` section.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use toml::Spanned;
use toml::de::DeValue;

use super::container::expected_name;
use super::limits;
use super::reader::{Reader, Span, Table, Value};
use super::service::{check_exec, duration};
use crate::unit::lifecycle::{HealthSpec, Lifecycle, OnFailure, OnUnhealthy, Probe, ServiceType};
use crate::unit::values;

pub(super) const HEALTH_KEYS: &[&str] = &[
    "exec",
    "tcp",
    "http",
    "interval",
    "start_interval",
    "timeout",
    "retries",
    "start_period",
    "on_unhealthy",
    "ready_on_healthy",
];

/// Reads the lifecycle keys from the `[service]` table `t`.
pub(super) fn read_lifecycle(t: &mut Table, r: &mut Reader) -> Lifecycle {
    let defaults = Lifecycle::default();
    let kind = r
        .scalar(
            t.take("type"),
            &expected_name::<ServiceType>(),
            values::named,
        )
        .map_or(defaults.kind, Spanned::into_inner);
    let ready_fd = r.int_in(t.take("ready_fd"), 3, 1023, "ready_fd");
    if let Some(fd) = &ready_fd
        && kind != ServiceType::Simple
    {
        r.report(
            fd.span(),
            format!(
                "ready_fd is for type = \"simple\" services (this one is {:?}, which has its own readiness)",
                crate::unit::names::Named::name(kind)
            ),
        );
    }
    let start_timeout = duration(r, t.take("start_timeout"), "start_timeout");
    if let Some(t) = &start_timeout
        && t.get_ref().is_zero()
    {
        r.report(
            t.span(),
            "start_timeout must be longer than 0s (it would fail every start); leave it out for the default of 90s",
        );
    }
    let watchdog = duration(r, t.take("watchdog"), "watchdog");
    if let Some(w) = &watchdog {
        if kind != ServiceType::Notify {
            r.report(
                w.span(),
                "watchdog needs type = \"notify\" (the service pings with WATCHDOG=1)",
            );
        } else if w.get_ref().is_zero() {
            r.report(w.span(), "watchdog must be longer than 0s");
        }
    }
    let remain = r.boolean(t.take("remain_after_exit"));
    if let Some(on) = &remain
        && *on.get_ref()
        && kind != ServiceType::Oneshot
    {
        r.report(
            on.span(),
            "remain_after_exit is for type = \"oneshot\" (a daemon that exits is not up)",
        );
    }
    let exec_start_pre = read_commands(t.take("exec_start_pre"), "exec_start_pre", r);
    let exec_stop_post = read_commands(t.take("exec_stop_post"), "exec_stop_post", r);
    let on_failure = r
        .scalar(
            t.take("on_failure"),
            &expected_name::<OnFailure>(),
            values::named,
        )
        .map_or(defaults.on_failure, Spanned::into_inner);
    Lifecycle {
        kind,
        ready_fd: ready_fd.map(|fd| *fd.get_ref() as i32),
        start_timeout: start_timeout.map(Spanned::into_inner),
        watchdog: watchdog.map(Spanned::into_inner),
        remain_after_exit: remain.is_some_and(Spanned::into_inner),
        exec_start_pre,
        exec_stop_post,
        on_failure,
        // Set once `[health]` is read.
        ready_on_health: false,
    }
}

/// An array of argv arrays, each checked like `exec`.
fn read_commands(v: Option<Value>, what: &str, r: &mut Reader) -> Vec<Vec<String>> {
    let expected = r#"an array of commands like [["/bin/mkdir", "-p", "/run/app"]]"#;
    let Some(list) = r.array(v, expected, what, limits::LIST) else {
        return Vec::new();
    };
    let span = list.span();
    let items = list.into_inner();
    // `["/bin/echo", "hi"]`: one command written without its outer array.
    if !items.is_empty()
        && items
            .iter()
            .all(|v| matches!(v.get_ref(), DeValue::String(_)))
    {
        r.report(
            span,
            format!(
                "{what} is a list of commands, each an array of strings: write {what} = [[\"/bin/echo\", \"hi\"]] for one command"
            ),
        );
        return Vec::new();
    }
    r.each(items, |r, cmd| check_exec(Some(cmd), span.clone(), r))
}

/// `[health]`, if written. `kind` decides the default of `ready_on_healthy`.
pub(super) fn read_health(
    v: Option<Value>,
    kind: ServiceType,
    r: &mut Reader,
) -> Option<HealthSpec> {
    let mut t = r.table(v, HEALTH_KEYS)?;
    let header = t.span();
    let probe = read_probe(&mut t, header, r);
    let interval = duration(r, t.take("interval"), "health interval");
    let start_interval = duration(r, t.take("start_interval"), "health start_interval");
    let timeout = duration(r, t.take("timeout"), "health timeout");
    let nonzero = |d: &Option<Spanned<Duration>>, what: &str, r: &mut Reader| {
        if let Some(d) = d
            && d.get_ref().is_zero()
        {
            r.report(d.span(), format!("{what} must be longer than 0s"));
        }
    };
    nonzero(&interval, "health interval", r);
    nonzero(&start_interval, "health start_interval", r);
    nonzero(&timeout, "health timeout", r);
    let retries = r.int_in(t.take("retries"), 1, 1000, "health retries");
    let start_period = duration(r, t.take("start_period"), "health start_period");
    let on_unhealthy = r
        .scalar(
            t.take("on_unhealthy"),
            &expected_name::<OnUnhealthy>(),
            values::named,
        )
        .map_or(OnUnhealthy::Restart, Spanned::into_inner);
    let ready = r.boolean(t.take("ready_on_healthy"));
    if let Some(on) = &ready
        && *on.get_ref()
        && kind != ServiceType::Simple
    {
        r.report(
            on.span(),
            "ready_on_healthy is for type = \"simple\" services (notify and oneshot services say themselves when they are ready)",
        );
    }
    let interval = interval.map_or(HealthSpec::DEFAULT_INTERVAL, Spanned::into_inner);
    Some(HealthSpec {
        probe: probe?,
        interval,
        start_interval: start_interval.map_or(interval, Spanned::into_inner),
        timeout: timeout.map_or(HealthSpec::DEFAULT_TIMEOUT, Spanned::into_inner),
        retries: retries.map_or(HealthSpec::DEFAULT_RETRIES, |n| *n.get_ref() as u32),
        start_period: start_period.map_or(Duration::ZERO, Spanned::into_inner),
        on_unhealthy,
        ready_on_healthy: ready.map_or(kind == ServiceType::Simple, Spanned::into_inner),
    })
}

/// Exactly one of `exec`, `tcp`, `http`.
fn read_probe(t: &mut Table, header: Span, r: &mut Reader) -> Option<Probe> {
    let exec = t.take_entry("exec");
    let tcp = t.take_entry("tcp");
    let http = t.take_entry("http");
    let written = [&exec, &tcp, &http].iter().filter(|e| e.is_some()).count();
    if written == 0 {
        r.report(
            header,
            "missing probe in [health]: write one of exec = [...], tcp = \"ADDR:PORT\" or http = \"http://ADDR:PORT/PATH\"",
        );
        return None;
    }
    if written > 1 {
        let extra = [&tcp, &http]
            .into_iter()
            .flatten()
            .next()
            .map_or(header, |(at, _)| at.clone());
        r.report(
            extra,
            "[health] takes one probe: exec, tcp or http, not several",
        );
        return None;
    }
    if let Some((at, v)) = exec {
        return check_exec(Some(v), at, r).map(Probe::Exec);
    }
    if let Some((_, v)) = tcp {
        let s = r.string(Some(v))?;
        return match s.get_ref().parse::<SocketAddr>() {
            Ok(addr) if addr.port() > 0 => Some(Probe::Tcp(addr)),
            Ok(_) | Err(_) => {
                let text = s.get_ref();
                r.report(
                    s.span(),
                    format!("invalid tcp probe {text:?}: expected an address and port (1 to 65535) like \"127.0.0.1:5432\" or \"[::1]:5432\""),
                );
                None
            }
        };
    }
    let (_, v) = http?;
    let s = r.string(Some(v))?;
    match parse_http(s.get_ref()) {
        Ok(probe) => Some(probe),
        Err(why) => {
            r.report(s.span(), why);
            None
        }
    }
}

/// `http://HOST:PORT/PATH`, HOST an IP address or `localhost` (probes run inside the
/// unit's network namespace, where no name service is assumed).
fn parse_http(text: &str) -> Result<Probe, String> {
    let bad = |why: &str| {
        format!(
            "invalid http probe {text:?}: {why}; expected a URL like \"http://127.0.0.1:8080/healthz\""
        )
    };
    let uri: http::Uri = text
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    if uri.scheme_str() != Some("http") {
        return Err(bad("only http:// is supported (no TLS inside the probe)"));
    }
    let host = uri.host().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let ip = match bare.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) if host == "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Err(_) => return Err(bad("the host must be an IP address or localhost")),
    };
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(bad("user information (`user@`) is not supported"));
    }
    // `Uri::port` is None for a port that is not a u16: read the text itself.
    let authority = uri.authority().map_or("", |a| a.as_str());
    let port = match authority.strip_prefix(host).unwrap_or_default() {
        "" => 80,
        rest => match rest.strip_prefix(':').and_then(|p| p.parse::<u16>().ok()) {
            Some(port) if port > 0 => port,
            _ => {
                let text = rest.trim_start_matches(':');
                return Err(bad(&format!(
                    "port {text:?} is not a number from 1 to 65535"
                )));
            }
        },
    };
    let path = uri
        .path_and_query()
        .map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
    Ok(Probe::Http {
        addr: SocketAddr::new(ip, port),
        host: host.to_string(),
        path: if path.is_empty() { "/".into() } else { path },
    })
}
