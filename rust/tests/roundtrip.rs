//! The writer and the reader together, and the writer's refusals.

use llorch_checkpoint::{Data, Dump, Form, Kind, Npz, Options, Run, Tensor, Writer};
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("llorch-rust-{}-{}", std::process::id(), name));
    let _ = std::fs::remove_dir_all(&p);
    p
}

fn run(tokens: &[i32]) -> Run<'_> {
    Run {
        producer: "roundtrip",
        architecture: Some("llama"),
        n_layer: 1,
        n_embd: 4,
        n_head: 1,
        n_head_kv: 1,
        n_vocab: 6,
        tokens,
        settings_json: Some(r#"{"n_ubatch": 2}"#),
        ..Run::default()
    }
}

fn write(dir: &PathBuf, form: Form) {
    let mut w = Writer::create(
        dir,
        Options {
            form,
            sync: false,
            ..Options::default()
        },
    )
    .unwrap();
    w.set_run(&run(&[5, 1, 3])).unwrap();
    let a: Vec<f32> = (0..8).map(|i| i as f32 * 0.25 - 1.0).collect();
    let k: Vec<u16> = vec![0x3c00, 0xc000, 0x3555, 0x0001];
    let l: Vec<f32> = (0..6).map(|i| -(i as f32)).collect();
    w.write(&Tensor::f32(Kind::AttnNorm, Some(0), 0, &[2, 4], &a)).unwrap();
    w.write(&Tensor::f16(Kind::CacheK, Some(0), 0, &[2, 1, 2], &k).rows(0, 2))
        .unwrap();
    w.write(&Tensor::f32(Kind::Logits, None, 1, &[1, 6], &l).at(2)).unwrap();
    w.note_missing(Kind::QcurPreRope, Some(0), "none").unwrap();
    w.finish(true, None).unwrap();
}

