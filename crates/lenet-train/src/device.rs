//! Choosing the device from the config: `[backend] kind = "flex" | "ndarray" | "wgpu" | "cuda" |
//! "auto"`, once per command; the [`Selected`] device is then passed down.
//!
//! Burn 0.22 picks the backend at run time from the `Device`. Its `Device::default()` prefers a
//! GPU backend whenever one is compiled in, so lenet never relies on it: every device is built
//! from the config. (Burn itself falls back to the default device in one place, when it loads
//! optimizer state on resume; the `lenet` binary pins `BURN_DEVICE` at start-up for that, since
//! changing the environment is a process-wide effect that a library must not have.)
//!
//! Before a wgpu device is made, lenet asks wgpu itself which adapters the machine has (on
//! Vulkan, DirectX 12 or Metal). Burn would otherwise fall back to OpenGL, or panic deep inside
//! wgpu, where there is none; lenet says what is missing and what is available instead.

use burn::tensor::Device;
use serde::Serialize;

use crate::config::{BackendConfig, BackendKind};

/// A backend that cannot be used as asked. Every variant is about the user's setting or
/// machine, so the command line exits with 2.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// A real backend, but this binary was built without it.
    #[error("backend `{name}` is not compiled into this binary (rebuild with `--features {name}`); available: {available}")]
    NotCompiled {
        /// What was asked for.
        name: String,
        /// What this binary has.
        available: String,
    },
    /// wgpu is compiled in but finds no adapter.
    #[error("backend `wgpu`: no GPU adapter found (wgpu looked for Vulkan, DirectX 12 and Metal devices; OpenGL is not used). Install the GPU's driver; on Linux without a GPU, `apt-get install mesa-vulkan-drivers libvulkan1` gives a slow software Vulkan device for testing. Available without a GPU: flex, ndarray (`--backend flex`)")]
    NoAdapter,
    /// A device index past the adapters present.
    #[error("backend.device = {index}, but `{kind}` has {count} device(s): {listing}")]
    NoSuchDevice {
        /// The backend.
        kind: String,
        /// What was asked for.
        index: usize,
        /// How many there are.
        count: usize,
        /// The devices, `0: name (type)`, comma-separated.
        listing: String,
    },
    /// `backend.devices` with a backend that has one device.
    #[error("backend.devices = {devices:?}: `{kind}` has a single device; list several devices only with a GPU backend (or repeat 0 to run the multi-device code path on the CPU, e.g. devices = [0, 0])")]
    NotMultiDevice {
        /// The backend.
        kind: String,
        /// What was asked for.
        devices: Vec<usize>,
    },
}

impl BackendError {
    /// Always true: the setting or the machine is at fault, not the work (exit code 2).
    pub fn is_usage(&self) -> bool {
        true
    }
}

/// The backends compiled into this binary, CPU first (`auto` is not one).
pub fn compiled_backends() -> Vec<BackendKind> {
    let mut v = vec![BackendKind::Flex, BackendKind::Ndarray];
    if cfg!(feature = "wgpu") {
        v.push(BackendKind::Wgpu);
    }
    if cfg!(feature = "cuda") {
        v.push(BackendKind::Cuda);
    }
    v
}

fn available() -> String {
    compiled_backends()
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A wgpu adapter: one graphics device as wgpu reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Adapter {
    /// Position in `lenet devices` and the value of `backend.device` that selects it.
    pub index: usize,
    /// What the driver calls it, e.g. `NVIDIA H200` or `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// `discrete GPU`, `integrated GPU`, `virtual GPU`, `CPU (software)` or `other`.
    pub kind: String,
    /// The graphics API: `Vulkan`, `Dx12` or `Metal`.
    pub api: String,
    /// Driver name and version.
    pub driver: String,
    /// Whether it is a software device on the CPU (works, but slowly).
    pub software: bool,
    /// Its rank among the adapters of the same kind (what Burn's `DeviceKind` counts).
    #[serde(skip)]
    rank: usize,
}

impl std::fmt::Display for Adapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {})", self.name, self.kind, self.api)
    }
}

