// One rotation round of the one-sided block Jacobi SVD through the block pair's Gram matrix.
// Workgroup g takes block pair g of round rnd.r: its P = 2·BS columns of W (and of V).
//  1. The pair's Gram matrix G = W_pᵀ·W_p (P × P), fresh from the columns: rows staged through
//     workgroup memory in chunks of CR (column-major, padded), each of RGN row groups of threads
//     (4 with P = 32) summing 4 × 4 tiles of G over its rows, the groups' tiles then added in
//     workgroup memory.
//  2. The pairs whose columns are not orthogonal to ROT_TOL by G count as the sweep's rotations
//     (the convergence test); none, and the round leaves the pair as it is.
//  3. Inner rounds on G alone, in workgroup memory (no pass over the rows): P / 2 disjoint column
//     pairs each, their rotations from G's entries, G ← JᵀGJ (each rotated pair's entry set to
//     0, its diagonal by the two-by-two formula) and Q ← Q·J, Q starting as I. The sweep's first
//     round visits every pair of the P columns (P − 1 inner rounds, so every block's own pairs
//     are visited once per sweep), the others only the BS² pairs across the two blocks (BS inner
//     rounds).
//  4. W_p ← W_p·Q and V_p ← V_p·Q: rows of W, then of V, staged in chunks as in step 1, each
//     thread one row's four columns at a time.
// The split form (larger matrices: two dispatches a round, so that more workgroups than block
// pairs share the rows): stage PART forms each pair's partial Gram matrices over slices of SR
// rows of W (a workgroup per pair and slice, into `aux` beyond its 3·COLS entries); stage
// APPLY, a workgroup per pair and slice of SR rows of W then V, adds the pair's partial
// matrices, runs steps 2–3 itself (every slice's workgroup the same rotations from the same
// sums; the first counts them) and step 4 on its slice.
// Every chunk's loads are unrolled into registers (ld0, ld1, …: the driver's compiler keeps
// arrays indexed in loops in slow local memory) and issued while the previous chunk is used.
// G's later inner rounds work on updated entries rather than fresh dot products: their
// rounding grows with the rotation angles, so it fades as the columns converge, and every
// round's convergence test (step 2) uses fresh ones.

const P: u32 = {GP}u;
const BS: u32 = {GBS}u;
const WG: u32 = {GWG}u;
// Rows per chunk, and the padded column stride of a chunk in vec4 (CR / 4 + 1: conflict-free).
const CR: u32 = 64u;
// The stage: 6 one dispatch a round (steps 1–4), 7 PART, 8 APPLY; rows per slice of PART and
// APPLY.
const GSTAGE: u32 = {GSTAGE}u;
const SR: u32 = {GSR}u;
const CS4: u32 = CR / 4u + 1u;
// 4 × 4 tiles per side of G, TP² of them; threads summing them in RGN row groups.
const TP: u32 = P / 4u;
const GT: u32 = TP * TP;
const RGN: u32 = min(WG / GT, CR / 4u);
// Elements of G (and of Q) each thread visits in a pass over them (at least one slot).
const PE: u32 = (P * P + WG - 1u) / WG;
// vec4 per row of Q.
const P4: u32 = P / 4u;
// 2 × 2 blocks of G an inner round updates (Q has twice as many entry pairs, P·P/2); whether
// half the threads take one block each and the other half two of Q's entry pairs.
const GB: u32 = (P / 2u) * (P / 2u);
const SPLIT_ITEMS: bool = 2u * GB == WG;

// A chunk of rows (column-major, stride CS4 vec4).
var<workgroup> tile: array<vec4<f32>, {TILE4}>;
var<workgroup> gram: array<f32, {GP2}>;
// The accumulated rotation Q (row-major, P4 vec4 a row).
var<workgroup> qv: array<vec4<f32>, {GQ4}>;
// Per column pair of an inner round: its rotation (c, s), (1, 0) where it does not rotate.
var<workgroup> pcs: array<vec2<f32>, {GPH}>;
var<workgroup> found: atomic<u32>;
var<workgroup> nfound: u32;

