// Thin SVD by one-sided (Hestenes) Jacobi, entirely on the GPU.
// The working matrix W (ROWS × COLS, column-major) is A, or Aᵀ when A is wide; V starts as I.
// Columns are grouped in blocks of BS (a power of two); a sweep is NB2 - 1 rounds over block
// pairs (round-robin, NB2 = the block count rounded up to even), one dispatch per round and one
// workgroup per block pair. The round here (stage 1) rotates the columns through memory; on
// hardware adapters the round through the pair's Gram matrix (`svd_gram.wgsl`: stage 6, or its
// split form, stages 7 and 8) takes its place, with the same pairing and test. Inside a workgroup here the pair's columns are rotated in inner rounds of BS
// disjoint column pairs, LANES = 256 / BS threads per column pair: the first round of a sweep
// rotates every pair of its two blocks (2·BS - 1 inner rounds, so every block's own pairs are
// visited once per sweep), the others only the BS² pairs across the two blocks (BS inner
// rounds). A sweep thus visits every column pair once, in NB2 - 1 dispatches instead of
// COLS - 1.
// The convergence test runs on the GPU: counter[0] counts the rotations of the current sweep,
// and the check stage after each sweep sets counter[1] once a sweep rotated nothing; from then
// on every rotation round returns at once. The host reads counter[1] now and then (natively)
// or never (browsers), so it need not wait for every sweep.
// Stages: 0 init, 1 rotate (one round through memory), 2 normalize, 3 complete (orthonormal
// basis for zero singular values), 4 finalize (sort descending, pack U | S | Vᵀ), 5 check (after
// a sweep).

// Sizes (ROWS, COLS, ...) are literals in a specialized kernel and reads of the metadata
// uniform in a generic one. Columns count as orthogonal once |cos| <= ROT_TOL: a few ulps of
// an f32 dot product of ROWS terms.
const STAGE: u32 = {STAGE}u;
const WG: u32 = 256u;

var<workgroup> red: array<vec3<f32>, 256>;

