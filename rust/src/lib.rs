//! Write and read llorch checkpoint dumps (the format of
//! `docs/FORMAT.md` in llorch-checkpoint-extractor): a directory of
//! `.npy` files, or one `checkpoints.npz` / `checkpoints.safetensors`,
//! plus `tokens.npy` and `manifest.json`.
//!
//! Writing, from a Rust inference engine:
//!
//! ```no_run
//! use llorch_checkpoint::{Form, Kind, Options, Run, Tensor, Writer};
//! let mut w = Writer::create("dump", Options { form: Form::Npy, ..Options::default() })?;
//! let tokens = [1, 450, 1200];
//! w.set_run(&Run { producer: "my-engine 0.1", architecture: Some("llama"), n_layer: 2, n_embd: 8,
//!                  n_head: 2, n_head_kv: 1, n_vocab: 32000, tokens: &tokens, ..Run::default() })?;
//! let x = vec![0.0f32; 3 * 8];
//! w.write(&Tensor::f32(Kind::AttnNorm, Some(0), 0, &[3, 8], &x))?;
//! w.finish(true, None)?;
//! # Ok::<(), llorch_checkpoint::Error>(())
//! ```
//!
//! Reading:
//!
//! ```no_run
//! let dump = llorch_checkpoint::Dump::open("dump")?;
//! let a = dump.get("attn_norm", Some(0), 0, None)?;
//! println!("{:?} {}", a.shape, a.to_f32()[0]);
//! # Ok::<(), llorch_checkpoint::Error>(())
//! ```

mod crc32;
mod f16;
mod gguf;
mod kind;
pub mod npy;
mod reader;
mod writer;
pub mod zip;

pub use crate::crc32::{crc32, crc32_update};
pub use crate::f16::{f16_to_f32, f32_to_f16};
pub use crate::gguf::{fingerprint_valid, gguf_fingerprint, FINGERPRINT_SCHEME};
pub use crate::kind::Kind;
pub use crate::npy::Dtype;
pub use crate::reader::{read_npy_file, Array, Data, Dump, Entry, Manifest, Missing, Model, Npz, Sequence, Where};
pub use crate::writer::{Fed, Form, Options, Run, RunSequence, Tensor, TensorData, Writer};

/// The format's name and versions (docs/FORMAT.md).
pub const FORMAT_NAME: &str = "llorch-checkpoint-dump";
pub const FORMAT_VERSION: u32 = 1;
pub const FORMAT_VERSION_CONTAINER: u32 = 2;
pub const FORMAT_VERSION_SEQUENCES: u32 = 3;

/// Every failure of this crate: an I/O error with the path, or input that
/// does not follow the format (or a call that breaks the writer's rules).
#[derive(Debug)]
pub enum Error {
    Io(String, std::io::Error),
    Invalid(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(what, e) => write!(f, "{}: {}", what, e),
            Error::Invalid(s) => write!(f, "{}", s),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(_, e) => Some(e),
            Error::Invalid(_) => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io("I/O error".into(), e)
    }
}

pub(crate) fn io_err(what: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Io(what.display().to_string(), e)
}
