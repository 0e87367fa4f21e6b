//! The frame pipeline: one call per frame through the stages that exist,
//! returning the stage timings. Mask planning, interframe composition and
//! display join here as they land; every front end (perf harness, Bevy
//! plugin, web) drives this one type.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::frame::Frame;
use crate::preprocess::{ModelInput, Preprocessor};
use crate::ring::{FrameRing, RingCounters};
use crate::source::{FrameSource, SourceOptions, open_source};
use crate::timing::{Stage, StageTimes};

/// What a pipeline is built from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PipelineOptions {
    pub source: SourceOptions,
    /// Frames the ring between source and consumer holds.
    pub ring_capacity: usize,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            source: SourceOptions::default(),
            ring_capacity: 2,
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    /// Sequence number of the frame processed.
    pub seq: u64,
    /// Wall time of each stage.
    pub times: StageTimes,
    /// RGBA bytes that entered the pipeline.
    pub bytes_in: usize,
}

/// Source -> ring -> preprocessing, with buffers reused across steps.
pub struct FramePipeline {
    source: Box<dyn FrameSource>,
    ring: FrameRing,
    preprocessor: Preprocessor,
    input: ModelInput,
    current: Option<Frame>,
}

impl FramePipeline {
    /// Opens the source and plans the stages.
    pub fn new(options: &PipelineOptions) -> Result<Self> {
        let preprocessor = Preprocessor::release();
        Ok(Self {
            source: open_source(&options.source)?,
            ring: FrameRing::new(options.ring_capacity)?,
            input: ModelInput::new(preprocessor.model_size()),
            preprocessor,
            current: None,
        })
    }

    /// Pulls one frame through every stage.
    pub fn step(&mut self) -> Result<StepReport> {
        let mut times = StageTimes::default();
        // Release the previous frame first so its buffer returns to the pool.
        self.current = None;
        let t0 = Instant::now();
        let frame = self.source.next_frame()?;
        let t1 = Instant::now();
        times.add(Stage::Source, t1 - t0);

        self.ring.push(frame);
        let frame = self.ring.take_latest();
        let t2 = Instant::now();
        times.add(Stage::Buffer, t2 - t1);

        let Some(frame) = frame else {
            // The ring only rejects stale frames; a source never repeats one.
            return Ok(StepReport {
                seq: self.ring.last_seq().unwrap_or(0),
                times,
                bytes_in: 0,
            });
        };
        self.preprocessor
            .clip_into(std::slice::from_ref(&frame), &mut self.input)?;
        times.add(Stage::Preprocess, t2.elapsed());
        let report = StepReport {
            seq: frame.seq,
            times,
            bytes_in: frame.rgba().len(),
        };
        self.current = Some(frame);
        Ok(report)
    }

    /// The frame of the last step.
    pub fn current_frame(&self) -> Option<&Frame> {
        self.current.as_ref()
    }

    /// The model input of the last step (`[1, 1, 3, 224, 224]`).
    pub fn model_input(&self) -> &ModelInput {
        &self.input
    }

    /// The source's name.
    pub fn source_name(&self) -> &str {
        self.source.name()
    }

    /// Ring counters.
    pub fn ring_counters(&self) -> RingCounters {
        self.ring.counters()
    }

    /// Bytes held by pooled buffers (source pools and caches, model input).
    pub fn pooled_bytes(&self) -> usize {
        self.source.pooled_bytes() + std::mem::size_of_val(self.input.data())
    }
}

/// Times a plain copy of `frame`'s bytes into `scratch`: the memory-bound
/// yardstick every stage is compared with in the same run.
pub fn time_frame_memcpy(frame: &Frame, scratch: &mut Vec<u8>) -> Duration {
    scratch.resize(frame.rgba().len(), 0);
    let t = Instant::now();
    scratch.copy_from_slice(frame.rgba());
    std::hint::black_box(&scratch);
    t.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameSize;
    use crate::source::SourceKind;

    #[test]
    fn steps_run_every_stage_and_reuse_buffers() {
        let options = PipelineOptions {
            source: SourceOptions {
                kind: SourceKind::SyntheticPan,
                size: FrameSize::new(96, 54).unwrap(),
                ..SourceOptions::default()
            },
            ring_capacity: 2,
        };
        let mut pipeline = FramePipeline::new(&options).unwrap();
        let first = pipeline.step().unwrap();
        let pooled = pipeline.pooled_bytes();
        let input_ptr = pipeline.model_input().data().as_ptr();
        for i in 1..10 {
            let report = pipeline.step().unwrap();
            assert_eq!(report.seq, i);
            assert_eq!(report.bytes_in, 96 * 54 * 4);
            assert!(report.times.get(Stage::Preprocess) > Duration::ZERO);
        }
        assert_eq!(first.seq, 0);
        assert_eq!(
            pipeline.pooled_bytes(),
            pooled,
            "no pool growth in steady state"
        );
        assert_eq!(pipeline.model_input().data().as_ptr(), input_ptr);
        assert_eq!(pipeline.model_input().shape(), [1, 1, 3, 224, 224]);
        let c = pipeline.ring_counters();
        assert_eq!((c.admitted, c.dropped, c.stale), (10, 0, 0));
    }
}
