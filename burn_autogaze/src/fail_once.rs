//! A mask source that fails once on purpose, for the soak test: the
//! display must go on and the failure must be counted.

use crate::error::Result;
use crate::frame::Frame;
use crate::mask_source::{MaskSource, MaskTiles};
use crate::timing::StageTimes;
use crate::tokens::GazeTokens;
use crate::wait::Pending;

/// Test only: `AUTOGAZE_TEST_FAIL_MASK_AT=K` makes the mask source fail
/// once, on the first frame it is given whose sequence number is at least K
/// (a decoupled source skips frames), as a failed inference would; every
/// pipeline built while it is set does so. `cargo xtask soak` injects one
/// mid-run to check that the display goes on and that the failure is
/// counted. Never set it otherwise.
pub const TEST_FAIL_MASK_ENV: &str = "AUTOGAZE_TEST_FAIL_MASK_AT";

/// `source`, failing once at the frame [`TEST_FAIL_MASK_ENV`] names when it
/// is set.
pub(crate) fn with_test_failure(source: Box<dyn MaskSource>) -> Box<dyn MaskSource> {
    let at = std::env::var(TEST_FAIL_MASK_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok());
    match at {
        Some(at) => Box::new(FailOnce {
            inner: source,
            at,
            fired: false,
        }),
        None => source,
    }
}

/// A mask source that fails once (see [`TEST_FAIL_MASK_ENV`]).
struct FailOnce {
    inner: Box<dyn MaskSource>,
    at: u64,
    fired: bool,
}

impl FailOnce {
    /// The injected failure, once, on the frame it names.
    fn fire(&mut self, frame: &Frame) -> Result<()> {
        if !self.fired && frame.seq >= self.at {
            self.fired = true;
            return Err(crate::error::AutoGazeError::Engine {
                engine: TEST_FAIL_MASK_ENV.into(),
                reason: format!("a failure injected on frame {} (test only)", frame.seq),
            });
        }
        Ok(())
    }
}

impl MaskSource for FailOnce {
    fn tokens_into(
        &mut self,
        frame: &Frame,
        reference: Option<&[u8]>,
        out: &mut GazeTokens,
        tiles: &mut MaskTiles,
        times: &mut StageTimes,
    ) -> Result<()> {
        self.fire(frame)?;
        self.inner.tokens_into(frame, reference, out, tiles, times)
    }

    fn tokens_into_async<'a>(
        &'a mut self,
        frame: &'a Frame,
        reference: Option<&'a [u8]>,
        out: &'a mut GazeTokens,
        tiles: &'a mut MaskTiles,
        times: &'a mut StageTimes,
    ) -> Pending<'a, Result<()>> {
        match self.fire(frame) {
            Ok(()) => self
                .inner
                .tokens_into_async(frame, reference, out, tiles, times),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }

    fn wants_reference(&self) -> bool {
        self.inner.wants_reference()
    }

    fn device(&self) -> Option<String> {
        self.inner.device()
    }
}
