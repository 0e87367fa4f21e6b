//! When the model's device fails, the model moves to the host.
//!
//! A wgpu device can be lost (driver reset, `destroy`, unplugged GPU) or run
//! out of memory. Burn's wgpu runtime then panics on the next call that
//! touches the device: it does not hang (a lost device and its queue
//! answer at once), so the panic is the signal. [`HostFallback`] wraps a
//! model source on a device. On a panic, or on an error that names a lost
//! device or out-of-memory, it drops the device's model and builds the same
//! model on the host (Burn's ndarray backend, host preprocessing): the same
//! frame gets its mask from the host, and so does every later frame. The
//! fault is kept in a [`FaultWatch`] for the overlay and the summary.
//!
//! Whoever owns the device can tell the watch what it saw first (wgpu's
//! device-lost callback, an out-of-memory error) with
//! [`FaultWatch::report`]. The model's own panic only says that a call
//! failed, so that report names the kind when there is one.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{AutoGazeError, Result};
use crate::frame::Frame;
use crate::mask_source::{
    InputPlace, MaskSource, MaskSourceKind, MaskTiles, ModelBackend, ModelOptions,
};
use crate::timing::StageTimes;
use crate::tokens::GazeTokens;
use crate::wait::{Caught, Pending};

crate::names::named_enum! {
    /// What went wrong with a device.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "kebab-case")]
    pub enum FaultKind ("device fault") {
        /// The device was lost.
        Lost => "lost",
        /// The device ran out of memory.
        OutOfMemory => "out-of-memory",
        /// A call on the device failed without saying why (a panic in the
        /// runtime).
        Failed => "failed",
    }
}

impl FaultKind {
    /// The kind a failure's text names (`Failed` when it names none).
    pub fn of_message(message: &str) -> Self {
        let m = message.to_ascii_lowercase();
        if m.contains("lost") || m.contains("destroyed") {
            Self::Lost
        } else if m.contains("out of memory") || m.contains("outofmemory") {
            Self::OutOfMemory
        } else {
            Self::Failed
        }
    }
}

/// A device fault and what the model did about it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeviceFault {
    /// What went wrong.
    pub kind: FaultKind,
    /// The frame the model failed on.
    pub seq: u64,
    /// The device's report and the model's failure, in words.
    pub message: String,
    /// The device the model runs on since (None: the host model could not
    /// be built, e.g. the `ndarray` feature is off; the mask then stays
    /// where it was).
    pub fallback: Option<String>,
}

#[derive(Debug, Default)]
struct Watch {
    /// What the device's owner reported, until a failure takes it.
    reported: Option<(FaultKind, String)>,
    fault: Option<DeviceFault>,
}

/// Where a device fault is reported and kept (cheap to clone; shared by the
/// fallback on the mask worker, the pipeline and the device's owner).
#[derive(Debug, Clone, Default)]
pub struct FaultWatch {
    state: Arc<Mutex<Watch>>,
    /// Counts changes of the fault (recorded, then refined by a report).
    generation: Arc<AtomicU64>,
}

