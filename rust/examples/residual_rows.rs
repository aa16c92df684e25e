//! Writes a dump's residual rows read through `Dump::residual`, as
//! tests/test_read_residual.c's `rows` mode does, for
//! tests/read_residual_check.py to compare with numpy:
//!
//!     cargo run --example residual_rows -- DUMP OUT_DIR [SEQ [POS_START N_POS]]
//!
//! For every layer and both residuals: positions POS_START.. (default all
//! of the sequence's tokens) into OUT_DIR/L<layer>_<where>.f32, and the
//! same range less its first and last position into ..._mid.f32 (where:
//! layer_input, ffn_input), little-endian float32. Exits 1 on an error.

use llorch_checkpoint::{Dump, Error, Where};

fn write(dir: &str, layer: u32, w: &str, suffix: &str, rows: &[f32]) -> Result<(), Error> {
    let path = format!("{}/L{}_{}{}.f32", dir, layer, w, suffix);
    let bytes: Vec<u8> = rows.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(&path, bytes).map_err(|e| Error::Io(path, e))
}

fn run(args: &[String]) -> Result<(), Error> {
    let d = Dump::open(&args[0])?;
    let m = d.manifest();
    let seq: Option<u32> = args
        .get(2)
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| u32::try_from(s).ok());
    let (start, n) = match (args.get(3), args.get(4)) {
        (Some(s), Some(n)) => (s.parse::<u64>().unwrap_or(0), n.parse::<usize>().unwrap_or(0)),
        _ => {
            let n = match seq.and_then(|s| m.sequences.iter().find(|q| q.seq == s)) {
                Some(q) => q.tokens.len(),
                None => m.tokens.len(),
            };
            (0, n)
        }
    };
    for layer in 0..m.model.n_layer as u32 {
        for (at, name) in [(Where::LayerInput, "layer_input"), (Where::FfnInput, "ffn_input")] {
            write(&args[1], layer, name, "", &d.residual(layer, at, seq, start, n)?)?;
            if n > 2 {
                write(
                    &args[1],
                    layer,
                    name,
                    "_mid",
                    &d.residual(layer, at, seq, start + 1, n - 2)?,
                )?;
            }
        }
    }
    println!("ok: the Rust reader's residuals of {} positions from {}", n, args[0]);
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: residual_rows DUMP OUT_DIR [SEQ [POS_START N_POS]]");
        std::process::exit(1);
    }
    if let Err(e) = run(&args) {
        eprintln!("residual_rows: {}", e);
        std::process::exit(1);
    }
}
