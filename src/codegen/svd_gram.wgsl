// One rotation round of the one-sided block Jacobi SVD through the block pair's Gram matrix.
// Workgroup g takes block pair g of round rnd.r: its P = 2·BS columns of W (and of V).
//  1. The pair's Gram matrix G = W_pᵀ·W_p (P × P), fresh from the columns: rows staged through
//     workgroup memory in chunks of CR (column-major, padded), each of RGN row groups of threads
//     (4 with 256 threads and P = 32) summing 4 × 4 tiles of G over its rows, the groups' tiles
//     then added in workgroup memory. The layout serves workgroups of 256 to 1,024 threads (WG,
//     from the kernel's description; the driver takes 256).
//  2. The pairs whose columns are not orthogonal to ROT_TOL by G count as the sweep's rotations
//     (the convergence test); none, and the round leaves the pair as it is.
//  3. Inner rounds on G alone, in workgroup memory (no pass over the rows): P / 2 disjoint column
//     pairs each, their rotations from G's entries, G ← JᵀGJ (each rotated pair's entry set to
//     0, its diagonal by the two-by-two formula) and Q ← Q·J, Q starting as I. The sweep's first
//     round visits every pair of the P columns (P − 1 inner rounds, so every block's own pairs
//     are visited once per sweep), the others only the BS² pairs across the two blocks (BS inner
//     rounds).
//  4. W_p ← W_p·Q and V_p ← V_p·Q, one row per thread at a time.
// G's later inner rounds work on updated entries rather than fresh dot products: their
// rounding grows with the rotation angles, so it fades as the columns converge, and every
// round's convergence test (step 2) uses fresh ones.

const P: u32 = {GP}u;
const BS: u32 = {GBS}u;
const WG: u32 = {GWG}u;
// Rows per chunk, and the padded column stride of a chunk in vec4 (CR / 4 + 1: conflict-free).
const CR: u32 = 64u;
const CS4: u32 = CR / 4u + 1u;
// 4 × 4 tiles per side of G, TP² of them; threads summing them in RGN row groups.
const TP: u32 = P / 4u;
const GT: u32 = TP * TP;
const RGN: u32 = min(WG / GT, CR / 4u);
// Elements of a chunk each thread loads.
const PER: u32 = CR * P / WG;
// Elements of G (and of Q) each thread updates in an inner round (at least one slot).
const PE: u32 = (P * P + WG - 1u) / WG;

// A chunk of rows (column-major, stride CS4 vec4), later Q (row-major, P/4 vec4 a row).
var<workgroup> tile: array<vec4<f32>, {TILE4}>;
var<workgroup> gram: array<f32, {GP2}>;
// Per column of the pair in an inner round: (own coefficient, partner's) in J, the partner.
var<workgroup> coef: array<vec2<f32>, {GP}>;
var<workgroup> partner: array<u32, {GP}>;
var<workgroup> found: atomic<u32>;
var<workgroup> nfound: u32;

// Column l of the pair: block x's first, then block y's.
fn pair_col(l: u32, bp: vec2<u32>) -> u32 {
    if (l < BS) {
        return bp.x * BS + l;
    }
    return bp.y * BS + (l - BS);
}

// Element e of the chunk of rows from r0 (column e / CR, row e % CR of the chunk), 0 outside W.
fn chunk_elem(e: u32, r0: u32, bp: vec2<u32>) -> f32 {
    let c = pair_col(e / CR, bp);
    let r = r0 + e % CR;
    if (c < {COLS} && r < {ROWS}) {
        return w[c * {ROWS} + r];
    }
    return 0.0;
}

// Row r of column c of W (r < ROWS) or of V (row r − ROWS); 0 outside both.
fn wv_get(c: u32, r: u32) -> f32 {
    if (c < {COLS}) {
        if (r < {ROWS}) {
            return w[c * {ROWS} + r];
        }
        if (r < {ROWS} + {COLS}) {
            return v[c * {COLS} + r - {ROWS}];
        }
    }
    return 0.0;
}

