//! The reader: a dump's manifest, and its tensors by (checkpoint, layer,
//! step, sequence), from any form (npy files, .npz, safetensors). Input is
//! untrusted: a malformed file is an `Err`, never a panic, and nothing is
//! allocated beyond what the file holds.

use crate::npy::{self, Dtype};
use crate::npz::{self, MemberSpan, Source};
use crate::{crc32, f16_to_f32, io_err, Error};
use serde_json::Value;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// A tensor's values, C order.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    /// float16 bits
    F16(Vec<u16>),
    I32(Vec<i32>),
}

/// A tensor read back: dtype, shape (numpy order) and values.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Data,
}

impl Array {
    /// Parses a whole `.npy` file's bytes.
    pub fn from_npy_bytes(bytes: &[u8]) -> Result<Array, Error> {
        let h = npy::parse_header(bytes)?;
        let n = h.data_bytes().ok_or_else(|| Error::Invalid("shape overflows".into()))?;
        if bytes.len() - h.data_offset != n {
            return Err(Error::Invalid(format!(
                "not a readable .npy: {} data bytes for shape {:?} ({}), {} present",
                n,
                h.shape,
                h.dtype.name(),
                bytes.len() - h.data_offset
            )));
        }
        Ok(Array::from_le(h.dtype, h.shape, &bytes[h.data_offset..]))
    }

    /// `bytes` must hold exactly the shape's elements.
    fn from_le(dtype: Dtype, shape: Vec<usize>, bytes: &[u8]) -> Array {
        let data = match dtype {
            Dtype::F32 => Data::F32(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            Dtype::I32 => Data::I32(
                bytes
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            Dtype::F16 => Data::F16(
                bytes
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            ),
        };
        Array { dtype, shape, data }
    }

    pub fn len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::F16(v) => v.len(),
            Data::I32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as f32 (f16 exactly widened; i32 converted).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            Data::F32(v) => v.clone(),
            Data::F16(v) => v.iter().map(|&h| f16_to_f32(h)).collect(),
            Data::I32(v) => v.iter().map(|&i| i as f32).collect(),
        }
    }

    /// The f32 values, if this is a float32 tensor.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            Data::F32(v) => Some(v),
            _ => None,
        }
    }

    /// The data's little-endian bytes, as in the file (for checksums).
    pub fn le_bytes(&self) -> Vec<u8> {
        match &self.data {
            Data::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::F16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// Reads one `.npy` file.
pub fn read_npy_file<P: AsRef<Path>>(path: P) -> Result<Array, Error> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    Array::from_npy_bytes(&bytes).map_err(|e| Error::Invalid(format!("{}: {}", path.display(), e)))
}

/// A `.npz` archive of stored `.npy` members (the C writer's, numpy's
/// `np.savez`). Members are read where they lie; the file is not loaded.
pub struct Npz {
    src: Source,
    members: HashMap<String, MemberSpan>,
}

impl Npz {
    pub fn open<P: AsRef<Path>>(path: P) -> Result<Npz, Error> {
        let path = path.as_ref();
        let f = File::open(path).map_err(io_err(path))?;
        let src = Source::from_file(f).map_err(io_err(path))?;
        Npz::from_source(src).map_err(|e| Error::Invalid(format!("{}: {}", path.display(), e)))
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Result<Npz, Error> {
        Npz::from_source(Source::from_bytes(bytes))
    }

    fn from_source(src: Source) -> Result<Npz, Error> {
        let members = npz::index(&src)?;
        Ok(Npz { src, members })
    }

    /// The members' names (np.load's keys, with ".npy").
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.members.keys().map(|s| s.as_str()).collect();
        v.sort_unstable();
        v
    }

    /// Member `name` ("x.npy", or np.load's key "x"), checked against the
    /// zip CRC-32; also returns where its data starts in the archive.
    pub fn get_with_offset(&self, name: &str) -> Result<(Array, u64), Error> {
        let m = self
            .members
            .get(name)
            .or_else(|| self.members.get(&format!("{}.npy", name)))
            .ok_or_else(|| Error::Invalid(format!("no member '{:.200}' in the .npz", name)))?;
        let bytes = self.src.read(m.offset, m.size)?;
        if crc32(&bytes) != m.crc32 {
            return Err(Error::Invalid(format!(
                "member '{:.200}': its CRC-32 is not the archive's",
                name
            )));
        }
        let h = npy::parse_header(&bytes)?;
        let a = Array::from_npy_bytes(&bytes).map_err(|e| Error::Invalid(format!("member '{:.200}': {}", name, e)))?;
        Ok((a, m.offset + h.data_offset as u64))
    }

    pub fn get(&self, name: &str) -> Result<Array, Error> {
        self.get_with_offset(name).map(|r| r.0)
    }
}

/// The manifest's model description.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Model {
    pub path: Option<String>,
    pub size: i64,
    pub architecture: Option<String>,
    /// model.fingerprint ("sha256-sampled-v1:..."), when the dump has one
    pub fingerprint: Option<String>,
    pub n_layer: i64,
    pub n_embd: i64,
    pub n_head: i64,
    pub n_head_kv: i64,
    pub n_vocab: i64,
}

