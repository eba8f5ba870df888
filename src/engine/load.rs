//! Loading the model: which buffer types hold the weights, and llama.cpp's log.
//!
//! llama.cpp may move CPU weights into "extra" buffer types: `CPU_REPACK` (weights reordered for
//! AVX2/AVX-512 kernels) and `AMX` (Intel Advanced Matrix Extensions, Sapphire Rapids and later).
//! The AMX kernels crash on ordinary prompts (upstream llama.cpp issue 20824, unfixed in the
//! version `llama-cpp-2` vendors), and a `-C target-cpu=native` build enables them on every AMX
//! CPU. So where the CPU backend offers the AMX buffer type we load with no extra buffer types at
//! all (llama.cpp has no switch for AMX alone); elsewhere loading is unchanged and keeps the
//! repacked kernels. The loader's own report of the buffers it filled is kept, so tests and
//! `/health` can check where the weights went.

use std::ffi::{c_char, c_void, CStr, CString};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Mutex;

use anyhow::{anyhow, Context as _};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_sys_2 as sys;

/// One buffer of weights as the loader reported it, e.g. `CPU_Mapped` 373.7 MiB or `CUDA0`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct WeightBuffer {
    pub name: String,
    pub mib: f64,
}

/// The model and where its weights went.
pub struct Loaded {
    pub model: LlamaModel,
    pub weight_buffers: Vec<WeightBuffer>,
    /// Whether llama.cpp's extra CPU buffer types (repacking, AMX) were allowed.
    pub extra_buffer_types: bool,
}

/// Loads a GGUF file. `gpu_layers`: layers to offload, -1 for all (ignored without a GPU backend).
pub fn load(_backend: &LlamaBackend, path: &Path, gpu_layers: i32) -> anyhow::Result<Loaded> {
    let extra_buffer_types = use_extra_buffer_types(&cpu_extra_buffer_types());
    // SAFETY: plain C defaults; every pointer field stays null.
    let mut params = unsafe { sys::llama_model_default_params() };
    params.n_gpu_layers = gpu_layers;
    params.use_extra_bufts = extra_buffer_types;
    let c_path = CString::new(path.to_str().ok_or_else(|| anyhow!("model path is not UTF-8"))?)
        .context("model path holds a NUL byte")?;

    // One load at a time, so the buffers reported are this model's (tests start several engines).
    let _one_load = LOADING.lock().unwrap_or_else(|e| e.into_inner());
    *report() = Some(Vec::new());
    // SAFETY: a valid C string and parameters; the result is checked for null below.
    let raw = unsafe { sys::llama_model_load_from_file(c_path.as_ptr(), params) };
    let weight_buffers = report().take().unwrap_or_default();

    let raw = NonNull::new(raw).ok_or_else(|| anyhow!("llama.cpp could not load the model"))?;
    // SAFETY: `llama-cpp-2` has no setter for `use_extra_bufts` (its parameter struct is
    // private), so the model is loaded through the C API and handed to the wrapper here.
    // `LlamaModel` is `repr(transparent)` over a `repr(transparent)` `NonNull<llama_model>` in
    // the exactly pinned version (transmute checks the size at compile time); it takes
    // ownership and frees the model on drop, as if it had loaded it itself.
    let model = unsafe { std::mem::transmute::<NonNull<sys::llama_model>, LlamaModel>(raw) };
    Ok(Loaded { model, weight_buffers, extra_buffer_types })
}

/// Extra buffer types are used unless one of them is AMX's.
fn use_extra_buffer_types(offered: &[String]) -> bool {
    !offered.iter().any(|name| name.starts_with("AMX"))
}

/// Names of the extra buffer types the CPU backend offers, as llama.cpp's loader would see them.
fn cpu_extra_buffer_types() -> Vec<String> {
    let mut names = Vec::new();
    // SAFETY: llama.cpp's own lookup (make_cpu_buft_list in llama-model.cpp): the registry is
    // static, the proc address has the named type, and the list ends with a null pointer.
    unsafe {
        let dev = sys::ggml_backend_dev_by_type(sys::GGML_BACKEND_DEVICE_TYPE_CPU);
        if dev.is_null() {
            return names;
        }
        let reg = sys::ggml_backend_dev_backend_reg(dev);
        let address = sys::ggml_backend_reg_get_proc_address(reg, c"ggml_backend_dev_get_extra_bufts".as_ptr());
        if address.is_null() {
            return names;
        }
        let get: sys::ggml_backend_dev_get_extra_bufts_t = std::mem::transmute(address);
        let Some(get) = get else { return names };
        let mut buft = get(dev);
        while !buft.is_null() && !(*buft).is_null() {
            names.push(CStr::from_ptr(sys::ggml_backend_buft_name(*buft)).to_string_lossy().into_owned());
            buft = buft.add(1);
        }
    }
    names
}

static LOADING: Mutex<()> = Mutex::new(());
/// The buffers reported by the load in progress; `None` when no load is recording.
static REPORT: Mutex<Option<Vec<WeightBuffer>>> = Mutex::new(None);

fn report() -> std::sync::MutexGuard<'static, Option<Vec<WeightBuffer>>> {
    REPORT.lock().unwrap_or_else(|e| e.into_inner())
}

/// Routes llama.cpp's log through [`log_line`]: printed on stderr only with `CONFORM_LLAMA_LOG`
/// set, and read for the loader's buffer report either way.
pub fn install_log() {
    // SAFETY: a `extern "C"` function with the callback's signature, no user data.
    unsafe { sys::llama_log_set(Some(log_line), std::ptr::null_mut()) };
}

unsafe extern "C" fn log_line(_level: sys::ggml_log_level, text: *const c_char, _user: *mut c_void) {
    if text.is_null() {
        return;
    }
    // SAFETY: llama.cpp passes a NUL-terminated string that lives for the call.
    let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    if std::env::var_os("CONFORM_LLAMA_LOG").is_some() {
        eprint!("{text}");
    }
    if let Some(buffer) = parse_buffer_line(&text) {
        if let Some(buffers) = report().as_mut() {
            buffers.push(buffer);
        }
    }
}

/// `load_tensors:   CPU_Mapped model buffer size =   373.73 MiB` → (`CPU_Mapped`, 373.73).
fn parse_buffer_line(line: &str) -> Option<WeightBuffer> {
    let (head, size) = line.split_once(" model buffer size =")?;
    let name = head.rsplit(char::is_whitespace).next()?.to_string();
    let mib = size.trim().strip_suffix("MiB")?.trim().parse().ok()?;
    (!name.is_empty()).then_some(WeightBuffer { name, mib })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amx_turns_extra_buffer_types_off() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(!use_extra_buffer_types(&names(&["AMX", "CPU_REPACK"])));
        assert!(!use_extra_buffer_types(&names(&["CPU_REPACK", "AMX"])));
        assert!(use_extra_buffer_types(&names(&["CPU_REPACK"])));
        assert!(use_extra_buffer_types(&[]));
    }

    #[test]
    fn parses_the_loaders_buffer_report() {
        let line = "load_tensors:   CPU_Mapped model buffer size =   373.73 MiB\n";
        assert_eq!(parse_buffer_line(line), Some(WeightBuffer { name: "CPU_Mapped".into(), mib: 373.73 }));
        let line = "load_tensors:          AMX model buffer size =   120.00 MiB\n";
        assert_eq!(parse_buffer_line(line).unwrap().name, "AMX");
        assert_eq!(parse_buffer_line("llama_context: n_ctx = 4096\n"), None);
    }
}
