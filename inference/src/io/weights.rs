//! Memory-mapped safetensors weights behind a candle `VarBuilder`.
//!
//! A [`Weights`] is one model component (UNet, VAE, a text encoder): one or more safetensors
//! files plus a map from the diffusers tensor names the model code asks for to the names stored
//! in the files. For a diffusers folder the map is the identity; for a single-file checkpoint it
//! comes from [`crate::io::ldm`]. Tensors are read lazily from the mapping, converted to the
//! requested dtype, and reshaped when only trailing unit dimensions differ (LDM 1×1 convs used
//! as linear layers).

use crate::io::ldm::{KeyTransform, MappedTensor};
use crate::{Error, Result};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Extensions of pickle-based checkpoint formats that Kiln never loads.
const PICKLE_EXTENSIONS: [&str; 5] = ["ckpt", "pt", "pth", "bin", "pkl"];

/// Largest safetensors header accepted (the Hugging Face limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Refuses pickle-based files with a message that says why and how to convert.
pub fn refuse_pickle(path: &Path) -> Result<()> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if PICKLE_EXTENSIONS.contains(&ext.as_str()) {
        return Err(Error::Refused(format!(
            "refusing to load {path:?}: .{ext} files are Python pickles, which can run arbitrary code \
             when loaded. Convert it to .safetensors first (for example with the \
             'convert to safetensors' tool of A1111/ComfyUI, or `safetensors.torch.save_file` in a \
             trusted Python environment), or download the .safetensors version of the model."
        )));
    }
    Ok(())
}

/// Opens safetensors files after checking they are well formed.
pub fn open_safetensors(paths: &[PathBuf]) -> Result<MmapedSafetensors> {
    for path in paths {
        refuse_pickle(path)?;
        check_safetensors_header(path)?;
    }
    // SAFETY: the files are memory-mapped read-only; like every mmap user we rely on them not
    // being truncated while the model is loaded (the header and sizes were checked just above,
    // and `MmapedSafetensors` validates all offsets against the mapped length).
    let mmaped = unsafe { MmapedSafetensors::multi(paths) };
    mmaped.map_err(|e| invalid_safetensors(paths, e.to_string()))
}

fn invalid_safetensors(paths: &[PathBuf], detail: String) -> Error {
    Error::InvalidFile {
        format: "safetensors",
        detail,
        path: paths.first().cloned().unwrap_or_default(),
    }
}

