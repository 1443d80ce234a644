//! GPU compute through wgpu (Vulkan, Metal, DX12): any vendor's GPU, and Mesa's software Vulkan
//! device (lavapipe) in the tests.
//!
//! [`Gpu`] owns its own device and queue (never the UI's, so drawing is not starved by a long
//! dispatch). [`GpuTensor`]s are f32 storage buffers with a shape; weights are uploaded once and
//! activations stay on the GPU between kernels ([`ops`]); only the result is read back. Every
//! kernel is tested against the CPU implementation.

mod layers;
pub mod ops;
pub mod unet;
pub mod vae;

use crate::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use wgpu::util::DeviceExt;

/// Where inference runs (`--device`, Settings).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ComputeDevice {
    /// A hardware GPU through wgpu when there is one, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// wgpu (Vulkan, Metal, DX12), a software adapter included.
    Wgpu,
    /// candle's CUDA backend (a build with the `cuda` feature).
    Cuda,
    /// candle's Metal backend (a build with the `metal` feature).
    Metal,
}

impl ComputeDevice {
    /// Parses `auto`, `cpu`, `wgpu`, `cuda` or `metal`.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "auto" => ComputeDevice::Auto,
            "cpu" => ComputeDevice::Cpu,
            "wgpu" | "gpu" => ComputeDevice::Wgpu,
            "cuda" => ComputeDevice::Cuda,
            "metal" => ComputeDevice::Metal,
            _ => return None,
        })
    }

    /// The name `parse` reads.
    pub fn name(self) -> &'static str {
        match self {
            ComputeDevice::Auto => "auto",
            ComputeDevice::Cpu => "cpu",
            ComputeDevice::Wgpu => "wgpu",
            ComputeDevice::Cuda => "cuda",
            ComputeDevice::Metal => "metal",
        }
    }

    /// The GPU to run on: none for the CPU, wgpu's adapter for `wgpu`, and for `auto` a
    /// hardware adapter when one opens (a software one such as lavapipe is slower than the CPU
    /// path). CUDA and Metal need builds with those features.
    pub fn open(self) -> Result<Option<Arc<Gpu>>> {
        match self {
            ComputeDevice::Cpu => Ok(None),
            ComputeDevice::Wgpu => Gpu::new().map(|g| Some(Arc::new(g))),
            ComputeDevice::Auto => Ok(Gpu::new().ok().filter(|g| !g.is_software()).map(Arc::new)),
            ComputeDevice::Cuda | ComputeDevice::Metal => Err(Error::Gpu(format!(
                "this build of Kiln has no {} backend (build with `--features {}`); use \
                 --device wgpu for any GPU, or --device cpu",
                self.name(),
                self.name()
            ))),
        }
    }
}

/// Storage buffers bound by one kernel, at most.
const MAX_BINDINGS: usize = 6;

/// A wgpu device and queue of Kiln's own, with the compiled kernels.
pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    max_buffer: u64,
    pipelines: Mutex<HashMap<&'static str, Arc<Pipeline>>>,
}

/// A compiled kernel and its bind group layout.
struct Pipeline {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// An f32 tensor in a GPU storage buffer (row-major).
#[derive(Clone, Debug)]
pub struct GpuTensor {
    buffer: Arc<wgpu::Buffer>,
    shape: Vec<usize>,
}

impl GpuTensor {
    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether it holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same values under another shape of the same size.
    pub fn reshape(&self, shape: &[usize]) -> Result<GpuTensor> {
        if shape.iter().product::<usize>() != self.len() {
            return Err(Error::InvalidArgument(format!(
                "cannot reshape {:?} to {shape:?}",
                self.shape
            )));
        }
        Ok(GpuTensor {
            buffer: self.buffer.clone(),
            shape: shape.to_vec(),
        })
    }
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("adapter", &self.adapter_name())
            .finish()
    }
}

