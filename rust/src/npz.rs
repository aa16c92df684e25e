//! The `.npz` container, a zip archive (PKWARE APPNOTE 6.3) of stored
//! `.npy` members, through the `zip` crate (0.6, Debian's
//! librust-zip-dev).
//!
//! Writing: every member is stored, with fixed 1980-01-01 times and an
//! extra field (id 0xD935, zeros) in its local header that aligns its
//! `.npy` data to 64 bytes (docs/FORMAT.md, "Containers"). zip 0.6 writes
//! the central directory with "version made by" 3.46 (Unix) and Unix mode
//! bits where the C library writes 2.0 (4.5 with zip64) and zero, and
//! version 2.0 in the local header of a zip64 member; `finish` rewrites
//! those fields, so that the archive stays byte for byte the C writer's.
//! zip 0.6 also leaves out the zip64 end records of an archive of exactly
//! 65,535 members (which the C reader requires, as 0xFFFF in the end record
//! means "see zip64"): `finish` adds them where the C writer does.
//!
//! Reading: `index` lists any archive of stored members, numpy's
//! `np.savez` included (zip64 local headers, data descriptors);
//! compressed members (`np.savez_compressed`) and encrypted ones are
//! refused with an error. A damaged archive is an error, never a panic.

use crate::Error;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use zip::write::FileOptions;
use zip::{CompressionMethod, DateTime, ZipArchive, ZipWriter};

const LOCAL_HEADER_SIZE: u64 = 30;
const CENTRAL_HEADER_SIZE: usize = 46;
const ZIP64_VERSION: u16 = 45;
const PAD_EXTRA_ID: u16 = 0xd935;
const DATA_ALIGN: u64 = 64;
const U32_LIMIT: u64 = 0xffff_ffff;

fn zip_err(e: zip::result::ZipError) -> Error {
    match e {
        zip::result::ZipError::Io(io) => Error::Io("the .npz archive".into(), io),
        e => Error::Invalid(format!("the .npz archive: {}", e)),
    }
}

fn get16(b: &[u8], at: usize) -> u64 {
    u16::from_le_bytes([b[at], b[at + 1]]) as u64
}
fn get32(b: &[u8], at: usize) -> u64 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as u64
}

/// Streams stored members into a file.
pub(crate) struct NpzWriter {
    zip: ZipWriter<BufWriter<File>>,
    /// where the next member's local header starts (the end of the last one's data)
    end: u64,
    /// local header offsets of zip64 members
    large: Vec<u64>,
}

impl NpzWriter {
    /// Writes into `out`, which must be open for reading too (`finish`
    /// reads the central directory back).
    pub(crate) fn new(out: File) -> Self {
        NpzWriter {
            zip: ZipWriter::new(BufWriter::with_capacity(1 << 20, out)),
            end: 0,
            large: Vec::new(),
        }
    }

    /// Adds member `name` (a `.npy` header, then its data); returns the
    /// offset of the data in the archive.
    pub(crate) fn add(&mut self, name: &str, npy_header: &[u8], data: &[u8]) -> Result<u64, Error> {
        if name.is_empty() || name.len() > 255 {
            return Err(Error::Invalid(format!("member name '{}' is empty or too long", name)));
        }
        let size = (npy_header.len() + data.len()) as u64;
        // zip64 where the C writer uses it: a member of 4 GiB - 1 or more
        let large = size >= U32_LIMIT;
        let options = FileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .last_modified_time(DateTime::default())
            .large_file(large);
        let header_start = self.end;
        // the extra field ends the local header: pad it so that the data
        // after the .npy header starts at a multiple of 64
        let at = self.zip.start_file_with_extra_data(name, options).map_err(zip_err)?;
        let data_at = at + 4 + npy_header.len() as u64;
        let pad = (DATA_ALIGN - data_at % DATA_ALIGN) % DATA_ALIGN;
        let mut extra = Vec::with_capacity(4 + pad as usize);
        extra.extend_from_slice(&PAD_EXTRA_ID.to_le_bytes());
        extra.extend_from_slice(&(pad as u16).to_le_bytes());
        extra.resize(4 + pad as usize, 0);
        self.zip.write_all(&extra)?;
        // the central directory gets no extra field (as the C writer's)
        self.zip.end_local_start_central_extra_data().map_err(zip_err)?;
        let start = self.zip.end_extra_data().map_err(zip_err)?;
        self.zip.write_all(npy_header)?;
        self.zip.write_all(data)?;
        let data_offset = start + npy_header.len() as u64;
        debug_assert_eq!(data_offset % DATA_ALIGN, 0);
        if large {
            self.large.push(header_start);
        }
        self.end = data_offset + data.len() as u64;
        Ok(data_offset)
    }

