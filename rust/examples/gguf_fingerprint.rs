//! Prints the model fingerprint of each GGUF file given (docs/FORMAT.md,
//! "The model fingerprint"), one "FINGERPRINT  PATH" line each; exit 1 on
//! the first file that is not a whole GGUF file.
//!
//!     cargo run --example gguf_fingerprint -- model.gguf ...

fn main() {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: gguf_fingerprint MODEL.gguf...");
        std::process::exit(2);
    }
    for p in &paths {
        match llorch_checkpoint::gguf_fingerprint(p) {
            Ok(fp) => println!("{}  {}", fp, p),
            Err(e) => {
                eprintln!("error: {}", e);
                std::process::exit(1);
            }
        }
    }
}