impl Gpu {
    /// Opens the first GPU wgpu finds (high-performance preferred; a software device such as
    /// lavapipe when there is no other). `KILN_WGPU_ADAPTER=NAME` picks the adapter whose name
    /// contains `NAME`.
    pub fn new() -> Result<Self> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let wanted = std::env::var("KILN_WGPU_ADAPTER").ok();
        let adapter = match &wanted {
            Some(name) => pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
                .into_iter()
                .find(|a| a.get_info().name.contains(name.as_str()))
                .ok_or_else(|| Error::Gpu(format!("no GPU adapter named like {name:?}")))?,
            None => pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                force_fallback_adapter: false,
                compatible_surface: None,
                ..Default::default()
            }))
            .map_err(|e| Error::Gpu(format!("no usable GPU adapter: {e}")))?,
        };
        let info = adapter.get_info();
        let limits = adapter.limits();
        // KILN_WGPU_MAX_BUFFER_MB caps the largest tensor Kiln puts on the GPU (to leave memory
        // to other programs; larger ones make the job fall back to the CPU).
        let cap = std::env::var("KILN_WGPU_MAX_BUFFER_MB")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|mb| *mb >= 0.0)
            .map(|mb| (mb * 1048576.0) as u64);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("kiln compute"),
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| Error::Gpu(format!("cannot open {}: {e}", info.name)))?;
        // Errors inside `guarded` are returned; anything else is reported, never a panic.
        device.on_uncaptured_error(Arc::new(|e| eprintln!("kiln: GPU error: {e}")));
        Ok(Gpu {
            device,
            queue,
            max_buffer: cap.map_or(limits.max_storage_buffer_binding_size, |c| {
                c.min(limits.max_storage_buffer_binding_size)
            }),
            info,
            pipelines: Mutex::new(HashMap::new()),
        })
    }

    /// Whether the adapter is a software rasteriser on the CPU (lavapipe, WARP, SwiftShader).
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// The adapter's name and backend, e.g. "llvmpipe (LLVM 19.1.7, 256 bits) (Vulkan)".
    pub fn adapter_name(&self) -> String {
        format!("{} ({:?})", self.info.name, self.info.backend)
    }

    /// Uploads `data` as a tensor of `shape`.
    pub fn upload(&self, data: &[f32], shape: &[usize]) -> Result<GpuTensor> {
        if data.len() != shape.iter().product::<usize>() {
            return Err(Error::InvalidArgument(format!(
                "{} values for shape {shape:?}",
                data.len()
            )));
        }
        self.check_size(data.len())?;
        // wgpu refuses empty buffers: keep at least one value.
        let bytes: &[u8] = if data.is_empty() {
            &[0; 4]
        } else {
            bytemuck_f32(data)
        };
        let buffer = self.guarded("upload", || {
            self.device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: None,
                    contents: bytes,
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                })
        })?;
        Ok(GpuTensor {
            buffer: Arc::new(buffer),
            shape: shape.to_vec(),
        })
    }

    /// A new tensor of `shape` (contents unspecified until a kernel writes it).
    pub fn empty(&self, shape: &[usize]) -> Result<GpuTensor> {
        let len = shape.iter().product::<usize>();
        self.check_size(len)?;
        let buffer = self.guarded("allocation", || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: (len.max(1) * 4) as u64,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        Ok(GpuTensor {
            buffer: Arc::new(buffer),
            shape: shape.to_vec(),
        })
    }

    /// Reads a tensor back (waits for the kernels before it).
    pub fn download(&self, t: &GpuTensor) -> Result<Vec<f32>> {
        let size = (t.len().max(1) * 4) as u64;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read back"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&t.buffer, 0, &staging, 0, size);
        self.queue.submit([encoder.finish()]);
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            tx.send(r).ok();
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))?;
        rx.recv()
            .map_err(|_| Error::Gpu("the read-back was dropped".into()))?
            .map_err(|e| Error::Gpu(format!("cannot read the result back: {e}")))?;
        let values = {
            let view = slice
                .get_mapped_range()
                .map_err(|e| Error::Gpu(format!("cannot read the result back: {e}")))?;
            view.chunks_exact(4)
                .take(t.len())
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        };
        staging.unmap();
        Ok(values)
    }

    /// Runs `f` with wgpu's out-of-memory and validation errors caught: an allocation the GPU
    /// cannot make becomes a clear [`Error::Gpu`] (the caller can fall back to tiles or the CPU).
    fn guarded<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let memory = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let value = f();
        if let Some(e) = pollster::block_on(memory.pop()) {
            drop(pollster::block_on(validation.pop()));
            return Err(Error::Gpu(format!(
                "out of GPU memory ({what}): {e}; try a smaller size or the CPU"
            )));
        }
        if let Some(e) = pollster::block_on(validation.pop()) {
            return Err(Error::Gpu(format!("{what}: {e}")));
        }
        Ok(value)
    }

    /// A clear error instead of a device loss when a tensor exceeds what the adapter binds.
    fn check_size(&self, len: usize) -> Result<()> {
        let bytes = (len * 4) as u64;
        if bytes > self.max_buffer {
            return Err(Error::Gpu(format!(
                "a tensor of {} MiB exceeds the {} MiB this GPU can bind; use a smaller size or the CPU",
                bytes >> 20,
                self.max_buffer >> 20
            )));
        }
        Ok(())
    }

    /// The compiled kernel `entry` of `source` (compiled on first use).
    fn pipeline(
        &self,
        source: &'static str,
        entry: &'static str,
        bindings: usize,
    ) -> Result<Arc<Pipeline>> {
        let mut cache = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = cache.get(entry) {
            return Ok(p.clone());
        }
        let p = self.guarded(entry, || self.compile(source, entry, bindings))?;
        cache.insert(entry, p.clone());
        Ok(p)
    }

    fn compile(&self, source: &'static str, entry: &'static str, bindings: usize) -> Arc<Pipeline> {
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(entry),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        let mut entries: Vec<wgpu::BindGroupLayoutEntry> = (0..bindings)
            .map(|i| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        // The last storage buffer is the output.
                        read_only: i + 1 < bindings,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        entries.push(wgpu::BindGroupLayoutEntry {
            binding: MAX_BINDINGS as u32,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        });
        let layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(entry),
                entries: &entries,
            });
        let pipeline_layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(entry),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            });
        Arc::new(Pipeline { pipeline, layout })
    }

    /// Runs kernel `entry` of `source` over `groups` workgroups with `inputs` (read-only),
    /// `output` (written) and `params` (16 words of uniforms: integers, or f32 bits).
    fn dispatch(
        &self,
        (source, entry): (&'static str, &'static str),
        inputs: &[&GpuTensor],
        output: &GpuTensor,
        params: &[u32],
        groups: (u32, u32, u32),
    ) -> Result<()> {
        if inputs.len() + 1 > MAX_BINDINGS || params.len() > 16 {
            return Err(Error::Gpu(format!("kernel {entry}: too many bindings")));
        }
        let limit = self.device.limits().max_compute_workgroups_per_dimension;
        if groups.0 > limit || groups.1 > limit || groups.2 > limit {
            return Err(Error::Gpu(format!(
                "kernel {entry}: {groups:?} workgroups exceed this GPU's {limit} per dimension"
            )));
        }
        let pipeline = self.pipeline(source, entry, inputs.len() + 1)?;
        let mut words = [0u32; 16];
        words[..params.len()].copy_from_slice(params);
        let uniform = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: bytemuck_u32(&words),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries: Vec<wgpu::BindGroupEntry> = inputs
            .iter()
            .chain(std::iter::once(&output))
            .enumerate()
            .map(|(i, t)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: t.buffer.as_entire_binding(),
            })
            .collect();
        entries.push(wgpu::BindGroupEntry {
            binding: MAX_BINDINGS as u32,
            resource: uniform.as_entire_binding(),
        });
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(entry),
            layout: &pipeline.layout,
            entries: &entries,
        });
        self.guarded(entry, || {
            let mut encoder = self.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_pipeline(&pipeline.pipeline);
                pass.set_bind_group(0, &bind_group, &[]);
                pass.dispatch_workgroups(groups.0, groups.1, groups.2);
            }
            self.queue.submit([encoder.finish()]);
        })
    }
}

fn bytemuck_f32(data: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding and any byte pattern is a valid u8; the length is exact.
    unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), std::mem::size_of_val(data)) }
}

fn bytemuck_u32(data: &[u32]) -> &[u8] {
    // SAFETY: as above.
    unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), std::mem::size_of_val(data)) }
}

/// Workgroups of `size` covering `n` items, split over x and y when x would exceed the limit
/// of 65535 (kernels compute `id = gid.x + gid.y · 65535 · size`).
fn groups_for(n: usize, size: usize) -> (u32, u32, u32) {
    let total = n.div_ceil(size).max(1);
    let x = total.min(65535);
    let y = total.div_ceil(65535);
    (x as u32, y as u32, 1)
}
