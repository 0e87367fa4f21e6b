//! A loaded model on one device, and the engine that runs it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::tensor::backend::Backend;

use super::config::AutoGazeConfig;
use super::engine::{Engine, is_cpu_device};
use super::options::{GenerateOptions, Selection};
use super::registry::registry;
use super::stream::StreamState;
use super::weights::{ModelWeights, load_weights, random_weights};
use crate::error::{AutoGazeError, Result};
use crate::timing::ModelWork;

/// A loaded model on one device.
#[derive(Debug, Clone)]
pub struct AutoGaze<B: Backend> {
    pub(super) config: AutoGazeConfig,
    pub(super) weights: ModelWeights<B>,
    /// What runs the model (chosen when it is built; see
    /// [`AutoGaze::set_engine`]).
    pub(super) engine: Arc<dyn Engine<B>>,
    /// Why a higher-ranked engine was passed over when the default was
    /// chosen, if one was.
    fallback: Option<String>,
    /// Where selection runs (None: [`AutoGaze::selection_for`]'s rule).
    selection: Option<Selection>,
    /// Burn's CPU backend (`ndarray`): its "readback" is a copy.
    cpu: bool,
    /// Share decoder calls between streams in lockstep (None: on a GPU
    /// backend only).
    batch_streams: Option<bool>,
    /// Running totals of the decoder calls and readbacks (shared by clones,
    /// as the engine is).
    pub(super) counts: Arc<WorkCounts>,
    /// Wait for the device after each decoder call and each encode.
    pub(super) one_call_in_flight: bool,
}

/// The model's running totals behind [`AutoGaze::work`].
#[derive(Debug, Default)]
pub(super) struct WorkCounts {
    pub(super) decoder_calls: AtomicU64,
    pub(super) readbacks: AtomicU64,
    /// Bytes of model input uploaded, and bytes read back outside the
    /// engine (the engine counts its own: [`Engine::transfers`](super::engine::Engine::transfers)).
    input_bytes: AtomicU64,
    read_bytes: AtomicU64,
}

impl WorkCounts {
    /// Counts `n` device-to-host reads of `bytes` in all (0: bytes the
    /// engine counted).
    pub(super) fn read(&self, n: u64, bytes: usize) {
        self.readbacks.fetch_add(n, Ordering::Relaxed);
        self.read_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts `values` f32 values of model input uploaded.
    pub(super) fn input(&self, values: usize) {
        self.input_bytes
            .fetch_add(4 * values as u64, Ordering::Relaxed);
    }
}

impl<B: Backend> AutoGaze<B> {
    /// Loads a Hugging Face model directory (`config.json` + `model.safetensors`).
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        let config = AutoGazeConfig::from_file(&dir.join("config.json"))?;
        let weights = load_weights(&config, &dir.join("model.safetensors"), device)?;
        Ok(Self::from_parts(config, weights))
    }

    /// A seeded random model of `config`'s size (no weights file needed).
    pub fn random(config: AutoGazeConfig, seed: u64, device: &B::Device) -> Self {
        let weights = random_weights(&config, seed, device);
        Self::from_parts(config, weights)
    }

    /// The model on its device's default engine: the registered engine
    /// with the highest priority there that builds (one that refuses the
    /// model, e.g. for a shape its kernels do not support, is passed over
    /// and the reason kept: [`AutoGaze::engine_fallback`]).
    fn from_parts(config: AutoGazeConfig, weights: ModelWeights<B>) -> Self {
        let device = weights.decoder.embed.device();
        let mut entries: Vec<_> = registry::<B>()
            .into_iter()
            .filter_map(|e| (e.priority)(&device).map(|p| (p, e)))
            .collect();
        entries.sort_by_key(|(p, _)| std::cmp::Reverse(*p));
        let mut passed_over = Vec::new();
        let mut engine = None;
        for (_, entry) in entries {
            match (entry.build)(&weights, &config) {
                Ok(built) => {
                    engine = Some(built);
                    break;
                }
                Err(e) => passed_over.push(format!("{}: {e}", entry.name)),
            }
        }
        let engine = engine.unwrap_or_else(|| {
            Arc::new(super::burn_ops::BurnOps::new(&weights, &config)) as Arc<dyn Engine<B>>
        });
        let fallback = (!passed_over.is_empty())
            .then(|| passed_over.join("; "))
            .or_else(|| engine.fallback_part());
        Self {
            cpu: is_cpu_device::<B>(&device),
            config,
            weights,
            engine,
            fallback,
            selection: None,
            batch_streams: None,
            counts: Arc::default(),
            one_call_in_flight: false,
        }
    }

    /// Runs the model on the registered engine `name` (see
    /// [`AutoGaze::engines`]); an unknown name, or an engine that cannot
    /// run this model on this device, is a typed error naming why. Streams
    /// started before keep the old engine's caches: move them over with
    /// [`AutoGaze::convert_stream`].
    pub fn set_engine(&mut self, name: &str) -> Result<()> {
        let entry = registry::<B>()
            .into_iter()
            .find(|e| e.name == name)
            .ok_or_else(|| {
                AutoGazeError::setting(
                    "model engine",
                    name,
                    format!("one of {}", Self::engine_list()),
                )
            })?;
        self.engine = (entry.build)(&self.weights, &self.config)?;
        self.fallback = self.engine.fallback_part();
        Ok(())
    }

