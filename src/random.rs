//! The counter-based generator behind [`Tensor::randn`](crate::Tensor::randn).
//!
//! Element `i` of `randn(shape, seed)` is a pure function of `(seed, i)`:
//! Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11) with key
//! `(seed as u32, seed >> 32)` and counter `(i as u32, i >> 32, 0, 0)` gives four 32-bit words
//! `r0..r3`; then Box–Muller in f64 turns `u1 = (r0 + 1) / 2^32 ∈ (0, 1]` and
//! `u2 = r1 / 2^32 ∈ [0, 1)` into `sqrt(-2 ln u1) · cos(2π u2)`, rounded once to f32.
//! The transcendental functions come from the pure-Rust `libm` crate, never the platform's, so
//! every target (native, wasm) and every backend (values are made on the host and uploaded) sees
//! bit-identical data.

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Philox4x32 with 10 rounds.
pub(crate) fn philox4x32_10(mut ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut k0, mut k1) = (key[0], key[1]);
    for _ in 0..10 {
        let p0 = (M0 as u64) * (ctr[0] as u64);
        let p1 = (M1 as u64) * (ctr[2] as u64);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        ctr = [hi1 ^ ctr[1] ^ k0, lo1, hi0 ^ ctr[3] ^ k1, lo0];
        k0 = k0.wrapping_add(W0);
        k1 = k1.wrapping_add(W1);
    }
    ctr
}

/// Standard-normal sample number `index` of the stream `seed`.
pub(crate) fn normal(seed: u64, index: u64) -> f32 {
    let r = philox4x32_10(
        [index as u32, (index >> 32) as u32, 0, 0],
        [seed as u32, (seed >> 32) as u32],
    );
    let u1 = (r[0] as f64 + 1.0) / 4_294_967_296.0;
    let u2 = r[1] as f64 / 4_294_967_296.0;
    (libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(2.0 * std::f64::consts::PI * u2)) as f32
}

/// `n` standard-normal samples of stream `seed`.
pub(crate) fn normal_vec(seed: u64, n: usize) -> Vec<f32> {
    (0..n as u64).map(|i| normal(seed, i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn philox_known_answer() {
        // Known-answer vectors from the Random123 distribution (kat_vectors, philox4x32_10).
        assert_eq!(
            philox4x32_10([0, 0, 0, 0], [0, 0]),
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
        assert_eq!(
            philox4x32_10([0xffff_ffff; 4], [0xffff_ffff; 2]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0]
            ),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    #[test]
    fn moments_look_normal() {
        let v = normal_vec(7, 100_000);
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
        assert!(v.iter().all(|x| x.is_finite()));
    }
}
