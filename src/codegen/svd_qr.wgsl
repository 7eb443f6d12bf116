// The SVD's QR preconditioning (QR_FLOW): the working matrix (QROWS × COLS, A or Aᵀ) is factored
// as Q·R by Householder reflections in panels of QB columns (Q_k = I − Y_k·T_k·Y_kᵀ, compact WY),
// the Jacobi then orthogonalizes the columns of Rᵀ (COLS × COLS: ROWS = COLS in its stages):
// Rᵀ·J = V·Σ, so A = Q·J·Σ·Vᵀ — U = Q·[J; 0] (the Jacobi's accumulated rotations, through the
// reflections) and V = the Jacobi's normalized columns. The Jacobi converges in fewer sweeps on
// Rᵀ than on A (and runs on COLS rows instead of QROWS).
// In `aux` from QRB: the factor (QROWS × COLS, column-major: R on and above the diagonal, the
// reflections' vectors below it, each with an implicit 1 on the diagonal), then each panel's
// T (QB × QB, row-major), then U (QROWS × COLS, column-major).
// Stages: 9 init (the input into the factor, V = I), 10 a panel's reflections (one workgroup of
// PWG threads, the panel's rows in registers),
// 11 their product with the trailing columns (a workgroup a column), 12 Rᵀ into W, 13 U = [V; 0],
// 14 U ← Q·U (a workgroup a column, through every panel), 15 finalize (pack U | S | Vᵀ).

const QSTAGE: u32 = {QSTAGE}u;
const QWG: u32 = 128u;
const QB: u32 = 16u;

// Where the panels' T matrices and U start in `aux` (functions: in the generic variant the sizes
// are run-time values).
fn qt_base() -> u32 {
    return {QRB} + {QROWS} * {COLS};
}

fn qu_base() -> u32 {
    return qt_base() + {NPANEL} * QB * QB;
}

// Per-thread partial sums of up to QB values (QWG or PWG threads), and their reduction.
var<workgroup> qred: array<f32, 4096>;
var<workgroup> qred2: array<f32, 256>;
var<workgroup> qd: array<f32, 16>;
var<workgroup> qtm: array<f32, 256>;

fn f_at(r: u32, c: u32) -> u32 {
    return {QRB} + c * {QROWS} + r;
}

fn u_at(r: u32, c: u32) -> u32 {
    return qu_base() + c * {QROWS} + r;
}

// Columns in panel k.
fn panel_cols(k: u32) -> u32 {
    return min(QB, {COLS} - k * QB);
}

// Each of `nt` threads' 16 partial sums (in qred[q·nt + lid]) into qd[q]: thread t sums value
// t / (nt / 16) over 16 threads, then 16 threads the nt / 16 parts.
fn reduce16(lid: u32, nt: u32) {
    workgroupBarrier();
    let parts = nt / 16u;
    let q = lid / parts;
    let part = lid % parts;
    var x = 0.0;
    for (var i = 0u; i < 16u; i = i + 1u) {
        x = x + qred[q * nt + part * 16u + i];
    }
    qred2[q * parts + part] = x;
    workgroupBarrier();
    if (lid < 16u) {
        var y = 0.0;
        for (var i = 0u; i < parts; i = i + 1u) {
            y = y + qred2[lid * parts + i];
        }
        qd[lid] = y;
    }
    workgroupBarrier();
}

fn stage_qr_init(g: u32) {
    if (g < {QROWS} * {COLS}) {
        let c = g / {QROWS};
        let r = g % {QROWS};
        aux[f_at(r, c)] = in0[{IN_OFF} + r * {IN_RS} + c * {IN_CS}];
    }
    if (g < {COLS} * {COLS}) {
        v[g] = select(0.0, 1.0, g / {COLS} == g % {COLS});
    }
}

// Panel k's reflections, column by column, with the panel's rows in registers: thread lid keeps
// rows lid + i·PWG (i < PRPT) of the panel's QB columns in `pr` for the whole panel, so a column
// costs one workgroup reduction (three barriers) and no pass over memory. For column c (the
// j-th of the panel) with x its rows c…: one reduction gives, for every panel column q,
// Σ_{r>c} x_r·a_q[r] (q = j: ‖x below the diagonal‖²), and row c's entries a_q[c] come from
// the thread that holds row c. Then α = −sign(x₀)·‖x‖, v = x/(x₀ − α) below the diagonal (an
// implicit 1 on it), τ = (α − x₀)/α, R_cc = α, and d_q = v·a_q = a_q[c] + Σ_{r>c} x_r·a_q[r]/(x₀ − α):
// the later columns are updated by a_q −= τ·d_q·v, and for the earlier ones (which hold their
// reflections' vectors) d_q = Y_qᵀv gives T's column j: T[:j, j] = −τ·T[:j, :j]·d[:j].
const PWG: u32 = 256u;
const PRPT: u32 = {PRPT}u;
var<private> pr: array<array<f32, 16>, {PRPT}>;
var<workgroup> prow: array<f32, 32>;

