// What the forms of the SVD's rotation round share (`svd.wgsl`'s through memory, `svd_gram.wgsl`'s
// through the Gram matrix; the QR flow's `svd_qr.wgsl`): the buffers, the round's uniform, the
// converged flag, the round-robin pairing, the rotation and the singular values' order.

struct Round {
    r: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(2) var<storage, read_write> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> aux: array<f32>;
@group(0) @binding(5) var<storage, read_write> counter: array<atomic<u32>>;
@group(0) @binding(6) var<uniform> rnd: Round;

var<workgroup> converged: u32;

// Round-robin pairing of n2 (even) items: in round `round_index` (< n2 - 1) pair p (< n2 / 2).
fn pair_of(round_index: u32, p: u32, n2: u32) -> vec2<u32> {
    let last = n2 - 1u;
    if (p == 0u) {
        return vec2<u32>(last, round_index);
    }
    return vec2<u32>((round_index + p) % last, (round_index + last - p) % last);
}

// Whether a column pair with sums (‖a‖², ‖b‖², a·b) is not orthogonal to ROT_TOL.
fn rotates(t: vec3<f32>) -> bool {
    return abs(t.z) > {ROT_TOL} * sqrt(t.x * t.y) && abs(t.z) > 1e-30;
}

// (c, s) of that pair's rotation: [a b] ← [a b]·[[c, s], [−s, c]]. With ζ = cot 2θ =
// (‖b‖² − ‖a‖²)/(2·a·b) (|ζ| capped at 1e18, where θ ≈ 1/(2ζ) is far below any rotation the
// test lets through): w = |sin 2θ| = 1/√(1 + ζ²), q = cos²θ = (1 + |ζ|·w)/2, c = √q, s =
// sin 2θ/(2c): one division and two inverse square roots in a row, since the rotation is on
// the inner rounds' critical path.
fn rotation(t: vec3<f32>) -> vec2<f32> {
    let zeta = (t.y - t.x) / (2.0 * t.z);
    let z = min(abs(zeta), 1e18);
    let w = inverseSqrt(1.0 + z * z);
    let q = 0.5 + 0.5 * (z * w);
    let rc = inverseSqrt(q);
    let c0 = q * rc;
    let s0 = select(-0.5, 0.5, zeta >= 0.0) * w * rc;
    // One Newton step towards c² + s² = 1: a GPU's inverse square root and division are
    // accurate to a few ulps only, and a bias there would compound over thousands of rotations.
    let fix = 1.5 - 0.5 * (c0 * c0 + s0 * s0);
    return vec2<f32>(c0 * fix, s0 * fix);
}

// Column p's place among the singular values (in aux[0..COLS]) in descending order, ties by
// column.
fn sv_rank(p: u32) -> u32 {
    let sp = aux[p];
    var rank = 0u;
    for (var q = 0u; q < {COLS}; q = q + 1u) {
        let sq = aux[q];
        if (sq > sp || (sq == sp && q < p)) {
            rank = rank + 1u;
        }
    }
    return rank;
}
