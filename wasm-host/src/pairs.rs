//! Header maps as the guest sees them ([`MapView`]: pseudo-headers, then the real headers) and
//! their ("pairs") serialization in the Proxy-Wasm ABI, little-endian:
//! `u32 N | N × (u32 key_len, u32 value_len) | N × (key 0x00 value 0x00)`.
//!
//! An empty map is handed over as `(0, 0)` (no bytes at all), as proxy-wasm-cpp-host does: the
//! Rust SDK reads four bytes from any non-empty buffer. Guest-supplied maps are parsed strictly
//! (like cpp-host's `PairsUtil::toPairs`); a malformed one is rejected whole.

use http::{HeaderMap, HeaderValue};

/// A status code as the three ASCII digits of a `:status` pseudo-header (none outside
/// 100-999), kept on the stack for the call that reads it.
pub(crate) struct StatusDigits([u8; 3]);

impl StatusDigits {
    pub(crate) fn new(code: Option<u16>) -> Option<StatusDigits> {
        code.filter(|c| (100..1000).contains(c))
            .map(|c| StatusDigits([c / 100, c / 10 % 10, c % 10].map(|d| b'0' + d as u8)))
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// The pseudo-headers a guest sees before a map's real headers (`:method`, `:path`,
/// `:authority`, `:scheme` for requests; `:status` for responses), never stored: writes to
/// them are ignored, as the sidecar cannot apply them.
pub(crate) type Pseudo<'a> = [(&'static str, &'a str)];

/// A header map as the guest sees it: pseudo-headers first, then the real headers in order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MapView<'a> {
    /// Pseudo-headers.
    pub pseudo: &'a Pseudo<'a>,
    /// Real headers.
    pub headers: &'a HeaderMap,
}

impl<'a> MapView<'a> {
    /// Pairs in order, names lower-case.
    pub(crate) fn pairs(self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        self.pseudo
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
            .chain(
                self.headers
                    .iter()
                    .map(|(k, v)| (k.as_str().as_bytes(), v.as_bytes())),
            )
    }

    /// Number of pairs.
    pub(crate) fn len(self) -> usize {
        self.pseudo.len() + self.headers.len()
    }

    /// The first value of `name` (lower-case).
    pub(crate) fn get(self, name: &str) -> Option<&'a [u8]> {
        if name.starts_with(':') {
            return self
                .pseudo
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_bytes());
        }
        self.headers.get(name).map(HeaderValue::as_bytes)
    }
}

/// Largest guest-supplied map accepted, in bytes and in pairs (cpp-host's limits).
const MAX_BYTES: usize = 1 << 20;
const MAX_PAIRS: usize = 1024;

/// Serializes `pairs`; empty input gives empty output.
#[cfg(test)]
pub(crate) fn serialize<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    serialize_iter(|| pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
}

/// Serializes the pairs `pairs()` yields (walked three times: count, sizes, bytes), straight
/// from where they live, with one allocation.
pub(crate) fn serialize_iter<'a, I>(pairs: impl Fn() -> I) -> Vec<u8>
where
    I: Iterator<Item = (&'a [u8], &'a [u8])>,
{
    let (count, bytes) = pairs().fold((0usize, 0usize), |(n, b), (k, v)| {
        (n + 1, b + k.len() + v.len())
    });
    if count == 0 {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(4 + 10 * count + bytes);
    out.extend_from_slice(&(count as u32).to_le_bytes());
    for (k, v) in pairs() {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs() {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// Parses a guest-supplied map; `None` when it is malformed in any way. Empty input is an
/// empty map.
pub(crate) fn parse(bytes: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    if bytes.len() > MAX_BYTES {
        return None;
    }
    let u32_at = |at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    let n = u32_at(0)?;
    if n > MAX_PAIRS {
        return None;
    }
    let mut sizes = Vec::with_capacity(n);
    for i in 0..n {
        sizes.push((u32_at(4 + 8 * i)?, u32_at(8 + 8 * i)?));
    }
    let mut at = 4 + 8 * n;
    let mut take = |len: usize| -> Option<Vec<u8>> {
        let end = at.checked_add(len)?;
        let value = bytes.get(at..end)?.to_vec();
        if *bytes.get(end)? != 0 {
            return None;
        }
        at = end + 1;
        Some(value)
    };
    let mut pairs = Vec::with_capacity(n);
    for (klen, vlen) in sizes {
        let key = take(klen)?;
        let value = take(vlen)?;
        pairs.push((key, value));
    }
    (at == bytes.len()).then_some(pairs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn serializes_the_spec_example_byte_for_byte() {
        let bytes = serialize(&[(":method", "GET")]);
        let expected = b"\x01\x00\x00\x00\x07\x00\x00\x00\x03\x00\x00\x00:method\x00GET\x00";
        assert_eq!(bytes, expected);
    }

    #[test]
    fn round_trips_and_rejects_truncated_or_trailing_bytes() {
        let bytes = serialize(&[("a", "1"), ("bb", "")]);
        let pairs = parse(&bytes).unwrap();
        assert_eq!(
            pairs,
            vec![(b"a".to_vec(), b"1".to_vec()), (b"bb".to_vec(), Vec::new())]
        );
        assert!(parse(&bytes[..bytes.len() - 1]).is_none());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(parse(&longer).is_none());
        assert!(parse(&[0xff, 0xff, 0xff, 0xff]).is_none());
        assert_eq!(serialize::<&str, &str>(&[]), Vec::<u8>::new());
    }

    #[test]
    fn rejects_a_missing_nul_terminator() {
        let mut bytes = serialize(&[("k", "v")]);
        let last = bytes.len() - 1;
        bytes[last] = b'x';
        assert!(parse(&bytes).is_none());
    }

    mod properties {
        //! The decoder reads guest memory, so any bytes at all: it never panics, accepts only
        //! the exact encoding of what it returns, and round-trips every map it could be given.
        use proptest::prelude::*;

        use super::super::{parse, serialize};

        fn pairs() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
            // NULs inside keys and values too: lengths, not terminators, delimit them.
            let bytes = || prop::collection::vec(any::<u8>(), 0..24);
            prop::collection::vec((bytes(), bytes()), 0..12)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2048))]

            #[test]
            fn any_map_round_trips(pairs in pairs()) {
                prop_assert_eq!(parse(&serialize(&pairs)), Some(pairs));
            }

            #[test]
            fn any_bytes_are_refused_or_are_the_exact_encoding(
                bytes in prop::collection::vec(any::<u8>(), 0..96),
            ) {
                if let Some(pairs) = parse(&bytes) {
                    if pairs.is_empty() {
                        prop_assert!(bytes.is_empty() || bytes == [0, 0, 0, 0]);
                    } else {
                        prop_assert_eq!(serialize(&pairs), bytes);
                    }
                }
            }

            #[test]
            fn a_damaged_encoding_is_refused_or_reads_as_what_it_now_says(
                pairs in pairs(),
                at in any::<prop::sample::Index>(),
                byte in any::<u8>(),
                cut in any::<prop::sample::Index>(),
                damage in 0..3u8,
            ) {
                let mut bytes = serialize(&pairs);
                prop_assume!(!bytes.is_empty());
                match damage {
                    0 => { let i = at.index(bytes.len()); bytes[i] = byte; }
                    1 => bytes.truncate(cut.index(bytes.len())),
                    _ => bytes.insert(at.index(bytes.len() + 1), byte),
                }
                if let Some(read) = parse(&bytes)
                    && !read.is_empty()
                {
                    prop_assert_eq!(serialize(&read), bytes);
                }
            }
        }
    }
}