fn stage_qr_panel(k: u32, lid: u32) {
    let c0 = k * QB;
    let nb = panel_cols(k);
    for (var i = 0u; i < PRPT; i = i + 1u) {
        let r = lid + i * PWG;
        for (var q = 0u; q < 16u; q = q + 1u) {
            var a = 0.0;
            if (r < {QROWS} && q < nb) {
                a = aux[f_at(r, c0 + q)];
            }
            pr[i][q] = a;
        }
    }
    for (var j = 0u; j < nb; j = j + 1u) {
        let c = c0 + j;
        let rb = (j % 2u) * 16u;
        var sums: array<f32, 16>;
        for (var q = 0u; q < 16u; q = q + 1u) {
            sums[q] = 0.0;
        }
        for (var i = 0u; i < PRPT; i = i + 1u) {
            let r = lid + i * PWG;
            var x = 0.0;
            for (var q = 0u; q < 16u; q = q + 1u) {
                if (q == j) {
                    x = pr[i][q];
                }
            }
            if (r > c) {
                for (var q = 0u; q < 16u; q = q + 1u) {
                    sums[q] = sums[q] + x * pr[i][q];
                }
            } else if (r == c) {
                for (var q = 0u; q < 16u; q = q + 1u) {
                    prow[rb + q] = pr[i][q];
                }
            }
        }
        for (var q = 0u; q < 16u; q = q + 1u) {
            qred[q * PWG + lid] = sums[q];
        }
        reduce16(lid, PWG);
        var below = 0.0;
        var top = 0.0;
        for (var q = 0u; q < 16u; q = q + 1u) {
            if (q == j) {
                below = qd[q];
                top = prow[rb + q];
            }
        }
        var tau = 0.0;
        var scale = 0.0;
        var alpha = top;
        if (below > 0.0) {
            let nrm = sqrt(top * top + below);
            alpha = select(nrm, -nrm, top >= 0.0);
            let u0 = top - alpha;
            scale = 1.0 / u0;
            tau = -u0 / alpha;
        }
        var d: array<f32, 16>;
        for (var q = 0u; q < 16u; q = q + 1u) {
            d[q] = prow[rb + q] + scale * qd[q];
        }
        for (var i = 0u; i < PRPT; i = i + 1u) {
            let r = lid + i * PWG;
            if (r >= c) {
                var vr = 1.0;
                for (var q = 0u; q < 16u; q = q + 1u) {
                    if (q == j) {
                        if (r > c) {
                            vr = pr[i][q] * scale;
                            pr[i][q] = vr;
                        } else {
                            pr[i][q] = alpha;
                        }
                    }
                }
                for (var q = 0u; q < 16u; q = q + 1u) {
                    if (q > j) {
                        pr[i][q] = pr[i][q] - tau * d[q] * vr;
                    }
                }
            }
        }
        // T's column j (rows < j from the earlier columns' d).
        if (lid < j) {
            var t = 0.0;
            for (var l = 0u; l < 16u; l = l + 1u) {
                if (l >= lid && l < j) {
                    t = t + qtm[lid * QB + l] * d[l];
                }
            }
            qtm[lid * QB + j] = -tau * t;
        }
        if (lid == 0u) {
            qtm[j * QB + j] = tau;
        }
        for (var i = j + 1u + lid; i < QB; i = i + PWG) {
            qtm[i * QB + j] = 0.0;
        }
    }
    for (var i = 0u; i < PRPT; i = i + 1u) {
        let r = lid + i * PWG;
        for (var q = 0u; q < 16u; q = q + 1u) {
            if (r < {QROWS} && q < nb) {
                aux[f_at(r, c0 + q)] = pr[i][q];
            }
        }
    }
    workgroupBarrier();
    for (var e = lid; e < QB * QB; e = e + PWG) {
        let i = e / QB;
        let l = e % QB;
        aux[qt_base() + k * QB * QB + e] = select(0.0, qtm[e], i < nb && l < nb && l >= i);
    }
}