    /// Writes the central directory and the end records; returns the
    /// file, all written (not synced).
    pub(crate) fn finish(mut self) -> Result<File, Error> {
        let cd_offset = self.end;
        let out = self.zip.finish().map_err(zip_err)?;
        let f = out.into_inner().map_err(|e| e.into_error())?;
        normalize(&f, cd_offset, &self.large)?;
        Ok(f)
    }
}

/// The C writer's values in the fields where zip 0.6 differs: "version made
/// by" as the version needed (2.0, 4.5 with zip64), no external attributes,
/// 4.5 in the local headers of zip64 members and the zip64 end record.
fn normalize(f: &File, cd_offset: u64, large: &[u64]) -> Result<(), Error> {
    let bad = || Error::Invalid("the zip crate wrote an unexpected central directory".into());
    for &h in large {
        f.write_all_at(&ZIP64_VERSION.to_le_bytes(), h + 4)?;
    }
    let size = f.metadata()?.len();
    let mut tail = vec![0u8; size.checked_sub(cd_offset).ok_or_else(bad)? as usize];
    f.read_exact_at(&mut tail, cd_offset)?;
    let mut pos = 0usize;
    let mut count = 0u64;
    while pos + 4 <= tail.len() && get32(&tail, pos) == 0x0201_4b50 {
        count += 1;
        if pos + CENTRAL_HEADER_SIZE > tail.len() {
            return Err(bad());
        }
        let h = &mut tail[pos..];
        let needed = get16(h, 6) as u16;
        h[4..6].copy_from_slice(&needed.to_le_bytes());
        h[38..42].copy_from_slice(&[0, 0, 0, 0]);
        pos += CENTRAL_HEADER_SIZE + (get16(h, 28) + get16(h, 30) + get16(h, 32)) as usize;
    }
    if pos > tail.len() {
        return Err(bad());
    }
    if pos + 16 <= tail.len() && get32(&tail, pos) == 0x0606_4b50 {
        tail[pos + 12..pos + 14].copy_from_slice(&ZIP64_VERSION.to_le_bytes());
        tail[pos + 14..pos + 16].copy_from_slice(&ZIP64_VERSION.to_le_bytes());
    } else if count == 0xffff {
        // the zip64 end record and its locator, before the end record
        let (cd_size, record_at) = (pos as u64, cd_offset + pos as u64);
        let mut r = Vec::with_capacity(76);
        r.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
        r.extend_from_slice(&44u64.to_le_bytes());
        r.extend_from_slice(&ZIP64_VERSION.to_le_bytes());
        r.extend_from_slice(&ZIP64_VERSION.to_le_bytes());
        r.extend_from_slice(&[0; 8]);
        for v in [count, count, cd_size, cd_offset] {
            r.extend_from_slice(&v.to_le_bytes());
        }
        r.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
        r.extend_from_slice(&0u32.to_le_bytes());
        r.extend_from_slice(&record_at.to_le_bytes());
        r.extend_from_slice(&1u32.to_le_bytes());
        tail.splice(pos..pos, r);
    }
    f.write_all_at(&tail, cd_offset)?;
    Ok(())
}

