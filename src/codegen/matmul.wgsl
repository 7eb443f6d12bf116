// Tiled matmul. A workgroup of 16×16 threads computes a BM×BN output tile (BM = 16·TM,
// BN = 16·TN), each thread TM×TN outputs held in registers (unrolled by the generator, no
// dynamic indexing), K in steps of BK through workgroup memory. Operands are read through their
// strides (a transposed view costs nothing); a_base/b_base give each batch entry's offsets
// (broadcast batch dims). The fused epilogue runs on each output element before it is stored.

const BM: u32 = {BM}u;
const BN: u32 = {BN}u;
const BK: u32 = {BK}u;

var<workgroup> tile_a: array<f32, {TILE_A}>; // [BK][BM]
var<workgroup> tile_b: array<f32, {TILE_B}>; // [BK][BN]

fn epilogue(gi: u32, core: f32) -> f32 {
{EPILOGUE}    return {RESULT};
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let batch = wid.z;
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    let tid = lid.y * 16u + lid.x;
    let abase = a_base(batch);
    let bbase = b_base(batch);
{ACC_DECL}
    for (var k0 = 0u; k0 < {K}; k0 = k0 + BK) {
        for (var l = 0u; l < {LOADS_A}u; l = l + 1u) {
            let e = tid + l * 256u;
            let ar = e / BK;
            let ak = e % BK;
            var va = 0.0;
            if (row0 + ar < {M} && k0 + ak < {K}) {
                va = {A}[abase + (row0 + ar) * {ARS} + (k0 + ak) * {ACS}];
            }
            tile_a[ak * BM + ar] = va;
        }
        for (var l = 0u; l < {LOADS_B}u; l = l + 1u) {
            let e = tid + l * 256u;
            let bk = e / BN;
            let bc = e % BN;
            var vb = 0.0;
            if (k0 + bk < {K} && col0 + bc < {N}) {
                vb = {B}[bbase + (k0 + bk) * {BRS} + (col0 + bc) * {BCS}];
            }
            tile_b[bk * BN + bc] = vb;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk = kk + 1u) {
{FMA}
        }
        workgroupBarrier();
    }
{STORE}
}