impl FaultWatch {
    fn state(&self) -> std::sync::MutexGuard<'_, Watch> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the device's owner saw (its lost callback, an out-of-memory
    /// error): the model's next failure is classified by it. The first
    /// report is kept. A fault already recorded without a kind (the model's
    /// call failed before the owner heard why) takes this one's.
    pub fn report(&self, kind: FaultKind, message: impl Into<String>) {
        let mut state = self.state();
        match state.fault.as_mut() {
            Some(fault) if fault.kind == FaultKind::Failed && kind != FaultKind::Failed => {
                fault.kind = kind;
                fault.message = format!("{}; {}", message.into(), fault.message);
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
            Some(_) => {}
            None => {
                state.reported.get_or_insert((kind, message.into()));
            }
        }
    }

    /// Changes of the fault so far (0: none; no lock, read every frame).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// True once the model left its device (no lock: read every frame).
    pub fn failed(&self) -> bool {
        self.generation() > 0
    }

    /// The fault, once the model left its device.
    pub fn fault(&self) -> Option<DeviceFault> {
        self.state().fault.clone()
    }

    fn record(&self, seq: u64, failure: String, fallback: Option<String>) -> DeviceFault {
        let mut state = self.state();
        let (kind, message) = match state.reported.take() {
            Some((kind, report)) => (kind, format!("{report}; then {failure}")),
            None => (FaultKind::of_message(&failure), failure),
        };
        let fault = DeviceFault {
            kind,
            seq,
            message,
            fallback,
        };
        state.fault = Some(fault.clone());
        self.generation.fetch_add(1, Ordering::AcqRel);
        fault
    }
}

/// The same model on the host: Burn's ndarray backend, its default engine,
/// host preprocessing.
pub fn on_the_host(options: &ModelOptions) -> ModelOptions {
    ModelOptions {
        backend: ModelBackend::Ndarray,
        engine: None,
        preprocess: InputPlace::Host,
        ..options.clone()
    }
}

/// A model source on a device that hands over to the same model on the host
/// when the device fails (see the module docs).
pub struct HostFallback {
    device: Option<Box<dyn MaskSource>>,
    host: Option<Box<dyn MaskSource>>,
    options: ModelOptions,
    watch: FaultWatch,
}

impl HostFallback {
    /// Wraps `device`, a model source built from `options`; faults go to
    /// `watch`.
    pub fn new(device: Box<dyn MaskSource>, options: &ModelOptions, watch: FaultWatch) -> Self {
        Self {
            device: Some(device),
            host: None,
            options: options.clone(),
            watch,
        }
    }

    /// Drops the device's model and builds the host's.
    fn leave_device(&mut self, seq: u64, failure: String) {
        if let Some(device) = self.device.take() {
            // Freeing its buffers may fail the same way: that is no news.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(device)));
        }
        let host = on_the_host(&self.options);
        let (host, failure) = match MaskSourceKind::Autogaze.build(Default::default(), &host) {
            Ok(source) => (Some(source), failure),
            Err(e) => (None, format!("{failure}; no host model: {e}")),
        };
        let fallback = host
            .as_ref()
            .map(|h| h.device().unwrap_or_else(|| "host".into()));
        let fault = self.watch.record(seq, failure, fallback);
        eprintln!(
            "burn_autogaze: the model's device failed on frame {seq} ({}): {}; the model runs on {}",
            fault.kind,
            fault.message,
            fault.fallback.as_deref().unwrap_or("nothing")
        );
        self.host = host;
    }
}

/// True when an error's text says the device itself failed (a plain error,
/// e.g. a frame the model refuses, stays the caller's).
fn names_a_device_fault(message: &str) -> bool {
    FaultKind::of_message(message) != FaultKind::Failed
}

impl MaskSource for HostFallback {
    fn tokens_into(
        &mut self,
        frame: &Frame,
        reference: Option<&[u8]>,
        out: &mut GazeTokens,
        tiles: &mut MaskTiles,
        times: &mut StageTimes,
    ) -> Result<()> {
        crate::wait::block_on(
            "the model's frame",
            self.tokens_into_async(frame, reference, out, tiles, times),
        )
    }

    fn tokens_into_async<'a>(
        &'a mut self,
        frame: &'a Frame,
        reference: Option<&'a [u8]>,
        out: &'a mut GazeTokens,
        tiles: &'a mut MaskTiles,
        times: &'a mut StageTimes,
    ) -> Pending<'a, Result<()>> {
        Box::pin(async move {
            if let Some(device) = self.device.as_mut() {
                let outcome =
                    Caught(device.tokens_into_async(frame, reference, out, tiles, times)).await;
                let failure = match outcome {
                    Ok(Ok(())) => return Ok(()),
                    Ok(Err(e)) => {
                        let text = e.to_string();
                        if !names_a_device_fault(&text) {
                            return Err(e);
                        }
                        text
                    }
                    Err(panic) => panic,
                };
                self.leave_device(frame.seq, failure);
                out.clear();
                tiles.clear();
            }
            match self.host.as_mut() {
                Some(host) => {
                    host.tokens_into_async(frame, reference, out, tiles, times)
                        .await
                }
                None => Err(AutoGazeError::Engine {
                    engine: "model device".into(),
                    reason: self.watch.fault().map_or_else(
                        || "the device failed".into(),
                        |f| format!("the device failed ({}): {}", f.kind, f.message),
                    ),
                }),
            }
        })
    }

    fn wants_reference(&self) -> bool {
        false
    }