/// Where a member's bytes lie in the archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberSpan {
    pub offset: u64,
    pub size: u64,
    pub crc32: u32,
}

/// Bytes to read records from: a file (read where needed, never wholly
/// loaded) or memory.
pub struct Source {
    file: Option<File>,
    mem: Vec<u8>,
    size: u64,
}

impl Source {
    pub fn from_file(file: File) -> std::io::Result<Source> {
        let size = file.metadata()?.len();
        Ok(Source {
            file: Some(file),
            mem: Vec::new(),
            size,
        })
    }

    pub fn from_bytes(mem: Vec<u8>) -> Source {
        let size = mem.len() as u64;
        Source { file: None, mem, size }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// `n` bytes at `at`, or an error if they are not all inside.
    pub fn read(&self, at: u64, n: u64) -> Result<Vec<u8>, Error> {
        if at > self.size || n > self.size - at {
            return Err(Error::Invalid("a record or tensor lies outside the file".into()));
        }
        let mut buf = vec![0u8; n as usize];
        self.read_into(at, &mut buf)?;
        Ok(buf)
    }

    fn read_into(&self, at: u64, buf: &mut [u8]) -> std::io::Result<()> {
        match &self.file {
            None => {
                buf.copy_from_slice(&self.mem[at as usize..at as usize + buf.len()]);
                Ok(())
            }
            Some(f) => f.read_exact_at(buf, at),
        }
    }
}

/// `Read + Seek` over a `Source`, for the zip crate (which reads records
/// field by field: `index` puts a small buffer in front).
struct SourceReader<'a> {
    src: &'a Source,
    pos: u64,
}

impl Read for SourceReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = std::cmp::min(buf.len() as u64, self.src.size.saturating_sub(self.pos)) as usize;
        self.src.read_into(self.pos, &mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SourceReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let (base, delta) = match to {
            SeekFrom::Start(p) => (p, 0),
            SeekFrom::End(d) => (self.src.size, d),
            SeekFrom::Current(d) => (self.pos, d),
        };
        let pos = if delta >= 0 {
            base.checked_add(delta as u64)
        } else {
            base.checked_sub(delta.unsigned_abs())
        };
        self.pos = pos.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek out of range"))?;
        Ok(self.pos)
    }
}

/// Indexes an archive: member name -> its bytes. Every offset and size is
/// checked against the archive.
pub fn index(src: &Source) -> Result<HashMap<String, MemberSpan>, Error> {
    // the zip crate checks most, not all of its arithmetic on the file's
    // values: whatever it misses is an error here too, not a panic
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| index_members(src)))
        .unwrap_or_else(|_| Err(Error::Invalid("not a readable .npz: malformed records".into())))
}

