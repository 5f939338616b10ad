//! TOML -> [`Unit`].
//!
//! The document is parsed once into toml's spanned tree, then read section
//! by section and key by key ([`reader`]). Every problem is recorded at the
//! span toml gives for its key, value or table, so one pass reports all of
//! a file's mistakes; only a TOML syntax error stops the file early.

use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

mod container;
mod id_map;
mod lifecycle;
pub(super) mod limits;
mod mount;
pub(super) mod network;
mod protection;
mod reader;
mod resources;
mod service;

/// The keys each table of a unit file accepts, as the parser reads them (what
/// the `sup.unit(5)` key list is checked against).
pub fn keys_by_section() -> [(&'static str, &'static [&'static str]); 9] {
    [
        ("[unit]", service::UNIT_KEYS),
        ("[service]", service::SERVICE_KEYS),
        ("[logs]", service::LOG_KEYS),
        ("[health]", lifecycle::HEALTH_KEYS),
        ("[network]", network::NETWORK_KEYS),
        ("[container]", container::CONTAINER_KEYS),
        ("[[device]]", protection::DEVICE_KEYS),
        ("[[mount]]", mount::MOUNT_KEYS),
        ("[resources]", resources::RESOURCE_KEYS),
    ]
}

use super::error::UnitError;
use super::model::{DepLocations, Pos, Unit};
use reader::{Problem, Reader};

/// Defaults, kept together so docs/units.md has one place to mirror.
pub(super) mod defaults {
    use std::time::Duration;

    pub const RESTART_DELAY: Duration = Duration::from_millis(100);
    pub const RESTART_MAX_DELAY: Duration = Duration::from_secs(30);
    pub const RESTART_RESET_AFTER: Duration = Duration::from_secs(10);
    pub const START_LIMIT_BURST: u32 = 5;
    pub const START_LIMIT_INTERVAL: Duration = Duration::from_secs(10);
    pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
    pub const LOG_MAX_SIZE: u64 = 10 * 1024 * 1024;
    pub const LOG_MAX_FILES: u32 = 5;
    /// Smaller logs would rotate on almost every line.
    pub const LOG_MIN_SIZE: u64 = 4 * 1024;
    pub const LOG_MAX_FILES_LIMIT: i64 = 100;
    /// Same limit as systemd unit names are comfortably under; keeps paths
    /// and log file names short.
    pub const NAME_MAX_LEN: usize = 64;
}

/// Top-level keys, in the order "unknown field" messages list them.
const SECTIONS: &[&str] = &[
    "unit",
    "service",
    "logs",
    "container",
    "mount",
    "device",
    "resources",
    "health",
    "network",
    "credentials",
];

/// Parses and validates one unit file. See the crate-level `parse_unit`.
pub(super) fn parse_unit(name: &str, path: &Path, text: &str) -> Result<Unit, Vec<UnitError>> {
    parse_file(name, path, text, |doc, lines, r| {
        if let Err(message) = check_name(name) {
            r.report(0..0, message);
        }
        build_unit(name, path, doc, lines, r)
    })
}

/// Parses one network file (`NAME.network.toml`); errors name `NAME.network`.
pub(super) fn parse_network(
    name: &str,
    path: &Path,
    text: &str,
) -> Result<crate::unit::NetworkDef, Vec<UnitError>> {
    let shown = format!("{name}.network");
    parse_file(&shown, path, text, |doc, _, r| {
        network::read_network_file(name, doc, r)
    })
}

/// The TOML document through `build`, with every problem located.
fn parse_file<T>(
    name: &str,
    path: &Path,
    text: &str,
    build: impl FnOnce(Spanned<DeTable>, &LineIndex, &mut Reader) -> Option<T>,
) -> Result<T, Vec<UnitError>> {
    let lines = LineIndex::new(text);
    let mut r = Reader::default();
    let unit = match DeTable::parse(text) {
        Ok(doc) => build(doc, &lines, &mut r),
        Err(e) => {
            r.report(e.span().unwrap_or(0..0), e.message().trim_end());
            None
        }
    };
    let problems = r.into_problems();
    let error = |p: Problem| {
        let pos = lines.pos(p.span.start);
        UnitError {
            unit: name.to_owned(),
            path: path.to_owned(),
            line: pos.line,
            column: pos.column,
            message: p.message,
        }
    };
    match unit {
        Some(unit) if problems.is_empty() => Ok(unit),
        // A unit is only missing when a problem was recorded; the fallback
        // keeps that an error even if it ever were not.
        _ if problems.is_empty() => Err(vec![error(Problem {
            span: 0..0,
            message: "invalid unit".to_owned(),
        })]),
        _ => Err(problems.into_iter().map(error).collect()),
    }
}

/// Unit names become file names, log names and CLI arguments, so keep them
/// to a conservative character set.
pub(super) fn check_name(name: &str) -> Result<(), String> {
    let expected = "unit names must match [A-Za-z0-9][A-Za-z0-9_.@-]* and be at most 64 bytes";
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "_.@-".contains(c));
    if !first_ok || !rest_ok {
        return Err(format!("invalid unit name {name:?}: {expected}"));
    }
    if name.len() > defaults::NAME_MAX_LEN {
        return Err(format!(
            "invalid unit name {name:?}: too long ({} bytes); {expected}",
            name.len()
        ));
    }
    Ok(())
}

/// Reads every section; `None` when a required part is missing or broken
/// (the reason is in `r`).
fn build_unit(
    name: &str,
    path: &Path,
    doc: Spanned<DeTable>,
    lines: &LineIndex,
    r: &mut Reader,
) -> Option<Unit> {
    let root = Spanned::new(0..0, DeValue::Table(doc.into_inner()));
    let mut root = r.table(Some(root), SECTIONS)?;
    let deps = service::read_unit_section(root.take("unit"), r);
    let network = network::read_network(root.take("network"), r);
    // `mode = "none"`/`"bridge"` give the unit a network namespace of its own, as
    // `"net"` in `namespaces` does: it decides the default capabilities.
    let own_net = matches!(
        network.spec.mode,
        crate::unit::NetworkMode::None | crate::unit::NetworkMode::Bridge
    );
    // Before [service]: an image unit may leave out `exec` (and [service]).
    let mut container = container::read_container(
        root.take("container"),
        root.take("mount"),
        root.take("device"),
        own_net,
        r,
    );
    let service = match root.take("service") {
        Some(v) => service::read_service(v, container.image.as_mut(), r),
        None if container.image.is_some() => {
            let empty = Spanned::new(0..0, DeValue::Table(Default::default()));
            service::read_service(empty, container.image.as_mut(), r)
        }
        None => {
            r.report(
                0..0,
                "missing [service] section: every unit needs one with at least `exec = [...]`",
            );
            None
        }
    };
    let logs = service::read_logs(root.take("logs"), r);
    let credentials_at = root.take("credentials");
    let credentials_span = credentials_at.as_ref().map(Spanned::span);
    let credentials = service::read_credentials(credentials_at, r);
    let mode_at = network.mode_written.as_ref().map(|m| m.span());
    let net_at = network.at;
    let mut network = network.spec;
    network::reconcile(name, &mut network, mode_at.clone(), &mut container, r);
    let resources = resources::read_resources(root.take("resources"), r);
    let kind = service
        .as_ref()
        .map_or(crate::unit::ServiceType::Simple, |s| s.lifecycle.kind);
    let health = lifecycle::read_health(root.take("health"), kind, r);
    let locate =
        |list: &[Spanned<String>]| list.iter().map(|d| lines.pos(d.span().start)).collect();
    let names = |list: Vec<Spanned<String>>| list.into_iter().map(Spanned::into_inner).collect();
    let at = |span: Option<&reader::Span>| lines.pos(span.map_or(0, |s| s.start));
    let mut locations = DepLocations {
        after: locate(&deps.after),
        requires: locate(&deps.requires),
        wants: locate(&deps.wants),
        networks: at(net_at.networks.as_ref().or(mode_at.as_ref())),
        ports: net_at.ports.iter().map(|s| at(Some(s))).collect(),
        ipv4: at(net_at.ipv4.as_ref()),
    };
    let mut after: Vec<String> = names(deps.after);
    let mut requires: Vec<String> = names(deps.requires);
    let wants: Vec<String> = names(deps.wants);
    // A unit in another's network namespace needs it running first, and goes
    // with it.
    if let crate::unit::NetworkMode::Unit(peer) = &network.mode {
        let at = at(mode_at.as_ref());
        for (list, pos) in [
            (&mut after, &mut locations.after),
            (&mut requires, &mut locations.requires),
        ] {
            if !list.contains(peer) {
                list.push(peer.clone());
                pos.push(at);
            }
        }
    }
    // Credentials are a private mount of the container: they need its own mount
    // namespace.
    if let Some(span) = credentials_span
        && !credentials.is_empty()
        && !container.namespaces.contains(&crate::unit::Namespace::Mnt)
    {
        r.report(
            span,
            "[credentials] needs the unit's own mount namespace: add \"mnt\" to [container] namespaces",
        );
    }
    let mut service = service?;
    service.credentials = credentials;
    // Something to wait for, and no limit written: systemd's default (not for a
    // oneshot job, which may take as long as it takes).
    let lc = &mut service.lifecycle;
    lc.ready_on_health = health.as_ref().is_some_and(|h| h.ready_on_healthy);
    if lc.start_timeout.is_none()
        && lc.kind != crate::unit::ServiceType::Oneshot
        && lc.waits_for_ready()
    {
        lc.start_timeout = Some(crate::unit::Lifecycle::DEFAULT_START_TIMEOUT);
    }
    let mut unit = Unit {
        name: name.to_owned(),
        path: path.to_owned(),
        hash: String::new(),
        description: deps.description,
        after,
        requires,
        wants,
        service,
        logs,
        container,
        resources,
        health,
        network,
        deps: locations,
    };
    unit.hash = unit.compute_hash();
    Some(unit)
}

/// Byte offset -> 1-based line and column, by binary search over line
/// starts so a file with many errors is not rescanned for each.
pub(super) struct LineIndex<'t> {
    text: &'t str,
    starts: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    pub(super) fn new(text: &'t str) -> Self {
        let newlines = text.match_indices('\n').map(|(i, _)| i + 1);
        LineIndex {
            text,
            starts: std::iter::once(0).chain(newlines).collect(),
        }
    }

    /// Columns count characters, not bytes, to match what editors display.
    pub(super) fn pos(&self, offset: usize) -> Pos {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts.get(line.wrapping_sub(1)).copied().unwrap_or(0);
        Pos {
            line: line.max(1),
            column: self.text[start..offset].chars().count() + 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions() {
        let text = "ab\néé = 1\n\nx";
        let lines = LineIndex::new(text);
        let at = |offset| {
            let p = lines.pos(offset);
            (p.line, p.column)
        };
        assert_eq!(at(0), (1, 1));
        assert_eq!(at(2), (1, 3));
        assert_eq!(at(3), (2, 1));
        assert_eq!(at(5), (2, 2), "characters, not bytes");
        assert_eq!(at(6), (2, 2), "inside a character: its start");
        assert_eq!(at(12), (3, 1));
        assert_eq!(at(13), (4, 1));
        assert_eq!(at(99), (4, 2), "past the end: the end");
    }
}
