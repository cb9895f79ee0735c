//! The few tar header facts both the writer and the reader need.

use tar::{EntryType, Header};

/// The tar block size: headers, data padding and the end-of-archive
/// blocks all come in blocks of this many bytes.
pub const BLOCK: u64 = 512;

/// The fixed modification time of every entry ferry writes: the tar crate's
/// `DETERMINISTIC_TIMESTAMP` (2006-07-24), which no tool calls implausible.
pub(crate) const MTIME: u64 = tar::DETERMINISTIC_TIMESTAMP;

/// `len` rounded up to a whole number of blocks.
pub(crate) fn padded(len: u64) -> u64 {
    len.div_ceil(BLOCK) * BLOCK
}

/// How `name` is split into the ustar `prefix` and `name` fields, or `None`
/// when it does not fit and needs a pax `path` record.
fn ustar_split(name: &str) -> Option<(&str, &str)> {
    if name.len() <= 100 {
        return Some(("", name));
    }
    name.match_indices('/')
        .map(|(i, _)| (&name[..i], &name[i + 1..]))
        .find(|(prefix, rest)| prefix.len() <= 155 && rest.len() <= 100 && !rest.is_empty())
}

/// The number of bytes the header(s) of an entry named `name` take.
pub(crate) fn headers_len(name: &str) -> u64 {
    match ustar_split(name) {
        Some(_) => BLOCK,
        None => BLOCK + padded(pax_path_record(name).len() as u64) + BLOCK,
    }
}

/// Append the deterministic header(s) of one entry to `out`: a pax header
/// first when the name does not fit ustar, then the ustar header. Sizes of
/// 8 GiB and more use the base-256 encoding every common reader accepts.
pub(crate) fn push_headers(out: &mut Vec<u8>, name: &str, size: u64, dir: bool) {
    let split = ustar_split(name);
    if split.is_none() {
        let record = pax_path_record(name);
        let mut pax = ustar_header(
            ("PaxHeaders", &name[name.len().saturating_sub(64)..]),
            record.len() as u64,
            EntryType::XHeader,
        );
        pax.set_mode(0o644);
        pax.set_cksum();
        out.extend_from_slice(pax.as_bytes());
        out.extend_from_slice(&record);
        out.resize(
            out.len() + (padded(record.len() as u64) - record.len() as u64) as usize,
            0,
        );
    }
    // Without a fitting split the ustar fields hold a truncated fallback name;
    // readers use the pax path.
    let (prefix, rest) = split.unwrap_or_else(|| {
        let cut = name.rfind('/').unwrap_or(0);
        (
            &name[..cut.min(155)],
            &name[cut + 1..(cut + 101).min(name.len())],
        )
    });
    let kind = if dir {
        EntryType::Directory
    } else {
        EntryType::Regular
    };
    let mut header = ustar_header((prefix, rest), size, kind);
    header.set_mode(if dir { 0o755 } else { 0o644 });
    header.set_cksum();
    out.extend_from_slice(header.as_bytes());
}

fn ustar_header((prefix, name): (&str, &str), size: u64, kind: EntryType) -> Header {
    let mut header = Header::new_ustar();
    if let Some(ustar) = header.as_ustar_mut() {
        ustar.name[..name.len()].copy_from_slice(name.as_bytes());
        ustar.prefix[..prefix.len()].copy_from_slice(prefix.as_bytes());
    }
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(MTIME);
    header
}

/// A pax `path` record: `"<len> path=<name>\n"`, where `<len>` counts itself.
fn pax_path_record(name: &str) -> Vec<u8> {
    let body = format!(" path={name}\n");
    let mut len = body.len() + 1;
    while len.to_string().len() + body.len() != len {
        len += 1;
    }
    format!("{len}{body}").into_bytes()
}

/// Whether a header block verifies: its checksum field matches the sum of
/// its bytes with the field itself counted as spaces (unsigned, as POSIX
/// says, or signed, as some old writers did).
pub(crate) fn checksum_ok(block: &[u8; 512]) -> bool {
    let Ok(expected) = Header::from_byte_slice(block).cksum() else {
        return false;
    };
    let (mut unsigned, mut signed) = (0u32, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u32::from(b);
        signed += i64::from(b as i8);
    }
    unsigned == expected || signed == i64::from(expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        for n in [1, 80, 95, 96, 200, 1000] {
            let name = "a".repeat(n);
            let rec = pax_path_record(&name);
            let text = String::from_utf8(rec.clone()).unwrap();
            let (len, _) = text.split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), rec.len(), "{text}");
        }
    }

    #[test]
    fn long_names_split_or_use_pax() {
        assert_eq!(headers_len("blobs/sha256/".to_string().as_str()), 512);
        let sha512 = format!("blobs/sha512/{}", "a".repeat(128));
        assert_eq!(headers_len(&sha512), 1536);
        let mut out = Vec::new();
        push_headers(&mut out, &sha512, 3, false);
        assert_eq!(out.len(), 1536);
        let block: &[u8; 512] = out[1024..].try_into().unwrap();
        assert!(checksum_ok(block));
    }
}
