//! A token layout from a config's `scales` string and token count (and
//! explicit grids): every id decodes and encodes back.
#![no_main]

use burn_autogaze::tokens::TokenLayout;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (tokens, rest) = match data {
        [a, b, c, d, rest @ ..] => (u32::from_le_bytes([*a, *b, *c, *d]), rest),
        _ => return,
    };
    if let Ok(scales) = std::str::from_utf8(rest)
        && let Ok(layout) = TokenLayout::from_config(scales, tokens)
    {
        check(&layout);
    }
    let grids: Vec<(u32, u32)> = rest
        .chunks_exact(4)
        .map(|c| {
            (
                u16::from_le_bytes([c[0], c[1]]) as u32,
                u16::from_le_bytes([c[2], c[3]]) as u32,
            )
        })
        .collect();
    if let Ok(layout) = TokenLayout::from_grids(&grids) {
        check(&layout);
    }
});

fn check(layout: &TokenLayout) {
    assert!(layout.tokens() <= burn_autogaze::limits::MAX_LAYOUT_TOKENS);
    for id in 0..=layout.tokens() {
        match layout.decode(id) {
            Some(cell) => {
                let back = layout.encode(cell.scale as usize, cell.row as u32, cell.col as u32);
                assert_eq!(back, Some(id));
            }
            None => assert_eq!(id, layout.pad_id()),
        }
    }
}
