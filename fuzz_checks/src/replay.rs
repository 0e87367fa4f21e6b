//! The fuzz smoke: every target's committed seeds (`fuzz/corpus/<target>/`)
//! and, for each seed, [`MUTANTS`] seeded mutations of it ([`IMAGE_MUTANTS`]
//! for the image decoders, slow in a test build) (bit flips, byte
//! overwrites with boundary values, truncations, insertions, repeats and
//! splices with another seed) through the target's check. Deterministic:
//! the same inputs on every run; a failing input is written to the temp
//! directory and named in the failure, to be added to the corpus.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// Mutations per seed.
const MUTANTS: usize = 300;

/// Mutations per seed of the still-image target (image decoding runs
/// unoptimised in test builds: 300 a seed took ~3 min there).
const IMAGE_MUTANTS: usize = 40;

/// The seeds of `target`, in name order.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .collect();
    paths.sort();
    let seeds: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(!seeds.is_empty(), "{}: no seeds", dir.display());
    seeds
}

/// xorshift64*: a small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that sit on boundaries: zero, signs, powers of two, digits and
/// JSON's structural bytes.
const INTERESTING: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, b'0', b'9', b'-', b'e', b'.', b'"', b',', b'{', b'}', b'[', b']', b':',
    b'&', b'=', b'%',
];

/// One to four stacked mutations of `seed` (`other` is another seed, for
/// splices).
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(7) {
            0 if !data.is_empty() => {
                let i = at.min(data.len() - 1);
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let i = at.min(data.len() - 1);
                data[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => data.truncate(at),
            3 => {
                let bytes: Vec<u8> = (0..=rng.below(8)).map(|_| rng.next() as u8).collect();
                data.splice(at..at, bytes);
            }
            4 if !data.is_empty() => {
                // Repeat a chunk (long numbers, nested brackets).
                let start = rng.below(data.len());
                let end = (start + 1 + rng.below(16)).min(data.len());
                let chunk = data[start..end].repeat(1 + rng.below(8));
                data.splice(at..at, chunk);
            }
            5 if !other.is_empty() => {
                let cut = rng.below(other.len());
                data.truncate(at);
                data.extend_from_slice(&other[cut..]);
            }
            _ => {
                // Digits: a number grown past its limits.
                let digits = b"9".repeat(1 + rng.below(24));
                data.splice(at..at, digits);
            }
        }
    }
    data
}

/// Runs `check` on the seeds of `target` and their mutants; the first
/// input that panics fails the test, saved and named.
fn replay(target: &str, check: fn(&[u8]), mutants: usize) {
    let seeds = seeds(target);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ target.len() as u64);
    let mut inputs: Vec<Vec<u8>> = seeds.clone();
    for (i, seed) in seeds.iter().enumerate() {
        let other = &seeds[(i + 1) % seeds.len()];
        inputs.extend((0..mutants).map(|_| mutate(&mut rng, seed, other)));
    }
    for (n, input) in inputs.iter().enumerate() {
        if catch_unwind(AssertUnwindSafe(|| check(input))).is_err() {
            let path = std::env::temp_dir().join(format!("fuzz-smoke-{target}-{n}"));
            std::fs::write(&path, input).expect("write the failing input");
            panic!(
                "{target}: input {n} of {} panicked; it is saved at {} (add it to fuzz/corpus/{target}/ once fixed)",
                inputs.len(),
                path.display()
            );
        }
    }
}

#[test]
fn model_config_smoke() {
    replay("model_config", crate::model_config, MUTANTS);
}

#[test]
fn preprocessor_config_smoke() {
    replay("preprocessor_config", crate::preprocessor_config, MUTANTS);
}

#[test]
fn token_layout_smoke() {
    replay("token_layout", crate::token_layout, MUTANTS);
}

#[test]
fn weights_smoke() {
    replay("weights", crate::weights, MUTANTS);
}

#[test]
fn still_image_smoke() {
    replay("still_image", crate::still_image, IMAGE_MUTANTS);
}

#[test]
fn image_dir_smoke() {
    replay("image_dir", crate::image_dir, MUTANTS);
}

#[test]
fn gate_baseline_smoke() {
    replay("gate_baseline", crate::gate_baseline, MUTANTS);
}

#[cfg(feature = "web")]
#[test]
fn web_query_smoke() {
    replay("web_query", crate::web_query, MUTANTS);
}

/// The smoke can fail: a check that panics on some mutant is reported with
/// the input saved.
#[test]
#[should_panic(expected = "panicked; it is saved at")]
fn a_panicking_check_is_reported() {
    replay(
        "token_layout",
        |data| assert!(data.len() < 8, "long input"),
        MUTANTS,
    );
}
