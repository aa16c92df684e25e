//! The `.npz` container: a zip archive (PKWARE APPNOTE 6.3) of stored
//! `.npy` members. The writer produces the bytes the C library writes
//! (fixed 1980-01-01 times, an 0xD935 extra field that aligns each
//! member's `.npy` data to 64 bytes, zip64 only where needed). The reader
//! indexes any archive of stored members, numpy's `np.savez` included
//! (zip64 local headers, data descriptors); compressed members
//! (`np.savez_compressed`) are refused with an error.

use crate::crc32::{crc32, crc32_update};
use crate::Error;
use std::collections::HashMap;
use std::io::Write;

const LOCAL_HEADER_SIZE: u64 = 30;
const CENTRAL_HEADER_SIZE: usize = 46;
const EOCD_SIZE: usize = 22;
const ZIP64_EOCD_SIZE: u64 = 56;
const ZIP64_LOCATOR_SIZE: usize = 20;
const ZIP_VERSION: u64 = 20;
const ZIP64_VERSION: u64 = 45;
const DOS_DATE_1980: u64 = 0x0021;
const PAD_EXTRA_ID: u64 = 0xd935;
const DATA_ALIGN: u64 = 64;
const U32_LIMIT: u64 = 0xffff_ffff;
const U16_LIMIT: u64 = 0xffff;

/// Little-endian fields: `widths[i]` bytes of `values[i]`.
fn pack(out: &mut Vec<u8>, values: &[u64], widths: &[u8]) {
    for (v, w) in values.iter().zip(widths) {
        out.extend_from_slice(&v.to_le_bytes()[..*w as usize]);
    }
}

struct Member {
    name: String,
    crc: u32,
    size: u64,
    offset: u64,
}

/// Streams stored members into a file.
pub(crate) struct NpzWriter<W: Write> {
    out: W,
    offset: u64,
    members: Vec<Member>,
}

impl<W: Write> NpzWriter<W> {
    pub(crate) fn new(out: W) -> Self {
        NpzWriter {
            out,
            offset: 0,
            members: Vec::new(),
        }
    }

    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.out.write_all(bytes)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Adds member `name` (a `.npy` header, then its data); returns the
    /// offset of the data in the archive.
    pub(crate) fn add(&mut self, name: &str, npy_header: &[u8], data: &[u8]) -> Result<u64, Error> {
        if name.is_empty() || name.len() > 255 {
            return Err(Error::Invalid(format!("member name '{}' is empty or too long", name)));
        }
        let size = (npy_header.len() + data.len()) as u64;
        let m = Member {
            name: name.to_string(),
            crc: crc32_update(crc32(npy_header), data),
            size,
            offset: self.offset,
        };
        let zip64 = size >= U32_LIMIT;
        let z64 = if zip64 { 20 } else { 0 };
        let data_at = m.offset + LOCAL_HEADER_SIZE + name.len() as u64 + z64 + 4 + npy_header.len() as u64;
        let pad = (DATA_ALIGN - data_at % DATA_ALIGN) % DATA_ALIGN;
        let size32 = if zip64 { U32_LIMIT } else { size };
        let mut h = Vec::with_capacity(400);
        pack(
            &mut h,
            &[
                0x0403_4b50,
                if zip64 { ZIP64_VERSION } else { ZIP_VERSION },
                0,
                0,
                0,
                DOS_DATE_1980,
                m.crc as u64,
                size32,
                size32,
                name.len() as u64,
                z64 + 4 + pad,
            ],
            &[4, 2, 2, 2, 2, 2, 4, 4, 4, 2, 2],
        );
        h.extend_from_slice(name.as_bytes());
        if zip64 {
            pack(&mut h, &[0x0001, 16, size, size], &[2, 2, 8, 8]);
        }
        pack(&mut h, &[PAD_EXTRA_ID, pad], &[2, 2]);
        h.resize(h.len() + pad as usize, 0);
        self.members.push(m);
        self.put(&h)?;
        self.put(npy_header)?;
        let at = self.offset;
        self.put(data)?;
        Ok(at)
    }

