//! What the plugin's compute passes share (the tensor-to-texture copy, the
//! device mask panel): a pipeline from WGSL with its bind group layout, and
//! small buffers written once.

/// A compute pipeline and the layout of its one bind group.
pub(crate) struct ComputePass {
    pub(crate) layout: wgpu::BindGroupLayout,
    pub(crate) pipeline: wgpu::ComputePipeline,
}

impl ComputePass {
    /// The pipeline of `wgsl`'s `main`, binding `i` of group 0 of type
    /// `bindings[i]`, visible to the compute stage.
    pub(crate) fn new(
        device: &wgpu::Device,
        label: &'static str,
        wgsl: &str,
        bindings: &[wgpu::BindingType],
    ) -> Self {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(label),
            source: wgpu::ShaderSource::Wgsl(wgsl.into()),
        });
        let entries: Vec<wgpu::BindGroupLayoutEntry> = bindings
            .iter()
            .enumerate()
            .map(|(i, ty)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: *ty,
                count: None,
            })
            .collect();
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(label),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(label),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(label),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        Self { layout, pipeline }
    }

    /// Records one dispatch of `groups` (x, y) workgroups into `encoder`,
    /// binding `i` of group 0 bound to `resources[i]`.
    pub(crate) fn record(
        &self,
        device: &wgpu::Device,
        encoder: &mut wgpu::CommandEncoder,
        label: &'static str,
        resources: &[wgpu::BindingResource],
        groups: [u32; 2],
    ) {
        let entries: Vec<wgpu::BindGroupEntry> = resources
            .iter()
            .enumerate()
            .map(|(i, resource)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: resource.clone(),
            })
            .collect();
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &self.layout,
            entries: &entries,
        });
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(label),
            timestamp_writes: None,
        });
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], 1);
    }
}

/// A sampled `rgba8unorm` view of `image`: its bytes, also behind an sRGB
/// format (None: the texture allows no such view, e.g. made without the
/// view format).
pub(crate) fn byte_view(
    image: &bevy::render::texture::GpuImage,
) -> Option<bevy::render::render_resource::TextureView> {
    let d = &image.texture_descriptor;
    let rgba8 = wgpu::TextureFormat::Rgba8Unorm;
    (d.format == rgba8 || d.view_formats.contains(&rgba8)).then(|| {
        image.texture.create_view(&wgpu::TextureViewDescriptor {
            label: Some("autogaze-bytes"),
            format: Some(rgba8),
            usage: Some(wgpu::TextureUsages::TEXTURE_BINDING),
            ..Default::default()
        })
    })
}

/// A buffer binding of `ty` (no dynamic offset, any size).
pub(crate) fn buffer_binding(ty: wgpu::BufferBindingType) -> wgpu::BindingType {
    wgpu::BindingType::Buffer {
        ty,
        has_dynamic_offset: false,
        min_binding_size: None,
    }
}

/// A 2D texture read by `textureLoad` (not filtered): the frame a pass
/// reads.
pub(crate) const LOADED_TEXTURE: wgpu::BindingType = wgpu::BindingType::Texture {
    sample_type: wgpu::TextureSampleType::Float { filterable: false },
    view_dimension: wgpu::TextureViewDimension::D2,
    multisampled: false,
};

/// The write-only `rgba8unorm` 2D storage texture binding both passes write.
pub(crate) const RGBA8_STORAGE: wgpu::BindingType = wgpu::BindingType::StorageTexture {
    access: wgpu::StorageTextureAccess::WriteOnly,
    format: wgpu::TextureFormat::Rgba8Unorm,
    view_dimension: wgpu::TextureViewDimension::D2,
};

/// A new buffer of `usage` (plus `COPY_DST`) holding `bytes`, written
/// through the queue.
pub(crate) fn filled_buffer(
    device: &wgpu::Device,
    queue: &bevy::render::renderer::RenderQueue,
    label: &'static str,
    usage: wgpu::BufferUsages,
    bytes: &[u8],
) -> wgpu::Buffer {
    let buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes.len() as u64,
        usage: usage | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    queue.write_buffer(&buffer, 0, bytes);
    buffer
}

/// A uniform buffer holding `values` (little-endian `u32`s), written
/// through the queue: a pass's parameters.
pub(crate) fn uniform_u32s(
    device: &wgpu::Device,
    queue: &bevy::render::renderer::RenderQueue,
    label: &'static str,
    values: &[u32],
) -> wgpu::Buffer {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    filled_buffer(device, queue, label, wgpu::BufferUsages::UNIFORM, &bytes)
}
