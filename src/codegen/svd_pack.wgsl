// The SVD's last stage, shared by the rotation form (`svd.wgsl`) and the QR flow (`svd_qr.wgsl`),
// each of which says where its factors lie: `left(r, p)`, row r of the working matrix's left
// singular vector p (M long when TALL, else N), and `right(c, p)`, entry c of its right one.
// A workgroup of `nt` threads per singular value p: σ_p goes to its rank among them (descending),
// with its vectors; for a wide input (the working matrix is Aᵀ) the two factors trade places.
// Output: U (M × K) | S (K) | Vᵀ (K × N).
fn pack_sv(p: u32, lid: u32, nt: u32) {
    let rank = sv_rank(p);
    let k = {COLS};
    if (lid == 0u) {
        out[{M} * k + rank] = aux[p];
    }
    let vt0 = {M} * k + k;
    if ({TALL}) {
        for (var r = lid; r < {M}; r = r + nt) {
            out[r * k + rank] = left(r, p);
        }
        for (var c = lid; c < {N}; c = c + nt) {
            out[vt0 + rank * {N} + c] = right(c, p);
        }
    } else {
        for (var r = lid; r < {M}; r = r + nt) {
            out[r * k + rank] = right(r, p);
        }
        for (var c = lid; c < {N}; c = c + nt) {
            out[vt0 + rank * {N} + c] = left(c, p);
        }
    }
}
