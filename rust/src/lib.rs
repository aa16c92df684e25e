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

mod gguf;
mod kind;
pub mod npy;
pub mod npz;
mod reader;
mod writer;

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

/// zlib's CRC-32 (the one in `zlib.crc32`; the `crc32fast` crate) of some
/// bytes: the manifest's `crc32` and the zip members' checksums.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Continues a CRC-32 over more bytes (start with 0).
pub fn crc32_update(crc: u32, bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(crc);
    h.update(bytes);
    h.finalize()
}

/// The f32 value of IEEE 754 half-precision bits, as numpy's float16
/// (exact; the `half` crate).
pub fn f16_to_f32(h: u16) -> f32 {
    half::f16::from_bits(h).to_f32()
}

/// The float16 bits nearest to an f32: round to nearest, ties to even, as
/// numpy's `astype(np.float16)` (the `half` crate).
pub fn f32_to_f16(v: f32) -> u16 {
    half::f16::from_f32(v).to_bits()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_known_values() {
        // zlib.crc32(b"123456789") == 0xcbf43926
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32_update(crc32(b"1234"), b"56789"), 0xcbf4_3926);
        assert_eq!(crc32_update(0, b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn f16_known_values() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f32_to_f16(1.0), 0x3c00);
        assert_eq!(f32_to_f16(65520.0), 0x7c00);
        assert_eq!(f32_to_f16(1.0 / 3.0), 0x3555);
        assert_eq!(f32_to_f16(5.960_464_5e-8), 0x0001);
        assert_eq!(f32_to_f16(2.980_232_2e-8), 0x0000); // a tie: to even
        assert_eq!(f32_to_f16(8.940_697e-8), 0x0002); // 1.5 * 2^-24: a tie, to even
        assert_eq!(f32_to_f16(1.000_488_3), 0x3c00); // 1 + 2^-11: a tie, to even

        // NaN stays NaN
        assert_eq!(f32_to_f16(f32::from_bits(0x7fc0_0001)) & 0x7e00, 0x7e00);
        // every finite f16 survives the round trip
        for h in 0..=0xffffu16 {
            if (h >> 10) & 0x1f != 0x1f {
                assert_eq!(f32_to_f16(f16_to_f32(h)), h, "{:#x}", h);
            }
        }
    }
}