#[test]
fn npy_and_npz_read_back() {
    for form in [Form::Npy, Form::Npz] {
        let dir = tmp(form.name());
        write(&dir, form);
        let d = Dump::open(&dir).unwrap();
        let m = d.manifest();
        assert_eq!(m.format_version, if form == Form::Npz { 2 } else { 1 });
        assert!(m.complete);
        assert_eq!(m.tokens, vec![5, 1, 3]);
        assert_eq!(d.tokens().unwrap(), vec![5, 1, 3]);
        assert_eq!(m.model.n_vocab, 6);
        assert_eq!(m.settings["n_ubatch"], 2);
        assert_eq!(m.missing.len(), 1);
        let a = d.get("attn_norm", Some(0), 0, None).unwrap();
        assert_eq!(a.shape, vec![2, 4]);
        assert_eq!(a.as_f32().unwrap()[5], 0.25);
        let e = d.find("attn_norm", Some(0), 0, None).unwrap();
        assert_eq!((e.n_pos, e.n_key), (2, 0));
        let k = d.get("cache_k", Some(0), 0, None).unwrap();
        assert_eq!(k.data, Data::F16(vec![0x3c00, 0xc000, 0x3555, 0x0001]));
        assert_eq!(k.to_f32()[1], -2.0);
        assert_eq!(d.find("cache_k", Some(0), 0, None).unwrap().n_key, 2);
        let l = d.get("logits", None, 1, None).unwrap();
        assert_eq!(l.to_f32(), vec![0.0, -1.0, -2.0, -3.0, -4.0, -5.0]);
        assert_eq!(d.find("logits", None, 1, None).unwrap().pos_start, 2);
        assert!(d.get("logits", None, 0, None).is_err());
        if form == Form::Npz {
            let z = Npz::open(dir.join("checkpoints.npz")).unwrap();
            assert_eq!(z.names().len(), 3);
        }
        let leftovers: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".part"))
            .collect();
        assert!(leftovers.is_empty(), "{:?}", leftovers);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn writer_refuses_misuse() {
    let dir = tmp("misuse");
    let mut w = Writer::create(
        &dir,
        Options {
            sync: false,
            ..Options::default()
        },
    )
    .unwrap();
    w.set_run(&run(&[1])).unwrap();
    let a = [0f32; 4];
    assert!(
        w.write(&Tensor::f32(Kind::AttnNorm, Some(0), 1, &[2, 3], &a)).is_err(),
        "shape holds 6"
    );
    assert!(
        w.write(&Tensor::f32(Kind::AttnNorm, Some(0), 1, &[4], &a)).is_err(),
        "one axis for two names"
    );
    assert!(
        w.write(&Tensor::f32(Kind::Logits, Some(0), 1, &[1, 4], &a)).is_err(),
        "logits have no layer"
    );
    w.write(&Tensor::f32(Kind::AttnNorm, Some(0), 1, &[1, 4], &a)).unwrap();
    assert!(
        w.write(&Tensor::f32(Kind::AttnNorm, Some(0), 1, &[1, 4], &a)).is_err(),
        "written twice"
    );
    assert!(
        w.write(&Tensor::f32(Kind::AttnNorm, Some(1), 0, &[1, 4], &a)).is_err(),
        "step out of order"
    );
    assert!(w
        .set_run(&Run {
            settings_json: Some("[1]"),
            ..run(&[1])
        })
        .is_err());
    drop(w);
    assert!(!dir.join("manifest.json").exists(), "no manifest without finish");
    assert!(
        Dump::open(&dir).is_err(),
        "a directory without manifest.json is not a dump"
    );
    assert!(Writer::create(&dir, Options::default()).is_err(), "not empty");
    std::fs::remove_dir_all(&dir).unwrap();
    // an unfinished npz leaves no container behind
    let dir = tmp("unfinished");
    {
        let mut w = Writer::create(
            &dir,
            Options {
                form: Form::Npz,
                sync: false,
                ..Options::default()
            },
        )
        .unwrap();
        w.set_run(&run(&[1])).unwrap();
        w.write(&Tensor::f32(Kind::AttnNorm, Some(0), 0, &[1, 4], &a)).unwrap();
    }
    assert!(!dir.join("checkpoints.npz.part").exists());
    assert!(!dir.join("checkpoints.npz").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reader_refuses_bad_dumps() {
    let dir = tmp("bad");
    write(&dir, Form::Npy);
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    let file = dir.join("checkpoint_01_attn_norm_l00_s000.npy");
    let good = std::fs::read(&file).unwrap();
    // every truncation of a tensor file, and a flipped data byte
    for n in 0..good.len() {
        std::fs::write(&file, &good[..n]).unwrap();
        let d = Dump::open(&dir).unwrap();
        assert!(d.get("attn_norm", Some(0), 0, None).is_err(), "truncated to {}", n);
    }
    let mut flipped = good.clone();
    *flipped.last_mut().unwrap() ^= 1;
    std::fs::write(&file, &flipped).unwrap();
    let err = Dump::open(&dir)
        .unwrap()
        .get("attn_norm", Some(0), 0, None)
        .unwrap_err();
    assert!(err.to_string().contains("CRC-32"), "{}", err);
    std::fs::write(&file, &good).unwrap();
    // manifests: truncated, another version, a path as file name, ...
    for n in (0..manifest.len()).step_by(7) {
        std::fs::write(dir.join("manifest.json"), &manifest[..n]).unwrap();
        assert!(Dump::open(&dir).is_err(), "manifest truncated to {}", n);
    }
    for (from, to) in [
        ("\"format_version\": 1", "\"format_version\": 4"),
        (
            "\"file\": \"checkpoint_01_attn_norm_l00_s000.npy\"",
            "\"file\": \"../x.npy\"",
        ),
        ("\"dtype\": \"float32\"", "\"dtype\": \"float64\""),
        ("\"shape\": [2, 4]", "\"shape\": [2, -4]"),
        ("\"layer\": 0", "\"layer\": -7"),
    ] {
        assert!(manifest.contains(from), "{}", from);
        std::fs::write(dir.join("manifest.json"), manifest.replacen(from, to, 1)).unwrap();
        assert!(Dump::open(&dir).is_err(), "{}", to);
    }
    // a shape the file does not hold
    std::fs::write(
        dir.join("manifest.json"),
        manifest.replacen("\"shape\": [2, 4]", "\"shape\": [4, 2]", 1),
    )
    .unwrap();
    assert!(Dump::open(&dir).unwrap().get("attn_norm", Some(0), 0, None).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn model_fingerprint_written_and_read() {
    let dir = tmp("fingerprint");
    let fp = format!("{}:{}", llorch_checkpoint::FINGERPRINT_SCHEME, "0a".repeat(32));
    let mut w = Writer::create(&dir, Options::default()).unwrap();
    for bad in ["not one", "sha256-sampled-v1:ABC", ":00", "x:"] {
        assert!(
            w.set_run(&Run {
                model_fingerprint: Some(bad),
                ..run(&[1])
            })
            .is_err(),
            "{:?} refused",
            bad
        );
    }
    w.set_run(&Run {
        model_fingerprint: Some(&fp),
        ..run(&[1])
    })
    .unwrap();
    w.write(&Tensor::f32(Kind::AttnNorm, Some(0), 0, &[1, 4], &[1.0, 2.0, 3.0, 4.0]))
        .unwrap();
    w.finish(true, None).unwrap();
    let d = Dump::open(&dir).unwrap();
    assert_eq!(d.manifest().model.fingerprint.as_deref(), Some(fp.as_str()));
    assert!(
        llorch_checkpoint::gguf_fingerprint(dir.join("manifest.json")).is_err(),
        "not a GGUF file"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
