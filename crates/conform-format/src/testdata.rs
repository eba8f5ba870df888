//! Where the shared test and benchmark data lives (`../shared/data` beside the repository, or
//! `$CONFORM_DATA`; this crate lives two folders down). It is read in place, never copied into the repository.

use std::path::PathBuf;

pub fn data_dir() -> PathBuf {
    let dir = std::env::var_os("CONFORM_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    assert!(dir.is_dir(), "test data not found at {} (set CONFORM_DATA)", dir.display());
    dir
}