    /// Writes the central directory and the end records; returns the output.
    pub(crate) fn finish(mut self) -> Result<W, Error> {
        let cd_offset = self.offset;
        let mut cd = Vec::new();
        for m in &self.members {
            let big_size = m.size >= U32_LIMIT;
            let big_offset = m.offset >= U32_LIMIT;
            let z64 = if big_size { 16 } else { 0 } + if big_offset { 8 } else { 0 };
            let version = if z64 > 0 { ZIP64_VERSION } else { ZIP_VERSION };
            let size32 = if big_size { U32_LIMIT } else { m.size };
            pack(
                &mut cd,
                &[
                    0x0201_4b50,
                    version,
                    version,
                    0,
                    0,
                    0,
                    DOS_DATE_1980,
                    m.crc as u64,
                    size32,
                    size32,
                    m.name.len() as u64,
                    if z64 > 0 { 4 + z64 } else { 0 },
                    0,
                    0,
                    0,
                    0,
                    if big_offset { U32_LIMIT } else { m.offset },
                ],
                &[4, 2, 2, 2, 2, 2, 2, 4, 4, 4, 2, 2, 2, 2, 2, 4, 4],
            );
            cd.extend_from_slice(m.name.as_bytes());
            if z64 > 0 {
                pack(&mut cd, &[0x0001, z64], &[2, 2]);
                if big_size {
                    pack(&mut cd, &[m.size, m.size], &[8, 8]);
                }
                if big_offset {
                    pack(&mut cd, &[m.offset], &[8]);
                }
            }
        }
        self.put(&cd)?;
        let cd_size = cd.len() as u64;
        let n = self.members.len() as u64;
        let many = n >= U16_LIMIT;
        let far = cd_offset >= U32_LIMIT;
        let big = cd_size >= U32_LIMIT;
        let mut r = Vec::new();
        if many || far || big {
            pack(
                &mut r,
                &[
                    0x0606_4b50,
                    ZIP64_EOCD_SIZE - 12,
                    ZIP64_VERSION,
                    ZIP64_VERSION,
                    0,
                    0,
                    n,
                    n,
                    cd_size,
                    cd_offset,
                ],
                &[4, 8, 2, 2, 4, 4, 8, 8, 8, 8],
            );
            pack(&mut r, &[0x0706_4b50, 0, self.offset, 1], &[4, 4, 8, 4]);
        }
        let n16 = if many { U16_LIMIT } else { n };
        pack(
            &mut r,
            &[
                0x0605_4b50,
                0,
                0,
                n16,
                n16,
                if big { U32_LIMIT } else { cd_size },
                if far { U32_LIMIT } else { cd_offset },
                0,
            ],
            &[4, 2, 2, 2, 2, 4, 4, 2],
        );
        self.put(&r)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Where a member's bytes lie in the archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberSpan {
    pub offset: u64,
    pub size: u64,
    pub crc32: u32,
}

fn get16(b: &[u8], at: usize) -> u64 {
    u16::from_le_bytes([b[at], b[at + 1]]) as u64
}
fn get32(b: &[u8], at: usize) -> u64 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as u64
}
fn get64(b: &[u8], at: usize) -> u64 {
    get32(b, at) | get32(b, at + 4) << 32
}

/// Bytes to read records from: a file (read where needed, never wholly
/// loaded) or memory.
pub struct Source {
    file: Option<std::fs::File>,
    mem: Vec<u8>,
    size: u64,
}

impl Source {
    pub fn from_file(file: std::fs::File) -> std::io::Result<Source> {
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
        match &self.file {
            None => Ok(self.mem[at as usize..(at + n) as usize].to_vec()),
            Some(f) => {
                use std::os::unix::fs::FileExt;
                let mut buf = vec![0u8; n as usize];
                f.read_exact_at(&mut buf, at)?;
                Ok(buf)
            }
        }
    }
}

