// Tiled matmul: a 64×64 output tile per workgroup of 16×16 threads, 4×4 outputs per thread,
// K in steps of 16 through workgroup memory. Operands are read through their strides (a
// transposed view costs nothing); batch offsets come from a_base/b_base (broadcast batch dims).
// The fused epilogue runs on each output element before it is stored.

const MM_M: u32 = {M}u;
const MM_N: u32 = {N}u;
const MM_K: u32 = {K}u;

var<workgroup> tile_a: array<f32, 1024>; // [16 k][64 rows]
var<workgroup> tile_b: array<f32, 1024>; // [16 k][64 cols]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let batch = wid.z;
    let row0 = wid.y * 64u;
    let col0 = wid.x * 64u;
    let tid = lid.y * 16u + lid.x;
    let abase = a_base(batch);
    let bbase = b_base(batch);
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i = i + 1u) {
        acc[i] = 0.0;
    }
    for (var k0 = 0u; k0 < MM_K; k0 = k0 + 16u) {
        for (var l = 0u; l < 4u; l = l + 1u) {
            let e = tid + l * 256u;
            // A: 64 rows × 16 k, consecutive threads walk k.
            let ar = e / 16u;
            let ak = e % 16u;
            var va = 0.0;
            if (row0 + ar < MM_M && k0 + ak < MM_K) {
                va = {A}[abase + (row0 + ar) * {ARS}u + (k0 + ak) * {ACS}u];
            }
            tile_a[ak * 64u + ar] = va;
            // B: 16 k × 64 cols, consecutive threads walk the columns.
            let bk = e / 64u;
            let bc = e % 64u;
            var vb = 0.0;
            if (k0 + bk < MM_K && col0 + bc < MM_N) {
                vb = {B}[bbase + (k0 + bk) * {BRS}u + (col0 + bc) * {BCS}u];
            }
            tile_b[bk * 64u + bc] = vb;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < 16u; kk = kk + 1u) {
            var a: array<f32, 4>;
            var b: array<f32, 4>;
            for (var i = 0u; i < 4u; i = i + 1u) {
                a[i] = tile_a[kk * 64u + lid.y + i * 16u];
                b[i] = tile_b[kk * 64u + lid.x + i * 16u];
            }
            for (var i = 0u; i < 4u; i = i + 1u) {
                for (var j = 0u; j < 4u; j = j + 1u) {
                    acc[i * 4u + j] = fma(a[i], b[j], acc[i * 4u + j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i = i + 1u) {
        for (var j = 0u; j < 4u; j = j + 1u) {
            let r = row0 + lid.y + i * 16u;
            let c = col0 + lid.x + j * 16u;
            if (r < MM_M && c < MM_N) {
                let gi = batch * MM_M * MM_N + r * MM_N + c;
                let core = acc[i * 4u + j];
{EPILOGUE}                out[gi] = {RESULT};
            }
        }
    }
}
