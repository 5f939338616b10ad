//! sha256 digests as the image formats write them (`sha256:<64 hex>`), and a
//! reader that hashes and counts what passes through it, so a blob is verified
//! in the same pass that copies or unpacks it.

use std::io::Read;

use sha2::{Digest as _, Sha256};

use super::ImageError;

/// A validated `sha256:<64 lowercase hex>` digest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

impl Digest {
    /// Parses `sha256:<hex>`; other algorithms are refused (sha512 is allowed by
    /// the spec but no tool writes it, and the store names files by sha256).
    pub fn parse(s: &str) -> Result<Digest, ImageError> {
        let Some(hex) = s.strip_prefix("sha256:") else {
            return Err(ImageError::new(format!(
                "digest {s:?} is not sha256:<64 hex digits> (only sha256 is supported)"
            )));
        };
        let valid = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !valid {
            return Err(ImageError::new(format!(
                "digest {s:?} is not sha256:<64 lowercase hex digits>"
            )));
        }
        Ok(Digest(s.to_owned()))
    }

    /// The hex part: the file name in the store.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

// As the string it is, in refs.json and in-use.json.
impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Hashes and counts the bytes read through it.
pub struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Hashing<R> {
    pub fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Reads what is left (a tar's trailing padding, a blob not read to its
    /// end), then returns the digest and size of everything read.
    pub fn finish(mut self) -> std::io::Result<(Digest, u64)> {
        std::io::copy(&mut self, &mut std::io::sink())?;
        let hex = hex::encode(self.hasher.finalize());
        Ok((Digest(format!("sha256:{hex}")), self.count))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Compares what was read with what a descriptor promised.
pub fn check(
    what: &str,
    want: &Digest,
    want_size: Option<u64>,
    got: &Digest,
    size: u64,
) -> Result<(), ImageError> {
    if let Some(w) = want_size
        && w != size
    {
        return Err(ImageError::new(format!(
            "{what} {want}: size is {size} bytes, the manifest says {w}: the image is corrupt or truncated, export it again"
        )));
    }
    if want != got {
        return Err(ImageError::new(format!(
            "{what}: digest mismatch, expected {want}, content hashes to {got}: the image is corrupt, export it again"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_only_sha256_lowercase_hex() {
        let good = format!("sha256:{}", "ab".repeat(32));
        for (input, ok) in [
            (good.as_str(), true),
            ("sha256:", false),
            ("sha512:abcd", false),
            ("ab", false),
            (&format!("sha256:{}", "AB".repeat(32)), false),
            (&format!("sha256:{}", "ab".repeat(31)), false),
            (&format!("sha256:{}/..", "ab".repeat(31)), false),
        ] {
            assert_eq!(Digest::parse(input).is_ok(), ok, "{input}");
        }
    }

    #[test]
    fn hashing_reader_matches_one_shot_digest() {
        let data = b"hello layers".repeat(1000);
        let mut r = Hashing::new(&data[..]);
        let mut head = [0u8; 10];
        r.read_exact(&mut head).unwrap();
        let (d, n) = r.finish().unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(d, Digest::of(&data));
        assert!(check("blob", &d, Some(n), &d, n).is_ok());
        assert!(check("blob", &d, Some(n + 1), &d, n).is_err());
        assert!(check("blob", &Digest::of(b"x"), None, &d, n).is_err());
    }
}