/// Cheap structural check before mapping: readable, long enough, sane header length.
fn check_safetensors_header(path: &Path) -> Result<()> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(e, path))?;
    let len = file.metadata().map_err(|e| Error::io(e, path))?.len();
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix)
        .map_err(|_| Error::InvalidFile {
            format: "safetensors",
            detail: format!("file is only {len} bytes long"),
            path: path.to_path_buf(),
        })?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > MAX_HEADER_BYTES || 8 + header_len > len {
        return Err(Error::InvalidFile {
            format: "safetensors",
            detail: format!(
                "header length {header_len} does not fit a {len}-byte file (truncated or not safetensors)"
            ),
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Shape and dtype of every tensor in the files, by stored name.
pub fn header_of(st: &MmapedSafetensors) -> BTreeMap<String, crate::io::ldm::TensorMeta> {
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let meta = crate::io::ldm::TensorMeta {
                dtype: format!("{:?}", view.dtype()),
                shape: view.shape().to_vec(),
            };
            (name, meta)
        })
        .collect()
}

/// A delta computed when its weight is read (e.g. `Σ m·scale·up·down` of LoRA factors), so a
/// model is patched one tensor at a time and no full-size delta outlives its weight.
pub trait DeferredPatch: Send + Sync {
    /// The delta (f32, already scaled), shaped like the stored weight.
    fn delta(&self) -> candle_core::Result<Tensor>;
}

/// One additive weight patch.
#[derive(Clone)]
pub enum Patch {
    /// A delta held in memory (f32, already scaled).
    Tensor(Tensor),
    /// A delta computed on demand and dropped once added.
    Deferred(Arc<dyn DeferredPatch>),
}

/// Additive weight patches (LoRA deltas), by diffusers name.
pub type Patches = HashMap<String, Patch>;

/// One model component's weights: files plus a name map.
///
/// With [`Weights::with_cache`], the tensors handed to the model are remembered, so the model can
/// be rebuilt with other [`Patches`] without reading or converting the unpatched tensors again:
/// a patched tensor is always `stored + patch`, computed from the file, so removing a patch
/// restores the stored weight exactly.
#[derive(Clone)]
pub struct Weights {
    files: Arc<MmapedSafetensors>,
    /// diffusers name → stored tensor; `None` means identity lookup.
    map: Option<Arc<BTreeMap<String, MappedTensor>>>,
    /// Names present, for identity lookup.
    names: Arc<HashMap<String, ()>>,
    component: String,
    /// Unpatched tensors currently handed out, by name (same storage as the model's).
    cache: Option<Arc<Mutex<HashMap<String, Tensor>>>>,
    /// Deltas added to the named tensors.
    patches: Option<Arc<Patches>>,
}

impl Weights {
    /// Weights stored under diffusers names, optionally under a common prefix to strip.
    pub fn identity(files: Arc<MmapedSafetensors>, component: &str) -> Self {
        let names = files.tensors().into_iter().map(|(n, _)| (n, ())).collect();
        Weights {
            files,
            map: None,
            names: Arc::new(names),
            component: component.to_string(),
            cache: None,
            patches: None,
        }
    }

    /// Weights looked up through a diffusers-name → stored-name map.
    pub fn mapped(
        files: Arc<MmapedSafetensors>,
        map: BTreeMap<String, MappedTensor>,
        component: &str,
    ) -> Self {
        Weights {
            files,
            map: Some(Arc::new(map)),
            names: Arc::new(HashMap::new()),
            component: component.to_string(),
            cache: None,
            patches: None,
        }
    }

    /// These weights, remembering the tensors they hand out (see the type's documentation).
    pub fn with_cache(mut self) -> Self {
        self.cache = Some(Arc::new(Mutex::new(HashMap::new())));
        self
    }

    /// These weights (sharing the cache) with `patches` added; `None` removes all patches.
    pub fn with_patches(&self, patches: Option<Arc<Patches>>) -> Self {
        Weights {
            patches,
            ..self.clone()
        }
    }

    /// The component name ("unet", "text_encoder", …).
    pub fn component(&self) -> &str {
        &self.component
    }

    /// Every tensor name (diffusers names), sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = match &self.map {
            Some(map) => map.keys().cloned().collect(),
            None => self.names.keys().cloned().collect(),
        };
        names.sort();
        names
    }

    /// Whether a tensor with this diffusers name exists.
    pub fn contains(&self, name: &str) -> bool {
        match &self.map {
            Some(map) => map.contains_key(name),
            None => self.names.contains_key(name),
        }
    }

    /// The shape a tensor has once loaded by [`Weights::load_raw`], without reading it.
    pub fn shape_of(&self, name: &str) -> Option<Vec<usize>> {
        let stored = |source: &str| {
            self.files
                .get(source)
                .ok()
                .map(|view| view.shape().to_vec())
        };
        match &self.map {
            None => stored(name),
            Some(map) => {
                let mapped = map.get(name)?;
                let mut dims = stored(&mapped.source)?;
                match mapped.transform {
                    KeyTransform::Identity => {}
                    KeyTransform::Rows { len, .. } => *dims.first_mut()? = len,
                    KeyTransform::Transpose => dims.reverse(),
                }
                Some(dims)
            }
        }
    }

    /// Loads one tensor by diffusers name, as stored (dtype unchanged).
    pub fn load_raw(&self, name: &str, device: &Device) -> Result<Tensor> {
        let missing = || Error::MissingWeight {
            component: self.component.clone(),
            name: name.to_string(),
        };
        match &self.map {
            None => {
                if !self.names.contains_key(name) {
                    return Err(missing());
                }
                let tensor = self.files.load(name, device)?;
                self.release(name);
                Ok(tensor)
            }
            Some(map) => {
                let mapped = map.get(name).ok_or_else(missing)?;
                let tensor = self.files.load(&mapped.source, device)?;
                self.release(&mapped.source);
                Ok(match mapped.transform {
                    KeyTransform::Identity => tensor,
                    KeyTransform::Rows { start, len } => tensor.narrow(0, start, len)?,
                    KeyTransform::Transpose => tensor.t()?.contiguous()?,
                })
            }
        }
    }

    /// Drops the mapped pages of a stored tensor that was just copied out from the resident
    /// set (a later read maps them in again from the page cache), so loading a model does not
    /// hold the whole file in memory next to the converted weights (peak RSS).
    fn release(&self, stored_name: &str) {
        #[cfg(unix)]
        if let Ok(view) = self.files.get(stored_name) {
            let bytes = view.data();
            let page = 4096;
            let start = (bytes.as_ptr() as usize).next_multiple_of(page);
            let end = (bytes.as_ptr() as usize + bytes.len()) / page * page;
            if end > start {
                // SAFETY: [start, end) lies inside the read-only mapping the view borrows from;
                // MADV_DONTNEED on a file mapping only drops resident pages, whose contents are
                // read again from the file on the next access.
                unsafe {
                    libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED)
                };
            }
        }
    }

    /// A candle `VarBuilder` over these weights.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        let backend: Box<dyn candle_nn::var_builder::SimpleBackend> = Box::new(self.clone());
        VarBuilder::from_backend(backend, dtype, device.clone())
    }
}

