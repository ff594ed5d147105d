//! Posted fields (a session's data, a storage entry, a request's parameters) and the one
//! merge every store uses, with the limits on how many a request and an entry may hold.
//!
//! Why here: the merge runs under a store's lock (the local engine's mutex, a PostgreSQL
//! row lock), so it must be linear; and the limits are the API's promise, the same on every
//! store.

/// Most fields one request may carry (parameters of any kind). Past it: 400, decided before
/// any store is asked. PHP's `max_input_vars` has the same default; GMS user data holds tens.
pub const MAX_FIELDS_PER_REQUEST: usize = 1_000;

/// Most fields one session or storage entry may hold after an update. Past it: 400 naming
/// the entry. Checked by the broker before it writes (see `Broker::update_data`).
pub const MAX_FIELDS_PER_ENTRY: usize = 10_000;

/// Posted fields, in the order they came; names are unique (the last value sent wins).
pub type Fields = Vec<(String, String)>;

/// Bytes of names and values, as `[limits] max_storage_bytes` counts them.
pub fn fields_bytes(fields: &Fields) -> u64 {
    fields.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum()
}

/// Up to this many names in all, `merge_fields` compares them directly.
const SMALL: usize = 16;

/// Merges `update` into `fields`: same name replaces in place, new names are appended.
///
/// Linear in both sizes (a hash index of the update's names, built per call): a search per key made
/// an entry grown by a few thousand keys per update cost seconds under the store's lock.
/// The order stays the order of first arrival, which the API shows.
pub fn merge_fields(fields: &mut Fields, update: Fields) {
    if update.is_empty() {
        return;
    }
    // A handful of fields (every request's own parameters): comparing names is cheaper than
    // hashing them.
    if fields.len() + update.len() <= SMALL {
        for (k, v) in update {
            match fields.iter_mut().find(|(name, _)| *name == k) {
                Some(slot) => slot.1 = v,
                None => fields.push((k, v)),
            }
        }
        return;
    }
    // The update's names, deduplicated (its last value wins), in order of first arrival.
    let mut position: hashbrown::HashMap<String, usize> =
        hashbrown::HashMap::with_capacity(update.len());
    let mut pending: Vec<Option<(String, String)>> = Vec::with_capacity(update.len());
    for (k, v) in update {
        match position.get(&k) {
            Some(&i) => {
                if let Some(slot) = pending[i].as_mut() {
                    slot.1 = v;
                }
            }
            None => {
                position.insert(k.clone(), pending.len());
                pending.push(Some((k, v)));
            }
        }
    }
    // One pass over the existing fields replaces in place; the rest are new and go last.
    for slot in fields.iter_mut() {
        if let Some(&i) = position.get(&slot.0)
            && let Some((_, v)) = pending[i].take()
        {
            slot.1 = v;
        }
    }
    fields.extend(pending.into_iter().flatten());
}

/// How many distinct names `fields` would hold after merging `update` into it.
pub fn merged_len(fields: &Fields, update: &Fields) -> usize {
    let names: hashbrown::HashSet<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    let mut added: hashbrown::HashSet<&str> = hashbrown::HashSet::new();
    for (k, _) in update {
        if !names.contains(k.as_str()) {
            added.insert(k.as_str());
        }
    }
    fields.len() + added.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn merge_replaces_in_place_and_appends_in_order() {
        let mut fields = f(&[("a", "1"), ("b", "2")]);
        merge_fields(
            &mut fields,
            f(&[("c", "3"), ("a", "x"), ("c", "4"), ("d", "5")]),
        );
        assert_eq!(fields, f(&[("a", "x"), ("b", "2"), ("c", "4"), ("d", "5")]));
        assert_eq!(
            merged_len(&fields, &f(&[("a", "1"), ("e", "1"), ("e", "2")])),
            5
        );
    }

    #[test]
    fn merge_is_linear() {
        let many = |from: usize| -> Fields {
            (from..from + 20_000)
                .map(|i| (format!("key{i}"), "v".to_owned()))
                .collect()
        };
        let started = std::time::Instant::now();
        let mut fields = Fields::new();
        for round in 0..6 {
            merge_fields(&mut fields, many(round * 10_000));
        }
        assert_eq!(fields.len(), 70_000);
        // Quadratic merging took seconds here; linear takes milliseconds, even unoptimised.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
}