// Column l of the pair: block x's first, then block y's.
fn pair_col(l: u32, bp: vec2<u32>) -> u32 {
    if (l < BS) {
        return bp.x * BS + l;
    }
    return bp.y * BS + (l - BS);
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

// Element e of a chunk of rows from r0 (column e / CR, row e % CR): rows of W, then of V,
// before `re`; 0 outside.
fn chunk_get(e: u32, r0: u32, bp: vec2<u32>, re: u32) -> f32 {
    let r = r0 + e % CR;
    if (e >= CR * P || r >= re) {
        return 0.0;
    }
    return wv_get(pair_col(e / CR, bp), r);
}

fn tile_put(e: u32, x: f32) {
    if (e < CR * P) {
        let rr = e % CR;
        tile[(e / CR) * CS4 + rr / 4u][rr % 4u] = x;
    }
}

// Row r of column l of the chunk.
fn tile_get(l: u32, r: u32) -> f32 {
    return tile[l * CS4 + r / 4u][r % 4u];
}

fn q_get(r: u32, c: u32) -> f32 {
    let e = r * P + c;
    return qv[e / 4u][e % 4u];
}

fn q_set(r: u32, c: u32, x: f32) {
    let e = r * P + c;
    qv[e / 4u][e % 4u] = x;
}

// Row a of a thread's 4 × 4 tile of G into G (added to what is there with `add`).
fn gram_put(a: u32, tb: u32, x: vec4<f32>, add: bool) {
    let e = a * P + tb;
    gram[e] = select(x.x, x.x + gram[e], add);
    gram[e + TP] = select(x.y, x.y + gram[e + TP], add);
    gram[e + 2u * TP] = select(x.z, x.z + gram[e + 2u * TP], add);
    gram[e + 3u * TP] = select(x.w, x.w + gram[e + 3u * TP], add);
}

// Block pairs of a round, and slices of SR rows of W (PART) and of W then V (APPLY).
fn npairs() -> u32 {
    let nb = ({COLS} + BS - 1u) / BS;
    return (nb + (nb & 1u)) / 2u;
}

fn wslices() -> u32 {
    return ({ROWS} + SR - 1u) / SR;
}

fn wvslices() -> u32 {
    return ({ROWS} + {COLS} + SR - 1u) / SR;
}

// Where in `aux` the split form keeps pair p's partial Gram matrix of slice s.
fn part_at(p: u32, s: u32) -> u32 {
    return 3u * {COLS} + (p * wslices() + s) * P * P;
}

// 1. G = the pair's columns' Gram matrix over rows [rb, re) of W: thread (tile ta, tb; row
// group rg) sums rows a = ta + TP·i, columns b = tb + TP·j (i, j < 4) over the vec4 rows rg,
// rg + RGN, … of each chunk; the row groups' tiles meet in `gram`.
fn gram_rows(rb: u32, re: u32, bp: vec2<u32>, lid: u32) {
    let gl = lid % GT;
    let rg = lid / GT;
    let ta = gl / TP;
    let tb = gl % TP;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    // The loop over the chunks of rows [rb, re), each in `tile` (its head generated in svd.rs).
{CHUNKS}
        if (rg < RGN) {
            for (var q = rg; q < CR / 4u; q = q + RGN) {
                let a0 = tile[ta * CS4 + q];
                let a1 = tile[(ta + TP) * CS4 + q];
                let a2 = tile[(ta + 2u * TP) * CS4 + q];
                let a3 = tile[(ta + 3u * TP) * CS4 + q];
                let b0 = tile[tb * CS4 + q];
                let b1 = tile[(tb + TP) * CS4 + q];
                let b2 = tile[(tb + 2u * TP) * CS4 + q];
                let b3 = tile[(tb + 3u * TP) * CS4 + q];
                acc0 = acc0 + vec4<f32>(dot(a0, b0), dot(a0, b1), dot(a0, b2), dot(a0, b3));
                acc1 = acc1 + vec4<f32>(dot(a1, b0), dot(a1, b1), dot(a1, b2), dot(a1, b3));
                acc2 = acc2 + vec4<f32>(dot(a2, b0), dot(a2, b1), dot(a2, b2), dot(a2, b3));
                acc3 = acc3 + vec4<f32>(dot(a3, b0), dot(a3, b1), dot(a3, b2), dot(a3, b3));
            }
        }
        workgroupBarrier();
    }
    // The row groups' tiles meet in G: the last group writes, the others add in turn.
    for (var s = RGN; s > 0u; s = s - 1u) {
        if (rg == s - 1u) {
            gram_put(ta, tb, acc0, s < RGN);
            gram_put(ta + TP, tb, acc1, s < RGN);
            gram_put(ta + 2u * TP, tb, acc2, s < RGN);
            gram_put(ta + 3u * TP, tb, acc3, s < RGN);
        }
        workgroupBarrier();
    }
}