    /// Keeps at most one piece of the model's work (a decoder call, or a
    /// frame's encoding) in the device's queue: each waits for the device
    /// to finish before the next is enqueued. On a queue shared with
    /// rendering (Bevy's), a frame's rendering then waits behind one call at
    /// most, not behind a whole model frame the host enqueued at once; it
    /// costs a host-device round trip a call. Off by default.
    pub fn set_one_call_in_flight(&mut self, on: bool) {
        self.one_call_in_flight = on;
    }

    /// Runs the model on an engine built outside the registry.
    pub fn set_engine_instance(&mut self, engine: Arc<dyn Engine<B>>) {
        self.fallback = engine.fallback_part();
        self.engine = engine;
    }

    /// The engine that runs the model.
    pub fn engine_name(&self) -> &'static str {
        self.engine.name()
    }

    /// Kernel dispatches the engine launched so far (decoder calls and,
    /// with device selection, its picks; None: the engine runs Burn ops and
    /// does not count them).
    pub fn engine_dispatches(&self) -> Option<u64> {
        self.engine.dispatches()
    }

    /// The model's running totals since it was built: decoder calls, the
    /// engine's dispatches and transfer bytes (where it counts them) and
    /// readbacks, over every
    /// stream it ran (`frames` is left 0: a caller counts its frames). Two
    /// readings' [`ModelWork::since`] is the work between them.
    pub fn work(&self) -> ModelWork {
        let c = &self.counts;
        let transfers = self.engine.transfers();
        ModelWork {
            engine: self.engine.name(),
            frames: 0,
            decoder_calls: c.decoder_calls.load(Ordering::Relaxed),
            dispatches: self.engine.dispatches(),
            readbacks: c.readbacks.load(Ordering::Relaxed),
            upload_bytes: transfers.map(|t| t.uploaded + c.input_bytes.load(Ordering::Relaxed)),
            readback_bytes: transfers.map(|t| t.read_back + c.read_bytes.load(Ordering::Relaxed)),
            lent_frames: 0,
        }
    }

    /// Why the default engine is not the highest-ranked one on this device,
    /// when that engine refused the model; else what part of the model the
    /// engine leaves to Burn ops and why, when it does.
    pub fn engine_fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// The registered engines: name, and what each is.
    pub fn engines() -> Vec<(&'static str, &'static str)> {
        registry::<B>().iter().map(|e| (e.name, e.about)).collect()
    }

    /// The registered engines' names, for a message.
    fn engine_list() -> String {
        let names: Vec<&str> = Self::engines().into_iter().map(|(n, _)| n).collect();
        names.join(", ")
    }

    /// A fresh stream on the model's engine.
    pub fn new_stream(&self) -> StreamState<B> {
        StreamState::new(self.engine.new_cache())
    }

    /// `state` with its caches moved to the model's engine (values equal;
    /// a stream already on it is cloned as it is): how a stream started on
    /// one engine continues on another.
    pub fn convert_stream(&self, state: &StreamState<B>) -> Result<StreamState<B>> {
        let mut moved = state.clone();
        if state.engine() != self.engine.name() {
            moved.cache = self.engine.import(&state.cache.export())?;
        }
        Ok(moved)
    }

    /// The selection set with [`AutoGaze::set_selection`], if any.
    pub fn selection(&self) -> Option<Selection> {
        self.selection
    }

    /// Chooses where untraced decoding selects tokens, overriding
    /// [`AutoGaze::selection_for`]'s rule; both give the same tokens.
    pub fn set_selection(&mut self, selection: Selection) {
        self.selection = Some(selection);
    }

    /// Where untraced decoding with `options` selects tokens: the one set
    /// with [`AutoGaze::set_selection`], else
    /// - `Host` on Burn's CPU backend (`ndarray`), where a readback is a copy;
    /// - `Host` with a task-loss requirement: the gate ends frames early, and
    ///   a readback per decoder call costs less than the calls `Device`
    ///   would decode past the stop (on an H100, 6-8 ms against 81-139 ms for
    ///   a frame stopped after its first chunk: PERF_LOOP, 2026-11-23);
    /// - `Device` otherwise (the whole budget is decoded anyway: one
    ///   readback per frame instead of one per call).
    pub fn selection_for(&self, options: &GenerateOptions) -> Selection {
        match self.selection {
            Some(s) => s,
            None if self.cpu || options.task_loss_requirement.is_some() => Selection::Host,
            None => Selection::Device,
        }
    }

    /// Whether [`AutoGaze::step_streams_input`] shares decoder calls between
    /// streams in lockstep (which excludes a task-loss gate). By default it
    /// does on a GPU backend (one chain of kernels for all tiles: 2.5-4x
    /// faster than one tile after another on an H100) and not on burn-ndarray
    /// (15-35 % slower there; PERF_LOOP, 2026-11-23). Same tokens either way.
    pub fn batches_streams(&self) -> bool {
        self.batch_streams.unwrap_or(!self.cpu)
    }

    /// Overrides [`AutoGaze::batches_streams`].
    pub fn set_batch_streams(&mut self, on: bool) {
        self.batch_streams = Some(on);
    }

    /// The configuration.
    pub fn config(&self) -> &AutoGazeConfig {
        &self.config
    }

    /// The device the model's weights live on.
    pub fn device(&self) -> B::Device {
        self.weights.decoder.embed.device()
    }
}
