//! The known models (`models/manifest.json`) and how a `--model` argument resolves to a file.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct Manifest {
    pub default: String,
    pub models: Vec<ManifestModel>,
}

#[derive(Deserialize)]
pub struct ManifestModel {
    pub name: String,
    pub file: String,
}

/// The models folder: `$CONFORM_MODELS`, else `models/` of the source tree this binary was built from.
pub fn models_dir() -> PathBuf {
    std::env::var_os("CONFORM_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models"))
}

pub fn load() -> anyhow::Result<Manifest> {
    let path = models_dir().join("manifest.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Resolves a manifest name or a GGUF path (`None` = the default model) to (id, path).
pub fn resolve(model: Option<&str>) -> anyhow::Result<(String, PathBuf)> {
    let manifest = load()?;
    let wanted = model.unwrap_or(&manifest.default);
    if let Some(entry) = manifest.models.iter().find(|m| m.name == wanted) {
        let path = models_dir().join(&entry.file);
        if !path.exists() {
            bail!("model `{wanted}` is not fetched yet: run `python3 models/fetch.py {wanted}` (or `make setup`)");
        }
        return Ok((entry.name.clone(), path));
    }
    let path = PathBuf::from(wanted);
    if path.is_file() {
        let id = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| wanted.into());
        return Ok((id, path));
    }
    let known: Vec<&str> = manifest.models.iter().map(|m| m.name.as_str()).collect();
    bail!("`{wanted}` is neither a known model ({}) nor a GGUF file", known.join(", "))
}
