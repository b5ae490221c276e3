//! What `lenet` does to its own process, in one place: signals, the allocator, the environment
//! (all before any thread starts), and Ctrl-C during training. The library crates do none of
//! this.

use lenet_train::Interrupter;

/// Exit code of a bug: a panic anywhere in the process (EX_SOFTWARE in sysexits.h).
pub const INTERNAL_ERROR: i32 = 70;

/// Sets up the process; called first thing in `main`, while it has a single thread.
pub fn setup() {
    restore_signals();
    keep_freed_memory();
    pin_environment();
    report_panics();
    if std::env::var_os(KEEP_SUBNORMALS).is_none_or(|v| v != "keep") {
        flush_subnormals();
    }
}

/// `LENET_SUBNORMALS=keep` leaves subnormal floats as IEEE 754 has them (slow), for comparisons.
const KEEP_SUBNORMALS: &str = "LENET_SUBNORMALS";

/// Makes this thread, and every thread it starts from now on (rayon's workers, Burn's batcher
/// threads: a new thread copies its parent's floating-point control register), treat subnormal
/// floats (magnitudes below 1.2e-38) as zero, in their inputs (DAZ) and results (FTZ). With
/// subnormals, x86 cores take a micro-code assist of about a hundred cycles for each operation
/// that meets one; training produces them (tiny gradients and their squares in Adam's second
/// moments), and LeNet-5's epochs after the first ran 28 % slower for it (15,400 against
/// 21,700 images/s, `docs/performance.md`, 2026-12-01); flushed, every epoch runs at the first
/// one's speed and the results were unchanged to the printed digit. TensorFlow flushes them by
/// default; PyTorch has `torch.set_flush_denormal(True)`. x86-64 only (elsewhere nothing
/// changes).
fn flush_subnormals() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: MXCSR bits 15 (flush to zero) and 6 (denormals are zero) only change how
    // subnormal values are computed; set before any other thread exists. (`_mm_setcsr` is
    // deprecated because the compiler assumes the default mode when it folds constants: folded
    // results may keep a subnormal that the run-time code would flush, which is harmless here.)
    #[allow(deprecated)]
    unsafe {
        use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
        _mm_setcsr(_mm_getcsr() | 0x8040);
    }
}

/// The last panic of the main thread, for [`internal_error`].
static MAIN_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// A panic is a bug: it ends in one line saying so, with where, and exit code
/// [`INTERNAL_ERROR`], instead of a Rust backtrace (bad input never gets here; it is an error
/// with a message). In another thread (Burn's workers, lenet's kernels) it ends the process at
/// once, so that nothing hangs waiting for the thread. In the main thread it is only recorded:
/// a panic that a library catches on purpose (the GPU driver probe) goes on unseen, and one that
/// reaches `main` is reported by [`internal_error`].
fn report_panics() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let text = format!("{message}{at}");
        if std::thread::current().name() == Some("main") {
            if let Ok(mut slot) = MAIN_PANIC.lock() {
                *slot = Some(text);
            }
        } else {
            eprintln!("{}", internal_error_line(&text));
            std::process::exit(INTERNAL_ERROR);
        }
    }));
}

fn internal_error_line(what: &str) -> String {
    format!(
        "internal error: {what}; this is a bug in lenet, please report it with the command that caused it"
    )
}

/// Reports the main thread's panic that reached `main`.
pub fn internal_error() -> std::process::ExitCode {
    let what = MAIN_PANIC
        .lock()
        .ok()
        .and_then(|mut slot| slot.take())
        .unwrap_or_else(|| "a panic".to_string());
    eprintln!("{}", internal_error_line(&what));
    std::process::ExitCode::from(INTERNAL_ERROR as u8)
}

