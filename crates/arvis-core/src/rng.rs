//! Seeded randomness shared by every arvis crate.
//!
//! [`SeededRng`] is ChaCha8 keyed by a `u64` seed: a portable, specified generator, so the same
//! seed gives the same stream on every machine and every run (it does not depend on the OS, the
//! thread count or the device). Independent sub-streams come from [`SeededRng::fork`], so adding
//! draws to one consumer never shifts another's.
//!
//! Conversions are fixed and documented because golden tests and GPU kernels rely on them:
//! - `uniform_f64`: the top 53 bits of one `u64`, times 2⁻⁵³, in `[0, 1)`;
//! - `uniform_f32`: the top 24 bits of one `u32`, times 2⁻²⁴, in `[0, 1)`;
//! - `normal_f32`: `rand_distr::StandardNormal` (ziggurat) — fixed for a pinned `rand_distr`;
//! - `gumbel_f32`: `-ln(-ln(u))` with `u` in `(0, 1)` (see [`SeededRng::open_uniform_f64`]).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// A deterministic random stream keyed by a `u64` seed.
#[derive(Clone, Debug)]
pub struct SeededRng {
    inner: ChaCha8Rng,
    seed: u64,
}

impl SeededRng {
    /// A stream keyed by `seed`.
    pub fn new(seed: u64) -> Self {
        SeededRng {
            inner: ChaCha8Rng::seed_from_u64(seed),
            seed,
        }
    }

    /// The seed this stream was created from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// An independent stream for a named consumer (e.g. `fork(1)` for sampling, `fork(2)` for
    /// noise). Same seed and same `stream` give the same draws, whatever was drawn before.
    pub fn fork(&self, stream: u64) -> SeededRng {
        let mut inner = ChaCha8Rng::seed_from_u64(self.seed);
        inner.set_stream(stream.wrapping_add(1));
        SeededRng {
            inner,
            seed: self.seed,
        }
    }

    /// A raw 64-bit draw.
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn uniform_f64(&mut self) -> f64 {
        (self.inner.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in the open interval `(0, 1)`: `(k + 0.5) / 2⁵³` for a 53-bit `k`, so logs of it
    /// are finite.
    pub fn open_uniform_f64(&mut self) -> f64 {
        ((self.inner.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[0, 1)` with 24 random bits.
    pub fn uniform_f32(&mut self) -> f32 {
        (self.inner.next_u32() >> 8) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// A uniform integer in `0..n` (Lemire's unbiased multiply-and-reject). `n` must be > 0.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = (self.inner.next_u64() as u128) * (n as u128);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }

    /// A standard-normal draw.
    pub fn normal_f32(&mut self) -> f32 {
        StandardNormal.sample(&mut self.inner)
    }

    /// A standard-normal draw in double precision.
    pub fn normal_f64(&mut self) -> f64 {
        StandardNormal.sample(&mut self.inner)
    }

    /// `n` standard-normal draws.
    pub fn normal_vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.normal_f32()).collect()
    }

    /// Fills `out` with standard-normal draws.
    pub fn fill_normal(&mut self, out: &mut [f32]) {
        for v in out {
            *v = self.normal_f32();
        }
    }

    /// A standard Gumbel draw, `-ln(-ln(u))`.
    pub fn gumbel_f64(&mut self) -> f64 {
        -(-self.open_uniform_f64().ln()).ln()
    }

    /// A standard Gumbel draw in single precision.
    pub fn gumbel_f32(&mut self) -> f32 {
        self.gumbel_f64() as f32
    }

    /// Fisher–Yates shuffle of `items` (a random generation order, say).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_forks_are_independent() {
        let mut a = SeededRng::new(7);
        let mut b = SeededRng::new(7);
        let xa: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let xb: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        assert_eq!(xa, xb);
        let mut f1 = a.fork(1);
        let mut f1b = SeededRng::new(7).fork(1);
        assert_eq!(f1.next_u64(), f1b.next_u64());
        let mut f2 = a.fork(2);
        assert_ne!(SeededRng::new(7).fork(1).next_u64(), f2.next_u64());
        assert_ne!(SeededRng::new(8).next_u64(), SeededRng::new(7).next_u64());
    }

    #[test]
    fn uniform_ranges() {
        let mut r = SeededRng::new(1);
        for _ in 0..10_000 {
            let u = r.uniform_f32();
            assert!((0.0..1.0).contains(&u));
            let v = r.open_uniform_f64();
            assert!(v > 0.0 && v < 1.0);
            assert!(r.below(3) < 3);
        }
    }
}
