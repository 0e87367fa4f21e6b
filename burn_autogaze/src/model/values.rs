//! Tensors' values on the host.

use burn::tensor::backend::Backend;

/// A tensor's values on the host, as f32 in row-major order (on the CPU
/// backend a copy; on a GPU backend a readback).
pub fn host_values<B: Backend, const D: usize>(t: burn::tensor::Tensor<B, D>) -> Vec<f32> {
    #[cfg(feature = "ndarray")]
    if let Some(values) = ndarray_f32_values(&t) {
        return values;
    }
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("f32 values after the conversion to f32")
}

/// [`host_values`], awaiting the readback instead of blocking on it (on
/// the CPU backend it is ready at once).
pub async fn host_values_async<B: Backend, const D: usize>(
    t: burn::tensor::Tensor<B, D>,
) -> crate::error::Result<Vec<f32>> {
    #[cfg(feature = "ndarray")]
    if let Some(values) = ndarray_f32_values(&t) {
        return Ok(values);
    }
    let data = t.into_data_async().await.map_err(|e| {
        crate::error::AutoGazeError::engine("readback", format!("reading values back: {e:?}"))
    })?;
    Ok(data
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("f32 values after the conversion to f32"))
}

/// An f32 burn-ndarray tensor's values, copied from a view when they lie
/// contiguous in row-major order (None on other backends, dtypes or
/// layouts).
///
/// Why: `into_data` of a tensor whose array is shared (a clone of it is
/// alive, as with a frame the caller keeps) walks ndarray's dynamic-rank
/// element iterator, ~15 ns a value (PERF_LOOP, 2026-11-23: 3 ms of a
/// 224x224 frame's encode); a view of the same values is one `memcpy`.
#[cfg(feature = "ndarray")]
fn ndarray_f32_values<B: Backend, const D: usize>(
    t: &burn::tensor::Tensor<B, D>,
) -> Option<Vec<f32>> {
    use burn::backend::ndarray::NdArrayTensor;
    use burn::tensor::TensorPrimitive;
    let TensorPrimitive::Float(primitive) = t.clone().into_primitive() else {
        return None;
    };
    match (&primitive as &dyn std::any::Any).downcast_ref::<NdArrayTensor>()? {
        NdArrayTensor::F32(storage) => storage.view().as_slice().map(<[f32]>::to_vec),
        _ => None,
    }
}

#[cfg(all(test, feature = "ndarray"))]
mod tests {
    use burn::backend::NdArray;
    use burn::tensor::Tensor;

    use super::{host_values, ndarray_f32_values};

    #[test]
    fn host_values_of_shared_and_strided_ndarray_tensors() {
        let t = Tensor::<NdArray, 2>::from_data(
            [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]],
            &Default::default(),
        );
        let kept = t.clone();
        // Shared and contiguous: the view's copy.
        assert_eq!(
            ndarray_f32_values(&t),
            Some(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
        );
        assert_eq!(host_values(t), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        // A row at an offset: still contiguous.
        assert_eq!(
            host_values(kept.clone().slice([1..2, 0..3])),
            vec![4.0, 5.0, 6.0]
        );
        // Not row-major: no view; into_data's copy in row-major order.
        let transposed = kept.clone().transpose();
        assert_eq!(ndarray_f32_values(&transposed), None);
        assert_eq!(host_values(transposed), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        assert_eq!(
            host_values(kept.slice([0..2, 1..3])),
            vec![2.0, 3.0, 5.0, 6.0]
        );
    }
}
