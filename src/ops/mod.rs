//! The user-facing op methods of [`Tensor`](crate::Tensor), one family per file: argument and
//! shape checks, then a node. What each op computes (its reference, WGSL, MLX mapping) is in
//! `crate::ir`; the elementwise and reduction methods are generated from its lists.

mod binary;
mod linalg;
mod matmul;
mod movement;
mod reduce;
mod select;
mod softmax;
mod unary;