/// One tensor of the manifest's `files`.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// the .npy file, or the member in the container
    pub file: String,
    /// the container's key (container forms only)
    pub key: Option<String>,
    pub checkpoint: String,
    pub number: i64,
    /// None for model-level tensors (layer -1)
    pub layer: Option<u32>,
    pub step: u32,
    pub seq: Option<u32>,
    pub pos_start: i64,
    pub n_pos: i64,
    pub n_key: i64,
    pub shape: Vec<usize>,
    pub dtype: Dtype,
    pub axes: Vec<String>,
    pub positions: Option<Vec<i64>>,
    pub cells: Option<Vec<i64>>,
    pub crc32: Option<u32>,
    pub bytes: Option<u64>,
    pub offset: Option<u64>,
    /// the whole JSON entry, for fields not listed here
    pub json: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Missing {
    pub checkpoint: String,
    pub layer: Option<u32>,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Sequence {
    pub seq: u32,
    pub tokens: Vec<i32>,
    pub prompt: Option<String>,
}

/// manifest.json, checked.
#[derive(Clone, Debug)]
pub struct Manifest {
    pub format_version: u32,
    pub complete: bool,
    pub status: String,
    pub producer: String,
    pub model: Model,
    pub prompt: Option<String>,
    pub tokens: Vec<i32>,
    /// (format, file) of the container, None for the npy form
    pub container: Option<(String, String)>,
    pub files: Vec<Entry>,
    pub missing: Vec<Missing>,
    pub sequences: Vec<Sequence>,
    /// Null when absent
    pub settings: Value,
    /// the whole manifest
    pub json: Value,
}

fn bad(what: String) -> Error {
    Error::Invalid(format!("manifest.json: {}", what))
}

fn int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    })
}

fn field<'a>(o: &'a Value, k: &str, ctx: &str) -> Result<&'a Value, Error> {
    o.get(k).ok_or_else(|| bad(format!("{} has no \"{}\"", ctx, k)))
}

fn get_int(o: &Value, k: &str, ctx: &str) -> Result<i64, Error> {
    int(field(o, k, ctx)?).ok_or_else(|| bad(format!("{}: \"{}\" is not an integer", ctx, k)))
}

fn get_str(o: &Value, k: &str, ctx: &str) -> Result<String, Error> {
    field(o, k, ctx)?
        .as_str()
        .map(String::from)
        .ok_or_else(|| bad(format!("{}: \"{}\" is not a string", ctx, k)))
}

fn opt_str(o: &Value, k: &str) -> Option<String> {
    o.get(k).and_then(|v| v.as_str()).map(String::from)
}

fn int_array(v: &Value, what: &str) -> Result<Vec<i64>, Error> {
    v.as_array()
        .ok_or_else(|| bad(format!("{} is not an array", what)))?
        .iter()
        .map(|x| int(x).ok_or_else(|| bad(format!("{} holds a non-integer", what))))
        .collect()
}

fn tokens(v: &Value, what: &str) -> Result<Vec<i32>, Error> {
    int_array(v, what)?
        .into_iter()
        .map(|t| i32::try_from(t).map_err(|_| bad(format!("{}: token {} out of range", what, t))))
        .collect()
}

fn layer_of(l: i64, ctx: &str) -> Result<Option<u32>, Error> {
    match l {
        -1 => Ok(None),
        l if (0..=u32::MAX as i64).contains(&l) => Ok(Some(l as u32)),
        l => Err(bad(format!("{}: layer {}", ctx, l))),
    }
}

/// A safe file name: one component, no path.
fn plain_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.contains('\0')
}