/// Rust ignores SIGPIPE, so printing into a closed pipe (`lenet eval | head`) would panic; the
/// default action ends the process quietly, like other command-line tools. SIGXFSZ (a file
/// over the size limit, `ulimit -f`) is ignored instead of killing the process, so that the
/// write fails with an error that names the file, like a full disk.
fn restore_signals() {
    #[cfg(unix)]
    // SAFETY: setting signal dispositions before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Keeps freed memory in the process instead of handing it back to the system after every
/// training step. glibc returns large blocks (a batch's activations: megabytes each) to the
/// kernel when they are freed, so each step faults them in again: measured on LeNet-5 at batch
/// 256, 679,000 page faults and 2.0 s of system time in a 7 s `lenet bench --train`, against
/// about 8,300 and 0.46 s with these settings (`docs/performance.md`). Blocks up to 32 MiB
/// (glibc's largest mmap threshold) come from the heap, and the heap is never trimmed. The
/// `MALLOC_MMAP_THRESHOLD_` and `MALLOC_TRIM_THRESHOLD_` environment variables, when set, are
/// left to decide.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let set = |name: &str| std::env::var_os(name).is_some();
        // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
        unsafe {
            if !set("MALLOC_MMAP_THRESHOLD_") {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            }
            if !set("MALLOC_TRIM_THRESHOLD_") {
                libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
            }
        }
    }
}

/// Two environment variables that libraries below lenet read:
///
/// * `BURN_DEVICE=flex`: lenet builds every device from the config and never uses Burn's default
///   device for a network, but Burn falls back to it in one place: it loads optimizer state on
///   the default device when a run is resumed (moving it to the parameters' device at the next
///   step). With wgpu compiled in, that default would start the GPU runtime on every resume,
///   even of a CPU run; flex makes it a plain CPU copy.
/// * `XDG_RUNTIME_DIR`: Mesa's Vulkan driver prints `error: XDG_RUNTIME_DIR is invalid or not
///   set` when it is missing (containers, CI). When unset or not a directory, it points at a
///   private directory of this user's (`$TMPDIR/lenet-runtime-<uid>`, mode 0700); a valid
///   setting is left alone.
///
/// Set here, at start-up, because changing the environment while other threads (Burn's, the
/// GPU driver's) may read it is undefined behaviour in C.
fn pin_environment() {
    std::env::set_var("BURN_DEVICE", "flex");
    let valid = std::env::var_os("XDG_RUNTIME_DIR")
        .map(std::path::PathBuf::from)
        .is_some_and(|p| p.is_absolute() && p.is_dir());
    if valid {
        return;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt};
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        let dir = std::env::temp_dir().join(format!("lenet-runtime-{uid}"));
        let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
        // Only a directory of our own (another user could have made one of that name).
        let ours = std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir() && m.uid() == uid);
        if ours {
            std::env::set_var("XDG_RUNTIME_DIR", &dir);
        }
    }
}

/// An interrupter that Ctrl-C stops: the first Ctrl-C lets training finish its batch, save the
/// weights reached and say how to resume; a second one quits at once (exit code 130).
pub fn ctrl_c_interrupter() -> Interrupter {
    let interrupter = Interrupter::new();
    let handle = interrupter.clone();
    let installed = ctrlc::set_handler(move || {
        if handle.should_stop() {
            std::process::exit(130);
        }
        eprintln!("\nstopping at the end of this batch (Ctrl-C again to quit now)");
        handle.stop(Some("interrupted by Ctrl-C"));
    });
    if let Err(e) = installed {
        eprintln!("warning: Ctrl-C will end training without saving its weights: {e}");
    }
    interrupter
}

#[cfg(test)]
mod tests {
    use std::hint::black_box;

    /// A product whose exact value is subnormal (1e-30 · 1e-10 = 1e-40).
    fn subnormal_product() -> f32 {
        black_box(1e-30f32) * black_box(1e-10f32)
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn flushing_turns_subnormal_results_to_zero_in_the_thread_and_those_it_starts() {
        // In threads of their own: the flag is per thread, and the test harness's stays as it is.
        let kept = std::thread::spawn(subnormal_product).join().unwrap();
        assert!(
            kept > 0.0 && !kept.is_normal(),
            "without flushing: {kept:e}"
        );
        let (here, child, normal) = std::thread::spawn(|| {
            super::flush_subnormals();
            let child = std::thread::spawn(subnormal_product).join().unwrap();
            let normal = black_box(1e-20f32) * black_box(1e-10f32);
            (subnormal_product(), child, normal)
        })
        .join()
        .unwrap();
        assert_eq!(here, 0.0);
        assert_eq!(child, 0.0, "a thread started afterwards inherits the flag");
        assert!(
            (normal - 1e-30).abs() < 1e-36,
            "normal values are untouched: {normal:e}"
        );
    }
}
