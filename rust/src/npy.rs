//! numpy `.npy` headers (version 1.0 written; 1.0, 2.0 and 3.0 read),
//! little-endian, C order.

use crate::Error;

/// The element types of a dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    F32,
    F16,
    I32,
}

impl Dtype {
    /// numpy's descr: "<f4", "<f2", "<i4".
    pub fn descr(self) -> &'static str {
        match self {
            Dtype::F32 => "<f4",
            Dtype::F16 => "<f2",
            Dtype::I32 => "<i4",
        }
    }

    /// The manifest's name: "float32", "float16", "int32".
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "float32",
            Dtype::F16 => "float16",
            Dtype::I32 => "int32",
        }
    }

    /// safetensors' name: "F32", "F16", "I32".
    pub fn safetensors_name(self) -> &'static str {
        match self {
            Dtype::F32 => "F32",
            Dtype::F16 => "F16",
            Dtype::I32 => "I32",
        }
    }

    pub fn size(self) -> usize {
        match self {
            Dtype::F16 => 2,
            _ => 4,
        }
    }

    pub fn from_descr(s: &str) -> Option<Dtype> {
        [Dtype::F32, Dtype::F16, Dtype::I32]
            .iter()
            .copied()
            .find(|d| d.descr() == s)
    }

    pub fn from_name(s: &str) -> Option<Dtype> {
        [Dtype::F32, Dtype::F16, Dtype::I32]
            .iter()
            .copied()
            .find(|d| d.name() == s)
    }

    pub fn from_safetensors_name(s: &str) -> Option<Dtype> {
        [Dtype::F32, Dtype::F16, Dtype::I32]
            .iter()
            .copied()
            .find(|d| d.safetensors_name() == s)
    }
}

/// The .npy header (magic to '\n') of a tensor, exactly as the C library
/// writes it: version 1.0, padded with spaces so that the data starts at a
/// multiple of 64 bytes.
pub fn header(dtype: Dtype, shape: &[usize]) -> Result<Vec<u8>, Error> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = if shape.len() == 1 {
        format!("{},", dims[0])
    } else {
        dims.join(", ")
    };
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}",
        dtype.descr(),
        tuple
    );
    let total = (10 + dict.len() + 1 + 63) / 64 * 64;
    if total - 10 > 0xffff {
        return Err(Error::Invalid(format!(
            "a .npy header for shape {:?} is too long",
            shape
        )));
    }
    let mut h = Vec::with_capacity(total);
    h.extend_from_slice(b"\x93NUMPY\x01\x00");
    h.extend_from_slice(&((total - 10) as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.resize(total - 1, b' ');
    h.push(b'\n');
    Ok(h)
}

/// A parsed .npy header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// Bytes before the data.
    pub data_offset: usize,
}

impl Header {
    /// Elements (product of the shape), None on overflow.
    pub fn count(&self) -> Option<usize> {
        element_count(&self.shape)
    }

    /// Data bytes, None on overflow.
    pub fn data_bytes(&self) -> Option<usize> {
        self.count()?.checked_mul(self.dtype.size())
    }
}

pub(crate) fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// Parses the header at the start of `bytes` (which may be only a prefix
/// of the file, at least the header). Untrusted input: any defect is an
/// error, never a panic.
pub fn parse_header(bytes: &[u8]) -> Result<Header, Error> {
    let bad = |what: &str| Err(Error::Invalid(format!("not a readable .npy: {}", what)));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return bad("no \\x93NUMPY magic");
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 => {
            if bytes.len() < 12 {
                return bad("truncated header");
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12usize,
            )
        }
        v => return bad(&format!("version {}.{}", v, bytes[7])),
    };
    let end = match start.checked_add(len) {
        Some(e) if e <= bytes.len() => e,
        _ => return bad("header longer than the file"),
    };
    let text = match std::str::from_utf8(&bytes[start..end]) {
        Ok(t) => t,
        Err(_) => return bad("header is not text"),
    };
    let dict =
        parse_dict(text).map_err(|e| Error::Invalid(format!("not a readable .npy: header {}: {:.80}", e, text)))?;
    let mut descr = None;
    let mut fortran = None;
    let mut shape = None;
    for (k, v) in dict {
        match (k.as_str(), v) {
            ("descr", Value::Str(s)) => descr = Some(s),
            ("fortran_order", Value::Bool(b)) => fortran = Some(b),
            ("shape", Value::Tuple(t)) => shape = Some(t),
            (k, _) => return bad(&format!("unexpected header entry '{:.40}'", k)),
        }
    }
    let descr = match descr {
        Some(d) => d,
        None => return bad("no descr"),
    };
    let dtype = match Dtype::from_descr(&descr) {
        Some(d) => d,
        None => return bad(&format!("dtype '{:.20}' (only <f4, <f2, <i4 are read)", descr)),
    };
    match fortran {
        Some(false) => {}
        Some(true) => return bad("fortran_order is True (only C order is read)"),
        None => return bad("no fortran_order"),
    }
    let shape = match shape {
        Some(s) => s,
        None => return bad("no shape"),
    };
    let h = Header {
        dtype,
        shape,
        data_offset: end,
    };
    if h.data_bytes().is_none() {
        return bad("shape overflows");
    }
    Ok(h)
}

enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

/// numpy's header: a Python dict literal of strings, booleans and tuples
/// of non-negative integers.
fn parse_dict(text: &str) -> Result<Vec<(String, Value)>, String> {
    let b = text.as_bytes();
    let mut i = 0;
    let skip = |i: &mut usize| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\n' || b[*i] == b'\t') {
            *i += 1;
        }
    };
    let expect = |i: &mut usize, c: u8| -> Result<(), String> {
        skip(i);
        if *i < b.len() && b[*i] == c {
            *i += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, i))
        }
    };
    let string = |i: &mut usize| -> Result<String, String> {
        skip(i);
        let q = match b.get(*i) {
            Some(&q) if q == b'\'' || q == b'"' => q,
            _ => return Err(format!("expected a string at byte {}", i)),
        };
        let s = *i + 1;
        let e = b[s..].iter().position(|&c| c == q).ok_or("unterminated string")? + s;
        *i = e + 1;
        Ok(text[s..e].to_string())
    };
    expect(&mut i, b'{')?;
    let mut out: Vec<(String, Value)> = Vec::new();
    loop {
        skip(&mut i);
        if b.get(i) == Some(&b'}') {
            i += 1;
            break;
        }
        let key = string(&mut i)?;
        if out.iter().any(|(k, _)| *k == key) {
            return Err(format!("'{}' given twice", key));
        }
        expect(&mut i, b':')?;
        skip(&mut i);
        let value = match b.get(i) {
            Some(b'\'') | Some(b'"') => Value::Str(string(&mut i)?),
            Some(b'T') if text[i..].starts_with("True") => {
                i += 4;
                Value::Bool(true)
            }
            Some(b'F') if text[i..].starts_with("False") => {
                i += 5;
                Value::Bool(false)
            }
            Some(b'(') => {
                i += 1;
                let mut dims = Vec::new();
                loop {
                    skip(&mut i);
                    if b.get(i) == Some(&b')') {
                        i += 1;
                        break;
                    }
                    let s = i;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    if s == i {
                        return Err(format!("expected a dimension at byte {}", s));
                    }
                    let d: usize = text[s..i].parse().map_err(|_| "dimension too large".to_string())?;
                    dims.push(d);
                    skip(&mut i);
                    match b.get(i) {
                        Some(b',') => i += 1,
                        Some(b')') => {}
                        _ => return Err(format!("expected ',' or ')' at byte {}", i)),
                    }
                }
                Value::Tuple(dims)
            }
            _ => return Err(format!("unexpected value at byte {}", i)),
        };
        out.push((key, value));
        skip(&mut i);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => {}
            _ => return Err(format!("expected ',' or '}}' at byte {}", i)),
        }
    }
    skip(&mut i);
    if i != b.len() {
        return Err("text after the dict".to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = header(Dtype::F32, &[5, 64]).unwrap();
        assert_eq!(h.len(), 128); // numpy: 10 + 61 + 1 rounded up to 64
        let text = std::str::from_utf8(&h[10..]).unwrap();
        assert!(text.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (5, 64), }"));
        assert!(text.ends_with(" \n"));
        let p = parse_header(&h).unwrap();
        assert_eq!(
            p,
            Header {
                dtype: Dtype::F32,
                shape: vec![5, 64],
                data_offset: 128
            }
        );
        let h1 = header(Dtype::I32, &[7]).unwrap();
        assert!(std::str::from_utf8(&h1[10..]).unwrap().contains("'shape': (7,), }"));
        assert_eq!(parse_header(&h1).unwrap().shape, vec![7]);
        let h0 = header(Dtype::F16, &[]).unwrap();
        assert_eq!(parse_header(&h0).unwrap().shape, Vec::<usize>::new());
    }

    #[test]
    fn bad_headers_are_errors() {
        let good = header(Dtype::F32, &[2, 3]).unwrap();
        for n in 0..good.len() {
            assert!(parse_header(&good[..n]).is_err(), "prefix {}", n);
        }
        let with = |dict: &str| {
            let mut v = b"\x93NUMPY\x01\x00".to_vec();
            v.extend_from_slice(&(dict.len() as u16).to_le_bytes());
            v.extend_from_slice(dict.as_bytes());
            parse_header(&v)
        };
        assert!(with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }").is_ok());
        assert!(with("{'descr':'<f4','fortran_order':False,'shape':(2,3)}").is_ok());
        assert!(with("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }").is_err());
        assert!(with("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }").is_err());
        assert!(with("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }").is_err());
        assert!(with("{'descr': '<f4', 'shape': (2, 3), }").is_err());
        assert!(with("{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3), }").is_err());
        assert!(with("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }").is_err());
        assert!(
            with("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }").is_err()
        );
        assert!(with("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,), }").is_err());
        assert!(with("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } x").is_err());
        assert!(with("{'descr': '<f4").is_err());
        assert!(with("\u{e9}").is_err());
    }
}