// Column pair k (i < j) of inner round iq: every pair of the P columns over a sweep's first
// round, else the BS² pairs across the two blocks. Computed where used rather than passed
// through workgroup memory (a load fewer ahead of each entry's loads).
fn inner_pair(iq: u32, k: u32, first: bool) -> vec2<u32> {
    var ij = vec2<u32>(k, BS + (k + iq) % BS);
    if (first) {
        ij = pair_of(iq, k, P);
    }
    return vec2<u32>(min(ij.x, ij.y), max(ij.x, ij.y));
}

// Inner round iq's update of G's 2 × 2 block k (rows of pair k / (P/2), columns of pair
// k % (P/2)): G ← JᵀGJ there.
fn g_block(k: u32, iq: u32, first: bool) {
    let ka = k / (P / 2u);
    let kb = k % (P / 2u);
    let csa = pcs[ka];
    let csb = pcs[kb];
    if (csa.y == 0.0 && csb.y == 0.0) {
        return;
    }
    let ra = inner_pair(iq, ka, first);
    if (ka == kb) {
        // A rotated pair's own block: its entry annihilated, its diagonal by the 2 × 2
        // formula (G_ii − t·G_ij, G_jj + t·G_ij).
        let i = ra.x;
        let j = ra.y;
        let t = csa.y / csa.x;
        let gij = gram[i * P + j];
        gram[i * P + i] = gram[i * P + i] - t * gij;
        gram[j * P + j] = gram[j * P + j] + t * gij;
        gram[i * P + j] = 0.0;
        gram[j * P + i] = 0.0;
        return;
    }
    let cb = inner_pair(iq, kb, first);
    let g00 = gram[ra.x * P + cb.x];
    let g01 = gram[ra.x * P + cb.y];
    let g10 = gram[ra.y * P + cb.x];
    let g11 = gram[ra.y * P + cb.y];
    // Columns (G·J): column b with its partner; rows (Jᵀ·G): row a with its partner.
    let h00 = csb.x * g00 - csb.y * g01;
    let h01 = csb.x * g01 + csb.y * g00;
    let h10 = csb.x * g10 - csb.y * g11;
    let h11 = csb.x * g11 + csb.y * g10;
    gram[ra.x * P + cb.x] = csa.x * h00 - csa.y * h10;
    gram[ra.x * P + cb.y] = csa.x * h01 - csa.y * h11;
    gram[ra.y * P + cb.x] = csa.x * h10 + csa.y * h00;
    gram[ra.y * P + cb.y] = csa.x * h11 + csa.y * h01;
}

// Inner round iq's Q ← Q·J for entry pair k: row k / (P/2)'s entries of pair k % (P/2).
fn q_pair(k: u32, iq: u32, first: bool) {
    let r = k / (P / 2u);
    let kb = k % (P / 2u);
    let cs = pcs[kb];
    if (cs.y != 0.0) {
        let cb = inner_pair(iq, kb, first);
        let q0 = q_get(r, cb.x);
        let q1 = q_get(r, cb.y);
        q_set(r, cb.x, cs.x * q0 - cs.y * q1);
        q_set(r, cb.y, cs.x * q1 + cs.y * q0);
    }
}

