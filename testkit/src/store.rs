//! Store fixtures: a temp dir with a gsmgw store opened in it (feature `store`).

use std::path::{Path, PathBuf};

use gsmgw_agent::store::{Store, StoreOptions};

/// Opens the store in `dir` for `gateway` with options changed by `f`; panics if it cannot,
/// or if opening raised an alarm.
pub fn open_with(dir: &Path, gateway: &str, f: impl FnOnce(&mut StoreOptions)) -> Store {
    let mut opts = StoreOptions::in_dir(dir);
    f(&mut opts);
    let (store, alarms) = Store::open(opts, gateway).expect("open the store");
    assert!(alarms.is_empty(), "{alarms:?}");
    store
}

/// A temp dir and a store opened in it; the dir goes when this is dropped.
pub struct TempStore {
    /// The store.
    pub store: Store,
    /// Its directory.
    pub dir: tempfile::TempDir,
}

impl TempStore {
    /// A store for `gateway` in a new temp dir under `base` (see [`crate::bench_dir`]), with
    /// default options.
    pub fn open_in(base: &Path, prefix: &str, gateway: &str) -> Result<TempStore, String> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(base)
            .map_err(|e| format!("temp dir in {}: {e}", base.display()))?;
        let (store, _) =
            Store::open(StoreOptions::in_dir(dir.path()), gateway).map_err(|e| e.to_string())?;
        Ok(TempStore { store, dir })
    }

    /// The store's directory.
    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}
