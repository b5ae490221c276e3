//! Choosing the device from the config: `[backend] kind = "flex" | "ndarray" | "wgpu" | "cuda"`.
//!
//! Burn 0.22 picks the backend at run time from the `Device`. Its `Device::default()` prefers a
//! GPU backend whenever one is compiled in, so lenet never relies on it: every device is built
//! from the config, and `BURN_DEVICE` is pinned to the same backend for the places where Burn
//! itself falls back to the default device (e.g. loading optimizer state on resume).

use burn::tensor::Device;

/// A backend name that is unknown or not compiled into this binary.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Not a backend name.
    #[error("unknown backend `{name}`; available in this build: {available}")]
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

/// The device for `kind` (and GPU index `index`), with `BURN_DEVICE` pinned to it.
pub fn device_for(kind: &str, index: usize) -> Result<Device, BackendError> {
    let available = compiled_backends().join(", ");
    let device = match kind {
        "flex" => Device::flex(),
        #[allow(deprecated)]
        "ndarray" => Device::ndarray(),
        #[cfg(feature = "wgpu")]
        "wgpu" => {
            let kind = if index == 0 {
                burn::tensor::DeviceKind::DefaultDevice
            } else {
                burn::tensor::DeviceKind::DiscreteGpu(index)
            };
            Device::wgpu(kind)
        }
        #[cfg(feature = "cuda")]
        "cuda" => Device::cuda(index),
        #[cfg(not(feature = "wgpu"))]
        "wgpu" => {
            return Err(BackendError::NotCompiled {
                name: kind.to_string(),
                available,
            })
        }
        #[cfg(not(feature = "cuda"))]
        "cuda" => {
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
    // SAFETY-free in edition 2021; done before any worker thread reads the environment.
    std::env::set_var("BURN_DEVICE", kind);
    Ok(device)
}
