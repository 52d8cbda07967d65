//! Pure decoding for the LDAP connector: search result entries from their BER structure (never
//! panicking, unlike `SearchEntry::construct`), the RFC 2696 paged-results control value, AD
//! `objectGUID` (binary → canonical GUID string), FILETIME (100-ns ticks since 1601) and LDAP
//! generalized time, and DN normalisation for comparing DNs written by different hands.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use ldap3::asn1::{PL, StructureTag};

/// One directory entry: its DN and every attribute's raw values, attribute names lower-cased.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub dn: String,
    pub attrs: HashMap<String, Vec<Vec<u8>>>,
    /// Attributes that came back as an incomplete AD range (`member;range=0-1499`), each with
    /// the index the next range starts at.
    pub ranges: Vec<(String, u64)>,
}

impl Entry {
    /// The first value of `attr` as text (lossy UTF-8), trimmed; `None` when absent or empty.
    pub fn first(&self, attr: &str) -> Option<String> {
        let v = self.attrs.get(&attr.to_ascii_lowercase())?.first()?;
        let s = String::from_utf8_lossy(v).trim().to_owned();
        (!s.is_empty()).then_some(s)
    }

    /// The first raw value of `attr`.
    pub fn first_bytes(&self, attr: &str) -> Option<&[u8]> {
        self.attrs
            .get(&attr.to_ascii_lowercase())?
            .first()
            .map(Vec::as_slice)
    }