fn index_members(src: &Source) -> Result<HashMap<String, MemberSpan>, Error> {
    let bad = |what: &str| Error::Invalid(format!("not a readable .npz: {}", what));
    let reader = std::io::BufReader::with_capacity(512, SourceReader { src, pos: 0 });
    let mut archive = ZipArchive::new(reader).map_err(|e| bad(&e.to_string()))?;
    let mut members = HashMap::new();
    for i in 0..archive.len() {
        let m = archive.by_index_raw(i).map_err(|e| bad(&e.to_string()))?;
        let name = std::str::from_utf8(m.name_raw())
            .map_err(|_| bad("a member name is not UTF-8"))?
            .to_string();
        if name.is_empty() {
            return Err(bad("a member has no name"));
        }
        if m.compression() != CompressionMethod::Stored {
            return Err(bad(
                "a member is compressed (np.savez_compressed); only stored members are read",
            ));
        }
        if m.compressed_size() != m.size() {
            return Err(bad("a stored member's sizes differ"));
        }
        // the local header: not encrypted, and its name is the central directory's
        let (header, start, size) = (m.header_start(), m.data_start(), m.size());
        let local = src.read(header, LOCAL_HEADER_SIZE + name.len() as u64)?;
        if get16(&local, 6) & 0x0001 != 0 {
            return Err(bad("a member is encrypted"));
        }
        if get16(&local, 26) as usize != name.len() || &local[LOCAL_HEADER_SIZE as usize..] != name.as_bytes() {
            return Err(bad("a member's local header names another member"));
        }
        if start > src.size() || size > src.size() - start {
            return Err(bad("a member's data lies outside the archive"));
        }
        let span = MemberSpan {
            offset: start,
            size,
            crc32: m.crc32(),
        };
        if members.insert(name.clone(), span).is_some() {
            return Err(bad(&format!("member '{:.200}' is listed twice", name)));
        }
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{crc32, npy};

    fn archive() -> Vec<u8> {
        archive_of(2)
    }

    fn archive_of(n: usize) -> Vec<u8> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "llorch-npz-test-{}-{}.npz",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let mut z = NpzWriter::new(f);
        let h = npy::header(npy::Dtype::F32, &[2]).unwrap();
        let data: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let at = z.add("a.npy", &h, &data).unwrap();
        assert_eq!(at % 64, 0);
        let at2 = z.add("bb.npy", &h, &data).unwrap();
        assert_eq!(at2 % 64, 0);
        for i in 2..n {
            z.add(&format!("m{}.npy", i), &h, &data).unwrap();
        }
        drop(z.finish().unwrap());
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        bytes
    }

    #[test]
    fn round_trip() {
        let file = archive();
        let idx = index(&Source::from_bytes(file.clone())).unwrap();
        assert_eq!(idx.len(), 2);
        let m = idx["bb.npy"];
        let bytes = &file[m.offset as usize..(m.offset + m.size) as usize];
        assert_eq!(crc32(bytes), m.crc32);
        let h = npy::parse_header(bytes).unwrap();
        assert_eq!(h.shape, vec![2]);
        assert_eq!(&bytes[h.data_offset..h.data_offset + 4], &1.5f32.to_le_bytes());
        // the C writer's fields: version made by 2.0, no external attributes,
        // no extra field in the central directory, 1980-01-01
        let cd = file.windows(4).position(|w| w == [0x50, 0x4b, 0x01, 0x02]).unwrap();
        assert_eq!(&file[cd + 4..cd + 6], &[20, 0]);
        assert_eq!(&file[cd + 12..cd + 16], &[0, 0, 0x21, 0]);
        assert_eq!(&file[cd + 30..cd + 32], &[0, 0]);
        assert_eq!(&file[cd + 38..cd + 42], &[0, 0, 0, 0]);
        assert_eq!(&file[30 + 5..30 + 7], &0xd935u16.to_le_bytes());
    }

    #[test]
    fn zip64_end_records_for_65535_members() {
        for n in [65_534usize, 65_535] {
            let file = archive_of(n);
            let eocd = file.len() - 22;
            assert_eq!(get32(&file, eocd), 0x0605_4b50);
            assert_eq!(get16(&file, eocd + 10), n as u64);
            let locator = eocd - 20;
            assert_eq!(get32(&file, locator) == 0x0706_4b50, n == 65_535, "{} members", n);
            if n == 65_535 {
                let record = (get32(&file, locator + 8) | get32(&file, locator + 12) << 32) as usize;
                assert_eq!(record, locator - 56);
                assert_eq!(get32(&file, record), 0x0606_4b50);
                assert_eq!(get32(&file, record + 32), n as u64);
            }
            assert_eq!(index(&Source::from_bytes(file)).unwrap().len(), n);
        }
    }

    #[test]
    fn damaged_archives_are_errors() {
        let file = archive();
        for n in 0..file.len() {
            assert!(index(&Source::from_bytes(file[..n].to_vec())).is_err(), "prefix {}", n);
        }
        // every single-byte change either still indexes or is an error: never a panic
        for i in 0..file.len() {
            for v in [0u8, 0xff, 0x7f] {
                let mut f = file.clone();
                f[i] = v;
                let _ = index(&Source::from_bytes(f));
            }
        }
    }
}