    fn device(&self) -> Option<String> {
        match (&self.device, &self.host) {
            (Some(device), _) => device.device(),
            (None, Some(host)) => host.device(),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_classified_by_their_text() {
        for (text, kind) in [
            ("Parent device is lost", FaultKind::Lost),
            ("LOST Destroyed", FaultKind::Lost),
            ("wgpu error: Out of Memory", FaultKind::OutOfMemory),
            ("OutOfMemory { source }", FaultKind::OutOfMemory),
            (
                "called `Result::unwrap()` on an `Err` value: CallError",
                FaultKind::Failed,
            ),
        ] {
            assert_eq!(FaultKind::of_message(text), kind, "{text}");
        }
    }

    #[test]
    fn the_owners_report_names_the_kind_and_the_first_report_is_kept() {
        let watch = FaultWatch::default();
        assert!(!watch.failed() && watch.fault().is_none());
        watch.report(FaultKind::OutOfMemory, "allocation of 4 GiB failed");
        watch.report(FaultKind::Lost, "later");
        let fault = watch.record(7, "panic: CallError".into(), Some("Cpu".into()));
        assert!(watch.failed());
        assert_eq!(fault.kind, FaultKind::OutOfMemory);
        assert_eq!(fault.seq, 7);
        assert!(
            fault
                .message
                .starts_with("allocation of 4 GiB failed; then panic"),
            "{fault:?}"
        );
        assert_eq!(watch.fault(), Some(fault));
        assert_eq!(watch.generation(), 1);
        // A failure without a kind takes the owner's later report's.
        let watch = FaultWatch::default();
        watch.record(3, "panic: CallError".into(), None);
        assert_eq!(watch.fault().unwrap().kind, FaultKind::Failed);
        watch.report(FaultKind::Lost, "device lost (Destroyed)");
        let fault = watch.fault().unwrap();
        assert_eq!((fault.kind, watch.generation()), (FaultKind::Lost, 2));
        assert_eq!(fault.message, "device lost (Destroyed); panic: CallError");
        watch.report(FaultKind::OutOfMemory, "later");
        assert_eq!(
            (watch.fault().unwrap().kind, watch.generation()),
            (FaultKind::Lost, 2)
        );
    }

    /// The host model, wrapped as a device model that fails from frame
    /// `at` on (a panic, or an out-of-memory error).
    struct Breaks {
        inner: Box<dyn MaskSource>,
        at: u64,
        oom: bool,
    }

    impl MaskSource for Breaks {
        fn tokens_into(
            &mut self,
            frame: &Frame,
            reference: Option<&[u8]>,
            out: &mut GazeTokens,
            tiles: &mut MaskTiles,
            times: &mut StageTimes,
        ) -> Result<()> {
            if frame.seq == self.at + 9 {
                // A plain error is not a device fault.
                return Err(AutoGazeError::Engine {
                    engine: "test".into(),
                    reason: "a frame the model refuses".into(),
                });
            }
            if frame.seq >= self.at {
                out.push(3);
                if self.oom {
                    return Err(AutoGazeError::Engine {
                        engine: "wgpu".into(),
                        reason: "Out of Memory creating a buffer".into(),
                    });
                }
                panic!("called `Result::unwrap()` on an `Err` value: CallError");
            }
            self.inner.tokens_into(frame, reference, out, tiles, times)
        }

        fn device(&self) -> Option<String> {
            Some("FakeGpu".into())
        }
    }

    fn frames(n: u64) -> Vec<Frame> {
        let options = crate::source::SourceOptions {
            kind: crate::source::SourceKind::SyntheticLocal,
            size: crate::frame::FrameSize::new(96, 54).unwrap(),
            ..Default::default()
        };
        let mut source = crate::source::open_source(&options).unwrap();
        (0..n).map(|_| source.next_frame().unwrap()).collect()
    }

    fn tokens(source: &mut dyn MaskSource, frame: &Frame) -> Result<Vec<u32>> {
        let (mut out, mut tiles) = (GazeTokens::default(), MaskTiles::default());
        source.tokens_into(
            frame,
            None,
            &mut out,
            &mut tiles,
            &mut StageTimes::default(),
        )?;
        Ok(out.valid().collect())
    }

    #[cfg(feature = "ndarray")]
    #[test]
    fn a_failing_device_hands_the_same_frame_and_the_rest_to_the_host_model() {
        let options = ModelOptions {
            gazing_ratio: 0.05,
            ..Default::default()
        };
        let model = || {
            MaskSourceKind::Autogaze
                .build(Default::default(), &options)
                .unwrap()
        };
        let frames = frames(15);
        for oom in [false, true] {
            let watch = FaultWatch::default();
            let device = Box::new(Breaks {
                inner: model(),
                at: 2,
                oom,
            });
            let mut source = HostFallback::new(device, &options, watch.clone());
            let mut reference = model();
            for frame in &frames[..2] {
                assert_eq!(
                    tokens(&mut source, frame).unwrap(),
                    tokens(&mut *reference, frame).unwrap()
                );
            }
            assert!(!watch.failed());
            assert_eq!(source.device().as_deref(), Some("FakeGpu"));
            // From the failing frame on, a fresh host model's masks.
            let mut fresh = model();
            for frame in &frames[2..12] {
                let got = tokens(&mut source, frame).unwrap();
                assert_eq!(
                    got,
                    tokens(&mut *fresh, frame).unwrap(),
                    "frame {}",
                    frame.seq
                );
                assert_eq!(got.len(), 13);
            }
            let fault = watch.fault().unwrap();
            let kind = if oom {
                FaultKind::OutOfMemory
            } else {
                FaultKind::Failed
            };
            assert_eq!((fault.kind, fault.seq), (kind, 2), "{fault:?}");
            assert_eq!(fault.fallback, source.device());
            assert_eq!(fault.fallback, reference.device());
        }
        // A plain error before any fault stays the caller's: no fallback.
        let watch = FaultWatch::default();
        let device = Box::new(Breaks {
            inner: model(),
            at: 5,
            oom: false,
        });
        let mut source = HostFallback::new(device, &options, watch.clone());
        let err = tokens(&mut source, &frames[15 - 1])
            .unwrap_err()
            .to_string();
        assert!(err.contains("refuses"), "{err}");
        assert!(!watch.failed());
        // A lost device reported by its owner names the kind.
        watch.report(FaultKind::Lost, "device lost: Destroyed");
        assert_eq!(tokens(&mut source, &frames[6]).unwrap().len(), 13);
        let fault = watch.fault().unwrap();
        assert_eq!(fault.kind, FaultKind::Lost);
        assert!(
            fault.message.contains("Destroyed") && fault.message.contains("CallError"),
            "{fault:?}"
        );
    }
}