fn wg_sum3(x: vec3<f32>, lid: u32) -> vec3<f32> {
    red[lid] = x;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red[lid] = red[lid] + red[lid + s];
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn stage_init(g: u32) {
    if (g < {ROWS} * {COLS}) {
        let c = g / {ROWS};
        let r = g % {ROWS};
        w[g] = in0[{IN_OFF} + r * {IN_RS} + c * {IN_CS}];
    }
    if (g < {COLS} * {COLS}) {
        v[g] = select(0.0, 1.0, g / {COLS} == g % {COLS});
    }
}

// Column `l` (< 2·BS) of the block pair (bi, bj): the first BS in block bi, the rest in bj.
fn block_col(l: u32, bi: u32, bj: u32) -> u32 {
    if (l < {BS}) {
        return bi * {BS} + l;
    }
    return bj * {BS} + (l - {BS});
}

// One round: workgroup g rotates the columns of block pair g of round rnd.r.
fn stage_rotate(g: u32, lid: u32) {
    if (lid == 0u) {
        converged = atomicLoad(&counter[1]);
    }
    if (workgroupUniformLoad(&converged) != 0u) {
        return;
    }
    let bp = pair_of(rnd.r, g, {NB2});
    let p = lid / {LANES};
    let lane = lid % {LANES};
    let full = rnd.r == 0u;
    let inner = select({BS}, 2u * {BS} - 1u, full);
    for (var q = 0u; q < inner; q = q + 1u) {
        var ci: u32;
        var cj: u32;
        if (full) {
            let lp = pair_of(q, p, 2u * {BS});
            ci = block_col(lp.x, bp.x, bp.y);
            cj = block_col(lp.y, bp.x, bp.y);
        } else {
            ci = bp.x * {BS} + p;
            cj = bp.y * {BS} + (p + q) % {BS};
        }
        let i = min(ci, cj);
        let j = max(ci, cj);
        let valid = j < {COLS};
        var part = vec3<f32>(0.0);
        if (valid) {
            for (var r = lane; r < {ROWS}; r = r + {LANES}) {
                let a = w[i * {ROWS} + r];
                let b = w[j * {ROWS} + r];
                part = part + vec3<f32>(a * a, b * b, a * b);
            }
        }
        // The pair's sums: a tree over its LANES threads.
        red[lid] = part;
        workgroupBarrier();
        for (var s = {LANES} / 2u; s > 0u; s = s >> 1u) {
            if (lane < s) {
                red[lid] = red[lid] + red[lid + s];
            }
            workgroupBarrier();
        }
        let sums = red[p * {LANES}];
        // Every thread of the pair computes the same rotation from the same sums.
        if (valid && rotates(sums)) {
            let cs = rotation(sums);
            let c = cs.x;
            let s = cs.y;
            if (lane == 0u) {
                atomicAdd(&counter[0], 1u);
            }
            for (var r = lane; r < {ROWS}; r = r + {LANES}) {
                let a = w[i * {ROWS} + r];
                let b = w[j * {ROWS} + r];
                w[i * {ROWS} + r] = c * a - s * b;
                w[j * {ROWS} + r] = s * a + c * b;
            }
            for (var r = lane; r < {COLS}; r = r + {LANES}) {
                let a = v[i * {COLS} + r];
                let b = v[j * {COLS} + r];
                v[i * {COLS} + r] = c * a - s * b;
                v[j * {COLS} + r] = s * a + c * b;
            }
        }
        // The next inner round reads columns this one wrote, and reuses `red`.
        storageBarrier();
        workgroupBarrier();
    }
}

// After a sweep (one invocation): a sweep without rotations ends the iteration.
fn stage_check(lid: u32) {
    if (lid == 0u) {
        let rotations = atomicExchange(&counter[0], 0u);
        if (rotations == 0u) {
            atomicStore(&counter[1], 1u);
        }
    }
}

// Column c: σ = ‖W_c‖/‖V_c‖ and both columns normalized. The rotations, each orthogonal only to
// a few ulps, let ‖V_c‖ drift from 1 (by ~1e-5 after a few thousand of them); W = A·V holds to
// rounding all along, so dividing V_c and σ by the same ‖V_c‖ keeps A = U·Σ·Vᵀ and makes V's
// columns unit vectors again.
fn stage_normalize(c: u32, lid: u32) {
    var part = vec3<f32>(0.0);
    for (var r = lid; r < {ROWS}; r = r + WG) {
        let a = w[c * {ROWS} + r];
        part.x = part.x + a * a;
    }
    for (var r = lid; r < {COLS}; r = r + WG) {
        let b = v[c * {COLS} + r];
        part.y = part.y + b * b;
    }
    let sums = wg_sum3(part, lid);
    let wnorm = sqrt(sums.x);
    let vnorm = sqrt(sums.y);
    let sigma = wnorm / vnorm;
    if (lid == 0u) {
        aux[c] = sigma;
    }
    if (wnorm > 0.0) {
        for (var r = lid; r < {ROWS}; r = r + WG) {
            w[c * {ROWS} + r] = w[c * {ROWS} + r] / wnorm;
        }
    }
    for (var r = lid; r < {COLS}; r = r + WG) {
        v[c * {COLS} + r] = v[c * {COLS} + r] / vnorm;
    }
}

var<workgroup> wtol: f32;
var<workgroup> wgood: f32;
var<workgroup> best_score: array<f32, 256>;
var<workgroup> best_index: array<u32, 256>;

// One workgroup. Columns whose singular value is below round-off (σ ≤ σ_max·max(m,n)·ε) get a
// unit vector orthogonal to all other columns, so U (or Vᵀ) stays orthonormal for
// rank-deficient input. aux[COLS + q] marks columns already orthonormal; aux[2·COLS + q] holds
// projection coefficients. For each such column: start from the unit vector e_t with the largest
// component outside the span of the good columns (at least 1/ROWS of it), then classical
// Gram–Schmidt twice (CGS2), then normalize.
fn stage_complete(lid: u32) {
    if (lid == 0u) {
        var mx = 0.0;
        for (var q = 0u; q < {COLS}; q = q + 1u) {
            mx = max(mx, aux[q]);
        }
        wtol = mx * f32(max({M}, {N})) * 1.2e-7;
    }
    let tol = workgroupUniformLoad(&wtol);
    for (var q = lid; q < {COLS}; q = q + WG) {
        aux[{COLS} + q] = select(0.0, 1.0, aux[q] > tol);
    }
    storageBarrier();
    for (var p = 0u; p < {COLS}; p = p + 1u) {
        if (lid == 0u) {
            wgood = aux[{COLS} + p];
        }
        if (workgroupUniformLoad(&wgood) > 0.5) {
            continue;
        }
        // The best starting unit vector.
        var score = -1.0;
        var index = 0u;
        for (var t = lid; t < {ROWS}; t = t + WG) {
            var inside = 0.0;
            for (var q = 0u; q < {COLS}; q = q + 1u) {
                if (aux[{COLS} + q] > 0.5) {
                    let x = w[q * {ROWS} + t];
                    inside = inside + x * x;
                }
            }
            if (1.0 - inside > score) {
                score = 1.0 - inside;
                index = t;
            }
        }
        best_score[lid] = score;
        best_index[lid] = index;
        workgroupBarrier();
        for (var s = WG / 2u; s > 0u; s = s >> 1u) {
            if (lid < s && best_score[lid + s] > best_score[lid]) {
                best_score[lid] = best_score[lid + s];
                best_index[lid] = best_index[lid + s];
            }
            workgroupBarrier();
        }
        let e = best_index[0];
        for (var r = lid; r < {ROWS}; r = r + WG) {
            w[p * {ROWS} + r] = select(0.0, 1.0, r == e);
        }
        storageBarrier();
        for (var twice = 0u; twice < 2u; twice = twice + 1u) {
            for (var q = lid; q < {COLS}; q = q + WG) {
                var d = 0.0;
                if (aux[{COLS} + q] > 0.5 && q != p) {
                    for (var r = 0u; r < {ROWS}; r = r + 1u) {
                        d = d + w[q * {ROWS} + r] * w[p * {ROWS} + r];
                    }
                }
                aux[2u * {COLS} + q] = d;
            }
            storageBarrier();
            for (var r = lid; r < {ROWS}; r = r + WG) {
                var x = w[p * {ROWS} + r];
                for (var q = 0u; q < {COLS}; q = q + 1u) {
                    x = x - aux[2u * {COLS} + q] * w[q * {ROWS} + r];
                }
                w[p * {ROWS} + r] = x;
            }
            storageBarrier();
        }
        var part = vec3<f32>(0.0);
        for (var r = lid; r < {ROWS}; r = r + WG) {
            let a = w[p * {ROWS} + r];
            part.x = part.x + a * a;
        }
        let nrm = sqrt(wg_sum3(part, lid).x);
        for (var r = lid; r < {ROWS}; r = r + WG) {
            w[p * {ROWS} + r] = w[p * {ROWS} + r] / nrm;
        }
        if (lid == 0u) {
            aux[{COLS} + p] = 1.0;
        }
        storageBarrier();
    }
}

// Where the factors lie for the packing (`svd_pack.wgsl`): the working matrix's columns, once
// normalized, are its left singular vectors; the accumulated rotations its right ones.
fn left(r: u32, p: u32) -> f32 {
    return w[p * {ROWS} + r];
}

fn right(c: u32, p: u32) -> f32 {
    return v[p * {COLS} + c];
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.x + wid.y * nwg.x;
    if (STAGE == 0u) {
        stage_init(g * WG + lid);
    } else if (STAGE == 1u) {
        stage_rotate(g, lid);
    } else if (STAGE == 2u) {
        stage_normalize(g, lid);
    } else if (STAGE == 3u) {
        stage_complete(lid);
    } else if (STAGE == 4u) {
        pack_sv(g, lid, WG);
    } else {
        stage_check(lid);
    }
}
