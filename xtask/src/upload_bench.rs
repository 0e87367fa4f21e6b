//! The upload lane of `cargo xtask crossover`: texture writes of a composed
//! frame's dirty regions against one whole-frame write, timed through the
//! submit on a wgpu device of its own (the adapter Bevy would pick).

use std::time::{Duration, Instant};

use burn_autogaze::FrameSize;
use burn_autogaze::upload::StagedUpload;

/// A device and one texture per frame size.
pub struct UploadBench {
    device: wgpu::Device,
    queue: wgpu::Queue,
    texture: Option<(FrameSize, wgpu::Texture)>,
    pub adapter: String,
}

impl UploadBench {
    /// Opens the first high-performance adapter (Vulkan first, as Bevy).
    pub fn open() -> Result<Self, String> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        if std::env::var_os("WGPU_BACKEND").is_none() {
            desc.backends = wgpu::Backends::VULKAN | wgpu::Backends::GL;
        }
        let instance = wgpu::Instance::new(desc);
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        }))
        .map_err(|e| format!("no wgpu adapter for the upload lane: {e}"))?;
        let info = adapter.get_info();
        let (device, queue) =
            pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default()))
                .map_err(|e| format!("cannot open {}: {e}", info.name))?;
        Ok(Self {
            device,
            queue,
            texture: None,
            adapter: format!("{} ({:?})", info.name, info.backend),
        })
    }

    fn texture(&mut self, size: FrameSize) -> &wgpu::Texture {
        if self.texture.as_ref().is_none_or(|(s, _)| *s != size) {
            let t = self.device.create_texture(&wgpu::TextureDescriptor {
                label: Some("crossover-upload"),
                size: wgpu::Extent3d {
                    width: size.width,
                    height: size.height,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: wgpu::TextureFormat::Rgba8UnormSrgb,
                usage: wgpu::TextureUsages::COPY_DST | wgpu::TextureUsages::TEXTURE_BINDING,
                view_formats: &[],
            });
            self.texture = Some((size, t));
        }
        &self.texture.as_ref().expect("created above").1
    }

    /// Writes every region of `staged` and waits for the submit: the host
    /// cost (staging copies) plus what the driver does at submit.
    pub fn time(&mut self, staged: &StagedUpload) -> Result<Duration, String> {
        let size = staged.size().ok_or("nothing staged")?;
        let texture = self.texture(size).clone();
        let t = Instant::now();
        for r in staged.regions() {
            self.queue.write_texture(
                wgpu::TexelCopyTextureInfo {
                    texture: &texture,
                    mip_level: 0,
                    origin: wgpu::Origin3d {
                        x: r.rect.x0,
                        y: r.rect.y0,
                        z: 0,
                    },
                    aspect: wgpu::TextureAspect::All,
                },
                staged.region_bytes(r),
                wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(r.bytes_per_row()),
                    rows_per_image: Some(r.rect.height()),
                },
                wgpu::Extent3d {
                    width: r.rect.width(),
                    height: r.rect.height(),
                    depth_or_array_layers: 1,
                },
            );
        }
        self.queue.submit([]);
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(Duration::from_secs(30)),
            })
            .map_err(|e| format!("upload did not finish: {e}"))?;
        Ok(t.elapsed())
    }
}
