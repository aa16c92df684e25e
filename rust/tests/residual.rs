//! `Dump::residual` on dumps written here (one step, token by token with a
//! position repeated in a later step, f16 files, listed positions, several
//! sequences), against the rows computed directly; and the "fed" object.
//! Real extractor dumps are checked against numpy by tests/rust_cases.sh
//! (residual-vs-numpy).

use llorch_checkpoint::{f16_to_f32, f32_to_f16, Dump, Fed, Form, Kind, Options, Run, Tensor, Where, Writer};
use std::path::PathBuf;

const N_EMBD: usize = 3;
const N_LAYER: u32 = 2;

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("llorch-rust-residual-{}-{}", std::process::id(), name));
    let _ = std::fs::remove_dir_all(&p);
    p
}

/// The value of (checkpoint number, layer, position, channel), distinct everywhere.
fn value(which: usize, layer: u32, pos: usize, c: usize) -> f32 {
    (which * 1000 + layer as usize * 100 + pos * 10 + c) as f32 * 0.5 + 0.25
}

fn rows(which: usize, layer: u32, positions: &[usize]) -> Vec<f32> {
    positions
        .iter()
        .flat_map(|&p| (0..N_EMBD).map(move |c| value(which, layer, p, c)))
        .collect()
}

/// (kind, layer in the file, which) of every residual tensor.
fn residuals() -> Vec<(Kind, Option<u32>, usize)> {
    let mut v = vec![(Kind::Embd, None, 0)];
    for l in 0..N_LAYER {
        v.push((Kind::FfnInp, Some(l), 1));
        v.push((Kind::LOut, Some(l), 2));
    }
    v
}

fn run<'a>(tokens: &'a [i32], fed: Option<Fed<'a>>) -> Run<'a> {
    Run {
        producer: "residual-test",
        architecture: Some("llama"),
        n_layer: N_LAYER,
        n_embd: N_EMBD as u32,
        n_head: 1,
        n_head_kv: 1,
        n_vocab: 9,
        tokens,
        fed,
        ..Run::default()
    }
}

fn writer(dir: &PathBuf, form: Form) -> Writer {
    Writer::create(
        dir,
        Options {
            form,
            sync: false,
            ..Options::default()
        },
    )
    .unwrap()
}

/// steps: the positions of each step; f16: residuals as float16.
fn write_dump(dir: &PathBuf, form: Form, steps: &[Vec<usize>], f16: bool) {
    let tokens = [1, 2, 3, 4, 5];
    let mut w = writer(dir, form);
    w.set_run(&run(&tokens, None)).unwrap();
    for (step, pos) in steps.iter().enumerate() {
        for &(kind, layer, which) in &residuals() {
            let l = layer.unwrap_or(0);
            let data = rows(which, l, pos);
            let shape = [pos.len(), N_EMBD];
            let half: Vec<u16> = data.iter().map(|&x| f32_to_f16(x)).collect();
            let t = if f16 {
                Tensor::f16(kind, layer, step as u32, &shape, &half)
            } else {
                Tensor::f32(kind, layer, step as u32, &shape, &data)
            };
            w.write(&t.at(pos[0] as i32)).unwrap();
        }
    }
    w.finish(true, None).unwrap();
}

fn expect(which: usize, layer: u32, positions: &[usize], f16: bool) -> Vec<f32> {
    let v = rows(which, layer, positions);
    if f16 {
        v.iter().map(|&x| f16_to_f32(f32_to_f16(x))).collect()
    } else {
        v
    }
}

fn check_all(d: &Dump, f16: bool, lo: usize, hi: usize) {
    let pos: Vec<usize> = (lo..hi).collect();
    for layer in 0..N_LAYER {
        let input = d
            .residual(layer, Where::LayerInput, None, lo as u64, pos.len())
            .unwrap();
        let want = if layer == 0 {
            expect(0, 0, &pos, f16)
        } else {
            expect(2, layer - 1, &pos, f16)
        };
        assert_eq!(input, want, "layer {} input", layer);
        let ffn = d.residual(layer, Where::FfnInput, None, lo as u64, pos.len()).unwrap();
        assert_eq!(ffn, expect(1, layer, &pos, f16), "layer {} ffn_inp", layer);
    }
}

