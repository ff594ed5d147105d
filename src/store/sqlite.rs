//! SQLite backend. Not written yet.

use std::path::Path;

use super::{DynStore, OpenError, StoreOptions};

pub async fn open(path: &Path, _options: &StoreOptions) -> Result<DynStore, OpenError> {
    Err(OpenError::Failed {
        url: path.display().to_string(),
        reason: "not implemented yet".into(),
    })
}
