//! Choosing the device from the config: `[backend] kind = "flex" | "ndarray" | "wgpu" | "cuda" |
//! "auto"`.
//!
//! Burn 0.22 picks the backend at run time from the `Device`. Its `Device::default()` prefers a
//! GPU backend whenever one is compiled in, so lenet never relies on it: every device is built
//! from the config, and `BURN_DEVICE` is pinned to the same backend for the places where Burn
//! itself falls back to the default device (e.g. loading optimizer state on resume).
//!
//! Before a wgpu device is made, lenet asks wgpu itself which adapters the machine has (on
//! Vulkan, DirectX 12 or Metal). Burn would otherwise fall back to OpenGL, or panic deep inside
//! wgpu, where there is none; lenet says what is missing and what is available instead.

use burn::tensor::Device;
use serde::Serialize;

/// A backend that cannot be used as asked.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Not a backend name.
    #[error("unknown backend `{name}`; available in this build: {available}, or `auto`")]
    Unknown {
        /// What was asked for.
        name: String,
        /// What this binary has.
        available: String,
    },
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

/// The backends compiled into this binary, CPU first.
pub fn compiled_backends() -> Vec<&'static str> {
    let mut v = vec!["flex", "ndarray"];
    if cfg!(feature = "wgpu") {
        v.push("wgpu");
    }
    if cfg!(feature = "cuda") {
        v.push("cuda");
    }
    v
}

