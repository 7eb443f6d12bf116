//! Errors are values: shape, axis and device errors, and sizes too large for a device.

#![allow(unused_imports)]

use super::check::*;
use tmath::{Device, Error, JitMode, Tensor};

pub async fn errors_are_values(dev: &Device) {
    let a = Tensor::randn(&[2, 3], 1, dev).unwrap();
    let b = Tensor::randn(&[4, 5], 2, dev).unwrap();
    let v = Tensor::randn(&[3], 3, dev).unwrap();
    let e = expect_err("matmul mismatch", a.matmul(&b));
    assert!(matches!(e, Error::Shape { op: "matmul", .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("matmul") && msg.contains("[2, 3]") && msg.contains("[4, 5]"),
        "{msg}"
    );
    expect_err("matmul 1-D", a.matmul(&v));
    expect_err(
        "matmul batch",
        Tensor::randn(&[2, 2, 3], 1, dev)
            .unwrap()
            .matmul(&Tensor::randn(&[3, 3, 4], 1, dev).unwrap()),
    );
    let e = expect_err("add broadcast", a.add(&b));
    assert!(
        matches!(e, Error::Shape { op: "add", .. }) && e.to_string().contains("[2, 3]"),
        "{e}"
    );
    for (what, r) in [
        ("sum axis", a.sum(&[2], false)),
        ("sum repeated", a.sum(&[1, 1], false)),
        ("mean axis", a.mean(&[5], true)),
        ("softmax axis", a.softmax(2)),
        ("log_softmax axis", a.log_softmax(7)),
        ("transpose", a.transpose(0, 2)),
        ("permute short", a.permute(&[0])),
        ("permute repeated", a.permute(&[0, 0])),
        ("permute range", a.permute(&[0, 2])),
    ] {
        let e = expect_err(what, r);
        assert!(matches!(e, Error::Axis { .. }), "{what}: {e:?}");
    }
    let e = expect_err("reshape", a.reshape(&[4, 2]));
    assert!(
        matches!(e, Error::Shape { op: "reshape", .. }) && e.to_string().contains("[4, 2]"),
        "{e}"
    );
    let e = expect_err("from_vec", Tensor::from_vec(vec![1.0; 5], &[2, 3], dev));
    assert!(
        matches!(
            e,
            Error::Length {
                expected: 6,
                got: 5,
                ..
            }
        ),
        "{e:?}"
    );
    let e = expect_err("svd 1-D", v.svd().map(|_| ()));
    assert!(
        matches!(e, Error::Shape { op: "svd", .. }) && e.to_string().contains("[3]"),
        "{e}"
    );
    expect_err(
        "svd 3-D",
        Tensor::randn(&[2, 2, 2], 1, dev).unwrap().svd().map(|_| ()),
    );
    expect_err(
        "max of empty axis",
        Tensor::from_vec(vec![], &[0, 3], dev)
            .unwrap()
            .max(&[0], false),
    );
    // Operands of different devices.
    let other = Device::cpu().unwrap();
    let c = Tensor::randn(&[2, 3], 1, &other).unwrap();
    let e = expect_err("device mismatch", a.add(&c));
    assert!(matches!(e, Error::DeviceMismatch { .. }), "{e:?}");
    // An error leaves what was already computed intact.
    let ok = a.exp().unwrap();
    let before = read(&ok, &[2, 3]).await;
    expect_err("after", ok.matmul(&b));
    assert_eq!(read(&ok, &[2, 3]).await, before);
}

/// A result larger than the device's biggest buffer is an `Error::TooLarge` at evaluation (the
/// inputs are tiny: an outer sum), and the device keeps working afterwards.
pub async fn too_large_is_an_error(dev: &Device) {
    let Some(limit) = dev.max_tensor_bytes() else {
        return;
    };
    let n = ((limit / 4) as f64).sqrt() as usize + 16;
    let (col, _) = rand_tensor(dev, &[n, 1], 1, -1.0, 1.0);
    let (row, _) = rand_tensor(dev, &[1, n], 2, -1.0, 1.0);
    let big = col.add(&row).unwrap();
    let e = big
        .to_vec_async()
        .await
        .expect_err("a result beyond the buffer limit must fail");
    assert!(matches!(e, Error::TooLarge { .. }), "{e:?}");
    // Nothing is lost: the device still evaluates.
    let s = col.sum(&[0, 1], false).unwrap();
    assert!(read(&s, &[]).await[0].is_finite());
}
