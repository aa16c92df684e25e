//! Writes the known dump of tests/test_rust_writer.c through the Rust
//! writer: the same tensors, computed here independently.
//!
//!     cargo run --example write_known -- DIR npy|npz
//!
//! With LLORCH_KNOWN_PERTURB=1 the last value of layer 1's ffn_out in
//! step 1 is one ulp off: the tests' proof that the comparison can fail.

use llorch_checkpoint::{Form, Kind, Options, Run, Tensor, TensorData, Writer};

const N_LAYER: u32 = 2;
const N_EMBD: usize = 8;
const N_HEAD: usize = 2;
const N_HEAD_KV: usize = 1;
const HEAD_DIM: usize = 4;
const N_VOCAB: usize = 16;

/// The C enum's value of a kind: its place in the table.
fn kind_index(kind: Kind) -> u32 {
    Kind::all().position(|k| k == kind).unwrap() as u32
}

fn seed_of(kind: Kind, layer: i32, step: u32) -> u32 {
    let x = 0x9e37_79b9u32
        ^ (kind_index(kind)
            .wrapping_mul(0x10001)
            .wrapping_add(((layer + 1) as u32).wrapping_mul(131))
            .wrapping_add(step.wrapping_mul(7919))
            .wrapping_add(1));
    if x != 0 {
        x
    } else {
        1
    }
}

fn next(x: &mut u32) -> u32 {
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    *x
}

struct Step {
    step: u32,
    pos: i32,
    t: i32,
}

fn write_one(w: &mut Writer, s: &Step, kind: Kind, layer: Option<u32>, shape: &[usize], f16: bool) {
    let n: usize = shape.iter().product();
    let mut x = seed_of(kind, layer.map_or(-1, |l| l as i32), s.step);
    let mut f = Vec::with_capacity(n);
    let mut h = Vec::with_capacity(n);
    for _ in 0..n {
        let r = next(&mut x);
        if f16 {
            h.push(((r >> 16) & 0xbbff) as u16);
        } else {
            f.push(f32::from_bits(0x3f80_0000 | (r >> 9)) - 1.5);
        }
    }
    if kind == Kind::FfnOut && layer == Some(1) && s.step == 1 && std::env::var("LLORCH_KNOWN_PERTURB").is_ok() {
        let last = f.last_mut().unwrap();
        *last = f32::from_bits(last.to_bits() + 1);
    }
    let data = if f16 { TensorData::F16(&h) } else { TensorData::F32(&f) };
    let t = Tensor::new(kind, layer, s.step, shape, data).rows(s.pos, s.t);
    w.write(&t).unwrap_or_else(|e| panic!("write {}: {}", kind.name(), e));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 || (args[2] != "npy" && args[2] != "npz") {
        eprintln!("usage: write_known DIR npy|npz");
        std::process::exit(2);
    }
    let form = if args[2] == "npz" { Form::Npz } else { Form::Npy };
    let mut w = Writer::create(
        &args[1],
        Options {
            form,
            ..Options::default()
        },
    )
    .expect("open");
    let tokens = [1, 450, 1200, 3000];
    w.set_run(&Run {
        producer: "llorch-checkpoint (Rust) write_known 0.1",
        model_path: Some("known.gguf"),
        model_size: 1234,
        architecture: Some("llama"),
        n_layer: N_LAYER,
        n_embd: N_EMBD as u32,
        n_head: N_HEAD as u32,
        n_head_kv: N_HEAD_KV as u32,
        n_vocab: N_VOCAB as u32,
        tokens: &tokens,
        settings_json: Some(r#"{"threads": 1, "n_ubatch": 3}"#),
        ..Run::default()
    })
    .expect("set_run");
    for il in 0..N_LAYER {
        w.note_missing(Kind::QcurPreRope, Some(il), "the known dump has no RoPE")
            .unwrap();
    }
    for step in 0..2u32 {
        let (t, pos) = if step == 0 { (3usize, 0usize) } else { (1, 3) };
        let k = pos + t;
        let s = Step {
            step,
            pos: pos as i32,
            t: t as i32,
        };
        write_one(&mut w, &s, Kind::Embd, None, &[t, N_EMBD], false);
        for il in 0..N_LAYER {
            let l = Some(il);
            write_one(&mut w, &s, Kind::AttnNorm, l, &[t, N_EMBD], false);
            write_one(&mut w, &s, Kind::Qcur, l, &[t, N_HEAD, HEAD_DIM], false);
            write_one(&mut w, &s, Kind::Kcur, l, &[t, N_HEAD_KV, HEAD_DIM], false);
            write_one(&mut w, &s, Kind::Vcur, l, &[t, N_HEAD_KV, HEAD_DIM], false);
            write_one(&mut w, &s, Kind::CacheK, l, &[k, N_HEAD_KV, HEAD_DIM], true);
            write_one(&mut w, &s, Kind::CacheV, l, &[k, N_HEAD_KV, HEAD_DIM], false);
            write_one(&mut w, &s, Kind::KqSoftMax, l, &[N_HEAD, t, k], false);
            write_one(&mut w, &s, Kind::AttnOutProj, l, &[t, N_EMBD], false);
            write_one(&mut w, &s, Kind::FfnOut, l, &[t, N_EMBD], false);
        }
        write_one(&mut w, &s, Kind::ResultNorm, None, &[t, N_EMBD], false);
        write_one(&mut w, &s, Kind::Logits, None, &[t, N_VOCAB], false);
    }
    w.finish(true, None).expect("finish");
}
