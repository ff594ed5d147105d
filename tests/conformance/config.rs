//! Groups from the config file: applying is idempotent, numbers the file drops retire
//! without breaking live reservations, and applying again undoes admin changes.

use access_broker::domain::Allocation;
use access_broker::store::{AddNumbers, RemoveNumber};

use crate::support::{TestStore, group, number};
use crate::{group_numbers, matches, reserve_fresh};

crate::conformance!(
    apply_groups_is_idempotent_and_retires_dropped_numbers,
    the_config_wins_again_after_admin_changes,
);

async fn apply_groups_is_idempotent_and_retires_dropped_numbers(t: TestStore) {
    let spec = group("DNIS", 3, Allocation::RoundRobin);
    let g = spec.settings.name.clone();
    let apply = |spec| t.store.apply_groups(std::slice::from_ref(spec));
    apply(&spec).await.expect("apply");
    let notes = apply(&spec).await.expect("apply again");
    assert!(notes.is_empty(), "nothing differs: {notes:?}");
    let r = reserve_fresh(&t, &g).await;
    assert_eq!(r.number, number("5550000"));
    // The config drops 5550000 (reserved) and 5550001 (free), and adds 5559999.
    let mut smaller = spec.clone();
    smaller.numbers = vec![number("5550002"), number("5559999")];
    smaller.settings.allocation = Allocation::Random;
    smaller.settings.policy.cool_down = 7;
    let notes = apply(&smaller).await.expect("apply");
    // The settings put back are named, old→new (the line said only that some differed).
    assert!(
        notes
            .iter()
            .any(|n| n.contains("allocation round-robin→random")
                && n.contains("cool_down 0→7")
                && !n.contains("booking_expiration_timeout")),
        "{notes:?}"
    );
    let stats = t.store.group(&g).await.expect("g").expect("g").stats;
    assert_eq!(
        (stats.size, stats.retiring, stats.allocation),
        (2, 1, Allocation::Random)
    );
    assert!(matches(&t, &r.number).await, "live reservation untouched");
    let mut numbers = group_numbers(&t, &g).await;
    numbers.sort();
    assert_eq!(numbers, ["5550002", "5559999"]);
}

// Applying the same config again (a node restart) must still undo admin changes made since:
// on PostgreSQL this checks that admin changes clear the group's config fingerprint.
async fn the_config_wins_again_after_admin_changes(t: TestStore) {
    let spec = group("DNIS", 3, Allocation::RoundRobin);
    let g = spec.settings.name.clone();
    let apply = || t.store.apply_groups(std::slice::from_ref(&spec));
    apply().await.expect("apply");
    let removed = t.store.remove_number(&g, &number("5550001")).await;
    assert_eq!(removed.expect("remove"), RemoveNumber::Removed);
    let added = t.store.add_numbers(&g, vec![number("5558888")]).await;
    assert_eq!(added.expect("add"), AddNumbers::Added(1));
    let notes = apply().await.expect("apply again");
    assert!(!notes.is_empty(), "the differences are reported: {notes:?}");
    let mut numbers = group_numbers(&t, &g).await;
    numbers.sort();
    assert_eq!(numbers, ["5550000", "5550001", "5550002"]);
    let notes = apply().await.expect("apply a third time");
    assert!(notes.is_empty(), "nothing differs now: {notes:?}");
}