/// The device a config chose, and a line saying what it is.
#[derive(Debug, Clone)]
pub struct Selected {
    /// The backend actually used (`auto` resolved, so never `Auto`).
    pub kind: BackendKind,
    /// The devices to train on: one, or several for data-parallel training.
    pub devices: Vec<Device>,
    /// For people: `flex (CPU, 2 threads)`, `wgpu: NVIDIA H200 (discrete GPU, Vulkan)`.
    pub description: String,
}

impl Selected {
    /// The first (main) device: validation, evaluation and the optimizer live there.
    pub fn device(&self) -> &Device {
        &self.devices[0]
    }
}

/// The wgpu adapters of this machine, probed once per process; empty without the `wgpu`
/// feature.
pub fn wgpu_adapters() -> Vec<Adapter> {
    #[cfg(feature = "wgpu")]
    {
        static ADAPTERS: std::sync::OnceLock<Vec<Adapter>> = std::sync::OnceLock::new();
        ADAPTERS.get_or_init(probe::adapters).clone()
    }
    #[cfg(not(feature = "wgpu"))]
    Vec::new()
}

/// The adapter `Device::wgpu(DefaultDevice)` lands on: the best GPU, else the first adapter.
fn default_adapter(adapters: &[Adapter]) -> Option<&Adapter> {
    let order = ["discrete GPU", "integrated GPU", "virtual GPU", "other"];
    order
        .iter()
        .find_map(|k| adapters.iter().find(|a| a.kind == *k))
        .or_else(|| adapters.first())
}

/// Number of threads the CPU backends use (Rayon's pool, `RAYON_NUM_THREADS`).
pub fn cpu_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The CPU's model name (`/proc/cpuinfo`), or `unknown CPU`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}

/// The backend `auto` resolves to on this machine, and why.
pub fn auto_choice() -> (BackendKind, String) {
    auto_choice_among(&wgpu_adapters(), cfg!(feature = "wgpu"))
}

/// `auto` among these adapters: a real GPU through wgpu, else flex (a software Vulkan device is
/// slower than flex, so it is never chosen).
fn auto_choice_among(adapters: &[Adapter], wgpu_compiled: bool) -> (BackendKind, String) {
    match default_adapter(adapters) {
        Some(best) if !best.software => (BackendKind::Wgpu, format!("a GPU is present: {best}")),
        Some(_) => (
            BackendKind::Flex,
            "wgpu sees only software devices, which are slower than flex".to_string(),
        ),
        None if wgpu_compiled => (BackendKind::Flex, "no GPU adapter found".to_string()),
        None => (
            BackendKind::Flex,
            "this binary has no GPU backend".to_string(),
        ),
    }
}

/// The device(s) a `[backend]` table asks for: `device` picks a GPU (unset: the best one),
/// `devices` asks for data-parallel training on several.
pub fn select(backend: &BackendConfig) -> Result<Selected, BackendError> {
    select_devices(backend.kind, backend.device, &backend.devices)
}

/// One device of `kind` (`index` picks a GPU, `None`: the best one): what evaluation and
/// prediction run on.
pub fn select_one(kind: BackendKind, index: Option<usize>) -> Result<Selected, BackendError> {
    select_devices(kind, index, &[])
}

fn select_devices(
    kind: BackendKind,
    index: Option<usize>,
    devices: &[usize],
) -> Result<Selected, BackendError> {
    let (kind, why) = match kind {
        BackendKind::Auto => {
            let (k, why) = auto_choice();
            (k, Some(why))
        }
        k if compiled_backends().contains(&k) => (k, None),
        k => {
            return Err(BackendError::NotCompiled {
                name: k.to_string(),
                available: available(),
            })
        }
    };
    let indices: Vec<Option<usize>> = if devices.is_empty() {
        vec![index]
    } else {
        devices.iter().map(|&d| Some(d)).collect()
    };
    if kind.is_cpu() && devices.iter().any(|&d| d != 0) {
        return Err(BackendError::NotMultiDevice {
            kind: kind.to_string(),
            devices: devices.to_vec(),
        });
    }
    let mut made = Vec::new();
    let mut names = Vec::new();
    for i in indices {
        let (device, name) = one_device(kind, i)?;
        made.push(device);
        names.push(name);
    }
    names.dedup();
    let mut description = names.join(" + ");
    if made.len() > 1 {
        description = format!("{} devices: {description}", made.len());
    }
    if let Some(why) = why {
        description = format!("{description} (auto: {why})");
    }
    Ok(Selected {
        kind,
        devices: made,
        description,
    })
}

