//! The web viewer's URL query: parsed as the command line (percent
//! decoding, the browser's refusals, the limits) to settings or an error.
#![no_main]

use bevy_burn_autogaze::cli::ViewerArgs;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(args) = ViewerArgs::from_query(query) {
        let settings = args.settings();
        settings
            .pipeline
            .check_limits()
            .expect("a parsed query is within the limits");
        let _ = args.record_options();
    }
});