fn parse_entry(e: &Value, i: usize, container: bool) -> Result<Entry, Error> {
    let ctx = format!("files[{}]", i);
    if !e.is_object() {
        return Err(bad(format!("{} is not an object", ctx)));
    }
    let file = get_str(e, "file", &ctx)?;
    if !container && !plain_name(&file) {
        return Err(bad(format!("{}: file '{:.100}' is not a plain file name", ctx, file)));
    }
    let shape = int_array(field(e, "shape", &ctx)?, &format!("{}.shape", ctx))?
        .into_iter()
        .map(|d| usize::try_from(d).map_err(|_| bad(format!("{}: negative dimension", ctx))))
        .collect::<Result<Vec<usize>, Error>>()?;
    let dtype_name = get_str(e, "dtype", &ctx)?;
    let dtype = Dtype::from_name(&dtype_name).ok_or_else(|| bad(format!("{}: dtype '{:.40}'", ctx, dtype_name)))?;
    let step = get_int(e, "step", &ctx)?;
    let step = u32::try_from(step).map_err(|_| bad(format!("{}: step {}", ctx, step)))?;
    let seq = match e.get("seq") {
        None => None,
        Some(v) => Some(
            int(v)
                .and_then(|s| u32::try_from(s).ok())
                .ok_or_else(|| bad(format!("{}: seq", ctx)))?,
        ),
    };
    let opt_u64 = |k: &str| -> Result<Option<u64>, Error> {
        match e.get(k) {
            None => Ok(None),
            Some(v) => Ok(Some(
                int(v)
                    .and_then(|x| u64::try_from(x).ok())
                    .ok_or_else(|| bad(format!("{}: {}", ctx, k)))?,
            )),
        }
    };
    let crc = match opt_u64("crc32")? {
        None => None,
        Some(c) => Some(u32::try_from(c).map_err(|_| bad(format!("{}: crc32", ctx)))?),
    };
    let axes = match e.get("axes") {
        None => Vec::new(),
        Some(a) => a
            .as_array()
            .ok_or_else(|| bad(format!("{}: axes", ctx)))?
            .iter()
            .map(|x| {
                x.as_str()
                    .map(String::from)
                    .ok_or_else(|| bad(format!("{}: axes", ctx)))
            })
            .collect::<Result<Vec<String>, Error>>()?,
    };
    Ok(Entry {
        key: opt_str(e, "key"),
        checkpoint: get_str(e, "checkpoint", &ctx)?,
        number: e.get("number").and_then(int).unwrap_or(0),
        layer: layer_of(get_int(e, "layer", &ctx)?, &ctx)?,
        step,
        seq,
        pos_start: e.get("pos_start").and_then(int).unwrap_or(0),
        n_pos: e.get("n_pos").and_then(int).unwrap_or(0),
        n_key: e.get("n_key").and_then(int).unwrap_or(0),
        shape,
        dtype,
        axes,
        positions: e
            .get("positions")
            .map(|v| int_array(v, &format!("{}.positions", ctx)))
            .transpose()?,
        cells: e
            .get("cells")
            .map(|v| int_array(v, &format!("{}.cells", ctx)))
            .transpose()?,
        crc32: crc,
        bytes: opt_u64("bytes")?,
        offset: opt_u64("offset")?,
        file,
        json: e.clone(),
    })
}