/// Whether `kind` runs on the CPU (deterministic, no GPU runtime to start).
pub fn is_cpu(kind: &str) -> bool {
    matches!(kind, "flex" | "ndarray")
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
pub struct Selected {
    /// The backend actually used (`auto` resolved): `flex`, `ndarray`, `wgpu` or `cuda`.
    pub kind: &'static str,
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
pub fn auto_choice() -> (&'static str, String) {
    let adapters = wgpu_adapters();
    match adapters.iter().find(|a| !a.software) {
        Some(_) => (
            "wgpu",
            format!(
                "a GPU is present: {}",
                default_adapter(&adapters)
                    .map(|a| a.to_string())
                    .unwrap_or_default()
            ),
        ),
        None if cfg!(feature = "wgpu") && !adapters.is_empty() => (
            "flex",
            "wgpu sees only software devices, which are slower than flex".to_string(),
        ),
        None if cfg!(feature = "wgpu") => ("flex", "no GPU adapter found".to_string()),
        None => ("flex", "this binary has no GPU backend".to_string()),
    }
}

/// The device(s) for `kind`: `index` picks a GPU (`None`: the best one), `devices` asks for
/// data-parallel training on several. `BURN_DEVICE` is pinned to the backend chosen.
pub fn select(
    kind: &str,
    index: Option<usize>,
    devices: &[usize],
) -> Result<Selected, BackendError> {
    let available = compiled_backends().join(", ");
    let (kind, why): (&'static str, Option<String>) = match kind {
        "auto" => {
            let (k, why) = auto_choice();
            (k, Some(why))
        }
        "flex" => ("flex", None),
        "ndarray" => ("ndarray", None),
        "wgpu" if cfg!(feature = "wgpu") => ("wgpu", None),
        "cuda" if cfg!(feature = "cuda") => ("cuda", None),
        "wgpu" | "cuda" => {
            return Err(BackendError::NotCompiled {
                name: kind.to_string(),
                available,
            })
        }
        _ => {
            return Err(BackendError::Unknown {
                name: kind.to_string(),
                available,
            })
        }
    };
    let indices: Vec<Option<usize>> = if devices.is_empty() {
        vec![index]
    } else {
        devices.iter().map(|&d| Some(d)).collect()
    };
    if is_cpu(kind) && devices.iter().any(|&d| d != 0) {
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
    // SAFETY-free in edition 2021; done before any worker thread reads the environment.
    std::env::set_var("BURN_DEVICE", kind);
    Ok(Selected {
        kind,
        devices: made,
        description,
    })
}

fn one_device(kind: &'static str, index: Option<usize>) -> Result<(Device, String), BackendError> {
    match kind {
        "flex" => Ok((
            Device::flex(),
            format!("flex (CPU, {} threads)", cpu_threads()),
        )),
        #[allow(deprecated)]
        "ndarray" => Ok((
            Device::ndarray(),
            format!("ndarray (CPU, {} threads)", cpu_threads()),
        )),
        #[cfg(feature = "wgpu")]
        "wgpu" => wgpu_device(index),
        #[cfg(feature = "cuda")]
        "cuda" => {
            let i = index.unwrap_or(0);
            Ok((Device::cuda(i), format!("cuda device {i}")))
        }
        _ => Err(BackendError::NotCompiled {
            name: kind.to_string(),
            available: compiled_backends().join(", "),
        }),
    }
}

#[cfg(feature = "wgpu")]
fn wgpu_device(index: Option<usize>) -> Result<(Device, String), BackendError> {
    use burn::tensor::DeviceKind;
    probe::quiet_mesa();
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

/// The one device for `kind` (GPU `index`, `None`: the best), with `BURN_DEVICE` pinned to it.
pub fn device_for(kind: &str, index: Option<usize>) -> Result<Device, BackendError> {
    Ok(select(kind, index, &[])?.device().clone())
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

    /// Mesa's Vulkan driver prints `error: XDG_RUNTIME_DIR is invalid or not set` when the
    /// variable is missing (containers, CI). Point it at a private directory of ours, so the
    /// output stays clean; a valid directory that is set already is left alone.
    pub(super) fn quiet_mesa() {
        let ok = std::env::var_os("XDG_RUNTIME_DIR")
            .map(std::path::PathBuf::from)
            .is_some_and(|p| p.is_absolute() && p.is_dir());
        if ok {
            return;
        }
        let dir = std::env::temp_dir().join(format!("lenet-runtime-{}", std::process::id()));
        if std::fs::create_dir_all(&dir).is_ok() {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
            }
            std::env::set_var("XDG_RUNTIME_DIR", &dir);
        }
    }

    /// What wgpu sees, API by API like Burn: the first API with a GPU, else the first with
    /// anything. A panic inside a driver becomes "no adapter".
    pub(super) fn adapters() -> Vec<Adapter> {
        quiet_mesa();
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

    #[test]
    fn unknown_and_cpu_multi_device_errors_say_what_to_do() {
        let e = select("tpu", None, &[]).err().unwrap().to_string();
        assert!(e.contains("unknown backend `tpu`"), "{e}");
        assert!(e.contains("flex, ndarray"), "{e}");
        let e = select("flex", None, &[0, 1]).err().unwrap().to_string();
        assert!(e.contains("backend.devices = [0, 1]"), "{e}");
        assert!(e.contains("single device"), "{e}");
    }

    #[test]
    fn cpu_backends_describe_themselves() {
        let s = select("flex", None, &[]).unwrap();
        assert_eq!(s.kind, "flex");
        assert!(
            s.description.starts_with("flex (CPU, "),
            "{}",
            s.description
        );
        let s = select("flex", None, &[0, 0]).unwrap();
        assert_eq!(s.devices.len(), 2);
        assert!(
            s.description.starts_with("2 devices: flex"),
            "{}",
            s.description
        );
    }

    #[test]
    fn auto_never_picks_a_software_gpu() {
        let (kind, why) = auto_choice();
        let gpu = wgpu_adapters().iter().any(|a| !a.software);
        assert_eq!(kind, if gpu { "wgpu" } else { "flex" }, "{why}");
        let s = select("auto", None, &[]).unwrap();
        assert_eq!(s.kind, kind);
        assert!(s.description.contains("(auto: "), "{}", s.description);
    }

    #[test]
    fn default_adapter_prefers_real_gpus() {
        let a = |index, kind: &str| Adapter {
            index,
            name: format!("a{index}"),
            kind: kind.into(),
            api: "Vulkan".into(),
            driver: String::new(),
            software: kind.starts_with("CPU"),
            rank: 0,
        };
        let list = vec![
            a(0, "CPU (software)"),
            a(1, "integrated GPU"),
            a(2, "discrete GPU"),
        ];
        assert_eq!(default_adapter(&list).unwrap().index, 2);
        assert_eq!(default_adapter(&list[..1]).unwrap().index, 0);
        assert!(default_adapter(&[]).is_none());
    }
}
