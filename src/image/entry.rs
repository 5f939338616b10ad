//! What a layer's tar entry names, decided before anything is written: the
//! parent directories and last component under the layer root (no `..`, no
//! absolute paths), and whether it is an OCI whiteout. Pure, table-tested.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use super::ImageError;

/// A path below the layer root, split for `*at` calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rel {
    pub parents: Vec<OsString>,
    pub name: OsString,
}

/// What an entry does in the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// The layer root itself (`./`): its attributes are the root's.
    Root,
    /// An ordinary entry at this path.
    Plain(Rel),
    /// `.wh..wh..opq`: the directory (these parents) hides every lower child.
    Opaque(Vec<OsString>),
    /// `.wh.NAME`: NAME is deleted from the lower layers.
    Whiteout(Rel),
}

const WH_PREFIX: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

/// Splits a tar path; `..` and absolute paths are refused, `.` dropped.
pub fn split(path: &Path) -> Result<Option<Rel>, ImageError> {
    let mut parts: Vec<OsString> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_owned()),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(ImageError::new(format!(
                    "tar entry {path:?} leaves the layer (`..` or an absolute path): refusing the layer"
                )));
            }
        }
    }
    Ok(parts.pop().map(|name| Rel {
        parents: parts,
        name,
    }))
}

/// Classifies a layer entry's path.
pub fn classify(path: &Path) -> Result<Kind, ImageError> {
    let Some(rel) = split(path)? else {
        return Ok(Kind::Root);
    };
    let name = rel.name.as_bytes();
    if name == OPAQUE {
        return Ok(Kind::Opaque(rel.parents));
    }
    if let Some(hidden) = name.strip_prefix(WH_PREFIX) {
        if hidden.is_empty() || hidden.starts_with(WH_PREFIX) {
            return Err(ImageError::new(format!(
                "tar entry {path:?} is not a valid whiteout: refusing the layer"
            )));
        }
        return Ok(Kind::Whiteout(Rel {
            parents: rel.parents,
            name: OsStr::from_bytes(hidden).to_owned(),
        }));
    }
    Ok(Kind::Plain(rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(parents: &[&str], name: &str) -> Rel {
        Rel {
            parents: parents.iter().map(OsString::from).collect(),
            name: name.into(),
        }
    }

    #[test]
    fn entries_are_classified_or_refused() {
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let cases: Vec<(&str, Option<Kind>)> = vec![
            ("./", Some(Kind::Root)),
            (".", Some(Kind::Root)),
            ("bin/sh", Some(Kind::Plain(rel(&["bin"], "sh")))),
            ("./etc/passwd", Some(Kind::Plain(rel(&["etc"], "passwd")))),
            ("a/./b/", Some(Kind::Plain(rel(&["a"], "b")))),
            ("etc/.wh.motd", Some(Kind::Whiteout(rel(&["etc"], "motd")))),
            (".wh.tmp", Some(Kind::Whiteout(rel(&[], "tmp")))),
            (
                "var/lib/.wh..wh..opq",
                Some(Kind::Opaque(os(&["var", "lib"]))),
            ),
            ("wh.x", Some(Kind::Plain(rel(&[], "wh.x")))),
            ("etc/.wh.", None),
            ("etc/.wh..wh.x", None),
            ("../etc/passwd", None),
            ("a/../../b", None),
            ("a/..", None),
            ("/etc/passwd", None),
        ];
        for (path, want) in cases {
            let got = classify(Path::new(path)).ok();
            assert_eq!(got, want, "{path}");
        }
    }
}