impl Manifest {
    /// Parses and checks manifest.json's text.
    pub fn parse(text: &str) -> Result<Manifest, Error> {
        let j: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {}", e)))?;
        if !j.is_object() {
            return Err(bad("not a JSON object".into()));
        }
        let top = "the manifest";
        if get_str(&j, "format", top)? != crate::FORMAT_NAME {
            return Err(bad(format!("format is not \"{}\"", crate::FORMAT_NAME)));
        }
        let version = get_int(&j, "format_version", top)?;
        if !(1..=3).contains(&version) {
            return Err(bad(format!(
                "format_version {} is not known to this reader (1 to 3)",
                version
            )));
        }
        let container = match j.get("container") {
            None => None,
            Some(c) => {
                let (f, file) = (get_str(c, "format", "container")?, get_str(c, "file", "container")?);
                if (f != "npz" && f != "safetensors") || !plain_name(&file) {
                    return Err(bad(format!("container {:.40} '{:.100}'", f, file)));
                }
                Some((f, file))
            }
        };
        let files = field(&j, "files", top)?
            .as_array()
            .ok_or_else(|| bad("files is not an array".into()))?
            .iter()
            .enumerate()
            .map(|(i, e)| parse_entry(e, i, container.is_some()))
            .collect::<Result<Vec<Entry>, Error>>()?;
        let missing = match j.get("missing") {
            None => Vec::new(),
            Some(m) => m
                .as_array()
                .ok_or_else(|| bad("missing is not an array".into()))?
                .iter()
                .map(|e| {
                    Ok(Missing {
                        checkpoint: get_str(e, "checkpoint", "missing")?,
                        layer: layer_of(get_int(e, "layer", "missing")?, "missing")?,
                        reason: opt_str(e, "reason").unwrap_or_default(),
                    })
                })
                .collect::<Result<Vec<Missing>, Error>>()?,
        };
        let sequences = match j.get("sequences") {
            None => Vec::new(),
            Some(s) => s
                .as_array()
                .ok_or_else(|| bad("sequences is not an array".into()))?
                .iter()
                .map(|e| {
                    let seq = get_int(e, "seq", "sequences")?;
                    Ok(Sequence {
                        seq: u32::try_from(seq).map_err(|_| bad(format!("sequence {}", seq)))?,
                        tokens: tokens(field(e, "tokens", "sequences")?, "sequences.tokens")?,
                        prompt: opt_str(e, "prompt"),
                    })
                })
                .collect::<Result<Vec<Sequence>, Error>>()?,
        };
        let m = j.get("model").cloned().unwrap_or(Value::Null);
        let mi = |k: &str| m.get(k).and_then(int).unwrap_or(0);
        Ok(Manifest {
            format_version: version as u32,
            complete: j.get("complete").and_then(|v| v.as_bool()).unwrap_or(false),
            status: opt_str(&j, "status").unwrap_or_default(),
            producer: opt_str(&j, "producer").unwrap_or_default(),
            model: Model {
                path: opt_str(&m, "path"),
                size: m.get("size").and_then(int).unwrap_or(-1),
                architecture: opt_str(&m, "architecture"),
                fingerprint: opt_str(&m, "fingerprint"),
                n_layer: mi("n_layer"),
                n_embd: mi("n_embd"),
                n_head: mi("n_head"),
                n_head_kv: mi("n_head_kv"),
                n_vocab: mi("n_vocab"),
            },
            prompt: opt_str(&j, "prompt"),
            tokens: match j.get("tokens") {
                None => Vec::new(),
                Some(t) => tokens(t, "tokens")?,
            },
            container,
            files,
            missing,
            sequences,
            settings: j.get("settings").cloned().unwrap_or(Value::Null),
            json: j,
        })
    }
}

enum Storage {
    Files,
    Npz(Npz),
    Safetensors {
        src: Source,
        tensors: HashMap<String, (Dtype, Vec<usize>, u64, u64)>,
    },
}

/// An open dump.
pub struct Dump {
    dir: PathBuf,
    manifest: Manifest,
    storage: Storage,
    by_name: HashMap<(String, Option<u32>, u32, Option<u32>), usize>,
}

fn open_safetensors(path: &Path) -> Result<Storage, Error> {
    let f = File::open(path).map_err(io_err(path))?;
    let src = Source::from_file(f).map_err(io_err(path))?;
    let bad = |s: &str| Error::Invalid(format!("{}: not a readable safetensors file: {}", path.display(), s));
    let len = src.read(0, 8)?;
    let n = u64::from_le_bytes([len[0], len[1], len[2], len[3], len[4], len[5], len[6], len[7]]);
    if n > 100_000_000 || n > src.size() - 8 {
        return Err(bad("header longer than the file"));
    }
    let header: Value = serde_json::from_slice(&src.read(8, n)?).map_err(|e| bad(&e.to_string()))?;
    let obj = header.as_object().ok_or_else(|| bad("header is not an object"))?;
    let data_start = 8 + n;
    let data_size = src.size() - data_start;
    let mut tensors = HashMap::new();
    for (k, t) in obj {
        if k == "__metadata__" {
            continue;
        }
        let dtype = t
            .get("dtype")
            .and_then(|d| d.as_str())
            .and_then(Dtype::from_safetensors_name);
        let shape: Option<Vec<usize>> = t.get("shape").and_then(|s| s.as_array()).and_then(|a| {
            a.iter()
                .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
                .collect()
        });
        let offs: Option<Vec<u64>> = t
            .get("data_offsets")
            .and_then(|s| s.as_array())
            .and_then(|a| a.iter().map(|d| d.as_u64()).collect());
        let (dtype, shape, offs) = match (dtype, shape, offs) {
            (Some(d), Some(s), Some(o)) if o.len() == 2 => (d, s, o),
            _ => return Err(bad(&format!("tensor '{:.100}' lacks dtype, shape or data_offsets", k))),
        };
        let (b, e) = (offs[0], offs[1]);
        let want = npy::element_count(&shape).and_then(|c| c.checked_mul(dtype.size()));
        if b > e || e > data_size || want != Some((e - b) as usize) {
            return Err(bad(&format!(
                "tensor '{:.100}': data_offsets do not fit its shape or the file",
                k
            )));
        }
        tensors.insert(k.clone(), (dtype, shape, data_start + b, e - b));
    }
    Ok(Storage::Safetensors { src, tensors })
}

