//! Matmul with a fused epilogue, from the `matmul.wgsl` template: 16×16 threads per workgroup,
//! each computing TM×TN outputs in registers (vec4 rows read from workgroup memory as vec4s),
//! K in steps through workgroup memory, each operand copied in along its unit-stride dimension.
//! The tile class (TM, TN) is picked from the output's size and, with the copy orders, is part of
//! the structure.

use std::fmt::Write;

use super::{program_code, unravel_fn, KernelDesc, Sizes};

const MATMUL: &str = include_str!("matmul.wgsl");

/// Outputs per thread (rows, cols) for a batch of `batch` `m × n` results: 8×8 (128×128 tiles)
/// when that still gives at least 256 workgroups (enough to fill a large GPU twice over), else
/// 4×4 (64×64 tiles: four times the workgroups, less waste on small shapes).
fn tile(m: usize, n: usize, batch: usize) -> (usize, usize) {
    if m >= 128 && n >= 128 && m.div_ceil(128) * n.div_ceil(128) * batch >= 256 {
        (8, 8)
    } else {
        (4, 4)
    }
}

/// The workgroup grid: column tiles, row tiles, batch entries.
pub(super) fn grid(out_shape: &[usize]) -> [usize; 3] {
    let r = out_shape.len();
    let (m, n) = (out_shape[r - 2], out_shape[r - 1]);
    let (tm, tn) = tile(m, n, out_shape[..r - 2].iter().product());
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
    let (a_rs, a_cs) = (
        la.strides[la.shape.len() - 2],
        la.strides[la.shape.len() - 1],
    );
    let (b_rs, b_cs) = (
        lb.strides[lb.shape.len() - 2],
        lb.strides[lb.shape.len() - 1],
    );
    let (tm, tn) = tile(m, n, batch.iter().product());
    let (bm, bn, bk) = (16 * tm, 16 * tn, 16);
    // Copy orders: consecutive threads walk the operand's unit-stride dimension. A k-major
    // store (A read along k, B read along k) writes with a stride of the tile pitch, so those
    // tiles get 4 floats of padding per row against bank conflicts.
    let a_along_k = a_cs <= a_rs;
    let b_along_n = b_cs <= b_rs;
    let sa = bm + if a_along_k { 4 } else { 0 };
    let sb = bn + if b_along_n { 0 } else { 4 };
    let (ra, ca, rb, cb) = (sz.u(a_rs), sz.u(a_cs), sz.u(b_rs), sz.u(b_cs));
    // Element l of this thread's share of each tile: e = tid + 256·l, mapped to (outer, k) of the
    // operand (outer: A's row, B's column) in its copy order; fetched from memory into a
    // register, then put into the tile (k-major).
    let (mut fetch_decl, mut fetch, mut fetch_next, mut put) =
        (String::new(), String::new(), String::new(), String::new());
    let operands = [
        // (name, slot, base, tile, pitch, outer tile, outer start, outer size, strides, along k)
        (
            "a",
            a,
            "abase",
            "tile_a",
            "SA",
            "BM",
            "row0",
            &ms,
            (&ra, &ca),
            a_along_k,
            bm,
        ),
        (
            "b",
            b,
            "bbase",
            "tile_b",
            "SB",
            "BN",
            "col0",
            &ns,
            (&cb, &rb),
            !b_along_n,
            bn,
        ),
    ];
    for (x, slot, base, tile, pitch, bo, o0, osize, (so, sk), along_k, outer) in operands {
        for l in 0..outer * bk / 256 {
            let e = format!("(tid + {}u)", l * 256);
            let (o, k) = if along_k {
                (format!("{e} / BK"), format!("{e} % BK"))
            } else {
                (format!("{e} % {bo}"), format!("{e} / {bo}"))
            };
            let _ = writeln!(
                fetch_decl,
                "    var f{x}{l} = 0.0;\n    let o{x}{l} = {o};\n    let k{x}{l} = {k};"
            );
            for (code, k0) in [(&mut fetch, "0u"), (&mut fetch_next, "kn")] {
                let _ = writeln!(
                    code,
                    "    f{x}{l} = 0.0;\n    if ({o0} + o{x}{l} < {osize} && {k0} + k{x}{l} < {ks}) {{ f{x}{l} = in{slot}[{base} + ({o0} + o{x}{l}) * {so} + ({k0} + k{x}{l}) * {sk}]; }}"
                );
            }
            let _ = writeln!(
                put,
                "        {{ let t = k{x}{l} * {pitch} + o{x}{l}; {tile}[t / 4u][t % 4u] = f{x}{l}; }}"
            );
        }
    }
    // Thread (tx, ty) owns rows g·(BM/GM) + 4·ty + i and columns h·(BN/GN) + 4·tx + c.
    let (gm, gn) = (tm / 4, tn / 4);
    let (mut acc, mut fma, mut store) = (String::new(), String::new(), String::new());
    for g in 0..gm {
        let _ = writeln!(
            fma,
            "            let a{g} = tile_a[(kk * SA + lid.y * 4u + {}u) / 4u];",
            g * bm / gm
        );
    }
    for h in 0..gn {
        let _ = writeln!(
            fma,
            "            let b{h} = tile_b[(kk * SB + lid.x * 4u + {}u) / 4u];",
            h * bn / gn
        );
    }
    for g in 0..gm {
        for i in 0..4 {
            for h in 0..gn {
                let _ = writeln!(acc, "    var c{g}_{i}_{h} = vec4<f32>(0.0);");
                let _ = writeln!(
                    fma,
                    "            c{g}_{i}_{h} = fma(vec4<f32>(a{g}[{i}]), b{h}, c{g}_{i}_{h});"
                );
                for c in 0..4 {
                    let _ = writeln!(
                        store,
                        "    {{\n        let r = row0 + lid.y * 4u + {};\n        let c = col0 + lid.x * 4u + {};\n        if (r < {ms} && c < {ns}) {{\n            out[batch * {ms} * {ns} + r * {ns} + c] = c{g}_{i}_{h}[{c}];\n        }}\n    }}",
                        format_args!("{}u", g * bm / gm + i),
                        format_args!("{}u", h * bn / gn + c),
                    );
                }
            }
        }
    }
    // A fused epilogue runs in one loop over the thread's outputs, reading back the values it
    // has just stored (its own writes, so no barrier): written once instead of once per output,
    // which keeps the shader (and its compile time) small whatever the epilogue holds.
    if !matches!(d.epilogue.insts.as_slice(), [crate::schedule::Inst::Core]) {
        let _ = write!(
            store,
            "
    for (var q = 0u; q < {outs}u; q = q + 1u) {{
        let c4 = q % 4u;
        let h = (q / 4u) % {gn}u;
        let i = (q / {four_gn}u) % 4u;
        let g = q / {sixteen_gn}u;
        let r = row0 + lid.y * 4u + g * {row_step}u + i;
        let c = col0 + lid.x * 4u + h * {col_step}u + c4;
        if (r < {ms} && c < {ns}) {{
            let gi = batch * {ms} * {ns} + r * {ns} + c;
            out[gi] = epilogue(gi, out[gi]);
        }}
    }}",
            outs = tm * tn,
            four_gn = 4 * gn,
            sixteen_gn = 16 * gn,
            row_step = bm / gm,
            col_step = bn / gn,
        );
    }
    s + &MATMUL
        .replace("{M}", &ms)
        .replace("{N}", &ns)
        .replace("{K}", &ks)
        .replace("{BM}", &bm.to_string())
        .replace("{BN}", &bn.to_string())
        .replace("{BK}", &bk.to_string())
        .replace("{SA}", &sa.to_string())
        .replace("{SB}", &sb.to_string())
        .replace("{TILE_A4}", &(sa * bk / 4).to_string())
        .replace("{TILE_B4}", &(sb * bk / 4).to_string())
        .replace("{FETCH_DECL}", fetch_decl.trim_end())
        .replace("{FETCH_NEXT}", fetch_next.trim_end())
        .replace("{FETCH}", fetch.trim_end())
        .replace("{PUT}", put.trim_end())
        .replace("{ACC_DECL}", &acc)
        .replace("{FMA}", fma.trim_end())
        .replace("{STORE}", store.trim_end())
        .replace("{EPILOGUE}", &epi)
        .replace("{RESULT}", &eres)
}