// 2.–3. On G in `gram`: count the pairs to rotate (the sweep's convergence test; added to the
// sweep's count if `counts`) and, if any, the inner rounds, leaving the rotation in `qv`.
// Returns whether anything rotates.
fn solve(lid: u32, counts: bool) -> bool {
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
        return false;
    }
    if (lid == 0u && counts) {
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
    // 3. Inner rounds on G and Q. The round's P / 2 column pairs cut G into 2 × 2 blocks
    // (rows of one pair, columns of another) and Q's rows into pairs of entries: each block is
    // updated in place by one thread from its own four entries, so a round takes two barriers.
    let first = rnd.r == 0u;
    let inner = select(BS, P - 1u, first);
    for (var iq = 0u; iq < inner; iq = iq + 1u) {
        if (lid < P / 2u) {
            let ij = inner_pair(iq, lid, first);
            let i = ij.x;
            let j = ij.y;
            let t = vec3<f32>(gram[i * P + i], gram[j * P + j], gram[i * P + j]);
            // Both computed and one kept (no branch: the test's square root runs beside the
            // rotation's chain).
            pcs[lid] = select(vec2<f32>(1.0, 0.0), rotation(t), rotates(t));
        }
        workgroupBarrier();
        if (SPLIT_ITEMS) {
            // Half the threads one block of G each, the other half two of Q's entry pairs
            // (about as much work).
            if (lid < GB) {
                g_block(lid, iq, first);
            } else {
                q_pair(2u * (lid - GB), iq, first);
                q_pair(2u * (lid - GB) + 1u, iq, first);
            }
        } else {
            for (var k = lid; k < GB; k = k + WG) {
                g_block(k, iq, first);
            }
            for (var k = lid; k < 2u * GB; k = k + WG) {
                q_pair(k, iq, first);
            }
        }
        workgroupBarrier();
    }

    return true;
}

// 4. Rows [rb, re) of W_p then V_p (row r ≥ ROWS: row r − ROWS of V) ← themselves times Q
// (in `qv`), chunk by chunk: thread item (row r, columns 4·c4 …) sums its row of the chunk
// times those columns of Q.
fn apply_rows(rb: u32, re: u32, bp: vec2<u32>, lid: u32) {
    // The loop over the chunks of rows [rb, re), each in `tile` (its head generated in svd.rs).
{CHUNKS}
        for (var it = lid; it < CR * P4; it = it + WG) {
            let r = it % CR;
            let c4 = it / CR;
            let row = r0 + r;
            if (row >= re) {
                continue;
            }
            var y = vec4<f32>(0.0);
            for (var l = 0u; l < P; l = l + 4u) {
                y = y + tile_get(l, r) * qv[l * P4 + c4] + tile_get(l + 1u, r) * qv[(l + 1u) * P4 + c4]
                    + tile_get(l + 2u, r) * qv[(l + 2u) * P4 + c4]
                    + tile_get(l + 3u, r) * qv[(l + 3u) * P4 + c4];
            }
            wv_set(pair_col(4u * c4, bp), row, y.x);
            wv_set(pair_col(4u * c4 + 1u, bp), row, y.y);
            wv_set(pair_col(4u * c4 + 2u, bp), row, y.z);
            wv_set(pair_col(4u * c4 + 3u, bp), row, y.w);
        }
        workgroupBarrier();
    }
}

// G of pair p: the sum of its slices' partial Gram matrices.
fn sum_parts(p: u32, lid: u32) {
    let ns = wslices();
    for (var k = 0u; k < PE; k = k + 1u) {
        let e = lid + WG * k;
        if (e < P * P) {
            var x = 0.0;
            for (var s = 0u; s < ns; s = s + 1u) {
                x = x + aux[part_at(p, s) + e];
            }
            gram[e] = x;
        }
    }
    workgroupBarrier();
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
    let nb2 = 2u * npairs();
    if (GSTAGE == 6u) {
        let bp = pair_of(rnd.r, g, nb2);
        gram_rows(0u, {ROWS}, bp, lid);
        if (solve(lid, true)) {
            apply_rows(0u, {ROWS} + {COLS}, bp, lid);
        }
    } else if (GSTAGE == 7u) {
        let ns = wslices();
        let p = g / ns;
        let s = g % ns;
        if (p >= npairs()) {
            return;
        }
        gram_rows(s * SR, min({ROWS}, s * SR + SR), pair_of(rnd.r, p, nb2), lid);
        let at = part_at(p, s);
        for (var k = 0u; k < PE; k = k + 1u) {
            let e = lid + WG * k;
            if (e < P * P) {
                aux[at + e] = gram[e];
            }
        }
    } else {
        let ns = wvslices();
        let p = g / ns;
        let s = g % ns;
        if (p >= npairs()) {
            return;
        }
        sum_parts(p, lid);
        if (solve(lid, s == 0u)) {
            apply_rows(s * SR, min({ROWS} + {COLS}, s * SR + SR), pair_of(rnd.r, p, nb2), lid);
        }
    }
}
