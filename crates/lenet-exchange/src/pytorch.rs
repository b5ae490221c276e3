//! PyTorch's `torch.save` format for a `state_dict`, written by hand: burn-store reads these
//! files but does not write them, and no maintained Rust crate does without linking libtorch.
//!
//! The file is a zip archive (stored, not compressed) of
//! * `archive/data.pkl`: a pickle (protocol 2) of an `OrderedDict` whose values are
//!   `torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())` and whose
//!   storages are persistent ids `('storage', torch.FloatStorage, '<n>', 'cpu', numel)`;
//! * `archive/data/<n>`: each storage's little-endian bytes;
//! * `archive/version` (`3`) and `archive/byteorder` (`little`).
//!
//! Only the globals `torch.load(weights_only=True)` allows are used, so the file loads under
//! PyTorch's safe unpickler.

use std::io::{Cursor, Write};

use zip::write::FileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::error::ExchangeError;
use crate::layout::{NamedTensor, Values};

/// The bytes of a `torch.save(state_dict)` file holding `tensors` in this order.
pub fn state_dict_bytes(tensors: &[NamedTensor]) -> Result<Vec<u8>, ExchangeError> {
    let pickle = pickle(tensors)?;
    let zip_err = |e: zip::result::ZipError| ExchangeError::Export(format!("zip: {e}"));
    let io_err = |e: std::io::Error| ExchangeError::Export(format!("zip: {e}"));
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let stored = FileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .large_file(false);
    let mut add = |name: &str, bytes: &[u8]| -> Result<(), ExchangeError> {
        zip.start_file(format!("archive/{name}"), stored)
            .map_err(zip_err)?;
        zip.write_all(bytes).map_err(io_err)
    };
    add("data.pkl", &pickle)?;
    add("byteorder", b"little")?;
    for (n, t) in tensors.iter().enumerate() {
        let bytes: Vec<u8> = match &t.values {
            Values::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        };
        add(&format!("data/{n}"), &bytes)?;
    }
    add("version", b"3\n")?;
    Ok(zip.finish().map_err(zip_err)?.into_inner())
}

// Pickle opcodes (protocol 2).
const PROTO: u8 = 0x80;
const GLOBAL: u8 = b'c';
const EMPTY_TUPLE: u8 = b')';
const REDUCE: u8 = b'R';
const MARK: u8 = b'(';
const TUPLE: u8 = b't';
const BINUNICODE: u8 = b'X';
const BININT: u8 = b'J';
const BINPERSID: u8 = b'Q';
const NEWFALSE: u8 = 0x89;
const SETITEMS: u8 = b'u';
const STOP: u8 = b'.';

struct Pickle(Vec<u8>);

impl Pickle {
    fn op(&mut self, op: u8) {
        self.0.push(op);
    }
    fn global(&mut self, module: &str, name: &str) {
        self.op(GLOBAL);
        self.0
            .extend_from_slice(format!("{module}\n{name}\n").as_bytes());
    }
    fn string(&mut self, s: &str) {
        self.op(BINUNICODE);
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn int(&mut self, v: usize) -> Result<(), ExchangeError> {
        let v = i32::try_from(v)
            .map_err(|_| ExchangeError::Export(format!("{v} does not fit a pickled int")))?;
        self.op(BININT);
        self.0.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn ints(&mut self, values: &[usize]) -> Result<(), ExchangeError> {
        self.op(MARK);
        for &v in values {
            self.int(v)?;
        }
        self.op(TUPLE);
        Ok(())
    }
    /// `collections.OrderedDict()`.
    fn ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.op(EMPTY_TUPLE);
        self.op(REDUCE);
    }
}

fn pickle(tensors: &[NamedTensor]) -> Result<Vec<u8>, ExchangeError> {
    let mut p = Pickle(Vec::new());
    p.op(PROTO);
    p.op(2);
    p.ordered_dict();
    p.op(MARK);
    for (n, t) in tensors.iter().enumerate() {
        let (storage, numel) = match &t.values {
            Values::F32(v) => ("FloatStorage", v.len()),
            Values::I64(v) => ("LongStorage", v.len()),
        };
        if numel != t.shape.iter().product::<usize>() {
            return Err(ExchangeError::Export(format!(
                "{}: {numel} values for shape {:?}",
                t.name, t.shape
            )));
        }
        p.string(&t.name);
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.op(MARK);
        // The storage, by persistent id.
        p.op(MARK);
        p.string("storage");
        p.global("torch", storage);
        p.string(&n.to_string());
        p.string("cpu");
        p.int(numel)?;
        p.op(TUPLE);
        p.op(BINPERSID);
        p.int(0)?; // storage offset
        p.ints(&t.shape)?;
        p.ints(&contiguous_strides(&t.shape))?;
        p.op(NEWFALSE); // requires_grad
        p.ordered_dict(); // backward hooks
        p.op(TUPLE);
        p.op(REDUCE);
    }
    p.op(SETITEMS);
    p.op(STOP);
    Ok(p.0)
}

/// Row-major strides, in elements.
fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strides_are_row_major() {
        assert_eq!(contiguous_strides(&[6, 1, 5, 5]), [25, 25, 5, 1]);
        assert_eq!(contiguous_strides(&[10]), [1]);
        assert!(contiguous_strides(&[]).is_empty());
    }

    #[test]
    fn the_pickle_spells_out_an_ordered_dict_of_tensors() {
        let t = NamedTensor {
            name: "fc.weight".into(),
            shape: vec![2, 3],
            values: Values::F32(vec![0.0; 6]),
        };
        let bytes = pickle(&[t]).unwrap();
        assert_eq!(&bytes[..2], &[PROTO, 2]);
        assert_eq!(*bytes.last().unwrap(), STOP);
        let text = String::from_utf8_lossy(&bytes);
        for needle in [
            "collections\nOrderedDict\n",
            "torch._utils\n_rebuild_tensor_v2\n",
            "torch\nFloatStorage\n",
            "fc.weight",
        ] {
            assert!(text.contains(needle), "{needle:?} missing");
        }
    }

    #[test]
    fn a_shape_that_does_not_fit_its_values_is_refused() {
        let t = NamedTensor {
            name: "x".into(),
            shape: vec![2, 3],
            values: Values::F32(vec![0.0; 5]),
        };
        assert!(pickle(&[t]).is_err());
    }
}