fn wv_set(c: u32, r: u32, x: f32) {
    if (c < {COLS}) {
        if (r < {ROWS}) {
            w[c * {ROWS} + r] = x;
        } else if (r < {ROWS} + {COLS}) {
            v[c * {COLS} + r - {ROWS}] = x;
        }
    }
}

fn q_get(r: u32, c: u32) -> f32 {
    let e = r * P + c;
    return tile[e / 4u][e % 4u];
}

fn q_set(r: u32, c: u32, x: f32) {
    let e = r * P + c;
    tile[e / 4u][e % 4u] = x;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let g = wid.x + wid.y * nwg.x;
    if (lid == 0u) {
        converged = atomicLoad(&counter[1]);
        atomicStore(&found, 0u);
    }
    if (workgroupUniformLoad(&converged) != 0u) {
        return;
    }
    let nb = ({COLS} + BS - 1u) / BS;
    let bp = pair_of(rnd.r, g, nb + (nb & 1u));

    // 1. The Gram matrix: thread (tile ta, tb; row group rg) sums rows a = ta + TP·i, columns
    // b = tb + TP·j (i, j < 4) over rows 4·(rg + 4k) .. of each chunk.
    let gl = lid % GT;
    let rg = lid / GT;
    let ta = gl / TP;
    let tb = gl % TP;
    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i = i + 1u) {
        acc[i] = vec4<f32>(0.0);
    }
    // Each chunk's rows are loaded into registers while the previous chunk is summed.
    var ld: array<f32, PER>;
    for (var k = 0u; k < PER; k = k + 1u) {
        ld[k] = chunk_elem(lid + WG * k, 0u, bp);
    }
    for (var r0 = 0u; r0 < {ROWS}; r0 = r0 + CR) {
        for (var k = 0u; k < PER; k = k + 1u) {
            let e = lid + WG * k;
            let rr = e % CR;
            tile[(e / CR) * CS4 + rr / 4u][rr % 4u] = ld[k];
        }
        workgroupBarrier();
        if (r0 + CR < {ROWS}) {
            for (var k = 0u; k < PER; k = k + 1u) {
                ld[k] = chunk_elem(lid + WG * k, r0 + CR, bp);
            }
        }
        if (rg < RGN) {
            for (var q = rg; q < CR / 4u; q = q + RGN) {
                var av: array<vec4<f32>, 4>;
                for (var i = 0u; i < 4u; i = i + 1u) {
                    av[i] = tile[(ta + TP * i) * CS4 + q];
                }
                for (var j = 0u; j < 4u; j = j + 1u) {
                    let bv = tile[(tb + TP * j) * CS4 + q];
                    for (var i = 0u; i < 4u; i = i + 1u) {
                        acc[i][j] = acc[i][j] + dot(av[i], bv);
                    }
                }
            }
        }
        workgroupBarrier();
    }
    // The row groups' tiles meet in G: the last group writes, the others add in turn.
    for (var s = RGN; s > 0u; s = s - 1u) {
        if (rg == s - 1u) {
            for (var i = 0u; i < 4u; i = i + 1u) {
                for (var j = 0u; j < 4u; j = j + 1u) {
                    let e = (ta + TP * i) * P + tb + TP * j;
                    var x = acc[i][j];
                    if (s < RGN) {
                        x = x + gram[e];
                    }
                    gram[e] = x;
                }
            }
        }
        workgroupBarrier();
    }

    // 2. The pairs to rotate, by the fresh G.
    var count = 0u;
    for (var k = 0u; k < PE; k = k + 1u) {
        let e = lid + WG * k;
        let a = e / P;
        let b = e % P;
        if (e < P * P && a < b && rotates(vec3<f32>(gram[a * P + a], gram[b * P + b], gram[e]))) {
            count = count + 1u;
        }
    }
    if (count > 0u) {
        atomicAdd(&found, count);
    }
    workgroupBarrier();
    if (lid == 0u) {
        nfound = atomicLoad(&found);
    }
    let total = workgroupUniformLoad(&nfound);
    if (total == 0u) {
        return;
    }
    if (lid == 0u) {
        atomicAdd(&counter[0], total);
    }
    // Q = I.
    for (var k = 0u; k < PE; k = k + 1u) {
        let e = lid + WG * k;
        if (e < P * P) {
            q_set(e / P, e % P, select(0.0, 1.0, e / P == e % P));
        }
    }
    workgroupBarrier();

    // 3. Inner rounds on G and Q.
    let first = rnd.r == 0u;
    let inner = select(BS, P - 1u, first);
    for (var iq = 0u; iq < inner; iq = iq + 1u) {
        if (lid < P / 2u) {
            var ij: vec2<u32>;
            if (first) {
                ij = pair_of(iq, lid, P);
            } else {
                ij = vec2<u32>(lid, BS + (lid + iq) % BS);
            }
            let i = min(ij.x, ij.y);
            let j = max(ij.x, ij.y);
            let t = vec3<f32>(gram[i * P + i], gram[j * P + j], gram[i * P + j]);
            if (rotates(t)) {
                let cs = rotation(t);
                coef[i] = vec2<f32>(cs.x, -cs.y);
                coef[j] = vec2<f32>(cs.x, cs.y);
                partner[i] = j;
                partner[j] = i;
            } else {
                coef[i] = vec2<f32>(1.0, 0.0);
                coef[j] = vec2<f32>(1.0, 0.0);
                partner[i] = i;
                partner[j] = j;
            }
        }
        workgroupBarrier();
        var gn: array<f32, PE>;
        var qn: array<f32, PE>;
        for (var k = 0u; k < PE; k = k + 1u) {
            let e = lid + WG * k;
            if (e < P * P) {
                let a = e / P;
                let b = e % P;
                let ca = coef[a];
                let cb = coef[b];
                let pa = partner[a];
                let pb = partner[b];
                var x: f32;
                if (pa != a && pa == b) {
                    // The rotated pair's own entry: annihilated.
                    x = 0.0;
                } else if (pa != a && a == b) {
                    // Its diagonal: G_ii − t·G_ij and G_jj + t·G_ij.
                    x = gram[e] + ca.y / ca.x * gram[a * P + pa];
                } else {
                    x = ca.x * (cb.x * gram[e] + cb.y * gram[a * P + pb])
                        + ca.y * (cb.x * gram[pa * P + b] + cb.y * gram[pa * P + pb]);
                }
                gn[k] = x;
                // Q·J: entry (a, b) of Q is row a, column b.
                qn[k] = cb.x * q_get(a, b) + cb.y * q_get(a, pb);
            }
        }
        workgroupBarrier();
        for (var k = 0u; k < PE; k = k + 1u) {
            let e = lid + WG * k;
            if (e < P * P) {
                gram[e] = gn[k];
                q_set(e / P, e % P, qn[k]);
            }
        }
        workgroupBarrier();
    }

    // 4. W_p ← W_p·Q and V_p ← V_p·Q: rows 0 … ROWS − 1 of W, then COLS of V, two rows per
    // thread at a time (both rows' loads in flight together).
    var cols: array<u32, P>;
    for (var l = 0u; l < P; l = l + 1u) {
        cols[l] = pair_col(l, bp);
    }
    for (var r = lid; r < {ROWS} + {COLS}; r = r + 2u * WG) {
        let r2 = r + WG;
        var x: array<f32, P>;
        var x2: array<f32, P>;
        for (var l = 0u; l < P; l = l + 1u) {
            x[l] = wv_get(cols[l], r);
            x2[l] = wv_get(cols[l], r2);
        }
        for (var m4 = 0u; m4 < P / 4u; m4 = m4 + 1u) {
            var y = vec4<f32>(0.0);
            var y2 = vec4<f32>(0.0);
            for (var l = 0u; l < P; l = l + 1u) {
                let q = tile[l * (P / 4u) + m4];
                y = y + x[l] * q;
                y2 = y2 + x2[l] * q;
            }
            for (var c = 0u; c < 4u; c = c + 1u) {
                wv_set(cols[4u * m4 + c], r, y[c]);
                wv_set(cols[4u * m4 + c], r2, y2[c]);
            }
        }
    }
}
