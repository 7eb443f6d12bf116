//! Matmul with a fused epilogue, from the `matmul.wgsl` template: 16×16 threads per workgroup,
//! each computing TM×TN outputs in registers, K in steps through workgroup memory. The tile
//! class (TM, TN) is picked from the output's size and is part of the structure.

use std::fmt::Write;

use super::{program_code, unravel_fn, KernelDesc, Sizes};

const MATMUL: &str = include_str!("matmul.wgsl");

/// Outputs per thread (rows, cols) for an `m × n` result: 8×8 (128×128 tiles) when both sides
/// are large, else 4×4 (64×64 tiles, less waste on small shapes).
fn tile(m: usize, n: usize) -> (usize, usize) {
    if m >= 512 && n >= 512 {
        (8, 8)
    } else {
        (4, 4)
    }
}

/// The workgroup grid: column tiles, row tiles, batch entries.
pub(super) fn grid(out_shape: &[usize]) -> [usize; 3] {
    let r = out_shape.len();
    let (m, n) = (out_shape[r - 2], out_shape[r - 1]);
    let (tm, tn) = tile(m, n);
    [
        n.div_ceil(16 * tn),
        m.div_ceil(16 * tm),
        out_shape[..r - 2].iter().product(),
    ]
}

pub(super) fn render(
    d: &KernelDesc,
    a: usize,
    b: usize,
    out_shape: &[usize],
    sz: &mut Sizes,
) -> String {
    let r = out_shape.len();
    let (m, n) = (out_shape[r - 2], out_shape[r - 1]);
    let (la, lb) = (&d.slots[a], &d.slots[b]);
    let k = la.shape[la.shape.len() - 1];
    let batch = &out_shape[..r - 2];
    let ba = la.batch_to(batch);
    let bb = lb.batch_to(batch);
    let mut s = unravel_fn("a_base", batch, &ba.strides, ba.offset, sz);
    s += &unravel_fn("b_base", batch, &bb.strides, bb.offset, sz);
    let (epi, eres) = program_code(&d.epilogue, "e", &d.slots, "core", sz);
    let (ms, ns, ks) = (sz.u(m), sz.u(n), sz.u(k));
    let ra = sz.u(la.strides[la.shape.len() - 2]);
    let ca = sz.u(la.strides[la.shape.len() - 1]);
    let rb = sz.u(lb.strides[lb.shape.len() - 2]);
    let cb = sz.u(lb.strides[lb.shape.len() - 1]);
    let (tm, tn) = tile(m, n);
    let (bm, bn, bk) = (16 * tm, 16 * tn, 16);
    let (mut acc, mut fma, mut store) = (String::new(), String::new(), String::new());
    for i in 0..tm {
        let _ = writeln!(
            fma,
            "            let a{i} = tile_a[kk * BM + lid.y + {}u];",
            i * 16
        );
    }
    for j in 0..tn {
        let _ = writeln!(
            fma,
            "            let b{j} = tile_b[kk * BN + lid.x + {}u];",
            j * 16
        );
    }
    for i in 0..tm {
        for j in 0..tn {
            let _ = writeln!(acc, "    var c{i}_{j} = 0.0;");
            let _ = writeln!(fma, "            c{i}_{j} = fma(a{i}, b{j}, c{i}_{j});");
            let _ = writeln!(
                store,
                "    {{\n        let r = row0 + lid.y + {}u;\n        let c = col0 + lid.x + {}u;\n        if (r < {ms} && c < {ns}) {{\n            let gi = batch * {ms} * {ns} + r * {ns} + c;\n            out[gi] = epilogue(gi, c{i}_{j});\n        }}\n    }}",
                i * 16,
                j * 16
            );
        }
    }
    s + &MATMUL
        .replace("{M}", &ms)
        .replace("{N}", &ns)
        .replace("{K}", &ks)
        .replace("{BM}", &bm.to_string())
        .replace("{BN}", &bn.to_string())
        .replace("{BK}", &bk.to_string())
        .replace("{TILE_A}", &(bm * bk).to_string())
        .replace("{TILE_B}", &(bn * bk).to_string())
        .replace("{LOADS_A}", &(bm * bk / 256).to_string())
        .replace("{LOADS_B}", &(bn * bk / 256).to_string())
        .replace("{A}", &format!("in{a}"))
        .replace("{B}", &format!("in{b}"))
        .replace("{ARS}", &ra)
        .replace("{ACS}", &ca)
        .replace("{BRS}", &rb)
        .replace("{BCS}", &cb)
        .replace("{ACC_DECL}", &acc)
        .replace("{FMA}", fma.trim_end())
        .replace("{STORE}", store.trim_end())
        .replace("{EPILOGUE}", &epi)
        .replace("{RESULT}", &eres)
}
