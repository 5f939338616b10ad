//! `userns_base`, `uid_map` and `gid_map`.

use super::container::container;
use super::*;

#[test]
fn id_maps() {
    let user = "[container]\nnamespaces = [\"user\", \"mnt\"]\n";
    // Overlap inside: [0, 100) and [50, 150).
    assert_err(
        &with(&format!(
            "{user}uid_map = [\n  {{ inside = 0, outside = 1000, count = 100 }},\n  {{ inside = 50, outside = 5000, count = 100 }},\n]\ngid_map = [{{ inside = 0, outside = 1, count = 1 }}]\n"
        )),
        7,
        14,
        "uid_map ranges overlap on the inside side: uid_map[1] covers 50..=149 and an earlier range covers 0..=99",
    );
    // Overlap outside, in gid_map.
    assert_err(
        &with(&format!(
            "{user}uid_map = [{{ inside = 0, outside = 1, count = 1 }}]\ngid_map = [\n  {{ inside = 0, outside = 1000, count = 10 }},\n  {{ inside = 10, outside = 1009, count = 1 }},\n]\n"
        )),
        8,
        28,
        "gid_map ranges overlap on the outside side",
    );
    // Adjacent ranges are fine.
    let c = container(&format!(
        "{user}uid_map = [{{ inside = 0, outside = 10, count = 10 }}, {{ inside = 10, outside = 0, count = 10 }}]\ngid_map = [{{ inside = 0, outside = 1, count = 1 }}]\n"
    ));
    assert_eq!(c.uid_map.len(), 2);
    // Overflow of u32 and count 0.
    assert_err(
        &with(&format!(
            "{user}uid_map = [{{ inside = 0, outside = 4294967295, count = 2 }}]\ngid_map = [{{ inside = 0, outside = 1, count = 1 }}]\n"
        )),
        5,
        56,
        "outside 4294967295 + count 2 goes past 4294967296",
    );
    let c = container(&format!(
        "{user}uid_map = [{{ inside = 0, outside = 4294967295, count = 1 }}]\ngid_map = [{{ inside = 4294967295, outside = 1, count = 1 }}]\n"
    ));
    assert_eq!(c.uid_map[0].outside, u32::MAX);
    assert_err(
        &with(&format!(
            "{user}uid_map = [{{ inside = 0, outside = 1, count = 0 }}]\ngid_map = [{{ inside = 0, outside = 1, count = 1 }}]\n"
        )),
        5,
        47,
        "uid_map[0].count 0 is out of range",
    );
    // Too many ranges.
    let many: Vec<String> = (0..341)
        .map(|i| format!("{{ inside = {i}, outside = {}, count = 1 }}", 1000 + i))
        .collect();
    assert_err(
        &with(&format!(
            "{user}gid_map = [{{ inside = 0, outside = 1, count = 1 }}]\nuid_map = [{}]\n",
            many.join(", ")
        )),
        6,
        11,
        "uid_map has 341 ranges: the kernel accepts at most 340",
    );
    // A created user namespace needs both maps ...
    assert_err(
        &with(&format!(
            "{user}uid_map = [{{ inside = 0, outside = 1, count = 1 }}]\n"
        )),
        4,
        15,
        "a created user namespace needs uid_map and gid_map, but gid_map is missing",
    );
    // ... and maps need a created user namespace.
    assert_err(
        &with("[container]\ngid_map = [{ inside = 0, outside = 1, count = 1 }]\n"),
        4,
        11,
        "gid_map needs a user namespace created by the unit",
    );
}

#[test]
fn userns_base_shorthand() {
    let c =
        container("[container]\nnamespaces = [\"user\", \"mnt\", \"pid\"]\nuserns_base = 100000\n");
    let range = IdMapRange {
        inside: 0,
        outside: 100_000,
        count: 65536,
    };
    assert_eq!((c.uid_map, c.gid_map), (vec![range], vec![range]));
    assert_err(
        &with(
            "[container]\nnamespaces = [\"user\"]\nuserns_base = 100000\nuid_map = [{ inside = 0, outside = 1, count = 1 }]\n",
        ),
        5,
        15,
        "write either userns_base or the maps, not both",
    );
    assert_err(
        &with("[container]\nnamespaces = [\"user\"]\nuserns_base = 4294901761\n"),
        5,
        15,
        "userns_base 4294901761 is out of range",
    );
    assert_err(
        &with("[container]\nuserns_base = 100000\n"),
        4,
        15,
        "userns_base needs a user namespace",
    );
}
