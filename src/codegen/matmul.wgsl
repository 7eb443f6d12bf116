// Tiled matmul. A workgroup of 16×16 threads computes a BM×BN output tile; each thread holds
// TM×TN outputs in registers as vec4 rows (unrolled by the generator, no dynamic indexing):
// rows `g·BM/GM + ty·4 + i` and columns `h·BN/GN + tx·4 + (0..4)`, so each step of the k loop
// reads its A values and B values from workgroup memory as whole vec4s. K runs in steps of BK
// through workgroup memory, A stored k-major ([BK][BM + pad]) and B k-major ([BK][BN + pad]).
// Each operand is copied in with consecutive threads on its unit-stride dimension (so a
// transposed view is read as fast as a plain one); the generator picks the order. The fused
// epilogue runs on each output element before it is stored.

const BM: u32 = {BM}u;
const BN: u32 = {BN}u;
const BK: u32 = {BK}u;
const SA: u32 = {SA}u; // row pitch of tile_a, in floats
const SB: u32 = {SB}u; // row pitch of tile_b, in floats

var<workgroup> tile_a: array<vec4<f32>, {TILE_A4}>;
var<workgroup> tile_b: array<vec4<f32>, {TILE_B4}>;

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
    // Software pipelining: the next K step's elements are fetched into registers while the
    // current one is multiplied out of workgroup memory.
{FETCH_DECL}
{FETCH}
    for (var k0 = 0u; k0 < {K}; k0 = k0 + BK) {
{PUT}
        workgroupBarrier();
        if (k0 + BK < {K}) {
            let kn = k0 + BK;
{FETCH_NEXT}
        }
        for (var kk = 0u; kk < BK; kk = kk + 1u) {
{FMA}
        }
        workgroupBarrier();
    }
{STORE}
}