// Row r of the reflection vector stored in the factor's column cq: 1 on the diagonal, 0 above.
fn y_at(r: u32, cq: u32) -> f32 {
    if (r == cq) {
        return 1.0;
    }
    return select(0.0, aux[f_at(r, cq)], r > cq);
}

// Column `col` of the matrix at `base` (QROWS rows) ← Q_kᵀ·col (`transposed`) or Q_k·col:
// col −= Y·(T or Tᵀ)·(Yᵀ·col). Each thread keeps rows r ≡ lid (mod QWG), so that consecutive
// calls on one column need no barrier between threads for its entries.
fn apply_panel(k: u32, base: u32, col: u32, transposed: bool, lid: u32) {
    let c0 = k * QB;
    let nb = panel_cols(k);
    var dots: array<f32, 16>;
    for (var q = 0u; q < 16u; q = q + 1u) {
        dots[q] = 0.0;
    }
    for (var r = lid; r < {QROWS}; r = r + QWG) {
        if (r < c0) {
            continue;
        }
        let x = aux[base + col * {QROWS} + r];
        for (var q = 0u; q < nb; q = q + 1u) {
            let y = y_at(r, c0 + q);
            dots[q] = dots[q] + y * x;
        }
    }
    for (var q = 0u; q < 16u; q = q + 1u) {
        qred[q * QWG + lid] = dots[q];
    }
    reduce16(lid, QWG);
    // z = T·d (or Tᵀ·d), into qred2.
    let tk = qt_base() + k * QB * QB;
    if (lid < nb) {
        var z = 0.0;
        for (var l = 0u; l < nb; l = l + 1u) {
            let t = select(aux[tk + lid * QB + l], aux[tk + l * QB + lid], transposed);
            z = z + t * qd[l];
        }
        qred2[lid] = z;
    }
    workgroupBarrier();
    for (var r = lid; r < {QROWS}; r = r + QWG) {
        if (r < c0) {
            continue;
        }
        var x = aux[base + col * {QROWS} + r];
        for (var q = 0u; q < nb; q = q + 1u) {
            let y = y_at(r, c0 + q);
            x = x - y * qred2[q];
        }
        aux[base + col * {QROWS} + r] = x;
    }
}

// W (COLS × COLS, the Jacobi's working matrix) = Rᵀ: column c is R's row c.
fn stage_rt(g: u32) {
    if (g < {COLS} * {COLS}) {
        let c = g / {COLS};
        let j = g % {COLS};
        w[g] = select(0.0, aux[f_at(c, j)], j >= c);
    }
}

// U = [V; 0] (QROWS × COLS), before the reflections are applied to it.
fn stage_u_init(g: u32) {
    if (g < {QROWS} * {COLS}) {
        let c = g / {QROWS};
        let r = g % {QROWS};
        aux[u_at(r, c)] = select(0.0, v[c * {COLS} + r], r < {COLS});
    }
}

// Where the factors lie for the packing (`svd_pack.wgsl`): U in `aux` (Q·[J; 0]), V the
// normalized columns of W (the Jacobi on Rᵀ).
fn left(r: u32, p: u32) -> f32 {
    return aux[u_at(r, p)];
}

fn right(c: u32, p: u32) -> f32 {
    return w[p * {COLS} + c];
}

@compute @workgroup_size({QWGS})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let g = wid.x + wid.y * nwg.x;
    if (QSTAGE == 9u) {
        stage_qr_init(g * QWG + lid);
    } else if (QSTAGE == 10u) {
        stage_qr_panel(rnd.r, lid);
    } else if (QSTAGE == 11u) {
        // Trailing column g of the factor ← Q_kᵀ·itself.
        let k = rnd.r;
        if (g >= k * QB + panel_cols(k) && g < {COLS}) {
            apply_panel(k, {QRB}, g, true, lid);
        }
    } else if (QSTAGE == 12u) {
        stage_rt(g * QWG + lid);
    } else if (QSTAGE == 13u) {
        stage_u_init(g * QWG + lid);
    } else if (QSTAGE == 14u) {
        // Column g of U ← Q·itself: every panel's reflections, the last panel's first.
        if (g < {COLS}) {
            for (var k = {NPANEL}; k > 0u; k = k - 1u) {
                apply_panel(k - 1u, qu_base(), g, false, lid);
            }
        }
    } else {
        pack_sv(g, lid, QWG);
    }
}
