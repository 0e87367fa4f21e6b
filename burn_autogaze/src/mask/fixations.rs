//! Named token sets of the release layout that benchmarks and tests share:
//! from nothing to every token, sparse to redundant.

/// Id of finest-grid (14x14) cell `(r, c)` in the release layout.
fn fine(r: u32, c: u32) -> u32 {
    69 + r * 14 + c
}

/// `(name, frame-local token ids)`: `empty`, `tiny-sparse` (one 14x14 cell),
/// `multiscale` (a coarse cell, finer cells inside it, three fine cells),
/// `coarse-dense` (every 2x2 and 4x4 token: full coverage), `dense-grid-64`
/// (64 fine cells in a checkerboard), `redundant-full-frame` (all 265).
pub fn fixation_sets() -> Vec<(&'static str, Vec<u32>)> {
    vec![
        ("empty", vec![]),
        ("tiny-sparse", vec![fine(7, 7)]),
        (
            "multiscale",
            vec![1, 6, 25, 33, fine(2, 3), fine(9, 11), fine(12, 1)],
        ),
        ("coarse-dense", (0..20).collect()),
        (
            "dense-grid-64",
            (0..14)
                .flat_map(|r| (0..14).map(move |c| (r, c)))
                .filter(|(r, c)| (r + c) % 2 == 0)
                .take(64)
                .map(|(r, c)| fine(r, c))
                .collect(),
        ),
        ("redundant-full-frame", (0..265).collect()),
    ]
}
