//! The writer: one dump directory, tensors by (kind, layer, step,
//! sequence), the run's description, and the manifest written last.
//! Every file is written as NAME.part and renamed when whole
//! (docs/FORMAT.md).

use crate::kind::Kind;
use crate::npy::{self, Dtype};
use crate::npz::NpzWriter;
use crate::{crc32, io_err, Error};
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// How the tensors are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// one `.npy` file per tensor (manifest format version 1)
    Npy,
    /// one `checkpoints.npz` (format version 2)
    Npz,
}

impl Form {
    pub fn name(self) -> &'static str {
        match self {
            Form::Npy => "npy",
            Form::Npz => "npz",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    pub form: Form,
    /// write into an existing non-empty directory
    pub allow_nonempty: bool,
    /// fsync every file and the directory before the manifest names them
    pub sync: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            form: Form::Npy,
            allow_nonempty: false,
            sync: true,
        }
    }
}

/// One sequence of a dump of several sequences decoded in one batch.
#[derive(Clone, Debug, Default)]
pub struct RunSequence<'a> {
    pub seq: u32,
    pub tokens: &'a [i32],
    pub prompt: Option<&'a str>,
}

/// A fed run (docs/FORMAT.md, "Fed runs"): the engine computed each layer
/// from another dump's residual stream (`Dump::residual`); written as the
/// manifest's "fed" object.
#[derive(Clone, Debug, Default)]
pub struct Fed<'a> {
    /// the dump fed from, as given
    pub from: &'a str,
    /// its producer
    pub producer: &'a str,
    /// its model.fingerprint, if it has one
    pub fingerprint: Option<&'a str>,
    /// what was replaced: "embd", "l_out", "ffn_inp"
    pub at: &'a [&'a str],
    /// the layers whose inputs were replaced
    pub layers: &'a [u32],
}

/// What produced the dump and on what input: the manifest's run fields.
/// A candidate dump for `llorch-checkpoint-compare` should give the model
/// sizes and the tokens, as `llorch-ref-engine` does.
#[derive(Clone, Debug)]
pub struct Run<'a> {
    /// "my-engine 0.1"
    pub producer: &'a str,
    pub model_path: Option<&'a str>,
    /// bytes, or -1
    pub model_size: i64,
    /// "llama", "gpt2", ...
    pub architecture: Option<&'a str>,
    pub n_layer: u32,
    pub n_embd: u32,
    pub n_head: u32,
    pub n_head_kv: u32,
    pub n_vocab: u32,
    /// every token id, in the order decoded (also written as tokens.npy)
    pub tokens: &'a [i32],
    pub prompt: Option<&'a str>,
    /// a JSON object of the settings that change numbers, copied verbatim
    pub settings_json: Option<&'a str>,
    /// several sequences: each one's tokens in position order; empty for one
    pub sequences: &'a [RunSequence<'a>],
    /// the model's fingerprint (`gguf_fingerprint` of its GGUF file), written
    /// as model.fingerprint: compare refuses dumps of different models
    pub model_fingerprint: Option<&'a str>,
    /// a fed run: the "fed" object; None: computed from its own inputs
    pub fed: Option<Fed<'a>>,
}

impl<'a> Default for Run<'a> {
    fn default() -> Self {
        Run {
            producer: "unknown",
            model_path: None,
            model_size: -1,
            architecture: None,
            n_layer: 0,
            n_embd: 0,
            n_head: 0,
            n_head_kv: 0,
            n_vocab: 0,
            tokens: &[],
            prompt: None,
            settings_json: None,
            sequences: &[],
            model_fingerprint: None,
            fed: None,
        }
    }
}

