//! Deterministic bytes for fixtures: tar layers, a tiny runnable ELF, text,
//! JSON formatting, and a seeded pseudo-random stream.

use std::io::{self, Read, Write};

use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};
use serde::Serialize as _;
use serde_json::Value;

/// The modification time of every tar entry: 2023-11-14T22:13:20Z.
pub(crate) const MTIME: u64 = 1_700_000_000;
/// [`MTIME`] as the RFC 3339 timestamp written into configs and annotations.
pub(crate) const CREATED: &str = "2023-11-14T22:13:20Z";

/// One entry of a generated tar layer.
pub(crate) enum Entry {
    /// A directory (mode 0755).
    Dir(&'static str),
    /// A regular file with the given mode.
    File(String, Vec<u8>, u32),
}

impl Entry {
    /// A regular file, mode 0644.
    pub(crate) fn file(path: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Entry {
        Entry::File(path.into(), bytes.into(), 0o644)
    }

    /// An executable file, mode 0755.
    pub(crate) fn exe(path: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Entry {
        Entry::File(path.into(), bytes.into(), 0o755)
    }
}

/// A built layer: the gzip bytes and the digest of the uncompressed tar.
pub(crate) struct Layer {
    /// The `tar+gzip` bytes, as stored in the registry.
    pub gz: Vec<u8>,
    /// `sha256:` of the uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: String,
}

/// An uncompressed tar of `entries`, with fixed owner, modes and mtime.
pub(crate) fn tar(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_ustar();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(MTIME);
        match entry {
            Entry::Dir(path) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder
                    .append_data(&mut header, path, io::empty())
                    .expect("appending a directory to an in-memory tar");
            }
            Entry::File(path, bytes, mode) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(bytes.len() as u64);
                builder
                    .append_data(&mut header, path, bytes.as_slice())
                    .expect("appending a file to an in-memory tar");
            }
        }
    }
    builder.into_inner().expect("finishing an in-memory tar")
}

/// Gzip `bytes` with a fixed header (mtime 0, no file name).
pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder: GzEncoder<Vec<u8>> = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

/// A gzip-compressed tar layer of `entries`.
pub(crate) fn layer(entries: &[Entry]) -> Layer {
    let tar = tar(entries);
    Layer {
        diff_id: sha256(&tar),
        gz: gzip(&tar),
    }
}

/// `sha256:<hex>` of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> String {
    ferry_oci::Digest::sha256_of(bytes).to_string()
}

/// Compact JSON, keys in insertion order.
pub(crate) fn compact(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("serializing a JSON value")
}

/// Indented JSON with `indent` per level (Docker writes three spaces,
/// buildkit two), keys in insertion order.
pub(crate) fn pretty(value: &Value, indent: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(indent);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    value
        .serialize(&mut serializer)
        .expect("serializing a JSON value");
    out
}

/// Lines of generated text: `lines` lines derived from `seed`.
pub(crate) fn text(seed: &str, lines: usize) -> String {
    let mut rng = XorShift::from_label(seed);
    let mut out = String::new();
    for i in 0..lines {
        out.push_str(&format!("{seed} line {i}: {:016x}\n", rng.next_u64()));
    }
    out
}

/// A minimal static x86-64 Linux executable that writes `message` to stdout
/// and exits 0, so amd64 fixtures can be run by an engine.
pub(crate) fn hello_elf(message: &str) -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    const HEADERS: u64 = 64 + 56;
    #[rustfmt::skip]
    let code: [u8; 33] = [
        0xb8, 0x01, 0x00, 0x00, 0x00,             // mov eax, 1 (write)
        0xbf, 0x01, 0x00, 0x00, 0x00,             // mov edi, 1 (stdout)
        0x48, 0x8d, 0x35, 0x10, 0x00, 0x00, 0x00, // lea rsi, [rip + 16] (message)
        0xba, 0x00, 0x00, 0x00, 0x00,             // mov edx, len (patched below)
        0x0f, 0x05,                               // syscall
        0xb8, 0x3c, 0x00, 0x00, 0x00,             // mov eax, 60 (exit)
        0x31, 0xff,                               // xor edi, edi
        0x0f, 0x05,                               // syscall
    ];
    let mut code = code.to_vec();
    let len = u32::try_from(message.len()).expect("short message");
    code[18..22].copy_from_slice(&len.to_le_bytes());
    let total = HEADERS + code.len() as u64 + message.len() as u64;

    let mut elf = Vec::with_capacity(total as usize);
    // ELF header.
    elf.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // e_type: EXEC
    elf.extend_from_slice(&0x3eu16.to_le_bytes()); // e_machine: x86-64
    elf.extend_from_slice(&1u32.to_le_bytes()); // e_version
    elf.extend_from_slice(&(BASE + HEADERS).to_le_bytes()); // e_entry
    elf.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    elf.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    elf.extend_from_slice(&64u16.to_le_bytes()); // e_ehsize
    elf.extend_from_slice(&56u16.to_le_bytes()); // e_phentsize
    elf.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    elf.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
    elf.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    elf.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
                                                // One PT_LOAD program header mapping the whole file read+execute.
    elf.extend_from_slice(&1u32.to_le_bytes()); // p_type: LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // p_flags: R+X
    elf.extend_from_slice(&0u64.to_le_bytes()); // p_offset
    elf.extend_from_slice(&BASE.to_le_bytes()); // p_vaddr
    elf.extend_from_slice(&BASE.to_le_bytes()); // p_paddr
    elf.extend_from_slice(&total.to_le_bytes()); // p_filesz
    elf.extend_from_slice(&total.to_le_bytes()); // p_memsz
    elf.extend_from_slice(&0x1000u64.to_le_bytes()); // p_align
    elf.extend_from_slice(&code);
    elf.extend_from_slice(message.as_bytes());
    debug_assert_eq!(elf.len() as u64, total);
    elf
}