impl Dump {
    /// Opens the dump in `dir`: its manifest, and its container if any.
    pub fn open<P: AsRef<Path>>(dir: P) -> Result<Dump, Error> {
        let dir = dir.as_ref().to_path_buf();
        let mpath = dir.join("manifest.json");
        let text = std::fs::read_to_string(&mpath).map_err(io_err(&mpath))?;
        let manifest = Manifest::parse(&text).map_err(|e| Error::Invalid(format!("{}: {}", dir.display(), e)))?;
        let storage = match &manifest.container {
            None => Storage::Files,
            Some((f, file)) if f == "npz" => Storage::Npz(Npz::open(dir.join(file))?),
            Some((_, file)) => open_safetensors(&dir.join(file))?,
        };
        let mut by_name = HashMap::new();
        for (i, e) in manifest.files.iter().enumerate() {
            by_name
                .entry((e.checkpoint.clone(), e.layer, e.step, e.seq))
                .or_insert(i);
        }
        Ok(Dump {
            dir,
            manifest,
            storage,
            by_name,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn entries(&self) -> &[Entry] {
        &self.manifest.files
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry of a checkpoint ("attn_norm", ...), layer (None for
    /// model-level tensors), step and sequence (None in a dump of one).
    pub fn find(&self, checkpoint: &str, layer: Option<u32>, step: u32, seq: Option<u32>) -> Option<&Entry> {
        self.by_name
            .get(&(checkpoint.to_string(), layer, step, seq))
            .map(|&i| &self.manifest.files[i])
    }

    /// The tensor of a checkpoint, layer, step and sequence.
    pub fn get(&self, checkpoint: &str, layer: Option<u32>, step: u32, seq: Option<u32>) -> Result<Array, Error> {
        let e = self.find(checkpoint, layer, step, seq).ok_or_else(|| {
            Error::Invalid(format!(
                "{}: no {} of layer {:?}, step {}, sequence {:?} in the manifest",
                self.dir.display(),
                checkpoint,
                layer,
                step,
                seq
            ))
        })?;
        self.read(e)
    }

    /// Reads an entry's tensor and checks it against the manifest: dtype,
    /// shape, bytes, crc32 and (containers) offset.
    pub fn read(&self, e: &Entry) -> Result<Array, Error> {
        let ctx = |s: String| Error::Invalid(format!("{}: {}: {}", self.dir.display(), e.file, s));
        let (a, offset) = match &self.storage {
            Storage::Files => (read_npy_file(self.dir.join(&e.file))?, None),
            Storage::Npz(z) => {
                let (a, off) = z.get_with_offset(&e.file)?;
                (a, Some(off))
            }
            Storage::Safetensors { src, tensors } => {
                let key = e.key.as_deref().unwrap_or(&e.file);
                let (dtype, shape, at, n) = tensors
                    .get(key)
                    .ok_or_else(|| ctx(format!("no tensor '{:.100}' in the safetensors file", key)))?;
                let bytes = src.read(*at, *n)?;
                (Array::from_le(*dtype, shape.clone(), &bytes), Some(*at))
            }
        };
        if a.dtype != e.dtype || a.shape != e.shape {
            return Err(ctx(format!(
                "the file holds {} {:?}, the manifest says {} {:?}",
                a.dtype.name(),
                a.shape,
                e.dtype.name(),
                e.shape
            )));
        }
        let bytes = a.le_bytes();
        if e.bytes.map_or(false, |b| b != bytes.len() as u64) {
            return Err(ctx(format!(
                "{} data bytes, the manifest says {:?}",
                bytes.len(),
                e.bytes
            )));
        }
        if e.crc32.map_or(false, |c| c != crc32(&bytes)) {
            return Err(ctx("the data's CRC-32 is not the manifest's".into()));
        }
        if let (Some(want), Some(got)) = (e.offset, offset) {
            if want != got {
                return Err(ctx(format!(
                    "data at offset {} in the container, the manifest says {}",
                    got, want
                )));
            }
        }
        Ok(a)
    }

    /// tokens.npy (int32).
    pub fn tokens(&self) -> Result<Vec<i32>, Error> {
        let a = read_npy_file(self.dir.join("tokens.npy"))?;
        match a.data {
            Data::I32(v) if a.shape.len() == 1 => Ok(v),
            _ => Err(Error::Invalid(format!(
                "{}: tokens.npy is not a 1-D int32 array",
                self.dir.display()
            ))),
        }
    }
}

/// Which residual stream of a layer `Dump::residual` reads (docs/FORMAT.md,
/// "Fed runs"): what an engine fed by the dump replaces its own with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Where {
    /// the input of layer L: `embd` for L = 0, else `l_out` of L-1
    /// (L = n_layer: the final norm's input)
    LayerInput,
    /// the FFN's input in layer L: `ffn_inp` of L
    FfnInput,
}

impl Where {
    /// The checkpoint and layer that hold it: ("embd", None), ("l_out",
    /// Some(L-1)) or ("ffn_inp", Some(L)).
    pub fn source(self, layer: u32) -> (&'static str, Option<u32>) {
        match self {
            Where::LayerInput if layer == 0 => ("embd", None),
            Where::LayerInput => ("l_out", Some(layer - 1)),
            Where::FfnInput => ("ffn_inp", Some(layer)),
        }
    }

    fn describe(self, layer: u32, seq: Option<u32>) -> String {
        let of_seq = seq.map(|s| format!(" of sequence {}", s)).unwrap_or_default();
        match self.source(layer) {
            (_, None) => format!("embd{} (the input of layer 0)", of_seq),
            ("l_out", Some(l)) => format!("l_out of layer {}{} (the input of layer {})", l, of_seq, layer),
            (_, Some(l)) => format!("ffn_inp of layer {}{} (the FFN's input)", l, of_seq),
        }
    }
}

impl Dump {
    /// The rows of `at` of `layer` at absolute positions `pos_start ..
    /// pos_start + n_pos`, `n_pos * n_embd` floats (n_embd: the manifest's
    /// model.n_embd), gathered from whatever steps and files hold them: a
    /// dump made in one step serves an engine that decodes token by token,
    /// and the reverse; files with `positions` too. Where two steps hold a
    /// position, the latest wins (highest step, then last in the manifest),
    /// as compare lines rows up. float16 files are widened exactly. `seq`:
    /// whose rows in a dump of several sequences (None is refused there); a
    /// dump of one sequence is that sequence whatever `seq` is. Every file
    /// used is checked against the manifest; rows that are not there are an
    /// `Err` naming the dump, the checkpoint, the layer and the positions.
    /// The same as C's `llorch_ckpt_dump_residual`.
    pub fn residual(
        &self,
        layer: u32,
        at: Where,
        seq: Option<u32>,
        pos_start: u64,
        n_pos: usize,
    ) -> Result<Vec<f32>, Error> {
        let m = &self.manifest;
        let name = self.dir.display().to_string();
        let err = |s: String| Error::Invalid(format!("{}: {}", name, s));
        let max_layer = match at {
            Where::LayerInput => m.model.n_layer,
            Where::FfnInput => m.model.n_layer - 1,
        };
        if m.model.n_layer > 0 && i64::from(layer) > max_layer {
            return Err(err(format!(
                "layer {} is out of range: the model has layers 0-{}",
                layer,
                m.model.n_layer - 1
            )));
        }
        if pos_start > i32::MAX as u64 || n_pos > i32::MAX as usize {
            return Err(err(format!(
                "positions {} + {} rows: not a range of token positions",
                pos_start, n_pos
            )));
        }
        let n_embd = usize::try_from(m.model.n_embd)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| err("the manifest gives no model.n_embd: the rows' width is unknown".into()))?;
        let several = !m.sequences.is_empty();
        if several && seq.is_none() {
            return Err(err(format!(
                "holds {} sequences (format version 3); say which sequence's rows (seq)",
                m.sequences.len()
            )));
        }
        if several && !m.sequences.iter().any(|s| Some(s.seq) == seq) {
            return Err(err(format!("has no sequence {}", seq.unwrap_or(0))));
        }
        let seq = if several { seq } else { None };
        let (checkpoint, src_layer) = at.source(layer);
        let start = pos_start as i64;
        let end = start + n_pos as i64;
        // per asked row: (entry index, row in its file)
        let mut src: Vec<Option<(usize, usize)>> = vec![None; n_pos];
        let mut held: Option<(i64, i64)> = None;
        for (i, e) in m.files.iter().enumerate() {
            if e.checkpoint != checkpoint || e.layer != src_layer || (several && e.seq != seq) {
                continue;
            }
            let raw = e.json.get("raw").and_then(|v| v.as_bool()).unwrap_or(false);
            if raw || e.shape.len() != 2 || e.axes != ["token", "channel"] {
                return Err(err(format!(
                    "{}: {} is not laid out (token, channel); it cannot feed a layer",
                    e.file, checkpoint
                )));
            }
            if e.shape[1] != n_embd {
                return Err(err(format!(
                    "{}: {} channels, but the model's n_embd is {}",
                    e.file, e.shape[1], n_embd
                )));
            }
            if e.dtype == Dtype::I32 {
                return Err(err(format!(
                    "{}: dtype int32; the residual stream must be float32 or float16",
                    e.file
                )));
            }
            let rows = e.shape[0];
            let listed = e.positions.as_deref();
            if listed.map_or(e.n_pos as usize != rows, |p| p.len() != rows) {
                return Err(err(format!("{}: {} rows do not match n_pos / positions", e.file, rows)));
            }
            let mut offer = |p: i64, r: usize| {
                held = Some(held.map_or((p, p), |(lo, hi)| (lo.min(p), hi.max(p))));
                if p >= start && p < end {
                    let slot = &mut src[(p - start) as usize];
                    if slot.map_or(true, |(j, _)| e.step >= m.files[j].step) {
                        *slot = Some((i, r));
                    }
                }
            };
            match listed {
                Some(p) => p.iter().enumerate().for_each(|(r, &p)| offer(p, r)),
                None if rows > 0 => {
                    offer(e.pos_start, 0);
                    offer(e.pos_start + rows as i64 - 1, rows - 1);
                    let lo = e.pos_start.max(start);
                    let hi = (e.pos_start + rows as i64).min(end);
                    (lo..hi).for_each(|p| offer(p, (p - e.pos_start) as usize));
                }
                None => {}
            }
        }
        let what = at.describe(layer, seq);
        if let Some(first) = src.iter().position(|s| s.is_none()) {
            let (lo, hi) = held.ok_or_else(|| {
                err(format!(
                    "holds no {}; make the reference with --checkpoints all (or at least embd,l_out,ffn_inp) over these tokens",
                    what
                ))
            })?;
            let run = src[first..].iter().take_while(|s| s.is_none()).count();
            let missing = src.iter().filter(|s| s.is_none()).count();
            let p0 = start + first as i64;
            let where_ = if run > 1 {
                format!("positions {}-{}", p0, p0 + run as i64 - 1)
            } else {
                format!("position {}", p0)
            };
            return Err(err(format!(
                "no {} at {} ({} of the {} positions {}-{} asked are missing); it holds positions {}-{}; make the reference over the same tokens (prompt and generated)",
                what, where_, missing, n_pos, start, end - 1, lo, hi
            )));
        }
        let mut out = vec![0f32; n_pos * n_embd];
        let mut order: Vec<(usize, usize, usize)> = src
            .iter()
            .enumerate()
            .map(|(k, s)| {
                let (i, r) = s.expect("every row found");
                (i, r, k)
            })
            .collect();
        order.sort_unstable();
        let mut k = 0;
        while k < order.len() {
            let i = order[k].0;
            let values = self.read(&m.files[i])?.to_f32();
            while k < order.len() && order[k].0 == i {
                let (_, r, dst) = order[k];
                out[dst * n_embd..(dst + 1) * n_embd].copy_from_slice(&values[r * n_embd..(r + 1) * n_embd]);
                k += 1;
            }
        }
        Ok(out)
    }
}