/// The "fed" object, checked: `at` from embd, l_out, ffn_inp; a valid
/// fingerprint or none.
fn fed_json(f: &Fed) -> Result<String, Error> {
    if let Some(a) = f.at.iter().find(|a| !["embd", "l_out", "ffn_inp"].contains(a)) {
        return Err(Error::Invalid(format!(
            "Run::fed.at holds {:?}; it lists embd, l_out and ffn_inp",
            a
        )));
    }
    if f.fingerprint.map_or(false, |fp| !crate::gguf::fingerprint_valid(fp)) {
        return Err(Error::Invalid(format!(
            "Run::fed.fingerprint {:?} is not a fingerprint (SCHEME:HEX)",
            f.fingerprint
        )));
    }
    let at: Vec<String> = f.at.iter().map(|a| js(a)).collect();
    let layers: Vec<String> = f.layers.iter().map(|l| l.to_string()).collect();
    Ok(format!(
        "{{\"from\": {}, \"producer\": {}, \"fingerprint\": {}, \"at\": [{}], \"layers\": [{}]}}",
        js(f.from),
        js(f.producer),
        f.fingerprint.map(js).unwrap_or_else(|| "null".into()),
        at.join(", "),
        layers.join(", ")
    ))
}

/// A tensor's data, C order (last axis fastest).
#[derive(Clone, Copy, Debug)]
pub enum TensorData<'a> {
    F32(&'a [f32]),
    /// float16 as its bits (see `f32_to_f16`)
    F16(&'a [u16]),
}

impl<'a> TensorData<'a> {
    fn dtype(&self) -> Dtype {
        match self {
            TensorData::F32(_) => Dtype::F32,
            TensorData::F16(_) => Dtype::F16,
        }
    }
    fn len(&self) -> usize {
        match self {
            TensorData::F32(d) => d.len(),
            TensorData::F16(d) => d.len(),
        }
    }
    fn le_bytes(&self) -> Vec<u8> {
        match self {
            TensorData::F32(d) => d.iter().flat_map(|v| v.to_le_bytes()).collect(),
            TensorData::F16(d) => d.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

/// One tensor to write. Shape in numpy order. Rows along the "token" axis
/// are positions `pos_start .. pos_start + n_pos` (or `positions`); the
/// "key" axis covers key positions `0 .. n_key`.
#[derive(Clone, Debug)]
pub struct Tensor<'a> {
    pub kind: Kind,
    /// None for model-level tensors (embd, result_norm, logits)
    pub layer: Option<u32>,
    pub step: u32,
    pub shape: &'a [usize],
    pub data: TensorData<'a>,
    pub pos_start: i32,
    pub n_pos: i32,
    pub n_key: i32,
    /// the kept rows' positions when not consecutive (ascending)
    pub positions: Option<&'a [i32]>,
    /// axis names; None: the kind's
    pub axes: Option<&'a [&'a str]>,
    /// a dump of several sequences: this tensor's llama_seq_id
    pub seq: Option<u32>,
    /// with seq and a key axis: the cache cell of each key position
    pub cells: Option<&'a [i32]>,
}

impl<'a> Tensor<'a> {
    /// A tensor whose rows start at position 0; n_pos and n_key are read
    /// off the shape by the kind's axes ("token", "key"). Change them with
    /// the fields or `at`.
    pub fn new(kind: Kind, layer: Option<u32>, step: u32, shape: &'a [usize], data: TensorData<'a>) -> Self {
        let axis = |name: &str| -> i32 {
            kind.axes()
                .iter()
                .position(|a| *a == name)
                .and_then(|i| shape.get(i))
                .map_or(0, |&d| d as i32)
        };
        Tensor {
            kind,
            layer,
            step,
            shape,
            data,
            pos_start: 0,
            n_pos: axis("token"),
            n_key: axis("key"),
            positions: None,
            axes: None,
            seq: None,
            cells: None,
        }
    }

    pub fn f32(kind: Kind, layer: Option<u32>, step: u32, shape: &'a [usize], data: &'a [f32]) -> Self {
        Tensor::new(kind, layer, step, shape, TensorData::F32(data))
    }

    pub fn f16(kind: Kind, layer: Option<u32>, step: u32, shape: &'a [usize], data: &'a [u16]) -> Self {
        Tensor::new(kind, layer, step, shape, TensorData::F16(data))
    }

    /// The rows start at position `pos_start` (n_pos read off the shape).
    pub fn at(mut self, pos_start: i32) -> Self {
        self.pos_start = pos_start;
        self
    }

    /// The step's tokens are positions `pos_start .. pos_start + n_pos`;
    /// for tensors without a token axis (the cache) n_pos is the step's
    /// token count, as the C writer's users record it.
    pub fn rows(mut self, pos_start: i32, n_pos: i32) -> Self {
        self.pos_start = pos_start;
        self.n_pos = n_pos;
        self
    }

    /// This tensor is sequence `seq`'s part of the step (format version 3);
    /// `cells`: the cache cell of each key position, where there is a key axis.
    pub fn in_seq(mut self, seq: u32, cells: Option<&'a [i32]>) -> Self {
        self.seq = Some(seq);
        self.cells = cells;
        self
    }
}

/// JSON text of a string.
fn js(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn int_list<T: ToString>(v: &[T]) -> String {
    let items: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    format!("[{}]", items.join(", "))
}

struct Container {
    npz: NpzWriter,
    part: PathBuf,
}

/// Writes one dump. Call `set_run`, then `write` for each tensor in step
/// order, then `finish`. A writer dropped before `finish` leaves no
/// manifest: the directory is not a dump.
pub struct Writer {
    dir: PathBuf,
    form: Form,
    sync: bool,
    run: Option<String>,
    sequences: bool,
    in_seq: Option<bool>,
    files: Vec<String>,
    missing: Vec<String>,
    names: HashSet<String>,
    last_step: u32,
    written: Vec<PathBuf>,
    container: Option<Container>,
    finished: bool,
}

/// Writes `path` whole or not at all: PATH.part, then renamed.
fn write_atomic(path: &Path, parts: &[&[u8]], sync: bool) -> Result<(), Error> {
    let mut part = path.as_os_str().to_os_string();
    part.push(".part");
    let part = PathBuf::from(part);
    let result = (|| -> std::io::Result<()> {
        let mut f = BufWriter::new(File::create(&part)?);
        for p in parts {
            f.write_all(p)?;
        }
        let f = f.into_inner().map_err(|e| e.into_error())?;
        if sync {
            f.sync_all()?;
        }
        drop(f);
        fs::rename(&part, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&part);
    }
    result.map_err(io_err(path))
}

fn sync_path(path: &Path) -> Result<(), Error> {
    File::open(path).and_then(|f| f.sync_all()).map_err(io_err(path))
}

impl Writer {
    /// Creates `dir` (with its parents) if needed; fails if it exists and
    /// is not an empty directory (unless `allow_nonempty`).
    pub fn create<P: AsRef<Path>>(dir: P, options: Options) -> Result<Writer, Error> {
        let dir = dir.as_ref().to_path_buf();
        match fs::metadata(&dir) {
            Ok(m) if !m.is_dir() => {
                return Err(Error::Invalid(format!(
                    "output '{}' exists and is not a directory",
                    dir.display()
                )))
            }
            Ok(_) => {
                let mut entries = fs::read_dir(&dir).map_err(io_err(&dir))?;
                if !options.allow_nonempty && entries.next().is_some() {
                    return Err(Error::Invalid(format!(
                        "output directory '{}' is not empty; choose a new directory or empty it",
                        dir.display()
                    )));
                }
            }
            Err(_) => fs::create_dir_all(&dir).map_err(io_err(&dir))?,
        }
        let container = match options.form {
            Form::Npy => None,
            Form::Npz => {
                let part = dir.join("checkpoints.npz.part");
                // read too: finish() reads the central directory back (crate::npz)
                let f = fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&part)
                    .map_err(io_err(&part))?;
                Some(Container {
                    npz: NpzWriter::new(f),
                    part,
                })
            }
        };
        Ok(Writer {
            dir,
            form: options.form,
            sync: options.sync,
            run: None,
            sequences: false,
            in_seq: None,
            files: Vec::new(),
            missing: Vec::new(),
            names: HashSet::new(),
            last_step: 0,
            written: Vec::new(),
            container,
            finished: false,
        })
    }

    /// Describes the run and writes tokens.npy.
    pub fn set_run(&mut self, run: &Run) -> Result<(), Error> {
        let mut r = String::new();
        r.push_str(&format!(",\n  \"producer\": {}", js(run.producer)));
        let mut m = Vec::new();
        if let Some(p) = run.model_path {
            m.push(format!("\"path\": {}", js(p)));
        }
        m.push(format!("\"size\": {}", run.model_size));
        if let Some(a) = run.architecture {
            m.push(format!("\"architecture\": {}", js(a)));
        }
        if let Some(fp) = run.model_fingerprint {
            if !crate::gguf::fingerprint_valid(fp) {
                return Err(Error::Invalid(format!(
                    "Run::model_fingerprint {:?} is not a fingerprint (SCHEME:HEX); compute it with gguf_fingerprint",
                    fp
                )));
            }
            m.push(format!("\"fingerprint\": {}", js(fp)));
        }
        m.push(format!(
            "\"n_layer\": {}, \"n_embd\": {}, \"n_head\": {}, \"n_head_kv\": {}, \"n_vocab\": {}",
            run.n_layer, run.n_embd, run.n_head, run.n_head_kv, run.n_vocab
        ));
        r.push_str(&format!(",\n  \"model\": {{{}}}", m.join(", ")));
        if let Some(p) = run.prompt {
            r.push_str(&format!(",\n  \"prompt\": {}", js(p)));
        }
        r.push_str(&format!(",\n  \"tokens\": {}", int_list(run.tokens)));
        r.push_str(",\n  \"tokens_file\": \"tokens.npy\"");
        if !run.sequences.is_empty() {
            let seqs: Vec<String> = run
                .sequences
                .iter()
                .map(|s| {
                    let prompt = s.prompt.map(|p| format!(", \"prompt\": {}", js(p))).unwrap_or_default();
                    format!("{{\"seq\": {}{}, \"tokens\": {}}}", s.seq, prompt, int_list(s.tokens))
                })
                .collect();
            r.push_str(&format!(",\n  \"sequences\": [\n    {}\n  ]", seqs.join(",\n    ")));
        }
        if let Some(s) = run.settings_json {
            match serde_json::from_str::<serde_json::Value>(s) {
                Ok(v) if v.is_object() => r.push_str(&format!(",\n  \"settings\": {}", v)),
                _ => {
                    return Err(Error::Invalid(format!(
                        "run.settings_json is not a JSON object: {:.60}",
                        s
                    )))
                }
            }
        }
        if let Some(f) = &run.fed {
            r.push_str(&format!(",\n  \"fed\": {}", fed_json(f)?));
        }
        let data: Vec<u8> = run.tokens.iter().flat_map(|t| t.to_le_bytes()).collect();
        let header = npy::header(Dtype::I32, &[run.tokens.len()])?;
        write_atomic(&self.dir.join("tokens.npy"), &[&header, &data], self.sync)?;
        self.run = Some(r);
        self.sequences = !run.sequences.is_empty();
        Ok(())
    }

    fn check(&self, t: &Tensor) -> Result<(), Error> {
        let name = t.kind.name();
        let bad = |s: String| Err(Error::Invalid(format!("tensor {}: {}", name, s)));
        if t.shape.is_empty() || t.shape.len() > 4 {
            return bad(format!("{} dimensions (1 to 4 are written)", t.shape.len()));
        }
        let n_axes = t.axes.map_or(t.kind.axes().len(), |a| a.len());
        if n_axes != t.shape.len() {
            return bad(format!("{} axis names for {} dimensions", n_axes, t.shape.len()));
        }
        if npy::element_count(t.shape) != Some(t.data.len()) {
            return bad(format!("shape {:?} does not hold {} values", t.shape, t.data.len()));
        }
        if t.kind.per_layer() != t.layer.is_some() {
            return bad(if t.kind.per_layer() {
                "a layer is needed".into()
            } else {
                "it has no layer".into()
            });
        }
        if t.step < self.last_step {
            return bad(format!(
                "step {} written after step {}: write the steps in order",
                t.step, self.last_step
            ));
        }
        if let Some(s) = self.in_seq {
            if s != t.seq.is_some() {
                return bad("a dump holds one sequence or per-sequence tensors, not both".into());
            }
        }
        if t.n_pos < 0 || t.n_key < 0 {
            return bad("n_pos and n_key cannot be negative".into());
        }
        if let Some(p) = t.positions {
            if p.len() != t.n_pos as usize
                || p.windows(2).any(|w| w[1] <= w[0])
                || p.first().map_or(false, |&f| f < t.pos_start)
            {
                return bad("positions must be n_pos ascending positions from pos_start".into());
            }
        }
        if let Some(c) = t.cells {
            if t.seq.is_none() || c.len() != t.n_key as usize {
                return bad("cells come with a sequence and give one cell per key position".into());
            }
        }
        Ok(())
    }

    /// Writes one tensor: a file (npy form) or a member of the container.
    pub fn write(&mut self, t: &Tensor) -> Result<(), Error> {
        if self.finished {
            return Err(Error::Invalid("the dump is already finished".into()));
        }
        self.check(t)?;
        let name = t.kind.file_name(t.layer, t.seq, t.step);
        if self.names.contains(&name) {
            return Err(Error::Invalid(format!(
                "{}: this checkpoint of this layer and step was already written",
                name
            )));
        }
        let header = npy::header(t.data.dtype(), t.shape)?;
        let data = t.data.le_bytes();
        let crc = crc32(&data);
        let key = &name[..name.len() - 4];
        let mut extra = String::new();
        match &mut self.container {
            None => {
                let path = self.dir.join(&name);
                write_atomic(&path, &[&header, &data], self.sync)?;
                self.written.push(path);
            }
            Some(c) => {
                let at = c.npz.add(&name, &header, &data).map_err(|e| match e {
                    Error::Io(_, io) => Error::Io(c.part.display().to_string(), io),
                    e => e,
                })?;
                extra = format!(", \"key\": {}, \"offset\": {}", js(key), at);
            }
        }
        self.files.push(self.entry(t, &name, crc, data.len()) + &extra + "}");
        self.names.insert(name);
        self.last_step = t.step;
        self.in_seq = Some(t.seq.is_some());
        Ok(())
    }

    /// The manifest entry, without its closing brace.
    fn entry(&self, t: &Tensor, name: &str, crc: u32, bytes: usize) -> String {
        let axes: Vec<String> = match t.axes {
            Some(a) => a.iter().map(|s| js(s)).collect(),
            None => t.kind.axes().iter().map(|s| js(s)).collect(),
        };
        let mut e = format!(
            "{{\"file\": {}, \"checkpoint\": {}, \"number\": {}, \"layer\": {}, \"step\": {}, \"pos_start\": {}, \
             \"n_pos\": {}, \"n_key\": {}, \"shape\": {}, \"dtype\": {}, \"axes\": [{}]",
            js(name),
            js(t.kind.name()),
            t.kind.number(),
            t.layer.map_or(-1, |l| l as i64),
            t.step,
            t.pos_start,
            t.n_pos,
            t.n_key,
            int_list(t.shape),
            js(t.data.dtype().name()),
            axes.join(", ")
        );
        if let Some(p) = t.positions {
            e.push_str(&format!(", \"positions\": {}", int_list(p)));
        }
        if let Some(s) = t.seq {
            e.push_str(&format!(", \"seq\": {}", s));
            if let Some(c) = t.cells {
                e.push_str(&format!(", \"cells\": {}", int_list(c)));
            }
        }
        e.push_str(&format!(", \"crc32\": {}, \"bytes\": {}", crc, bytes));
        e
    }

    /// Records that a requested checkpoint does not exist for this model.
    pub fn note_missing(&mut self, kind: Kind, layer: Option<u32>, reason: &str) -> Result<(), Error> {
        self.missing.push(format!(
            "{{\"checkpoint\": {}, \"layer\": {}, \"reason\": {}}}",
            js(kind.name()),
            layer.map_or(-1, |l| l as i64),
            js(reason)
        ));
        Ok(())
    }

    /// Completes the container (if any) and renames it, syncs the files
    /// (with `sync`), then writes manifest.json atomically. `complete`
    /// false marks an interrupted dump; `status` defaults to "ok" /
    /// "incomplete".
    pub fn finish(&mut self, complete: bool, status: Option<&str>) -> Result<(), Error> {
        if self.finished {
            return Err(Error::Invalid("the dump is already finished".into()));
        }
        let run = match &self.run {
            Some(r) => r.clone(),
            None => {
                return Err(Error::Invalid(
                    "set_run was not called: a dump needs its run and tokens".into(),
                ))
            }
        };
        if let Some(c) = self.container.take() {
            let path = self.dir.join("checkpoints.npz");
            let part = c.part.clone();
            let f = c.npz.finish().map_err(|e| match e {
                Error::Io(_, io) => Error::Io(part.display().to_string(), io),
                e => e,
            })?;
            if self.sync {
                f.sync_all().map_err(io_err(&part))?;
            }
            drop(f);
            fs::rename(&part, &path).map_err(io_err(&path))?;
        }
        if self.sync {
            for p in &self.written {
                sync_path(p)?;
            }
            sync_path(&self.dir.join("tokens.npy"))?;
            sync_path(&self.dir)?;
        }
        let version = if self.sequences || self.in_seq == Some(true) {
            crate::FORMAT_VERSION_SEQUENCES
        } else if self.form == Form::Npz {
            crate::FORMAT_VERSION_CONTAINER
        } else {
            crate::FORMAT_VERSION
        };
        let status = status.unwrap_or(if complete { "ok" } else { "incomplete" });
        let mut text = format!(
            "{{\n  \"format\": {},\n  \"format_version\": {},\n  \"complete\": {},\n  \"status\": {}",
            js(crate::FORMAT_NAME),
            version,
            complete,
            js(status)
        );
        if self.form == Form::Npz {
            text.push_str(",\n  \"container\": {\"format\": \"npz\", \"file\": \"checkpoints.npz\"}");
        }
        text.push_str(&run);
        let list = |items: &[String]| {
            if items.is_empty() {
                "[]".to_string()
            } else {
                format!("[\n    {}\n  ]", items.join(",\n    "))
            }
        };
        text.push_str(&format!(",\n  \"files\": {}", list(&self.files)));
        text.push_str(&format!(",\n  \"missing\": {}\n}}\n", list(&self.missing)));
        write_atomic(&self.dir.join("manifest.json"), &[text.as_bytes()], self.sync)?;
        if self.sync {
            sync_path(&self.dir)?;
        }
        self.finished = true;
        Ok(())
    }

    /// Tensors written so far.
    pub fn files(&self) -> usize {
        self.files.len()
    }
}

impl Drop for Writer {
    /// An unfinished container is removed, as the C writer does.
    fn drop(&mut self) {
        if let Some(c) = self.container.take() {
            let part = c.part.clone();
            drop(c);
            let _ = fs::remove_file(part);
        }
    }
}