fn one_device(kind: BackendKind, index: Option<usize>) -> Result<(Device, String), BackendError> {
    match kind {
        BackendKind::Flex => Ok((
            Device::flex(),
            format!("flex (CPU, {} threads)", cpu_threads()),
        )),
        #[allow(deprecated)]
        BackendKind::Ndarray => Ok((
            Device::ndarray(),
            format!("ndarray (CPU, {} threads)", cpu_threads()),
        )),
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => wgpu_device(index),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => {
            let i = index.unwrap_or(0);
            Ok((Device::cuda(i), format!("cuda device {i}")))
        }
        _ => Err(BackendError::NotCompiled {
            name: kind.to_string(),
            available: available(),
        }),
    }
}

#[cfg(feature = "wgpu")]
fn wgpu_device(index: Option<usize>) -> Result<(Device, String), BackendError> {
    use burn::tensor::DeviceKind;
    let adapters = wgpu_adapters();
    let Some(best) = default_adapter(&adapters) else {
        return Err(BackendError::NoAdapter);
    };
    let adapter = match index {
        None => {
            return Ok((
                Device::wgpu(DeviceKind::DefaultDevice),
                format!("wgpu: {best}"),
            ))
        }
        Some(i) => adapters.get(i).ok_or_else(|| BackendError::NoSuchDevice {
            kind: "wgpu".into(),
            index: i,
            count: adapters.len(),
            listing: adapters
                .iter()
                .map(|a| format!("{}: {a}", a.index))
                .collect::<Vec<_>>()
                .join(", "),
        })?,
    };
    let kind = match adapter.kind.as_str() {
        "discrete GPU" => DeviceKind::DiscreteGpu(adapter.rank),
        "integrated GPU" => DeviceKind::IntegratedGpu(adapter.rank),
        "virtual GPU" => DeviceKind::VirtualGpu(adapter.rank),
        "CPU (software)" => DeviceKind::Cpu,
        // Burn cannot address an adapter of unknown kind, except as the default one.
        _ if adapter.index == best.index => DeviceKind::DefaultDevice,
        _ => {
            return Err(BackendError::NoSuchDevice {
                kind: "wgpu".into(),
                index: adapter.index,
                count: adapters.len(),
                listing: format!(
                    "adapter {} is of a kind Burn cannot select ({}); leave backend.device unset to use {best}",
                    adapter.index, adapter.kind
                ),
            })
        }
    };
    Ok((Device::wgpu(kind), format!("wgpu: {adapter}")))
}

#[cfg(feature = "wgpu")]
mod probe {
    use super::Adapter;
    use std::future::Future;
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    /// Runs a future to completion on this thread (wgpu's native futures are ready at once).
    fn block_on<F: Future>(f: F) -> F::Output {
        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut f = std::pin::pin!(f);
        loop {
            match f.as_mut().poll(&mut cx) {
                Poll::Ready(v) => return v,
                Poll::Pending => std::thread::park(),
            }
        }
    }

    /// The graphics APIs Burn's wgpu runtime tries, in its order, without OpenGL.
    fn apis() -> Vec<wgpu::Backend> {
        if cfg!(target_os = "macos") {
            vec![wgpu::Backend::Metal]
        } else {
            vec![wgpu::Backend::Vulkan, wgpu::Backend::Dx12]
        }
    }