    /// Every value of `attr` as text (lossy UTF-8), empty ones left out.
    pub fn all(&self, attr: &str) -> Vec<String> {
        self.attrs
            .get(&attr.to_ascii_lowercase())
            .map(|vs| {
                vs.iter()
                    .map(|v| String::from_utf8_lossy(v).trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn primitive(t: StructureTag) -> Option<Vec<u8>> {
    match t.payload {
        PL::P(v) => Some(v),
        PL::C(_) => None,
    }
}

fn constructed(t: StructureTag) -> Option<Vec<StructureTag>> {
    match t.payload {
        PL::C(v) => Some(v),
        PL::P(_) => None,
    }
}

/// Decodes a SearchResultEntry (`[APPLICATION 4] SEQUENCE { objectName, attributes }`).
/// Attribute options such as `;binary` are dropped from the name. `None` for anything
/// malformed (including a DN that is not UTF-8).
pub fn entry_from_tag(tag: StructureTag) -> Option<Entry> {
    if tag.id != 4 {
        return None;
    }
    let mut parts = constructed(tag)?.into_iter();
    let dn = String::from_utf8(primitive(parts.next()?)?).ok()?;
    let mut attrs: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
    let mut ranges = Vec::new();
    for attr in constructed(parts.next()?)? {
        let mut a = constructed(attr)?.into_iter();
        let name = String::from_utf8(primitive(a.next()?)?).ok()?;
        let mut options = name.split(';');
        let name = options.next().unwrap_or_default().to_ascii_lowercase();
        for o in options {
            if let Some((_, high)) = o
                .to_ascii_lowercase()
                .strip_prefix("range=")
                .and_then(|r| r.split_once('-'))
                && high != "*"
            {
                let next = high.parse::<u64>().ok()?.checked_add(1)?;
                ranges.push((name.clone(), next));
            }
        }
        let mut values = Vec::new();
        for v in constructed(a.next()?)? {
            values.push(primitive(v)?);
        }
        attrs.entry(name).or_default().extend(values);
    }
    Some(Entry { dn, attrs, ranges })
}

/// Reads one BER TLV from `buf`: (tag byte, content, rest). Definite lengths only, at most
/// four length octets.
fn tlv(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = buf.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | usize::from(b);
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The RFC 2696 response value `SEQUENCE { size INTEGER, cookie OCTET STRING }`: the
/// server's size estimate and the cookie (empty on the last page). `None` when malformed.
pub fn paged_results_value(val: &[u8]) -> Option<(i64, Vec<u8>)> {
    let (tag, seq, _) = tlv(val)?;
    if tag != 0x30 {
        return None;
    }
    let (itag, int, rest) = tlv(seq)?;
    if itag != 0x02 || int.is_empty() || int.len() > 8 {
        return None;
    }
    let mut size: i64 = if int[0] & 0x80 != 0 { -1 } else { 0 };
    for &b in int {
        size = (size << 8) | i64::from(b);
    }
    let (ctag, cookie, _) = tlv(rest)?;
    if ctag != 0x04 {
        return None;
    }
    Some((size, cookie.to_vec()))
}

/// AD `objectGUID` (16 bytes, the first three fields little-endian) as the canonical
/// lower-case GUID string `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`; `None` unless 16 bytes.
pub fn guid(bytes: &[u8]) -> Option<String> {
    let b: &[u8; 16] = bytes.try_into().ok()?;
    let order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
    let mut out = String::with_capacity(36);
    for (i, &ix) in order.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push_str(&format!("{:02x}", b[ix]));
    }
    Some(out)
}

/// What a FILETIME attribute says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileTime {
    /// 0 or `0x7FFFFFFFFFFFFFFF`: never (never logged in, never expires, not locked).
    Never,
    At(DateTime<Utc>),
    /// Not a number, negative, or beyond what a date can hold.
    Invalid,
}

/// Decodes a FILETIME (100-ns intervals since 1601-01-01 UTC, as a decimal string).
pub fn filetime(raw: &str) -> FileTime {
    let Ok(ticks) = raw.trim().parse::<i64>() else {
        return FileTime::Invalid;
    };
    if ticks == 0 || ticks == i64::MAX {
        return FileTime::Never;
    }
    if ticks < 0 {
        return FileTime::Invalid;
    }
    let Some(epoch) = NaiveDate::from_ymd_opt(1601, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0))
    else {
        return FileTime::Invalid;
    };
    let secs = ticks / 10_000_000;
    let nanos = (ticks % 10_000_000) * 100;
    match TimeDelta::try_seconds(secs)
        .and_then(|d| d.checked_add(&TimeDelta::nanoseconds(nanos)))
        .and_then(|d| epoch.checked_add_signed(d))
    {
        Some(t) => FileTime::At(t.and_utc()),
        None => FileTime::Invalid,
    }
}

/// `t` as a FILETIME decimal string (for tests and fixtures).
pub fn to_filetime(t: DateTime<Utc>) -> String {
    let secs = t.timestamp() + 11_644_473_600;
    (i128::from(secs) * 10_000_000 + i128::from(t.timestamp_subsec_nanos() / 100)).to_string()
}

fn digits(s: &str, n: usize) -> Option<(u32, &str)> {
    if s.len() < n || !s.is_char_boundary(n) {
        return None;
    }
    let (d, rest) = s.split_at(n);
    if !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((d.parse().ok()?, rest))
}

/// Parses LDAP generalized time (RFC 4517 §3.3.13): `YYYYMMDDHH[MM[SS]][(.|,)fraction]` then
/// `Z` or `±HH[MM]`, e.g. AD `20240101120000.0Z`, OpenLDAP `20240101120000Z`. A fraction
/// after the hour or minute is not supported (nobody sends it). `None` for anything else.
pub fn generalized_time(raw: &str) -> Option<DateTime<Utc>> {
    let s = raw.trim();
    if !s.is_ascii() {
        return None;
    }
    let (year, s) = digits(s, 4)?;
    let (month, s) = digits(s, 2)?;
    let (day, s) = digits(s, 2)?;
    let (hour, s) = digits(s, 2)?;
    let (minute, s) = digits(s, 2).unwrap_or((0, s));
    let (second, mut s) = digits(s, 2).unwrap_or((0, s));
    let mut nanos = 0u32;
    if let Some(rest) = s.strip_prefix('.').or_else(|| s.strip_prefix(',')) {
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if end == 0 {
            return None;
        }
        let frac = &rest[..end.min(9)];
        nanos = frac.parse::<u32>().ok()? * 10u32.pow(9 - frac.len() as u32);
        s = &rest[end..];
    }
    let offset_secs: i64 = match s {
        "Z" => 0,
        _ => {
            let sign = match s.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, rest) = digits(&s[1..], 2)?;
            let (om, rest) = if rest.is_empty() {
                (0, rest)
            } else {
                digits(rest, 2)?
            };
            if !rest.is_empty() || oh > 23 || om > 59 {
                return None;
            }
            sign * (i64::from(oh) * 3600 + i64::from(om) * 60)
        }
    };
    let second = second.min(59); // a leap second is read as :59
    let t = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?
        .and_hms_nano_opt(hour, minute, second, nanos)?
        .and_utc();
    t.checked_sub_signed(TimeDelta::seconds(offset_secs))
}

/// `t` as generalized time `YYYYMMDDHHMMSSZ` (whole seconds, for filters and checkpoints).
pub fn to_generalized_time(t: DateTime<Utc>) -> String {
    t.format("%Y%m%d%H%M%SZ").to_string()
}

/// A DN in a form fit for comparison: lower case, no spaces around `,`, `=` and `+` (escaped
/// characters are kept as written). Not a full RFC 4514 canonicalisation, which would need
/// the schema; good enough to match `member` values to entry DNs written by the same admin
/// tools.
pub fn normalise_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    let mut chars = dn.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push('\\');
                if let Some(n) = chars.next() {
                    out.extend(n.to_lowercase());
                }
            }
            ',' | '=' | '+' => {
                while out.ends_with(' ') && !out.ends_with("\\ ") {
                    out.pop();
                }
                out.push(c);
                while chars.peek() == Some(&' ') {
                    chars.next();
                }
            }
            _ => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// The value of the first RDN of `dn` (`cn=Staff,ou=groups` → `Staff`).
pub fn rdn_value(dn: &str) -> String {
    let first = dn.split(',').next().unwrap_or(dn);
    first
        .split_once('=')
        .map_or(first, |(_, v)| v)
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn object_guid_bytes_become_the_canonical_mixed_endian_guid_string() {
        let bytes: Vec<u8> = (0u8..16).collect();
        assert_eq!(
            guid(&bytes).as_deref(),
            Some("03020100-0504-0706-0809-0a0b0c0d0e0f")
        );
        assert_eq!(guid(&bytes[..15]), None);
        assert_eq!(guid(&[]), None);
        assert_eq!(guid(&[0; 17]), None);
    }

    #[test]
    fn filetime_zero_and_max_mean_never_and_garbage_is_invalid_without_panicking() {
        assert_eq!(filetime("0"), FileTime::Never);
        assert_eq!(filetime("9223372036854775807"), FileTime::Never);
        assert_eq!(
            filetime("133497504000000000"),
            FileTime::At(Utc.with_ymd_and_hms(2024, 1, 15, 0, 0, 0).unwrap())
        );
        assert_eq!(
            filetime("116444736000000000"),
            FileTime::At(Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap())
        );
        for bad in [
            "",
            "abc",
            "-5",
            "12.5",
            "99999999999999999999999",
            "9223372036854775806",
            "\u{1F600}",
        ] {
            assert!(
                matches!(filetime(bad), FileTime::Invalid | FileTime::At(_)),
                "{bad}"
            );
        }
        assert_eq!(filetime("-5"), FileTime::Invalid);
        assert_eq!(filetime("nope"), FileTime::Invalid);
    }

    #[test]
    fn filetimes_round_trip() {
        let t = Utc.with_ymd_and_hms(2025, 6, 30, 12, 34, 56).unwrap();
        assert_eq!(filetime(&to_filetime(t)), FileTime::At(t));
    }

    #[test]
    fn generalized_time_reads_ad_and_openldap_spellings_and_offsets() {
        let t = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(generalized_time("20240102030405Z"), Some(t));
        assert_eq!(generalized_time("20240102030405.0Z"), Some(t));
        assert_eq!(
            generalized_time("20240102030405.123456Z"),
            Some(t + TimeDelta::microseconds(123_456))
        );
        assert_eq!(generalized_time("20240102050405+0200"), Some(t));
        assert_eq!(generalized_time("20240102020405-01"), Some(t));
        assert_eq!(
            generalized_time("2024010203Z"),
            Some(Utc.with_ymd_and_hms(2024, 1, 2, 3, 0, 0).unwrap())
        );
        assert_eq!(to_generalized_time(t), "20240102030405Z");
    }

    #[test]
    fn garbage_generalized_time_is_none_without_panicking() {
        for bad in [
            "",
            "Z",
            "2024",
            "20241302030405Z",
            "20240230030405Z",
            "20240102250405Z",
            "20240102030405",
            "20240102030405X",
            "20240102030405.Z",
            "20240102030405+99",
            "2024010203040\u{e9}Z",
            "\u{1F600}\u{1F600}\u{1F600}",
            "99999999999999Z9",
        ] {
            assert_eq!(generalized_time(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn paged_results_values_decode_and_malformed_ones_are_refused() {
        // SEQUENCE { INTEGER 1500, OCTET STRING "ab" }
        let v = [0x30, 0x08, 0x02, 0x02, 0x05, 0xdc, 0x04, 0x02, b'a', b'b'];
        assert_eq!(paged_results_value(&v), Some((1500, b"ab".to_vec())));
        let last = [0x30, 0x05, 0x02, 0x01, 0x00, 0x04, 0x00];
        assert_eq!(paged_results_value(&last), Some((0, Vec::new())));
        for bad in [
            &[][..],
            &[0x30][..],
            &[0x30, 0x05, 0x02, 0x01][..],
            &[0x31, 0x05, 0x02, 0x01, 0x00, 0x04, 0x00][..],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff][..],
            &[0x30, 0x80, 0x00, 0x00][..],
        ] {
            assert_eq!(paged_results_value(bad), None, "{bad:?}");
        }
    }

    fn tag(id: u64, payload: PL) -> StructureTag {
        StructureTag {
            class: ldap3::asn1::TagClass::Universal,
            id,
            payload,
        }
    }

    fn attr(name: &str, values: &[&[u8]]) -> StructureTag {
        tag(
            16,
            PL::C(vec![
                tag(4, PL::P(name.as_bytes().to_vec())),
                tag(
                    17,
                    PL::C(values.iter().map(|v| tag(4, PL::P(v.to_vec()))).collect()),
                ),
            ]),
        )
    }

    fn result_entry(dn: &[u8], attrs: Vec<StructureTag>) -> StructureTag {
        StructureTag {
            class: ldap3::asn1::TagClass::Application,
            id: 4,
            payload: PL::C(vec![tag(4, PL::P(dn.to_vec())), tag(16, PL::C(attrs))]),
        }
    }

    #[test]
    fn entries_decode_binary_values_and_ad_range_options_and_malformed_ones_are_none() {
        let guid: &[u8] = &[0xff, 0xfe, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];
        let e = entry_from_tag(result_entry(
            b"CN=G,DC=x",
            vec![
                attr("objectGUID", &[guid]),
                attr("member;range=0-1499", &[b"cn=a", b"cn=b"]),
                attr("mail;range=0-*", &[b"x@y"]),
            ],
        ))
        .expect("entry");
        assert_eq!(e.dn, "CN=G,DC=x");
        assert_eq!(e.first_bytes("objectguid"), Some(guid));
        assert_eq!(e.all("member").len(), 2);
        assert_eq!(e.ranges, vec![("member".to_owned(), 1500)]);
        assert_eq!(e.first("mail").as_deref(), Some("x@y"));

        assert_eq!(entry_from_tag(result_entry(b"\xff\xfe", vec![])), None);
        assert_eq!(
            entry_from_tag(result_entry(b"cn=x", vec![attr("member;range=0-zz", &[])])),
            None
        );
        assert_eq!(entry_from_tag(tag(4, PL::P(vec![1, 2, 3]))), None);
        assert_eq!(
            entry_from_tag(StructureTag {
                class: ldap3::asn1::TagClass::Application,
                id: 4,
                payload: PL::C(vec![tag(4, PL::P(b"cn=x".to_vec()))]),
            }),
            None
        );
    }

    #[test]
    fn dns_compare_regardless_of_case_and_spacing() {
        assert_eq!(
            normalise_dn(" CN=Staff , OU=Groups,DC=Example, DC=org "),
            "cn=staff,ou=groups,dc=example,dc=org"
        );
        assert_eq!(normalise_dn("cn=A\\, B,dc=x"), "cn=a\\, b,dc=x");
        assert_eq!(rdn_value("cn=Staff,ou=groups"), "Staff");
        assert_eq!(rdn_value("weird"), "weird");
    }
}
