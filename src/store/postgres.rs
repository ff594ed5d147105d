//! PostgreSQL backend (multi-node). Not written yet.

use super::{DynStore, OpenError, StoreOptions, StoreUrl};

pub async fn open(url: &StoreUrl, _options: &StoreOptions) -> Result<DynStore, OpenError> {
    Err(OpenError::Failed {
        url: url.to_string(),
        reason: "not implemented yet".into(),
    })
}