/// Indexes an archive: member name -> its bytes. Every offset and size is
/// checked against the archive; nothing larger than it is allocated.
pub fn index(src: &Source) -> Result<HashMap<String, MemberSpan>, Error> {
    let bad = |what: &str| Error::Invalid(format!("not a readable .npz: {}", what));
    // the end of central directory: the last signature whose comment reaches the end
    if src.size() < EOCD_SIZE as u64 {
        return Err(bad("too short for a zip archive"));
    }
    let span = std::cmp::min(src.size(), (EOCD_SIZE + 0xffff) as u64);
    let tail = src.read(src.size() - span, span)?;
    let mut eocd_at = None;
    let mut i = tail.len() - EOCD_SIZE;
    loop {
        if get32(&tail, i) == 0x0605_4b50 && i + EOCD_SIZE + get16(&tail, i + 20) as usize == tail.len() {
            eocd_at = Some(i);
            break;
        }
        if i == 0 {
            break;
        }
        i -= 1;
    }
    let at_tail = eocd_at.ok_or_else(|| bad("no end of central directory"))?;
    let at = (src.size() - span) as usize + at_tail;
    let e = &tail[at_tail..at_tail + EOCD_SIZE];
    if get16(e, 4) != 0 || get16(e, 6) != 0 || get16(e, 8) != get16(e, 10) {
        return Err(bad("a multi-disk archive"));
    }
    let (mut n, mut cd_size, mut cd_offset) = (get16(e, 10), get32(e, 12), get32(e, 16));
    let mut cd_limit = at as u64;
    if n == U16_LIMIT || cd_size == U32_LIMIT || cd_offset == U32_LIMIT {
        if at < ZIP64_LOCATOR_SIZE {
            return Err(bad("no zip64 locator"));
        }
        let loc = src.read((at - ZIP64_LOCATOR_SIZE) as u64, ZIP64_LOCATOR_SIZE as u64)?;
        if get32(&loc, 0) != 0x0706_4b50 {
            return Err(bad("no zip64 locator"));
        }
        let rec = src.read(get64(&loc, 8), ZIP64_EOCD_SIZE)?;
        if get32(&rec, 0) != 0x0606_4b50
            || get32(&rec, 16) != 0
            || get32(&rec, 20) != 0
            || get64(&rec, 24) != get64(&rec, 32)
        {
            return Err(bad("malformed zip64 end record"));
        }
        n = get64(&rec, 32);
        cd_size = get64(&rec, 40);
        cd_offset = get64(&rec, 48);
        cd_limit = (at - ZIP64_LOCATOR_SIZE) as u64;
    }
    if cd_offset > cd_limit || cd_size > cd_limit - cd_offset || n > cd_size / CENTRAL_HEADER_SIZE as u64 {
        return Err(bad("the central directory lies outside the archive"));
    }
    let cd = src.read(cd_offset, cd_size)?;
    let mut members = HashMap::new();
    let mut pos = 0usize;
    for _ in 0..n {
        if cd.len() - pos < CENTRAL_HEADER_SIZE || get32(&cd, pos) != 0x0201_4b50 {
            return Err(bad("malformed central directory"));
        }
        let h = &cd[pos..];
        let (name_len, extra_len, comment_len) = (get16(h, 28) as usize, get16(h, 30) as usize, get16(h, 32) as usize);
        if h.len() - CENTRAL_HEADER_SIZE < name_len + extra_len + comment_len || name_len == 0 {
            return Err(bad("malformed central directory"));
        }
        if get16(h, 8) & 0x0001 != 0 {
            return Err(bad("a member is encrypted"));
        }
        if get16(h, 10) != 0 {
            return Err(bad(
                "a member is compressed (np.savez_compressed); only stored members are read",
            ));
        }
        let crc = get32(h, 16) as u32;
        let (mut csize, mut size, mut offset) = (get32(h, 20), get32(h, 24), get32(h, 42));
        let name = std::str::from_utf8(&h[CENTRAL_HEADER_SIZE..CENTRAL_HEADER_SIZE + name_len])
            .map_err(|_| bad("a member name is not UTF-8"))?
            .to_string();
        // the zip64 extra: each saturated field, in order
        let extra = &h[CENTRAL_HEADER_SIZE + name_len..CENTRAL_HEADER_SIZE + name_len + extra_len];
        if size == U32_LIMIT || csize == U32_LIMIT || offset == U32_LIMIT {
            let mut found = false;
            let mut j = 0usize;
            while j + 4 <= extra.len() {
                let (id, len) = (get16(extra, j), get16(extra, j + 2) as usize);
                if len > extra.len() - j - 4 {
                    return Err(bad("malformed extra field"));
                }
                if id == 0x0001 {
                    let f = &extra[j + 4..j + 4 + len];
                    let mut k = 0usize;
                    let mut next = |v: &mut u64| -> Result<(), Error> {
                        if *v == U32_LIMIT {
                            if k + 8 > f.len() {
                                return Err(bad("malformed zip64 field"));
                            }
                            *v = get64(f, k);
                            k += 8;
                        }
                        Ok(())
                    };
                    next(&mut size)?;
                    next(&mut csize)?;
                    next(&mut offset)?;
                    found = true;
                    break;
                }
                j += 4 + len;
            }
            if !found {
                return Err(bad("a saturated size or offset without its zip64 field"));
            }
        }
        if csize != size {
            return Err(bad("a stored member's sizes differ"));
        }
        // the local header: its name must be the central directory's
        let local = src.read(offset, LOCAL_HEADER_SIZE)?;
        if get32(&local, 0) != 0x0403_4b50 || get16(&local, 26) as usize != name_len {
            return Err(bad("a member's local header is missing or differs"));
        }
        let local_name = src.read(offset + LOCAL_HEADER_SIZE, name_len as u64)?;
        if local_name != name.as_bytes() {
            return Err(bad("a member's local header names another member"));
        }
        let start = offset + LOCAL_HEADER_SIZE + name_len as u64 + get16(&local, 28);
        if start > cd_offset || size > cd_offset - start {
            return Err(bad("a member's data lies outside the archive"));
        }
        if members
            .insert(
                name.clone(),
                MemberSpan {
                    offset: start,
                    size,
                    crc32: crc,
                },
            )
            .is_some()
        {
            return Err(bad(&format!("member '{:.200}' is listed twice", name)));
        }
        pos += CENTRAL_HEADER_SIZE + name_len + extra_len + comment_len;
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npy;

    fn archive() -> Vec<u8> {
        let mut z = NpzWriter::new(Vec::new());
        let h = npy::header(npy::Dtype::F32, &[2]).unwrap();
        let data: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let at = z.add("a.npy", &h, &data).unwrap();
        assert_eq!(at % 64, 0);
        let at2 = z.add("bb.npy", &h, &data).unwrap();
        assert_eq!(at2 % 64, 0);
        z.finish().unwrap()
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