#[test]
fn one_step_and_token_by_token_give_the_same_rows() {
    for (name, form, steps) in [
        ("one", Form::Npy, vec![vec![0, 1, 2, 3, 4]]),
        ("tokens", Form::Npz, vec![vec![0, 1], vec![2], vec![3], vec![4]]),
        ("npz-steps", Form::Npz, vec![vec![0, 1, 2], vec![3, 4]]),
    ] {
        let dir = tmp(name);
        write_dump(&dir, form, &steps, false);
        let d = Dump::open(&dir).unwrap();
        check_all(&d, false, 0, 5);
        check_all(&d, false, 1, 4);
        check_all(&d, false, 2, 2);
        let e = d.residual(1, Where::LayerInput, None, 3, 3).unwrap_err().to_string();
        assert!(
            e.contains("no l_out of layer 0 (the input of layer 1) at position 5 (1 of the 3 positions 3-5 asked are missing); it holds positions 0-4"),
            "{}",
            e
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn f16_files_are_widened_exactly() {
    let dir = tmp("f16");
    write_dump(&dir, Form::Npy, &[vec![0, 1, 2], vec![3, 4]], true);
    check_all(&Dump::open(&dir).unwrap(), true, 0, 5);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_latest_step_wins_and_listed_positions_count() {
    let dir = tmp("latest");
    let tokens = [1, 2, 3, 4, 5];
    let mut w = writer(&dir, Form::Npy);
    w.set_run(&run(&tokens, None)).unwrap();
    let shape = [5, N_EMBD];
    let first = rows(0, 0, &[0, 1, 2, 3, 4]);
    w.write(&Tensor::f32(Kind::Embd, None, 0, &shape, &first)).unwrap();
    // step 1 holds positions 1 and 3 again (listed), with other values
    let again: Vec<f32> = rows(0, 0, &[1, 3]).iter().map(|x| -x).collect();
    let listed = [1, 3];
    let mut t = Tensor::f32(Kind::Embd, None, 1, &[2, N_EMBD], &again).at(1);
    t.positions = Some(&listed);
    w.write(&t).unwrap();
    w.finish(true, None).unwrap();
    let d = Dump::open(&dir).unwrap();
    let got = d.residual(0, Where::LayerInput, None, 0, 5).unwrap();
    let mut want = first.clone();
    want[N_EMBD..2 * N_EMBD].copy_from_slice(&again[..N_EMBD]);
    want[3 * N_EMBD..4 * N_EMBD].copy_from_slice(&again[N_EMBD..]);
    assert_eq!(got, want);
    let e = d.residual(0, Where::FfnInput, None, 0, 1).unwrap_err().to_string();
    assert!(e.contains("holds no ffn_inp of layer 0 (the FFN's input)"), "{}", e);
    let e = d.residual(7, Where::LayerInput, None, 0, 1).unwrap_err().to_string();
    assert!(e.contains("layer 7 is out of range"), "{}", e);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn several_sequences_need_a_sequence() {
    let dir = tmp("seqs");
    let (t0, t1) = ([1, 2, 3], [4, 5]);
    let all = [1, 2, 3, 4, 5];
    let seqs = [
        llorch_checkpoint::RunSequence {
            seq: 0,
            tokens: &t0,
            prompt: None,
        },
        llorch_checkpoint::RunSequence {
            seq: 1,
            tokens: &t1,
            prompt: None,
        },
    ];
    let mut w = writer(&dir, Form::Npz);
    w.set_run(&Run {
        sequences: &seqs,
        ..run(&all, None)
    })
    .unwrap();
    let r0 = rows(0, 0, &[0, 1, 2]);
    let r1 = rows(0, 1, &[0, 1]);
    w.write(&Tensor::f32(Kind::Embd, None, 0, &[3, N_EMBD], &r0).in_seq(0, None))
        .unwrap();
    w.write(&Tensor::f32(Kind::Embd, None, 0, &[2, N_EMBD], &r1).in_seq(1, None))
        .unwrap();
    w.finish(true, None).unwrap();
    let d = Dump::open(&dir).unwrap();
    assert_eq!(d.residual(0, Where::LayerInput, Some(1), 0, 2).unwrap(), r1);
    assert_eq!(
        d.residual(0, Where::LayerInput, Some(0), 1, 2).unwrap(),
        r0[N_EMBD..].to_vec()
    );
    let e = d.residual(0, Where::LayerInput, None, 0, 1).unwrap_err().to_string();
    assert!(e.contains("holds 2 sequences"), "{}", e);
    let e = d.residual(0, Where::LayerInput, Some(1), 0, 3).unwrap_err().to_string();
    assert!(
        e.contains("no embd of sequence 1 (the input of layer 0) at position 2"),
        "{}",
        e
    );
    assert!(d.residual(0, Where::LayerInput, Some(4), 0, 1).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_fed_object_is_written_and_checked() {
    let dir = tmp("fed");
    let tokens = [1, 2];
    let fp = "sha256-sampled-v1:00ff";
    let fed = Fed {
        from: "ref-dump",
        producer: "llorch-checkpoint-extractor 0.1.0",
        fingerprint: Some(fp),
        at: &["embd", "l_out", "ffn_inp"],
        layers: &[0, 1],
    };
    let mut w = writer(&dir, Form::Npy);
    w.set_run(&run(&tokens, Some(fed.clone()))).unwrap();
    w.finish(true, None).unwrap();
    let d = Dump::open(&dir).unwrap();
    let f = &d.manifest().json["fed"];
    assert_eq!(f["from"], "ref-dump");
    assert_eq!(f["producer"], "llorch-checkpoint-extractor 0.1.0");
    assert_eq!(f["fingerprint"], fp);
    assert_eq!(f["at"], serde_json::json!(["embd", "l_out", "ffn_inp"]));
    assert_eq!(f["layers"], serde_json::json!([0, 1]));
    let _ = std::fs::remove_dir_all(&dir);
    // no fingerprint: null; a wrong "at" is refused
    let dir = tmp("fed-null");
    let mut w = writer(&dir, Form::Npy);
    w.set_run(&run(
        &tokens,
        Some(Fed {
            fingerprint: None,
            ..fed.clone()
        }),
    ))
    .unwrap();
    w.finish(true, None).unwrap();
    assert!(Dump::open(&dir).unwrap().manifest().json["fed"]["fingerprint"].is_null());
    let _ = std::fs::remove_dir_all(&dir);
    let dir = tmp("fed-bad");
    let mut w = writer(&dir, Form::Npy);
    let e = w
        .set_run(&run(
            &tokens,
            Some(Fed {
                at: &["attn_norm"],
                ..fed
            }),
        ))
        .unwrap_err()
        .to_string();
    assert!(e.contains("fed.at"), "{}", e);
    let _ = std::fs::remove_dir_all(&dir);
}
