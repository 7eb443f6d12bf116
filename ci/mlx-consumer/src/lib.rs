//! A downstream crate using T-Math on MLX: one small model layer.

use tmath::{Device, Result, Tensor};

/// `gelu(x · w + b)` followed by a softmax over the last axis.
pub fn layer(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    x.matmul(w)?.add(b)?.gelu()?.softmax(1)
}

/// The MLX device.
pub fn device() -> Result<Device> {
    Device::mlx()
}
