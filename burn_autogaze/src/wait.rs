//! Work that may have to wait for the device: the model's readbacks.
//!
//! The model's frame path is written once, as futures ([`Pending`]): a
//! readback is awaited, never blocked on. Natively, [`block_on`] drives such
//! a future on the calling thread (the device's map callback wakes it), so
//! the synchronous entry points (`AutoGaze::step`, `MaskSource::tokens_into`)
//! are that future, waited for. In the browser nothing may block the page's
//! only thread: there the future runs as a task on the page's event loop
//! ([`InferenceWorker::spawn_async`](crate::worker::InferenceWorker::spawn_async)),
//! and [`block_on`] only finishes a future that needs no wait (the CPU
//! backend's); one that would wait is a typed error naming the async entry
//! point instead of a hang.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use crate::error::{AutoGazeError, Result};

/// A boxed future borrowing for `'a` (not `Send`: it runs where it was made,
/// on a worker's thread or on the page's event loop).
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Runs `fut` to its end (see the module doc); `what` names the work in the
/// browser's error.
pub fn block_on<T>(what: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = what;
        pollster::block_on(fut)
    }
    #[cfg(target_arch = "wasm32")]
    {
        use std::task::{Context, Waker};
        let mut fut = std::pin::pin!(fut);
        match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(would_wait(what)),
        }
    }
}

/// The error of work that would block the browser's thread.
pub fn would_wait(what: &str) -> AutoGazeError {
    AutoGazeError::Engine {
        engine: "browser".into(),
        reason: format!(
            "{what} waits for the device, and the page's thread cannot block: \
             run it through its async entry point (a decoupled pipeline does)"
        ),
    }
}

/// A future whose panics are caught: a poll that panics ends it with the
/// panic's text (`panic: ...`) as `Err` (a device that fails inside the
/// model's work, where the caller goes on without it).
pub struct Caught<F>(pub F);

impl<F: Future + Unpin> Future for Caught<F> {
    type Output = std::result::Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(panic_text(payload.as_ref()))),
        }
    }
}

/// A caught panic as a failure's text: `panic: ` and its message.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panic: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panic: {s}")
    } else {
        "panic: panic with a non-string payload".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A future that is pending once, then ready (a readback).
    struct Later(bool);

    impl Future for Later {
        type Output = Result<u32>;
        fn poll(
            mut self: Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<u32>> {
            if self.0 {
                return std::task::Poll::Ready(Ok(7));
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }

    #[test]
    fn a_panic_inside_a_future_is_its_error() {
        let panics: Pending<'_, u32> = Box::pin(async { panic!("the device is gone") });
        let text = block_on("caught", async { Ok(Caught(panics).await) })
            .unwrap()
            .unwrap_err();
        assert!(text.starts_with("panic: the device is gone"), "{text}");
        let fine: Pending<'_, u32> = Box::pin(async { 5 });
        assert_eq!(
            block_on("caught", async { Ok(Caught(fine).await) }).unwrap(),
            Ok(5)
        );
    }

    #[test]
    fn a_future_that_waits_is_driven_to_its_end_natively() {
        assert_eq!(block_on("a readback", Later(false)).unwrap(), 7);
        assert_eq!(block_on("ready", async { Ok(3) }).unwrap(), 3);
        let failed: Result<u32> =
            block_on("failing", async { Err(would_wait("the test's frame")) });
        let text = failed.unwrap_err().to_string();
        assert!(
            text.contains("the test's frame") && text.contains("async entry point"),
            "{text}"
        );
    }
}
