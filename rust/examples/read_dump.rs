//! Prints every tensor of a dump (or of a plain .npz) read through the
//! Rust reader, one line each, for tests/rust_reader_check.py to compare
//! with numpy:
//!
//!     NAME <TAB> DTYPE <TAB> D0,D1,.. <TAB> CRC32 <TAB> hex bits of every value
//!
//!     cargo run --example read_dump -- DIR          a dump, by its manifest
//!     cargo run --example read_dump -- --npz FILE   any .npz of stored members
//!
//! NAME is the entry's file (npy form) or key (containers); the first line
//! of a dump is "tokens" with tokens.npy. Exits 1 with the error on bad input.

use llorch_checkpoint::{crc32, Array, Data, Dump, Npz};

fn line(name: &str, a: &Array) -> String {
    let dims: Vec<String> = a.shape.iter().map(|d| d.to_string()).collect();
    let vals: Vec<String> = match &a.data {
        Data::F32(v) => v.iter().map(|x| format!("{:08x}", x.to_bits())).collect(),
        Data::F16(v) => v.iter().map(|x| format!("{:04x}", x)).collect(),
        Data::I32(v) => v.iter().map(|x| format!("{:08x}", *x as u32)).collect(),
    };
    format!(
        "{}\t{}\t{}\t{}\t{}",
        name,
        a.dtype.name(),
        dims.join(","),
        crc32(&a.le_bytes()),
        vals.join(" ")
    )
}

fn run(args: &[String]) -> Result<(), llorch_checkpoint::Error> {
    if args.len() == 2 && args[0] == "--npz" {
        let z = Npz::open(&args[1])?;
        for name in z.names() {
            println!("{}", line(name.trim_end_matches(".npy"), &z.get(name)?));
        }
        return Ok(());
    }
    let dump = Dump::open(&args[0])?;
    let m = dump.manifest();
    let tokens = dump.tokens()?;
    if tokens != m.tokens {
        return Err(llorch_checkpoint::Error::Invalid(
            "tokens.npy is not the manifest's tokens".into(),
        ));
    }
    eprintln!(
        "{}: format_version {}, {} tensors, {} tokens, model {:?} n_layer {}",
        args[0],
        m.format_version,
        m.files.len(),
        tokens.len(),
        m.model.architecture,
        m.model.n_layer
    );
    println!(
        "{}",
        line(
            "tokens",
            &llorch_checkpoint::read_npy_file(dump.dir().join("tokens.npy"))?
        )
    );
    for e in dump.entries() {
        // by (checkpoint, layer, step, sequence), as an engine's test would
        let a = dump.get(&e.checkpoint, e.layer, e.step, e.seq)?;
        println!("{}", line(e.key.as_deref().unwrap_or(&e.file), &a));
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.len() > 2 {
        eprintln!("usage: read_dump DIR | read_dump --npz FILE");
        std::process::exit(2);
    }
    if let Err(e) = run(&args) {
        eprintln!("read_dump: {}", e);
        std::process::exit(1);
    }
}
