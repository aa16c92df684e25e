//! The checkpoints a dump holds (docs/FORMAT.md, "File names"), in the
//! order and with the numbers of the C library's table.

/// One kind of tensor. `number()` is the design's checkpoint number (1-6),
/// 0 for extras.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    AttnNorm,
    Qcur,
    Kcur,
    Vcur,
    QcurPreRope,
    KcurPreRope,
    CacheK,
    CacheV,
    KqSoftMax,
    AttnOutProj,
    FfnOut,
    Embd,
    FfnInp,
    LOut,
    ResultNorm,
    Logits,
    QNorm,
    KNorm,
    QcurUnscaled,
    AttnOutFinal,
    FfnOutFinal,
    FfnMoeOut,
    FfnShexpOut,
    FfnDenseOut,
    CacheR,
    CacheS,
}

// (kind, name, number, per_layer, axes)
const TABLE: [(Kind, &str, u32, bool, &str); 26] = [
    (Kind::AttnNorm, "attn_norm", 1, true, "token,channel"),
    (Kind::Qcur, "Qcur", 2, true, "token,head,channel"),
    (Kind::Kcur, "Kcur", 2, true, "token,head,channel"),
    (Kind::Vcur, "Vcur", 2, true, "token,head,channel"),
    (Kind::QcurPreRope, "Qcur_pre_rope", 2, true, "token,head,channel"),
    (Kind::KcurPreRope, "Kcur_pre_rope", 2, true, "token,head,channel"),
    (Kind::CacheK, "cache_k", 3, true, "key,head,channel"),
    (Kind::CacheV, "cache_v", 3, true, "key,head,channel"),
    (Kind::KqSoftMax, "kq_soft_max", 4, true, "head,token,key"),
    (Kind::AttnOutProj, "attn_out_proj", 5, true, "token,channel"),
    (Kind::FfnOut, "ffn_out", 6, true, "token,channel"),
    (Kind::Embd, "embd", 0, false, "token,channel"),
    (Kind::FfnInp, "ffn_inp", 0, true, "token,channel"),
    (Kind::LOut, "l_out", 0, true, "token,channel"),
    (Kind::ResultNorm, "result_norm", 0, false, "token,channel"),
    (Kind::Logits, "logits", 0, false, "token,vocab"),
    (Kind::QNorm, "q_norm", 0, true, "token,head,channel"),
    (Kind::KNorm, "k_norm", 0, true, "token,head,channel"),
    (Kind::QcurUnscaled, "Qcur_unscaled", 0, true, "token,head,channel"),
    (Kind::AttnOutFinal, "attn_out_final", 0, true, "token,channel"),
    (Kind::FfnOutFinal, "ffn_out_final", 0, true, "token,channel"),
    (Kind::FfnMoeOut, "ffn_moe_out", 0, true, "token,channel"),
    (Kind::FfnShexpOut, "ffn_shexp_out", 0, true, "token,channel"),
    (Kind::FfnDenseOut, "ffn_dense_out", 0, true, "token,channel"),
    (Kind::CacheR, "cache_r", 3, true, "state"),
    (Kind::CacheS, "cache_s", 3, true, "state"),
];

impl Kind {
    /// Every kind, in the table's order.
    pub fn all() -> impl Iterator<Item = Kind> {
        TABLE.iter().map(|e| e.0)
    }

    fn entry(self) -> &'static (Kind, &'static str, u32, bool, &'static str) {
        TABLE.iter().find(|e| e.0 == self).expect("every kind is in the table")
    }

    /// The name used in file names and the manifest: "attn_norm", "Qcur", ...
    pub fn name(self) -> &'static str {
        self.entry().1
    }

    /// 1-6, or 0 for extras.
    pub fn number(self) -> u32 {
        self.entry().2
    }

    /// False for the model-level tensors (embd, result_norm, logits).
    pub fn per_layer(self) -> bool {
        self.entry().3
    }

    /// The default numpy axis names: ["token", "channel"], ...
    pub fn axes(self) -> Vec<&'static str> {
        self.entry().4.split(',').collect()
    }

    /// The kind called `name` in a manifest.
    pub fn from_name(name: &str) -> Option<Kind> {
        TABLE.iter().find(|e| e.1 == name).map(|e| e.0)
    }

    /// The `.npy` file name of this checkpoint (docs/FORMAT.md):
    /// `checkpoint_NN_NAME_lLL[_seqQQ]_sSSS.npy`; `layer` None for
    /// model-level tensors.
    pub fn file_name(self, layer: Option<u32>, seq: Option<u32>, step: u32) -> String {
        let mut s = format!("checkpoint_{:02}_{}", self.number(), self.name());
        if let Some(l) = layer {
            s.push_str(&format!("_l{:02}", l));
        }
        if let Some(q) = seq {
            s.push_str(&format!("_seq{:02}", q));
        }
        s.push_str(&format!("_s{:03}.npy", step));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_files() {
        assert_eq!(Kind::all().count(), 26);
        for k in Kind::all() {
            assert_eq!(Kind::from_name(k.name()), Some(k));
        }
        assert_eq!(Kind::from_name("nope"), None);
        assert_eq!(
            Kind::AttnNorm.file_name(Some(0), None, 0),
            "checkpoint_01_attn_norm_l00_s000.npy"
        );
        assert_eq!(Kind::Logits.file_name(None, None, 12), "checkpoint_00_logits_s012.npy");
        assert_eq!(
            Kind::CacheK.file_name(Some(3), Some(2), 1),
            "checkpoint_03_cache_k_l03_seq02_s001.npy"
        );
        assert_eq!(
            Kind::FfnOut.file_name(Some(123), None, 1234),
            "checkpoint_06_ffn_out_l123_s1234.npy"
        );
        assert_eq!(Kind::KqSoftMax.axes(), vec!["head", "token", "key"]);
        assert!(!Kind::Embd.per_layer());
    }
}
