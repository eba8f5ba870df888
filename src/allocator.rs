//! The process's allocator: mimalloc, for every binary that links this crate (the server,
//! `maskbench` and the tests alike).
//!
//! Compiling a format allocates and frees many small objects (regex syntax trees, NFA states,
//! state sets); with mimalloc a median JSON Schema compiles in two thirds of glibc's time
//! (README, "The allocator"). Two of its defaults are turned off because they made rare steps
//! 10-40 ms slow: transparent huge pages (the `no_thp` feature: a first touch zeroes 2 MiB) and
//! purging freed memory back to the OS (its pages fault in again on their next use).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (v3, as `libmimalloc-sys` 0.1.49 builds it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory for reuse instead of returning it to the OS. Call first thing in `main`;
/// `MIMALLOC_PURGE_DELAY` (milliseconds) in the environment still decides where it is set.
pub fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's options; any value is valid, -1 = never purge.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
    }
}

#[cfg(test)]
mod tests {
    use super::MI_OPTION_PURGE_DELAY;

    #[test]
    fn the_purge_delay_is_the_option_set() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reads one of mimalloc's options.
        let get = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        // mimalloc's default purge delay (1,000 ms; no other option has it): a wrong index
        // reads another option's default.
        assert_eq!(get(), 1000);
        super::keep_freed_memory();
        assert_eq!(get(), -1);
    }
}
