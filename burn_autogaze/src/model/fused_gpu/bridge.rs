//! Burn tensors to the fused engine's buffers and back, without copies: on
//! Burn's wgpu backend a tensor's primitive is a `CubeTensor` on the wgpu
//! runtime, whose buffer the kernels bind directly. The engine is generic
//! over the backend like every engine; these functions recognise the wgpu
//! backend's types at run time and refuse any other.

use std::any::Any;

use burn::backend::wgpu::{CubeTensor, WgpuDevice, WgpuRuntime};
use burn::tensor::{Int, Tensor, TensorPrimitive, backend::Backend};
use cubecl::server::Handle;

use super::NAME;
use crate::error::{AutoGazeError, Result};

/// A wgpu tensor as it sits on the device.
pub type GpuTensor = CubeTensor<WgpuRuntime>;

/// `value` as type `T` when it is one.
fn cast<T: 'static, U: 'static>(value: U) -> Option<T> {
    let boxed: Box<dyn Any> = Box::new(value);
    boxed.downcast::<T>().ok().map(|b| *b)
}

fn not_wgpu(what: &str) -> AutoGazeError {
    AutoGazeError::engine(
        NAME,
        format!("{what} is not on Burn's wgpu backend (the engine runs only there)"),
    )
}

/// The wgpu device behind `device`.
pub fn wgpu_device<B: Backend>(device: &B::Device) -> Option<WgpuDevice> {
    (device as &dyn Any).downcast_ref::<WgpuDevice>().cloned()
}

/// A float tensor's device buffer and layout.
pub fn float_buffer<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<GpuTensor> {
    match t.into_primitive() {
        TensorPrimitive::Float(p) => cast::<GpuTensor, _>(p).ok_or_else(|| not_wgpu("a tensor")),
        TensorPrimitive::QFloat(_) => Err(AutoGazeError::engine(
            NAME,
            "a quantized tensor (the engine reads f32)",
        )),
    }
}

/// `t`'s values as a vector, row-major (a device op: no readback).
pub fn flat<B: Backend, const D: usize>(t: &Tensor<B, D>) -> Tensor<B, 1> {
    t.clone().reshape([t.shape().num_elements()])
}

/// `parts` end to end in one new buffer, concatenated on their device (the
/// engine's packed weights: nothing is read back, so a model builds where
/// the host cannot wait for the device, as in the browser); its handle.
pub fn pack_on_device<B: Backend>(parts: Vec<Tensor<B, 1>>) -> Result<Handle> {
    let t = float_buffer(Tensor::cat(parts, 0))?;
    if !t.is_contiguous() {
        return Err(AutoGazeError::engine(NAME, "packed weights not contiguous"));
    }
    Ok(t.handle)
}

/// An int tensor's device buffer and layout.
pub fn int_buffer<B: Backend, const D: usize>(t: Tensor<B, D, Int>) -> Result<GpuTensor> {
    cast::<GpuTensor, _>(t.into_primitive()).ok_or_else(|| not_wgpu("an int tensor"))
}

/// A float tensor over a device buffer.
pub fn float_tensor<B: Backend, const D: usize>(t: GpuTensor) -> Result<Tensor<B, D>> {
    let p = cast::<B::FloatTensorPrimitive, _>(t).ok_or_else(|| not_wgpu("the backend"))?;
    Ok(Tensor::from_primitive(TensorPrimitive::Float(p)))
}

/// An int tensor over a device buffer.
pub fn int_tensor<B: Backend, const D: usize>(t: GpuTensor) -> Result<Tensor<B, D, Int>> {
    let p = cast::<B::IntTensorPrimitive, _>(t).ok_or_else(|| not_wgpu("the backend"))?;
    Ok(Tensor::from_primitive(p))
}
