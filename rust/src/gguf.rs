//! The model fingerprint of a GGUF file (docs/FORMAT.md, "The model
//! fingerprint"): `sha256-sampled-v1:` and the SHA-256 of the tensor-info
//! table and of fixed-size blocks of each tensor's data, so that a 7 GB
//! model costs a few MB of reads. The same value as the C library's
//! `llorch_ckpt_gguf_fingerprint` and Python's `gguf_fingerprint`.

use crate::Error;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// The scheme this crate computes.
pub const FINGERPRINT_SCHEME: &str = "sha256-sampled-v1";
const BLOCK: u64 = 4096;
const SAMPLES: u64 = 8;

/// Whether `s` has a fingerprint's form: SCHEME:HEX (SCHEME of
/// `[a-z0-9.-]`, lowercase hex digits), at most 255 bytes.
pub fn fingerprint_valid(s: &str) -> bool {
    let (scheme, value) = match s.split_once(':') {
        Some(parts) => parts,
        None => return false,
    };
    s.len() <= 255
        && !scheme.is_empty()
        && !value.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && value.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

struct Cursor {
    r: BufReader<File>,
    at: u64,
    size: u64,
    path: String,
}

impl Cursor {
    fn truncated(&self, what: &str) -> Error {
        Error::Invalid(format!(
            "{}: not a whole GGUF file ({} at byte {} runs past its end, {} bytes); give a complete .gguf model",
            self.path, what, self.at, self.size
        ))
    }
    fn bad(&self, what: &str) -> Error {
        Error::Invalid(format!(
            "{}: not a GGUF file ggml can read ({} at byte {}); give a valid .gguf model",
            self.path, what, self.at
        ))
    }
    fn io(&self, e: std::io::Error) -> Error {
        Error::Io(self.path.clone(), e)
    }
    fn read(&mut self, out: &mut [u8], what: &str) -> Result<(), Error> {
        if out.len() as u64 > self.size - self.at {
            return Err(self.truncated(what));
        }
        self.r.read_exact(out).map_err(|e| self.io(e))?;
        self.at += out.len() as u64;
        Ok(())
    }
    fn skip(&mut self, n: u64, what: &str) -> Result<(), Error> {
        if n > self.size - self.at {
            return Err(self.truncated(what));
        }
        // seek_relative keeps the buffer where it can
        self.r.seek_relative(n as i64).map_err(|e| self.io(e))?;
        self.at += n;
        Ok(())
    }
    fn u32(&mut self, what: &str) -> Result<u32, Error> {
        let mut b = [0u8; 4];
        self.read(&mut b, what)?;
        Ok(u32::from_le_bytes(b))
    }
    fn u64(&mut self, what: &str) -> Result<u64, Error> {
        let mut b = [0u8; 8];
        self.read(&mut b, what)?;
        Ok(u64::from_le_bytes(b))
    }
}

/// Bytes of one value of a fixed-size GGUF type; None for string, array
/// and unknown types.
fn fixed_size(t: u32) -> Option<u64> {
    match t {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4 | 5 | 6 => Some(4),
        10 | 11 | 12 => Some(8),
        _ => None,
    }
}

fn skip_value(c: &mut Cursor, t: u32) -> Result<(), Error> {
    match t {
        8 => {
            let n = c.u64("a string length")?;
            c.skip(n, "a string")
        }
        9 => {
            let et = c.u32("an array type")?;
            let n = c.u64("an array length")?;
            if et == 8 {
                for _ in 0..n {
                    let len = c.u64("a string length")?;
                    c.skip(len, "a string")?;
                }
                Ok(())
            } else if let Some(each) = fixed_size(et) {
                if n > (c.size - c.at) / each {
                    return Err(c.truncated("an array"));
                }
                c.skip(n * each, "an array")
            } else {
                Err(c.bad("an array of an unknown type or of arrays"))
            }
        }
        _ => match fixed_size(t) {
            Some(n) => c.skip(n, "a metadata value"),
            None => Err(c.bad("a metadata value of an unknown type")),
        },
    }
}

/// The fingerprint of the GGUF file at `path`, e.g.
/// `"sha256-sampled-v1:9f86d0..."`: what a dump's `model.fingerprint`
/// holds (`Run::model_fingerprint`).
pub fn gguf_fingerprint<P: AsRef<Path>>(path: P) -> Result<String, Error> {
    let name = path.as_ref().display().to_string();
    let f = File::open(path.as_ref()).map_err(|e| Error::Io(name.clone(), e))?;
    let size = f.metadata().map_err(|e| Error::Io(name.clone(), e))?.len();
    let mut c = Cursor {
        r: BufReader::with_capacity(1 << 16, f),
        at: 0,
        size,
        path: name,
    };
    let mut magic = [0u8; 4];
    if size < 4 || c.read(&mut magic, "the magic").is_err() || &magic != b"GGUF" {
        return Err(Error::Invalid(format!(
            "{}: not a GGUF file (no GGUF magic); give a .gguf model",
            c.path
        )));
    }
    let version = c.u32("the version")?;
    let n_tensors = c.u64("the tensor count")?;
    let n_kv = c.u64("the metadata count")?;
    if version != 2 && version != 3 {
        return Err(Error::Invalid(format!(
            "{}: GGUF version {} is not supported (2 and 3 are; a big-endian file reads as another version); \
             convert the model again with a current llama.cpp",
            c.path, version
        )));
    }
    let mut alignment: u64 = 32;
    for _ in 0..n_kv {
        let len = c.u64("a key length")?;
        let mut is_align = false;
        if len == 17 {
            let mut key = [0u8; 17];
            c.read(&mut key, "a key")?;
            is_align = &key == b"general.alignment";
        } else {
            c.skip(len, "a key")?;
        }
        let t = c.u32("a value type")?;
        if is_align {
            if t != 4 {
                return Err(c.bad("general.alignment is not a uint32"));
            }
            alignment = c.u32("general.alignment")? as u64;
        } else {
            skip_value(&mut c, t)?;
        }
    }
    if alignment == 0 || !alignment.is_power_of_two() {
        return Err(c.bad("general.alignment is not a power of two"));
    }
    if n_tensors > (c.size - c.at) / 32 {
        return Err(c.truncated("the tensor-info table"));
    }
    let table_start = c.at;
    let mut offsets = Vec::with_capacity(n_tensors as usize);
    for _ in 0..n_tensors {
        let len = c.u64("a tensor name length")?;
        c.skip(len, "a tensor name")?;
        let n_dims = c.u32("a tensor's dimension count")?;
        if !(1..=4).contains(&n_dims) {
            return Err(c.bad("a tensor with more than 4 dimensions"));
        }
        c.skip(8 * n_dims as u64, "a tensor dimension")?;
        c.u32("a tensor type")?;
        offsets.push(c.u64("a tensor offset")?);
    }
    let table_end = c.at;
    let data_start = (table_end + alignment - 1) / alignment * alignment;
    if data_start > c.size {
        return Err(c.truncated("the data section"));
    }
    let data_size = c.size - data_start;
    for (i, &o) in offsets.iter().enumerate() {
        if o > data_size {
            return Err(Error::Invalid(format!(
                "{}: not a whole GGUF file (tensor {}'s data starts at byte {} of a data section of {} bytes); \
                 give a complete .gguf model",
                c.path, i, o, data_size
            )));
        }
    }
    let mut sorted = offsets.clone();
    sorted.sort_unstable();
    sorted.dedup();
    let mut h = Sha256::new();
    let mut f = c.r.into_inner();
    let path = c.path;
    let mut hash = |h: &mut Sha256, at: u64, n: u64| -> Result<(), Error> {
        let mut buf = vec![0u8; n as usize];
        f.seek(SeekFrom::Start(at))
            .and_then(|_| f.read_exact(&mut buf))
            .map_err(|e| Error::Io(path.clone(), e))?;
        h.update(&buf);
        Ok(())
    };
    hash(&mut h, table_start, table_end - table_start)?;
    for &o in &offsets {
        // the data runs to the next greater offset, the last to the end of the file
        let i = sorted.partition_point(|&x| x <= o);
        let end = if i < sorted.len() { sorted[i] } else { data_size };
        let (start, n) = (data_start + o, end - o);
        if n <= SAMPLES * BLOCK {
            hash(&mut h, start, n)?;
        } else {
            for i in 0..SAMPLES {
                hash(&mut h, start + i * (n - BLOCK) / (SAMPLES - 1), BLOCK)?;
            }
        }
    }
    let digest = h.finalize();
    let hex: String = digest.iter().map(|b| format!("{:02x}", b)).collect();
    Ok(format!("{}:{}", FINGERPRINT_SCHEME, hex))
}
