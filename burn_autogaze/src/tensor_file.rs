//! Reading tensors out of `.safetensors` files with errors that name the file,
//! the tensor, and the expected versus actual shape and dtype.

use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::error::{AutoGazeError, Result};

/// A `.safetensors` file held in memory.
#[derive(Debug)]
pub struct TensorFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

/// One tensor's shape and values.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor<T> {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub values: Vec<T>,
}

impl TensorFile {
    /// Reads the file (a regular file of at most
    /// [`crate::limits::MAX_WEIGHTS_FILE_BYTES`]) and checks its header.
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = crate::limits::read_file(
            path,
            crate::limits::MAX_WEIGHTS_FILE_BYTES,
            "MAX_WEIGHTS_FILE_BYTES",
        )?;
        Self::from_bytes(path, bytes)
    }

    /// Checks the header of safetensors `bytes` (named `path` in errors).
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self> {
        SafeTensors::deserialize(&bytes).map_err(|e| AutoGazeError::SafeTensors {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
        })
    }

    /// Where the file came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn view(&self) -> SafeTensors<'_> {
        // Validated in `open`.
        SafeTensors::deserialize(&self.bytes)
            .unwrap_or_else(|_| unreachable!("header validated when the file was opened"))
    }

    /// Names of every tensor, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .view()
            .names()
            .into_iter()
            .map(str::to_string)
            .collect();
        names.sort();
        names
    }

    /// Shape and dtype name of a tensor.
    pub fn info(&self, name: &str) -> Result<(Vec<usize>, String)> {
        let view = self.view();
        let t = view.tensor(name).map_err(|_| self.missing(name))?;
        Ok((t.shape().to_vec(), format!("{:?}", t.dtype())))
    }

    fn missing(&self, name: &str) -> AutoGazeError {
        AutoGazeError::MissingTensor {
            name: name.to_string(),
            path: self.path.clone(),
        }
    }

    fn read<T>(
        &self,
        name: &str,
        expected: Option<&[usize]>,
        dtypes: &[Dtype],
        convert: impl Fn(Dtype, &[u8]) -> Vec<T>,
    ) -> Result<HostTensor<T>> {
        let view = self.view();
        let t = view.tensor(name).map_err(|_| self.missing(name))?;
        if !dtypes.contains(&t.dtype()) {
            return Err(AutoGazeError::SafeTensors {
                path: self.path.clone(),
                reason: format!(
                    "tensor {name} has dtype {:?}, expected one of {dtypes:?}",
                    t.dtype()
                ),
            });
        }
        if let Some(expected) = expected
            && t.shape() != expected
        {
            return Err(AutoGazeError::TensorShape {
                name: format!("{name} in {}", self.path.display()),
                expected: expected.to_vec(),
                actual: t.shape().to_vec(),
            });
        }
        Ok(HostTensor {
            shape: t.shape().to_vec(),
            values: convert(t.dtype(), t.data()),
        })
    }

    /// An f32 tensor (f16 and bf16 are widened), optionally checking its shape.
    pub fn f32(&self, name: &str, expected: Option<&[usize]>) -> Result<HostTensor<f32>> {
        self.read(
            name,
            expected,
            &[Dtype::F32, Dtype::F16, Dtype::BF16],
            |dtype, data| match dtype {
                Dtype::F16 => data
                    .chunks_exact(2)
                    .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                    .collect(),
                Dtype::BF16 => data
                    .chunks_exact(2)
                    .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
                    .collect(),
                _ => data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            },
        )
    }

    /// An i64 tensor.
    pub fn i64(&self, name: &str, expected: Option<&[usize]>) -> Result<HostTensor<i64>> {
        self.read(name, expected, &[Dtype::I64], |_, data| {
            data.chunks_exact(8)
                .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect()
        })
    }

    /// A u8 tensor.
    pub fn u8(&self, name: &str, expected: Option<&[usize]>) -> Result<HostTensor<u8>> {
        self.read(name, expected, &[Dtype::U8], |_, data| data.to_vec())
    }
}

/// IEEE half to single precision (exact).
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: value = frac * 2^-24.
            let v = frac as f32 * (1.0 / (1 << 24) as f32);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, _) => sign | 0x7fc0_0000 | (frac << 13),
        _ => sign | ((exp + 112) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_widening_is_exact() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn errors_name_the_file_and_tensor() {
        let dir = std::env::temp_dir().join(format!("ag_tf_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.safetensors");
        let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let view = safetensors::tensor::TensorView::new(Dtype::F32, vec![2, 2], &data).unwrap();
        safetensors::serialize_to_file([("w", view)], None, &path).unwrap();
        let file = TensorFile::open(&path).unwrap();
        assert_eq!(
            file.f32("w", Some(&[2, 2])).unwrap().values,
            vec![1.0, 2.0, 3.0, 4.0]
        );
        let err = file.f32("w", Some(&[4])).unwrap_err().to_string();
        assert!(
            err.contains("w in") && err.contains("[4]") && err.contains("[2, 2]"),
            "{err}"
        );
        let err = file.i64("w", None).unwrap_err().to_string();
        assert!(err.contains("dtype F32"), "{err}");
        let err = file.f32("nope", None).unwrap_err().to_string();
        assert!(
            err.contains("nope") && err.contains("t.safetensors"),
            "{err}"
        );
        std::fs::write(&path, b"garbage").unwrap();
        assert!(TensorFile::open(&path).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