    /// What wgpu sees, API by API like Burn: the first API with a GPU, else the first with
    /// anything. A panic inside a driver becomes "no adapter".
    pub(super) fn adapters() -> Vec<Adapter> {
        let found = std::panic::catch_unwind(|| {
            let mut software_only = None;
            for api in apis() {
                let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
                    backends: api.into(),
                    ..wgpu::InstanceDescriptor::new_without_display_handle()
                });
                let infos: Vec<wgpu::AdapterInfo> =
                    block_on(instance.enumerate_adapters(api.into()))
                        .iter()
                        .map(wgpu::Adapter::get_info)
                        .collect();
                if infos.iter().any(|a| a.device_type != wgpu::DeviceType::Cpu) {
                    return infos;
                }
                if software_only.is_none() && !infos.is_empty() {
                    software_only = Some(infos);
                }
            }
            software_only.unwrap_or_default()
        })
        .unwrap_or_default();
        let mut out: Vec<Adapter> = Vec::new();
        for (index, info) in found.into_iter().enumerate() {
            let kind = match info.device_type {
                wgpu::DeviceType::DiscreteGpu => "discrete GPU",
                wgpu::DeviceType::IntegratedGpu => "integrated GPU",
                wgpu::DeviceType::VirtualGpu => "virtual GPU",
                wgpu::DeviceType::Cpu => "CPU (software)",
                wgpu::DeviceType::Other => "other",
            };
            let rank = out.iter().filter(|a| a.kind == kind).count();
            out.push(Adapter {
                index,
                name: info.name,
                kind: kind.to_string(),
                api: format!("{:?}", info.backend),
                driver: format!("{} {}", info.driver, info.driver_info)
                    .trim()
                    .to_string(),
                software: info.device_type == wgpu::DeviceType::Cpu,
                rank,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flex(devices: &[usize]) -> BackendConfig {
        BackendConfig {
            kind: BackendKind::Flex,
            device: None,
            devices: devices.to_vec(),
            ..BackendConfig::default()
        }
    }

    #[test]
    fn cpu_multi_device_errors_say_what_to_do() {
        let e = select(&flex(&[0, 1])).err().unwrap().to_string();
        assert!(e.contains("backend.devices = [0, 1]"), "{e}");
        assert!(e.contains("single device"), "{e}");
        if !cfg!(feature = "cuda") {
            let e = select_one(BackendKind::Cuda, None)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains("not compiled into this binary"), "{e}");
            assert!(e.contains("--features cuda"), "{e}");
        }
    }

    #[test]
    fn cpu_backends_describe_themselves() {
        let s = select(&flex(&[])).unwrap();
        assert_eq!(s.kind, BackendKind::Flex);
        assert!(
            s.description.starts_with("flex (CPU, "),
            "{}",
            s.description
        );
        let s = select(&flex(&[0, 0])).unwrap();
        assert_eq!(s.devices.len(), 2);
        assert!(
            s.description.starts_with("2 devices: flex"),
            "{}",
            s.description
        );
    }

    fn adapter(index: usize, kind: &str) -> Adapter {
        Adapter {
            index,
            name: format!("a{index}"),
            kind: kind.into(),
            api: "Vulkan".into(),
            driver: String::new(),
            software: kind.starts_with("CPU"),
            rank: 0,
        }
    }

    #[test]
    fn default_adapter_prefers_real_gpus() {
        let list = vec![
            adapter(0, "CPU (software)"),
            adapter(1, "integrated GPU"),
            adapter(2, "discrete GPU"),
        ];
        assert_eq!(default_adapter(&list).unwrap().index, 2);
        assert_eq!(default_adapter(&list[..1]).unwrap().index, 0);
        assert!(default_adapter(&[]).is_none());
    }

    #[test]
    fn auto_takes_a_real_gpu_and_never_a_software_one() {
        let software = [adapter(0, "CPU (software)")];
        let (kind, why) = auto_choice_among(&software, true);
        assert_eq!(kind, BackendKind::Flex);
        assert!(why.contains("only software devices"), "{why}");
        let mixed = [adapter(0, "CPU (software)"), adapter(1, "discrete GPU")];
        let (kind, why) = auto_choice_among(&mixed, true);
        assert_eq!(kind, BackendKind::Wgpu);
        assert!(why.contains("a1 (discrete GPU, Vulkan)"), "{why}");
        assert_eq!(
            auto_choice_among(&[], true),
            (BackendKind::Flex, "no GPU adapter found".to_string())
        );
        assert_eq!(auto_choice_among(&[], false).0, BackendKind::Flex);
    }
}