/// Drops trailing unit dimensions (`[C, C, 1, 1]` → `[C, C]`).
fn squeeze_trailing(dims: &[usize]) -> &[usize] {
    let mut end = dims.len();
    while end > 1 && dims.get(end - 1) == Some(&1) {
        end -= 1;
    }
    dims.get(..end).unwrap_or(dims)
}

impl Weights {
    /// The unpatched tensor in `dtype` and `shape`: from the cache, or read from the file.
    fn stored(
        &self,
        shape: &Shape,
        name: &str,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let key = |name: &str| format!("{name}\u{0}{dtype:?}");
        if let Some(cache) = &self.cache
            && let Some(hit) = lock(cache).get(&key(name))
            && hit.shape() == shape
        {
            return Ok(hit.clone());
        }
        let tensor = self.read(shape, name, dtype, dev)?;
        if let Some(cache) = &self.cache {
            lock(cache).insert(key(name), tensor.clone());
        }
        Ok(tensor)
    }

    /// `stored + patch` in f32, then converted; the cached unpatched copy is dropped so the
    /// model does not hold both (it is read again from the file when the patch goes away).
    fn patched(
        &self,
        shape: &Shape,
        name: &str,
        patch: &Patch,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if let Some(cache) = &self.cache {
            lock(cache).remove(&format!("{name}\u{0}{dtype:?}"));
        }
        let base = self.read(shape, name, DType::F32, dev)?;
        let patch = match patch {
            Patch::Tensor(t) => t.clone(),
            Patch::Deferred(d) => d.delta()?,
        };
        let patch = patch.to_device(dev)?.to_dtype(DType::F32)?;
        let patch = if patch.shape() == shape {
            patch
        } else {
            patch.reshape(shape.clone())?
        };
        (base + patch)?.to_dtype(dtype)
    }

    /// Reads, shape-checks and converts one tensor from the file.
    fn read(
        &self,
        shape: &Shape,
        name: &str,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let shape = shape.clone();
        let tensor = self
            .load_raw(name, dev)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let tensor = if tensor.shape() == &shape {
            tensor
        } else if squeeze_trailing(tensor.dims()) == squeeze_trailing(shape.dims()) {
            tensor.reshape(shape.clone())?
        } else {
            return Err(candle_core::Error::Msg(format!(
                "weight {name} in {} has shape {:?}, the model config expects {:?}",
                self.component,
                tensor.dims(),
                shape.dims()
            )));
        };
        tensor.to_dtype(dtype)
    }
}

fn lock(
    cache: &Mutex<HashMap<String, Tensor>>,
) -> std::sync::MutexGuard<'_, HashMap<String, Tensor>> {
    cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl candle_nn::var_builder::SimpleBackend for Weights {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _hints: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        match self.patches.as_ref().and_then(|p| p.get(name)) {
            Some(patch) => self.patched(&shape, name, patch, dtype, dev),
            None => self.stored(&shape, name, dtype, dev),
        }
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.load_raw(name, dev)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?
            .to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.contains(name)
    }
}