/// A seeded xorshift64* generator: deterministic, fast, not cryptographic.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from a non-zero seed (zero is replaced by a constant).
    pub fn new(seed: u64) -> XorShift {
        XorShift(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// A generator seeded from a label (FNV-1a of its bytes).
    pub fn from_label(label: &str) -> XorShift {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in label.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        XorShift::new(h)
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Fill `buf` with pseudo-random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// An uncompressed tar holding one file of `size` pseudo-random bytes,
/// produced on the fly: memory use does not depend on `size`.
///
/// The stream is a valid tar (`application/vnd.oci.image.layer.v1.tar`), so
/// its digest is also its diff ID. The same `size` and `seed` always give the
/// same bytes.
pub struct BigLayerReader {
    header: [u8; 512],
    header_pos: usize,
    rng: XorShift,
    /// Pseudo-random bytes not yet produced.
    data_left: u64,
    /// Bytes of the current rng word not yet handed out.
    word: [u8; 8],
    word_pos: usize,
    /// Zero bytes left: padding to 512 plus the two end-of-archive blocks.
    zeros_left: u64,
}

impl BigLayerReader {
    /// The path of the single file inside the tar.
    pub const FILE_NAME: &'static str = "big/random.bin";

    /// A reader of a tar with one file of `size` bytes generated from `seed`.
    pub fn new(size: u64, seed: u64) -> BigLayerReader {
        let mut header = tar::Header::new_ustar();
        header
            .set_path(Self::FILE_NAME)
            .expect("short path fits a ustar header");
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(MTIME);
        header.set_size(size);
        header.set_cksum();
        let padding = (512 - size % 512) % 512;
        BigLayerReader {
            header: *header.as_bytes(),
            header_pos: 0,
            rng: XorShift::new(seed),
            data_left: size,
            word: [0; 8],
            word_pos: 8,
            zeros_left: padding + 1024,
        }
    }

    /// The total length of the tar stream for a file of `size` bytes.
    pub fn tar_len(size: u64) -> u64 {
        512 + size + (512 - size % 512) % 512 + 1024
    }
}

impl Read for BigLayerReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.header_pos < self.header.len() {
            let n = buf.len().min(self.header.len() - self.header_pos);
            buf[..n].copy_from_slice(&self.header[self.header_pos..self.header_pos + n]);
            self.header_pos += n;
            return Ok(n);
        }
        if self.data_left > 0 {
            let n = usize::try_from(self.data_left)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let mut i = 0;
            while i < n {
                if self.word_pos == 8 {
                    self.word = self.rng.next_u64().to_le_bytes();
                    self.word_pos = 0;
                }
                let take = (8 - self.word_pos).min(n - i);
                buf[i..i + take].copy_from_slice(&self.word[self.word_pos..self.word_pos + take]);
                self.word_pos += take;
                i += take;
            }
            self.data_left -= n as u64;
            return Ok(n);
        }
        let n = usize::try_from(self.zeros_left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        buf[..n].fill(0);
        self.zeros_left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_deterministic_and_diff_ids_match() {
        let entries = || vec![Entry::Dir("etc/"), Entry::file("etc/a", text("a", 3))];
        let a = layer(&entries());
        let b = layer(&entries());
        assert_eq!(a.gz, b.gz);
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(a.gz.as_slice())
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(sha256(&tar), a.diff_id);
    }

    #[test]
    fn big_layer_is_a_valid_tar_of_the_promised_length() {
        for size in [0u64, 1, 511, 512, 513, 70_000] {
            let mut bytes = Vec::new();
            BigLayerReader::new(size, 7)
                .read_to_end(&mut bytes)
                .unwrap();
            assert_eq!(bytes.len() as u64, BigLayerReader::tar_len(size));
            let mut archive = tar::Archive::new(bytes.as_slice());
            let mut entries = archive.entries().unwrap();
            let mut entry = entries.next().unwrap().unwrap();
            assert_eq!(
                entry.path().unwrap().to_str(),
                Some(BigLayerReader::FILE_NAME)
            );
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            assert_eq!(data.len() as u64, size);
            drop(entry);
            assert!(entries.next().is_none());
        }
    }

    #[test]
    fn big_layer_does_not_depend_on_read_sizes() {
        let mut whole = Vec::new();
        BigLayerReader::new(10_000, 3)
            .read_to_end(&mut whole)
            .unwrap();
        let mut reader = BigLayerReader::new(10_000, 3);
        let mut pieces = Vec::new();
        let mut buf = [0u8; 13];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            pieces.extend_from_slice(&buf[..n]);
        }
        assert_eq!(whole, pieces);
    }

    #[test]
    fn hello_elf_has_the_promised_shape() {
        let elf = hello_elf("hi\n");
        assert_eq!(&elf[..4], b"\x7fELF");
        assert_eq!(elf.len(), 64 + 56 + 33 + 3);
        assert!(elf.ends_with(b"hi\n"));
    }
}
